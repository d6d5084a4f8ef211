"""``[dropout]`` (``dropout_layer.c``): identity at inference.

In training, Darknet zeroes each value with ``probability`` and scales the
rest by ``1/(1-probability)`` (in place on the previous layer's output).
Default probability: 0.5 (pjreddie) / 0.2 (AlexeyAB). It cannot be the first layer
(Darknet aliases the previous layer's output).

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=2\\nheight=1\\nchannels=1\\n"
    ...                         "[activation]\\nactivation=linear\\n[dropout]\\n")).eval()
    >>> net(torch.tensor([[[[1.0, 2.0]]]])).flatten().tolist()
    [1.0, 2.0]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch.nn.functional as F
from torch import Tensor

from ..cfg.options import option
from .base import BuildContext, DarknetLayer
from .registry import register


@dataclass
class DropoutOptions:
    probability: float = option(0.5, alexeyab=0.2)
    dropblock: int = option(0)
    dropblock_size_rel: float = option(0.0)
    dropblock_size_abs: float = option(0.0)


class DropoutLayer(DarknetLayer):
    kind = "dropout"
    delta_comparable = False  # l.delta is the previous layer's (network.c aliases it)
    elementwise = True

    def __init__(self, index, out_shape, probability: float) -> None:
        super().__init__(index, out_shape)
        self.probability = probability

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        return F.dropout(x, self.probability, self.training)

    def describe(self, in_shape) -> str:
        return f"p = {self.probability:.2f}"

    def table_line(self, in_shape) -> str:
        n = in_shape.numel
        return f"dropout       p = {self.probability:.2f}               {n:4d}  ->  {n:4d}"


@register("dropout", options=DropoutOptions)
def build(ctx: BuildContext) -> DropoutLayer:
    o = ctx.reader.read(DropoutOptions)
    ctx.reader.check(0.0 <= o.probability < 1.0,
                     f"probability must be in [0, 1), got {o.probability}", "probability")
    ctx.reader.check(o.dropblock == 0, "dropblock=1 is not supported", "dropblock")
    # parse_network_cfg aliases l.output = net.layers[count-1].output: as the first layer that
    # is layers[-1], and the next layer reads garbage (a segfault in the differential run)
    ctx.reader.check(ctx.index > 0, "cannot be the first layer: Darknet aliases the previous "
                     "layer's output, and there is none")
    return DropoutLayer(ctx.index, ctx.input_shape, o.probability)
