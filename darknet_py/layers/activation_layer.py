"""``[activation]`` (``activation_layer.c``): an activation of the previous output.

``forward_activation_layer`` copies the input and applies ``activation``
(default ``linear``) to every value; the shape is unchanged.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=2\\nheight=1\\nchannels=1\\n"
    ...                         "[activation]\\nactivation=leaky\\n"))
    >>> [round(v, 4) for v in net(torch.tensor([[[[-1.0, 2.0]]]])).flatten().tolist()]
    [-0.1, 2.0]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from torch import Tensor

from ..cfg.options import option
from . import activations
from .base import BuildContext, DarknetLayer, Shape
from .registry import register


@dataclass
class ActivationOptions:
    activation: str = option("linear", choices=activations.names)


class ActivationLayer(DarknetLayer):
    kind = "activation"
    delta_comparable = False  # backward leaves the input's gradient in l.delta
    elementwise = True

    def __init__(self, index: int, out_shape: Shape, activation: str, dialect=None) -> None:
        super().__init__(index, out_shape)
        self.activation = activation
        self._act = activations.get(activation, dialect)

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        return self._act(x.clone())

    def describe(self, in_shape: Shape) -> str:
        return f" {self.activation}"


    def table_line(self, in_shape: Shape) -> str:
        return f"Activation Layer: {in_shape.numel} inputs"


@register("activation", options=ActivationOptions)
def build(ctx: BuildContext) -> ActivationLayer:
    r = ctx.reader
    o = r.read(ActivationOptions)
    return ActivationLayer(ctx.index, ctx.input_shape, o.activation, ctx.dialect)
