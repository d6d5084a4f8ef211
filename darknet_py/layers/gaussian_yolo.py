"""``[Gaussian_yolo]`` (AlexeyAB ``gaussian_yolo_layer.c``): YOLOv3 with box uncertainty.

Per anchor of ``mask`` the input holds ``9 + classes`` channels (entries
``e``, each an H x W plane, anchor-major like [yolo]):
``0 x, 1 sigma_x, 2 y, 3 sigma_y, 4 w, 5 sigma_w, 6 h, 7 sigma_h, 8 objectness,
9.. class probs``. ``forward_gaussian_yolo_layer`` (CPU) applies logistic to
every entry except the raw ``w`` (4) and ``h`` (6), then maps x and y (entries
0 and 2 only, not their sigmas) to ``x*scale_x_y - 0.5*(scale_x_y-1)``
(``scal_add_cpu``, applied even when ``scale_x_y=1``).

Decoding (:meth:`GaussianYoloLayer.get_detections`, ``get_gaussian_yolo_detections``
+ ``correct_gaussian_yolo_boxes``, whose size scale is pjreddie's ``netw/new_w``): box as [yolo]'s
``exp(w)*anchor_w/net_w`` and ``(col + x)/W``, shifted by ``yolo_point``; the
class probability is ``objectness * p_class * (1 - mean(sigma_x, sigma_y,
sigma_w, sigma_h))``, kept when > thresh.

Unlike [yolo], ``anchors=`` is read in full (no ``num*2`` cap): Darknet writes
past its ``total*2`` biases if there are more, so that is a CfgError here.

    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> cfg = ("[net]\\nwidth=32\\nheight=32\\nchannels=3\\n[convolutional]\\nfilters=22\\n"
    ...        "[Gaussian_yolo]\\nclasses=2\\nnum=3\\nmask=1,2\\nanchors=1,2,3,4,5,6\\n")
    >>> head = Darknet(parse_cfg(cfg)).layers[1]
    >>> head.anchors_wh, head.mask, head.entries
    ([(3.0, 4.0), (5.0, 6.0)], [1, 2], 11)
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
from ..postprocess import DetectionArrays
from ..errors import DataError
from .activations import logistic
from .base import BuildContext, DarknetLayer, LossStep, Shape, head_output
from .registry import register
from .yolo import (IOU_KINDS, MAX_ANCHORS, ab_anchor_candidates,
                   ab_box_iou, cell_records, classes_multipliers, correct_yolo_boxes,
                   dx_box_iou, first_writer,
                   last_writer, nms_kind_of, pred_boxes, truth_rows)

_F32 = np.float32

FLT_MAX = 3.4028234663852886e38
YOLO_POINTS = ("center", "left_top", "right_bottom")
#: entries of one anchor that stay raw (the w and h means); all others get logistic
RAW_ENTRIES = (4, 6)
#: entries scaled by scale_x_y (the x and y means)
XY_ENTRIES = (0, 2)
#: the four uncertainty (sigma) entries, averaged into the class probability
SIGMA_ENTRIES = (1, 3, 5, 7)


@dataclass
class GaussianYoloOptions:
    classes: int = option(20)
    max: int = option(200, doc="max truths per image")
    num: int = option(1)
    mask: Optional[List[int]] = option(None)
    max_delta: float = option(FLT_MAX)
    counters_per_class: Optional[List[int]] = option(None)
    label_smooth_eps: float = option(0.0)
    scale_x_y: float = option(1.0)
    objectness_smooth: int = option(0)
    uc_normalizer: float = option(1.0)
    iou_normalizer: float = option(0.75)
    obj_normalizer: float = option(1.0)
    cls_normalizer: float = option(1.0)
    delta_normalizer: float = option(1.0)
    iou_loss: str = option("mse")
    iou_thresh_kind: str = option("iou")
    beta_nms: float = option(0.6)
    nms_kind: str = option("default")
    yolo_point: str = option("center", doc="center, left_top or right_bottom")
    jitter: float = option(0.2)
    resize: float = option(1.0)
    ignore_thresh: float = option(0.5)
    truth_thresh: float = option(1.0)
    iou_thresh: float = option(1.0)
    random: float = option(0.0)
    map: Optional[str] = option(None)
    anchors: Optional[List[float]] = option(None)

    def resolve(self, dialect) -> None:
        if self.num < 1:
            raise ValueError(f"num must be >= 1, got {self.num}")
        if self.classes < 1:
            raise ValueError(f"classes must be >= 1, got {self.classes}")
        if self.num > MAX_ANCHORS:  # its biases always hold 2*num floats
            raise ValueError(f"num={self.num} is more anchors than darknet_py builds "
                             f"({MAX_ANCHORS})")
        if self.mask is None:
            self.mask = list(range(self.num))
        if self.yolo_point not in YOLO_POINTS:  # parse_gaussian_yolo: anything else = center
            self.yolo_point = "center"


class GaussianYoloLayer(DarknetLayer):
    kind = "Gaussian_yolo"
    decodes = True
    alexeyab_layer_type = 29
    #: parse_gaussian_yolo knows cornersnms too (parse_yolo does not)
    NMS_KINDS = ("default", "greedynms", "diounms", "cornersnms")
    ab_forward_zeroes_delta = True
    elementwise = True

    def __init__(self, index: int, out_shape: Shape, opts: GaussianYoloOptions) -> None:
        super().__init__(index, out_shape)
        self.opts = opts
        self.classes = opts.classes
        self.mask: List[int] = list(opts.mask or [])
        # make_gaussian_yolo_layer fills biases with .5, then the cfg's anchors overwrite them
        anchors = [0.5] * (2 * opts.num)
        given = list(opts.anchors or [])
        anchors[:len(given)] = given
        self.anchors: List[float] = anchors
        self.yolo_point = opts.yolo_point
        self.entries = 9 + opts.classes
        self.nms_kind = nms_kind_of(opts.nms_kind, self.NMS_KINDS)
        self.beta_nms = float(_F32(opts.beta_nms))
        self.scale_x_y = float(np.float32(opts.scale_x_y))
        #: parser.c get_classes_multipliers (see :func:`~darknet_py.layers.yolo.classes_multipliers`)
        self.classes_multipliers: Optional[List[float]] = (
            classes_multipliers(opts.counters_per_class, opts.max_delta)
            if opts.counters_per_class else None)
        # blas.c:scal_add_cpu gets BETA computed in double from the float scale, then as float
        self.xy_bias = float(np.float32(-0.5 * (self.scale_x_y - 1.0)))
        n, k = len(self.mask), self.entries
        act = torch.ones(n, k, dtype=torch.bool)
        act[:, list(RAW_ENTRIES)] = False
        self.register_buffer("_logistic", act.view(1, n * k, 1, 1), persistent=False)
        xy = torch.zeros(n, k, dtype=torch.bool)
        xy[:, list(XY_ENTRIES)] = True
        self.register_buffer("_xy", xy.view(1, n * k, 1, 1), persistent=False)

    @property
    def anchors_wh(self) -> List[Tuple[float, float]]:
        """(w, h) in input pixels of this head's anchors, in mask order."""
        return [(self.anchors[2 * m], self.anchors[2 * m + 1]) for m in self.mask]

    def activate(self, x: Tensor) -> Tensor:
        order = gemm_order.current()
        if order is not None:  # forward_gaussian_yolo_layer's activate_array calls, per anchor
            k = self.entries
            y = order.logistic_segments(x, [s for a in range(len(self.mask)) for s in (
                (a * k, 2), (a * k + 2, 2), (a * k + 5, 1), (a * k + 7, 1),
                (a * k + 8, 1 + self.classes))])
        else:
            y = torch.where(self._logistic, logistic(x), x)
        return torch.where(self._xy, y * self.scale_x_y + self.xy_bias, y)

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        # backward_gaussian_yolo_layer adds l.delta to the input's delta as it is: the
        # gradient skips the logistic (as [yolo]'s)
        return head_output(x, self.activate)

    def input_channels(self, classes: int) -> int:
        """Channels the layer before must give for ``classes`` classes: (classes+9)*len(mask)
        (4 box means, 4 variances, objectness)."""
        return len(self.mask) * (classes + 9)

    # Darknet allocates l.cost: it counts in the network's mean cost
    has_cost = True

    def loss(self, output: Tensor, truth: Tensor, net_size: Tuple[int, int], seen: int = 0,
             step: Optional[LossStep] = None) -> Tuple[Tensor, Tensor]:
        return gaussian_yolo_delta(self, output.detach(), truth, net_size)

    def describe(self, in_shape: Shape) -> str:
        return ""

    def objectness_channels(self) -> List[int]:
        return [a * self.entries + 8 for a in range(len(self.mask))]

    def class_channels(self) -> List[int]:
        return [a * self.entries + 9 + j for a in range(len(self.mask))
                for j in range(self.classes)]

    def get_detections(self, output: Tensor, im_w: int, im_h: int, net_w: int, net_h: int,
                       thresh: float, hier_thresh: float = 0.5,
                       letterbox: bool = True) -> DetectionArrays:
        """``get_gaussian_yolo_detections`` for one image's output: cells in [yolo]'s
        order with objectness (entry 8) > thresh; w = exp(w)*anchor_w/net_w (double),
        x = (col + x)/W (float), shifted by w/2 for ``left_top``/``right_bottom``;
        prob = (float)(objectness*p_class) * (1.0 - mean sigma) in double, where the
        mean is the float sum of the four sigmas / 4.0; then
        ``correct_gaussian_yolo_boxes`` (pjreddie's size arithmetic)."""
        classes = self.classes
        found = cell_records(output, len(self.mask), self.entries, 8, thresh)
        if found is None:
            return DetectionArrays.empty(classes)
        p, row, col, anchor = found
        lh, lw = output.shape[1:]
        t = float(_F32(thresh))
        anchors = torch.tensor(np.asarray(self.anchors_wh, dtype=_F32))[anchor].double()
        w = (torch.exp(p[:, 4].double()) * anchors[:, 0] / net_w).float()
        h = (torch.exp(p[:, 6].double()) * anchors[:, 1] / net_h).float()
        x = (col.float() + p[:, 0]) / float(lw)
        y = (row.float() + p[:, 2]) / float(lh)
        if self.yolo_point == "left_top":
            x, y = x + w / 2, y + h / 2
        elif self.yolo_point == "right_bottom":
            x, y = x - w / 2, y - h / 2
        boxes = correct_yolo_boxes(torch.stack([x, y, w, h], dim=1), im_w, im_h, net_w, net_h,
                                   letterbox, "pjreddie")
        objectness = p[:, 8]
        sigma = (((p[:, 1] + p[:, 3]) + p[:, 5]) + p[:, 7]).double() / 4.0
        uc = sigma.float().double()
        probs = ((objectness[:, None] * p[:, 9:]).double() * (1.0 - uc[:, None])).float()
        probs = torch.where(probs > t, probs, torch.zeros((), dtype=probs.dtype))
        return DetectionArrays(boxes.numpy().astype(_F32), objectness.numpy().copy(),
                               probs.numpy().astype(_F32))


