"""``detector calc_anchors``: AlexeyAB's k-means over the labels' box sizes
(``detector.c:calc_anchors`` + ``matrix.c:do_kmeans``), number for number.

Every label of the ``train`` list becomes a point (w*width, h*height) in float32.
Centres start at k distinct points drawn by ``matrix.c:sample`` (a Fisher-Yates
shuffle driven by glibc's ``rand()``, seeded by ``srand(time(0))`` in Darknet;
here by ``seed``, with glibc's generator reproduced, so the same seed gives
Darknet's anchors). Then up to 1000 rounds of: assign each point to the centre
with the smallest 1 - IoU (IoU of two boxes sharing a corner; strict <, first
wins), move each centre to the mean of its points (a centre with no points, or a
coordinate that comes out 0, keeps its old value), until no assignment changes.
Anchors are printed sorted by area, rounded (``%3.0f``; ``%2.4f`` when width <= 32),
with the average best IoU of the points.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional

import numpy as np

from ..errors import DataError

F32 = np.float32
FLT_MAX = F32(3.4028234663852886e38)


def glibc_rand(seed: int) -> Iterator[int]:
    """glibc's ``srand(seed); rand(); rand(); ...`` (the TYPE_3 additive generator).

    >>> g = glibc_rand(1); [next(g) for _ in range(3)]
    [1804289383, 846930886, 1681692777]
    """
    seed &= 0xFFFFFFFF
    r = [0] * 34
    r[0] = seed if seed else 1
    for i in range(1, 31):
        hi, lo = divmod(r[i - 1], 127773)
        word = 16807 * lo - 2836 * hi
        if word < 0:
            word += 2147483647
        r[i] = word
    for i in range(31, 34):
        r[i] = r[i - 31]
    state = r
    for _ in range(34, 344):
        state.append((state[-31] + state[-3]) & 0xFFFFFFFF)
    while True:
        value = (state[-31] + state[-3]) & 0xFFFFFFFF
        state.append(value)
        yield value >> 1
        if len(state) > 4096:  # only the last 31 values are ever read
            del state[:-34]


def _dist(points: np.ndarray, center: np.ndarray) -> np.ndarray:
    """matrix.c:dist for every point against one centre: 1 - IoU, float32."""
    mw = np.minimum(points[:, 0], center[0])
    mh = np.minimum(points[:, 1], center[1])
    inter = (mw * mh).astype(F32)
    total = (points[:, 0] * points[:, 1] + F32(center[0] * center[1])).astype(F32)
    union = (total - inter).astype(F32)
    with np.errstate(all="ignore"):
        return (F32(1) - (inter / union).astype(F32)).astype(F32)


def _expectation(points: np.ndarray, centers: np.ndarray, assignments: np.ndarray) -> bool:
    best = np.zeros(len(points), np.int64)
    best_dist = _dist(points, centers[0])
    for j in range(len(centers)):
        d = _dist(points, centers[j])
        closer = d < best_dist
        best[closer] = j
        best_dist = np.where(closer, d, best_dist)
    converged = bool((best == assignments).all())
    assignments[:] = best
    return converged


def _maximization(points: np.ndarray, assignments: np.ndarray, centers: np.ndarray) -> None:
    old = centers.copy()
    sums = np.zeros_like(centers)
    counts = np.zeros(len(centers), np.int64)
    for i in range(len(points)):  # float32 sums in point order, as the C
        a = assignments[i]
        counts[a] += 1
        sums[a] = (sums[a] + points[i]).astype(F32)
    for i in range(len(centers)):
        if counts[i]:
            sums[i] = (sums[i] / F32(counts[i])).astype(F32)
    centers[:] = np.where(sums == 0, old, sums)


@dataclass
class KMeans:
    centers: np.ndarray      # (k, 2) float32, sorted by area (ascending)
    iterations: int
    avg_iou: float           # percent, float32 as printed
    counters: List[int]      # labels per class


def _plusplus(points: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means++ starting centres with 1 - IoU as the distance (not Darknet's: an option)."""
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(points)))]
    best = _dist(points, points[chosen[0]]).astype(np.float64)
    for _ in range(1, k):
        weights = best * best
        total = weights.sum()
        pick = int(rng.integers(len(points))) if total <= 0 else int(
            rng.choice(len(points), p=weights / total))
        chosen.append(pick)
        best = np.minimum(best, _dist(points, points[pick]))
    return points[chosen].astype(F32).copy()


def kmeans(points: np.ndarray, k: int, seed: int,
           init: str = "darknet") -> "tuple[np.ndarray, int]":
    """do_kmeans: (centres (k, 2) in the C's order before sorting, iterations).

    ``init="darknet"``: matrix.c's random_centers (glibc rand() after srand(seed));
    ``"kmeans++"``: :func:`_plusplus` (better starts; not what Darknet computes).
    """
    n = len(points)
    if n < k:
        raise DataError(f"{n} label boxes for {k} clusters: need at least as many boxes")
    if init == "kmeans++":
        centers = _plusplus(points, k, seed)
    else:
        rand = glibc_rand(seed)
        s = list(range(n))
        for i in range(n - 1, -1, -1):  # matrix.c:sample
            index = next(rand) % (i + 1)
            s[i], s[index] = s[index], s[i]
        centers = points[s[:k]].astype(F32).copy()
    assignments = np.zeros(n, np.int64)
    if k == 1:
        _maximization(points, assignments, centers)
    i = 0
    while i < 1000 and not _expectation(points, centers, assignments):
        _maximization(points, assignments, centers)
        i += 1
    return centers, i


