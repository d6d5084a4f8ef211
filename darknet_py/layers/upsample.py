"""``[upsample]`` (``upsample_layer.c``): nearest-neighbour, times ``scale``.

``stride`` (default 2) is the factor; a negative stride downsamples instead
(Darknet's ``reverse``): each output is ``scale`` times the *sum* of its
stride x stride block, the input read as Darknet's ``upsample_cpu`` reads it (as if it
were exactly ``stride`` times the output's size, flat).

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


def upsample_shape(i: Shape, stride: int) -> Shape:
    s = abs(stride)
    return Shape(i.c, i.h * s, i.w * s) if stride > 0 else Shape(i.c, i.h // s, i.w // s)


class UpsampleLayer(DarknetLayer):
    kind = "upsample"

    def __init__(self, index: int, out_shape: Shape, stride: int, scale: float) -> None:
        super().__init__(index, out_shape)
        self.stride = stride
        self.scale = scale

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        s = abs(self.stride)
        if self.stride > 0:
            # nearest neighbour copies values exactly; as F.interpolate it exports to ONNX as
            # one Resize (nearest, scales s x s) that onnxruntime and TensorRT run at any size
            y = F.interpolate(x, scale_factor=(float(s), float(s)), mode="nearest")
        else:
            # upsample_cpu(l.output, out_w, out_h, ..., forward=0) indexes the input as if it
            # were c x (out_h*s) x (out_w*s), contiguous: when the input's width or height is
            # not a multiple of s, that is a flat prefix of it, not its top-left corner.
            b, c = x.shape[0], x.shape[1]
            h, w = x.shape[2] // s, x.shape[3] // s
            y = x.reshape(-1)[:b * c * h * s * w * s].reshape(b, c, h, s, w, s).sum(dim=(3, 5))
        return y * self.scale if self.scale != 1.0 else y

    def resize(self, in_shape: Shape, ref_shapes) -> Shape:
        """resize_upsample_layer: w*stride (or w/stride for a negative stride)."""
        return upsample_shape(in_shape, self.stride)

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
    out = upsample_shape(i, o.stride)
    return UpsampleLayer(ctx.index, check_shape(ctx, out), o.stride, o.scale)
