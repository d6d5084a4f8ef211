"""``classifier valid`` and ``classifier predict`` as Darknet's examples/classifier.c
(pjreddie) and src/classifier.c (AlexeyAB) do them.

* input: pjreddie's ``valid`` takes ``center_crop_image`` (the centred square of the
  shorter side, resized to the network), its ``predict`` ``letterbox_image``; AlexeyAB's
  both ``resize_min`` (the shorter side to the network width) then the centred
  ``crop_image`` (edge pixels repeated).
* scores: the last layer's output; with a hierarchy (the cfg's ``[softmax] tree=``)
  ``hierarchy_predictions`` (leaves only, except AlexeyAB's predict).
* ranking: utils.c ``top_k`` (a strict ``>`` insertion: the earlier index wins ties).
* valid: an image's class is the first label (in ``labels=`` order) whose name occurs in
  its path (-1, never right, when none does); top-1 and top-k (``top=`` in the .data file,
  default 1; AlexeyAB clamps it to ``classes``) accuracies, printed per image as
  ``i: top 1: a, top k: b`` (pjreddie first ``path, class, score0, score1,``).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import DataError
from ..image import as_image, letterbox_image, resize_image

F32 = np.float32


def top_k(pred: Sequence[float], k: int) -> List[int]:
    """utils.c top_k: indexes of the k largest, ties kept in index order (-1 pads when
    k > n)."""
    index = [-1] * k
    for i in range(len(pred)):
        curr = i
        for j in range(k):
            if index[j] < 0 or pred[curr] > pred[index[j]]:
                curr, index[j] = index[j], curr
            if curr < 0:
                break
    return index


def center_crop_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """pjreddie image.c center_crop_image: the centred m x m square (m = the shorter side),
    resized to w x h."""
    _, ih, iw = im.shape
    m = min(iw, ih)
    x0, y0 = (iw - m) // 2, (ih - m) // 2
    return resize_image(np.ascontiguousarray(im[:, y0:y0 + m, x0:x0 + m]), w, h)


def resize_min_crop(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """AlexeyAB resize_min(im, w) then crop_image at ((rw - w)/2, (rh - h)/2) (C int
    division, coordinates clamped to the image)."""
    _, ih, iw = im.shape
    if iw < ih:
        nw, nh = w, (ih * w) // iw
    else:
        nw, nh = (iw * w) // ih, w
    resized = im if (nw, nh) == (iw, ih) else resize_image(im, nw, nh)
    dx, dy = int((nw - w) / 2), int((nh - h) / 2)  # C division truncates towards 0
    ys = np.clip(np.arange(dy, dy + h), 0, nh - 1)
    xs = np.clip(np.arange(dx, dx + w), 0, nw - 1)
    return resized[:, ys][:, :, xs].astype(F32)


def _hierarchy(model):
    from ..train.classifier_data import hierarchy_of
    return hierarchy_of(model)


def predict_scores(model, im: np.ndarray, only_leaves: bool) -> np.ndarray:
    """network_predict on one prepared (3, h, w) image -> the last layer's outputs
    (float32), hierarchy_predictions applied when the net has a tree."""
    from ..tree import hierarchy_predictions
    x = torch.from_numpy(np.ascontiguousarray(im, dtype=F32))[None]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(iter(model.parameters()), x).device
            out = model(x.to(device))
    finally:
        model.train(was)
    if isinstance(out, (list, tuple)):
        out = out[-1]
    pred = out.detach().float().cpu().numpy().reshape(1, -1).astype(F32)
    tree = _hierarchy(model)
    if tree is not None:
        hierarchy_predictions(pred, tree, only_leaves)
    return pred[0]


@dataclass
class ValidResult:
    images: int
    top1: float
    topk: float
    k: int
    lines: List[str] = field(default_factory=list)


def validate_classifier(data: str, cfg: str, weights: Optional[str] = None, *,
                        dialect: str = "auto", model=None, stream=None,
                        device: "str | torch.device" = "cpu",
                        k: Optional[int] = None) -> ValidResult:
    """``darknet classifier valid DATA CFG WEIGHTS``: top-1 and top-k over ``valid=``
    (default ``data/train.list``). ``k`` replaces the .data file's ``top`` (AlexeyAB's
    ``topk_custom``, what ``train -topk`` passes)."""
    from .. import load
    from ..train import classifier_data as CD
    from ..train.data import read_image_list
    out = stream or sys.stdout
    dc = CD.read_classifier_data(data)
    if "leaves" in dc.options:
        raise DataError("leaves= (change_leaves of the hierarchy) is not implemented in "
                        "darknet-py's classifier valid", file=dc.path, key="leaves")
    valid = dc.options.get("valid", "data/train.list")
    paths = read_image_list(dc.resolve(valid))
    labels = CD.read_labels(dc.resolve(dc.labels), dc.classes)
    if model is None:
        model = load(cfg, weights, dialect=dialect, warn_unused=False).to(device)
    ab = model.dialect.name == "alexeyab"
    k_custom = k
    try:
        k = int(dc.options.get("top", "1"))
    except ValueError:
        raise DataError(f"top={dc.options['top']!r} is not an integer", file=dc.path,
                        key="top") from None
    if k_custom is not None and k_custom > 0:
        k = k_custom
    if ab:
        k = min(k, dc.classes)
    w, h = model.input_shape.w, model.input_shape.h
    hit1 = hitk = 0
    lines = []
    for i, path in enumerate(paths):
        cls = next((j for j, name in enumerate(labels) if name in path), -1)
        try:
            im = as_image(path)
        except DataError as exc:
            raise DataError(f"cannot read a valid= image: {exc.message}", file=path) from None
        crop = resize_min_crop(im, w, h) if ab else center_crop_image(im, w, h)
        pred = predict_scores(model, crop, only_leaves=True)
        idx = top_k(pred[:dc.classes], k)
        hit1 += idx[0] == cls
        hitk += sum(1 for j in idx if j == cls)
        if not ab:  # pjreddie prints the first two scores of each image too
            print(f"{path}, {cls}, {pred[0]:f}, {pred[1] if len(pred) > 1 else 0.0:f}, ",
                  file=out)
        line = f"{i}: top 1: {hit1 / (i + 1):f}, top {k}: {hitk / (i + 1):f}"
        lines.append(line)
        print(line, file=out, flush=True)
    n = len(paths)
    return ValidResult(images=n, top1=hit1 / n, topk=hitk / n, k=k, lines=lines)


def predict_classifier(data: str, cfg: str, weights: Optional[str], images: Sequence[str], *,
                       top: int = 0, dialect: str = "auto", model=None, stream=None,
                       device: "str | torch.device" = "cpu"
                       ) -> List[List[Tuple[int, str, float]]]:
    """``darknet classifier predict DATA CFG WEIGHTS IMAGE``: the ``top`` best classes of
    each image as (index, name, score), printed as the fork prints them (pjreddie
    ``%5.2f%%: name``, AlexeyAB ``name: %f``). Names come from ``names=``, else
    ``labels=``; ``top`` 0 means the .data file's ``top`` (default 1)."""
    from .. import load
    from ..detect import read_data_cfg, read_names
    from ..train.classifier_data import ClassifierData
    out = stream or sys.stdout
    opts = read_data_cfg(data)
    helper = ClassifierData(data, 0, "", "", "", 0)
    names = read_names(helper.resolve(opts.get("names") or opts.get("labels",
                                                                     "data/labels.list")))
    if model is None:
        model = load(cfg, weights, dialect=dialect, warn_unused=False).to(device)
    ab = model.dialect.name == "alexeyab"
    if not top:
        top = int(opts.get("top", "1"))
    if ab:
        top = min(top, int(opts.get("classes", "2")))
    w, h = model.input_shape.w, model.input_shape.h
    results = []
    for path in images:
        im = as_image(path)
        prepared = resize_min_crop(im, w, h) if ab else letterbox_image(im, w, h)
        began = time.perf_counter()
        pred = predict_scores(model, prepared, only_leaves=not ab)
        print(f"{os.fspath(path)}: Predicted in {time.perf_counter() - began:f} seconds.",
              file=sys.stderr)
        idx = [j for j in top_k(pred, top) if j >= 0]
        rows = []
        for j in idx:
            name = names[j] if j < len(names) else str(j)
            rows.append((j, name, float(pred[j])))
            if ab:
                print(f"{name}: {pred[j]:f}", file=out)
            else:
                print(f"{pred[j] * 100:5.2f}%: {name}", file=out)
        results.append(rows)
    return results


__all__ = ["ValidResult", "center_crop_image", "predict_classifier", "predict_scores",
           "resize_min_crop", "top_k", "validate_classifier"]
