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


def batch_statistics(x: Tensor) -> "tuple[Tensor, Tensor]":
    """Darknet's mean_cpu/variance_cpu: mean over (N,H,W), variance divided by N*H*W-1."""
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.mean(dim=(0, 2, 3))
    var = ((x - _c(mean)) ** 2).sum(dim=(0, 2, 3)) / max(n - 1, 1)
    return mean, var


class BatchNorm(nn.Module):
    """Scales + rolling statistics of one Darknet BN (the bias lives with the layer)."""

    def __init__(self, channels: int, dialect: Dialect) -> None:
        super().__init__()
        self.dialect = dialect
        self.scales = nn.Parameter(filled(channels, value=1.0))
        self.register_buffer("rolling_mean", filled(channels))
        self.register_buffer("rolling_variance", filled(channels, value=1.0))

    def reset_parameters(self) -> None:
        """Neutral: scales 1, rolling mean 0, rolling variance 1."""
        with torch.no_grad():
            self.scales.fill_(1.0)
            self.rolling_mean.zero_()
            self.rolling_variance.fill_(1.0)

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            mean, var = batch_statistics(x)
            with torch.no_grad():
                m = self.dialect.bn_rolling_momentum
                self.rolling_mean.mul_(1 - m).add_(m * mean.detach())
                self.rolling_variance.mul_(1 - m).add_(m * var.detach())
        else:
            mean, var = self.rolling_mean, self.rolling_variance
        return normalize(x, mean, var, self.dialect) * _c(self.scales)

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


class BatchnormLayer(DarknetLayer):
    """``[batchnorm]``: a standalone BN over the previous layer's output.

    .weights order (``load_batchnorm_weights``): scales, rolling_mean, rolling_variance.
    Darknet's standalone BN has no bias.
    """

    kind = "batchnorm"

    def __init__(self, index: int, shape: Shape, dialect: Dialect) -> None:
        super().__init__(index, shape)
        self.bn = BatchNorm(shape.c, dialect)

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        return self.bn(x)

    def weight_tensors(self) -> List[Tensor]:
        return self.bn.weight_tensors()

    def reset_parameters(self) -> None:
        self.bn.reset_parameters()

    def table_line(self, in_shape: Shape) -> str:
        return f"Batch Normalization Layer: {in_shape.w} x {in_shape.h} x {in_shape.c} image"


@register("batchnorm")
def build(ctx: BuildContext) -> BatchnormLayer:
    return BatchnormLayer(ctx.index, ctx.input_shape, ctx.dialect)
