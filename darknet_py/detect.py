"""Detection end to end, as each fork's ``detector test`` does it.

One function per Darknet step, in the order ``detector.c:test_detector`` runs
them:

1. ``load_image_color`` + ``letterbox_image`` (AlexeyAB: ``resize_image`` unless
   ``-letter_box``) -> :func:`prepare` (see :mod:`darknet_py.image`);
2. ``network_predict`` -> the model's ``forward``;
3. ``get_network_boxes``: each detection head decodes its own output
   (``get_detections`` in its layer module: :mod:`darknet_py.layers.yolo`,
   :mod:`darknet_py.layers.region`, ...) -> :func:`get_network_boxes`;
4. NMS (:mod:`darknet_py.postprocess`): ``do_nms_sort``; AlexeyAB's
   ``diounms_sort`` when its last head asks for an ``nms_kind`` (:func:`nms_of`);
5. the printed lines: pjreddie's ``image.c:draw_detections`` (``name: 57%``,
   :func:`to_detections`), AlexeyAB's ``draw_detections_v3`` (sorted by left
   edge, best class first, optional ``-ext_output`` box: :func:`to_detections_v3`,
   :func:`line_v3`); :func:`draw_detections` draws the annotated image.

:func:`detect` chains them for a batch of images and returns typed
:class:`Detection` records; ``Darknet.detect`` is the same thing as a method.
The dialect of the model decides every step (``--dialect`` on the command line).

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
from .layers.region import get_region_detections
from .layers.yolo import correct_yolo_boxes
from .postprocess import DetectionArrays, box_diou, box_iou, diounms_sort, do_nms_sort, nms_sort

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
    """pjreddie's ``detector test`` letterboxes; AlexeyAB's resizes unless ``-letter_box``
    or ``letter_box=1`` in [net] (``if (net.letter_box) letter_box = 1``)."""
    if model.dialect.name != "alexeyab":
        return True
    return bool(model.net.letter_box)


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
    """The layers :func:`get_network_boxes` decodes (``fill_network_boxes``: every
    [yolo], [region], [Gaussian_yolo] and [detection] layer, in order), same classes."""
    heads = [model.layers[i] for i in model.heads]
    if not heads:
        raise CfgError("the network has no detection layer ([yolo], [region], [Gaussian_yolo] "
                       "or [detection]) to decode", file=model.source)
    for head in heads:
        if not head.decodes:
            raise CfgError(f"layer {head.index} [{head.kind}] cannot be decoded by darknet_py",
                           file=model.source)
    if len({h.classes for h in heads}) != 1:
        raise CfgError(f"detection layers with different numbers of classes "
                       f"({sorted({h.classes for h in heads})})", file=model.source)
    return heads


def get_yolo_detections(output: Tensor, layer, im_w: int, im_h: int, net_w: int, net_h: int,
                        thresh: float, letterbox: bool = True) -> DetectionArrays:
    """``yolo_layer.c:get_yolo_detections``: :meth:`YoloLayer.get_detections
    <darknet_py.layers.yolo.YoloLayer.get_detections>` (kept for callers of this name)."""
    return layer.get_detections(output, im_w, im_h, net_w, net_h, thresh, 0.5, letterbox)


def get_network_boxes(model, outputs: Sequence[Tensor], im_w: int, im_h: int, thresh: float,
                      hier_thresh: float = 0.5, letterbox: bool = True) -> DetectionArrays:
    """``network.c:get_network_boxes`` (relative=1) for one image.

    ``outputs`` are the model's head outputs for this image, (C, H, W) each, in
    layer order; each head decodes its own (``get_detections`` in its layer
    module: [yolo] the cells above thresh, [region] and [detection] every cell
    and anchor, ...) and the detections are concatenated in layer order.
    ``hier_thresh`` only matters for [region] layers with a softmax tree.
    """
    heads = _detection_heads(model)
    parts = [head.get_detections(out, im_w, im_h, model.width, model.height, thresh,
                                 hier_thresh, letterbox)
             for out, head in zip(outputs, heads)]
    return DetectionArrays.concat(parts, heads[0].classes)


def nms_of(model) -> Tuple[str, float]:
    """(nms_kind, beta_nms) of the NMS the model's dialect runs in ``detector test``:
    pjreddie always ``do_nms_sort``; AlexeyAB the ``nms_kind`` of its last [yolo],
    [Gaussian_yolo] or [region] layer (else of the last layer)."""
    if model.dialect.name != "alexeyab":
        return "default", 0.6
    listed = [model.layers[i] for i in model.heads if model.layers[i].alexeyab_layer_type]
    last = listed[-1] if listed else model.layers[-1]
    return last.nms_kind, last.beta_nms


def default_thresh(model) -> float:
    """``detector test``'s ``-thresh`` default: pjreddie .5, AlexeyAB .25."""
    return 0.25 if model.dialect.name == "alexeyab" else 0.5


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


