"""``[reorg]`` (pjreddie ``reorg_layer.c``, AlexeyAB ``reorg_old_layer.c``): YOLOv2's passthrough.

Both call ``blas.c:reorg_cpu`` with the INPUT dims ``(c, h, w)``, so the
permutation is not a plain space-to-depth. With ``s = stride`` and
``oc = c/(s*s)``, the input buffer is read as ``(oc, h*s, w*s)`` and the output
buffer, read as ``(c, h, w)``, holds
``out[(dy*s+dx)*oc + ch, j, i] = in_as(oc, h*s, w*s)[ch, j*s+dy, i*s+dx]``;
that buffer is then the output ``(c*s*s, h/s, w/s)``. ``reverse=1`` is the
inverse scatter with output ``(c/(s*s), h*s, w*s)``.

pjreddie only: ``flatten=1`` transposes ``[c][h*w]`` to ``[h*w][c]`` (back with
``reverse=1``); ``extra=N`` (go.cfg) appends N zeros to the flat input,
giving a flat ``(inputs+N, 1, 1)`` output.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=2\\nheight=2\\nchannels=4\\n[reorg]\\nstride=2\\n"))
    >>> tuple(net.layers[0].out_shape)
    (16, 1, 1)
    >>> net(torch.arange(16.0).view(1, 4, 2, 2)).flatten().tolist()[:6]
    [0.0, 2.0, 8.0, 10.0, 1.0, 3.0]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor

from ..cfg.options import option
from .base import BuildContext, DarknetLayer, ResizeError, Shape, check_shape, table_shape
from .registry import register


@dataclass
class ReorgOptions:
    stride: int = option(1)
    reverse: int = option(0)
    flatten: int = option(0, only="pjreddie")
    extra: int = option(0, only="pjreddie")


class ReorgLayer(DarknetLayer):
    kind = "reorg"

    def __init__(self, index: int, in_shape: Shape, out_shape: Shape, opts: ReorgOptions) -> None:
        super().__init__(index, out_shape)
        self.opts = opts
        self.in_shape = Shape(*in_shape)
        self.stride = opts.stride
        self.reverse = bool(opts.reverse)
        self.flatten = bool(opts.flatten)
        self.extra = opts.extra
        self.flat = bool(opts.extra)

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        b, c, h, w = x.shape
        s = self.stride
        out_shape = self.resize(Shape(c, h, w), [])
        if self.flatten:
            # blas.c:flatten over (size=h*w, layers=c): [c][hw] <-> [hw][c]
            if self.reverse:
                y = x.reshape(b, h * w, c).transpose(1, 2)
            else:
                y = x.reshape(b, c, h * w).transpose(1, 2)
        elif self.extra:
            pad = x.new_zeros(b, self.extra)
            return torch.cat([x.reshape(b, -1), pad], dim=1).view(b, *out_shape)
        elif self.reverse:
            # reorg_cpu(forward=1): out_as(oc, h*s, w*s)[ch, j*s+dy, i*s+dx] = in[(dy*s+dx)*oc+ch, j, i]
            oc = c // (s * s)
            y = x.reshape(b, s, s, oc, h, w).permute(0, 3, 4, 1, 5, 2)
        else:
            # reorg_cpu(forward=0): out[(dy*s+dx)*oc+ch, j, i] = in_as(oc, h*s, w*s)[ch, j*s+dy, i*s+dx]
            oc = c // (s * s)
            y = x.reshape(b, oc, h, s, w, s).permute(0, 3, 5, 1, 2, 4)
        return y.reshape(b, *out_shape)

    def resize(self, in_shape: Shape, ref_shapes) -> Shape:
        """resize_reorg_layer: w*stride, h*stride, c/stride^2 (reverse) or the inverse."""
        i, s = in_shape, self.stride
        if self.extra:
            if i != self.in_shape:
                raise ResizeError(f"layer {self.index} [reorg] with extra= cannot be resized")
            return Shape(i.numel + self.extra, 1, 1)
        if self.reverse:
            return Shape(i.c // (s * s), i.h * s, i.w * s)
        if i.h % s or i.w % s:
            raise ResizeError(f"layer {self.index} [reorg]: the {i.w}x{i.h} input is not "
                              f"divisible by stride={s}")
        return Shape(i.c * s * s, i.h // s, i.w // s)

    def describe(self, in_shape: Shape) -> str:
        if self.extra:
            return f"+{self.extra}"
        return f"{'x' if self.reverse else '/'}{self.stride:>2}"


    def table_line(self, in_shape: Shape) -> str:
        i, o = in_shape, self.out_shape
        if self.extra:
            return f"reorg              {i.numel:4d}   ->  {o.numel:4d}"
        return (f"reorg              /{self.stride:2d}  {table_shape(i)}   ->  "
                f"{table_shape(o)}")


@register("reorg", options=ReorgOptions)
def build(ctx: BuildContext) -> ReorgLayer:
    r = ctx.reader
    o = r.read(ReorgOptions)
    s = o.stride
    r.check(s >= 1, f"stride must be >= 1, got {s}", "stride")
    r.check(o.extra >= 0, f"extra must be >= 0, got {o.extra}", "extra")
    i = ctx.input_shape
    if o.extra:
        r.check(not o.flatten, "flatten=1 with extra= reads past the input in Darknet; "
                "not supported", "flatten")
        out = Shape(i.numel + o.extra, 1, 1)
        return ReorgLayer(ctx.index, i, check_shape(ctx, out), o)
    r.check(i.c % (s * s) == 0,
            f"the input's {i.c} channels are not divisible by stride*stride = {s * s}",
            "stride")
    if o.reverse:
        out = Shape(i.c // (s * s), i.h * s, i.w * s)
    else:
        r.check(i.h % s == 0 and i.w % s == 0,
                f"the {i.w}x{i.h} input is not divisible by stride={s}", "stride")
        out = Shape(i.c * s * s, i.h // s, i.w // s)
    return ReorgLayer(ctx.index, i, check_shape(ctx, out), o)
