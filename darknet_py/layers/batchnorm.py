"""Darknet's batch normalisation, shared by [convolutional] and the [batchnorm] section.

Inference (``blas.c:normalize_cpu``) uses the rolling statistics with the
dialect's epsilon -- pjreddie ``(x-mean)/(sqrt(var)+1e-6)``, AlexeyAB
``(x-mean)/sqrt(var+1e-5)`` -- never PyTorch's ``sqrt(var+1e-5)`` default for
pjreddie models. Training uses the batch mean and the *unbiased* batch variance
and updates the rolling statistics with the dialect's momentum.

    >>> import torch
    >>> from darknet_py.dialect import PJREDDIE
    >>> x = torch.ones(1, 1, 2, 2) * 3
    >>> normalize(x, torch.tensor([1.0]), torch.tensor([4.0]), PJREDDIE).flatten()[0].item()
    0.9999995231628418
"""
from __future__ import annotations

from typing import List

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


#: sum per channel in Darknet's order (one float32 running sum over batch, then
#: position, as mean_cpu/variance_cpu loop) on the CPU; False: PyTorch's faster reductions,
#: whose better rounding moves train-mode outputs ~1e-5 away from Darknet's after a few layers
SEQUENTIAL_SUMS = True


def channel_sums(x: Tensor) -> Tensor:
    """Per-channel sum of NCHW ``x``: Darknet's sequential float32 loop (CPU float32 with
    :data:`SEQUENTIAL_SUMS`), else ``x.sum``."""
    if not (SEQUENTIAL_SUMS and x.device.type == "cpu" and x.dtype == torch.float32):
        return x.sum(dim=(0, 2, 3))
    rows = x.detach().transpose(0, 1).reshape(x.shape[1], -1).numpy()
    if rows.shape[1] == 0:
        return x.new_zeros(x.shape[1])
    return torch.from_numpy(np.add.accumulate(rows, axis=1, dtype=np.float32)[:, -1].copy())


def batch_statistics(x: Tensor) -> "tuple[Tensor, Tensor]":
    """Darknet's mean_cpu/variance_cpu: mean over (N,H,W), variance divided by N*H*W-1
    (each a float sum times a float ``1./n``)."""
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = channel_sums(x) * float(np.float32(1.0 / n))
    var = channel_sums((x - _c(mean)) ** 2) * float(np.float32(1.0 / max(n - 1, 1)))
    return mean, var


#: the epsilon of backward_batchnorm_layer's mean/variance deltas (both forks)
DELTA_EPS = 1e-5


def _seq(x: Tensor) -> Tensor:
    """(B, C, H, W) -> per-channel sums in Darknet's loop order (see :func:`channel_sums`)."""
    return channel_sums(x)


def _bias_sums(x: Tensor) -> Tensor:
    """backward_bias: per image and channel sum_array over the plane, added image by image."""
    if not (SEQUENTIAL_SUMS and x.device.type == "cpu" and x.dtype == torch.float32):
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
        mean_delta = _f32(_seq(d).double() * (-1.0 / torch.sqrt(v)))
        centred = x - _c(mean)
        var_delta = _f32(_seq(d * centred).double()
                         * (-0.5 * torch.pow(v.float(), np.float32(-1.5)).double()))
        if ctx.dialect.bn_delta_eps_inside_sqrt:
            direct = 1.0 / torch.sqrt(v)
        else:
            direct = 1.0 / (torch.sqrt(var.double()) + np.float32(DELTA_EPS))
        dx = (d.double() * _c(direct) + _c(var_delta.double()) * 2.0 * centred.double() / n
              + _c(mean_delta.double()) / n)
        return _f32(dx), None, None, grad_scales, grad_bias, None, None


def _f32(x: Tensor) -> Tensor:
    return x.to(torch.float32)


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
            with torch.no_grad():
                mean, var = batch_statistics(x)
                m = self.rolling_momentum
                self.rolling_mean.mul_(1 - m).add_(m * mean)
                self.rolling_variance.mul_(1 - m).add_(m * var)
            last = None
            if self.backward_reads_last_stats:
                self.last_stats, last = (mean, var), self
            return _TrainBN.apply(x, mean, var, self.scales, bias, self.dialect, last)
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
