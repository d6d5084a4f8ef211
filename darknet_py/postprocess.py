"""After the heads: Darknet's detection arrays and its non-maximum suppressions.

* :class:`DetectionArrays` -- Darknet's ``detection`` array for one image;
* :func:`do_nms_sort` -- ``box.c:do_nms_sort`` (both forks): per class, greedy, IoU;
* :func:`diounms_sort` -- AlexeyAB's ``box.c:diounms_sort``, used by its ``detector
  test`` when the last detection layer has ``nms_kind`` other than ``default``:
  ``greedynms`` suppresses on DIoU with the exponent 0.6 hard-coded
  (``box_diou``), ``diounms`` on DIoU with the layer's ``beta_nms``
  (``box_diounms``), ``cornersnms`` on plain IoU;
* :func:`nms_sort` -- the one a head's ``nms_kind`` asks for.

Each head layer decodes its own output (``get_detections`` in its module in
:mod:`darknet_py.layers`) into :class:`DetectionArrays`; :mod:`darknet_py.detect`
chains decode, NMS and printing.

    >>> DetectionArrays.empty(3).probs.shape
    (0, 3)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

_F32 = np.float32

#: AlexeyAB's NMS kinds (``parser.c``: ``nms_kind=``; anything unknown is ``default``)
NMS_KINDS = ("default", "greedynms", "diounms", "cornersnms")


# -- Darknet's detection struct, as arrays ----------------------------------------------
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


# -- box measures (float32, broadcasting (..., 4) x, y, w, h) ---------------------------
def _intersection(a: Tensor, b: Tensor) -> Tensor:
    def overlap(x1: Tensor, w1: Tensor, x2: Tensor, w2: Tensor) -> Tensor:
        left = torch.maximum(x1 - w1 / 2, x2 - w2 / 2)
        right = torch.minimum(x1 + w1 / 2, x2 + w2 / 2)
        return right - left

    iw = overlap(a[..., 0], a[..., 2], b[..., 0], b[..., 2])
    ih = overlap(a[..., 1], a[..., 3], b[..., 1], b[..., 3])
    return torch.where((iw < 0) | (ih < 0), torch.zeros((), dtype=iw.dtype), iw * ih)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """``box.c:box_iou`` (pjreddie: intersection/union, 0/0 is NaN) in float32.

    >>> box_iou(torch.tensor([0.5, 0.5, 0.2, 0.2]), torch.tensor([0.6, 0.5, 0.2, 0.2]))
    tensor(0.3333)
    """
    inter = _intersection(a, b)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return inter / union


def box_iou_alexeyab(a: Tensor, b: Tensor) -> Tensor:
    """AlexeyAB's ``box_iou``: 0 when the intersection or the union is 0, else I/U."""
    inter = _intersection(a, b)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    zero = torch.zeros((), dtype=inter.dtype)
    return torch.where((inter == 0) | (union == 0), zero, inter / torch.where(union == 0, 1, union))


def box_diou(a: Tensor, b: Tensor, beta: float = 0.6) -> Tensor:
    """AlexeyAB's ``box_diounms(a, b, beta)`` (``box_diou`` is beta 0.6): IoU minus
    ``pow(d/c, beta)``, d the squared centre distance, c the squared diagonal of the
    enclosing box (float32; ``pow`` in double as C's); IoU alone when c is 0.

    >>> a, b = torch.tensor([0.5, 0.5, 0.2, 0.2]), torch.tensor([0.6, 0.5, 0.2, 0.2])
    >>> round(float(box_diou(a, b, 1.0)), 5)  # 1/3 - 0.01/(0.3**2 + 0.2**2)
    0.25641
    """
    top = torch.minimum(a[..., 1] - a[..., 3] / 2, b[..., 1] - b[..., 3] / 2)
    bot = torch.maximum(a[..., 1] + a[..., 3] / 2, b[..., 1] + b[..., 3] / 2)
    left = torch.minimum(a[..., 0] - a[..., 2] / 2, b[..., 0] - b[..., 2] / 2)
    right = torch.maximum(a[..., 0] + a[..., 2] / 2, b[..., 0] + b[..., 2] / 2)
    w, h = right - left, bot - top
    c = w * w + h * h
    iou = box_iou_alexeyab(a, b)
    dx, dy = a[..., 0] - b[..., 0], a[..., 1] - b[..., 1]
    d = dx * dx + dy * dy
    ratio = d / torch.where(c == 0, 1, c)
    u = torch.pow(ratio.double(), float(_F32(beta))).to(iou.dtype)
    return torch.where(c == 0, iou, iou - u)


# -- the sort-and-suppress loop both NMS functions share ---------------------------------
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


