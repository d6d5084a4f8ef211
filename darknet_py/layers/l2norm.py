"""``[l2norm]`` (pjreddie ``l2norm_layer.c``): L2-normalise across channels, per pixel.

``blas.c:l2normalize_cpu``: for every pixel, ``sum = sqrtf(sum_c powf(x, 2))``
(accumulated in float, channel by channel) and ``x /= sum``. There is no
epsilon: an all-zero pixel gives NaN, as in Darknet. pjreddie only.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=1\\nheight=1\\nchannels=2\\n[l2norm]\\n"))
    >>> net(torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)).flatten().tolist()
    [0.6000000238418579, 0.800000011920929]
"""
from __future__ import annotations

from typing import List

import torch
from torch import Tensor

from .base import BuildContext, DarknetLayer
from .registry import register


class L2normLayer(DarknetLayer):
    kind = "l2norm"
    elementwise = True

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        # the float sum in Darknet's channel order, then one sqrtf per pixel
        total = torch.zeros_like(x[:, 0])
        for k in range(x.shape[1]):
            total = total + x[:, k] * x[:, k]
        # sqrtf is correctly rounded; torch's float32 sqrt on CPU is not, its double one is
        return x / torch.sqrt(total.double()).to(x.dtype).unsqueeze(1)


    def table_line(self, in_shape) -> str:
        return f"l2norm{'':41}{in_shape.numel:4d}"


@register("l2norm", only="pjreddie")
def build(ctx: BuildContext) -> L2normLayer:
    return L2normLayer(ctx.index, ctx.input_shape)
