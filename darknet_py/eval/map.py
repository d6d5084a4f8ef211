"""Darknet's mAP: AlexeyAB's ``detector.c:validate_detector_map``, number for number.

``map`` is AlexeyAB's verb, so it detects as that function does, whatever fork
the cfg reads like: the AlexeyAB dialect, batch 1, every image *resized* to
the network (letterboxed only when the cfg's ``[net]`` says ``letter_box=1``:
the function overwrites its ``-letter_box`` argument with the cfg's),
``get_network_boxes`` at thresh 0.005 (hier 0), NMS 0.45 of the last head's
``nms_kind`` (``postprocess.nms_sort``: ``do_nms_sort``, else ``diounms_sort``).

Then, per image, every (detection, class) with prob > 0 becomes a ranked
candidate; it is a true positive when some label of that class overlaps it with
IoU > ``iou_thresh`` (the best such label, once: later candidates for a label
already taken count as false positives). Candidates with prob >
``thresh`` (``-thresh``, default 0.25) also give the TP/FP/FN, precision,
recall, F1 and average IoU printed at the end. The AP of a class is, for
``points=0``, the area under its precision envelope at every recall change
(VOC2010+/ImageNet); for ``points=11``/``101``, the mean over recall points
r = k/(points-1) of the best precision at recall >= r (VOC2007 / COCO).
Precision and recall are doubles, the IoUs and the thresh statistics floats,
as in the C.

:func:`evaluate` does the arithmetic on given detections and labels (no model),
:func:`validate_detector_map` runs a model over a ``.data`` file's ``valid`` list.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import torch

from ..detect import DetectionArrays, box_iou
from ..errors import DataError
from .labels import Truths

F32 = np.float32
#: AlexeyAB's LAYER_TYPE values printed in " Detection layer: %d - type = %d"
LAYER_TYPES = {"region": 27, "yolo": 28, "Gaussian_yolo": 29}
#: validate_detector_map's constants
MAP_THRESH = 0.005
MAP_NMS = 0.45


@dataclass
class MapResult:
    """Everything ``validate_detector_map`` prints, and the numbers behind it."""

    names: List[str]
    ap: np.ndarray                     # (classes,) float64, 0..1
    tp: np.ndarray                     # (classes,) TP at thresh
    fp: np.ndarray                     # (classes,) FP at thresh
    truths: np.ndarray                 # (classes,) labels per class
    detections_count: int
    unique_truth_count: int
    tp_total: int
    fp_total: int
    avg_iou: float                     # float32 value, 0..1
    precision: float
    recall: float
    f1: float
    mean_ap: float
    thresh: float
    iou_thresh: float
    points: int
    heads: List[tuple] = field(default_factory=list)  # (layer index, LAYER_TYPE)

    def lines(self) -> List[str]:
        """The text validate_detector_map prints to stdout after loading the network
        (without the ``rank = ... \\r`` progress lines)."""
        out = ["", " calculation mAP (mean average precision)..."]
        out += [f" Detection layer: {i} - type = {t} " for i, t in self.heads]
        out += ["", f" detections_count = {self.detections_count}, unique_truth_count = "
                f"{self.unique_truth_count}  "]
        for i, name in enumerate(self.names):
            out.append("class_id = %d, name = %s, ap = %2.2f%%   \t (TP = %d, FP = %d) "
                       % (i, name, self.ap[i] * 100, self.tp[i], self.fp[i]))
        t = float(F32(self.thresh))
        out += ["", " for conf_thresh = %1.2f, precision = %s, recall = %s, F1-score = %s "
                % (t, _c("%1.2f", self.precision), _c("%1.2f", self.recall),
                   _c("%1.2f", self.f1)),
                " for conf_thresh = %0.2f, TP = %d, FP = %d, FN = %d, average IoU = %s %% "
                % (t, self.tp_total, self.fp_total, self.unique_truth_count - self.tp_total,
                   _c("%2.2f", float(F32(self.avg_iou) * F32(100))))]
        iou = F32(self.iou_thresh)
        head = "" if not self.points else f"used {self.points} Recall-points "
        out += ["", " IoU threshold = %2.0f %%, " % float(iou * F32(100))
                + (head or "used Area-Under-Curve for each unique Recall ")]
        out.append(" mean average precision (mAP@%0.2f) = %f, or %2.2f %% "
                   % (float(iou), self.mean_ap, self.mean_ap * 100))
        return out

    def text(self) -> str:
        return "\n".join(self.lines()) + "\n"


def _c(fmt: str, value: float) -> str:
    """printf of a float as glibc prints it on x86 (0/0 is -nan there)."""
    if math.isnan(value):
        return "-nan"
    return fmt % value


@dataclass
class _Candidate:
    p: float
    class_id: int
    truth_flag: int
    unique_truth_index: int


def evaluate(dets: Sequence[DetectionArrays], truths: Sequence[Truths], names: Sequence[str],
             *, thresh: float = 0.25, iou_thresh: float = 0.5, points: int = 0,
             difficult: Optional[Sequence[Truths]] = None) -> MapResult:
    """validate_detector_map's arithmetic over per-image detections (after NMS, boxes
    relative to the image) and labels; see the module doc."""
    classes = len(names)
    if points < 0 or points == 1:
        raise ValueError(f"points must be 0 (area under the curve) or >= 2, got {points}")
    t_calc = F32(thresh)
    t_iou = F32(iou_thresh)
    cands: List[_Candidate] = []
    truth_classes = np.zeros(classes, np.int64)
    unique_truth_count = 0
    avg_iou = F32(0)
    tp_thresh = fp_thresh = 0
    avg_iou_class = np.zeros(classes, F32)
    tp_class = np.zeros(classes, np.int64)
    fp_class = np.zeros(classes, np.int64)
    for index, (d, truth) in enumerate(zip(dets, truths)):
        for cid in truth.ids.tolist():
            truth_classes[cid] += 1
        hard = difficult[index] if difficult is not None else None
        checkpoint = len(cands)
        rows, cols = np.nonzero(d.probs > 0)  # det by det, class by class
        if rows.size:
            boxes = torch.from_numpy(np.ascontiguousarray(d.boxes))
            ious = (box_iou(boxes[:, None, :], torch.from_numpy(truth.boxes)[None, :, :]).numpy()
                    if len(truth) else np.zeros((len(d), 0), F32))
            hard_ious = (box_iou(boxes[:, None, :], torch.from_numpy(hard.boxes)[None, :, :])
                         .numpy() if hard is not None and len(hard) else None)
        for r, cid in zip(rows.tolist(), cols.tolist()):
            prob = F32(d.probs[r, cid])
            truth_index, max_iou = -1, F32(0)
            for j in range(len(truth)):
                cur = ious[r, j]
                if cur > t_iou and cid == truth.ids[j] and cur > max_iou:
                    max_iou = cur
                    truth_index = unique_truth_count + j
            cand = _Candidate(float(prob), cid, int(truth_index > -1), truth_index)
            cands.append(cand)
            if truth_index == -1 and hard_ious is not None:
                for j in range(len(hard)):
                    if hard_ious[r, j] > t_iou and cid == hard.ids[j]:
                        cands.pop()  # --detections_count: a difficult object, not counted
                        break
            if prob > t_calc:
                found = any(c.unique_truth_index == truth_index
                            for c in cands[checkpoint:len(cands) - 1])
                if truth_index > -1 and not found:
                    avg_iou = F32(avg_iou + max_iou)
                    tp_thresh += 1
                    avg_iou_class[cid] = F32(avg_iou_class[cid] + max_iou)
                    tp_class[cid] += 1
                else:
                    fp_thresh += 1
                    fp_class[cid] += 1
        unique_truth_count += len(truth)
    if tp_thresh + fp_thresh > 0:
        avg_iou = F32(avg_iou / F32(tp_thresh + fp_thresh))

    # qsort(detections_comparator): descending p; glibc's qsort is a stable merge sort here
    probs = np.asarray([c.p for c in cands], F32)
    order = np.argsort(-probs, kind="stable")
    n = len(cands)
    cls = np.asarray([c.class_id for c in cands], np.int64)[order]
    flag = np.asarray([c.truth_flag for c in cands], np.int64)[order]
    uti = np.asarray([c.unique_truth_index for c in cands], np.int64)[order]
    is_tp = np.zeros(n, bool)
    taken = np.zeros(max(unique_truth_count, 1), bool)
    for rank in range(n):
        if flag[rank] == 1 and not taken[uti[rank]]:
            taken[uti[rank]] = True
            is_tp[rank] = True
    ap = np.zeros(classes, np.float64)
    for i in range(classes):
        if n == 0:
            break
        mine = cls == i
        tp = np.cumsum(mine & is_tp)
        fp = np.cumsum(mine & ~is_tp)
        total = tp + fp
        precision = np.where(total > 0, tp / np.maximum(total, 1), 0.0)
        recall = (tp / truth_classes[i]) if truth_classes[i] > 0 else np.zeros(n)
        best_after = np.maximum.accumulate(precision[::-1])[::-1]  # max over ranks >= r
        if points == 0:
            # from the last rank down: acc += (recall[r+1] - recall[r]) * max(precision[r:]),
            # then recall[0] * max(precision); the terms where recall does not change add
            # exactly 0.0, so only the others are summed (in the C's order)
            acc = 0.0
            delta = recall[1:] - recall[:-1]
            for rank in np.nonzero(delta)[0][::-1].tolist():
                acc += float(delta[rank]) * float(best_after[rank])
            acc += (float(recall[0]) - 0) * float(best_after[0])
        else:
            acc = 0.0
            for point in range(points):
                cur_recall = point * 1.0 / (points - 1)
                start = int(np.searchsorted(recall, cur_recall, side="left"))
                acc += max(0.0, float(best_after[start])) if start < n else 0.0
            acc = acc / points
        ap[i] = acc
    with np.errstate(all="ignore"):
        tpf, fpf = F32(tp_thresh), F32(fp_thresh)
        precision_t = F32(tpf / (tpf + fpf))
        recall_t = F32(tpf / (tpf + F32(unique_truth_count - tp_thresh)))
        f1 = F32(F32(F32(F32(2) * precision_t) * recall_t) / F32(precision_t + recall_t))
    mean_ap = 0.0
    for v in ap:
        mean_ap += float(v)
    mean_ap = mean_ap / classes
    return MapResult(names=list(names), ap=ap, tp=tp_class, fp=fp_class, truths=truth_classes,
                     detections_count=n, unique_truth_count=unique_truth_count,
                     tp_total=tp_thresh, fp_total=fp_thresh, avg_iou=float(avg_iou),
                     precision=float(precision_t), recall=float(recall_t), f1=float(f1),
                     mean_ap=mean_ap, thresh=thresh, iou_thresh=iou_thresh, points=points)


# -- running a model over a .data file ----------------------------------------------------
@dataclass
class Dataset:
    """A ``.data`` file's evaluation set: images, their labels, class names."""

    paths: List[str]
    truths: List[Truths]
    names: List[str]
    difficult: Optional[List[Truths]] = None
    missing_labels: List[str] = field(default_factory=list)


