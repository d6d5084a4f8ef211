"""``[normalization]`` / ``[lrn]`` (``normalization_layer.c``): local response norm.

``output = input * norms^(-beta)`` with, per pixel, ``norms`` built the way
``forward_normalization_layer`` builds it: channel 0 starts at
``kappa + alpha * sum(sq[0 .. size/2 - 1])``, and channel k copies channel
k-1's value, subtracts ``alpha*sq[k - (size-1)/2 - 1]`` (if >= 0) and adds
``alpha*sq[k + size/2]`` (if < c), with ``sq = input^2``. This running window
is Darknet's own (for an odd size it never adds channel ``size/2`` but later
subtracts it); it is reproduced step by step, in float, in Darknet's order.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=1\\nheight=1\\nchannels=1\\n"
    ...                         "[lrn]\\nsize=3\\nalpha=1\\nbeta=1\\nkappa=1\\n"))
    >>> net(torch.full((1, 1, 1, 1), 2.0)).flatten().tolist()
    [0.4000000059604645]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np
import torch
from torch import Tensor

from ..cfg.options import option
from .base import BuildContext, DarknetLayer, Shape
from .registry import register


@dataclass
class NormalizationOptions:
    alpha: float = option(0.0001)
    beta: float = option(0.75)
    kappa: float = option(1.0)
    size: int = option(5)


class NormalizationLayer(DarknetLayer):
    kind = "normalization"
    elementwise = True

    def __init__(self, index: int, out_shape: Shape, opts: NormalizationOptions) -> None:
        super().__init__(index, out_shape)
        self.opts = opts
        self.size = opts.size
        # the layer struct keeps them as floats
        self.alpha = float(np.float32(opts.alpha))
        self.beta = float(np.float32(opts.beta))
        self.kappa = float(np.float32(opts.kappa))

    def norms(self, x: Tensor) -> Tensor:
        """Darknet's ``layer.norms`` for input ``x`` (before the power)."""
        c = x.shape[1]
        sq = x * x
        alpha = torch.tensor(self.alpha, dtype=x.dtype, device=x.device)
        norm = torch.full_like(x[:, 0], self.kappa)
        for k in range(self.size // 2):
            norm = norm + alpha * sq[:, k]
        out = [norm]
        for k in range(1, c):
            prev = k - (self.size - 1) // 2 - 1
            nxt = k + self.size // 2
            if prev >= 0:
                norm = norm + (-alpha) * sq[:, prev]
            if nxt < c:
                norm = norm + alpha * sq[:, nxt]
            out.append(norm)
        return torch.stack(out, dim=1)

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        # pow_cpu: pow() in double of the float norms, stored as float; then mul_cpu in float
        powered = torch.pow(self.norms(x).double(), -self.beta).to(x.dtype)
        return powered * x

    def describe(self, in_shape: Shape) -> str:
        return f"{self.size:>8}"


    def table_line(self, in_shape: Shape) -> str:
        i = in_shape
        return f"Local Response Normalization Layer: {i.w} x {i.h} x {i.c} image, {self.size} size"


@register("normalization", "lrn", options=NormalizationOptions)
def build(ctx: BuildContext) -> NormalizationLayer:
    r = ctx.reader
    o = r.read(NormalizationOptions)
    r.check(o.size >= 1, f"size must be >= 1, got {o.size}", "size")
    c = ctx.input_shape.c
    r.check(o.size // 2 <= c, f"size={o.size}: Darknet sums the squares of the first size/2 = "
            f"{o.size // 2} channels, but the input has {c}", "size")
    return NormalizationLayer(ctx.index, ctx.input_shape, o)
