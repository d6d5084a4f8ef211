"""COCO's numbers over Darknet's detections: pycocotools' COCOeval (bbox).

:func:`coco_jsons` turns one evaluation (the detections ``detector map`` ranks, the
labels it reads) into a COCO ground-truth dict and a results list: boxes in pixels
(``[x_left, y_top, w, h]``, from the relative centre boxes and each image's size),
category id = class index + 1, image id = position in the list, one result per
(detection, class) with prob > 0 -- exactly the candidates Darknet's map ranks.
:func:`coco_eval` runs COCOeval on them and returns its 12 stats (AP, AP50, AP75,
AP_S, AP_M, AP_L, AR1, AR10, AR100, AR_S, AR_M, AR_L).

Why these differ from Darknet's mAP@0.5 (see also the README): COCO's AP averages ten
IoU thresholds 0.50:0.95 (AP50 is the comparable one); it keeps the 100
best-scored detections per image; it matches a detection to the best *still free*
label (Darknet to the best label, which may already be taken, then counts a false
positive); a match needs IoU >= t (Darknet: > t); categories without labels are left
out of the mean (Darknet averages every class in the names file, those at AP 0
included); and its AP is the 101-point interpolation (Darknet's default is the area
under the curve; ``-points 101`` is COCO's rule over the same single IoU).
"""
from __future__ import annotations

import contextlib
import io
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..detect import DetectionArrays

STAT_NAMES = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L",
              "AR1", "AR10", "AR100", "AR_S", "AR_M", "AR_L")


def _sizes(paths: Sequence[str]) -> List[Tuple[int, int]]:
    from PIL import Image
    sizes = []
    for p in paths:
        with Image.open(p) as im:
            sizes.append(im.size)
    return sizes


def coco_jsons(dets: Sequence[DetectionArrays], dataset) -> Tuple[Dict, List[Dict]]:
    """(ground truth dict, results list) in COCO's json layout; see the module doc."""
    sizes = _sizes(dataset.paths)
    images, annotations, results = [], [], []
    for index, ((w, h), truth) in enumerate(zip(sizes, dataset.truths)):
        images.append({"id": index, "file_name": dataset.paths[index], "width": w, "height": h})
        for cid, (x, y, bw, bh) in zip(truth.ids.tolist(), truth.boxes.tolist()):
            box = [(x - bw / 2) * w, (y - bh / 2) * h, bw * w, bh * h]
            annotations.append({"id": len(annotations) + 1, "image_id": index,
                                "category_id": int(cid) + 1, "bbox": box,
                                "area": box[2] * box[3], "iscrowd": 0})
    for index, ((w, h), d) in enumerate(zip(sizes, dets)):
        rows, cols = np.nonzero(d.probs > 0)
        for r, c in zip(rows.tolist(), cols.tolist()):
            x, y, bw, bh = (float(v) for v in d.boxes[r])
            results.append({"image_id": index, "category_id": c + 1,
                            "bbox": [(x - bw / 2) * w, (y - bh / 2) * h, bw * w, bh * h],
                            "score": float(d.probs[r, c])})
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(dataset.names)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def run_cocoeval(gt: Dict, results: List[Dict]) -> Tuple[np.ndarray, str]:
    """pycocotools' COCOeval (bbox) on in-memory jsons: (12 stats, its printed summary)."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError("--coco needs pycocotools: pip install 'darknet_py[eval]'") from None
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results) if results else COCO()
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        evaluator.summarize()
    return np.asarray(evaluator.stats, dtype=np.float64), summary.getvalue()


def coco_eval(dets: Sequence[DetectionArrays], dataset) -> Tuple[np.ndarray, str]:
    """COCOeval over ``detector map``'s detections and labels: (stats, summary text)."""
    gt, results = coco_jsons(dets, dataset)
    return run_cocoeval(gt, results)


def format_stats(stats: Tuple[np.ndarray, str]) -> str:
    """pycocotools' summary lines."""
    return stats[1]