def load_dataset(data: "os.PathLike[str] | str", classes: int, *, key: str = "valid",
                 default: str = "data/train.txt") -> Dataset:
    """The images of ``data``'s ``valid`` list (AlexeyAB's default ``data/train.txt``),
    their labels (:func:`~darknet_py.eval.labels.read_boxes`) and names, checked before
    anything runs: a missing image, a class id outside the model's ``classes``, an empty
    list, names or ``classes=`` disagreeing with the model are one-line :class:`DataError`s.
    """
    from ..detect import names_from_data, read_data_cfg
    from .labels import label_path, read_boxes, read_images, read_list
    options = read_data_cfg(data)
    names = names_from_data(data)
    if "classes" in options:
        try:
            declared = int(options["classes"])
        except ValueError:
            raise DataError(f"classes={options['classes']!r} is not a number", file=data,
                            key="classes") from None
        if declared != classes:
            raise DataError(f"classes={declared} but the cfg's detection layers have {classes} "
                            f"classes", file=data, key="classes")
    if len(names) != classes:
        raise DataError(f"the names file has {len(names)} names but the cfg's detection layers "
                        f"have {classes} classes", file=data, key="names")
    listed = options.get(key, options.get("train", default) if key == "valid" else default)
    paths = read_images(listed, "evaluate")
    truths, absent = [], []
    for p in paths:
        found = read_boxes(label_path(p), classes)
        if found is None:
            absent.append(label_path(p))
            found = Truths(np.zeros(0, np.int64), np.zeros((0, 4), F32))
        truths.append(found)
    difficult = None
    if "difficult" in options:
        hard_paths = read_list(options["difficult"], "difficult list")
        if len(hard_paths) < len(paths):
            raise DataError(f"the difficult list has {len(hard_paths)} images for {len(paths)} "
                            f"valid images", file=options["difficult"])
        difficult = [read_boxes(label_path(p), classes)
                     or Truths(np.zeros(0, np.int64), np.zeros((0, 4), F32))
                     for p in hard_paths[:len(paths)]]
    return Dataset(paths, truths, names, difficult, absent)


