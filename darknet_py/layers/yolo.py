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

import numpy as np
import torch
from torch import Tensor

from ..cfg.options import option
from ..image import letterbox_size
from ..postprocess import DetectionArrays
from .activations import logistic
from .base import BuildContext, DarknetLayer, Shape
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


class YoloLayer(DarknetLayer):
    kind = "yolo"
    decodes = True
    alexeyab_layer_type = 28
    #: the nms_kind values this section's parser knows (``parse_yolo``: no cornersnms)
    NMS_KINDS = ("default", "greedynms", "diounms")

    def __init__(self, index: int, out_shape: Shape, opts: YoloOptions,
                 dialect: str = "pjreddie") -> None:
        super().__init__(index, out_shape)
        self.opts = opts
        self.dialect = dialect
        self.nms_kind = nms_kind_of(opts.nms_kind, self.NMS_KINDS)
        self.beta_nms = float(_F32(opts.beta_nms))
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

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        y = x if self.new_coords else torch.where(self._logistic, logistic(x), x)
        if self.scale_x_y != 1.0:
            y = torch.where(self._xy, y * self.scale_x_y + self.xy_bias, y)
        return y

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
        output = output.detach().cpu()
        n_anchors, classes = len(self.mask), self.classes
        _, lh, lw = output.shape
        p = output.reshape(n_anchors, 5 + classes, lh * lw).permute(2, 0, 1)
        p = p.reshape(lh * lw * n_anchors, 5 + classes).float()
        t = float(_F32(thresh))
        keep = torch.nonzero(p[:, 4] > t).squeeze(1)
        if keep.numel() == 0:
            return DetectionArrays.empty(classes)
        p = p[keep]
        cell, anchor = keep // n_anchors, keep % n_anchors
        row, col = cell // lw, cell % lw
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
                                   letterbox, self.dialect)
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
    expected = len(o.mask) * (o.classes + 5)
    r.check(ctx.input_shape.c == expected,
            f"the previous layer has {ctx.input_shape.c} channels but {len(o.mask)} anchors x "
            f"(5 + {o.classes} classes) needs {expected}", "classes")
    return YoloLayer(ctx.index, ctx.input_shape, o, ctx.dialect.name)
