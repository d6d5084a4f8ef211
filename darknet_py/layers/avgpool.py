"""``[avgpool]`` / ``[avg]``: global average pool to (C,1,1) (``avgpool_layer.c``).

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=2\\nheight=1\\nchannels=1\\n[avgpool]\\n"))
    >>> net(torch.tensor([[[[1.0, 2.0]]]])).flatten().tolist()
    [1.5]
"""
from __future__ import annotations

from typing import List

from torch import Tensor

from .base import BuildContext, DarknetLayer, ResizeError, Shape, table_shape
from .registry import register


class AvgpoolLayer(DarknetLayer):
    kind = "avgpool"

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        # darknet sums then divides by h*w
        return x.sum(dim=(2, 3), keepdim=True) / float(x.shape[2] * x.shape[3])

    def resize(self, in_shape: Shape, ref_shapes) -> Shape:
        return Shape(in_shape.c, 1, 1)

    def table_line(self, in_shape: Shape) -> str:
        return f"avg{'':21}{table_shape(in_shape)}   ->  {in_shape.c:4d}"


@register("avgpool", "avg")
def build(ctx: BuildContext) -> AvgpoolLayer:
    return AvgpoolLayer(ctx.index, Shape(ctx.input_shape.c, 1, 1))