def map_detections(model, paths: Sequence[str], *, letterbox: Optional[bool] = None,
                   batch_size: int = 8) -> List[DetectionArrays]:
    """validate_detector_map's detections: thresh 0.005, hier 0, NMS 0.45 of the last head's
    kind; resized (letterboxed only with the cfg's ``letter_box``)."""
    from ..detect import nms_of, run_detector
    from ..postprocess import nms_sort
    head = model.layers[model.heads[-1]]
    kind, beta = nms_of(model)
    letter = bool(getattr(model.net, "letter_box", 0)) if letterbox is None else letterbox
    out = []
    for result in run_detector(model, paths, thresh=MAP_THRESH, nms=0, hier_thresh=0.0,
                               names=[str(i) for i in range(head.classes)],
                               batch_size=batch_size, letterbox=letter):
        dets, _ = nms_sort(result.dets, MAP_NMS, kind, beta)
        out.append(dets)
    return out


def validate_detector_map(data, cfg, weights=None, *, thresh: float = 0.25,
                          iou_thresh: float = 0.5, points: int = 0,
                          letter_box: Optional[bool] = None, model=None,
                          batch_size: int = 8, dataset: Optional[Dataset] = None,
                          ) -> "tuple[MapResult, List[DetectionArrays], Dataset]":
    """AlexeyAB's ``detector map``: the model (AlexeyAB dialect) over the ``valid`` list.

    Returns the result (``.text()`` is what Darknet prints), the detections per image and
    the dataset (for :mod:`darknet_py.eval.coco`).
    """
    fresh = model is None
    if fresh:
        from .. import load
        model = load(cfg, None, dialect="alexeyab", warn_unused=False)
    if not model.heads:
        from ..errors import CfgError
        raise CfgError("the network has no detection layer to evaluate", file=cfg)
    head = model.layers[model.heads[-1]]
    if dataset is None:
        dataset = load_dataset(data, head.classes)  # every input checked before the weights
    if fresh and weights is not None:
        model.load_weights(weights)
    dets = map_detections(model, dataset.paths, letterbox=letter_box, batch_size=batch_size)
    result = evaluate(dets, dataset.truths, dataset.names, thresh=thresh,
                      iou_thresh=iou_thresh, points=points, difficult=dataset.difficult)
    result.heads = [(i, LAYER_TYPES.get(model.layers[i].kind, -1)) for i in model.heads]
    return result, dets, dataset