def to_detections_v3(dets: DetectionArrays, names: Sequence[str], thresh: float, im_w: int,
                     im_h: int, image: Optional[str] = None) -> List[Detection]:
    """The lines AlexeyAB's ``image.c:draw_detections_v3`` prints, as :class:`Detection`.

    ``get_actual_detections``: each det whose best class (the first with the
    largest prob > thresh whose name does not start with ``dont_show``) exists;
    those sorted by their left edge ``x - w/2`` (float32; glibc's stable merge
    sort); per det the best class first, then every other class with prob >
    thresh in class order.
    """
    t = _F32(thresh)
    shown = np.array([not n.startswith("dont_show") for n in names[:dets.probs.shape[1]]],
                     dtype=bool)
    above = (dets.probs > t) & shown[None, :]
    masked = np.where(above, dets.probs, -np.inf)
    rows = np.nonzero(above.any(axis=1))[0]
    best = np.argmax(masked[rows], axis=1)
    lefts = dets.boxes[rows, 0] - dets.boxes[rows, 2] / _F32(2)
    order = np.argsort(lefts, kind="stable")
    out = []
    for r, b in zip(rows[order].tolist(), best[order].tolist()):
        x, y, w, h = (float(v) for v in dets.boxes[r])
        others = [c for c in np.nonzero(dets.probs[r] > t)[0].tolist() if c != b]
        for c in [b] + others:
            out.append(Detection(class_id=c, name=names[c], prob=float(dets.probs[r, c]),
                                 objectness=float(dets.objectness[r]), x=x, y=y, w=w, h=h,
                                 x1=(x - w / 2) * im_w, y1=(y - h / 2) * im_h,
                                 x2=(x + w / 2) * im_w, y2=(y + h / 2) * im_h,
                                 index=r, image=image))
    return out


def _c_round(v: np.float32) -> float:
    """C's ``round`` (half away from zero) of a float, as a double."""
    d = float(v)
    return float(np.copysign(np.floor(abs(d) + 0.5), d)) if abs(d) < 2 ** 52 else d


def line_v3(det: Detection, im_w: int, im_h: int, ext_output: bool = False) -> str:
    """One line of AlexeyAB's ``draw_detections_v3``: ``name: NN%`` and with
    ``-ext_output`` a tab and ``(left_x: %4.0f   top_y: %4.0f   width: %4.0f
    height: %4.0f)`` of ``round`` of the float32 pixel box.

    >>> d = Detection(0, "dog", 0.806, 0.9, 0.33, 0.64, 0.34, 0.52, 0, 0, 0, 0)
    >>> print(line_v3(d, 768, 576, True).replace(chr(9), " TAB "))
    dog: 81% TAB (left_x:  123   top_y:  219   width:  261   height:  300)
    """
    text = f"{det.name}: {_percent(det.prob):.0f}%"
    if not ext_output:
        return text
    x, y, w, h = (_F32(v) for v in (det.x, det.y, det.w, det.h))
    fw, fh = _F32(im_w), _F32(im_h)
    left = _c_round((x - w / _F32(2)) * fw)
    top = _c_round((y - h / _F32(2)) * fh)
    return (text + f"\t(left_x: {left:4.0f}   top_y: {top:4.0f}   width: "
            f"{_c_round(w * fw):4.0f}   height: {_c_round(h * fh):4.0f})")


