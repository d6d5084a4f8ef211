"""Darknet's batch normalisation, shared by [convolutional] and the [batchnorm] section.

Inference (``blas.c:normalize_cpu``) uses the rolling statistics with the
dialect's epsilon -- pjreddie ``(x-mean)/(sqrt(var)+1e-6)``, AlexeyAB
``(x-mean)/sqrt(var+1e-5)`` -- never PyTorch's ``sqrt(var+1e-5)`` default for
pjreddie models. Training uses the batch mean and the *unbiased* batch variance
and updates the rolling statistics with the dialect's momentum.

Training has two arithmetic modes with the same formulas. By default PyTorch's fast
reductions compute them (:class:`_FusedTrainBN`: batch statistics by
``batch_norm_update_stats``, a one-pass normalisation, the fused backward); inside
:func:`exact` (what ``darknet-py compare`` uses) every per-channel sum is Darknet's
sequential float32 loop, bit for bit, and the backward's arithmetic is double, as the C's
(:class:`_TrainBN`). The two differ by float rounding only (Darknet's own sequential sums
are the less exact ones).

    >>> import torch
    >>> from darknet_py.dialect import PJREDDIE
    >>> x = torch.ones(1, 1, 2, 2) * 3
    >>> normalize(x, torch.tensor([1.0]), torch.tensor([4.0]), PJREDDIE).flatten()[0].item()
    0.9999995231628418
"""
from __future__ import annotations

import contextlib
from typing import Iterator, List

import numpy as np
import torch
from torch import Tensor, nn

from ..dialect import Dialect
from .base import BuildContext, DarknetLayer, Shape, filled
from .registry import register


def _c(v: Tensor) -> Tensor:
    return v.view(1, -1, 1, 1)


def normalize(x: Tensor, mean: Tensor, var: Tensor, dialect: Dialect) -> Tensor:
    """(x - mean) / std with Darknet's epsilon placement, per channel of NCHW ``x``."""
    if dialect.bn_eps_inside_sqrt:
        return (x - _c(mean)) / _c(torch.sqrt(var + dialect.bn_eps))
    return (x - _c(mean)) / (_c(torch.sqrt(var)) + dialect.bn_eps)


#: True inside :func:`exact`: training batchnorm's backward sums per channel in Darknet's
#: order with its arithmetic in double (:class:`_TrainBN`); False (default): the fused
#: statistics and backward (:class:`_FusedTrainBN`), whose rounding differs from Darknet's
#: by float noise.
EXACT = False


@contextlib.contextmanager
def exact(enabled: bool = True) -> Iterator[None]:
    """Within this block, training batchnorm reproduces Darknet's arithmetic order
    (sequential float32 sums, bit for bit in the forward; double factors in the
    backward), as ``darknet-py compare`` checks it; slower than the default. Restores the previous mode on exit."""
    global EXACT
    before = EXACT
    EXACT = bool(enabled)
    try:
        yield
    finally:
        EXACT = before


