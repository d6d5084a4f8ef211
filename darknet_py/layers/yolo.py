"""``[yolo]`` (``yolo_layer.c``): the YOLOv3 detection head.

The layer's output is Darknet's in-place activated tensor: per anchor ``a``
of ``mask``, channel ``a*(5+classes)+entry`` holds logistic(x), logistic(y),
raw w, raw h, logistic(objectness), logistic(class probs). AlexeyAB's
``scale_x_y=s`` then maps x,y to ``x*s - (s-1)/2``; with ``new_coords=1`` the
layer applies no logistic (the conv before it already did).

``anchors`` are in input pixels; ``mask`` picks this head's anchors (all
``num`` when absent). :meth:`YoloLayer.get_detections` decodes one image's
output to boxes as both forks' ``get_yolo_detections`` + ``correct_yolo_boxes``
do (AlexeyAB: ``new_coords`` and its own ``1/ratio`` size correction);
``nms_kind``/``beta_nms`` say which NMS AlexeyAB's ``detector test`` runs.

    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> cfg = ("[net]\\nwidth=32\\nheight=32\\nchannels=3\\n[convolutional]\\nfilters=14\\n"
    ...        "[yolo]\\nclasses=2\\nnum=3\\nmask=1,2\\nanchors=1,2,3,4,5,6\\n")
    >>> head = Darknet(parse_cfg(cfg)).layers[1]
    >>> head.anchors_wh, head.mask
    ([(3.0, 4.0), (5.0, 6.0)], [1, 2])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import math

import numpy as np
import torch
from torch import Tensor

from .. import gemm_order
from ..cfg.options import option
from ..image import letterbox_size
from ..postprocess import DetectionArrays
from ..errors import DataError
from .activations import logistic
from .base import BuildContext, DarknetLayer, LossStep, Shape, head_output
from .registry import register

_F32 = np.float32
FLT_MAX = 3.4028234663852886e38
#: more anchors than this (real cfgs have <= 16) are refused before their default
#: mask/anchor lists are built: ``num=2147483647`` would otherwise ask for 2^32 floats.
MAX_ANCHORS = 1 << 16


@dataclass
class YoloOptions:
    classes: int = option(20)
    num: int = option(1)
    mask: Optional[List[int]] = option(None)
    max: int = option(90, alexeyab=200, doc="max truths per image")
    jitter: float = option(0.2)
    ignore_thresh: float = option(0.5)
    truth_thresh: float = option(1.0)
    random: float = option(0.0)
    map: Optional[str] = option(None)
    anchors: Optional[List[float]] = option(None)
    # AlexeyAB
    show_details: int = option(1, only="alexeyab")
    max_delta: float = option(FLT_MAX, only="alexeyab")
    counters_per_class: Optional[List[int]] = option(None, only="alexeyab")
    label_smooth_eps: float = option(0.0, only="alexeyab")
    scale_x_y: float = option(1.0, only="alexeyab")
    objectness_smooth: int = option(0, only="alexeyab")
    new_coords: int = option(0, only="alexeyab")
    iou_normalizer: float = option(0.75, only="alexeyab")
    obj_normalizer: float = option(1.0, only="alexeyab")
    cls_normalizer: float = option(1.0, only="alexeyab")
    delta_normalizer: float = option(1.0, only="alexeyab")
    iou_loss: str = option("mse", only="alexeyab")
    iou_thresh_kind: str = option("iou", only="alexeyab")
    beta_nms: float = option(0.6, only="alexeyab")
    nms_kind: str = option("default", only="alexeyab")
    resize: float = option(1.0, only="alexeyab")
    focal_loss: int = option(0, only="alexeyab")
    iou_thresh: float = option(1.0, only="alexeyab")
    track_history_size: int = option(5, only="alexeyab")
    sim_thresh: float = option(0.8, only="alexeyab")
    dets_for_track: int = option(1, only="alexeyab")
    dets_for_show: int = option(1, only="alexeyab")
    track_ciou_norm: float = option(0.01, only="alexeyab")
    embedding_layer: int = option(999999, only="alexeyab")

    def resolve(self, dialect) -> None:
        if self.num < 1:
            raise ValueError(f"num must be >= 1, got {self.num}")
        if self.classes < 1:
            raise ValueError(f"classes must be >= 1, got {self.classes}")
        check_anchor_count(self)
        if self.mask is None:
            self.mask = list(range(self.num))
        if self.anchors is None:
            self.anchors = [0.5] * (2 * self.num)  # make_yolo_layer's default biases


def classes_multipliers(counters: List[int], max_delta: float) -> List[float]:
    """parser.c get_classes_multipliers, in float32: ``max_counter / counters[i]`` (each
    counter at least 1), capped at ``max_delta``."""
    counts = [max(int(c), 1) for c in counters]
    top = _F32(max(counts))
    cap = _F32(max_delta)
    return [float(min(_F32(top / _F32(c)), cap)) for c in counts]


def check_anchor_count(opts) -> None:
    """Refuse a ``num`` whose default ``mask``/``anchors`` lists would be absurdly long."""
    missing = [k for k in ("mask", "anchors") if getattr(opts, k) is None]
    if opts.num > MAX_ANCHORS and missing:
        raise ValueError(f"num={opts.num} anchors without {'/'.join(missing)}= is more than "
                         f"darknet_py builds ({MAX_ANCHORS})")


def nms_kind_of(name: str, kinds: Tuple[str, ...]) -> str:
    """``parser.c``'s ``nms_kind=`` lookup: a name it knows, else ``default``."""
    return name if name in kinds else "default"


def correct_yolo_boxes(boxes: Tensor, im_w: int, im_h: int, net_w: int, net_h: int,
                       letterbox: bool = True, dialect: str = "pjreddie") -> Tensor:
    """``yolo_layer.c:correct_yolo_boxes`` (relative=1): boxes on the network input ->
    boxes relative to the original image. Darknet's float/double mix, kept:
    x = (x - (net_w-new_w)/2./net_w) / ((float)new_w/net_w) in double; the size
    scale is pjreddie's ``(float)net_w/new_w`` or AlexeyAB's ``1/ratiow`` (float).
    Without letterbox new_w, new_h are the network's (AlexeyAB's plain resize).

    >>> b = torch.tensor([[0.5, 0.5, 0.5, 0.375]])
    >>> correct_yolo_boxes(b, 768, 576, 416, 416).tolist()
    [[0.5, 0.5, 0.5, 0.5]]
    """
    if letterbox:
        new_w, new_h = letterbox_size(im_w, im_h, net_w, net_h)
    else:
        new_w, new_h = net_w, net_h
    rw = _F32(new_w) / _F32(net_w)  # (float)new_w/netw, used in double
    rh = _F32(new_h) / _F32(net_h)
    ox = (net_w - new_w) / 2.0 / net_w  # (netw - new_w)/2./netw, double
    oy = (net_h - new_h) / 2.0 / net_h
    with np.errstate(divide="ignore"):
        if dialect == "alexeyab":  # b.w *= 1 / ratiow
            sw, sh = _F32(1) / rw, _F32(1) / rh
        else:  # b.w *= (float)netw/new_w
            sw = _F32(net_w) / _F32(new_w) if new_w else _F32(np.inf)
            sh = _F32(net_h) / _F32(new_h) if new_h else _F32(np.inf)
    d = boxes.double()
    x = ((d[:, 0] - ox) / float(rw)).float()
    y = ((d[:, 1] - oy) / float(rh)).float()
    return torch.stack([x, y, boxes[:, 2] * float(sw), boxes[:, 3] * float(sh)], dim=1)



def cell_records(output: Tensor, n_anchors: int, entries: int, objectness: int, thresh: float):
    """The records of a head's (n_anchors*entries, H, W) output whose entry ``objectness`` is
    above ``thresh`` (compared in float32), in Darknet's cell-major order (cell*n + anchor), as
    (records, row, col, anchor), or None when none is. Shared by [yolo] and [Gaussian_yolo]."""
    output = output.detach().cpu()
    _, lh, lw = output.shape
    p = output.reshape(n_anchors, entries, lh * lw).permute(2, 0, 1)
    p = p.reshape(lh * lw * n_anchors, entries).float()
    keep = torch.nonzero(p[:, objectness] > float(_F32(thresh))).squeeze(1)
    if keep.numel() == 0:
        return None
    cell, anchor = keep // n_anchors, keep % n_anchors
    return p[keep], cell // lw, cell % lw, anchor