@register("Gaussian_yolo", options=GaussianYoloOptions, only="alexeyab")
def build(ctx: BuildContext) -> GaussianYoloLayer:
    r = ctx.reader
    o = r.read(GaussianYoloOptions)
    r.check(o.max >= 0, f"max must be >= 0, got {o.max}", "max")
    if o.anchors is not None:
        r.check(len(o.anchors) <= 2 * o.num,
                f"anchors has {len(o.anchors)} values but num={o.num} holds {2 * o.num}; "
                f"Darknet would write past its anchor array", "anchors")
    r.check(all(0 <= m < o.num for m in o.mask),
            f"mask {o.mask} refers to anchors outside 0..{o.num - 1}", "mask")
    if o.counters_per_class is not None:
        r.check(len(o.counters_per_class) == o.classes,
                f"counters_per_class has {len(o.counters_per_class)} values for classes="
                f"{o.classes}", "counters_per_class")
    i = ctx.input_shape
    expected = len(o.mask) * (o.classes + 9)
    r.check(i.c == expected,
            f"the previous layer has {i.c} channels but {len(o.mask)} anchors x "
            f"(9 + {o.classes} classes) needs {expected}", "classes")
    return GaussianYoloLayer(ctx.index, i, o)


# =====================================================================================
# Training: forward_gaussian_yolo_layer with state.train (AlexeyAB gaussian_yolo_layer.c)
# =====================================================================================
#: delta_gaussian_yolo_box's ``float sigma_const = 0.3`` and ``float epsi = pow(10,-9)``
SIGMA_CONST = float(_F32(0.3))
EPSI = float(_F32(1e-9))
SQRT_2PI = math.sqrt(math.pi * 2.0)


