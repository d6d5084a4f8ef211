"""``detector valid``: each fork's results files (``detector.c:validate_detector``).

The model's dialect picks the fork. pjreddie: every image letterboxed, thresh 0.005,
NMS 0.45 (``do_nms_sort``). AlexeyAB: resized (letterboxed with the cfg's
``letter_box``), thresh 0.001, NMS 0.6 of the last head's ``nms_kind``. Both: hier 0.5,
boxes in pixels of the original image. Output, by the ``.data`` file's ``eval=``:

* ``coco``: ``<results>/<outfile or coco_results>.json``, one
  ``{"image_id":..., "category_id":..., "bbox":[x, y, w, h], "score":...}`` per
  (detection, class) with prob > 0, boxes clipped to the image, Darknet's 80-to-91
  COCO category ids. The image id is parsed from the file name for COCO 2014
  (``COCO_val2014_000000000042.jpg``: the digits after the last ``_``) and 2017
  (``000000000042.jpg``) names alike -- where AlexeyAB's ``atoi(basecfg(path))``
  gives 0 for 2014 names and pjreddie's looks for ``_`` in the whole path;
* otherwise (``voc``): ``<results>/<outfile or comp4_det_test_><name>.txt`` per class,
  lines ``id prob xmin ymin xmax ymax`` (1-based, clipped to 1..w / 1..h).

Every file is written atomically after all images ran: an error leaves nothing behind.
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional

import numpy as np

from ..errors import DataError
from ..io import atomic_write

#: Darknet's coco_ids: class index (coco.names order) -> COCO category id
COCO_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
            25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49,
            50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74,
            75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90)
F32 = np.float32
#: fork -> (thresh, nms)
SETTINGS = {"pjreddie": (0.005, 0.45), "alexeyab": (0.001, 0.6)}


def basecfg(path: str) -> str:
    """Darknet's ``basecfg``: the file name without folders and extension."""
    name = re.split(r"[\\/]", path)[-1]
    return name.split(".")[0]


def coco_image_id(path: str) -> int:
    """The COCO image id in a file name, 2014 or 2017 style.

    >>> coco_image_id("/data/my_coco/val2014/COCO_val2014_000000000042.jpg")
    42
    >>> coco_image_id("/data/my_coco/val2017/000000000139.jpg")
    139
    """
    stem = basecfg(path)
    digits = re.match(r"\d+", stem.rsplit("_", 1)[-1])
    if digits is None:
        raise DataError("no COCO image id in the file name (expected COCO_val2014_<id>.jpg or "
                        "<id>.jpg)", file=path)
    return int(digits.group(0))


def _detections(model, paths: List[str], fork: str, batch_size: int):
    from ..detect import nms_of, run_detector
    from ..postprocess import nms_sort
    thresh, nms = SETTINGS[fork]
    head = model.layers[model.heads[-1]]
    if fork == "alexeyab":
        kind, beta = nms_of(model)
        letter = bool(getattr(model.net, "letter_box", 0))
    else:
        (kind, beta), letter = ("default", 0.6), True
    for result in run_detector(model, paths, thresh=thresh, nms=0, hier_thresh=0.5,
                               names=[str(i) for i in range(head.classes)],
                               batch_size=batch_size, letterbox=letter):
        dets, _ = nms_sort(result.dets, nms, kind, beta)
        yield result, dets


def _pixel_corners(boxes: np.ndarray, w: int, h: int, plus: float):
    """get_network_boxes(relative=0): x*w (float); then x -/+ w/2. (+1) in double -> float."""
    px = (boxes[:, 0] * F32(w)).astype(F32).astype(np.float64)
    py = (boxes[:, 1] * F32(h)).astype(F32).astype(np.float64)
    pw = (boxes[:, 2] * F32(w)).astype(F32).astype(np.float64)
    ph = (boxes[:, 3] * F32(h)).astype(F32).astype(np.float64)
    return ((px - pw / 2.0 + plus).astype(F32), (py - ph / 2.0 + plus).astype(F32),
            (px + pw / 2.0 + plus).astype(F32), (py + ph / 2.0 + plus).astype(F32))


