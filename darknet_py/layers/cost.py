"""``[cost]`` (``cost_layer.c``): the training loss; a pass-through at inference.

``forward_cost_layer`` returns at once when there is no truth, so at
inference its ``l.output`` (the per-value loss buffer, a flat vector) stays
zeros -- and that is what this layer outputs. Darknet's network output
(``get_network_output``) skips trailing [cost] layers, and so does
``Darknet.forward``: the network's output is the layer before. ``type`` is kept
for training: sse, masked, smooth (both dialects), seg, L1, wgan (pjreddie);
Darknet falls back to sse for other names.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=2\\nheight=1\\nchannels=1\\n[avgpool]\\n"
    ...                         "[cost]\\ntype=sse\\n"))
    >>> x = torch.tensor([[[[1.0, 2.0]]]])
    >>> net(x).flatten().tolist(), net.layer_outputs(x)[1].tolist(), net.layers[1].cost_type
    ([1.5], [[0.0]], 'sse')
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor

from ..cfg.options import option
from ..errors import CfgWarning
from .base import BuildContext, DarknetLayer
from .registry import register

COST_TYPES = {"pjreddie": ("seg", "sse", "masked", "smooth", "L1", "wgan"),
              "alexeyab": ("sse", "masked", "smooth")}


@dataclass
class CostOptions:
    type: str = option("sse")
    scale: float = option(1.0)
    ratio: float = option(0.0)
    noobj: float = option(1.0, only="pjreddie")
    thresh: float = option(0.0, only="pjreddie")


class CostLayer(DarknetLayer):
    kind = "cost"
    elementwise = True

    def __init__(self, index, out_shape, opts: CostOptions) -> None:
        super().__init__(index, out_shape)
        self.flat = True
        self.opts = opts
        self.cost_type = opts.type
        self.scale = opts.scale

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        return torch.zeros_like(x)  # no truth: the loss buffer stays zeros

    def train_refusal(self) -> str:
        return (f"[cost] type={self.cost_type}: its training loss and backward (cost_layer.c) "
                f"are not implemented in darknet_py; train with the [softmax] loss or a "
                f"detection head instead")

    def describe(self, in_shape) -> str:
        return f"{in_shape.numel:>8}"


    def table_line(self, in_shape) -> str:
        return f"cost{'':43}{in_shape.numel:4d}"


@register("cost", options=CostOptions)
def build(ctx: BuildContext) -> CostLayer:
    r = ctx.reader
    o = r.read(CostOptions)
    known = COST_TYPES[ctx.dialect.name]
    if o.type not in known:
        entry = r.section.find("type")
        where = f"{r.section.file}:{entry.line if entry is not None else r.section.line}"
        warnings.warn(CfgWarning(f"{where}: [cost] unknown type {o.type!r}; Darknet goes with "
                                 f"sse (known: {', '.join(known)})"), stacklevel=2)
        o.type = "sse"
    return CostLayer(ctx.index, ctx.input_shape, o)