def _f32(x: Tensor) -> Tensor:
    return x.to(torch.float32)


def _shift(layer: GaussianYoloLayer, x: Tensor, y: Tensor, w: Tensor, h: Tensor
           ) -> Tuple[Tensor, Tensor]:
    """yolo_point's move of a box centre: left_top +w/2, right_bottom -w/2."""
    if layer.yolo_point == "left_top":
        return x + w / 2, y + h / 2
    if layer.yolo_point == "right_bottom":
        return x - w / 2, y - h / 2
    return x, y


def truth_cells(layer: GaussianYoloLayer, sel: Tensor, w: int, h: int) -> Tuple[Tensor, Tensor]:
    """The cell (i, j) a truth is learned at: ``(int)(x * l.w)``; for left_top/right_bottom the
    box corner's, clamped to the grid (``min_val_cmp(l.w-1, max_val_cmp(0, ...))``)."""
    x, y = sel[:, 0], sel[:, 1]
    if layer.yolo_point == "center":
        return (x * w).to(torch.int64), (y * h).to(torch.int64)
    sign = -1.0 if layer.yolo_point == "left_top" else 1.0
    fx = (x + sign * (sel[:, 2] / 2)) * w
    fy = (y + sign * (sel[:, 3] / 2)) * h
    fx = torch.minimum(torch.clamp(fx, min=0.0), torch.full_like(fx, w - 1))
    fy = torch.minimum(torch.clamp(fy, min=0.0), torch.full_like(fy, h - 1))
    return fx.to(torch.int64), fy.to(torch.int64)


