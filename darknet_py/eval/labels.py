"""Datasets as Darknet's evaluation reads them: image lists, label paths, label files.

* :func:`read_list` -- ``get_paths``: one path a line (``\\r\\n`` endings dropped);
* :func:`label_path` -- AlexeyAB's ``utils.c:replace_image_to_label``: COCO
  ``/images/{train,val}{2014,2017}/`` -> ``/labels/...``, ``/JPEGImages/`` ->
  ``/labels/``, the image extension -> ``.txt`` (else the label sits beside the image);
* :func:`read_boxes` -- ``data.c:read_boxes``: ``id x y w h`` (relative centre and
  size) records until the first that does not parse.

    >>> label_path("/data/coco/images/val2014/COCO_val2014_000000000042.jpg")
    '/data/coco/labels/val2014/COCO_val2014_000000000042.txt'
    >>> label_path("voc/VOC2007/JPEGImages/000001.jpg")
    'voc/VOC2007/labels/000001.txt'
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..errors import DataError

def label_path(image: str) -> str:
    """The label file AlexeyAB's evaluation reads for ``image`` (see the module doc); the rule
    lives with the training data, :func:`darknet_py.train.data.label_path`."""
    from ..train.data import label_path as fork_label_path
    return fork_label_path(image, "alexeyab")


def read_list(path: "os.PathLike[str] | str", what: str = "image list") -> List[str]:
    """The lines of a list file (Darknet's ``get_paths``); empty lines kept out."""
    name = os.fspath(path)
    try:
        with open(name, "r", encoding="utf-8", errors="replace") as handle:
            lines = [line.rstrip("\n").rstrip("\r") for line in handle]
    except FileNotFoundError:
        raise DataError(f"no such {what}", file=name) from None
    except OSError as exc:
        raise DataError(f"cannot read {what}: {exc.strerror or exc}", file=name) from None
    return [line for line in lines if line]



def read_images(path: "os.PathLike[str] | str", purpose: str) -> List[str]:
    """The images an evaluation runs on: the list file's lines, refused (one line, nothing
    written yet) when the list is empty or names images that do not exist."""
    paths = read_list(path, "image list")
    if not paths:
        raise DataError(f"the image list is empty: nothing to {purpose}", file=os.fspath(path))
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DataError(f"{len(missing)} of {len(paths)} listed images do not exist: "
                        f"{', '.join(missing[:3])}{more}", file=os.fspath(path))
    return paths

@dataclass
class Truths:
    """One image's labels: ``ids`` (N,) int, ``boxes`` (N, 4) float32 x, y, w, h relative."""

    ids: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def read_boxes(path: str, classes: Optional[int] = None) -> Optional[Truths]:
    """``read_boxes``: None when the file cannot be opened (Darknet: no objects), else the
    records up to the first that does not parse. A class id outside 0..classes-1 is a
    :class:`DataError` naming the file and line (Darknet would write out of bounds)."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    ids: List[int] = []
    boxes: List[List[float]] = []
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        for start in range(0, len(tokens) - len(tokens) % 5, 5):
            try:
                cid = int(tokens[start])
                box = [float(v) for v in tokens[start + 1:start + 5]]
            except ValueError:
                return Truths(np.asarray(ids, np.int64), np.asarray(boxes, np.float32).reshape(-1, 4))
            if classes is not None and not 0 <= cid < classes:
                raise DataError(f"class id {cid} is outside 0..{classes - 1} (the model has "
                                f"{classes} classes)", file=path, line=number)
            ids.append(cid)
            boxes.append(box)
        if len(tokens) % 5:
            break
    return Truths(np.asarray(ids, np.int64), np.asarray(boxes, np.float32).reshape(-1, 4))
