"""``[logistic]`` (pjreddie ``logistic_layer.c``): logistic of the previous output.

pjreddie only (type LOGXENT: with truth it also computes a logistic
cross-entropy cost); at inference ``output = 1/(1 + exp(-input))``.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=1\\nheight=1\\nchannels=1\\n[logistic]\\n"))
    >>> net(torch.zeros(1, 1, 1, 1)).flatten().tolist()
    [0.5]
"""
from __future__ import annotations

from typing import List

from torch import Tensor

from .activations import logistic
from .base import BuildContext, DarknetLayer
from .registry import register


class LogisticLayer(DarknetLayer):
    kind = "logistic"
    elementwise = True

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        return logistic(x)


    def table_line(self, in_shape) -> str:
        return f"logistic x entropy{'':29}{in_shape.numel:4d}"


@register("logistic", only="pjreddie")
def build(ctx: BuildContext) -> LogisticLayer:
    return LogisticLayer(ctx.index, ctx.input_shape)