def validate_detector(data, cfg=None, weights=None, *, outfile: Optional[str] = None,
                      model=None, batch_size: int = 8) -> List[str]:
    """Write the results files of ``data``'s ``valid`` list; returns their paths."""
    from ..detect import read_data_cfg, read_names
    from .labels import read_images
    options = read_data_cfg(data)
    if model is None:
        from .. import load
        model = load(cfg, None, warn_unused=False)
        load_later = weights
    else:
        load_later = None
    if not model.heads:
        from ..errors import CfgError
        raise CfgError("the network has no detection layer", file=cfg)
    classes = model.layers[model.heads[-1]].classes
    if "classes" in options and options["classes"].strip() != str(classes):
        raise DataError(f"classes={options['classes']} but the cfg's detection layers have "
                        f"{classes} classes", file=data, key="classes")
    names = read_names(options.get("names", "data/names.list"))
    kind = options.get("eval", "voc")
    if kind not in ("coco", "voc"):
        raise DataError(f"eval={kind}: darknet_py writes coco and voc results", file=data,
                        key="eval")
    if kind == "voc" and len(names) < classes:
        raise DataError(f"{len(names)} names for {classes} classes", file=data, key="names")
    if kind == "coco" and classes > len(COCO_IDS):
        raise DataError(f"eval=coco maps 80 classes to COCO ids; the cfg has {classes}",
                        file=data, key="eval")
    listed = options.get("valid", "data/train.list")
    paths = read_images(listed, "validate")
    ids = [coco_image_id(p) for p in paths] if kind == "coco" else None
    if load_later is not None:
        model.load_weights(load_later)
    prefix = options.get("results", "results")
    fork = model.dialect.name
    if kind == "coco":
        lines: List[str] = []
        for n, (result, dets) in enumerate(_detections(model, paths, fork, batch_size)):
            x0, y0, x1, y1 = _pixel_corners(dets.boxes, result.width, result.height, 0.0)
            x0, y0 = np.maximum(x0, F32(0)), np.maximum(y0, F32(0))
            x1 = np.minimum(x1, F32(result.width))
            y1 = np.minimum(y1, F32(result.height))
            bw, bh = (x1 - x0).astype(F32), (y1 - y0).astype(F32)
            for r, c in zip(*np.nonzero(dets.probs > 0)):
                lines.append('{"image_id":%d, "category_id":%d, "bbox":[%f, %f, %f, %f], '
                             '"score":%f}' % (ids[n], COCO_IDS[c], x0[r], y0[r], bw[r], bh[r],
                                              dets.probs[r, c]))
        files = {os.path.join(prefix, f"{outfile or 'coco_results'}.json"):
                 "[\n" + ",\n".join(lines) + "\n]\n"}
    else:
        per_class: Dict[int, List[str]] = {c: [] for c in range(classes)}
        for result, dets in _detections(model, paths, fork, batch_size):
            x0, y0, x1, y1 = _pixel_corners(dets.boxes, result.width, result.height, 1.0)
            x0, y0 = np.maximum(x0, F32(1)), np.maximum(y0, F32(1))
            x1 = np.minimum(x1, F32(result.width))
            y1 = np.minimum(y1, F32(result.height))
            ident = basecfg(result.source or "")
            for r, c in zip(*np.nonzero(dets.probs > 0)):
                per_class[int(c)].append("%s %f %f %f %f %f\n" % (
                    ident, dets.probs[r, c], x0[r], y0[r], x1[r], y1[r]))
        files = {os.path.join(prefix, f"{outfile or 'comp4_det_test_'}{names[c]}.txt"):
                 "".join(per_class[c]) for c in range(classes)}
    os.makedirs(prefix, exist_ok=True)
    for path, text in files.items():
        atomic_write(path, text.encode("utf-8"))
    return list(files)
