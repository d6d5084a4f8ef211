"""``[yolo]`` (``yolo_layer.c``): the YOLOv3 detection head.

The layer's output is Darknet's in-place activated tensor: per anchor ``a``
of ``mask``, channel ``a*(5+classes)+entry`` holds logistic(x), logistic(y),
raw w, raw h, logistic(objectness), logistic(class probs). AlexeyAB's
``scale_x_y=s`` then maps x,y to ``x*s - (s-1)/2``; with ``new_coords=1`` the
layer applies no logistic (the conv before it already did).

``anchors`` are in input pixels; ``mask`` picks this head's anchors (all
``num`` when absent). Decoding to boxes lives in :mod:`darknet_py.detect`.

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

import numpy as np
import torch
from torch import Tensor

from ..cfg.options import option
from .activations import logistic
from .base import BuildContext, DarknetLayer, Shape, head_output
from .registry import register

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


def check_anchor_count(opts) -> None:
    """Refuse a ``num`` whose default ``mask``/``anchors`` lists would be absurdly long."""
    missing = [k for k in ("mask", "anchors") if getattr(opts, k) is None]
    if opts.num > MAX_ANCHORS and missing:
        raise ValueError(f"num={opts.num} anchors without {'/'.join(missing)}= is more than "
                         f"darknet_py builds ({MAX_ANCHORS})")


class YoloLayer(DarknetLayer):
    kind = "yolo"
    elementwise = True

    def __init__(self, index: int, out_shape: Shape, opts: YoloOptions,
                 dialect_name: str = "pjreddie") -> None:
        super().__init__(index, out_shape)
        self.opts = opts
        self.dialect_name = dialect_name
        self.classes = opts.classes
        self.mask: List[int] = list(opts.mask or [])
        self.anchors: List[float] = list(opts.anchors or [])
        self.new_coords = bool(opts.new_coords)
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
        y = x if self.new_coords else torch.where(self._logistic, logistic(x), x)
        if self.scale_x_y != 1.0:
            y = torch.where(self._xy, y * self.scale_x_y + self.xy_bias, y)
        return y

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        return head_output(x, self.activate)

    # -- training (forward_yolo_layer with net.train) ------------------------------------
    has_cost = True

    def loss(self, output: Tensor, truth: Tensor, net_size: Tuple[int, int]
             ) -> Tuple[Tensor, Tensor]:
        if self.opts.map is not None:
            raise ValueError(f"layer {self.index} [yolo]: map= (class remapping) is not "
                             f"supported in training")
        fn = yolo_delta_alexeyab if self.dialect_name == "alexeyab" else yolo_delta_pjreddie
        return fn(self, output.detach(), truth, net_size)

    def describe(self, in_shape: Shape) -> str:
        return ""

    def table_line(self, in_shape: Shape) -> str:
        return "yolo"


@register("yolo", options=YoloOptions)
def build(ctx: BuildContext) -> YoloLayer:
    r = ctx.reader
    o = r.read(YoloOptions)
    r.check(len(o.anchors) >= 2 * o.num,
            f"anchors has {len(o.anchors)} values but num={o.num} needs {2 * o.num}", "anchors")
    r.check(all(0 <= m < o.num for m in o.mask),
            f"mask {o.mask} refers to anchors outside 0..{o.num - 1}", "mask")
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


def truth_rows(truth: Tensor, max_boxes: int, fields: int) -> Tuple[Tensor, Tensor]:
    """(rows (B, max_boxes, fields), valid (B, max_boxes)): Darknet reads at most l.max_boxes
    rows and stops at the first whose x is 0 (``if(!truth.x) break``)."""
    truth = truth.to(torch.float32)
    b, t = truth.shape[0], truth.shape[1]
    if truth.shape[2] < fields:
        raise ValueError(f"truth rows have {truth.shape[2]} fields, need {fields}")
    rows = truth[:, :max_boxes, :fields]
    if t < max_boxes:
        rows = torch.cat([rows, rows.new_zeros(b, max_boxes - t, fields)], dim=1)
    valid = torch.cumprod((rows[:, :, 0] != 0).to(torch.int64), dim=1).bool()
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
    rows, valid = truth_rows(truth, layer.opts.max, 5)
    tx, ty, tw, th = rows[..., 0], rows[..., 1], rows[..., 2], rows[..., 3]
    tcls = rows[..., 4].to(torch.int64)
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
        raise ValueError(f"layer {layer.index} [yolo]: truth class {int(c.max())} outside "
                         f"0..{layer.classes - 1}")
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


def yolo_delta_alexeyab(layer: "YoloLayer", output: Tensor, truth: Tensor,
                        net_size: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
    raise NotImplementedError("AlexeyAB [yolo] loss: not implemented yet")
