"""``[contrastive]`` (AlexeyAB ``softmax_layer.c``): a training-only loss layer.

``forward_contrastive_layer`` returns at once unless training, and even in
training it only computes deltas and a loss: ``l.output`` stays the zeros it
was allocated with. So the output is all zeros, one per input value
(``l.outputs = inputs``; Darknet leaves out_c/out_h/out_w at 0, darknet_py
keeps the input's c x h x w). No weights.

``parse_contrastive`` needs ``yolo_layer=`` (negative = relative) to name a
[yolo] layer: 0, the default, dereferences NULL; another type exits. That
[yolo] must have ``embedding_layer=`` set, and this layer's input must hold
the same embedding size per anchor (``inputs / (anchors*h*w)`` equal to the
embedding layer's ``filters / anchors``), or ``make_contrastive_layer`` exits.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> cfg = ("[net]\\nwidth=8\\nheight=8\\nchannels=3\\n[convolutional]\\nfilters=4\\n"
    ...        "[convolutional]\\nfilters=6\\n[yolo]\\nclasses=1\\nembedding_layer=-2\\n"
    ...        "[route]\\nlayers=-3\\n[contrastive]\\nyolo_layer=-2\\n")
    >>> net = Darknet(parse_cfg(cfg))
    >>> net.layer_outputs(torch.rand(1, 3, 8, 8))[-1].abs().sum().item()
    0.0
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor

from ..cfg.options import option
from .base import BuildContext, DarknetLayer, Shape
from .registry import register

FLT_MAX = 3.4028234663852886e38


@dataclass
class ContrastiveOptions:
    classes: int = option(1000)
    yolo_layer: int = option(0, doc="the [yolo] layer (negative = relative); required")
    temperature: float = option(1.0)
    cls_normalizer: float = option(1.0)
    max_delta: float = option(FLT_MAX)
    contrastive_neg_max: int = option(3)


class ContrastiveLayer(DarknetLayer):
    kind = "contrastive"

    def __init__(self, index: int, out_shape: Shape, yolo_layer: int,
                 embedding_size: int) -> None:
        super().__init__(index, out_shape)
        self.yolo_layer = yolo_layer
        self.embedding_size = embedding_size

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        return torch.zeros_like(x)

    def describe(self, in_shape: Shape) -> str:
        return f" emb {self.embedding_size}"


@register("contrastive", options=ContrastiveOptions, only="alexeyab")
def build(ctx: BuildContext) -> ContrastiveLayer:
    r = ctx.reader
    o = r.read(ContrastiveOptions)
    target = ctx.index + o.yolo_layer if o.yolo_layer < 0 else o.yolo_layer
    r.check(target != 0, "yolo_layer= must name a [yolo] layer (0, the default, crashes "
            "Darknet)", "yolo_layer")
    target = ctx.layer_index(o.yolo_layer, "yolo_layer")
    yolo = ctx.layers[target]
    r.check(yolo.kind == "yolo", f"yolo_layer={o.yolo_layer} is layer {target} "
            f"[{yolo.kind}], not a [yolo] layer", "yolo_layer")
    raw = yolo.opts.embedding_layer
    r.check(raw != 999999, f"the [yolo] layer {target} has no embedding_layer=, so its "
            f"embedding size is 0", "yolo_layer")
    emb_index = target + raw if raw < 0 else raw
    r.check(0 <= emb_index < target, f"the [yolo] layer {target} has embedding_layer={raw}, "
            f"outside layers 0..{target - 1}", "yolo_layer")
    anchors = len(yolo.mask)
    yolo_size = ctx.shapes[emb_index].c // anchors
    i = ctx.input_shape
    size = i.numel // (anchors * i.h * i.w)
    r.check(size == yolo_size,
            f"the input holds {i.numel} values = {anchors} anchors x {i.h}x{i.w} x {size}, but "
            f"the [yolo] layer {target} has embedding size {yolo_size} (layer {emb_index}: "
            f"{ctx.shapes[emb_index].c} filters / {anchors} anchors)", "yolo_layer")
    return ContrastiveLayer(ctx.index, i, target, size)
