"""``[convolutional]`` / ``[conv]`` (``convolutional_layer.c``).

Output size is Darknet's integer arithmetic ``(h + 2*pad - size)/stride + 1``,
where ``pad=1`` means ``padding = size/2`` and otherwise ``padding=`` is used.
With ``batch_normalize=1`` the order is conv -> normalize (dialect epsilon) ->
scale -> add bias -> activation, exactly as ``forward_convolutional_layer``.

.weights order: biases[n], then if batch_normalize scales[n], rolling_mean[n],
rolling_variance[n]; then weights[n][c/groups][size][size].

    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=10\\nheight=6\\nchannels=3\\n"
    ...                         "[convolutional]\\nfilters=4\\nsize=3\\nstride=2\\npad=1\\n"))
    >>> tuple(net.layers[0].out_shape)
    (4, 3, 5)
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import gemm_order
from ..cfg.options import option
from ..errors import CfgError, CfgWarning
from . import activations
from .base import (AltWeightGrad, BuildContext, DarknetLayer, ResizeError, Shape, check_shape, filled,
                   initialising, table_shape)
from .batchnorm import BatchNorm
from .registry import register


@dataclass
class ConvolutionalOptions:
    filters: int = option(1)
    size: int = option(1)
    stride: int = option(1)
    stride_x: int = option(-1, only="alexeyab", doc="-1 = stride")
    stride_y: int = option(-1, only="alexeyab", doc="-1 = stride")
    dilation: int = option(1, only="alexeyab")
    pad: int = option(0, doc="non-zero: padding = size/2")
    padding: int = option(0)
    groups: int = option(1)
    activation: str = option("logistic", choices=activations.names)
    batch_normalize: int = option(0)
    # options darknet_py does not implement: a non-default value is an error
    binary: int = option(0)
    xnor: int = option(0)
    flipped: int = option(0)
    dot: float = option(0.0)
    antialiasing: int = option(0)
    share_index: int = option(-1000000000, only="alexeyab",
                              doc="share the weights, biases and BN values of that layer")
    cbn: int = option(0)
    bin_output: int = option(0, only="alexeyab",
                             doc="with xnor=1: linear activation after calculate_binary_weights")
    sway: int = option(0)
    rotate: int = option(0)
    stretch: int = option(0)
    stretch_sway: int = option(0)
    coordconv: int = option(0)
    # AlexeyAB training-only or scheduling keys, no effect on the forward pass
    assisted_excitation: float = option(0.0)
    angle: float = option(15.0)
    grad_centr: int = option(0)
    reverse: float = option(0.0)
    stream: int = option(-1)
    wait_stream: int = option(-1)

    def resolve(self, dialect) -> None:
        if self.stride_x < 1:
            self.stride_x = self.stride
        if self.stride_y < 1:
            self.stride_y = self.stride
        if self.size == 1:
            self.dilation = 1
        if self.pad:
            self.padding = self.size // 2
        if self.xnor and dialect.name == "alexeyab":
            self.groups = 1  # make_convolutional_layer: "disable groups for XNOR-net"


_UNSUPPORTED = {"binary": 0, "flipped": 0, "antialiasing": 0, "cbn": 0, "sway": 0, "rotate": 0,
                "stretch": 0, "stretch_sway": 0, "coordconv": 0}


def xnor_binarize(weight: Tensor, x: Tensor) -> "tuple[Tensor, Tensor]":
    """pjreddie's ``xnor=1`` on the CPU (forward_convolutional_layer): ``binarize_weights``
    turns each filter into ``sign(w) * mean|w|`` (the mean a float32 sum over the filter's
    ``c/groups*size*size`` weights in memory order, then divided by that count; ``w > 0`` is
    +, zero and below -), ``binarize_cpu`` the whole input into +1 (``> 0``) / -1; then the
    ordinary convolution runs on those (im2col pads with 0, not -1), then BN/bias and the
    activation as without xnor. Returns (binary weights, binary input)."""
    mean = filter_means(weight).view(-1, 1, 1, 1)
    binary_w = torch.where(weight > 0, mean, -mean)
    return binary_w, _signs(x)


def filter_means(weight: Tensor) -> Tensor:
    """``binarize_weights``' mean |w| of each filter: a float32 sum over the filter's
    weights in memory order, divided by their count (in weight's dtype)."""
    n = weight.shape[0]
    flat = weight.detach().reshape(n, -1)
    k = flat.shape[1]
    if flat.device.type == "cpu" and flat.dtype == torch.float32:
        sums = np.add.accumulate(np.abs(flat.numpy()), axis=1, dtype=np.float32)[:, -1]
        mean = torch.from_numpy((sums / np.float32(k)).astype(np.float32)).to(flat.device)
    else:
        mean = flat.abs().sum(dim=1) / k
    return mean.to(weight.dtype)


def _signs(t: Tensor) -> Tensor:
    """binarize_cpu / float_to_bit: +1 where ``t > 0``, else -1 (0 and NaN included)."""
    return torch.where(t > 0, torch.ones_like(t), -torch.ones_like(t))


def xnor_bit_packed(weight: Tensor, bias: Tensor, x: Tensor, stride: int, padding: int,
                    blind: bool) -> Tensor:
    """AlexeyAB's ``xnor=1`` forward after ``calculate_binary_weights`` (the CPU path of
    forward_convolutional_layer when ``l.align_bit_weights`` is set, not training and
    ``stride_x == stride_y``), before the activation.

    ``binary_align_weights`` packs one bit per weight, ``w > 0`` (of ``binarize_weights``'
    ``sign * mean|w|``), and keeps each filter's mean |w| (:func:`filter_means`); the input
    is packed one bit per value, ``x > 0``, after an im2col that pads with 0.0, so padding
    is a 0 bit like any value <= 0. ``gemm_nn_custom_bin_mean_transposed`` then writes
    ``(2*popcount(xnor) - K) * mean`` = ``mean * sum(sign w * sign x)`` with sign +1/-1 and
    padding -1, and ``add_bias`` adds the bias (no batchnorm: Darknet's callers fuse it into
    ``weight``/``bias`` first). ``blind``: the input has c % 32 != 0 and the kernel is not
    3x3/stride 1/padding 1, where ``im2col_cpu_custom_bin`` only prints "Error: is no
    non-optimized version" and leaves every input bit 0 (all -1). Each image of a batch
    is computed (Darknet's bit path computes only its batch's first image, then returns)."""
    signs_w = _signs(weight)
    signs_x = -torch.ones_like(x) if blind else _signs(x)
    padded = F.pad(signs_x, [padding] * 4, value=-1.0) if padding else signs_x
    # sums of +-1 products: integers; rounding undoes any non-exact conv algorithm
    count = torch.round(F.conv2d(padded, signs_w, None, stride))
    return count * filter_means(weight).view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


#: oneDNN's convolution with the bias and an activation fused as post-ops (what
#: torch.compile's CPU backend emits); None where this build of torch lacks it
try:
    _CONV_POINTWISE = torch.ops.mkldnn._convolution_pointwise.default
except (AttributeError, RuntimeError):  # pragma: no cover
    _CONV_POINTWISE = None
#: oneDNN's weight reorder into the blocked layout its convolution uses (what
#: torch.compile's freezing pass does once per weight); None where torch lacks it
try:
    _REORDER_WEIGHT = torch.ops.mkldnn._reorder_convolution_weight.default
except (AttributeError, RuntimeError):  # pragma: no cover
    _REORDER_WEIGHT = None
#: activations oneDNN applies in the same pass, with Darknet's constants
_FUSED_ACTIVATIONS = {"linear": ("none", []), "leaky": ("leaky_relu", [0.1]),
                      "revleaky": ("leaky_relu", [0.1]), "relu": ("relu", [])}


def _out_size(size_in: int, pad: int, size: int, stride: int) -> int:
    return (size_in + 2 * pad - size) // stride + 1


class ConvolutionalLayer(DarknetLayer):
    kind = "convolutional"
    channels_key = "filters"
    ab_forward_zeroes_delta = True
    ab_train = True

    def __init__(self, index: int, in_shape: Shape, out_shape: Shape, opts: ConvolutionalOptions,
                 dialect) -> None:
        super().__init__(index, out_shape)
        self.opts = opts
        self.activation = opts.activation
        self._act = activations.get(opts.activation, dialect)
        self._act_train_ = activations.get_inplace_autograd(opts.activation, dialect)
        n, c, k = opts.filters, in_shape.c, opts.size
        self.weight = nn.Parameter(filled(n, c // opts.groups, k, k))
        self.bias = nn.Parameter(filled(n))
        self.bn = BatchNorm(n, dialect) if opts.batch_normalize else None
        self.dialect_name = dialect.name
        self.stride = (opts.stride_y, opts.stride_x)
        #: AlexeyAB's im2col_cpu_ext pads by padding*dilation (dilation is AlexeyAB's only)
        self.padding = opts.padding * opts.dilation
        self.groups = opts.groups
        self.dilation = opts.dilation
        #: a 1x1 kernel Darknet applies to its input read flat (see :func:`_flat_1x1`)
        self.flat_1x1 = False
        #: xnor=1: binarized weights and input (see :func:`xnor_binarize`)
        self.xnor = bool(opts.xnor)
        #: AlexeyAB's xnor=1 after calculate_binary_weights (its ``l.align_bit_weights``):
        #: the bit-packed path (:func:`xnor_bit_packed`) in inference
        self.bit_packed = self.xnor and dialect.name == "alexeyab"
        #: AlexeyAB's use_bin_output (cleared by later layers, see :meth:`clear_bin_output`)
        self.bin_output = self.bit_packed and bool(opts.bin_output)
        #: the bit path reads no input (see :func:`xnor_bit_packed`'s ``blind``)
        self.xnor_blind = (self.bit_packed and c % 32 != 0
                           and not (k == 3 and opts.padding == 1 and opts.stride_x == 1))
        #: AlexeyAB's share_index: the layer whose tensors this one uses (see :func:`_share`)
        self.shares: "int | None" = None
        self._folded: "tuple | None" = None  # (key, weight, bias) of fold()
        self._packed: "tuple | None" = None  # (key, oneDNN weight, bias) of packed()
        if initialising():
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """make_convolutional_layer's init, scale = sqrt(2/(size*size*c/groups)): pjreddie
        ``scale*rand_normal()``, AlexeyAB ``scale*rand_uniform(-1, 1)`` (a third of the
        variance; 1 for the normalize_channels activations); biases 0, BN neutral."""
        fan_in = self.weight.shape[1] * self.weight.shape[2] * self.weight.shape[3]
        scale = (2.0 / fan_in) ** 0.5
        with torch.no_grad():
            if self.dialect_name == "pjreddie":
                self.weight.normal_(0.0, scale)
            elif self.activation.startswith("normalize_channels"):
                self.weight.fill_(1.0)
            else:
                self.weight.uniform_(-scale, scale)
            self.bias.zero_()
        if self.bn is not None:
            self.bn.reset_parameters()

    def _flat_input(self, x: Tensor) -> Tensor:
        """gemm reads each group's c/groups x (h*w) input block as c/groups rows of
        out_h*out_w values: a flat prefix of it, no stride, no padding (``flat_1x1``)."""
        b, c = x.shape[0], x.shape[1]
        g = self.groups
        oh = _out_size(x.shape[2], self.padding, self.weight.shape[2], self.stride[0])
        ow = _out_size(x.shape[3], self.padding, self.weight.shape[3], self.stride[1])
        return x.reshape(b, g, -1)[:, :, :(c // g) * oh * ow].reshape(b, c, oh, ow)

    def conv(self, x: Tensor, bias: "Tensor | None" = None, binarize: "bool | None" = None
             ) -> Tensor:
        weight = self.weight
        xnor = self.xnor if binarize is None else binarize
        alt = self.pending_weight_input()
        if alt is not None and not (xnor or self.flat_1x1):
            y = AltWeightGrad.apply(x, alt, weight, (self.stride, self.padding, self.dilation,
                                                     self.groups))
            return y if bias is None else y + bias.view(1, -1, 1, 1)
        if xnor:
            weight, x = xnor_binarize(weight, x)
        if self.flat_1x1:
            return F.conv2d(self._flat_input(x), weight, bias, 1, 0, 1, self.groups)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        binarize = self.xnor
        if self.bit_packed and not self.training:
            if self.stride[0] == self.stride[1]:
                return self._bit_packed_forward(x)
            # calculate_binary_weights ran but the bit path needs stride_x == stride_y:
            # Darknet skips the binarization too (`l.xnor && (!align || train)`), a float conv
            binarize = False
        order = gemm_order.current()
        if order is not None:
            return self.darknet_order(order, x, binarize)
        if (self.xnor and not self.bit_packed and self.dialect_name == "alexeyab"
                and not self.training):
            self._check_float_xnor()
        if self.bn is None:
            y = self.mark_delta(self.conv(x, self.bias, binarize))
        else:
            y = self.mark_delta(self.conv(x, binarize=binarize))
            if self.training or y.requires_grad:
                bias = self.bias if self.bn.dialect.bn_bias_learns else self.bias.detach()
                y = self.bn(y, bias)
                if self._act_train_ is not None:  # y is BN's new output, no one else's
                    return self._act_train_(y)
            else:  # plain inference: y is ours alone, so BN and bias may work in place
                y = self.bn.inference_(y).add_(self.bias.view(1, -1, 1, 1))
        return self._act(y)

    def darknet_order(self, order: "gemm_order.DarknetOrder", x: Tensor,
                      binarize: "bool | None" = None) -> Tensor:
        """forward_convolutional_layer with the build's arithmetic (:mod:`darknet_py.gemm_order`):
        im2col + gemm into zeros, then normalize/scale + bias (or bias), then activate."""
        weight = self.weight.detach()
        if self.xnor if binarize is None else binarize:
            weight, x = xnor_binarize(weight, x)
        stride, padding, dilation = self.stride, self.padding, self.dilation
        if self.flat_1x1:
            x = self._flat_input(x)
            stride, padding, dilation = (1, 1), 0, 1
        y = order.conv2d(x.contiguous(), weight, stride, padding, dilation, self.groups)
        if self.bn is not None:
            y = order.batchnorm(y, self.bn.rolling_mean, self.bn.rolling_variance, self.bn.scales)
        return order.activate(order.add_bias(y, self.bias), self.activation)

    def _bit_packed_forward(self, x: Tensor) -> Tensor:
        """AlexeyAB's xnor inference (:func:`xnor_bit_packed`) on the weights and bias its
        ``fuse_conv_batchnorm`` makes (every Darknet command that calls
        calculate_binary_weights fuses first), then the activation (linear with bin_output)."""
        weight, bias = self._fused_tensors()
        y = xnor_bit_packed(weight, bias, x, self.stride[0], self.padding, self.xnor_blind)
        if self.bin_output:
            return y
        return self._act(y)

    def _check_float_xnor(self) -> None:
        n = self.weight.shape[0]
        if n > 1:
            raise CfgError(
                f"[convolutional] xnor=1 without calculate_binary_weights: "
                f"AlexeyAB's forward then calls binarize_weights(l.weights, l.n, l.nweights, ...), "
                f"reading and writing {n} filters of l.nweights floats each past its buffers "
                f"(undefined with filters={n} > 1); call model.calculate_binary_weights() as "
                f"Darknet's inference commands do", layer=self.index, key="xnor")

    def calculate_binary_weights(self, calculated: bool) -> None:
        """AlexeyAB's calculate_binary_weights: with it (darknet_py's default, as every
        Darknet inference command runs it after loading) an xnor layer's inference takes
        the bit-packed path; without it Darknet's network_predict takes the float path
        (binarized weights and input, zero padding, BN), defined only for filters=1."""
        if self.xnor and self.dialect_name == "alexeyab":
            self.bit_packed = calculated

    def clear_bin_output(self) -> None:
        self.bin_output = False

    def train_refusal(self) -> "str | None":
        if self.xnor and self.dialect_name == "alexeyab":
            return ("xnor=1 is not trainable in darknet_py in AlexeyAB's dialect (its CPU "
                    "training forward calls binarize_weights over l.nweights per filter, past "
                    "its buffers)")
        return None

    def _fused_tensors(self) -> "tuple[Tensor, Tensor]":
        """(weight, bias) as :meth:`fuse_batchnorm` would leave them, the layer unchanged."""
        weight, bias = self.weight.detach(), self.bias.detach()
        if self.bn is None:
            return weight, bias
        scale = self.bn.scales.detach().double()
        root = torch.sqrt(self.bn.rolling_variance.detach().double() + .00001)
        bias = (bias.double() - scale * self.bn.rolling_mean.detach().double() / root)
        factor = (scale / root).view(-1, 1, 1, 1)
        return (weight.double() * factor).to(weight.dtype), bias.to(weight.dtype)

    def fuse_batchnorm(self) -> None:
        """AlexeyAB's ``network.c:fuse_conv_batchnorm`` (what its ``detector test`` does
        after loading): per filter f, in double, ``s = scale/sqrt(var + .00001)``,
        ``bias -= scale*mean/sqrt(var + .00001)``, ``weights *= s``, each stored back as
        float; then the layer has no BN (like Darknet's, its .weights then lack it).
        A layer with a share_layer only drops its BN: the layer it shares fuses the tensors."""
        if self.shares is not None:
            self.bn = None
        if self.bn is None:
            return
        weight, bias = self._fused_tensors()
        with torch.no_grad():
            self.bias.copy_(bias)
            self.weight.copy_(weight)
        self.bn = None
    def _parameter_key(self) -> tuple:
        sources = [self.weight, self.bias] + (self.bn.weight_tensors() if self.bn else [])
        return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in sources)

    def fold(self) -> "tuple[Tensor, Tensor]":
        """(weight, bias) with the inference batchnorm folded in (:meth:`BatchNorm.fold`);
        cached until a parameter changes (storage or version)."""
        key = self._parameter_key()
        if self._folded is None or self._folded[0] != key:
            with torch.no_grad():
                if self.bn is None:
                    w, b = self.weight.detach(), self.bias.detach()
                else:
                    w, b = self.bn.fold(self.weight.detach(), self.bias.detach())
            self._folded = (key, w, b)
        return self._folded[1], self._folded[2]

    def packed(self, x: Tensor, padding: int, stride, dilation: int) -> "tuple[Tensor, Tensor]":
        """(weight, bias) of :meth:`fold` with the weight reordered once into oneDNN's
        blocked layout for this convolution (prepared for ``x``'s shape; other shapes use it
        too, measured as fast), so no call reorders it again; cached until a parameter
        changes. The dense folded copy is dropped then (one extra copy of the weights, not
        two). The values are the folded weight's, moved; oneDNN's output is channels-last."""
        key = self._parameter_key()
        if self._packed is None or self._packed[0] != key:
            w, b = self.fold()
            self._folded = None
            self._packed = None  # the old copy goes before the new one is made
            with torch.no_grad():
                pw = _REORDER_WEIGHT(w, [padding] * 2, list(stride), [dilation] * 2,
                                     self.groups, list(x.shape))
            self._packed = (key, pw, b)
        return self._packed[1], self._packed[2]

    def __getstate__(self) -> dict:
        # oneDNN's opaque tensors cannot be copied or pickled: deepcopy/torch.save drop the
        # caches (remade on the next fast forward)
        state = self.__dict__.copy()
        state["_folded"] = state["_packed"] = None
        return state

    def infer(self, x: Tensor, refs: List[Tensor], reuse: bool) -> Tensor:
        if self.xnor:  # binarized weights and input: the plain path's arithmetic
            return self.forward(x, refs)
        stride, padding, dilation = self.stride, self.padding, self.dilation
        if self.flat_1x1:  # the same flat read as conv(), then a plain 1x1 convolution
            x = self._flat_input(x)
            stride, padding, dilation = (1, 1), 0, 1
        if (_CONV_POINTWISE is not None and _REORDER_WEIGHT is not None
                and x.device.type == "cpu" and x.dtype == torch.float32
                and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
            # one oneDNN pass: conv + bias (+ leaky/relu) on the prepacked weight (1x1
            # convolutions also skip aten's slower non-oneDNN kernel)
            w, b = self.packed(x, padding, stride, dilation)
            fused = _FUSED_ACTIVATIONS.get(self.activation, ("none", []))
            y = _CONV_POINTWISE(x, w, b, [padding] * 2, list(stride), [dilation] * 2,
                                self.groups, fused[0], fused[1], None)
            if self.activation in _FUSED_ACTIVATIONS:
                return y
            return activations.activate_(y, self.activation, self.dialect_name)
        w, b = self.fold()
        y = F.conv2d(x, w, b, stride, padding, dilation, self.groups)
        return activations.activate_(y, self.activation, self.dialect_name)

    def overwrites_input_delta(self) -> bool:
        """backward_convolutional_layer (CPU) writes net.delta: AlexeyAB's col2im_cpu_ext
        zeroes it first; pjreddie's 1x1 case is a gemm with beta=0 into it."""
        return self.dialect_name == "alexeyab" or self.opts.size == 1

    def resize(self, in_shape: Shape, ref_shapes) -> Shape:
        """resize_convolutional_layer: out = (in + 2*pad - size)/stride + 1 per side."""
        o = self.opts
        if in_shape.c != self.weight.shape[1] * self.groups:
            raise ResizeError(f"layer {self.index} [convolutional] has weights for "
                              f"{self.weight.shape[1] * self.groups} input channels, got "
                              f"{in_shape.c}")
        if in_shape.h + 2 * o.padding < o.size or in_shape.w + 2 * o.padding < o.size:
            raise ResizeError(f"layer {self.index} [convolutional]: kernel size {o.size} does "
                              f"not fit the {in_shape.w}x{in_shape.h} input with padding "
                              f"{o.padding}")
        return Shape(o.filters, _out_size(in_shape.h, o.padding, o.size, o.stride_y),
                     _out_size(in_shape.w, o.padding, o.size, o.stride_x))

    def weight_tensors(self) -> List[Tensor]:
        if self.shares is not None:  # load/save_weights skip layers with a share_layer
            return []
        tensors: List[Tensor] = [self.bias]
        if self.bn is not None and not self.dontloadscales:
            tensors += self.bn.weight_tensors()
        return tensors + [self.weight]

    @torch.no_grad()
    def reject_similar_weights(self, threshold: float,
                               generator: "torch.Generator | None" = None) -> "int | None":
        """network.c reject_similar_weights on this layer (not linear): the pair of filters
        (k < j, in that order; the first of equal ones) with the largest cosine similarity
        (blas.c cosine_similarity in float32: 0 when a norm is 0); above ``threshold`` the
        first of the pair, k, gets weights ``sqrt(2/(size*size*c/groups)) * U(-1, 1)``
        (PyTorch's generator, not C's rand()), bias 0 and BN scale 1. Returns k or None."""
        if self.activation == "linear":
            return None
        w = self.weight
        n, k = w.shape[0], self.opts.size
        c = w.shape[1] * self.groups
        if self.groups != 1:
            raise ValueError(f"layer {self.index} [convolutional]: weights_reject_freq with "
                             f"groups={self.groups}: Darknet's reject_similar_weights takes "
                             f"size*size*c weights a filter and reads past this layer's")
        if n < 2:
            return None
        flat = w.detach().reshape(n, -1).double()
        gram = flat @ flat.t()
        f32 = torch.float32
        norms = torch.sqrt(torch.diagonal(gram).to(f32))
        divider = norms.view(-1, 1) * norms.view(1, -1)
        sims = torch.where(divider > 0, gram.to(f32) / divider, torch.zeros_like(divider))
        rows, cols = torch.triu_indices(n, n, 1)
        pairs = sims[rows, cols]
        pairs = torch.where(torch.isnan(pairs), torch.full_like(pairs, -torch.inf), pairs)
        best = int(torch.argmax(pairs))  # the first of the largest, in (k, j) order
        if not float(pairs[best]) > threshold:
            return None
        first = int(rows[best])
        scale = float(np.float32((2.0 / (k * k * c // self.groups)) ** 0.5))
        values = torch.rand(w[first].shape, generator=generator, dtype=f32) * 2 - 1
        w[first] = (values.double() * scale).to(w.dtype).to(w.device)
        self.bias[first] = 0.0
        if self.bn is not None:
            self.bn.scales[first] = 1.0
        return first

    def uses_adam(self, dialect) -> bool:
        """Both forks' update_convolutional_layer_gpu have ``if (a.adam)`` (pjreddie) /
        ``if (l.adam)`` (AlexeyAB: set by make_convolutional_layer from [net] adam)."""
        return True

    def ema_tensors(self) -> "List[tuple[str, Tensor, bool]]":
        """make_convolutional_layer's ``biases_ema``, ``scales_ema`` (batch_normalize) and
        ``weights_ema``; a layer with a share_layer gets none."""
        if self.shares is not None:
            return []
        tensors = [("bias", self.bias, False)]
        if self.bn is not None:
            tensors.append(("bn.scales", self.bn.scales, False))
        return tensors + [("weight", self.weight, True)]

    def flops(self, in_shape: Shape) -> float:
        return 2.0 * self.weight.numel() * self.out_shape.h * self.out_shape.w

    def describe(self, in_shape: Shape) -> str:
        o = self.opts
        groups = f"{o.groups:>3}" if o.groups > 1 else ""
        return f"{o.filters:>5} {groups}{o.size:>2} x{o.size:>2} /{o.stride:>2}"

    def table_line(self, in_shape: Shape) -> str:
        # make_convolutional_layer's fprintf (pjreddie): groups are not shown
        o = self.opts
        return (f"conv  {o.filters:5d} {o.size:2d} x{o.size:2d} /{o.stride:2d}  "
                f"{table_shape(in_shape)}   ->  {table_shape(self.out_shape)}  "
                f"{self.flops(in_shape) / 1e9:5.3f} BFLOPs")


@register("convolutional", "conv", options=ConvolutionalOptions)
def build(ctx: BuildContext) -> ConvolutionalLayer:
    r = ctx.reader
    o = r.read(ConvolutionalOptions)
    for key, default in _UNSUPPORTED.items():
        r.check(getattr(o, key) == default,
                f"{key}={getattr(o, key)} is not supported by darknet_py", key)
    r.check(not o.xnor or ctx.dialect.name == "pjreddie" or o.dilation == 1,
            f"xnor=1 with dilation={o.dilation} is not supported by darknet_py (AlexeyAB's "
            f"bit-packed path ignores the dilation, its float path applies it)", "dilation")
    r.check(o.filters > 0, f"filters must be > 0, got {o.filters}", "filters")
    r.check(o.size > 0, f"size must be > 0, got {o.size}", "size")
    r.check(o.stride_x > 0 and o.stride_y > 0, f"stride must be > 0, got {o.stride}", "stride")
    r.check(o.padding >= 0, f"padding must be >= 0, got {o.padding}", "padding")
    r.check(o.dilation >= 1, f"dilation must be >= 1, got {o.dilation}", "dilation")
    c = ctx.input_shape.c
    r.check(o.groups > 0 and c % o.groups == 0 and o.filters % o.groups == 0,
            f"groups={o.groups} must divide the input channels ({c}) and filters ({o.filters})",
            "groups")
    h_in, w_in = ctx.input_shape.h, ctx.input_shape.w
    r.check(h_in + 2 * o.padding >= o.size and w_in + 2 * o.padding >= o.size,
            f"kernel size {o.size} does not fit the {w_in}x{h_in} input with padding {o.padding}",
            "size")
    n_weights = o.filters * (c // o.groups) * o.size * o.size
    ctx.check_weights(n_weights, "filters")
    ctx.check_elements(c * (h_in + 2 * o.padding) * (w_in + 2 * o.padding),
                       "padded input", "padding" if r.has("padding") else "pad")
    out = Shape(o.filters, _out_size(h_in, o.padding, o.size, o.stride_y),
                _out_size(w_in, o.padding, o.size, o.stride_x))
    if o.dilation > 1:
        # AlexeyAB sizes the output without the dilation but runs im2col_cpu_ext with
        # padding*dilation: the two agree exactly when (dilation-1)*(2*padding-size+1) == 0
        # (pad=1 with an odd size, as every dilated conv of its corpus); otherwise gemm reads
        # the workspace with another row length than im2col wrote it
        span = o.dilation * (o.size - 1) + 1
        pad = o.padding * o.dilation
        im2col_h = (h_in + 2 * pad - span) // o.stride_y + 1
        im2col_w = (w_in + 2 * pad - span) // o.stride_x + 1
        r.check((im2col_h, im2col_w) == (out.h, out.w),
                f"dilation={o.dilation} with size={o.size} and padding={o.padding}: AlexeyAB's "
                f"im2col (padding*dilation) fills {im2col_w}x{im2col_h} columns where it "
                f"allocates a {out.w}x{out.h} output and reads its workspace as such; "
                f"not supported (use pad=1 with an odd size)", "dilation")
    layer = ConvolutionalLayer(ctx.index, ctx.input_shape, check_shape(ctx, out), o, ctx.dialect)
    layer.flat_1x1 = _flat_1x1(ctx, o, out)
    if layer.xnor_blind:
        warnings.warn(CfgWarning(
            f"{r.section.file}:{r.section.line}: layer {ctx.index} [convolutional] xnor=1 on "
            f"{c} channels (not a multiple of 32) with size={o.size}, padding={o.padding}, "
            f"stride={o.stride_x}: AlexeyAB's bit-packed im2col handles only 3x3/stride 1/"
            f"padding 1 there (\"Error: is no non-optimized version\") and reads no input: "
            f"every output is -mean|w| * sum(sign w) + bias, as Darknet's"))
    if r.has("share_index"):
        _share(ctx, layer, o.share_index)
    return layer


def _share(ctx: BuildContext, layer: ConvolutionalLayer, share_index: int) -> None:
    """AlexeyAB's ``share_index`` (parse_convolutional: absolute when >= 0, else relative to
    this layer): make_convolutional_layer points this layer's weights and biases (and, with
    batch_normalize, its scales, rolling mean and variance) at that layer's, after checking
    that size, weight count, channels and filters match; load/save_weights skip the layer."""
    r = ctx.reader
    index = ctx.layer_index(share_index, "share_index")
    owner = ctx.layers[index]
    r.check(isinstance(owner, ConvolutionalLayer),
            f"share_index={share_index} names layer {index}, a [{owner.kind}], not a "
            f"[convolutional]", "share_index")
    r.check(owner.weight.shape == layer.weight.shape and owner.opts.size == layer.opts.size,
            f"share_index={share_index}: layer {index}'s weights are "
            f"{tuple(owner.weight.shape)}, this layer's {tuple(layer.weight.shape)} (Darknet: "
            f"\"Layer size, nweights, channels or filters don't match for the share_layer\")",
            "share_index")
    r.check(layer.bn is None or owner.bn is not None,
            f"share_index={share_index}: this layer has batch_normalize=1 but layer {index} "
            f"has none (Darknet would use its missing BN scales)", "share_index")
    layer.shares = index
    layer.weight = owner.weight
    layer.bias = owner.bias
    if layer.bn is not None:
        layer.bn = owner.bn


def _flat_1x1(ctx: BuildContext, o: ConvolutionalOptions, out: Shape) -> bool:
    """Whether Darknet skips im2col for this 1x1 kernel although it has a stride or padding
    (forward_convolutional_layer: ``if (l.size == 1) b = im;`` in pjreddie, with
    ``&& l.stride == 1`` in AlexeyAB). gemm then reads the input flat as if it had the
    output's size, ignoring stride and padding: a prefix of it (all of it when the sizes
    are equal); past its end when the output is larger (padding), which is refused."""
    i = ctx.input_shape
    skips = o.size == 1 and (ctx.dialect.conv1x1_skips_im2col_any_stride or o.stride_x == 1)
    if not skips or (o.padding == 0 and o.stride_x == 1 and o.stride_y == 1):
        return False
    ctx.reader.check(out.h * out.w <= i.h * i.w,
                     f"a 1x1 kernel with padding={o.padding} makes a {out.w}x{out.h} output from "
                     f"the {i.w}x{i.h} input, but Darknet skips im2col for 1x1 kernels and would "
                     f"read past its input (use padding=0)", "padding")
    return True