#: up to this many candidate boxes, NMS computes their "overlaps" matrix once
#: (shared by every class: it does not depend on the class); above it, rows on demand
NMS_FULL = 6144

Overlap = Callable[[Tensor, Tensor], Tensor]


def _overlaps(boxes: Tensor, over: Overlap, rows: int = 512) -> np.ndarray:
    """(N, N) bool: ``over(box i, box j)`` for every pair, ``rows`` rows at a time."""
    n = boxes.shape[0]
    out = np.empty((n, n), dtype=bool)
    for start in range(0, n, rows):
        out[start:start + rows] = over(boxes[start:start + rows, None, :],
                                       boxes[None, :, :]).numpy()
    return out


def _greedy(order: np.ndarray, over: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
    """Positions of ``order`` that greedy NMS suppresses: walking ``order``, each box still
    alive zeroes every later one it overlaps. ``over(i, js)`` -> bool for box i against
    boxes js. One vectorized step per surviving box."""
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


def _nms(dets: DetectionArrays, over: Overlap) -> Tuple[DetectionArrays, np.ndarray]:
    """The loop of ``do_nms_sort`` and ``diounms_sort``; ``over(a, b)`` says whether the
    earlier box a suppresses the later b. Returns (dets, order)."""
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
        used = np.unique(np.concatenate([candidates[k] for k in busy]))
        boxes = torch.from_numpy(np.ascontiguousarray(work.boxes[used]))
        where = np.full(total, -1, dtype=np.int64)
        where[used] = np.arange(used.size)
        if used.size <= NMS_FULL:
            table = _overlaps(boxes, over)

            def pairs(i: int, js: np.ndarray) -> np.ndarray:
                return table[i, js]
        else:
            def pairs(i: int, js: np.ndarray) -> np.ndarray:
                return over(boxes[i], boxes[torch.from_numpy(js)]).numpy()
        for k in busy:
            local = where[candidates[k]]
            gone = _greedy(local, pairs)
            probs[candidates[k][gone], k] = 0
    out = DetectionArrays(work.boxes[perm], work.objectness[perm], probs[perm])
    return out, order[perm]


def do_nms_sort(dets: DetectionArrays, nms: float) -> Tuple[DetectionArrays, np.ndarray]:
    """``box.c:do_nms_sort``: per-class greedy NMS, returning (dets, order).

    Darknet first swaps detections with objectness 0 to the end (and leaves them
    out), then for each class k sorts all detections by prob[k] (descending,
    glibc's stable merge sort) and, walking that order, zeroes prob[k] of every
    later detection whose IoU with a detection still having prob[k] > 0 is
    > nms. The array is left in the order of the last class's sort; ``order[i]``
    is the input row of output row i. IoUs are computed in torch (float32, as
    ``box_iou``), once per pair of candidate boxes.
    """
    nms32 = float(_F32(nms))
    return _nms(dets, lambda a, b: box_iou(a, b) > nms32)


def diounms_sort(dets: DetectionArrays, nms: float, kind: str,
                 beta: float = 0.6) -> Tuple[DetectionArrays, np.ndarray]:
    """AlexeyAB's ``box.c:diounms_sort``: :func:`do_nms_sort`'s loop, suppressing on
    ``box_iou > nms`` (``cornersnms``), ``box_diou > nms`` with exponent 0.6
    (``greedynms``) or ``box_diounms(beta) > nms`` (``diounms``); any other kind
    suppresses nothing, as in Darknet."""
    nms32 = float(_F32(nms))
    if kind == "cornersnms":
        return _nms(dets, lambda a, b: box_iou_alexeyab(a, b) > nms32)
    if kind == "greedynms":
        return _nms(dets, lambda a, b: box_diou(a, b, 0.6) > nms32)
    if kind == "diounms":
        return _nms(dets, lambda a, b: box_diou(a, b, beta) > nms32)
    return _nms(dets, lambda a, b: torch.zeros(torch.broadcast_shapes(a.shape, b.shape)[:-1],
                                               dtype=torch.bool))


def nms_sort(dets: DetectionArrays, nms: float, kind: str = "default",
             beta: float = 0.6) -> Tuple[DetectionArrays, np.ndarray]:
    """What AlexeyAB's ``detector test`` runs: ``do_nms_sort`` for ``default``, else
    :func:`diounms_sort` (pjreddie's always runs ``do_nms_sort``: pass ``default``)."""
    if kind == "default":
        return do_nms_sort(dets, nms)
    return diounms_sort(dets, nms, kind, beta)


__all__ = ["DetectionArrays", "NMS_KINDS", "box_diou", "box_iou", "box_iou_alexeyab",
           "diounms_sort", "do_nms_sort", "nms_sort"]
