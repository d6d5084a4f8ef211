"""``[reorg3d]`` (AlexeyAB ``reorg_layer.c``): space-to-depth, the "3d" way.

Not the same permutation as ``[reorg]`` (AlexeyAB's ``reorg_old_layer.c``):
``forward_reorg_layer`` calls ``blas.c:reorg_cpu`` with the OUTPUT dims.
Shapes (``make_reorg_layer``): ``out = (c*s*s, h/s, w/s)``, or with
``reverse=1`` ``(c/(s*s), h*s, w*s)`` (integer division).

Forward (``reverse=0``, ``reorg_cpu(..., forward=0)``): with ``C, H, W`` the
output dims and ``c = C/(s*s)``,
``out[k, j, i] = in[k % c, j*s + (k/c)/s, i*s + (k/c)%s]``, where the input
is read as a flat buffer of shape ``(c, H*s, W*s)`` -- i.e. the 2x2 phase
(dy, dx) is the outer channel block, so channel ``(dy*s+dx)*c + ch``.
With ``reverse=1`` (``forward=1``) the input is read flat as ``(C, H, W)`` =
the output dims and scattered depth-to-space into a ``(C/(s*s), H*s, W*s)``
buffer, which is the output read flat again.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=2\\nheight=2\\nchannels=2\\n[reorg3d]\\nstride=2\\n"))
    >>> x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]]])
    >>> net(x).flatten().tolist()  # phase (dy, dx) outer, input channel inner
    [1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from torch import Tensor

from ..cfg.options import option
from .base import BuildContext, DarknetLayer, ResizeError, Shape, check_shape
from .registry import register


@dataclass
class Reorg3dOptions:
    stride: int = option(1)
    reverse: int = option(0)


class Reorg3dLayer(DarknetLayer):
    kind = "reorg3d"

    def __init__(self, index: int, out_shape: Shape, stride: int, reverse: bool) -> None:
        super().__init__(index, out_shape)
        self.stride = stride
        self.reverse = reverse

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        s = self.stride
        C, H, W = self.resize(Shape(*x.shape[1:]), [])
        b = x.shape[0]
        flat = x.reshape(b, -1)
        if not self.reverse:
            c = C // (s * s)
            big = flat[:, :c * H * s * W * s].reshape(b, c, H, s, W, s)  # (ch, j, dy, i, dx)
            return big.permute(0, 3, 5, 1, 2, 4).reshape(b, C, H, W)  # k = (dy*s+dx)*c + ch
        c = C // (s * s)
        small = flat[:, :C * H * W].reshape(b, s, s, c, H, W)  # k = (dy*s+dx)*c + ch, j, i
        big = small.permute(0, 3, 4, 1, 5, 2)  # (ch, j, dy, i, dx) -> (c, H*s, W*s)
        return big.reshape(b, C, H, W)

    def resize(self, in_shape: Shape, ref_shapes) -> Shape:
        """AlexeyAB resize_reorg_layer: the build arithmetic on the new input."""
        i, s = in_shape, self.stride
        if self.reverse:
            return Shape(i.c // (s * s), i.h * s, i.w * s)
        return Shape(i.c * s * s, i.h // s, i.w // s)

    def describe(self, in_shape: Shape) -> str:
        return f"{'/' if not self.reverse else 'x'}{self.stride:>2}"


@register("reorg3d", options=Reorg3dOptions, only="alexeyab")
def build(ctx: BuildContext) -> Reorg3dLayer:
    r = ctx.reader
    o = r.read(Reorg3dOptions)
    s = o.stride
    r.check(s >= 1, f"stride must be >= 1, got {s}", "stride")
    i = ctx.input_shape
    if o.reverse:
        out = Shape(i.c // (s * s), i.h * s, i.w * s)
        # reorg_cpu divides the output channels by s*s again; anything else indexes out of range
        r.check(out.c > 0 and out.c % (s * s) == 0,
                f"reverse=1 needs the input channels ({i.c}) divisible by stride^4 "
                f"({s ** 4}); Darknet's reorg_cpu would read or write outside its buffers",
                "reverse")
    else:
        out = Shape(i.c * s * s, i.h // s, i.w // s)
    return Reorg3dLayer(ctx.index, check_shape(ctx, out), s, bool(o.reverse))
