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

``tree=`` (YOLO9000, :mod:`darknet_py.tree`): the classes get the hierarchical softmax
instead of the logistic/softmax. AlexeyAB: each record's classes, group by group,
temperature 1. pjreddie's CPU forward calls ``softmax_cpu`` on group ``k`` with offset
``coords + 1 + (sizes of the groups before)`` (not scaled by the cell count), stride and
group count ``num*w*h`` and ``l.temperature``, which ``parse_region`` never sets (0):
every value it writes is NaN (``x/0 - max/0``), i.e. the flat range from index
``coords+1`` to the end of the farthest group's block; the rest keeps the logistic
(x, y, objectness) or the raw input (class values). The module does the same (its GPU
kernel would give the real softmax).

Training with a tree: AlexeyAB's CPU forward_region_layer (:func:`region_delta_alexeyab`:
the hierarchical delta_region_class, class-only truths, ``map=``); pjreddie's is refused, its
NaN output makes the loss NaN. ``map=`` (a class map file, ``read_map``): the truth loop
learns ``map[class]``, in both forks.

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

import numpy as np

import torch
from torch import Tensor

from .. import tree as _tree
from ..cfg.options import option
from ..postprocess import DetectionArrays
from .activations import logistic
from .base import BuildContext, DarknetLayer, LossStep, Shape, head_output
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
    tree: Optional[str] = option(None, doc="YOLO9000 hierarchy file (hierarchical softmax)")
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
    ab_forward_zeroes_delta = True
    elementwise = True

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
        #: YOLO9000's softmax tree (``tree=``), or None
        self.tree: Optional[_tree.Tree] = None

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
        # Darknet's backward adds l.delta (already in the input's layout) to the previous
        # layer: the gradient passes to x untouched
        return head_output(x, self._activate)

    def _activate(self, x: Tensor) -> Tensor:
        v = self._anchor_major(x)
        n_e, c = self.entry_count, self.coords
        if self.cell_major:
            # forward_region_layer (AlexeyAB, CPU): flatten, then index+4 and index+5 hard-coded
            parts = [v[:, :, :4], logistic(v[:, :, 4:5])]
            if self.tree is not None:
                n = self.tree.n
                cls = _tree.hier_softmax(v[:, :, 5:5 + n].movedim(2, -1), self.tree)
                parts += [cls.movedim(-1, 2), v[:, :, 5 + n:]]
            elif self.softmax:
                parts += [darknet_softmax(v[:, :, 5:5 + self.classes], 2),
                          v[:, :, 5 + self.classes:]]
            else:
                parts.append(v[:, :, 5:])
            y = torch.cat(parts, dim=2)
            b, _, h, w = x.shape
            return y.reshape(b, n_e * self.num, h * w).transpose(1, 2).reshape(x.shape)
        parts = [logistic(v[:, :, :2]), v[:, :, 2:c]]
        if self.tree is not None:
            obj = v[:, :, c:c + 1]
            parts += [obj if self.background else logistic(obj), v[:, :, c + 1:]]
            return self._pjreddie_tree_softmax(x, torch.cat(parts, dim=2).reshape(x.shape))
        if self.softmax and self.background:
            # the softmax covers [background=objectness entry, classes...]
            parts.append(darknet_softmax(v[:, :, c:], 2))
        else:
            obj = v[:, :, c:c + 1]
            parts.append(obj if self.background else logistic(obj))
            cls = v[:, :, c + 1:]
            parts.append(darknet_softmax(cls, 2) if self.softmax else logistic(cls))
        return torch.cat(parts, dim=2).reshape(x.shape)

    def _pjreddie_tree_softmax(self, x: Tensor, y: Tensor) -> Tensor:
        """pjreddie's CPU ``softmax_cpu(net.input + count, size_k, batch, inputs, num*w*h, 1,
        num*w*h, l.temperature, l.output + count)`` per group k (``count`` = coords + 1 +
        the sizes of the groups before): the softmax of the ``size_k`` values ``count + g +
        i*num*w*h`` for every g < num*w*h, written over ``y``. ``l.temperature`` is 0 here
        (``parse_region`` never sets it), so at each softmax's largest value ``x/0 - max/0``
        is inf - inf (or NaN - NaN at 0): its ``exp`` and the sum are NaN, and so is every
        value written, whatever the input. The blocks ``[count, count + size_k*num*w*h)``
        overlap and start at ``coords + 1``: the NaN covers that index up to the farthest
        block end, in every image."""
        b = x.shape[0]
        cells = self.num * x.shape[2] * x.shape[3]
        count, end = self.coords + 1, 0
        for size in self.tree.group_size:
            if size:
                end = max(end, count + size * cells)
            count += size
        out = y.reshape(b, -1).clone()
        if end:
            out[:, self.coords + 1:end] = float("nan")
        return out.reshape(x.shape)

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

    def input_channels(self, classes: int) -> int:
        """Channels the layer before must give for ``classes`` classes: num*(coords+classes+1)."""
        return self.num * (self.coords + classes + 1)

    # -- training ----------------------------------------------------------------------
    has_cost = True

    def train_refusal(self) -> Optional[str]:
        if self.tree is not None and not self.cell_major:
            return ("[region] tree= in pjreddie's Darknet: its CPU forward_region_layer "
                    "softmaxes the tree's groups with l.temperature, which parse_region never "
                    "sets (0), so every class value it writes, and the loss, is NaN (only its "
                    "CUDA softmax_tree is usable); darknet_py does not guess")
        if self.opts.map is not None and _tree.resolve_data_file(self.opts.map) is None:
            looked = ", ".join(str(c) for c in _tree.data_candidates(self.opts.map))
            return (f"[region] map file {self.opts.map} not found (looked in {looked}; set "
                    f"${_tree.DATA_ENV}): Darknet's parse_region reads it, training maps each "
                    f"truth class through it")
        return None

    def class_map(self) -> Optional[Tuple[int, ...]]:
        """The ``map=`` file as Darknet's ``read_map`` reads it (None without ``map=``)."""
        if self.opts.map is None:
            return None
        path = _tree.resolve_data_file(self.opts.map)
        if path is None:
            raise ValueError(f"layer {self.index} [region]: {self.train_refusal()}")
        return _tree.read_map(path)

    def loss(self, output: Tensor, truth: Tensor, net_size: Tuple[int, int], seen: int = 0,
             step: Optional[LossStep] = None) -> Tuple[Tensor, Tensor]:
        if self.tree is not None and not self.cell_major:
            raise ValueError(f"layer {self.index} {self.train_refusal()}")
        if self.cell_major:
            return region_delta_alexeyab(self, output.detach(), truth, seen)
        return region_delta_pjreddie(self, output.detach(), truth, seen)

    def loss_reaches_input(self) -> bool:
        # pjreddie's CPU backward_region_layer is commented out; AlexeyAB's adds l.delta
        return self.cell_major

    def input_delta(self, delta: Tensor, output: Tensor) -> Tensor:
        """pjreddie's GPU backward_region_layer (its CPU one is empty): the logistic gradient
        o*(1-o) on x, y and objectness (not with background), then add. AlexeyAB's deltas
        already carry it."""
        if self.cell_major:
            return delta
        b, _, h, w = delta.shape
        d = delta.view(b, self.num, self.entry_count, h, w).clone()
        o = output.detach().view_as(d)
        entries = [0, 1] + ([] if self.background else [self.coords])
        for e in entries:
            d[:, :, e] = d[:, :, e] * ((1 - o[:, :, e]) * o[:, :, e])
        return d.view_as(delta)

    def describe(self, in_shape: Shape) -> str:
        return ""

    def get_detections(self, output: Tensor, im_w: int, im_h: int, net_w: int, net_h: int,
                       thresh: float, hier_thresh: float = 0.5,
                       letterbox: bool = True) -> DetectionArrays:
        """:func:`get_region_detections` of one image's output."""
        return get_region_detections(output, self, im_w, im_h, net_w, net_h, thresh, letterbox,
                                     hier_thresh)

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
                          thresh: float, letterbox: bool = True,
                          hier_thresh: float = 0.5) -> DetectionArrays:
    """Darknet's detections of one image's (num*(coords+classes+1), H, W) [region] output
    (the layer's ``l.output``): H*W*num rows, every cell and anchor, in Darknet's order.

    x = (col + x)/W, y = (row + y)/H (float32); w = exp(tw)*anchor_w/W, h = exp(th)*anchor_h/H
    (double, anchors in grid cells); then the letterbox correction (``correct_region_boxes``
    is ``correct_yolo_boxes``' arithmetic). pjreddie (``get_region_detections``): objectness
    = scale if scale > thresh else 0, prob = scale*class_prob where > thresh and objectness
    != 0. AlexeyAB (``custom_get_region_detections``): objectness = 1 for every row, prob =
    scale*class_prob where > thresh (scale = 0 below .5 with ``classfix=-1``), and its own
    record layout (see :func:`region_rows`).

    With a softmax tree (YOLO9000; Darknet's ``map`` argument is 0 in ``detector test``):
    each row's class vector first gets ``hierarchy_predictions`` (every class times its
    parent's product). pjreddie then gives one class, ``hierarchy_top_prediction`` with
    ``hier_thresh``, the probability scale (if scale > thresh, else 0), the class vector
    starting at entry ``coords + !background``. AlexeyAB (``get_region_boxes``) keeps the
    last class whose product is > .5 and gives it that product (not times scale; 0 unless
    scale > thresh); ``hier_thresh`` is unused. Darknet does this in place on ``l.output``
    (a second call would multiply again); here it works on a copy.
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
    if layer.tree is not None:
        return _tree_detections(output, layer, boxes, scale, cls, t, hier_thresh)
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


def _tree_detections(output: Tensor, layer: "RegionLayer", boxes: Tensor, scale: Tensor,
                     cls: Tensor, t: float, hier_thresh: float) -> DetectionArrays:
    """The softmax-tree branch of :func:`get_region_detections` (see there)."""
    tree = layer.tree
    scale = scale.numpy().astype(_F32)
    rows = scale.shape[0]
    probs = np.zeros((rows, layer.classes), dtype=_F32)
    if layer.cell_major:
        if layer.opts.classfix == -1:
            scale = np.where(scale < 0.5, _F32(0), scale)
        pred = _tree.hierarchy_predictions(cls.numpy().astype(_F32).copy(), tree)
        kept = _tree.leaf_first_above(pred, 0.5)
        probs = np.where((scale > _F32(t))[:, None], kept, _F32(0)).astype(_F32)
        objectness = np.ones(rows, dtype=_F32)
    else:
        start = layer.coords + (0 if layer.background else 1)
        p = output.detach().float().reshape(layer.num, layer.entry_count, -1)
        vec = p[:, start:start + layer.classes].permute(0, 2, 1).reshape(rows, layer.classes)
        pred = _tree.hierarchy_predictions(vec.numpy().astype(_F32).copy(), tree)
        objectness = np.where(scale > _F32(t), scale, _F32(0)).astype(_F32)
        for r in range(rows):
            j = _tree.hierarchy_top_prediction(pred[r], tree, hier_thresh)
            probs[r, j] = scale[r] if scale[r] > _F32(t) else 0
    return DetectionArrays(boxes.numpy().astype(_F32), objectness, probs)



@register("region", options=RegionOptions)
def build(ctx: BuildContext) -> RegionLayer:
    r = ctx.reader
    o = r.read(RegionOptions)
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
    layer = RegionLayer(ctx.index, i, o, ctx.dialect)
    if o.tree is not None:
        layer.tree = _tree.tree_option(r, o.tree)
        r.check(layer.tree.n == o.classes,
                f"the tree {o.tree} has {layer.tree.n} classes but classes={o.classes} (Darknet "
                f"would read or write past the class entries)", "tree")
    return layer


# =====================================================================================
# Training: pjreddie forward_region_layer (src/region_layer.c) in train mode
# =====================================================================================
#: region_layer.c reads at most 30 truths per image
REGION_MAX_BOXES = 30


def region_delta_pjreddie(layer: "RegionLayer", output: Tensor, truth: Tensor, seen: int
                          ) -> Tuple[Tensor, Tensor]:
    """pjreddie forward_region_layer (train): ``l.delta`` and ``*(l.cost)``, vectorised.

    Objectness noobject_scale*(0 - o) (background: 1 - o), cleared when the best IoU with a
    truth exceeds ``thresh``; while ``seen < 12800`` every box is pulled to its anchor at
    the cell centre (scale .01); per truth (at most 30): the best anchor of its cell by
    shape IoU (the anchors' own shapes with bias_match, else the predicted ones), box
    deltas coord_scale*(2 - w*h), objectness object_scale*(1 - o) (rescore: iou - o;
    background: 0 - o), classes class_scale*(onehot - o) (logistic classes keep earlier
    truths' classes on the cell; softmax: the last truth's vector). The CPU backward of
    this layer is empty in pjreddie, so this loss is reported but trains nothing.
    """
    from .yolo import box_iou, truth_rows, _f32
    if layer.coords != 4:
        raise ValueError(f"layer {layer.index} [region]: training with coords={layer.coords} "
                         f"is not supported (only 4)")
    o = layer.opts
    cmap = layer.class_map()
    bsz, _, h, w = output.shape
    n, classes, k = layer.num, layer.classes, layer.entry_count
    out = _f32(output).view(bsz, n, k, h, w)
    dev = out.device
    delta = torch.zeros_like(out)
    anchors = torch.tensor(layer.anchors[:2 * n], dtype=torch.float32, device=dev).view(n, 2)
    rows, valid = truth_rows(truth, REGION_MAX_BOXES, 5)
    ii = torch.arange(w, dtype=torch.float32, device=dev).view(1, 1, 1, w)
    jj = torch.arange(h, dtype=torch.float32, device=dev).view(1, 1, h, 1)
    aw = anchors[:, 0].view(1, -1, 1, 1).double()
    ah = anchors[:, 1].view(1, -1, 1, 1).double()
    px = (ii + out[:, :, 0]) / w
    py = (jj + out[:, :, 1]) / h
    pw = _f32(torch.exp(out[:, :, 2].double()) * aw / w)
    ph = _f32(torch.exp(out[:, :, 3].double()) * ah / h)
    shp = (bsz, 1, 1, 1, -1)
    iou = box_iou(px.unsqueeze(-1), py.unsqueeze(-1), pw.unsqueeze(-1), ph.unsqueeze(-1),
                  rows[..., 0].view(shp), rows[..., 1].view(shp), rows[..., 2].view(shp),
                  rows[..., 3].view(shp))
    iou = torch.where(valid.view(shp), iou, torch.full_like(iou, -1.0))
    best_iou = iou.max(dim=-1).values.clamp(min=0) if rows.shape[1] else torch.zeros_like(px)
    obj = out[:, :, 4]
    noobj = np.float32(o.noobject_scale)
    obj_delta = noobj * ((1 - obj) if layer.background else (0 - obj))
    obj_delta = torch.where(best_iou > o.thresh, torch.zeros_like(obj_delta), obj_delta)
    delta[:, :, 4] = obj_delta
    if seen < 12800:
        # delta_region_box toward (cell centre, anchor) with scale .01
        tx = (ii + np.float32(0.5)) / w
        ty = (jj + np.float32(0.5)) / h
        tw = anchors[:, 0].view(1, -1, 1, 1) / w
        th = anchors[:, 1].view(1, -1, 1, 1) / h
        s = np.float32(0.01)
        delta[:, :, 0] = s * ((tx * w - ii) - out[:, :, 0])
        delta[:, :, 1] = s * ((ty * h - jj) - out[:, :, 1])
        delta[:, :, 2] = s * (_f32(torch.log((tw * w / anchors[:, 0].view(1, -1, 1, 1)).double()))
                              - out[:, :, 2])
        delta[:, :, 3] = s * (_f32(torch.log((th * h / anchors[:, 1].view(1, -1, 1, 1)).double()))
                              - out[:, :, 3])
    b_idx, t_idx = valid.nonzero(as_tuple=True)
    if b_idx.numel():
        sel = rows[b_idx, t_idx]
        ci = (sel[:, 0] * w).to(torch.int64)
        cj = (sel[:, 1] * h).to(torch.int64)
        loc = cj * w + ci
        ok = (loc >= 0) & (loc < h * w)
        b_idx, t_idx, sel, ci, cj, loc = (v[ok] for v in (b_idx, t_idx, sel, ci, cj, loc))
        cells = out.permute(0, 3, 4, 1, 2)[b_idx, cj, ci]  # (m, n, k)
        if o.bias_match:
            cw = (anchors[:, 0] / w).view(1, -1).expand(sel.shape[0], n)
            chh = (anchors[:, 1] / h).view(1, -1).expand(sel.shape[0], n)
        else:
            cw = _f32(torch.exp(cells[:, :, 2].double()) * anchors[:, 0].double() / w)
            chh = _f32(torch.exp(cells[:, :, 3].double()) * anchors[:, 1].double() / h)
        zero = torch.zeros((), device=dev)
        shape_iou = box_iou(zero, zero, cw, chh, zero, zero, sel[:, 2:3], sel[:, 3:4])
        bmax = shape_iou.max(dim=1)
        best_n = torch.where(bmax.values > 0, bmax.indices, torch.zeros_like(bmax.indices))
        key = ((b_idx * n + best_n) * h + cj) * w + ci
        order = b_idx * rows.shape[1] + t_idx
        from .yolo import last_writer
        win = last_writer(key, order, bsz * n * h * w)
        view = out.permute(0, 1, 3, 4, 2)  # (B, n, H, W, k)
        dview = delta.permute(0, 1, 3, 4, 2)
        wb, wn, wj, wi, wt = b_idx[win], best_n[win], cj[win], ci[win], sel[win]
        x = view[wb, wn, wj, wi]
        scale = np.float32(o.coord_scale) * (2 - wt[:, 2] * wt[:, 3])
        t0 = wt[:, 0] * w - wi.to(torch.float32)
        t1 = wt[:, 1] * h - wj.to(torch.float32)
        t2 = _f32(torch.log((wt[:, 2] * w / anchors[wn, 0]).double()))
        t3 = _f32(torch.log((wt[:, 3] * h / anchors[wn, 1]).double()))
        box = torch.stack([scale * (t0 - x[:, 0]), scale * (t1 - x[:, 1]),
                           scale * (t2 - x[:, 2]), scale * (t3 - x[:, 3])], dim=1)
        d = dview[wb, wn, wj, wi]
        d[:, :4] = box
        objs = np.float32(o.object_scale)
        if layer.background:
            d[:, 4] = objs * (0 - x[:, 4])
        elif o.rescore:
            pbx = (wi.to(torch.float32) + x[:, 0]) / w
            pby = (wj.to(torch.float32) + x[:, 1]) / h
            pbw = _f32(torch.exp(x[:, 2].double()) * anchors[wn, 0].double() / w)
            pbh = _f32(torch.exp(x[:, 3].double()) * anchors[wn, 1].double() / h)
            piou = box_iou(pbx, pby, pbw, pbh, wt[:, 0], wt[:, 1], wt[:, 2], wt[:, 3])
            d[:, 4] = objs * (piou - x[:, 4])
        else:
            d[:, 4] = objs * (1 - x[:, 4])
        cls_scale = np.float32(o.class_scale)
        all_cls = sel[:, 4].to(torch.int64)
        if cmap is not None:  # class = l.map[class]
            all_cls = _map_classes(layer, all_cls, cmap)
        if int(all_cls.min()) < 0 or int(all_cls.max()) >= classes:
            from ..errors import DataError
            raise DataError(f"truth class outside 0..{classes - 1} of this [region] "
                            f"(pjreddie's Darknet would write outside its delta)",
                            layer=layer.index)
        if layer.softmax:
            # delta_region_class with tag=0: every truth writes the full vector, the last wins
            target = torch.zeros(wb.shape[0], classes, device=dev)
            target[torch.arange(wb.shape[0], device=dev), all_cls[win]] = 1.0
        else:
            # logistic classes: the first truth writes the vector, later ones their class
            tgt = torch.zeros(bsz, n, h, w, classes, device=dev)
            tgt[b_idx, best_n, cj, ci, all_cls] = 1.0
            target = tgt[wb, wn, wj, wi]
        d[:, 5:5 + classes] = cls_scale * (target - x[:, 5:5 + classes])
        dview[wb, wn, wj, wi] = d
    delta = delta.view(bsz, n * k, h, w)
    cost = (delta.double() ** 2).sum().to(torch.float32)
    return delta, cost


def region_delta_alexeyab(layer: "RegionLayer", output: Tensor, truth: Tensor, seen: int
                          ) -> Tuple[Tensor, Tensor]:
    """AlexeyAB forward_region_layer (train, CPU): ``l.delta`` (flattened back to the input's
    layout, as Darknet does before its backward adds it) and ``*(l.cost)``.

    On the cell-major output (x, y raw, objectness logistic, classes softmax or raw):
    objectness noobject_scale*(0 - o)*o(1-o) (classfix=-1: best IoU - o), cleared when the
    best IoU exceeds ``thresh`` (classfix>0 then also learns the best truth's class);
    the seen < 12800 prefill; per truth (up to ``max``, classes >= classes skipped): the
    best anchor of its cell, box deltas coord_scale*(t - logistic(x))*gradient for x, y
    and coord_scale*(t - x) for w, h, objectness object_scale*(1 - o)*o(1-o) (rescore:
    iou - o), the class vector (or focal loss) of its class (``map=``: ``map[class]``); a
    later truth on the same cell and anchor overwrites everything.

    With a tree (YOLO9000) delta_region_class walks from the class up to its root: each
    group on the way gets class_scale*(0 - p), the path's classes class_scale*(1 - p)
    (nothing for a negative class: objectness and box only); a later truth on the same cell
    and anchor overwrites only the groups on its own path. An image whose truth list (before
    its first x = 0) has a row with x and y > 100000 (a class-only label) learns only that
    class, at the cell and anchor where objectness times the class's path probability is
    largest: every other delta of that image is 0.
    """
    from .yolo import ab_box_iou, last_writer, truth_rows, _f32
    o = layer.opts
    if layer.coords != 4:
        raise ValueError(f"layer {layer.index} [region]: training with coords={layer.coords} "
                         f"is not supported (only 4)")
    tree = layer.tree
    cmap = layer.class_map()
    bsz, _, h, w = output.shape
    n, classes, k = layer.num, layer.classes, layer.entry_count
    hw = h * w
    dev = output.device
    v = _f32(output).reshape(bsz, hw, n, k)
    delta = torch.zeros_like(v)
    anchors = torch.tensor(layer.anchors[:2 * n], dtype=torch.float32, device=dev).view(n, 2)
    rows, valid = truth_rows(truth, o.max, 5)
    cls_all = rows[..., 4].to(torch.int64)
    only = torch.zeros(bsz, dtype=torch.bool, device=dev)
    if tree is not None:
        marks = valid & (rows[..., 0] > 100000) & (rows[..., 1] > 100000)
        only = marks.any(dim=1)
        valid = valid & ~only.unsqueeze(1)  # the class-only images skip everything else
    usable = valid & (cls_all < classes)
    cell = torch.arange(hw, device=dev)
    ci = (cell % w).to(torch.float32).view(1, hw, 1)
    cj = (cell // w).to(torch.float32).view(1, hw, 1)
    sx, sy = logistic(v[..., 0]), logistic(v[..., 1])
    px, py = (ci + sx) / w, (cj + sy) / h
    pw = _f32(torch.exp(v[..., 2].double()) * anchors[:, 0].double() / w)
    ph = _f32(torch.exp(v[..., 3].double()) * anchors[:, 1].double() / h)
    shp = (bsz, 1, 1, -1)
    iou = ab_box_iou(px.unsqueeze(-1), py.unsqueeze(-1), pw.unsqueeze(-1), ph.unsqueeze(-1),
                     rows[..., 0].view(shp), rows[..., 1].view(shp), rows[..., 2].view(shp),
                     rows[..., 3].view(shp))
    iou = torch.where(usable.view(shp), iou, torch.full_like(iou, -1.0))
    best = iou.max(dim=-1)
    best_iou = best.values.clamp(min=0)
    best_t = torch.where(best.values > 0, best.indices, torch.zeros_like(best.indices))
    obj = v[..., 4]
    grad_obj = (1 - obj) * obj
    noobj = np.float32(o.noobject_scale)
    if o.classfix == -1:
        obj_delta = noobj * ((best_iou - obj) * grad_obj)
    else:
        obj_delta = noobj * ((0 - obj) * grad_obj)
        ignored = best_iou > o.thresh
        obj_delta = torch.where(ignored, torch.zeros_like(obj_delta), obj_delta)
        if o.classfix > 0 and bool(ignored.any()):
            bi = torch.arange(bsz, device=dev).view(-1, 1, 1).expand_as(best_t)
            bcls = cls_all[bi, best_t]
            scale = np.float32(o.class_scale) * (obj if o.classfix == 2 else torch.ones_like(obj))
            if tree is not None:
                # delta_region_class(best_class_id) at each ignored cell: its path's groups
                ib, il, ia = ignored.nonzero(as_tuple=True)
                r, e, t = _tree_pairs(tree, bcls[ib, il, ia])
                rb, rl, ra = ib[r], il[r], ia[r]
                delta[rb, rl, ra, 5 + e] = scale[rb, rl, ra] * (t - v[rb, rl, ra, 5 + e])
            else:
                vec = _region_class_vec(v[..., 5:5 + classes], bcls, classes, scale,
                                        o.focal_loss)
                delta[..., 5:5 + classes] = torch.where(ignored.unsqueeze(-1), vec,
                                                        delta[..., 5:5 + classes])
    delta[..., 4] = obj_delta
    if seen < 12800:
        tx = (ci + np.float32(0.5)) / w
        ty = (cj + np.float32(0.5)) / h
        tw = anchors[:, 0] / w
        th = anchors[:, 1] / h
        s = np.float32(0.01)
        delta[..., 0] = s * ((tx * w - ci) - sx) * ((1 - sx) * sx)
        delta[..., 1] = s * ((ty * h - cj) - sy) * ((1 - sy) * sy)
        delta[..., 2] = s * (_f32(torch.log((tw * w / anchors[:, 0]).double())) - v[..., 2])
        delta[..., 3] = s * (_f32(torch.log((th * h / anchors[:, 1]).double())) - v[..., 3])
    b_idx, t_idx = usable.nonzero(as_tuple=True)
    if b_idx.numel():
        sel = rows[b_idx, t_idx]
        ti = (sel[:, 0] * w).to(torch.int64)
        tj = (sel[:, 1] * h).to(torch.int64)
        loc = tj * w + ti
        ok = (loc >= 0) & (loc < hw)
        b_idx, t_idx, sel, ti, tj, loc = (x[ok] for x in (b_idx, t_idx, sel, ti, tj, loc))
        cellv = v[b_idx, loc]  # (m, n, k)
        if o.bias_match:
            cw = (anchors[:, 0] / w).view(1, -1).expand(sel.shape[0], n)
            chh = (anchors[:, 1] / h).view(1, -1).expand(sel.shape[0], n)
        else:
            cw = _f32(torch.exp(cellv[:, :, 2].double()) * anchors[:, 0].double() / w)
            chh = _f32(torch.exp(cellv[:, :, 3].double()) * anchors[:, 1].double() / h)
        zero = torch.zeros((), device=dev)
        shape_iou = ab_box_iou(zero, zero, cw, chh, zero, zero, sel[:, 2:3], sel[:, 3:4])
        bmax = shape_iou.max(dim=1)
        best_n = torch.where(bmax.values > 0, bmax.indices, torch.zeros_like(bmax.indices))
        cls_t = sel[:, 4].to(torch.int64)
        if cmap is not None:  # class_id = l.map[class_id], after the classes check
            cls_t = _map_classes(layer, cls_t, cmap)
        key = (b_idx * hw + loc) * n + best_n
        order = b_idx * rows.shape[1] + t_idx
        win = last_writer(key, order, bsz * hw * n)
        wb, wl, wn, wt = b_idx[win], loc[win], best_n[win], sel[win]
        wi, wj = ti[win].to(torch.float32), tj[win].to(torch.float32)
        x = v[wb, wl, wn]
        xs, ys = logistic(x[:, 0]), logistic(x[:, 1])
        pbw = _f32(torch.exp(x[:, 2].double()) * anchors[wn, 0].double() / w)
        pbh = _f32(torch.exp(x[:, 3].double()) * anchors[wn, 1].double() / h)
        piou = ab_box_iou((wi + xs) / w, (wj + ys) / h, pbw, pbh,
                          wt[:, 0], wt[:, 1], wt[:, 2], wt[:, 3])
        cs = np.float32(o.coord_scale)
        d = delta[wb, wl, wn]
        d[:, 0] = cs * ((wt[:, 0] * w - wi) - xs) * ((1 - xs) * xs)
        d[:, 1] = cs * ((wt[:, 1] * h - wj) - ys) * ((1 - ys) * ys)
        d[:, 2] = cs * (_f32(torch.log((wt[:, 2] * w / anchors[wn, 0]).double())) - x[:, 2])
        d[:, 3] = cs * (_f32(torch.log((wt[:, 3] * h / anchors[wn, 1]).double())) - x[:, 3])
        ob = x[:, 4]
        target = piou if o.rescore else torch.ones_like(ob)
        d[:, 4] = np.float32(o.object_scale) * (target - ob) * ((1 - ob) * ob)
        if tree is None:
            wc = cls_t[win]
            if o.focal_loss and bool(((wc < 0) | (wc >= classes)).any()):
                from ..errors import DataError
                raise DataError(f"[region] focal_loss with a truth class outside "
                                f"0..{classes - 1} (Darknet would read past the classes)",
                                layer=layer.index)
            d[:, 5:5 + classes] = _region_class_vec(x[:, 5:5 + classes], wc, classes,
                                                    np.float32(o.class_scale), o.focal_loss)
        delta[wb, wl, wn] = d
        if tree is not None:
            # every truth writes its path's groups; per entry the last truth wins
            _check_tree_classes(layer, cls_t, "truth")
            r, e, t = _tree_pairs(tree, cls_t)
            slot = key[r] * classes + e
            uniq, inv = torch.unique(slot, return_inverse=True)
            top = torch.full((uniq.shape[0],), -1, dtype=order.dtype, device=dev)
            top.scatter_reduce_(0, inv, order[r], reduce="amax")
            keep = top[inv] == order[r]
            r, e, t = r[keep], e[keep], t[keep]
            rb, rl, rn = b_idx[r], loc[r], best_n[r]
            delta[rb, rl, rn, 5 + e] = np.float32(o.class_scale) * (t - v[rb, rl, rn, 5 + e])
    if bool(only.any()):
        _class_only_deltas(layer, v, delta, rows, marks, only)
    # flatten(l.delta, ..., 0): back to the input's [anchor][entry][cell] layout
    delta = delta.permute(0, 2, 3, 1).reshape(bsz, n * k, h, w).contiguous()
    cost = (delta.double() ** 2).sum().to(torch.float32)
    return delta, cost


def _class_only_deltas(layer: "RegionLayer", v: Tensor, delta: Tensor, rows: Tensor,
                       marks: Tensor, only: Tensor) -> None:
    """AlexeyAB's ``truth.x > 100000 && truth.y > 100000`` branch, for the images in
    ``only``: the first such truth's class (no map, no classes check) is learned at the
    record (cell*num + anchor) with the largest objectness * get_hierarchy_probability (the
    first of equals, record 0 when none is > 0); the image's delta is nothing else."""
    tree = layer.tree
    bsz, hw, n, k = v.shape
    ib = only.nonzero().flatten()
    first = marks[ib].to(torch.int64).argmax(dim=1)
    cls = rows[ib, first, 4].to(torch.int64)
    _check_tree_classes(layer, cls, "class-only truth")
    rec = v[ib].reshape(ib.shape[0], hw * n, k)
    paths = [tree.path(c) for c in cls.tolist()]
    depth = max(len(p) for p in paths)
    prob = torch.ones(rec.shape[:2], dtype=torch.float32, device=v.device)
    for d in range(depth):  # p = p * x[c], up the path, in float
        node = torch.tensor([p[d] if d < len(p) else -1 for p in paths], device=v.device)
        factor = rec[torch.arange(ib.shape[0]), :, 5 + node.clamp(min=0)]
        prob = torch.where((node >= 0).unsqueeze(1), prob * factor, prob)
    score = rec[..., 4] * prob
    mx = score.max(dim=1)
    maxi = torch.where(mx.values > 0, score.argmax(dim=1), torch.zeros_like(mx.indices))
    delta[ib] = 0
    r, e, t = _tree_pairs(tree, cls)
    b, m = ib[r], maxi[r]
    l, a = m // n, m % n
    delta[b, l, a, 5 + e] = np.float32(layer.opts.class_scale) * (t - v[b, l, a, 5 + e])


def _map_classes(layer: "RegionLayer", cls: Tensor, cmap: Tuple[int, ...]) -> Tensor:
    """``class = l.map[class]`` of forward_region_layer's truth loop (``map=``); a class
    outside the map's lines is refused (Darknet would read past its map)."""
    from ..errors import DataError
    if cls.numel() and (int(cls.min()) < 0 or int(cls.max()) >= len(cmap)):
        bad = int(cls.min()) if int(cls.min()) < 0 else int(cls.max())
        raise DataError(f"[region] truth class {bad} outside the {len(cmap)} lines of map "
                        f"{layer.opts.map} (Darknet would read past its map)", layer=layer.index)
    return torch.tensor(cmap, dtype=torch.int64, device=cls.device)[cls]


def _onehot(cls: Tensor, classes: int) -> Tensor:
    """``(n == class) ? 1 : 0`` for n < classes (all 0 for a class outside them)."""
    return (torch.arange(classes, device=cls.device) == cls.unsqueeze(-1)).to(torch.float32)


def _tree_pairs(tree: "_tree.Tree", cls: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """The hierarchical delta_region_class of ``cls[r]`` for each row r, as flat
    (row, entry, target) triples (:meth:`Tree.class_targets`; none for a negative class)."""
    dev = cls.device
    empty = torch.zeros(0, dtype=torch.int64, device=dev)
    if not cls.numel():
        return empty, empty, torch.zeros(0, device=dev)
    uniq, inv = torch.unique(cls, return_inverse=True)
    lists = [tree.class_targets(int(c)) for c in uniq.tolist()]
    width = max(len(e) for e, _ in lists)
    if not width:
        return empty, empty, torch.zeros(0, device=dev)
    ent = torch.full((len(lists), width), -1, dtype=torch.int64)
    tgt = torch.zeros((len(lists), width), dtype=torch.float32)
    for u, (e, t) in enumerate(lists):
        ent[u, :len(e)] = torch.tensor(e, dtype=torch.int64)
        tgt[u, :len(t)] = torch.tensor(t, dtype=torch.float32)
    ent, tgt = ent.to(dev)[inv], tgt.to(dev)[inv]
    live = ent >= 0
    row = torch.arange(cls.shape[0], device=dev).unsqueeze(1).expand_as(ent)
    return row[live], ent[live], tgt[live]


def _check_tree_classes(layer: "RegionLayer", cls: Tensor, what: str) -> None:
    from ..errors import DataError
    if cls.numel() and int(cls.max()) >= layer.classes:
        raise DataError(f"[region] {what} class {int(cls.max())} outside the tree's "
                        f"0..{layer.classes - 1} (Darknet would read past the tree)",
                        layer=layer.index)


def _region_class_vec(probs: Tensor, cls: Tensor, classes: int, scale, focal: int) -> Tensor:
    """delta_region_class (AlexeyAB, no tree): scale*(onehot - p) (all 0 - p for a class
    outside 0..classes-1), times 0.5*focal gradient of p[class] with focal_loss."""
    scale_t = scale.unsqueeze(-1) if isinstance(scale, Tensor) else scale
    vec = scale_t * (_onehot(cls, classes) - probs)
    if focal:
        pt = torch.gather(probs, -1, cls.unsqueeze(-1)).squeeze(-1) + np.float32(1e-15)
        grad = -(1 - pt) * (2 * pt * pt.double().log().float() + pt - 1)
        vec = vec * (np.float32(0.5) * grad).unsqueeze(-1)
    return vec
