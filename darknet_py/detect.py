"""Detection end to end, as Darknet's ``detector test`` does it.

One function per Darknet step, in the order ``detector.c:test_detector`` runs
them:

1. ``load_image_color`` + ``letterbox_image`` -> :func:`prepare` (see
   :mod:`darknet_py.image`);
2. ``network_predict`` -> the model's ``forward``;
3. ``get_network_boxes`` (``yolo_layer.c:get_yolo_detections`` and
   ``correct_yolo_boxes`` per ``[yolo]`` layer; ``region_layer.c:get_region_detections``
   and ``correct_region_boxes`` per ``[region]`` layer (YOLOv2), AlexeyAB's
   ``custom_get_region_detections`` for its dialect) -> :func:`get_network_boxes`;
4. ``box.c:do_nms_sort`` -> :func:`do_nms_sort` (per class, not class-agnostic);
5. ``image.c:draw_detections`` -> :func:`detection_lines` (the printed
   ``name: 57%`` lines) and :func:`draw_detections` (the annotated image).

:func:`detect` chains them for a batch of images and returns typed
:class:`Detection` records; ``Darknet.detect`` is the same thing as a method.

A network's heads are all ``[yolo]`` or all ``[region]`` (mixing them, or
``[detection]``/``[Gaussian_yolo]`` heads, is a :class:`CfgError`). A ``[region]``
layer gives a detection for every cell and anchor (objectness 0 below thresh in
pjreddie's; 1 for all in AlexeyAB's, whose layout and indexing differ), where a
``[yolo]`` layer gives only the cells above thresh.

``hier_thresh`` is accepted everywhere Darknet takes it; it only matters for
``[region]`` layers with a softmax tree (YOLO9000), which darknet_py does not
build, so it changes nothing -- exactly as in Darknet for the other layers.

    >>> DetectionArrays.empty(3).probs.shape
    (0, 3)
"""
from __future__ import annotations

import collections
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .errors import CfgError, DataError
from .image import ImageLike, as_image, letterbox_image, letterbox_size, resize_image

_F32 = np.float32