class YoloLayer(DarknetLayer):
    kind = "yolo"
    decodes = True
    decodes_in_graph = True
    alexeyab_layer_type = 28
    #: the nms_kind values this section's parser knows (``parse_yolo``: no cornersnms)
    NMS_KINDS = ("default", "greedynms", "diounms")
    ab_forward_zeroes_delta = True
    elementwise = True

    def __init__(self, index: int, out_shape: Shape, opts: YoloOptions,
                 dialect_name: str = "pjreddie") -> None:
        super().__init__(index, out_shape)
        self.opts = opts
        self.dialect_name = dialect_name
        self.nms_kind = nms_kind_of(opts.nms_kind, self.NMS_KINDS)
        self.beta_nms = float(_F32(opts.beta_nms))
        self.classes = opts.classes
        self.mask: List[int] = list(opts.mask or [])
        self.anchors: List[float] = list(opts.anchors or [])
        self.new_coords = bool(opts.new_coords)
        #: parser.c get_classes_multipliers: max(counters) / counter per class (counters
        #: below 1 count as 1), at most max_delta; None without counters_per_class
        self.classes_multipliers: Optional[List[float]] = (
            classes_multipliers(opts.counters_per_class, opts.max_delta)
            if opts.counters_per_class else None)
        self.scale_x_y = float(np.float32(opts.scale_x_y))
        # blas.c:scal_add_cpu gets BETA computed in double from the float scale, then as float
        self.xy_bias = float(np.float32(-0.5 * (self.scale_x_y - 1.0)))
        n, k = len(self.mask), 5 + opts.classes
        act = torch.zeros(n, k, dtype=torch.bool)
        act[:, [0, 1]] = True
        act[:, 4:] = True
        self.register_buffer("_logistic", act.view(1, n * k, 1, 1), persistent=False)
        xy = torch.zeros(n, k, dtype=torch.bool)
        xy[:, [0, 1]] = True
        self.register_buffer("_xy", xy.view(1, n * k, 1, 1), persistent=False)

    @property
    def anchors_wh(self) -> List[Tuple[float, float]]:
        """(w, h) in input pixels of this head's anchors, in mask order."""
        return [(self.anchors[2 * m], self.anchors[2 * m + 1]) for m in self.mask]

    def activate(self, x: Tensor) -> Tensor:
        order = gemm_order.current()
        if self.new_coords:
            y = x
        elif order is not None:  # forward_yolo_layer's activate_array calls, per anchor
            k = 5 + self.classes
            y = order.logistic_segments(x, [s for a in range(len(self.mask))
                                            for s in ((a * k, 2), (a * k + 4, 1 + self.classes))])
        else:
            y = torch.where(self._logistic, logistic(x), x)
        if self.scale_x_y != 1.0:
            y = torch.where(self._xy, y * self.scale_x_y + self.xy_bias, y)
        return y

    def input_channels(self, classes: int) -> int:
        """Channels the layer before must give for ``classes`` classes: (classes+5)*len(mask)
        (``new_coords`` changes the activation, not the count)."""
        return len(self.mask) * (classes + 5)

    def decode(self, output: Tensor, net_w, net_h) -> Tuple[Tensor, Tensor, Tensor]:
        """Every cell and anchor of a (B, A*(5+C), H, W) output as boxes, in tensor ops only
        (so it traces and exports, with H, W and the network size taken from the tensors).

        Returns ``boxes`` (B, H*W*A, 4): x, y, w, h relative to the network input (Darknet's
        ``get_yolo_detections`` before ``correct_yolo_boxes``, rows in its fill order: cell
        ``row*W+col``, then anchor); ``objectness`` (B, H*W*A); ``probs`` (B, H*W*A, C) =
        objectness * class probability, not thresholded. x = (col + x)/W, w = exp(tw) *
        anchor_w/net_w (``new_coords``: tw*tw*4*anchor_w/net_w); ``scale_x_y`` is already
        in the output (see :meth:`forward`).
        """
        b, _, h, w = output.shape
        a, k = len(self.mask), 5 + self.classes
        p = output.reshape(b, a, k, -1).permute(0, 3, 1, 2)  # (B, H*W, A, K)
        anchors = torch.tensor(self.anchors_wh, dtype=output.dtype, device=output.device)
        cols = torch.arange(w, device=output.device).to(output.dtype)
        rows = torch.arange(h, device=output.device).to(output.dtype)
        gx = cols.view(1, 1, -1).expand(h, 1, w).reshape(1, -1, 1)  # (1, H*W, 1)
        gy = rows.view(-1, 1, 1).expand(h, 1, w).reshape(1, -1, 1)
        x = (gx + p[..., 0]) / w
        y = (gy + p[..., 1]) / h
        if self.new_coords:
            bw = p[..., 2] * p[..., 2] * 4.0 * anchors[:, 0] / net_w
            bh = p[..., 3] * p[..., 3] * 4.0 * anchors[:, 1] / net_h
        else:
            bw = torch.exp(p[..., 2]) * anchors[:, 0] / net_w
            bh = torch.exp(p[..., 3]) * anchors[:, 1] / net_h
        boxes = torch.stack([x, y, bw, bh], dim=-1).reshape(b, -1, 4)
        objectness = p[..., 4]
        probs = (objectness.unsqueeze(-1) * p[..., 5:]).reshape(b, -1, self.classes)
        return boxes, objectness.reshape(b, -1), probs

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        return head_output(x, self.activate)

    # -- training (forward_yolo_layer with net.train) ------------------------------------
    has_cost = True

    def loss(self, output: Tensor, truth: Tensor, net_size: Tuple[int, int], seen: int = 0,
             step: Optional[LossStep] = None) -> Tuple[Tensor, Tensor]:
        if self.opts.map is not None:
            raise ValueError(f"layer {self.index} [yolo]: map= (class remapping) is not "
                             f"supported in training")
        if self.dialect_name == "alexeyab":
            return yolo_delta_alexeyab(self, output.detach(), truth, net_size, step)
        return yolo_delta_pjreddie(self, output.detach(), truth, net_size)

    def describe(self, in_shape: Shape) -> str:
        return ""

    def table_line(self, in_shape: Shape) -> str:
        return "yolo"

    def objectness_channels(self) -> List[int]:
        return [a * (5 + self.classes) + 4 for a in range(len(self.mask))]

    def class_channels(self) -> List[int]:
        k = 5 + self.classes
        return [a * k + 5 + j for a in range(len(self.mask)) for j in range(self.classes)]

    def get_detections(self, output: Tensor, im_w: int, im_h: int, net_w: int, net_h: int,
                       thresh: float, hier_thresh: float = 0.5,
                       letterbox: bool = True) -> DetectionArrays:
        """``get_yolo_detections`` for one image's (A*(5+C), H, W) output (``l.output``).

        Rows in Darknet's fill order (cell ``row*W+col``, then anchor). A cell/anchor
        is kept when objectness > thresh; x = (col + x)/W, y = (row + y)/H (float32);
        w = exp(tw)*anchor_w/net_w in double (AlexeyAB ``new_coords``:
        tw*tw*4*anchor_w/net_w in float32); prob = objectness*class_prob if > thresh
        else 0; then :func:`correct_yolo_boxes`. ``hier_thresh`` is unused, as in Darknet.
        """
        classes = self.classes
        found = cell_records(output, len(self.mask), 5 + classes, 4, thresh)
        if found is None:
            return DetectionArrays.empty(classes)
        p, row, col, anchor = found
        lh, lw = output.shape[1:]
        t = float(_F32(thresh))
        anchors = torch.tensor(np.asarray(self.anchors_wh, dtype=_F32))[anchor]
        x = (col.float() + p[:, 0]) / float(lw)
        y = (row.float() + p[:, 1]) / float(lh)
        if self.new_coords:
            w = p[:, 2] * p[:, 2] * 4.0 * anchors[:, 0] / float(net_w)
            h = p[:, 3] * p[:, 3] * 4.0 * anchors[:, 1] / float(net_h)
        else:
            w = (torch.exp(p[:, 2].double()) * anchors[:, 0].double() / net_w).float()
            h = (torch.exp(p[:, 3].double()) * anchors[:, 1].double() / net_h).float()
        boxes = correct_yolo_boxes(torch.stack([x, y, w, h], dim=1), im_w, im_h, net_w, net_h,
                                   letterbox, self.dialect_name)
        objectness = p[:, 4]
        probs = objectness[:, None] * p[:, 5:]
        probs = torch.where(probs > t, probs, torch.zeros((), dtype=probs.dtype))
        return DetectionArrays(boxes.numpy().astype(_F32), objectness.numpy().copy(),
                               probs.numpy().astype(_F32))


