"""``[detection]`` (``detection_layer.c``): the YOLOv1 detection head.

The input (the previous layer's flat output) must hold
``side*side*((1 + coords)*num + classes)`` values, laid out as class
probabilities ``[side*side][classes]``, then objectness ``[side*side][num]``,
then boxes ``[side*side][num][coords]``. ``forward_detection_layer`` copies it
and, with ``softmax=1``, applies Darknet's softmax to each cell's classes. The
output is flat, like Darknet's ``l.output``.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> cfg = ("[net]\\nwidth=1\\nheight=1\\nchannels=8\\n"
    ...        "[detection]\\nside=1\\nnum=1\\ncoords=4\\nclasses=3\\nsoftmax=1\\n")
    >>> out = Darknet(parse_cfg(cfg))(torch.zeros(1, 8, 1, 1))[0]
    >>> [round(v, 3) for v in out.flatten().tolist()]
    [0.333, 0.333, 0.333, 0.0, 0.0, 0.0, 0.0, 0.0]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor

from ..cfg.options import option
from .base import BuildContext, DarknetLayer, Shape
from .region import darknet_softmax
from .registry import register


@dataclass
class DetectionOptions:
    coords: int = option(1)
    classes: int = option(1)
    rescore: int = option(0)
    num: int = option(1)
    side: int = option(7)
    softmax: int = option(0)
    sqrt: int = option(0)
    max: int = option(90, alexeyab=200, doc="max truths per image")
    coord_scale: float = option(1.0)
    forced: int = option(0)
    object_scale: float = option(1.0)
    noobject_scale: float = option(1.0)
    class_scale: float = option(1.0)
    jitter: float = option(0.2)
    random: float = option(0.0)
    reorg: int = option(0)
    resize: float = option(1.0, only="alexeyab")


class DetectionLayer(DarknetLayer):
    kind = "detection"
    ab_forward_zeroes_delta = True

    def __init__(self, index: int, inputs: int, opts: DetectionOptions) -> None:
        super().__init__(index, Shape(inputs, 1, 1))
        self.flat = True
        self.opts = opts
        self.side = opts.side
        self.num = opts.num
        self.classes = opts.classes
        self.coords = opts.coords
        self.softmax = bool(opts.softmax)
        self.sqrt = bool(opts.sqrt)

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        b = x.shape[0]
        flat = x.reshape(b, -1)
        if not self.softmax:
            return flat.clone()
        n = self.side * self.side * self.classes
        probs = darknet_softmax(flat[:, :n].reshape(b, -1, self.classes), 2).reshape(b, n)
        return torch.cat([probs, flat[:, n:]], dim=1)

    def input_channels(self, classes: int) -> int:
        """Outputs the layer before must give for ``classes`` classes:
        side*side*((1+coords)*num + classes)."""
        o = self.opts
        return o.side * o.side * ((1 + o.coords) * o.num + classes)

    def describe(self, in_shape: Shape) -> str:
        return ""


    def table_line(self, in_shape: Shape) -> str:
        return "Detection Layer"


@register("detection", options=DetectionOptions)
def build(ctx: BuildContext) -> DetectionLayer:
    r = ctx.reader
    o = r.read(DetectionOptions)
    for key in ("side", "num", "classes"):
        r.check(getattr(o, key) >= 1, f"{key} must be >= 1, got {getattr(o, key)}", key)
    r.check(o.coords >= 0, f"coords must be >= 0, got {o.coords}", "coords")
    inputs = ctx.input_shape.numel
    expected = o.side * o.side * ((1 + o.coords) * o.num + o.classes)
    r.check(inputs == expected,
            f"the previous layer has {inputs} outputs but side={o.side}: side*side*((1 + "
            f"{o.coords} coords)*{o.num} + {o.classes} classes) needs {expected}", "side")
    return DetectionLayer(ctx.index, inputs, o)