#: The 80 COCO class names in Darknet's ``data/coco.names`` order (also ``cfg/coco.names``).
COCO_NAMES: Tuple[str, ...] = (
    "person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "sofa", "pottedplant", "bed", "diningtable", "toilet", "tvmonitor", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)


# -- .data / .names ---------------------------------------------------------------------
def read_data_cfg(path: "os.PathLike[str] | str") -> Dict[str, str]:
    """Darknet's ``option_list.c:read_data_cfg``: ``key=value`` lines of a .data file.

    Whitespace is removed (as Darknet's ``strip``), lines starting with ``#`` or
    ``;`` and empty lines are skipped; a line without ``=`` is an error.
    """
    name = os.fspath(path)
    try:
        with open(name, "r", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise DataError("no such .data file", file=name) from None
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", file=name) from None
    options: Dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        text = "".join(raw.split())
        if not text or text[0] in "#;":
            continue
        if "=" not in text:
            raise CfgError(f"expected key=value, got {raw.strip()!r}", file=name, line=number)
        key, value = text.split("=", 1)
        options[key] = value
    return options


def read_names(path: "os.PathLike[str] | str") -> List[str]:
    """Class names, one a line (Darknet's ``get_labels``; a trailing ``\\r`` is dropped)."""
    name = os.fspath(path)
    try:
        with open(name, "r", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise DataError("no such names file", file=name) from None
    except OSError as exc:
        raise DataError(f"cannot read names: {exc.strerror or exc}", file=name) from None
    names = [line.rstrip("\r") for line in text.split("\n")]
    if names and names[-1] == "":
        names.pop()  # the final newline ends the last name, it does not start a new one
    return names


def names_from_data(path: "os.PathLike[str] | str") -> List[str]:
    """The class names a .data file points to with ``names=`` (Darknet's default
    ``data/names.list``), looked up relative to the current folder first (as
    Darknet does), then relative to the .data file's folder.
    """
    options = read_data_cfg(path)
    listed = options.get("names", "data/names.list")
    candidates = [Path(listed)]
    if not Path(listed).is_absolute():
        candidates.append(Path(path).resolve().parent / listed)
    for candidate in candidates:
        if candidate.is_file():
            return read_names(candidate)
    raise DataError(f"names file {listed!r} not found (looked in the current folder and next "
                    f"to the .data file)", file=path, key="names")


def resolve_names(names: "Sequence[str] | os.PathLike[str] | str | None",
                  classes: int, source: Optional[object] = None) -> List[str]:
    """Names for ``classes`` classes from a list, a .names or .data path, or None.

    None gives :data:`COCO_NAMES` for 80 classes, else ``"0"``, ``"1"``, ...
    Fewer names than classes is a :class:`DataError` (naming ``source``).

    >>> resolve_names(None, 2)
    ['0', '1']
    >>> resolve_names(None, 80)[16]
    'dog'
    """
    if names is None:
        return list(COCO_NAMES) if classes == len(COCO_NAMES) else [str(i) for i in range(classes)]
    if isinstance(names, (str, os.PathLike)):
        path = os.fspath(names)
        found = names_from_data(path) if path.endswith(".data") else read_names(path)
        source = path
    else:
        found = [str(n) for n in names]
    if len(found) < classes:
        raise DataError(f"{len(found)} class names for a network with {classes} classes",
                        file=source)
    return list(found)


# -- arrays as Darknet's detection struct ----------------------------------------------
@dataclass
class DetectionArrays:
    """Darknet's ``detection`` array for one image, as numpy arrays (float32).

    ``boxes`` (N, 4): x, y, w, h -- centre and size relative to the original
    image; ``objectness`` (N,); ``probs`` (N, classes): objectness*class_prob
    where > thresh, else 0 (NMS zeroes suppressed ones).
    """
    boxes: np.ndarray
    objectness: np.ndarray
    probs: np.ndarray

    @classmethod
    def empty(cls, classes: int) -> "DetectionArrays":
        return cls(np.zeros((0, 4), _F32), np.zeros((0,), _F32), np.zeros((0, classes), _F32))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def take(self, index: np.ndarray) -> "DetectionArrays":
        return DetectionArrays(self.boxes[index], self.objectness[index], self.probs[index])

    def to_array(self) -> np.ndarray:
        """(N, 4+1+classes): Darknet's reference layout (x, y, w, h, objectness, probs)."""
        return np.concatenate([self.boxes, self.objectness[:, None], self.probs], axis=1)

    @classmethod
    def concat(cls, parts: Sequence["DetectionArrays"], classes: int) -> "DetectionArrays":
        if not parts:
            return cls.empty(classes)
        return cls(np.concatenate([p.boxes for p in parts]),
                   np.concatenate([p.objectness for p in parts]),
                   np.concatenate([p.probs for p in parts]))


@dataclass(frozen=True)
class Detection:
    """One printed line of Darknet's ``draw_detections``: a box and one class above thresh.

    ``x, y, w, h``: centre and size relative to the original image (Darknet's
    numbers); ``x1, y1, x2, y2``: the same box in pixels of the original image
    (not clipped); ``index``: the row in Darknet's post-NMS detection array.
    """
    class_id: int
    name: str
    prob: float
    objectness: float
    x: float
    y: float
    w: float
    h: float
    x1: float
    y1: float
    x2: float
    y2: float
    index: int = 0
    image: Optional[str] = None

    @property
    def line(self) -> str:
        """What Darknet prints: ``name: %.0f%%`` of ``prob*100`` computed in float32."""
        return f"{self.name}: {_percent(self.prob):.0f}%"

    def to_json(self) -> Dict[str, object]:
        return {"image": self.image, "class_id": self.class_id, "name": self.name,
                "prob": self.prob, "objectness": self.objectness,
                "x": self.x, "y": self.y, "w": self.w, "h": self.h}


def _percent(prob: float) -> float:
    return float(_F32(prob) * _F32(100))


# -- step 1: the network input ----------------------------------------------------------
def default_letterbox(model) -> bool:
    """pjreddie's ``detector test`` letterboxes; AlexeyAB's resizes unless ``-letter_box``."""
    return getattr(getattr(model, "dialect", None), "name", "pjreddie") != "alexeyab"


def prepare(image: np.ndarray, net_w: int, net_h: int, letterbox: bool = True,
            source: Optional[str] = None) -> np.ndarray:
    """Darknet's network input for a (3, H, W) float image: ``letterbox_image`` (or
    ``resize_image`` without letterbox), (3, net_h, net_w) float32.

    A letterbox that would leave the image 0 pixels wide or high (e.g. 10000x20
    into 416x416) is a :class:`DataError`: Darknet embeds nothing and its boxes
    come out as inf/NaN.
    """
    _, h, w = image.shape
    if not letterbox:
        return resize_image(image, net_w, net_h)
    new_w, new_h = letterbox_size(w, h, net_w, net_h)
    if new_w <= 0 or new_h <= 0:
        raise DataError(f"a {w}x{h} image letterboxed into the {net_w}x{net_h} network input "
                        f"is {new_w}x{new_h} pixels: too thin to detect anything", file=source)
    return letterbox_image(image, net_w, net_h)


# -- step 3: get_network_boxes ----------------------------------------------------------
def _detection_heads(model) -> List:
    """The layers :func:`get_network_boxes` decodes: all [yolo] or all [region], same classes."""
    from .layers.region import RegionLayer
    from .layers.yolo import YoloLayer
    heads = [model.layers[i] for i in model.heads]
    if not heads:
        raise CfgError("the network has no detection layer ([yolo] or [region]) to decode",
                       file=model.source)
    for head in heads:
        if not isinstance(head, (YoloLayer, RegionLayer)):
            raise CfgError(f"detection decodes [yolo] and [region] layers only; layer "
                           f"{head.index} is [{head.kind}]", file=model.source)
    kinds = sorted({h.kind for h in heads})
    if len(kinds) > 1:
        raise CfgError("the network mixes [yolo] and [region] detection layers; darknet_py "
                       "decodes one kind per network", file=model.source)
    if len({h.classes for h in heads}) != 1:
        raise CfgError(f"[{kinds[0]}] layers with different numbers of classes",
                       file=model.source)
    return heads


def correct_yolo_boxes(boxes: Tensor, im_w: int, im_h: int, net_w: int, net_h: int,
                       letterbox: bool = True) -> Tensor:
    """``yolo_layer.c:correct_yolo_boxes`` (relative=1): boxes on the letterboxed input ->
    boxes relative to the original image. Darknet's float/double mix, kept.

    >>> b = torch.tensor([[0.5, 0.5, 0.5, 0.375]])
    >>> correct_yolo_boxes(b, 768, 576, 416, 416).tolist()
    [[0.5, 0.5, 0.5, 0.5]]
    """
    if letterbox:
        new_w, new_h = letterbox_size(im_w, im_h, net_w, net_h)
    else:
        new_w, new_h = net_w, net_h
    rw = float(_F32(new_w) / _F32(net_w))  # (float)new_w/netw, used in double
    rh = float(_F32(new_h) / _F32(net_h))
    ox = (net_w - new_w) / 2.0 / net_w  # (netw - new_w)/2./netw, double
    oy = (net_h - new_h) / 2.0 / net_h
    sw = float(_F32(net_w) / _F32(new_w)) if new_w else float("inf")  # (float)netw/new_w
    sh = float(_F32(net_h) / _F32(new_h)) if new_h else float("inf")
    d = boxes.double()
    x = ((d[:, 0] - ox) / rw).float()
    y = ((d[:, 1] - oy) / rh).float()
    return torch.stack([x, y, boxes[:, 2] * sw, boxes[:, 3] * sh], dim=1)


def get_yolo_detections(output: Tensor, layer, im_w: int, im_h: int, net_w: int, net_h: int,
                        thresh: float, letterbox: bool = True) -> DetectionArrays:
    """``yolo_layer.c:get_yolo_detections`` for one image's (A*(5+C), H, W) [yolo] output.

    Rows in Darknet's fill order (cell ``row*W+col``, then anchor). A cell/anchor
    is kept when objectness > thresh; x = (col + x)/W, y = (row + y)/H (float32);
    w = exp(tw)*anchor_w/net_w in double (AlexeyAB ``new_coords``: tw*tw*4*anchor_w/net_w
    in float32); prob = objectness*class_prob if > thresh else 0.
    """
    n_anchors, classes = len(layer.mask), layer.classes
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
    anchors = torch.tensor(np.asarray(layer.anchors_wh, dtype=_F32))[anchor]
    x = (col.float() + p[:, 0]) / float(lw)
    y = (row.float() + p[:, 1]) / float(lh)
    if getattr(layer, "new_coords", False):
        w = p[:, 2] * p[:, 2] * 4.0 * anchors[:, 0] / float(net_w)
        h = p[:, 3] * p[:, 3] * 4.0 * anchors[:, 1] / float(net_h)
    else:
        w = (torch.exp(p[:, 2].double()) * anchors[:, 0].double() / net_w).float()
        h = (torch.exp(p[:, 3].double()) * anchors[:, 1].double() / net_h).float()
    boxes = correct_yolo_boxes(torch.stack([x, y, w, h], dim=1), im_w, im_h, net_w, net_h,
                               letterbox)
    objectness = p[:, 4]
    probs = objectness[:, None] * p[:, 5:]
    probs = torch.where(probs > t, probs, torch.zeros((), dtype=probs.dtype))
    return DetectionArrays(boxes.numpy().astype(_F32), objectness.numpy().copy(),
                           probs.numpy().astype(_F32))


def _region_rows(output: Tensor, layer) -> Tuple[Tensor, ...]:
    """One image's [region] output as Darknet's detection rows, in its fill order.

    Returns (col, row, anchor, x, y, tw, th, scale, class_probs) per row; x, y activated.
    pjreddie (``get_region_detections``): row ``n*H*W + cell`` (anchor-major), entries
    read from the planar ``l.output`` (``entry_index``): objectness at ``coords`` (1 with
    ``background``), class j at ``coords+1+j``. AlexeyAB (``get_region_boxes``, called by
    ``custom_get_region_detections``): row ``cell*num + n`` (cell-major), record
    ``row*(classes+5)`` of its transposed buffer -- x, y, w, h, objectness, classes,
    whatever ``coords`` is -- with the logistic on x, y applied here.
    """
    from .layers.activations import logistic
    _, lh, lw = output.shape
    num, classes, cells = layer.num, layer.classes, lh * lw
    if getattr(layer, "cell_major", False):
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
    record layout (see :func:`_region_rows`). ``[region]`` with a softmax tree (YOLO9000) is
    not built, so ``hier_thresh`` never matters.
    """
    output = output.detach().cpu()
    _, lh, lw = output.shape
    col, row, anchor, tx, ty, tw, th, scale, cls = _region_rows(output, layer)
    t = float(_F32(thresh))
    anchors = torch.tensor(np.asarray(layer.anchors_wh, dtype=_F32)).double()[anchor]
    x = (col.float() + tx) / float(lw)
    y = (row.float() + ty) / float(lh)
    w = (torch.exp(tw.double()) * anchors[:, 0] / lw).float()
    h = (torch.exp(th.double()) * anchors[:, 1] / lh).float()
    boxes = correct_yolo_boxes(torch.stack([x, y, w, h], dim=1), im_w, im_h, net_w, net_h,
                               letterbox)
    zero = torch.zeros((), dtype=torch.float32)
    if getattr(layer, "cell_major", False):
        if getattr(getattr(layer, "opts", None), "classfix", 0) == -1:
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


def get_network_boxes(model, outputs: Sequence[Tensor], im_w: int, im_h: int, thresh: float,
                      hier_thresh: float = 0.5, letterbox: bool = True) -> DetectionArrays:
    """``network.c:get_network_boxes`` (relative=1) for one image.

    ``outputs`` are the model's head outputs for this image, (C, H, W) each, in
    layer order; detections are concatenated in that order ([yolo]: the cells
    above thresh, :func:`get_yolo_detections`; [region]: every cell and anchor,
    :func:`get_region_detections`). ``hier_thresh`` only matters for softmax-tree
    [region] layers, which are not supported, and is ignored, as in Darknet for
    the others.
    """
    heads = _detection_heads(model)
    decode = get_region_detections if heads[0].kind == "region" else get_yolo_detections
    parts = [decode(out, head, im_w, im_h, model.width, model.height, thresh, letterbox)
             for out, head in zip(outputs, heads)]
    return DetectionArrays.concat(parts, heads[0].classes)


# -- step 4: do_nms_sort ----------------------------------------------------------------
def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """``box.c:box_iou`` in float32, broadcasting (..., 4) x, y, w, h boxes.

    >>> box_iou(torch.tensor([0.5, 0.5, 0.2, 0.2]), torch.tensor([0.6, 0.5, 0.2, 0.2]))
    tensor(0.3333)
    """
    def overlap(x1: Tensor, w1: Tensor, x2: Tensor, w2: Tensor) -> Tensor:
        left = torch.maximum(x1 - w1 / 2, x2 - w2 / 2)
        right = torch.minimum(x1 + w1 / 2, x2 + w2 / 2)
        return right - left

    iw = overlap(a[..., 0], a[..., 2], b[..., 0], b[..., 2])
    ih = overlap(a[..., 1], a[..., 3], b[..., 1], b[..., 3])
    inter = torch.where((iw < 0) | (ih < 0), torch.zeros((), dtype=iw.dtype), iw * ih)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return inter / union


def _objectness_to_end(objectness: np.ndarray) -> np.ndarray:
    """The permutation do_nms_sort's first loop makes: dets with objectness 0 swapped to the end."""
    order = np.arange(objectness.shape[0])
    zero = objectness == 0
    if not zero.any():
        return order
    k = len(order) - 1
    i = 0
    while i <= k:
        if zero[order[i]]:
            order[i], order[k] = order[k], order[i]
            k -= 1
        else:
            i += 1
    return order


#: up to this many candidate boxes, do_nms_sort computes their IoU > nms matrix once
#: (shared by every class: IoU does not depend on the class); above it, rows on demand
NMS_FULL = 6144


def _overlaps(boxes: Tensor, nms: float, rows: int = 512, iou=None) -> np.ndarray:
    """(N, N) bool: box_iou > nms for every pair, computed ``rows`` rows at a time."""
    iou = box_iou if iou is None else iou
    n = boxes.shape[0]
    out = np.empty((n, n), dtype=bool)
    for start in range(0, n, rows):
        block = iou(boxes[start:start + rows, None, :], boxes[None, :, :]) > nms
        out[start:start + rows] = block.numpy()
    return out


def _greedy(order: np.ndarray, over: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
    """Positions of ``order`` that greedy NMS suppresses: walking ``order``, each box still
    alive zeroes every later one it overlaps. ``over(i, js)`` -> bool IoU > nms for box i
    against boxes js. One vectorized step per surviving box."""
    m = order.size
    alive = np.ones(m, dtype=bool)
    i = 0
    while i < m - 1:
        step = int(np.argmax(alive[i:]))
        if not alive[i + step]:
            break
        i += step
        if i >= m - 1:
            break
        alive[i + 1:] &= ~over(int(order[i]), order[i + 1:])
        i += 1
    return ~alive


def box_diou(a: Tensor, b: Tensor, beta: float = 0.6) -> Tensor:
    """AlexeyAB's ``box.c:box_diou`` (beta 0.6; ``box_diounms`` with its beta): IoU minus
    (centre distance^2 / enclosing diagonal^2)^beta, float32 with the pow in double;
    the IoU alone where the enclosing box is a point.

    >>> a, b = torch.tensor([0.5, 0.5, 0.2, 0.2]), torch.tensor([0.6, 0.5, 0.2, 0.2])
    >>> round(float(box_iou(a, b)), 4), round(float(box_diou(a, b)), 4)  # 1/3 - (0.01/0.13)^0.6
    (0.3333, 0.1187)
    """
    def lo(x: Tensor, w: Tensor) -> Tensor:
        return x - w / 2

    def hi(x: Tensor, w: Tensor) -> Tensor:
        return x + w / 2
    top = torch.minimum(lo(a[..., 1], a[..., 3]), lo(b[..., 1], b[..., 3]))
    bot = torch.maximum(hi(a[..., 1], a[..., 3]), hi(b[..., 1], b[..., 3]))
    left = torch.minimum(lo(a[..., 0], a[..., 2]), lo(b[..., 0], b[..., 2]))
    right = torch.maximum(hi(a[..., 0], a[..., 2]), hi(b[..., 0], b[..., 2]))
    w, h = right - left, bot - top
    c = w * w + h * h
    iou = box_iou(a, b)
    dx, dy = a[..., 0] - b[..., 0], a[..., 1] - b[..., 1]
    d = dx * dx + dy * dy
    u = torch.pow((d / c).double(), float(_F32(beta))).float()
    return torch.where(c == 0, iou, iou - u)


#: AlexeyAB's [yolo] ``nms_kind`` -> the overlap its ``diounms_sort`` compares with nms
#: (``default`` is ``do_nms_sort``: box_iou; ``greedynms``: box_diou; ``diounms``:
#: box_diounms with the layer's ``beta_nms``)
def nms_overlap(nms_kind: str = "default", beta_nms: float = 0.6):
    if nms_kind == "greedynms":
        return box_diou
    if nms_kind == "diounms":
        return lambda a, b: box_diou(a, b, beta_nms)
    return box_iou


def do_nms_sort(dets: DetectionArrays, nms: float,
                overlap=None) -> Tuple[DetectionArrays, np.ndarray]:
    """``box.c:do_nms_sort``: per-class greedy NMS, returning (dets, order).

    Darknet first swaps detections with objectness 0 to the end (and leaves them
    out), then for each class k sorts all detections by prob[k] (descending,
    glibc's stable merge sort) and, walking that order, zeroes prob[k] of every
    later detection whose IoU with a detection still having prob[k] > 0 is
    > nms. The array is left in the order of the last class's sort; ``order[i]``
    is the input row of output row i. IoUs are computed in torch (float32, as
    ``box_iou``), once per pair of candidate boxes.
    """
    n, classes = dets.probs.shape
    order = _objectness_to_end(dets.objectness)
    total = int((dets.objectness != 0).sum())
    order = order[:total]
    work = dets.take(order)
    probs = work.probs.copy()
    perm = np.arange(total)
    candidates: List[np.ndarray] = []
    for k in range(classes):  # the chain of stable sorts fixes each class's order
        perm = perm[np.argsort(-probs[perm, k], kind="stable")]
        count = int((probs[perm, k] > 0).sum())
        candidates.append(perm[:count])
    busy = [k for k in range(classes) if candidates[k].size > 1]
    if busy:
        nms32 = float(_F32(nms))
        used = np.unique(np.concatenate([candidates[k] for k in busy]))
        boxes = torch.from_numpy(np.ascontiguousarray(work.boxes[used]))
        where = np.full(total, -1, dtype=np.int64)
        where[used] = np.arange(used.size)
        if used.size <= NMS_FULL:
            table = _overlaps(boxes, nms32, iou=overlap)

            def over(i: int, js: np.ndarray) -> np.ndarray:
                return table[i, js]
        else:
            def over(i: int, js: np.ndarray) -> np.ndarray:
                return ((overlap or box_iou)(boxes[i], boxes[torch.from_numpy(js)])
                        > nms32).numpy()
        for k in busy:
            local = where[candidates[k]]
            gone = _greedy(local, over)
            probs[candidates[k][gone], k] = 0
    out = DetectionArrays(work.boxes[perm], work.objectness[perm], probs[perm])
    return out, order[perm]


# -- step 5: draw_detections ------------------------------------------------------------
def to_detections(dets: DetectionArrays, names: Sequence[str], thresh: float, im_w: int,
                  im_h: int, image: Optional[str] = None) -> List[Detection]:
    """One :class:`Detection` per line ``draw_detections`` prints: for each det in
    array order, each class with prob > thresh (float32 comparison)."""
    t = _F32(thresh)
    rows, cls = np.nonzero(dets.probs > t)  # row-major: det order, then class order
    out = []
    for r, c in zip(rows.tolist(), cls.tolist()):
        x, y, w, h = (float(v) for v in dets.boxes[r])
        out.append(Detection(class_id=c, name=names[c], prob=float(dets.probs[r, c]),
                             objectness=float(dets.objectness[r]), x=x, y=y, w=w, h=h,
                             x1=(x - w / 2) * im_w, y1=(y - h / 2) * im_h,
                             x2=(x + w / 2) * im_w, y2=(y + h / 2) * im_h,
                             index=r, image=image))
    return out


def detection_lines(dets: DetectionArrays, names: Sequence[str], thresh: float) -> List[str]:
    """The lines ``draw_detections`` prints (``"dog: 57%"``)."""
    return [d.line for d in to_detections(dets, names, thresh, 1, 1)]


def get_color(c: int, x: int, maximum: int) -> float:
    """Darknet's ``image.c:get_color``: channel c of the colour for offset x of maximum.

    >>> [round(get_color(ch, 0, 80), 3) for ch in (2, 1, 0)]
    [1.0, 0.0, 1.0]
    """
    colors = ((1, 0, 1), (0, 0, 1), (0, 1, 1), (0, 1, 0), (1, 1, 0), (1, 0, 0))
    ratio = float(_F32(_F32(x) / _F32(maximum)) * _F32(5))
    i, j = int(np.floor(ratio)), int(np.ceil(ratio))
    ratio -= i
    return (1 - ratio) * colors[i][c] + ratio * colors[j][c]


def class_color(class_id: int, classes: int) -> Tuple[int, int, int]:
    """RGB 0..255 of a class's box, as draw_detections picks it (offset = class*123457 % classes)."""
    offset = class_id * 123457 % classes
    return tuple(int(255 * get_color(ch, offset, classes)) for ch in (2, 1, 0))  # type: ignore


def box_pixels(x: float, y: float, w: float, h: float, im_w: int,
               im_h: int) -> Tuple[int, int, int, int]:
    """draw_detections' (left, top, right, bot): C int truncation, clipped to the image.

    >>> box_pixels(0.5, 0.5, 0.5, 0.5, 100, 100)
    (25, 25, 75, 75)
    """
    left, right = int((x - w / 2.0) * im_w), int((x + w / 2.0) * im_w)
    top, bot = int((y - h / 2.0) * im_h), int((y + h / 2.0) * im_h)
    return max(left, 0), max(top, 0), min(right, im_w - 1), min(bot, im_h - 1)


def draw_detections(image: "PIL.Image.Image", dets: DetectionArrays,  # noqa: F821
                    names: Sequence[str], thresh: float) -> "PIL.Image.Image":  # noqa: F821
    """The annotated image of ``image.c:draw_detections``, drawn with Pillow: per
    det above thresh a box ``int(h*.006)`` pixels thick (at least 1) in the class
    colour and a label (the names above thresh, comma-separated) in black on that
    colour, over the box's top-left corner. Returns a new RGB image.
    """
    from PIL import ImageDraw, ImageFont

    out = image.convert("RGB")
    im_w, im_h = out.size
    draw = ImageDraw.Draw(out)
    size = max(10, int(im_h * 0.03))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    t = _F32(thresh)
    classes = dets.probs.shape[1]
    for r in range(len(dets)):
        above = np.nonzero(dets.probs[r] > t)[0]
        if above.size == 0:
            continue
        first = int(above[0])
        color = class_color(first, classes)
        width = max(1, int(im_h * 0.006))
        left, top, right, bot = box_pixels(*(float(v) for v in dets.boxes[r]), im_w, im_h)
        for i in range(width):
            x1, y1 = min(max(left + i, 0), im_w - 1), min(max(top + i, 0), im_h - 1)
            x2, y2 = min(max(right - i, 0), im_w - 1), min(max(bot - i, 0), im_h - 1)
            draw.rectangle([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)], outline=color)
        label = ", ".join(names[int(c)] for c in above)
        tl, tt, tr, tb = draw.textbbox((0, 0), label, font=font)
        lw, lh = tr - tl + 4, tb - tt + 4
        row = top + width
        if row - lh >= 0:
            row -= lh
        draw.rectangle([left, row, left + lw, row + lh], fill=color)
        draw.text((left + 2 - tl, row + 2 - tt), label, fill=(0, 0, 0), font=font)
    return out


# -- everything: detect -----------------------------------------------------------------
@dataclass
class ImageResult:
    """What :func:`run_detector` gives per image: Darknet's arrays and the typed lines."""
    source: Optional[str]
    width: int
    height: int
    dets: DetectionArrays
    detections: List[Detection]
    seconds: float = 0.0
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _label(image: ImageLike, i: int) -> Optional[str]:
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    return getattr(image, "filename", None) or None


def _ahead(fn: Callable, items: Iterable, workers: int, depth: int) -> Iterable[Tuple[object, Future]]:
    """(item, future of fn(item)) in order, with up to ``depth`` items started ahead in
    ``workers`` threads (image decoding overlaps the forward pass: Pillow, numpy and
    torch release the GIL). ``workers`` 0: one at a time in the caller's thread."""
    if workers <= 0:
        for item in items:
            future: Future = Future()
            try:
                future.set_result(fn(item))
            except Exception as exc:  # handed to the caller in order, as with threads
                future.set_exception(exc)
            yield item, future
        return
    pending: "collections.deque[Tuple[object, Future]]" = collections.deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="darknet_py-decode") as pool:
        try:
            for item in items:
                pending.append((item, pool.submit(fn, item)))
                if len(pending) > depth:
                    yield pending.popleft()
            while pending:
                yield pending.popleft()
        finally:
            for _, future in pending:
                future.cancel()


def run_detector(model, images: Iterable[ImageLike], *, thresh: float = 0.5, nms: float = 0.45,
                 hier_thresh: float = 0.5, names: "Sequence[str] | str | None" = None,
                 batch_size: int = 8, letterbox: Optional[bool] = None, exif: bool = False,
                 on_error: Optional[Callable[[Exception, ImageLike], None]] = None,
                 decoder=None, workers: int = 2) -> Iterable[ImageResult]:
    """Darknet's ``test_detector`` over many images, ``batch_size`` at a time (a generator).

    Each image: load_image_color, letterbox_image (AlexeyAB dialect: plain
    resize unless ``letterbox=True``), network_predict, get_network_boxes,
    do_nms_sort (skipped when ``nms`` is 0, as Darknet's ``if (nms)``).
    ``seconds`` is the image's share of its batch's forward time. Images
    that cannot be used raise :class:`DataError`, or go to ``on_error``.
    ``decoder``: a Darknet build decodes image files with its own stb_image
    (see :func:`darknet_py.image.decode_image`).
    ``workers`` threads decode and letterbox the next images while the network
    runs (0: all in this thread, reading ``images`` only as results are
    consumed, as an interactive prompt needs).
    """
    heads = _detection_heads(model)
    classes = heads[0].classes
    labels = resolve_names(names, classes)
    letter = default_letterbox(model) if letterbox is None else bool(letterbox)
    batch: List[Tuple[Optional[str], np.ndarray, np.ndarray]] = []

    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")

    def flush() -> Iterable[ImageResult]:
        x = torch.from_numpy(np.stack([item[2] for item in batch])).to(device)
        start = time.perf_counter()
        with torch.no_grad():
            outs = model(x)
            outs = [o.float().cpu() for o in (outs if isinstance(outs, (list, tuple)) else [outs])]
        share = (time.perf_counter() - start) / len(batch)
        for b, (source, im, _) in enumerate(batch):
            h, w = im.shape[1:]
            dets = get_network_boxes(model, [o[b] for o in outs], w, h, thresh, hier_thresh, letter)
            order = np.arange(len(dets))
            if nms:
                dets, order = do_nms_sort(dets, nms)
            yield ImageResult(source, w, h, dets, to_detections(dets, labels, thresh, w, h, source),
                              share, order)
        batch.clear()

    def load(image: ImageLike) -> Tuple[np.ndarray, np.ndarray]:
        im = as_image(image, exif=exif, decoder=decoder)
        return im, prepare(im, model.width, model.height, letter, _label(image, 0))

    depth = max(1, batch_size) + max(0, workers)
    for i, (image, future) in enumerate(_ahead(load, images, workers, depth)):
        source = _label(image, i)
        try:
            im, x = future.result()
        except DataError as exc:
            if on_error is None:
                raise
            on_error(exc, image)
            continue
        batch.append((source, im, x))
        if len(batch) >= max(1, batch_size):
            yield from flush()
    if batch:
        yield from flush()


def detect(model, images: "ImageLike | Sequence[ImageLike]", thresh: float = 0.5,
           nms: float = 0.45, hier_thresh: float = 0.5,
           names: "Sequence[str] | str | None" = None, *, batch_size: int = 8,
           letterbox: Optional[bool] = None, exif: bool = False,
           decoder=None) -> "Union[List[Detection], List[List[Detection]]]":
    """Detect objects like ``darknet detector test``: typed detections per image.

    ``images``: one image (path, PIL image, numpy array: uint8 (H, W, 3) or
    float (3, H, W) in [0, 1]) -> a list of :class:`Detection`; a list/tuple of
    images -> one such list per image. ``names``: class names (list, .names or
    .data path); default COCO names for 80 classes. Detections come in the
    order Darknet prints them. See :func:`run_detector` for the rest.
    """
    single = not isinstance(images, (list, tuple))
    items = [images] if single else list(images)
    results = [r.detections for r in run_detector(
        model, items, thresh=thresh, nms=nms, hier_thresh=hier_thresh, names=names,
        batch_size=batch_size, letterbox=letterbox, exif=exif, decoder=decoder)]
    return results[0] if single else results