@register("yolo", options=YoloOptions)
def build(ctx: BuildContext) -> YoloLayer:
    r = ctx.reader
    o = r.read(YoloOptions)
    r.check(len(o.anchors) >= 2 * o.num,
            f"anchors has {len(o.anchors)} values but num={o.num} needs {2 * o.num}", "anchors")
    r.check(all(0 <= m < o.num for m in o.mask),
            f"mask {o.mask} refers to anchors outside 0..{o.num - 1}", "mask")
    if o.counters_per_class is not None:
        r.check(len(o.counters_per_class) == o.classes,
                f"counters_per_class has {len(o.counters_per_class)} values for classes="
                f"{o.classes} (Darknet: \"number of values in counters_per_class doesn't "
                f"match with classes\")", "counters_per_class")
    expected = len(o.mask) * (o.classes + 5)
    r.check(ctx.input_shape.c == expected,
            f"the previous layer has {ctx.input_shape.c} channels but {len(o.mask)} anchors x "
            f"(5 + {o.classes} classes) needs {expected}", "classes")
    return YoloLayer(ctx.index, ctx.input_shape, o, ctx.dialect.name)


# =====================================================================================
# Training: forward_yolo_layer's deltas and cost (pjreddie src/yolo_layer.c)
# =====================================================================================
def box_iou(ax: Tensor, ay: Tensor, aw: Tensor, ah: Tensor,
            bx: Tensor, by: Tensor, bw: Tensor, bh: Tensor) -> Tensor:
    """box.c:box_iou in float32, broadcasting: overlap on each axis, 0 if either < 0."""
    def overlap(x1, w1, x2, w2):
        left = torch.maximum(x1 - w1 / 2, x2 - w2 / 2)
        right = torch.minimum(x1 + w1 / 2, x2 + w2 / 2)
        return right - left
    w = overlap(ax, aw, bx, bw)
    h = overlap(ay, ah, by, bh)
    inter = torch.where((w < 0) | (h < 0), torch.zeros_like(w), w * h)
    union = aw * ah + bw * bh - inter
    return inter / union


def truth_rows(truth: Tensor, max_boxes: int, fields: int, trim: bool = False
               ) -> Tuple[Tensor, Tensor]:
    """(rows (B, max_boxes, fields), valid (B, max_boxes)): Darknet reads at most l.max_boxes
    rows and stops at the first whose x is 0 (``if(!truth.x) break``). ``trim``: only the
    first T rows, T the longest valid list in the batch (at least 1): the rows after are
    invalid in every image, so the per-truth work (an IoU per prediction and truth) is
    T/max_boxes of it."""
    truth = truth.to(torch.float32)
    b, t = truth.shape[0], truth.shape[1]
    if truth.shape[2] < fields:
        raise ValueError(f"truth rows have {truth.shape[2]} fields, need {fields}")
    rows = truth[:, :max_boxes, :fields]
    if t < max_boxes:
        rows = torch.cat([rows, rows.new_zeros(b, max_boxes - t, fields)], dim=1)
    valid = torch.cumprod((rows[:, :, 0] != 0).to(torch.int64), dim=1).bool()
    if trim and valid.shape[1] > 1:
        used = max(1, int(valid.sum(dim=1).max()))
        rows, valid = rows[:, :used], valid[:, :used]
    return rows, valid


def _f32(x: Tensor) -> Tensor:
    return x.to(torch.float32)