def sort_by_area(centers: np.ndarray) -> np.ndarray:
    """anchors_data_comparator: ascending w*h (float32), stable (glibc's merge sort)."""
    area = (centers[:, 0] * centers[:, 1]).astype(F32)
    return centers[np.argsort(area, kind="stable")]


def average_iou(points: np.ndarray, centers: np.ndarray) -> float:
    """calc_anchors' avg IoU (percent): each point's best IoU, summed in float32."""
    total = F32(0)
    for w, h in points:
        min_dist, best = FLT_MAX, F32(0)
        for aw, ah in centers:
            mw = w if w < aw else aw
            mh = h if h < ah else ah
            inter = F32(mw * mh)
            union = F32(F32(F32(w * h) + F32(aw * ah)) - inter)
            iou = F32(inter / union)
            dist = F32(F32(1) - iou)
            if dist < min_dist:
                min_dist, best = dist, iou
        if 0 <= best <= 1:
            total = F32(total + best)
    return float(F32(F32(F32(100) * total) / F32(len(points))))


def calc_anchors(data: "os.PathLike[str] | str", num_of_clusters: int = 9, width: int = 416,
                 height: int = 416, seed: int = 0,
                 out: Optional[Callable[[str], None]] = None, init: str = "darknet",
                 restarts: int = 1) -> KMeans:
    """AlexeyAB's calc_anchors over ``data``'s ``train`` list; ``out`` gets what it prints.

    ``init``/``restarts`` go beyond Darknet (which is ``init="darknet"``, one run): with
    ``restarts=N`` the runs use seeds seed..seed+N-1 and the best average IoU wins.
    """
    from ..detect import read_data_cfg
    from .labels import label_path, read_boxes, read_list
    say = out or (lambda text: None)
    say(f"\n num_of_clusters = {num_of_clusters}, width = {width}, height = {height} \n")
    if width <= 0 or height <= 0 or num_of_clusters <= 0:
        raise DataError(f"width, height and num_of_clusters must be > 0, got {width}, {height}, "
                        f"{num_of_clusters}")
    options = read_data_cfg(data)
    listed = options.get("train", "data/train.list")
    paths = read_list(listed, "image list")
    if not paths:
        raise DataError("the image list is empty: no boxes to cluster", file=listed)
    try:
        classes = int(options.get("classes", "1"))
    except ValueError:
        raise DataError(f"classes={options['classes']!r} is not a number", file=data) from None
    counters = [0] * classes
    say(f" read labels from {len(paths)} images \n")
    rows = []
    for i, path in enumerate(paths):
        lp = label_path(path)
        truth = read_boxes(lp)
        if truth is None:
            say(f"Can't open label file. (This can be normal only if you use MSCOCO): {lp} \n")
            continue
        for j, (cid, (x, y, w, h)) in enumerate(zip(truth.ids.tolist(), truth.boxes.tolist())):
            if not (0 < x <= 1 and 0 < y <= 1 and 0 < w <= 1 and 0 < h <= 1):
                say(f"\n\nWrong label: {lp} - j = {j}, x = {x:f}, y = {y:f}, width = {w:f}, "
                    f"height = {h:f} \n")
            if cid < 0:
                raise DataError(f"class id {cid} is negative", file=lp)
            if cid >= len(counters):
                counters += [0] * (cid + 1 - len(counters))
            counters[cid] += 1
            rows.append((F32(F32(w) * F32(width)), F32(F32(h) * F32(height))))
            say(f"\r loaded \t image: {i + 1} \t box: {len(rows)}")
    say("\n all loaded. \n")
    say("\n calculating k-means++ ...")
    say("\n")
    points = np.asarray(rows, F32).reshape(-1, 2)
    if len(points) == 0:
        raise DataError("no label boxes in the listed images' label files", file=listed)
    best = None
    for run in range(max(1, restarts)):
        found, its = kmeans(points, num_of_clusters, seed + run, init)
        found = sort_by_area(found)
        score = average_iou(points, found) if restarts > 1 else 0.0
        if best is None or score > best[0]:
            best = (score, found, its)
    _, centers, iterations = best
    say(f"\n iterations = {iterations} \n")
    say("\n")
    say("\ncounters_per_class = " + ", ".join(str(c) for c in counters) + "\n")
    avg = average_iou(points, centers)
    say("\n avg IoU = %2.2f %% \n" % avg)
    say("\nSaving anchors to the file: anchors.txt \n")
    say("anchors = " + anchors_text(centers, width) + "\n")
    return KMeans(centers, iterations, avg, counters)


def anchors_text(centers: np.ndarray, width: int) -> str:
    """The anchors line: ``%3.0f,%3.0f`` pairs (``%2.4f`` when width <= 32), ", "-joined."""
    fmt = "%3.0f,%3.0f" if width > 32 else "%2.4f,%2.4f"
    return ", ".join(fmt % (float(w), float(h)) for w, h in centers)


def anchor_values(centers: np.ndarray, width: int) -> List[float]:
    """The anchors as written (rounded like the printed text), for a cfg's ``anchors=``."""
    return [float(v) for v in anchors_text(centers, width).replace(" ", "").split(",")]