def detection_to_json(dets: DetectionArrays, names: Sequence[str], frame_id: int,
                      filename: Optional[str]) -> str:
    """AlexeyAB's ``network.c:detection_to_json`` text for one image (what its
    ``detector test -out FILE`` writes per image): every prob > 0.005 whose name
    does not start with ``dont_show``, in array and class order, ``%f`` numbers."""
    head = f'{{\n "frame_id":{frame_id}, \n'
    if filename is not None:
        head += f' "filename":"{filename}", \n'
    head += ' "objects": [ \n'
    items = []
    t = _F32(0.005)
    for r in range(len(dets)):
        for c in range(dets.probs.shape[1]):
            if dets.probs[r, c] > t and not names[c].startswith("dont_show"):
                x, y, w, h = (float(v) for v in dets.boxes[r])
                items.append(f'  {{"class_id":{c}, "name":"{names[c]}", "relative_coordinates":'
                             f'{{"center_x":{x:f}, "center_y":{y:f}, "width":{w:f}, '
                             f'"height":{h:f}}}, "confidence":{float(dets.probs[r, c]):f}}}')
    return head + ", \n".join(items) + "\n ] \n}"


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


def run_detector(model, images: Iterable[ImageLike], *, thresh: Optional[float] = None,
                 nms: float = 0.45,
                 hier_thresh: float = 0.5, names: "Sequence[str] | str | None" = None,
                 batch_size: int = 8, letterbox: Optional[bool] = None, exif: bool = False,
                 on_error: Optional[Callable[[Exception, ImageLike], None]] = None,
                 decoder=None, workers: int = 2) -> Iterable[ImageResult]:
    """Darknet's ``test_detector`` over many images, ``batch_size`` at a time (a generator).

    Each image: load_image_color, letterbox_image (AlexeyAB dialect: plain
    resize unless ``letterbox=True``), network_predict, get_network_boxes,
    NMS (skipped when ``nms`` is 0, as Darknet's ``if (nms)``): pjreddie's
    ``do_nms_sort``, AlexeyAB's by the last head's ``nms_kind`` (:func:`nms_of`).
    ``thresh`` None is the dialect's default (:func:`default_thresh`).
    ``detections`` are in the order the dialect prints them (pjreddie's
    ``draw_detections``, AlexeyAB's ``draw_detections_v3``). ``seconds`` is the
    image's share of its batch's forward time. Images that cannot be used raise
    :class:`DataError`, or go to ``on_error``. ``decoder``: a Darknet build
    decodes image files with its own stb_image (see :func:`darknet_py.image.decode_image`).
    AlexeyAB's ``detector test`` also folds batchnorm into the convolutions after
    loading; ``model.fuse_batchnorm()`` first gives its exact numbers (the CLI does).
    ``workers`` threads decode and letterbox the next images while the network
    runs (0: all in this thread, reading ``images`` only as results are
    consumed, as an interactive prompt needs).
    """
    heads = _detection_heads(model)
    classes = heads[0].classes
    labels = resolve_names(names, classes)
    if thresh is None:
        thresh = default_thresh(model)
    nms_kind, beta_nms = nms_of(model)
    lines = to_detections_v3 if model.dialect.name == "alexeyab" else to_detections
    if model.dialect.name == "alexeyab" and not all(h.sets_det_classes for h in heads):
        # draw_detections_v3 loops over dets[i].classes, which [detection]'s decode leaves
        # at 0: AlexeyAB prints no lines for such networks (the -out JSON has them)
        def lines(*args) -> List[Detection]:
            return []
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
                dets, order = nms_sort(dets, nms, nms_kind, beta_nms)
            yield ImageResult(source, w, h, dets, lines(dets, labels, thresh, w, h, source),
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


def detect(model, images: "ImageLike | Sequence[ImageLike]", thresh: Optional[float] = None,
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
