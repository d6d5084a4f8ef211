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
from .base import BuildContext, DarknetLayer, Shape
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

    def __init__(self, index: int, out_shape: Shape, opts: YoloOptions) -> None:
        super().__init__(index, out_shape)
        self.opts = opts
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
    return YoloLayer(ctx.index, ctx.input_shape, o)