def gaussian_box_delta(layer: GaussianYoloLayer, view: Tensor, truth: Tensor, anchors: Tensor,
                       ci: Tensor, cj: Tensor, w: int, h: int, net_w: int, net_h: int,
                       class_mult: Optional[Tensor] = None) -> Tensor:
    """delta_gaussian_yolo_box for m (cell, truth, anchor) matches: what each adds to the
    eight box entries (m, 8) (x, sigma_x, y, sigma_y, w, sigma_w, h, sigma_h).

    For each mean ``mu`` with target ``t`` and sigma ``s`` (float, as the C):
    ``d = t - mu``, ``e = d/s``, ``N = exp(-e^2/2) / (sqrt(2 pi) (s + 0.3))``,
    ``temp = 0.5/(N + 1e-9) * N * scale`` (scale = 2 - truth.w*truth.h), the mean's delta
    ``temp*e/s`` (or, with an IoU loss, box.c:dx_box_iou's, w/h times exp) times
    iou_normalizer, the sigma's ``temp*(e^2/s - 1/(s + 0.3))`` times uc_normalizer; NaN/inf
    become 0, then max_delta clips. ``class_mult`` (m,): counters_per_class's multiplier of
    each truth's class (the C passes ``iou_normalizer * class_multiplier``)."""
    o = layer.opts
    mu = view[:, [0, 2, 4, 6]]
    sig = view[:, [1, 3, 5, 7]]
    aw, ah = anchors[:, 0], anchors[:, 1]
    pw = _f32(torch.exp(mu[:, 2].double()) * aw.double() / net_w)
    ph = _f32(torch.exp(mu[:, 3].double()) * ah.double() / net_h)
    px = (ci.to(torch.float32) + mu[:, 0]) / w
    py = (cj.to(torch.float32) + mu[:, 1]) / h
    px, py = _shift(layer, px, py, pw, ph)
    pw = torch.where(pw == 0, torch.ones_like(pw), pw)
    ph = torch.where(ph == 0, torch.ones_like(ph), ph)
    tx, ty, tw, th = truth[:, 0], truth[:, 1], truth[:, 2], truth[:, 3]
    cx, cy = tx, ty
    if layer.yolo_point == "left_top":
        cx, cy = tx - tw / 2, ty - th / 2
    elif layer.yolo_point == "right_bottom":
        cx, cy = tx + tw / 2, ty + th / 2
    target = torch.stack([cx * w - ci.to(torch.float32), cy * h - cj.to(torch.float32),
                          _f32(torch.log((tw * net_w / aw).double())),
                          _f32(torch.log((th * net_h / ah).double()))], dim=1)
    scale = (2 - tw * th).double().unsqueeze(1)
    d = target - mu
    e = d / sig
    e2 = e * e
    s_c = sig + SIGMA_CONST
    normal = _f32(torch.exp(e2.double() * -0.5) / (SQRT_2PI * s_c.double()))
    temp = _f32(0.5 / (normal + EPSI).double() * normal.double() * scale)
    d_mu = _f32((temp * e).double() * (1.0 / sig.double()))
    d_sig = _f32(temp.double() * ((e2 / sig).double() - 1.0 / s_c.double()))
    if o.iou_loss != "mse":
        dx, dy, dw, dh = dx_box_iou(px, py, pw, ph, tx, ty, tw, th, o.iou_loss)
        if layer.yolo_point == "left_top":
            dx, dy = dx - dw / 2, dy - dh / 2
        elif layer.yolo_point == "right_bottom":
            dx, dy = dx + dw / 2, dy + dh / 2
        dw = _f32(dw.double() * torch.exp(mu[:, 2].double()))
        dh = _f32(dh.double() * torch.exp(mu[:, 3].double()))
        d_mu = torch.stack([dx, dy, dw, dh], dim=1)
    if class_mult is None:
        d_mu = d_mu * float(_F32(o.iou_normalizer))
    else:
        d_mu = d_mu * (class_mult * float(_F32(o.iou_normalizer))).unsqueeze(1)
    d_sig = d_sig * float(_F32(o.uc_normalizer))
    out = torch.stack([d_mu, d_sig], dim=2).reshape(-1, 8)  # mu0, sig0, mu1, sig1, ...
    out = torch.where(torch.isfinite(out), out, torch.zeros_like(out))  # fix_nan_inf
    if o.max_delta != FLT_MAX:
        m = float(_F32(o.max_delta))
        out = out.clamp(-m, m)
    return out


