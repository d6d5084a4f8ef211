"""``[local_avgpool]`` / ``[local_avg]`` (AlexeyAB ``maxpool_layer.c``, ``avgpool=1``).

A windowed average with [maxpool]'s geometry (``parse_local_avgpool``):
``size`` defaults to ``stride``, ``padding`` (total) to ``size-1``, windows
start at ``-padding/2``, and the output is ``(w + padding - size)/stride_x + 1``
(``stride_x``/``stride_y`` default to ``stride``). ``forward_local_avgpool_layer``
sums only the cells inside the image and divides by how many there were
(``avg / counter``; cuDNN's ``AVERAGE_COUNT_EXCLUDE_PADDING``), so padding
never pulls the mean towards 0. A window wholly outside the image gives 0/0 =
NaN, as in Darknet.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> cfg = "[net]\\nwidth=3\\nheight=1\\nchannels=1\\n[local_avgpool]\\nsize=2\\nstride=1\\n"
    >>> Darknet(parse_cfg(cfg))(torch.tensor([[[[1.0, 2.0, 4.0]]]])).flatten().tolist()
    [1.5, 3.0, 4.0]
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import BuildContext, DarknetLayer, Shape
from .maxpool import PoolWindowOptions, resize_window, window_output, window_padding
from .registry import register


class LocalAvgpoolOptions(PoolWindowOptions):
    """Same keys and defaults as [maxpool]'s window."""


class LocalAvgpoolLayer(DarknetLayer):
    kind = "local_avgpool"
    ab_forward_zeroes_delta = True
    ab_train = True

    def __init__(self, index: int, out_shape: Shape, opts: LocalAvgpoolOptions) -> None:
        super().__init__(index, out_shape)
        self.opts = opts
        self.size = opts.size
        self.stride = (opts.stride_y, opts.stride_x)
        self.pad = window_padding(opts)

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        total = F.avg_pool2d(F.pad(x, self.pad), self.size, self.stride, divisor_override=1)
        inside = torch.ones(1, 1, x.shape[2], x.shape[3], dtype=x.dtype, device=x.device)
        count = F.avg_pool2d(F.pad(inside, self.pad), self.size, self.stride, divisor_override=1)
        return total / count

    def resize(self, in_shape: Shape, ref_shapes) -> Shape:
        return resize_window(self, self.opts, in_shape)

    def describe(self, in_shape: Shape) -> str:
        o = self.opts
        return f"{o.size:>8} x{o.size:>2} /{o.stride:>2}"


@register("local_avgpool", "local_avg", options=LocalAvgpoolOptions, only="alexeyab")
def build(ctx: BuildContext) -> LocalAvgpoolLayer:
    o = ctx.reader.read(LocalAvgpoolOptions)
    return LocalAvgpoolLayer(ctx.index, window_output(ctx, o), o)