def _sequential(x: Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32


#: positions per chunk x channels: a chunk's buffer stays in the CPU cache (256 KiB)
_CHUNK = 65536


def channel_sums(x: Tensor, centre: "Tensor | None" = None) -> Tensor:
    """Per-channel sum of NCHW ``x`` (with ``centre``, per channel: of ``(x - centre)**2``,
    each a float32 difference and square) in Darknet's order on a CPU float32 tensor: one
    float32 running sum per channel over image, then position, as mean_cpu/variance_cpu
    loop (bit for bit; ``x.sum`` elsewhere).

    Without a transposed copy of ``x``: chunks of positions go, channels along a row, into
    a small (positions+1, channels) buffer whose first row holds the running sums, and
    numpy's ``add.reduce`` along axis 0 of a C-contiguous array adds row after row into one
    accumulator per column (sequentially, unlike its pairwise sum along a contiguous axis;
    a single channel gets a zero second column to stay in that case). A channels-last
    ``x`` is already in rows of channels, in Darknet's order of positions."""
    if not _sequential(x):
        return (x if centre is None else (x - _c(centre)) ** 2).sum(dim=(0, 2, 3))
    b, c = x.shape[0], x.shape[1]
    hw = x.shape[2] * x.shape[3]
    cols = max(c, 2)
    carry = np.zeros(cols, np.float32)
    if b == 0 or hw == 0:
        return torch.from_numpy(carry[:c].copy())
    x = x.detach()
    k = max(16, _CHUNK // c)
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        rows_of = [x.permute(0, 2, 3, 1).numpy().reshape(b * hw, c)]
        transpose = False
    else:
        rows_of = list(x.contiguous().numpy().reshape(b, c, hw))
        transpose = True
    buf = np.zeros((k + 1, cols), np.float32)
    mid = None if centre is None else centre.detach().to(torch.float32).cpu().numpy()
    for block in rows_of:
        for start in range(0, block.shape[1 if transpose else 0], k):
            chunk = block[:, start:start + k].T if transpose else block[start:start + k]
            rows = buf[:chunk.shape[0] + 1]
            rows[0] = carry
            if mid is not None:
                part = rows[1:, :c]
                np.subtract(chunk, mid, out=part)
                np.multiply(part, part, out=part)
            else:
                rows[1:, :c] = chunk
            carry = np.add.reduce(rows, axis=0)
    return torch.from_numpy(carry[:c].copy())


def batch_statistics(x: Tensor) -> "tuple[Tensor, Tensor]":
    """Darknet's mean_cpu/variance_cpu: mean over (N,H,W), variance divided by N*H*W-1
    (each a float sum times a float ``1./n``)."""
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = channel_sums(x) * float(np.float32(1.0 / n))
    var = channel_sums(x, centre=mean) * float(np.float32(1.0 / max(n - 1, 1)))
    return mean, var


def fast_batch_statistics(x: Tensor) -> "tuple[Tensor, Tensor]":
    """Darknet's batch statistics (mean over (N,H,W), the *unbiased* variance) by
    PyTorch's vectorised reductions: :func:`batch_statistics` up to float rounding (its
    sums are more exact than Darknet's sequential ones), about 10x faster on a CPU."""
    x = x.detach()
    c = x.shape[1]
    if x.numel() == 0 or x.shape[0] * x.shape[2] * x.shape[3] < 2:
        return batch_statistics(x)
    mean = torch.zeros(c, dtype=x.dtype, device=x.device)
    var = torch.zeros(c, dtype=x.dtype, device=x.device)
    # with momentum 1 the "running" buffers receive the batch mean and unbiased variance
    torch.batch_norm_update_stats(x, mean, var, 1.0)
    return mean, var


#: the epsilon of backward_batchnorm_layer's mean/variance deltas (both forks)
DELTA_EPS = 1e-5


def _seq(x: Tensor) -> Tensor:
    """(B, C, H, W) -> per-channel sums in Darknet's loop order (see :func:`channel_sums`)."""
    return channel_sums(x)


def _bias_sums(x: Tensor) -> Tensor:
    """backward_bias: per image and channel sum_array over the plane, added image by image."""
    if not _sequential(x):
        return x.sum(dim=(0, 2, 3))
    planes = x.detach().reshape(x.shape[0], x.shape[1], -1).numpy()
    per_image = np.add.accumulate(planes, axis=2, dtype=np.float32)[:, :, -1]
    return torch.from_numpy(np.add.accumulate(per_image, axis=0, dtype=np.float32)[-1].copy())


class _TrainBN(torch.autograd.Function):
    """x -> scales * (x - batch mean) / batch std (+ bias), forward_batchnorm_layer in
    train mode; the backward is Darknet's backward_batchnorm_layer, not the derivative of
    the forward: backward_bias / backward_scale_cpu sums, then mean_delta_cpu,
    variance_delta_cpu and normalize_delta_cpu, which use var+1e-5 where the forward used
    the dialect's epsilon and the biased 2/N where the forward's variance was unbiased
    (their sums in Darknet's order, their arithmetic in double as the C's)."""

    @staticmethod
    def forward(ctx, x: Tensor, mean: Tensor, var: Tensor, scales: Tensor,
                bias: "Tensor | None", dialect: Dialect,
                last: "BatchNorm | None" = None) -> Tensor:  # type: ignore[override]
        x_norm = normalize(x, mean, var, dialect)
        ctx.save_for_backward(x, mean, var, scales, x_norm)
        ctx.last = last
        ctx.dialect = dialect
        ctx.has_bias = bias is not None
        out = x_norm * _c(scales)
        return out + _c(bias) if bias is not None else out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, mean, var, scales, x_norm = ctx.saved_tensors
        if ctx.last is not None:  # the statistics of the BN's last forward (see BatchNorm)
            mean, var = ctx.last.last_stats
        grad = grad.contiguous()
        grad_bias = _bias_sums(grad) if ctx.has_bias and ctx.needs_input_grad[4] else None
        grad_scales = _seq(grad * x_norm) if ctx.needs_input_grad[3] else None
        d = grad * _c(scales)  # scale_bias(l.delta, l.scales)
        n = x.shape[0] * x.shape[2] * x.shape[3]
        v = var.double() + np.float32(DELTA_EPS)
        mean_delta = _store(_seq(d).double() * (-1.0 / torch.sqrt(v)), x)
        centred = x - _c(mean)
        var_delta = _store(_seq(d * centred).double()
                         * (-0.5 * torch.pow(_store(v, x), np.float32(-1.5)).double()), x)
        if ctx.dialect.bn_delta_eps_inside_sqrt:
            direct = 1.0 / torch.sqrt(v)
        else:
            direct = 1.0 / (torch.sqrt(var.double()) + np.float32(DELTA_EPS))
        dx = (d.double() * _c(direct) + _c(var_delta.double()) * 2.0 * centred.double() / n
              + _c(mean_delta.double()) / n)
        return _store(dx, x), None, None, grad_scales, grad_bias, None, None


def _store(x: Tensor, like: Tensor) -> Tensor:
    """A double intermediate stored as the C stores it: in a float (float32) array when
    the net runs in float32; a float64 twin (compare's noise floor) keeps its precision."""
    return x.to(like.dtype)


class _FusedTrainBN(torch.autograd.Function):
    """The default training batchnorm: :class:`_TrainBN`'s forward up to float rounding
    (batch statistics by PyTorch's reductions, :func:`fast_batch_statistics`; the
    dialect's epsilon and unbiased variance), and Darknet's backward
    (backward_batchnorm_layer: var+1e-5 and the biased 2/N, not the derivative of the
    forward) by PyTorch's fused batchnorm backward, in any memory layout.

    Forward: out = (x - mean) / std * scales (+ bias), Darknet's operations in its order,
    in place on one new tensor; x is saved. Backward: with d = g*scales, c = x - mean and
    istd = 1/sqrt(var+1e-5), Darknet's mean_delta, variance_delta and normalize_delta give
    dx = d*istd - istd*sum(d)/n - c*istd^3*sum(d*c)/n, which is exactly PyTorch's training
    batchnorm backward (``native_batch_norm_backward``) with that mean, invstd istd and
    weight scales; AlexeyAB's normalize_delta divides by sqrt(var)+1e-5 instead of istd's
    root, added as g*scales*(1/(sqrt(var)+1e-5) - istd). dscales = sum(g*c)/std
    (backward_scale_cpu's sum of g*x_norm), dbias = sum(g). Also returns (mean, var)."""

    @staticmethod
    def forward(ctx, x: Tensor, scales: Tensor, bias: "Tensor | None",
                dialect: Dialect):  # type: ignore[override]
        mean, var = fast_batch_statistics(x)
        if dialect.bn_eps_inside_sqrt:
            std = torch.sqrt(var + dialect.bn_eps)
        else:
            std = torch.sqrt(var) + dialect.bn_eps
        # (x - mean) / std * scales + bias in one pass (PyTorch's inference batchnorm
        # with std**2 as the variance and no epsilon: within an ulp of Darknet's steps)
        out = torch.batch_norm(x, scales, bias, mean, std * std, False, 0.0, 0.0, False)
        ctx.save_for_backward(x, mean, var, scales, std)
        ctx.dialect = dialect
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    def backward(ctx, grad: Tensor, _mean: Tensor, _var: Tensor):  # type: ignore[override]
        x, mean, var, scales, std = ctx.saved_tensors
        v = var.double() + np.float32(DELTA_EPS)
        istd = 1.0 / torch.sqrt(v)
        need = ctx.needs_input_grad
        dx, dscales, dbias = torch.ops.aten.native_batch_norm_backward(
            grad, x, scales, None, None, mean, _store(istd, x), True,
            DELTA_EPS, [need[0], need[1], need[2]])
        if need[1]:
            # PyTorch's weight gradient is sum(g*c)*istd; Darknet's is sum(g*c)/std
            dscales = _store(dscales.double() / (istd * std.double()), x)
        if need[0] and not ctx.dialect.bn_delta_eps_inside_sqrt:
            direct = 1.0 / (torch.sqrt(var.double()) + np.float32(DELTA_EPS))
            dx.addcmul_(grad, _c(_store(scales.double() * (direct - istd), x)))
        return (dx if need[0] else None, dscales if need[1] else None,
                dbias if need[2] else None, None)


class BatchNorm(nn.Module):
    """Scales + rolling statistics of one Darknet BN (the bias lives with the layer)."""

    def __init__(self, channels: int, dialect: Dialect,
                 rolling_momentum: "float | None" = None) -> None:
        super().__init__()
        self.dialect = dialect
        #: weight of the batch statistics in the rolling ones (default: the dialect's)
        self.rolling_momentum = (dialect.bn_rolling_momentum if rolling_momentum is None
                                 else rolling_momentum)
        self.scales = nn.Parameter(filled(channels, value=1.0))
        self.register_buffer("rolling_mean", filled(channels))
        self.register_buffer("rolling_variance", filled(channels, value=1.0))
        #: a recurrent layer's inner BN runs once per step on one l.mean/l.variance: its
        #: backward of every step reads the statistics of the last step's forward (x and
        #: x_norm are per step). True: the same here (the last batch statistics are kept)
        self.backward_reads_last_stats = False
        self.last_stats: "tuple[Tensor, Tensor] | None" = None

    def reset_parameters(self) -> None:
        """Neutral: scales 1, rolling mean 0, rolling variance 1."""
        with torch.no_grad():
            self.scales.fill_(1.0)
            self.rolling_mean.zero_()
            self.rolling_variance.fill_(1.0)

    def forward(self, x: Tensor, bias: "Tensor | None" = None) -> Tensor:
        """scales * normalize(x) (+ ``bias``, the owning layer's, added after as Darknet's
        add_bias): batch statistics in training, rolling ones otherwise."""
        if self.training:
            last = None
            if EXACT or self.backward_reads_last_stats:
                # the recurrent layers' inner BN backward reads the last step's statistics:
                # only the exact Function carries them
                with torch.no_grad():
                    mean, var = batch_statistics(x)
                if self.backward_reads_last_stats:
                    self.last_stats, last = (mean, var), self
                out = _TrainBN.apply(x, mean, var, self.scales, bias, self.dialect, last)
            else:
                out, mean, var = _FusedTrainBN.apply(x, self.scales, bias, self.dialect)
            with torch.no_grad():
                m = self.rolling_momentum
                self.rolling_mean.mul_(1 - m).add_(m * mean)
                self.rolling_variance.mul_(1 - m).add_(m * var)
            return out
        mean, var = self.rolling_mean, self.rolling_variance
        out = normalize(x, mean, var, self.dialect) * _c(self.scales)
        return out + _c(bias) if bias is not None else out

    def std(self) -> Tensor:
        """The divisor of inference BN, with the dialect's epsilon placement."""
        if self.dialect.bn_eps_inside_sqrt:
            return torch.sqrt(self.rolling_variance + self.dialect.bn_eps)
        return torch.sqrt(self.rolling_variance) + self.dialect.bn_eps

    def inference_(self, x: Tensor) -> Tensor:
        """Inference BN *in place* on a tensor nobody else holds (no autograd): the same
        operations in the same order as :meth:`forward`, without three temporaries."""
        return x.sub_(_c(self.rolling_mean)).div_(_c(self.std())).mul_(_c(self.scales))

    def fold(self, weight: Tensor, bias: Tensor) -> "tuple[Tensor, Tensor]":
        """(weight, bias) of a layer followed by this BN and then + bias, as one affine map:
        ``weight * s`` and ``bias - mean * s`` with ``s = scales / std`` per output channel
        (dimension 0 of ``weight``), computed in float64 and rounded once."""
        s = self.scales.double() / self.std().double()
        shape = (-1,) + (1,) * (weight.dim() - 1)
        w = (weight.double() * s.view(shape)).to(weight.dtype).contiguous()
        b = (bias.double() - self.rolling_mean.double() * s).to(bias.dtype)
        return w, b

    def weight_tensors(self) -> List[Tensor]:
        return [self.scales, self.rolling_mean, self.rolling_variance]


def has_batchnorm(layer: nn.Module) -> bool:
    """Whether ``layer`` (or an inner layer of it) normalizes with a :class:`BatchNorm`."""
    return any(isinstance(m, BatchNorm) for m in layer.modules())


class BatchnormLayer(DarknetLayer):
    """``[batchnorm]``: a standalone BN over the previous layer's output, then its biases
    (``forward_batchnorm_layer``: normalize, scale_bias, add_bias).

    .weights order (``load_batchnorm_weights``): AlexeyAB biases, scales, rolling_mean,
    rolling_variance; pjreddie scales, rolling_mean, rolling_variance (its biases stay 0).
    """

    kind = "batchnorm"
    delta_comparable = False  # backward leaves the input's gradient in l.delta
    ab_forward_zeroes_delta = True
    ab_train = True
    elementwise = True

    def __init__(self, index: int, shape: Shape, dialect: Dialect) -> None:
        super().__init__(index, shape)
        self.bn = BatchNorm(shape.c, dialect)
        self.bias = nn.Parameter(torch.zeros(shape.c))
        self.saves_bias = dialect.batchnorm_layer_saves_biases

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        return self.bn(x) + _c(self.bias)

    def weight_tensors(self) -> List[Tensor]:
        return ([self.bias] if self.saves_bias else []) + self.bn.weight_tensors()

    def reset_parameters(self) -> None:
        self.bn.reset_parameters()

    def table_line(self, in_shape: Shape) -> str:
        return f"Batch Normalization Layer: {in_shape.w} x {in_shape.h} x {in_shape.c} image"


@register("batchnorm")
def build(ctx: BuildContext) -> BatchnormLayer:
    return BatchnormLayer(ctx.index, ctx.input_shape, ctx.dialect)