def pred_boxes(layer: "YoloLayer", out: Tensor, net_w: int, net_h: int,
               anchors: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """get_yolo_box for every cell/anchor of ``out`` (B, n, 5+C, H, W): (x, y, w, h) each
    (B, n, H, W). x = (i + tx)/lw in float; w = exp(tw)*anchor_w/net_w in double, stored."""
    h, w = out.shape[3], out.shape[4]
    ii = torch.arange(w, dtype=torch.float32, device=out.device).view(1, 1, 1, w)
    jj = torch.arange(h, dtype=torch.float32, device=out.device).view(1, 1, h, 1)
    px = (ii + out[:, :, 0]) / w
    py = (jj + out[:, :, 1]) / h
    aw = anchors[:, 0].view(1, -1, 1, 1).double()
    ah = anchors[:, 1].view(1, -1, 1, 1).double()
    pw = _f32(torch.exp(out[:, :, 2].double()) * aw / net_w)
    ph = _f32(torch.exp(out[:, :, 3].double()) * ah / net_h)
    return px, py, pw, ph


def best_anchor(layer: "YoloLayer", tw: Tensor, th: Tensor, net_w: int, net_h: int) -> Tensor:
    """Index (over all ``num`` anchors) of the best shape IoU with each truth; ties and
    all-zero IoUs keep the first (``if (iou > best_iou)`` from best_iou = 0, best_n = 0)."""
    total = len(layer.anchors) // 2
    a = torch.tensor(layer.anchors[:2 * total], dtype=torch.float32,
                     device=tw.device).view(total, 2)
    aw = a[:, 0] / net_w
    ah = a[:, 1] / net_h
    zero = torch.zeros((), dtype=torch.float32, device=tw.device)
    iou = box_iou(zero, zero, aw, ah, zero, zero, tw.unsqueeze(-1), th.unsqueeze(-1))
    best = iou.max(dim=-1)
    return torch.where(best.values > 0, best.indices, torch.zeros_like(best.indices))


def last_writer(key: Tensor, order: Tensor, size: int) -> Tensor:
    """Mask of the entries that are the last (highest ``order``) to write their ``key``."""
    top = torch.full((size,), -1, dtype=order.dtype, device=order.device)
    top.scatter_reduce_(0, key, order, reduce="amax")
    return top[key] == order


def yolo_delta_pjreddie(layer: "YoloLayer", output: Tensor, truth: Tensor,
                        net_size: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
    """pjreddie forward_yolo_layer (train): ``l.delta`` and ``*(l.cost)``, vectorised.

    Every cell/anchor: objectness delta 0 - o, cleared when the best IoU with any truth
    exceeds ignore_thresh, and a full truth target when it exceeds truth_thresh. Then per
    truth: the best of *all* anchors by shape IoU, learned only by the head whose mask holds
    it, at cell (int(x*w), int(y*h)): box deltas scaled by (2 - w*h), objectness 1 - o,
    independent logistic classes. Two truths on one cell+anchor: the later truth's box wins,
    both classes are set (delta_yolo_class only touches its own class once one was set).
    """
    net_w, net_h = net_size
    bsz, _, h, w = output.shape
    n, classes = len(layer.mask), layer.classes
    k = 5 + classes
    hw = h * w
    out = _f32(output).view(bsz, n, k, h, w)
    delta = torch.zeros_like(out)
    anchors = torch.tensor([layer.anchors_wh], dtype=torch.float32,
                           device=out.device).view(n, 2)
    rows, valid = truth_rows(truth, layer.opts.max, 5, trim=True)
    tx, ty, tw, th = rows[..., 0], rows[..., 1], rows[..., 2], rows[..., 3]
    px, py, pw, ph = pred_boxes(layer, out, net_w, net_h, anchors)
    # best IoU of each prediction with the image's truths: (B, n, H, W, T)
    shp = (bsz, 1, 1, 1, -1)
    iou = box_iou(px.unsqueeze(-1), py.unsqueeze(-1), pw.unsqueeze(-1), ph.unsqueeze(-1),
                  tx.view(shp), ty.view(shp), tw.view(shp), th.view(shp))
    iou = torch.where(valid.view(shp), iou, torch.full_like(iou, -1.0))
    best = iou.max(dim=-1)
    best_iou = best.values.clamp(min=0)
    best_t = torch.where(best.values > 0, best.indices, torch.zeros_like(best.indices))
    obj = out[:, :, 4]
    obj_delta = torch.where(best_iou > layer.opts.ignore_thresh, torch.zeros_like(obj), -obj)
    class_target = torch.zeros(bsz, n, classes, h, w, dtype=torch.float32, device=out.device)
    class_touched = torch.zeros(bsz, n, h, w, dtype=torch.bool, device=out.device)
    hit = best_iou > layer.opts.truth_thresh
    ii = torch.arange(w, device=out.device).view(1, 1, 1, w).expand(bsz, n, h, w)
    jj = torch.arange(h, device=out.device).view(1, 1, h, 1).expand(bsz, n, h, w)
    if bool(hit.any()):
        obj_delta = torch.where(hit, 1 - obj, obj_delta)
        bi = torch.arange(bsz, device=out.device).view(-1, 1, 1, 1).expand_as(best_t)
        ht = (bi[hit], best_t[hit])
        an = torch.arange(n, device=out.device).view(1, -1, 1, 1).expand_as(best_t)[hit]
        _box_delta(delta, out, hit, rows[ht], anchors[an], ii[hit], jj[hit], w, h,
                   net_w, net_h)
        cells = hit.nonzero(as_tuple=True)
        class_target[cells[0], cells[1], _check_class(layer, rows[ht][:, 4]), cells[2],
                     cells[3]] = 1.0
        class_touched |= hit
    delta[:, :, 4] = obj_delta
    # the truth loop
    b_idx, t_idx = valid.nonzero(as_tuple=True)
    if b_idx.numel():
        sel = rows[b_idx, t_idx]
        ci = (sel[:, 0] * w).to(torch.int64)  # C: int i = (truth.x * l.w)
        cj = (sel[:, 1] * h).to(torch.int64)
        best_n = best_anchor(layer, sel[:, 2], sel[:, 3], net_w, net_h)
        mask = torch.tensor(layer.mask, device=out.device)
        matches = best_n.unsqueeze(1) == mask.unsqueeze(0)
        mine = matches.any(dim=1)
        mask_n = matches.to(torch.int64).argmax(dim=1)
        loc = cj * w + ci
        # a truth at x == 1 or y == 1 writes past its cell row in Darknet; one that would
        # leave this anchor's plane is dropped here
        mine &= (loc >= 0) & (loc < hw)
        if bool(mine.any()):
            b_m, t_m, n_m, loc_m = b_idx[mine], t_idx[mine], mask_n[mine], loc[mine]
            sel_m, ci_m, cj_m = sel[mine], ci[mine], cj[mine]
            key = (b_m * n + n_m) * hw + loc_m
            order = b_m * rows.shape[1] + t_m
            win = last_writer(key, order, bsz * n * hw)
            cells = (b_m, n_m, loc_m // w, loc_m % w)
            wc = tuple(c[win] for c in cells)
            box_mask = torch.zeros(bsz, n, h, w, dtype=torch.bool, device=out.device)
            box_mask[wc] = True
            # scatter in cell order for the winners
            flat = (wc[0] * n + wc[1]) * hw + wc[2] * w + wc[3]
            perm = torch.argsort(flat)
            _box_delta(delta, out, box_mask, sel_m[win][perm], anchors[wc[1][perm]],
                       ci_m[win][perm], cj_m[win][perm], w, h, net_w, net_h)
            delta[cells[0], cells[1], 4, cells[2], cells[3]] = \
                1 - out[cells[0], cells[1], 4, cells[2], cells[3]]
            class_target[cells[0], cells[1], _check_class(layer, sel_m[:, 4]), cells[2],
                         cells[3]] = 1.0
            class_touched[cells] = True
    touched = class_touched.unsqueeze(2)
    delta[:, :, 5:] = torch.where(touched, class_target - out[:, :, 5:], delta[:, :, 5:])
    delta = delta.view(bsz, n * k, h, w)
    cost = (delta.double() ** 2).sum().to(torch.float32)
    return delta, cost


def _check_class(layer: "YoloLayer", cls: Tensor) -> Tensor:
    c = cls.to(torch.int64)
    if c.numel() and (int(c.min()) < 0 or int(c.max()) >= layer.classes):
        bad = int(c.min()) if int(c.min()) < 0 else int(c.max())
        raise DataError(f"truth class {bad} outside 0..{layer.classes - 1} of this [yolo] "
                        f"(pjreddie's Darknet would write outside its delta)",
                        layer=layer.index)
    return c


def _box_delta(delta: Tensor, out: Tensor, mask: Tensor, truth: Tensor, anchor: Tensor,
               ci: Tensor, cj: Tensor, w: int, h: int, net_w: int, net_h: int) -> None:
    """delta_yolo_box at the cells of ``mask`` (row-major order of ``mask.nonzero()``):
    scale*(target - x) with scale = 2 - truth.w*truth.h, targets tx = truth.x*lw - i,
    tw = log(truth.w*net_w / anchor_w) (float, log in double)."""
    scale = 2 - truth[:, 2] * truth[:, 3]
    t0 = truth[:, 0] * w - ci.to(torch.float32)
    t1 = truth[:, 1] * h - cj.to(torch.float32)
    t2 = _f32(torch.log((truth[:, 2] * net_w / anchor[:, 0]).double()))
    t3 = _f32(torch.log((truth[:, 3] * net_h / anchor[:, 1]).double()))
    view = out.permute(0, 1, 3, 4, 2)[mask]  # (m, k)
    d = torch.stack([scale * (t0 - view[:, 0]), scale * (t1 - view[:, 1]),
                     scale * (t2 - view[:, 2]), scale * (t3 - view[:, 3])], dim=1)
    dv = delta.permute(0, 1, 3, 4, 2)
    sub = dv[mask]
    sub[:, :4] = d
    dv[mask] = sub


# =====================================================================================
# Training: AlexeyAB forward_yolo_layer (src/yolo_layer.c process_batch, box.c)
# =====================================================================================
IOU_KINDS = ("iou", "giou", "mse", "diou", "ciou")


def ab_box_iou(ax, ay, aw, ah, bx, by, bw, bh) -> Tensor:
    """AlexeyAB box.c:box_iou: 0 when the intersection or the union is 0."""
    def overlap(x1, w1, x2, w2):
        left = torch.maximum(x1 - w1 / 2, x2 - w2 / 2)
        right = torch.minimum(x1 + w1 / 2, x2 + w2 / 2)
        return right - left
    w = overlap(ax, aw, bx, bw)
    h = overlap(ay, ah, by, bh)
    inter = torch.where((w < 0) | (h < 0), torch.zeros_like(w), w * h)
    union = aw * ah + bw * bh - inter
    ok = (inter != 0) & (union != 0)
    return torch.where(ok, inter / torch.where(ok, union, torch.ones_like(union)),
                       torch.zeros_like(inter))


def ab_box_iou_kind(kind: str, ax, ay, aw, ah, bx, by, bw, bh) -> Tensor:
    """box_iou_kind: iou, giou (iou - (c-u)/c), diou (iou - (d/c)^0.6), ciou."""
    iou = ab_box_iou(ax, ay, aw, ah, bx, by, bw, bh)
    if kind in ("iou", "mse"):
        return iou
    top = torch.minimum(ay - ah / 2, by - bh / 2)
    bot = torch.maximum(ay + ah / 2, by + bh / 2)
    left = torch.minimum(ax - aw / 2, bx - bw / 2)
    right = torch.maximum(ax + aw / 2, bx + bw / 2)
    w, h = right - left, bot - top
    if kind == "giou":
        c = w * h
        inter_w = torch.minimum(ax + aw / 2, bx + bw / 2) - torch.maximum(ax - aw / 2, bx - bw / 2)
        inter_h = torch.minimum(ay + ah / 2, by + bh / 2) - torch.maximum(ay - ah / 2, by - bh / 2)
        inter = torch.where((inter_w < 0) | (inter_h < 0), torch.zeros_like(inter_w),
                            inter_w * inter_h)
        u = aw * ah + bw * bh - inter
        safe = torch.where(c == 0, torch.ones_like(c), c)
        return torch.where(c == 0, iou, iou - (c - u) / safe)
    c = w * w + h * h
    safe = torch.where(c == 0, torch.ones_like(c), c)
    d = (ax - bx) * (ax - bx) + (ay - by) * (ay - by)
    if kind == "diou":
        term = _f32(torch.pow((d / safe).double(), 0.6))
        return torch.where(c == 0, iou, iou - term)
    # ciou
    ar = _f32(4 / (math.pi * math.pi)
              * (torch.atan((bw / bh).double()) - torch.atan((aw / ah).double())) ** 2)
    alpha = _f32(ar.double() / (1 - iou.double() + ar.double() + 0.000001))
    return torch.where(c == 0, iou, iou - (d / safe + alpha * ar))


def dx_box_iou(px, py, pw, ph, tx, ty, tw, th, kind: str) -> Tuple[Tensor, Tensor, Tensor,
                                                                    Tensor]:
    """box.c:dx_box_iou for (pred, truth) pairs: (p_dx, p_dy, p_dw, p_dh), the gradient of
    IoU / GIoU / DIoU / CIoU as AlexeyAB computes it (float32)."""
    zero = torch.zeros_like(px)
    one = torch.ones_like(px)
    p_top, p_bot = py - ph / 2, py + ph / 2
    p_left, p_right = px - pw / 2, px + pw / 2
    pred_t, pred_b = torch.minimum(p_top, p_bot), torch.maximum(p_top, p_bot)
    pred_l, pred_r = torch.minimum(p_left, p_right), torch.maximum(p_left, p_right)
    t_top, t_bot = ty - th / 2, ty + th / 2
    t_left, t_right = tx - tw / 2, tx + tw / 2
    X = (pred_b - pred_t) * (pred_r - pred_l)
    Xhat = (t_bot - t_top) * (t_right - t_left)
    Ih = torch.minimum(pred_b, t_bot) - torch.maximum(pred_t, t_top)
    Iw = torch.minimum(pred_r, t_right) - torch.maximum(pred_l, t_left)
    I = Iw * Ih
    U = X + Xhat - I
    S = (px - tx) * (px - tx) + (py - ty) * (py - ty)
    giou_Cw = torch.maximum(pred_r, t_right) - torch.minimum(pred_l, t_left)
    giou_Ch = torch.maximum(pred_b, t_bot) - torch.minimum(pred_t, t_top)
    giou_C = giou_Cw * giou_Ch
    dX_t, dX_b = -1 * (pred_r - pred_l), pred_r - pred_l
    dX_l, dX_r = -1 * (pred_b - pred_t), pred_b - pred_t
    dI_t = torch.where(pred_t > t_top, -1 * Iw, zero)
    dI_b = torch.where(pred_b < t_bot, Iw, zero)
    dI_l = torch.where(pred_l > t_left, -1 * Ih, zero)
    dI_r = torch.where(pred_r < t_right, Ih, zero)
    dU_t, dU_b, dU_l, dU_r = dX_t - dI_t, dX_b - dI_b, dX_l - dI_l, dX_r - dI_r
    dC_t = torch.where(pred_t < t_top, -1 * giou_Cw, zero)
    dC_b = torch.where(pred_b > t_bot, giou_Cw, zero)
    dC_l = torch.where(pred_l < t_left, -1 * giou_Ch, zero)
    dC_r = torch.where(pred_r > t_right, giou_Ch, zero)
    UU = U * U
    pos = U > 0
    safe_uu = torch.where(pos, UU, one)
    p_dt = torch.where(pos, ((U * dI_t) - (I * dU_t)) / safe_uu, zero)
    p_db = torch.where(pos, ((U * dI_b) - (I * dU_b)) / safe_uu, zero)
    p_dl = torch.where(pos, ((U * dI_l) - (I * dU_l)) / safe_uu, zero)
    p_dr = torch.where(pos, ((U * dI_r) - (I * dU_r)) / safe_uu, zero)
    tb = p_top < p_bot
    lr = p_left < p_right
    p_dt, p_db = torch.where(tb, p_dt, p_db), None
    p_db = torch.where(tb, torch.where(pos, ((U * dI_b) - (I * dU_b)) / safe_uu, zero), p_dt)
    p_dl, p_dr = torch.where(lr, p_dl, p_dr), None
    p_dr = torch.where(lr, torch.where(pos, ((U * dI_r) - (I * dU_r)) / safe_uu, zero), p_dl)
    no_overlap = (Iw <= 0) | (Ih <= 0)
    if kind == "giou":
        CC = giou_C * giou_C
        g_t = ((giou_C * dU_t) - (U * dC_t)) / CC
        g_b = ((giou_C * dU_b) - (U * dC_b)) / CC
        g_l = ((giou_C * dU_l) - (U * dC_l)) / CC
        g_r = ((giou_C * dU_r) - (U * dC_r)) / CC
        cpos = giou_C > 0
        p_dt = torch.where(cpos, p_dt + g_t, p_dt)
        p_db = torch.where(cpos, p_db + g_b, p_db)
        p_dl = torch.where(cpos, p_dl + g_l, p_dl)
        p_dr = torch.where(cpos, p_dr + g_r, p_dr)
        p_dt = torch.where(no_overlap, g_t, p_dt)
        p_db = torch.where(no_overlap, g_b, p_db)
        p_dl = torch.where(no_overlap, g_l, p_dl)
        p_dr = torch.where(no_overlap, g_r, p_dr)
    p_dx = p_dl + p_dr
    p_dy = p_dt + p_db
    p_dw = p_dr - p_dl
    p_dh = p_db - p_dt
    if kind in ("diou", "ciou"):
        Ct = torch.minimum(py - ph / 2, ty - th / 2)
        Cb = torch.maximum(py + ph / 2, ty + th / 2)
        Cl = torch.minimum(px - pw / 2, tx - tw / 2)
        Cr = torch.maximum(px + pw / 2, tx + tw / 2)
        Cw, Ch = Cr - Cl, Cb - Ct
        C = Cw * Cw + Ch * Ch
        dCt_dy = torch.where(pred_t < t_top, one, zero)
        dCt_dh = torch.where(pred_t < t_top, -0.5 * one, zero)
        dCb_dy = torch.where(pred_b > t_bot, one, zero)
        dCb_dh = torch.where(pred_b > t_bot, 0.5 * one, zero)
        dCl_dx = torch.where(pred_l < t_left, one, zero)
        dCl_dw = torch.where(pred_l < t_left, -0.5 * one, zero)
        dCr_dx = torch.where(pred_r > t_right, one, zero)
        dCr_dw = torch.where(pred_r > t_right, 0.5 * one, zero)
        dCw_dx, dCw_dy, dCw_dw, dCw_dh = dCr_dx - dCl_dx, zero, dCr_dw - dCl_dw, zero
        dCh_dx, dCh_dy, dCh_dw, dCh_dh = zero, dCb_dy - dCt_dy, zero, dCb_dh - dCt_dh
        CC = C * C
        d_x = (2 * (tx - px) * C - (2 * Cw * dCw_dx + 2 * Ch * dCh_dx) * S) / CC
        d_y = (2 * (ty - py) * C - (2 * Cw * dCw_dy + 2 * Ch * dCh_dy) * S) / CC
        d_w = (2 * Cw * dCw_dw + 2 * Ch * dCh_dw) * S / CC
        d_h = (2 * Cw * dCw_dh + 2 * Ch * dCh_dh) * S / CC
        if kind == "ciou":
            atan_d = (torch.atan((tw / th).double()) - torch.atan((pw / ph).double()))
            ar_loss = _f32(4 / (math.pi * math.pi) * atan_d * atan_d)
            alpha = _f32(ar_loss.double() / (1 - (I / U).double() + ar_loss.double() + 0.000001))
            ar_dw = _f32(8 / (math.pi * math.pi) * atan_d * ph.double())
            ar_dh = _f32(-8 / (math.pi * math.pi) * atan_d * pw.double())
            d_w = d_w + alpha * ar_dw
            d_h = d_h + alpha * ar_dh
        cpos = C > 0
        p_dx = torch.where(cpos, p_dx + d_x, p_dx)
        p_dy = torch.where(cpos, p_dy + d_y, p_dy)
        p_dw = torch.where(cpos, p_dw + d_w, p_dw)
        p_dh = torch.where(cpos, p_dh + d_h, p_dh)
        p_dx = torch.where(no_overlap, d_x, p_dx)
        p_dy = torch.where(no_overlap, d_y, p_dy)
        p_dw = torch.where(no_overlap, d_w, p_dw)
        p_dh = torch.where(no_overlap, d_h, p_dh)
    return p_dx, p_dy, p_dw, p_dh


def _ab_pred_boxes(layer: "YoloLayer", view: Tensor, anchors: Tensor, ci: Tensor, cj: Tensor,
                   w: int, h: int, net_w: int, net_h: int):
    """get_yolo_box (AlexeyAB, with new_coords) for rows ``view`` (m, 4+) of the output."""
    px = (ci.to(torch.float32) + view[:, 0]) / w
    py = (cj.to(torch.float32) + view[:, 1]) / h
    if layer.new_coords:
        pw = view[:, 2] * view[:, 2] * 4 * anchors[:, 0] / net_w
        ph = view[:, 3] * view[:, 3] * 4 * anchors[:, 1] / net_h
    else:
        pw = _f32(torch.exp(view[:, 2].double()) * anchors[:, 0].double() / net_w)
        ph = _f32(torch.exp(view[:, 3].double()) * anchors[:, 1].double() / net_h)
    return px, py, pw, ph


def _ab_box_delta(layer: "YoloLayer", view: Tensor, truth: Tensor, anchors: Tensor,
                  ci: Tensor, cj: Tensor, w: int, h: int, net_w: int, net_h: int,
                  class_mult: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """delta_yolo_box (AlexeyAB) for m (cell, truth, anchor) matches: the 4 deltas each adds
    (m, 4) and box_iou(pred, truth) (m,) (plus giou for the GIoU cost). ``class_mult``
    (m,): counters_per_class's multiplier of each truth's class, which forward_yolo_layer
    passes as ``l.iou_normalizer * class_multiplier``."""
    o = layer.opts
    px, py, pw, ph = _ab_pred_boxes(layer, view, anchors, ci, cj, w, h, net_w, net_h)
    tx, ty, tw, th = truth[:, 0], truth[:, 1], truth[:, 2], truth[:, 3]
    iou = ab_box_iou(px, py, pw, ph, tx, ty, tw, th)
    giou = ab_box_iou_kind("giou", px, py, pw, ph, tx, ty, tw, th)
    pw = torch.where(pw == 0, torch.ones_like(pw), pw)
    ph = torch.where(ph == 0, torch.ones_like(ph), ph)
    norm = np.float32(o.iou_normalizer)
    if class_mult is not None:
        norm = (class_mult * float(norm)).unsqueeze(1)  # a float product in C
    if o.iou_loss == "mse":
        scale = 2 - tw * th
        t0 = tx * w - ci.to(torch.float32)
        t1 = ty * h - cj.to(torch.float32)
        if layer.new_coords:
            t2 = _f32(torch.sqrt((tw * net_w / (4 * anchors[:, 0])).double()))
            t3 = _f32(torch.sqrt((th * net_h / (4 * anchors[:, 1])).double()))
        else:
            t2 = _f32(torch.log((tw * net_w / anchors[:, 0]).double()))
            t3 = _f32(torch.log((th * net_h / anchors[:, 1]).double()))
        d = torch.stack([scale * (t0 - view[:, 0]), scale * (t1 - view[:, 1]),
                         scale * (t2 - view[:, 2]), scale * (t3 - view[:, 3])], 1) * norm
        return d, iou, giou
    dx, dy, dw, dh = dx_box_iou(px, py, pw, ph, tx, ty, tw, th, o.iou_loss)
    if not layer.new_coords:
        dw = _f32(dw.double() * torch.exp(view[:, 2].double()))
        dh = _f32(dh.double() * torch.exp(view[:, 3].double()))
    d = torch.stack([dx, dy, dw, dh], 1) * norm
    d = torch.where(torch.isfinite(d), d, torch.zeros_like(d))  # fix_nan_inf
    if o.max_delta != FLT_MAX:
        m = float(np.float32(o.max_delta))
        d = d.clamp(-m, m)
    return d, iou, giou


def ab_anchor_candidates(sel: Tensor, all_anchors: Tensor, mask_t: Tensor, iou_thresh: float,
                         iou_thresh_kind: str, net_size: Tuple[int, int], ci: Tensor, cj: Tensor,
                         w: int, hw: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """AlexeyAB's truth loop (``[yolo]`` and ``[Gaussian_yolo]``): which anchors of this head
    learn each truth ``sel`` (m, 4+) at cell (``ci``, ``cj``). The best of all anchors by
    shape IoU (box_iou of the w/h alone; ties and all-zero keep the first), then, when
    ``iou_thresh`` < 1, every other anchor whose ``iou_thresh_kind`` shape IoU exceeds it.
    Only anchors in this head's mask count, and only cells inside the plane (Darknet
    writes past its row for a truth at x == 1 or y == 1; that one is dropped here).

    Returns (anchor index over all anchors, slot: 0 for the best else 1 + anchor, row in
    ``sel``, index in the mask, cell ``j*w + i``), candidates of one truth together, best
    first, then anchors in order (Darknet's order)."""
    net_w, net_h = net_size
    dev = sel.device
    total = all_anchors.shape[0]
    zero = torch.zeros((), dtype=torch.float32, device=dev)
    aw = (all_anchors[:, 0] / net_w).view(1, -1)
    ah = (all_anchors[:, 1] / net_h).view(1, -1)
    shape_iou = ab_box_iou(zero, zero, aw, ah, zero, zero, sel[:, 2:3], sel[:, 3:4])  # (m, total)
    bmax = shape_iou.max(dim=1)
    best_n = torch.where(bmax.values > 0, bmax.indices, torch.zeros_like(bmax.indices))
    m_rows = torch.arange(sel.shape[0], device=dev)
    cand_n, cand_slot, cand_row = [best_n], [torch.zeros_like(best_n)], [m_rows]
    if iou_thresh < 1.0:
        kind_iou = ab_box_iou_kind(iou_thresh_kind, zero, zero, aw, ah, zero, zero,
                                   sel[:, 2:3], sel[:, 3:4])
        extra = (kind_iou > iou_thresh) & (
            torch.arange(total, device=dev).view(1, -1) != best_n.view(-1, 1))
        er, en = extra.nonzero(as_tuple=True)
        cand_n.append(en)
        cand_slot.append(en + 1)
        cand_row.append(er)
    cn, cs, cr = torch.cat(cand_n), torch.cat(cand_slot), torch.cat(cand_row)
    in_mask = cn.view(-1, 1) == mask_t.view(1, -1)
    keep = in_mask.any(dim=1)
    slot_n = in_mask.to(torch.int64).argmax(dim=1)
    loc = cj[cr] * w + ci[cr]
    keep &= (loc >= 0) & (loc < hw)
    return cn[keep], cs[keep], cr[keep], slot_n[keep], loc[keep]


def first_writer(key: Tensor, order: Tensor, size: int) -> Tensor:
    """Mask of the entries that are the first (lowest ``order``) to write their ``key``."""
    low = torch.full((size,), torch.iinfo(torch.int64).max, dtype=torch.int64,
                     device=key.device)
    low.scatter_reduce_(0, key, order, reduce="amin")
    return low[key] == order


def yolo_delta_alexeyab(layer: "YoloLayer", output: Tensor, truth: Tensor,
                        net_size: Tuple[int, int], step: Optional[LossStep] = None
                        ) -> Tuple[Tensor, Tensor]:
    """AlexeyAB forward_yolo_layer (train, CPU): ``l.delta`` and ``*(l.cost)``, vectorised.

    Differences from pjreddie: objectness normalised (obj_normalizer) and cleared only for
    predictions whose best IoU is with a truth *and* some class prob > 0.25; box deltas
    accumulate (several truths or anchors on one cell add up), times iou_normalizer, MSE or
    the IoU-family gradient of box.c:dx_box_iou (giou/diou/ciou, max_delta clip); extra
    anchors with shape IoU > iou_thresh learn the truth too (their box deltas averaged
    over the cell's positive classes); label_smooth_eps, focal_loss, objectness_smooth;
    truths with a class outside 0..classes-1 are skipped. With show_details (default)
    and an IoU loss, the cost is iou_normalizer * mean(1 - IoU) (GIoU for giou) over the
    matches plus obj_normalizer * the squared non-box deltas; else sum(delta^2).
    counters_per_class (``l.classes_multipliers``, m[c] for a truth of class c): the box
    deltas of a match are times iou_normalizer * m[c], the objectness of the truth loop's
    matches times m[c], the class delta of c times m[c] * cls_normalizer where the full
    class vector is written (not with focal_loss) and times m[c] where only c's entry is
    rewritten (a later truth on the cell), the truth_thresh branch's objectness_smooth class
    delta times m[c]; cls_normalizer does nothing without counters_per_class.
    """
    o = layer.opts
    if o.iou_loss not in IOU_KINDS or o.iou_thresh_kind not in IOU_KINDS:
        raise ValueError(f"layer {layer.index} [yolo]: iou_loss/iou_thresh_kind must be one "
                         f"of {', '.join(IOU_KINDS)}")
    net_w, net_h = net_size
    bsz, _, h, w = output.shape
    n, classes = len(layer.mask), layer.classes
    k = 5 + classes
    hw = h * w
    dev = output.device
    out = _f32(output).view(bsz, n, k, h, w)
    delta = torch.zeros_like(out)
    total = len(layer.anchors) // 2
    all_anchors = torch.tensor(layer.anchors[:2 * total], dtype=torch.float32,
                               device=dev).view(total, 2)
    mask_t = torch.tensor(layer.mask, device=dev)
    anchors = all_anchors[mask_t]
    rows, valid = truth_rows(truth, o.max, 5, trim=True)
    cls_f = rows[..., 4]
    cls = cls_f.to(torch.int64)  # C: (int) of the float
    class_ok = valid & (cls >= 0) & (cls < classes)
    obj_norm = np.float32(o.obj_normalizer)
    cm_t = (torch.tensor(layer.classes_multipliers, dtype=torch.float32, device=dev)
            if layer.classes_multipliers is not None else None)

    def mult(c: Tensor) -> Optional[Tensor]:
        """counters_per_class's multiplier of each class in ``c`` (None without it)."""
        return None if cm_t is None else cm_t[c.clamp(0, classes - 1)]

    eps = np.float32(o.label_smooth_eps)
    y1 = float(np.float32(1 * (1 - eps) + 0.5 * eps)) if eps else 1.0
    y0 = float(np.float32(0.5 * eps)) if eps else 0.0
    # -- the cell loop ---------------------------------------------------------------
    px, py, pw, ph = pred_boxes(layer, out, net_w, net_h, anchors) if not layer.new_coords \
        else _new_coords_boxes(out, anchors, net_w, net_h)
    shp = (bsz, 1, 1, 1, -1)
    iou = ab_box_iou(px.unsqueeze(-1), py.unsqueeze(-1), pw.unsqueeze(-1), ph.unsqueeze(-1),
                     rows[..., 0].view(shp), rows[..., 1].view(shp), rows[..., 2].view(shp),
                     rows[..., 3].view(shp))
    usable = class_ok.view(shp)
    iou_u = torch.where(usable, iou, torch.full_like(iou, -1.0))
    best = iou_u.max(dim=-1)
    best_iou = best.values.clamp(min=0)
    best_t = torch.where(best.values > 0, best.indices, torch.zeros_like(best.indices))
    class_match = (out[:, :, 5:] > 0.25).any(dim=2)  # compare_yolo_class
    best_match_iou = torch.where(class_match, best_iou, torch.zeros_like(best_iou))
    obj = out[:, :, 4]
    obj_delta = obj_norm * (0 - obj)
    ignored = best_match_iou > o.ignore_thresh
    if o.objectness_smooth:
        smooth = obj_norm * (best_match_iou - obj)
        obj_delta = torch.where(ignored & (smooth > obj_delta), smooth, obj_delta)
    else:
        obj_delta = torch.where(ignored, torch.zeros_like(obj_delta), obj_delta)
    # class operations in Darknet's order: (cell key, order, class); box contributions
    ops_key: List[Tensor] = []
    ops_order: List[Tensor] = []
    ops_cls: List[Tensor] = []
    smooth_override = None
    box_cells: List[Tensor] = []
    box_values: List[Tensor] = []
    hit = best_iou > o.truth_thresh
    ii = torch.arange(w, device=dev).view(1, 1, 1, w).expand(bsz, n, h, w)
    jj = torch.arange(h, device=dev).view(1, 1, h, 1).expand(bsz, n, h, w)
    bi = torch.arange(bsz, device=dev).view(-1, 1, 1, 1).expand(bsz, n, h, w)
    ai = torch.arange(n, device=dev).view(1, -1, 1, 1).expand(bsz, n, h, w)
    if bool(hit.any()):
        iou_mult = best_iou * best_iou
        if o.objectness_smooth:
            obj_delta = torch.where(hit, obj_norm * (iou_mult - obj), obj_delta)
        else:
            obj_delta = torch.where(hit, obj_norm * (1 - obj), obj_delta)
        hb, ha, hj, hi = bi[hit], ai[hit], jj[hit], ii[hit]
        ht = rows[hb, best_t[hit]]
        key = ((hb * n + ha) * h + hj) * w + hi
        ops_key.append(key)
        ops_order.append(torch.full_like(key, -1))
        hcls = ht[:, 4].to(torch.int64)
        ops_cls.append(hcls)
        if o.objectness_smooth:
            smooth_override = (key, hcls, iou_mult[hit])
        view = out.permute(0, 1, 3, 4, 2)[hit]
        d, _, _ = _ab_box_delta(layer, view, ht, anchors[ha], hi, hj, w, h, net_w, net_h,
                                mult(hcls))
        box_cells.append(key)
        box_values.append(d)
    # -- the truth loop: the best anchor, then every other with shape IoU > iou_thresh ----
    b_idx, t_idx = class_ok.nonzero(as_tuple=True)
    match_iou: List[Tensor] = []
    match_giou: List[Tensor] = []
    obj_cells: List[Tensor] = []
    obj_orders: List[Tensor] = []
    obj_classes: List[Tensor] = []
    if b_idx.numel():
        sel = rows[b_idx, t_idx]
        ci = (sel[:, 0] * w).to(torch.int64)
        cj = (sel[:, 1] * h).to(torch.int64)
        cn, cs, cr, slot_n, loc = ab_anchor_candidates(sel, all_anchors, mask_t, o.iou_thresh,
                                                       o.iou_thresh_kind, net_size, ci, cj, w, hw)
        if cr.numel():
            mb = b_idx[cr]
            key = (mb * n + slot_n) * hw + loc
            order = t_idx[cr] * (total + 1) + cs
            truth_m = sel[cr]
            view = out[mb, slot_n, :, loc // w, loc % w]
            m_cls = truth_m[:, 4].to(torch.int64)
            d, m_iou, m_giou = _ab_box_delta(layer, view, truth_m, all_anchors[cn], ci[cr],
                                             cj[cr], w, h, net_w, net_h, mult(m_cls))
            box_cells.append(key)
            box_values.append(d)
            match_iou.append(m_iou)
            match_giou.append(m_giou)
            obj_cells.append(key)
            obj_orders.append(order)
            obj_classes.append(m_cls)
            ops_key.append(key)
            ops_order.append(order)
            ops_cls.append(truth_m[:, 4].to(torch.int64))
    flat = delta.permute(0, 1, 3, 4, 2).reshape(-1, k)  # a view: (cells, k)
    out_flat = out.permute(0, 1, 3, 4, 2).reshape(-1, k)
    # objectness
    obj_flat = obj_delta.reshape(-1).clone()
    if obj_cells:
        cells = torch.cat(obj_cells)
        if cm_t is None:
            target = obj_norm * (1 - out_flat[cells, 4])
        else:
            # class_multiplier * obj_normalizer * (1 - output): one write per truth, in
            # order (the last wins; with objectness_smooth the first on a zero delta)
            target = (mult(torch.cat(obj_classes)) * float(obj_norm)) * (1 - out_flat[cells, 4])
            order = torch.cat(obj_orders)
            pick = (first_writer if o.objectness_smooth else last_writer)(
                cells, order, flat.shape[0])
            cells, target = cells[pick], target[pick]
        if o.objectness_smooth:
            target = torch.where(obj_flat[cells] == 0, target, obj_flat[cells])
        obj_flat[cells] = target
    flat[:, 4] = obj_flat
    # classes, in order
    if ops_key:
        key, order, ccls = torch.cat(ops_key), torch.cat(ops_order), torch.cat(ops_cls)
        is_first = first_writer(key, order, flat.shape[0])
        fk = torch.unique(key[is_first])
        # the first operation per cell writes the full class vector
        first_cls = torch.zeros(flat.shape[0], dtype=torch.int64, device=dev)
        first_cls[key[is_first]] = ccls[is_first]
        cells = fk
        onehot = torch.zeros(cells.numel(), classes, device=dev)
        onehot[torch.arange(cells.numel(), device=dev), first_cls[cells]] = 1.0
        probs = out_flat[cells, 5:]
        if o.focal_loss:
            pt = out_flat[cells, 5 + first_cls[cells]] + np.float32(0.000000000000001)
            grad = -(1 - pt) * (2 * pt * _f32(torch.log(pt.double())) + pt - 1)
            vec = (onehot - probs) * (np.float32(0.5) * grad).unsqueeze(1)
        else:
            ytrue = onehot * y1 + (1 - onehot) * y0 if eps else onehot
            vec = ytrue - probs
            if cm_t is not None:  # delta[class_id] *= classes_multipliers[class_id] * cls_normalizer
                rows_ = torch.arange(cells.numel(), device=dev)
                c0 = first_cls[cells]
                vec[rows_, c0] = vec[rows_, c0] * (mult(c0) * float(np.float32(o.cls_normalizer)))
        flat[cells, 5:] = vec
        if smooth_override is not None:
            sk, sc, sv = smooth_override
            flat[sk, 5 + sc] = sv - out_flat[sk, 5 + sc]
            if cm_t is not None:
                flat[sk, 5 + sc] = mult(sc) * flat[sk, 5 + sc]
        later = ~is_first
        if bool(later.any()):
            lk, lc = key[later], ccls[later]
            flat[lk, 5 + lc] = y1 - out_flat[lk, 5 + lc]
            if cm_t is not None:  # delta_yolo_class's early return: *= classes_multipliers
                flat[lk, 5 + lc] = flat[lk, 5 + lc] * mult(lc)
    # box deltas: every contribution adds
    if box_cells:
        cells, values = torch.cat(box_cells), torch.cat(box_values)
        acc = torch.zeros(flat.shape[0], 4, dtype=torch.float64, device=dev)
        acc.index_add_(0, cells, values.double())
        touched = torch.zeros(flat.shape[0], dtype=torch.bool, device=dev)
        touched[cells] = True
        flat[touched, :4] = _f32(acc[touched])
    if o.iou_thresh < 1.0:
        positive = (flat[:, 5:] > 0).sum(dim=1)
        div = (flat[:, 4] != 0) & (positive > 0)
        flat[div, :4] = flat[div, :4] / positive[div].unsqueeze(1).to(torch.float32)
    delta = flat.view(bsz, n, h, w, k).permute(0, 1, 4, 2, 3).reshape(bsz, n * k, h, w)
    if step is not None:
        delta = reject_deltas(delta.contiguous(), classes, step)
    squares = (delta.double() ** 2)
    if o.show_details == 0 or o.iou_loss == "mse":
        cost = squares.sum()
    else:
        count = sum(int(t.numel()) for t in match_iou) or 1
        losses = match_giou if o.iou_loss == "giou" else match_iou
        tot = float(sum(float((1 - t.double()).sum()) for t in losses))
        cls_loss = float(obj_norm) * float(
            squares.view(bsz, n, k, h, w)[:, :, 4:].sum())
        cost = torch.tensor(float(np.float32(o.iou_normalizer)) * (tot / count) + cls_loss)
    return delta.contiguous(), _f32(cost)


def reject_deltas(delta: Tensor, classes: int, step: LossStep) -> Tensor:
    """forward_yolo_layer's "equidistant point" and bad-label block (AlexeyAB), after every
    delta is set and before the cost: with [net] ``equidistant_point`` below the iteration,
    or ``num_sigmas_reject_badlabels`` / ``badlabels_rejection_percentage`` past 3/4 of
    max_batches, the net-level rolling mean and max of the nonzero |delta| move (x0.99 +
    x0.01; the max starts at the first one); bad-label rejection zeroes the deltas above a
    threshold from those statistics (and their rolling std), or above a threshold that
    moves by 0.01 toward rejecting ``badlabels_rejection_percentage`` percent; the
    equidistant point zeroes every |delta| below ``rolling mean * progress * 1.4`` (progress
    from equidistant_point to max_batches; the mean before this layer's update). Scalars
    are the C's float32/double mix; the sums over the deltas are taken in float64 and
    rounded (-Ofast lets Darknet's compiler vectorise its float sums in its own order)."""
    f = np.float32
    net, it, st = step.net, int(step.iteration), step.stats
    start = int(net.max_batches) * 3 // 4
    ep = int(net.equidistant_point)
    sigmas = f(net.num_sigmas_reject_badlabels)
    percent = f(net.badlabels_rejection_percentage)
    if not ((percent and start < it) or (sigmas and start < it) or (ep and ep < it)):
        return delta
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        progress = f(f(it - ep) / f(int(net.max_batches) - ep))  # C: inf/NaN at max_batches
        threshold = f(float(f(st.avg) * progress) * 1.4)
    mag = delta.abs()
    nonzero = delta != 0
    counter = f(int(nonzero.sum()))
    with np.errstate(divide="ignore", invalid="ignore"):
        cur_avg = f(f(float(mag[nonzero].double().sum())) / counter)
    cur_max = f(float(mag.max())) if mag.numel() else f(0)
    if st.max == 0:
        st.max = float(cur_max)
    st.max = float(f(st.max * 0.99 + float(cur_max) * 0.01))
    st.avg = float(f(st.avg * 0.99 + float(cur_avg) * 0.01))
    delta = delta.clone()
    if sigmas and start < it:
        rolling_std, rolling_max, rolling_avg = f(st.std), f(st.max), f(st.avg)
        with np.errstate(divide="ignore", invalid="ignore"):
            progress_bad = f(f(it - start) / f(start))
        centred = (delta[nonzero] - float(rolling_avg)).double() ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            cur_std = f(np.sqrt(f(f(float(centred.sum())) / counter)))
        st.std = float(f(st.std * 0.99 + float(cur_std) * 0.01))
        final = f(rolling_avg + f(rolling_std * sigmas))
        bad = f(rolling_max - f(progress_bad * f(abs(rolling_max - final))))
        bad = max(final, bad)
        delta[delta.abs() > float(bad)] = 0
        threshold = f(min(final, rolling_avg) * progress)
    if percent and start < it:
        if st.reject_threshold == 0:
            st.reject_threshold = st.max
        nonzero = delta != 0
        counter_all = f(int(nonzero.sum()))
        reject = nonzero & (delta.abs() > float(f(st.reject_threshold)))
        counter_reject = f(int(reject.sum()))
        delta[reject] = 0
        with np.errstate(divide="ignore", invalid="ignore"):
            cur_percent = f(100 * f(f(counter_reject * f(classes + 4 + 1)) / counter_all))
        if cur_percent > percent:
            st.reject_threshold = float(f(f(st.reject_threshold) + 0.01))
        elif f(st.reject_threshold) > 0.01:
            st.reject_threshold = float(f(f(st.reject_threshold) - 0.01))
    if ep and ep < it:
        delta[delta.abs() < float(threshold)] = 0
    return delta


def _new_coords_boxes(out: Tensor, anchors: Tensor, net_w: int, net_h: int):
    h, w = out.shape[3], out.shape[4]
    ii = torch.arange(w, dtype=torch.float32, device=out.device).view(1, 1, 1, w)
    jj = torch.arange(h, dtype=torch.float32, device=out.device).view(1, 1, h, 1)
    px = (ii + out[:, :, 0]) / w
    py = (jj + out[:, :, 1]) / h
    aw = anchors[:, 0].view(1, -1, 1, 1)
    ah = anchors[:, 1].view(1, -1, 1, 1)
    pw = out[:, :, 2] * out[:, :, 2] * 4 * aw / net_w
    ph = out[:, :, 3] * out[:, :, 3] * 4 * ah / net_h
    return px, py, pw, ph
