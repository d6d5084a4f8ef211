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

import numpy as np
import torch
from torch import Tensor

from ..cfg.options import option
from ..postprocess import DetectionArrays
from .activations import logistic
from .base import BuildContext, DarknetLayer, Shape
from .registry import register
from .yolo import MAX_ANCHORS, cell_records, correct_yolo_boxes, nms_kind_of

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

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        y = torch.where(self._logistic, logistic(x), x)
        return torch.where(self._xy, y * self.scale_x_y + self.xy_bias, y)

    def input_channels(self, classes: int) -> int:
        """Channels the layer before must give for ``classes`` classes: (classes+9)*len(mask)
        (4 box means, 4 variances, objectness)."""
        return len(self.mask) * (classes + 9)

    # Darknet allocates l.cost: it counts in the network's mean cost
    has_cost = True

    def loss(self, output, truth, net_size, seen: int = 0):
        raise ValueError(f"layer {self.index} [Gaussian_yolo]: its training loss "
                         f"(gaussian_yolo_layer.c) is not implemented in darknet_py yet")

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
