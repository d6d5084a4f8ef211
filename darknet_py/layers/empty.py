"""``[empty]`` / ``[silence]`` (AlexeyAB ``parser.c``, layer type ``EMPTY``): pass-through.

Both names build the same layer: its ``output`` pointer *is* the previous
layer's output and its forward (``empty_func``) does nothing, so the output is
the previous layer's, unchanged (``[silence]`` does not zero anything). It reads
no options. As the first layer Darknet would alias ``net.layers[-1]`` (out of
bounds), so that is a CfgError here.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> cfg = "[net]\\nwidth=2\\nheight=1\\nchannels=1\\n[upsample]\\nstride=1\\n[silence]\\n"
    >>> Darknet(parse_cfg(cfg))(torch.tensor([[[[1.0, -2.0]]]])).flatten().tolist()
    [1.0, -2.0]
"""
from __future__ import annotations

from typing import List

from torch import Tensor

from .base import BuildContext, DarknetLayer
from .registry import register


class EmptyLayer(DarknetLayer):
    kind = "empty"
    elementwise = True

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        return x


@register("empty", "silence", only="alexeyab")
def build(ctx: BuildContext) -> EmptyLayer:
    ctx.reader.check(ctx.index > 0, "cannot be the first layer: Darknet aliases the previous "
                     "layer's output, and there is none")
    return EmptyLayer(ctx.index, ctx.input_shape)
