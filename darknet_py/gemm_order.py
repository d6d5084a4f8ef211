"""Darknet-order evaluation: a model's forward pass with the float arithmetic of a
Darknet build's CPU code, operation for operation, so that its outputs have the
same bits.

The plain and fast paths compute what Darknet computes up to float rounding
(PyTorch's convolutions sum in other orders). That is enough for every
comparison but one: a printed percentage whose value sits on a rounding boundary
(``76.4999`` vs ``76.5001``) prints differently. Inside ::

    with darknet_order(build):          # a DarknetBuild or its folder
        outputs = model.layer_outputs(x)

every layer darknet_py knows the fork's arithmetic for does it Darknet's way:

* ``[convolutional]``: im2col (``F.unfold``; Darknet's row order: channel, kernel
  row, kernel column) then ``gemm_nn`` as both forks write it (``for i, for k:
  a = A[i,k]; for j: C[i,j] += a*B[k,j]``): each output is a float32 sum over k in
  order, starting from 0, one rounded product and one rounded add per term (no FMA:
  neither Makefile lets gcc use one on x86-64 without ``-mfma``/``AVX=1``). Vectorised
  over i and j with numpy, looping over k only. pjreddie's ``size == 1`` (AlexeyAB's
  ``size == 1 && stride == 1``) gemm reads the input itself, as the plain path does;
  ``xnor=1`` binarizes first;
* batchnorm (``normalize_cpu`` as gcc ``-Ofast`` compiled it, read from both forks'
  object code): per channel a double divisor ``d`` (pjreddie ``sqrt(var) + 1e-6f``,
  AlexeyAB ``sqrt(var + 1e-5f)`` with the sum in float); the first ``4*floor(S/4)``
  values of each channel plane (S values; all when S < 4: none) are
  ``(x - mean) * (1/d)`` in double (the vectorised loop multiplies by the hoisted
  reciprocal), the last ``S % 4`` are ``(x - mean) / d`` (the scalar tail divides);
  then ``* scale`` and ``+ bias`` in float (``scale_bias``, ``add_bias``);
* activations: pjreddie's ``activate()`` formulas in double where its C uses double
  constants (logistic ``1./(1.+exp(-x))``, leaky ``.1*x``, ...), rounded once to
  float; AlexeyAB's are called from the build's own ``libdarknet.so``
  (:mod:`darknet_py.darknet.activations`), with the same array segments its layers
  pass (its ``-Ofast`` vector loops use ``rcpps`` and glibc's vector ``expf``, so
  only its code gives its bits); the heads' logistic likewise, per Darknet's
  ``activate_array`` call.

Layers without float arithmetic of their own (maxpool, route, upsample, a linear
shortcut of two inputs: one float add) already give Darknet's bits on the plain
path, which this mode uses for every other layer (``darknet_py.fast.plain``); the
ones with arithmetic this mode does not rewrite ([connected], [local],
[deconvolutional], [region]/[detection]/[softmax], a shortcut with weights or an
activation, [scale_channels], ...) stay within float rounding of Darknet, as on the
plain path. The fork is the build's, not the model's dialect. CPU float32 only,
inference only (no gradients), and slow (numpy passes over C per k): a 416x416
yolov3-tiny forward measured 2.5-2.8 s against 0.05-0.14 s on the fast path (2
cores shared with other jobs, load average 5; 18-20 s against 1-2 s at load 10).
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import fast as _fast
from .errors import DarknetError

_CURRENT: "contextvars.ContextVar[Optional[DarknetOrder]]" = contextvars.ContextVar(
    "darknet_py_darknet_order", default=None)


def current() -> "Optional[DarknetOrder]":
    """The :class:`DarknetOrder` in effect (inside :func:`darknet_order`), or None. Layers
    use it only for inference (no gradients)."""
    order = _CURRENT.get()
    if order is None or torch.is_grad_enabled():
        return None
    return order


@contextlib.contextmanager
def darknet_order(build) -> Iterator["DarknetOrder"]:
    """Evaluate every model in this block as ``build``'s CPU Darknet does (see the module
    docstring). ``build``: a :class:`~darknet_py.darknet.DarknetBuild` or its folder.
    Gradients are off inside; models take the plain path."""
    from .darknet import resolve_build
    order = DarknetOrder(resolve_build(build))
    token = _CURRENT.set(order)
    try:
        with _fast.plain(), torch.no_grad():
            yield order
    finally:
        _CURRENT.reset(token)


def gemm_nn(a: np.ndarray, b: np.ndarray, c: Optional[np.ndarray] = None) -> np.ndarray:
    """``C += A @ B`` (M x K by K x N, float32) in gemm_nn's order: for each k in turn,
    every C[i, j] += float(A[i, k] * B[k, j]), each product and sum rounded to float32.
    ``c`` (default zeros) is updated in place and returned."""
    m, k = a.shape
    n = b.shape[1]
    if c is None:
        c = np.zeros((m, n), dtype=np.float32)
    tmp = np.empty((m, n), dtype=np.float32)
    columns = np.ascontiguousarray(a.T, dtype=np.float32)[:, :, None]
    rows = np.ascontiguousarray(b, dtype=np.float32)
    for kk in range(k):
        np.multiply(columns[kk], rows[kk], out=tmp)
        c += tmp
    return c


def _pj_formulas():
    """pjreddie's activations.h formulas in double (its constants are double literals and
    ``exp`` is the double one), each rounded once to float by the caller."""
    exp = torch.exp

    def where(cond, a, b):
        return torch.where(cond, a, b)

    return {
        "linear": lambda x: x,
        "logistic": lambda x: 1.0 / (1.0 + exp(-x)),
        "loggy": lambda x: 2.0 / (1.0 + exp(-x)) - 1.0,
        "elu": lambda x: (x >= 0) * x + (x < 0) * (exp(x) - 1.0),
        # (x >= 0) is an int in the C: 0/1 times the double constant, left to right
        "selu": lambda x: ((x >= 0).double() * 1.0507 * x
                           + (x < 0).double() * 1.0507 * 1.6732 * (exp(x) - 1.0)),
        "relie": lambda x: where(x > 0, x, 0.01 * x),
        "ramp": lambda x: x * (x > 0) + 0.1 * x,
        "leaky": lambda x: where(x > 0, x, 0.1 * x),
        # 2*x is a float product in the C (exact), then exp in double
        "tanh": lambda x: (exp(2 * x) - 1.0) / (exp(2 * x) + 1.0),
        "plse": lambda x: where(x < -4, 0.01 * (x + 4), where(x > 4, 0.01 * (x - 4) + 1,
                                                              0.125 * x + 0.5)),
        "lhtan": lambda x: where(x < 0, 0.001 * x, where(x > 1, 0.001 * (x - 1) + 1, x)),
    }


_PJ = _pj_formulas()


class DarknetOrder:
    """The arithmetic of one build's fork (see :func:`darknet_order`)."""

    def __init__(self, build) -> None:
        self.build = build
        self.fork = build.fork
        self._acts = None
        if self.fork == "alexeyab":
            from .darknet.activations import build_activations
            self._acts = build_activations(build)

    # -- convolution ---------------------------------------------------------------------
    def conv2d(self, x: Tensor, weight: Tensor, stride: Tuple[int, int], padding: int,
               dilation: int, groups: int) -> Tensor:
        """forward_convolutional_layer's loops: per image and group, im2col then gemm into
        a zeroed output (no bias)."""
        _check(x)
        b, c, h, w = x.shape
        n, cg, kh, kw = weight.shape
        oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride[0] + 1
        ow = (w + 2 * padding - dilation * (kw - 1) - 1) // stride[1] + 1
        out = np.zeros((b, n, oh * ow), dtype=np.float32)
        ng = n // groups
        wg = weight.detach().reshape(groups, ng, cg * kh * kw).numpy()
        for i in range(b):
            for g in range(groups):
                im = x[i:i + 1, g * cg:(g + 1) * cg]
                if kh == 1 and kw == 1 and stride == (1, 1) and padding == 0:
                    cols = im.reshape(cg, h * w)
                else:
                    cols = F.unfold(im, (kh, kw), dilation=dilation, padding=padding,
                                    stride=stride)[0]
                gemm_nn(wg[g], cols.numpy(), out[i, g * ng:(g + 1) * ng])
        return torch.from_numpy(out).reshape(b, n, oh, ow)

    def gemm(self, a: Tensor, b: Tensor) -> Tensor:
        """A @ B (2-D float32) in gemm_nn's order."""
        return torch.from_numpy(gemm_nn(a.detach().numpy(), b.detach().numpy()))

    # -- batchnorm -----------------------------------------------------------------------
    def normalize(self, x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        """normalize_cpu as compiled (see the module docstring): NCHW float32 ``x``."""
        _check(x)
        var64 = var.detach().double()
        if self.fork == "alexeyab":
            d = torch.sqrt((var.detach() + np.float32(1e-5)).double())
        else:
            d = torch.sqrt(var64) + float(np.float32(1e-6))
        centred = (x - mean.detach().view(1, -1, 1, 1)).double()
        b, c, h, w = x.shape
        flat = centred.reshape(b, c, h * w)
        s = h * w
        body = 4 * (s // 4) if s >= 4 else 0
        out = torch.empty_like(flat)
        d3 = d.view(1, -1, 1)
        out[:, :, :body] = flat[:, :, :body] * (1.0 / d3)
        out[:, :, body:] = flat[:, :, body:] / d3
        return out.to(torch.float32).reshape(b, c, h, w)

    def batchnorm(self, x: Tensor, mean: Tensor, var: Tensor, scales: Tensor) -> Tensor:
        """normalize_cpu then scale_bias (the bias is the layer's: :meth:`add_bias`)."""
        return self.normalize(x, mean, var) * scales.detach().view(1, -1, 1, 1)

    @staticmethod
    def add_bias(x: Tensor, bias: Tensor) -> Tensor:
        return x + bias.detach().view(1, -1, 1, 1)

    # -- activations ---------------------------------------------------------------------
    def activate(self, x: Tensor, name: str) -> Tensor:
        """What the fork's forward_convolutional_layer does to its whole output (NCHW)."""
        _check(x)
        if name == "linear":
            return x
        if self._acts is not None:
            y = x.contiguous().clone()
            self._acts.convolutional(y, name, x.shape[1], x.shape[2] * x.shape[3])
            return y
        return self._pj(x, name)

    @staticmethod
    def _pj(x: Tensor, name: str) -> Tensor:
        fn = _PJ.get(name)
        if fn is None:
            if name == "relu":  # x*(x>0), which -Ofast (no signed zeros) makes +0 for x <= 0
                return torch.where(x > 0, x, torch.zeros_like(x))
            from .layers import activations
            return activations.activate(x, name)
        return fn(x.double()).to(torch.float32)

    def logistic_segments(self, x: Tensor, segments: Sequence[Tuple[int, int]]) -> Tensor:
        """A head's ``activate_array(l.output + index, count*w*h, LOGISTIC)`` calls: for every
        image and every (first channel, channel count) in ``segments``, in that order;
        channels in no segment stay as they are. Returns a new tensor."""
        _check(x)
        y = x.contiguous().clone()
        b, c, h, w = y.shape
        if self._acts is None:
            flat = y.view(b, c, h * w)
            for start, count in segments:
                part = flat[:, start:start + count]
                part.copy_(self._pj(part, "logistic"))
            return y
        for i in range(b):
            for start, count in segments:
                self._acts.activate_array(y, (i * c + start) * h * w, count * h * w, "logistic")
        return y


def _check(x: Tensor) -> None:
    if x.device.type != "cpu" or x.dtype != torch.float32:
        raise DarknetError(f"Darknet-order evaluation (--darknet BUILD) runs on the CPU in "
                           f"float32 only, got {x.dtype} on {x.device}")
