"""``[crop]`` (``crop_layer.c``): crop, and map [0, 1] inputs to [-1, 1].

``forward_crop_layer`` (CPU): at inference the crop is centred
(``dh = (h - crop_height)/2``, ``dw = (w - crop_width)/2``, integer division)
and never flipped; every value becomes ``input*2 - 1``, or stays as is with
``noadjust=1``. In training the offsets are uniform random in
``[0, h - crop_height]`` x ``[0, w - crop_width]`` and, with ``flip=1``, the
crop is mirrored with probability 1/2 -- one draw for the whole batch, as in
Darknet. ``angle``, ``saturation``, ``exposure`` and ``shift`` are only used
by Darknet's GPU training path and have no effect here.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=3\\nheight=1\\nchannels=1\\n"
    ...                         "[crop]\\ncrop_width=1\\ncrop_height=1\\n"))
    >>> net(torch.tensor([[[[0.0, 0.75, 1.0]]]])).flatten().tolist()
    [0.5]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np
import torch
from torch import Tensor

from ..cfg.options import option
from .base import BuildContext, DarknetLayer, ResizeError, Shape, check_shape
from .registry import register


@dataclass
class CropOptions:
    crop_height: int = option(1)
    crop_width: int = option(1)
    flip: int = option(0)
    angle: float = option(0.0)
    saturation: float = option(1.0)
    exposure: float = option(1.0)
    noadjust: int = option(0)
    shift: float = option(0.0)


class CropLayer(DarknetLayer):
    kind = "crop"

    def __init__(self, index: int, in_shape: Shape, out_shape: Shape, opts: CropOptions) -> None:
        super().__init__(index, out_shape)
        self.opts = opts
        self.in_shape = Shape(*in_shape)
        self.flip = bool(opts.flip)
        self.scale, self.trans = (1.0, 0.0) if opts.noadjust else (2.0, -1.0)

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        h, w = x.shape[2], x.shape[3]
        _, ch, cw = self.resize(Shape(*x.shape[1:]), [])
        flip = False
        if self.training:
            flip = self.flip and bool(torch.randint(0, 2, ()).item())
            dh = int(torch.randint(0, h - ch + 1, ()).item())
            dw = int(torch.randint(0, w - cw + 1, ()).item())
        else:
            dh, dw = (h - ch) // 2, (w - cw) // 2
        y = x[:, :, dh:dh + ch]
        # flipped: col = w - dw - j - 1 for j = 0..cw-1
        y = y[:, :, :, w - dw - cw:w - dw].flip(3) if flip else y[:, :, :, dw:dw + cw]
        if self.scale == 1.0 and self.trans == 0.0:
            return y.clone()
        return y * self.scale + self.trans

    def resize(self, in_shape: Shape, ref_shapes) -> Shape:
        """resize_crop_layer: out = (int)(scale*w), scale = (float)crop_height/h at build."""
        scale = np.float32(np.float32(self.opts.crop_height) / np.float32(self.in_shape.h))
        out = Shape(in_shape.c, int(scale * np.float32(in_shape.h)),
                    int(scale * np.float32(in_shape.w)))
        if Shape(*in_shape) == self.in_shape:
            return Shape(*self.out_shape)
        if not (1 <= out.h <= in_shape.h and 1 <= out.w <= in_shape.w):
            raise ResizeError(f"layer {self.index} [crop]: a {in_shape.w}x{in_shape.h} input "
                              f"gives a {out.w}x{out.h} crop")
        return out

    def describe(self, in_shape: Shape) -> str:
        return f"{in_shape.h} x {in_shape.w} -> {self.out_shape.h} x {self.out_shape.w}"


    def table_line(self, in_shape: Shape) -> str:
        o = self.out_shape
        return f"Crop Layer: {in_shape.h} x {in_shape.w} -> {o.h} x {o.w} x {o.c} image"


@register("crop", options=CropOptions)
def build(ctx: BuildContext) -> CropLayer:
    r = ctx.reader
    o = r.read(CropOptions)
    i = ctx.input_shape
    r.check(1 <= o.crop_height <= i.h,
            f"crop_height must be in 1..{i.h} (the input height), got {o.crop_height}",
            "crop_height")
    r.check(1 <= o.crop_width <= i.w,
            f"crop_width must be in 1..{i.w} (the input width), got {o.crop_width}",
            "crop_width")
    out = Shape(i.c, o.crop_height, o.crop_width)
    return CropLayer(ctx.index, i, check_shape(ctx, out), o)
