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
from .base import BuildContext, DarknetLayer, Shape
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


class _TrainNormalize(torch.autograd.Function):
    """x -> (x - batch mean) / batch std as forward_batchnorm_layer in train mode, whose
    backward is Darknet's mean_delta_cpu / variance_delta_cpu / normalize_delta_cpu (not the
    derivative of the forward: those use var+1e-5 where the forward used the dialect's eps,
    and the biased 2/N where the forward's variance was unbiased)."""

    @staticmethod
    def forward(ctx, x: Tensor, mean: Tensor, var: Tensor, dialect: Dialect) -> Tensor:
        ctx.save_for_backward(x, mean, var)
        ctx.dialect = dialect
        return normalize(x, mean, var, dialect)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, mean, var = ctx.saved_tensors
        n = x.shape[0] * x.shape[2] * x.shape[3]
        centred = x - _c(mean)
        mean_delta = grad.sum(dim=(0, 2, 3)) * (-1.0 / torch.sqrt(var + DELTA_EPS))
        var_delta = ((grad * centred).sum(dim=(0, 2, 3))
                     * (-0.5 * torch.pow(var + DELTA_EPS, -1.5)))
        if ctx.dialect.bn_delta_eps_inside_sqrt:
            direct = 1.0 / torch.sqrt(var + DELTA_EPS)
        else:
            direct = 1.0 / (torch.sqrt(var) + DELTA_EPS)
        dx = (grad * _c(direct) + _c(var_delta) * 2.0 * centred / n + _c(mean_delta) / n)
        return dx, None, None, None


class BatchNorm(nn.Module):
    """Scales + rolling statistics of one Darknet BN (the bias lives with the layer)."""

    def __init__(self, channels: int, dialect: Dialect) -> None:
        super().__init__()
        self.dialect = dialect
        self.scales = nn.Parameter(torch.ones(channels))
        self.register_buffer("rolling_mean", torch.zeros(channels))
        self.register_buffer("rolling_variance", torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            with torch.no_grad():
                mean, var = batch_statistics(x)
                m = self.dialect.bn_rolling_momentum
                self.rolling_mean.mul_(1 - m).add_(m * mean)
                self.rolling_variance.mul_(1 - m).add_(m * var)
            return _TrainNormalize.apply(x, mean, var, self.dialect) * _c(self.scales)
        mean, var = self.rolling_mean, self.rolling_variance
        return normalize(x, mean, var, self.dialect) * _c(self.scales)

    def inference_(self, x: Tensor) -> Tensor:
        """Inference BN *in place* on a tensor nobody else holds (no autograd): the same
        operations in the same order as :meth:`forward`, without three temporaries."""
        if self.dialect.bn_eps_inside_sqrt:
            std = torch.sqrt(self.rolling_variance + self.dialect.bn_eps)
        else:
            std = torch.sqrt(self.rolling_variance) + self.dialect.bn_eps
        return x.sub_(_c(self.rolling_mean)).div_(_c(std)).mul_(_c(self.scales))

    def weight_tensors(self) -> List[Tensor]:
        return [self.scales, self.rolling_mean, self.rolling_variance]


class BatchnormLayer(DarknetLayer):
    """``[batchnorm]``: a standalone BN over the previous layer's output, then its biases
    (``forward_batchnorm_layer``: normalize, scale_bias, add_bias).

    .weights order (``load_batchnorm_weights``): AlexeyAB biases, scales, rolling_mean,
    rolling_variance; pjreddie scales, rolling_mean, rolling_variance (its biases stay 0).
    """

    kind = "batchnorm"
    ab_forward_zeroes_delta = True
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

    def table_line(self, in_shape: Shape) -> str:
        return f"Batch Normalization Layer: {in_shape.w} x {in_shape.h} x {in_shape.c} image"


@register("batchnorm")
def build(ctx: BuildContext) -> BatchnormLayer:
    return BatchnormLayer(ctx.index, ctx.input_shape, ctx.dialect)