def gaussian_yolo_delta(layer: GaussianYoloLayer, output: Tensor, truth: Tensor,
                        net_size: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
    """forward_gaussian_yolo_layer (train, CPU): ``l.delta`` and ``*(l.cost)``, vectorised.

    The cell loop: objectness ``obj_normalizer * (0 - o)``, cleared (objectness_smooth:
    ``obj_normalizer * (iou^2 - o)`` and that truth's class) when the best IoU with a truth
    exceeds ignore_thresh and some class prob > 0.25; above truth_thresh a full target
    (objectness 1, class, box deltas). The truth loop, as AlexeyAB's [yolo]
    (:func:`~darknet_py.layers.yolo.ab_anchor_candidates`: best anchor, then every other
    over iou_thresh): box deltas accumulate (:func:`gaussian_box_delta`), objectness
    ``obj_normalizer * (1 - o)``, classes (label_smooth_eps; once a cell's class deltas are
    set, later truths set only their own class; counters_per_class's multiplier m of the
    class: x m * cls_normalizer on a whole-vector write, x m on the others, and the truth
    loop's box deltas x iou_normalizer * m and objectness x m). Then in every cell the eight box deltas
    are divided by the number of positive class deltas (unconditionally, unlike [yolo]).
    The cost is the sum of the squared deltas (``pow(mag_array(l.delta), 2)``). A truth
    class outside 0..classes-1 is a DataError: the C's truth loop writes outside its delta.
    """
    o = layer.opts
    where = f"layer {layer.index} [Gaussian_yolo]"
    if o.map is not None:
        raise ValueError(f"{where}: map= (class remapping) is not supported in training")
    if o.iou_loss not in IOU_KINDS or o.iou_thresh_kind not in IOU_KINDS:
        raise ValueError(f"{where}: iou_loss/iou_thresh_kind must be one of "
                         f"{', '.join(IOU_KINDS)}")
    net_w, net_h = net_size
    bsz, _, h, w = output.shape
    n, classes, k = len(layer.mask), layer.classes, layer.entries
    hw = h * w
    dev = output.device
    out = _f32(output).view(bsz, n, k, h, w)
    total = len(layer.anchors) // 2
    all_anchors = torch.tensor(layer.anchors[:2 * total], dtype=torch.float32,
                               device=dev).view(total, 2)
    mask_t = torch.tensor(layer.mask, device=dev)
    anchors = all_anchors[mask_t]
    rows, valid = truth_rows(truth, o.max, 5)
    cls = rows[..., 4].to(torch.int64)  # C: (int) of the float
    bad = valid & ((cls < 0) | (cls >= classes))
    if bool(bad.any()):
        raise DataError(f"truth class {int(cls[bad][0])} outside 0..{classes - 1} of this "
                        f"[Gaussian_yolo] (AlexeyAB's gaussian_yolo_layer.c would write "
                        f"outside its delta)", layer=layer.index)
    obj_norm = float(_F32(o.obj_normalizer))
    cm_t = (torch.tensor(layer.classes_multipliers, dtype=torch.float32, device=dev)
            if layer.classes_multipliers is not None else None)

    def mult(c: Tensor) -> Optional[Tensor]:
        """counters_per_class's multiplier of each class in ``c`` (None without it)."""
        return None if cm_t is None else cm_t[c]

    eps = float(_F32(o.label_smooth_eps))
    y1 = float(_F32(1 * (1 - eps) + 0.5 * eps)) if eps else 1.0
    y0 = float(_F32(0.5 * eps)) if eps else 0.0
    # -- the cell loop ---------------------------------------------------------------
    px, py, pw, ph = pred_boxes(layer, out[:, :, [0, 2, 4, 6]], net_w, net_h, anchors)
    px, py = _shift(layer, px, py, pw, ph)
    shp = (bsz, 1, 1, 1, -1)
    iou = ab_box_iou(px.unsqueeze(-1), py.unsqueeze(-1), pw.unsqueeze(-1), ph.unsqueeze(-1),
                     rows[..., 0].view(shp), rows[..., 1].view(shp), rows[..., 2].view(shp),
                     rows[..., 3].view(shp))
    iou = torch.where(valid.view(shp), iou, torch.full_like(iou, -1.0))
    best = iou.max(dim=-1)
    best_iou = best.values.clamp(min=0)
    best_t = torch.where(best.values > 0, best.indices, torch.zeros_like(best.indices))
    class_match = (out[:, :, 9:] > 0.25).any(dim=2)  # compare_gaussian_yolo_class
    best_match_iou = torch.where(class_match, best_iou, torch.zeros_like(best_iou))
    obj = out[:, :, 8]
    obj_delta = obj_norm * (0 - obj)
    ignored = best_match_iou > o.ignore_thresh
    bi = torch.arange(bsz, device=dev).view(-1, 1, 1, 1).expand(bsz, n, h, w)
    best_cls = cls[bi, best_t]
    cell_key = torch.arange(bsz * n * hw, device=dev).view(bsz, n, h, w)
    # class operations (cell, order, class, target y): order 0/1/2 in the cell loop, then
    # the truth loop's
    ops: List[Tuple[Tensor, Tensor, Tensor, Tensor, bool]] = []

    def add_op(key: Tensor, order: int, c: Tensor, y: Tensor, writes_class: bool) -> None:
        ops.append((key, torch.full_like(key, order) if isinstance(order, int) else order, c,
                    y, writes_class))

    if o.objectness_smooth:
        obj_delta = torch.where(ignored, obj_norm * (best_match_iou * best_match_iou - obj),
                                obj_delta)
        add_op(cell_key[ignored], 0, best_cls[ignored],
               torch.full_like(best_iou[ignored], y1), True)
    else:
        obj_delta = torch.where(ignored, torch.zeros_like(obj_delta), obj_delta)
    hit = best_iou > o.truth_thresh
    box_cells: List[Tensor] = []
    box_values: List[Tensor] = []
    if bool(hit.any()):
        iou_mult = best_iou * best_iou
        target = iou_mult if o.objectness_smooth else torch.ones_like(obj)
        obj_delta = torch.where(hit, obj_norm * (target - obj), obj_delta)
        add_op(cell_key[hit], 1, best_cls[hit], torch.full_like(best_iou[hit], y1), True)
        if o.objectness_smooth:
            add_op(cell_key[hit], 2, best_cls[hit], iou_mult[hit], False)
        ha = torch.arange(n, device=dev).view(1, -1, 1, 1).expand(bsz, n, h, w)[hit]
        hj = torch.arange(h, device=dev).view(1, 1, h, 1).expand(bsz, n, h, w)[hit]
        hi = torch.arange(w, device=dev).view(1, 1, 1, w).expand(bsz, n, h, w)[hit]
        view = out.permute(0, 1, 3, 4, 2)[hit]
        box_cells.append(cell_key[hit])
        box_values.append(gaussian_box_delta(layer, view, rows[bi[hit], best_t[hit]],
                                             anchors[ha], hi, hj, w, h, net_w, net_h,
                                             mult(best_cls[hit])))
    # -- the truth loop ----------------------------------------------------------------
    flat = torch.zeros(bsz * n * hw, k, dtype=torch.float32, device=dev)
    out_flat = out.permute(0, 1, 3, 4, 2).reshape(-1, k)
    obj_flat = obj_delta.reshape(-1).clone()
    b_idx, t_idx = valid.nonzero(as_tuple=True)
    if b_idx.numel():
        sel = rows[b_idx, t_idx]
        ci, cj = truth_cells(layer, sel, w, h)
        cn, cs, cr, slot_n, loc = ab_anchor_candidates(sel, all_anchors, mask_t, o.iou_thresh,
                                                       o.iou_thresh_kind, net_size, ci, cj, w, hw)
        if cr.numel():
            mb = b_idx[cr]
            key = (mb * n + slot_n) * hw + loc
            view = out[mb, slot_n, :, loc // w, loc % w]
            box_cells.append(key)
            m_cls = cls[b_idx[cr], t_idx[cr]]
            box_values.append(gaussian_box_delta(layer, view, sel[cr], all_anchors[cn], ci[cr],
                                                 cj[cr], w, h, net_w, net_h, mult(m_cls)))
            m_order = 3 + t_idx[cr] * (total + 1) + cs
            if cm_t is None:
                obj_flat[key] = obj_norm * (1 - out_flat[key, 8])
            else:  # class_multiplier * obj_normalizer * (1 - output), the last truth wins
                win = last_writer(key, m_order, flat.shape[0])
                obj_flat[key[win]] = ((mult(m_cls[win]) * obj_norm)
                                      * (1 - out_flat[key[win], 8]))
            add_op(key, m_order, m_cls, torch.full_like(sel[cr, 0], y1), True)
    flat[:, 8] = obj_flat
    # classes: the first class write of a cell sets the whole vector (delta_gaussian_yolo_class
    # finds delta[class 0] still 0), every later write its own class only; the last wins
    if ops:
        key = torch.cat([op[0] for op in ops])
        order = torch.cat([op[1] for op in ops])
        ccls = torch.cat([op[2] for op in ops])
        ytrue = torch.cat([op[3] for op in ops])
        writes = torch.cat([torch.full_like(op[0], op[4], dtype=torch.bool) for op in ops])
        big = torch.iinfo(torch.int64).max
        first = first_writer(key, torch.where(writes, order, torch.full_like(order, big)),
                             flat.shape[0]) & writes
        fk, fc = key[first], ccls[first]
        onehot = torch.zeros(fk.numel(), classes, device=dev)
        onehot[torch.arange(fk.numel(), device=dev), fc] = 1.0
        target = onehot * y1 + (1 - onehot) * y0 if eps else onehot
        flat[fk, 9:] = target - out_flat[fk, 9:]
        key2 = key * classes + ccls
        win = last_writer(key2, order, flat.shape[0] * classes)
        wk, wc = key[win], ccls[win]
        value = ytrue[win] - out_flat[wk, 9 + wc]
        if cm_t is not None:  # x m * cls_normalizer (whole-vector write), else x m
            m = mult(wc)
            value = value * torch.where(first[win], m * float(_F32(o.cls_normalizer)), m)
        flat[wk, 9 + wc] = value
    # box deltas: every contribution adds
    if box_cells:
        cells, values = torch.cat(box_cells), torch.cat(box_values)
        acc = torch.zeros(flat.shape[0], 8, dtype=torch.float64, device=dev)
        acc.index_add_(0, cells, values.double())
        touched = torch.zeros(flat.shape[0], dtype=torch.bool, device=dev)
        touched[cells] = True
        flat[touched, :8] = _f32(acc[touched])
    # averages_gaussian_yolo_deltas, in every cell
    positive = (flat[:, 9:] > 0).sum(dim=1)
    div = positive > 0
    flat[div, :8] = flat[div, :8] / positive[div].unsqueeze(1).to(torch.float32)
    delta = flat.view(bsz, n, h, w, k).permute(0, 1, 4, 2, 3).reshape(bsz, n * k, h, w)
    cost = _f32((delta.double() ** 2).sum())
    return delta.contiguous(), cost
