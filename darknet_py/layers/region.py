"""``[region]`` (``region_layer.c``): the YOLOv2 detection head.

pjreddie (``forward_region_layer``, CPU path): the output is the input with,
per anchor ``a`` and entry ``e`` at channel ``a*(coords+classes+1)+e``:
logistic on x, y (entries 0, 1) and on objectness (entry ``coords``, unless
``background=1``); the classes get logistic, or with ``softmax=1`` Darknet's
softmax over the ``classes`` (+ ``background``) entries of each anchor and
cell, computed from the unactivated input. w, h (and any extra coords) stay raw.

AlexeyAB's CPU forward is a different layout: it transposes the buffer to
``[cell][anchor][entry]`` (``blas.c:flatten``) and then applies logistic to
entry 4 and the softmax to entries 5.. only; x, y stay raw (its
``get_region_box`` applies the logistic while decoding). The module keeps that
buffer as is (``cell_major=True``, ``xy_activated=False``);
:meth:`RegionLayer.entries` gives both dialects as ``(batch, num, entries, h, w)``
with x, y activated.

``anchors`` are (w, h) pairs in grid cells (``biases``, default 0.5 each).
``tree=`` (YOLO9000's hierarchical softmax) is not supported.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> cfg = ("[net]\\nwidth=1\\nheight=1\\nchannels=7\\n"
    ...        "[region]\\nclasses=2\\ncoords=4\\nnum=1\\nsoftmax=1\\nanchors=1.5,2.5\\n")
    >>> net = Darknet(parse_cfg(cfg))
    >>> out = net(torch.zeros(1, 7, 1, 1))[0]
    >>> [round(v, 3) for v in out.flatten().tolist()], net.layers[0].anchors_wh
    ([0.5, 0.5, 0.0, 0.0, 0.5, 0.5, 0.5], [(1.5, 2.5)])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import Tensor

import numpy as np

from ..cfg.options import option
from ..postprocess import DetectionArrays
from .activations import logistic
from .base import BuildContext, DarknetLayer, Shape
from .registry import register
from .yolo import correct_yolo_boxes

_F32 = np.float32


@dataclass
class RegionOptions:
    coords: int = option(4)
    classes: int = option(20)
    num: int = option(1)
    log: int = option(0)
    sqrt: int = option(0)
    softmax: int = option(0)
    background: int = option(0, only="pjreddie")
    max: int = option(30, alexeyab=200, doc="max truths per image")
    jitter: float = option(0.2)
    rescore: int = option(0)
    thresh: float = option(0.5)
    classfix: int = option(0)
    absolute: int = option(0)
    random: float = option(0.0)
    coord_scale: float = option(1.0)
    object_scale: float = option(1.0)
    noobject_scale: float = option(1.0)
    mask_scale: float = option(1.0)
    class_scale: float = option(1.0)
    bias_match: int = option(0)
    tree: Optional[str] = option(None, doc="YOLO9000 hierarchy file (not supported)")
    map: Optional[str] = option(None, doc="class map file (training/validation only)")
    anchors: Optional[List[float]] = option(None, doc="w,h pairs in grid cells")
    focal_loss: int = option(0, only="alexeyab")
    resize: float = option(1.0, only="alexeyab")


def darknet_softmax(x: Tensor, dim: int) -> Tensor:
    """``blas.c:softmax`` with temperature 1 along ``dim``: ``e = exp(x - max)`` (a float
    difference, C's double ``exp``, stored as float), summed in float in Darknet's order,
    then ``e / sum``."""
    largest = x.max(dim=dim, keepdim=True).values
    e = torch.exp((x - largest).double()).to(x.dtype)
    total = torch.zeros_like(largest)
    for k in range(x.shape[dim]):
        total = total + e.narrow(dim, k, 1)
    return e / total


class RegionLayer(DarknetLayer):
    kind = "region"
    decodes = True
    alexeyab_layer_type = 27

    def __init__(self, index: int, out_shape: Shape, opts: RegionOptions, dialect) -> None:
        super().__init__(index, out_shape)
        self.opts = opts
        self.num = opts.num
        self.classes = opts.classes
        self.coords = opts.coords
        self.softmax = bool(opts.softmax)
        self.background = bool(opts.background)
        self.thresh = opts.thresh
        #: biases: w, h of each anchor in grid cells (make_region_layer's default 0.5)
        self.anchors: List[float] = list(opts.anchors or [])
        self.anchors += [0.5] * (2 * opts.num - len(self.anchors))
        #: AlexeyAB: l.output is the [cell][anchor][entry] transpose of the input
        self.cell_major = dialect.name == "alexeyab"
        #: pjreddie activates x, y in the forward pass; AlexeyAB only when decoding
        self.xy_activated = not self.cell_major

    @property
    def entry_count(self) -> int:
        return self.coords + self.classes + 1

    @property
    def anchors_wh(self) -> List[Tuple[float, float]]:
        """(w, h) of every anchor, in grid cells."""
        return [(self.anchors[2 * i], self.anchors[2 * i + 1]) for i in range(self.num)]

    def _anchor_major(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        return x.reshape(b, self.num, self.entry_count, h, w)

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        v = self._anchor_major(x)
        n_e, c = self.entry_count, self.coords
        if self.cell_major:
            # forward_region_layer (AlexeyAB, CPU): flatten, then index+4 and index+5 hard-coded
            parts = [v[:, :, :4], logistic(v[:, :, 4:5])]
            if self.softmax:
                parts += [darknet_softmax(v[:, :, 5:5 + self.classes], 2),
                          v[:, :, 5 + self.classes:]]
            else:
                parts.append(v[:, :, 5:])
            y = torch.cat(parts, dim=2)
            b, _, h, w = x.shape
            return y.reshape(b, n_e * self.num, h * w).transpose(1, 2).reshape(x.shape)
        parts = [logistic(v[:, :, :2]), v[:, :, 2:c]]
        if self.softmax and self.background:
            # the softmax covers [background=objectness entry, classes...]
            parts.append(darknet_softmax(v[:, :, c:], 2))
        else:
            obj = v[:, :, c:c + 1]
            parts.append(obj if self.background else logistic(obj))
            cls = v[:, :, c + 1:]
            parts.append(darknet_softmax(cls, 2) if self.softmax else logistic(cls))
        return torch.cat(parts, dim=2).reshape(x.shape)

    def entries(self, out: Tensor) -> Tensor:
        """This layer's output as (batch, num, coords+classes+1, h, w), x and y activated.

        For AlexeyAB this undoes the [cell][anchor][entry] layout and applies the
        logistic that its ``get_region_box`` applies to x, y while decoding.
        """
        b, _, h, w = out.shape
        if not self.cell_major:
            return self._anchor_major(out)
        v = out.reshape(b, h * w, self.num * self.entry_count).transpose(1, 2)
        v = v.reshape(b, self.num, self.entry_count, h, w)
        return torch.cat([logistic(v[:, :, :2]), v[:, :, 2:]], dim=2)

    def describe(self, in_shape: Shape) -> str:
        return ""

    def get_detections(self, output: Tensor, im_w: int, im_h: int, net_w: int, net_h: int,
                       thresh: float, hier_thresh: float = 0.5,
                       letterbox: bool = True) -> DetectionArrays:
        """:func:`get_region_detections` of one image's output."""
        return get_region_detections(output, self, im_w, im_h, net_w, net_h, thresh, letterbox)

    def table_line(self, in_shape: Shape) -> str:
        return "detection"  # make_region_layer's fprintf


def region_rows(output: Tensor, layer: "RegionLayer") -> Tuple[Tensor, ...]:
    """One image's [region] output as Darknet's detection rows, in its fill order.

    Returns (col, row, anchor, x, y, tw, th, scale, class_probs) per row; x, y activated.
    pjreddie (``get_region_detections``): row ``n*H*W + cell`` (anchor-major), entries
    read from the planar ``l.output`` (``entry_index``): objectness at ``coords`` (1 with
    ``background``), class j at ``coords+1+j``. AlexeyAB (``get_region_boxes``, called by
    ``custom_get_region_detections``): row ``cell*num + n`` (cell-major), record
    ``row*(classes+5)`` of its transposed buffer -- x, y, w, h, objectness, classes,
    whatever ``coords`` is -- with the logistic on x, y applied here.
    """
    _, lh, lw = output.shape
    num, classes, cells = layer.num, layer.classes, lh * lw
    if layer.cell_major:
        stride = classes + 5
        flat = output.reshape(-1).float()
        index = torch.arange(cells * num)
        rec = flat[(index * stride)[:, None] + torch.arange(stride)[None, :]]
        cell, anchor = index // num, index % num
        tx, ty = logistic(rec[:, 0]), logistic(rec[:, 1])
        scale, cls = rec[:, 4], rec[:, 5:]
    else:
        coords = layer.coords
        p = output.reshape(num, layer.entry_count, cells).permute(0, 2, 1)
        p = p.reshape(num * cells, layer.entry_count).float()
        index = torch.arange(num * cells)
        anchor, cell = index // cells, index % cells
        tx, ty = p[:, 0], p[:, 1]
        scale = torch.ones(num * cells) if layer.background else p[:, coords]
        cls = p[:, coords + 1:coords + 1 + classes]
        rec = p
    return cell % lw, cell // lw, anchor, tx, ty, rec[:, 2], rec[:, 3], scale, cls


def get_region_detections(output: Tensor, layer, im_w: int, im_h: int, net_w: int, net_h: int,
                          thresh: float, letterbox: bool = True) -> DetectionArrays:
    """Darknet's detections of one image's (num*(coords+classes+1), H, W) [region] output
    (the layer's ``l.output``): H*W*num rows, every cell and anchor, in Darknet's order.

    x = (col + x)/W, y = (row + y)/H (float32); w = exp(tw)*anchor_w/W, h = exp(th)*anchor_h/H
    (double, anchors in grid cells); then the letterbox correction (``correct_region_boxes``
    is ``correct_yolo_boxes``' arithmetic). pjreddie (``get_region_detections``): objectness
    = scale if scale > thresh else 0, prob = scale*class_prob where > thresh and objectness
    != 0. AlexeyAB (``custom_get_region_detections``): objectness = 1 for every row, prob =
    scale*class_prob where > thresh (scale = 0 below .5 with ``classfix=-1``), and its own
    record layout (see :func:`region_rows`). ``[region]`` with a softmax tree (YOLO9000) is
    not built, so ``hier_thresh`` never matters.
    """
    output = output.detach().cpu()
    _, lh, lw = output.shape
    col, row, anchor, tx, ty, tw, th, scale, cls = region_rows(output, layer)
    t = float(_F32(thresh))
    anchors = torch.tensor(np.asarray(layer.anchors_wh, dtype=_F32)).double()[anchor]
    x = (col.float() + tx) / float(lw)
    y = (row.float() + ty) / float(lh)
    w = (torch.exp(tw.double()) * anchors[:, 0] / lw).float()
    h = (torch.exp(th.double()) * anchors[:, 1] / lh).float()
    boxes = correct_yolo_boxes(torch.stack([x, y, w, h], dim=1), im_w, im_h, net_w, net_h,
                               letterbox, "alexeyab" if layer.cell_major else "pjreddie")
    zero = torch.zeros((), dtype=torch.float32)
    if layer.cell_major:
        if layer.opts.classfix == -1:
            scale = torch.where(scale < 0.5, zero, scale)
        objectness = torch.ones_like(scale)
        probs = scale[:, None] * cls
        probs = torch.where(probs > t, probs, zero)
    else:
        objectness = torch.where(scale > t, scale, zero)
        probs = scale[:, None] * cls
        probs = torch.where((probs > t) & (objectness != 0)[:, None], probs, zero)
    return DetectionArrays(boxes.numpy().astype(_F32), objectness.numpy().astype(_F32),
                           probs.numpy().astype(_F32))



@register("region", options=RegionOptions)
def build(ctx: BuildContext) -> RegionLayer:
    r = ctx.reader
    o = r.read(RegionOptions)
    r.check(o.tree is None, f"tree={o.tree} (YOLO9000 hierarchical softmax) is not supported",
            "tree")
    r.check(o.num >= 1, f"num must be >= 1, got {o.num}", "num")
    r.check(o.classes >= 1, f"classes must be >= 1, got {o.classes}", "classes")
    if ctx.dialect.name == "alexeyab":
        # AlexeyAB's CPU forward reads objectness at entry 4 and the classes from entry 5
        r.check(o.coords >= 4, f"coords must be >= 4 for AlexeyAB's [region], got {o.coords}",
                "coords")
    else:
        r.check(o.coords >= 2, f"coords must be >= 2 (x, y come first), got {o.coords}",
                "coords")
    anchors = o.anchors or []
    r.check(len(anchors) <= 2 * o.num,
            f"anchors has {len(anchors)} values but num={o.num} takes {2 * o.num} "
            f"(Darknet would write past its biases)", "anchors")
    expected = o.num * (o.coords + o.classes + 1)
    i = ctx.input_shape
    r.check(i.c == expected,
            f"the previous layer has {i.c} channels but num={o.num} anchors x ({o.coords} coords "
            f"+ {o.classes} classes + 1) needs {expected}", "classes")
    return RegionLayer(ctx.index, i, o, ctx.dialect)
