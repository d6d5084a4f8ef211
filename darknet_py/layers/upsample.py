"""``[upsample]`` (``upsample_layer.c``): nearest-neighbour, times ``scale``.

``stride`` (default 2) is the factor; a negative stride downsamples instead
(Darknet's ``reverse``): each output is ``scale`` times the *sum* of its
stride x stride block.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=2\\nheight=1\\nchannels=1\\n[upsample]\\nstride=2\\n"))
    >>> net(torch.tensor([[[[1.0, 2.0]]]]))[0, 0].tolist()
    [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch.nn.functional as F
from torch import Tensor

from ..cfg.options import option
from .base import BuildContext, DarknetLayer, Shape, check_shape, table_shape
from .registry import register


@dataclass
class UpsampleOptions:
    stride: int = option(2)
    scale: float = option(1.0)


class UpsampleLayer(DarknetLayer):
    kind = "upsample"

    def __init__(self, index: int, out_shape: Shape, stride: int, scale: float) -> None:
        super().__init__(index, out_shape)
        self.stride = stride
        self.scale = scale

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        s = abs(self.stride)
        if self.stride > 0:
            b, c, h, w = x.shape
            y = x[:, :, :, None, :, None].expand(b, c, h, s, w, s).reshape(b, c, h * s, w * s)
        else:
            h, w = self.out_shape.h, self.out_shape.w
            y = x[:, :, :h * s, :w * s].reshape(x.shape[0], x.shape[1], h, s, w, s).sum(dim=(3, 5))
        return y * self.scale if self.scale != 1.0 else y

    def infer(self, x: Tensor, refs: List[Tensor], reuse: bool) -> Tensor:
        # nearest-neighbour by a power of two is an exact copy that keeps x's memory layout
        if self.stride in (2, 4, 8) and self.scale == 1.0:
            return F.interpolate(x, scale_factor=float(self.stride), mode="nearest")
        return self.forward(x, refs)

    def describe(self, in_shape: Shape) -> str:
        return f"{self.stride:>8}x"

    def table_line(self, in_shape: Shape) -> str:
        name = "upsample  " if self.stride > 0 else "downsample"
        return (f"{name}         {abs(self.stride):2d}x  {table_shape(in_shape)}   ->  "
                f"{table_shape(self.out_shape)}")


@register("upsample", options=UpsampleOptions)
def build(ctx: BuildContext) -> UpsampleLayer:
    o = ctx.reader.read(UpsampleOptions)
    ctx.reader.check(o.stride != 0, "stride must not be 0", "stride")
    i = ctx.input_shape
    s = abs(o.stride)
    out = Shape(i.c, i.h * s, i.w * s) if o.stride > 0 else Shape(i.c, i.h // s, i.w // s)
    return UpsampleLayer(ctx.index, check_shape(ctx, out), o.stride, o.scale)
