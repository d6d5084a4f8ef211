"""Learning for real: a narrow yolov3-tiny trained from scratch on CPU reaches mAP@0.5 > 0.5.

    python benchmarks/train_synthetic.py [--max-batches 3000] [--target 0.5] [--threads 2]

Generates a synthetic dataset (darknet_py.train.synthetic: red squares, green
discs, blue triangles on noisy backgrounds, Darknet's label format), writes a
yolov3-tiny cfg with every conv's filters divided by ``--div`` and 3 classes,
trains it from random weights with ``darknet_py.train.trainer.train_detector``
(Darknet's loss, SGD, schedule and augmentation) and every ``--eval-every``
iterations computes mAP@0.5 on the validation images: detections as
``detector test`` gives them (thresh 0.005, NMS 0.45), VOC-style AP per class
(all-point interpolated area under precision/recall; a detection is a true
positive when its IoU with a not-yet-matched truth of its class is >= 0.5,
highest confidence first). Stops at ``--target`` (or max_batches) and prints the
time it took. The real ``detector map`` lives in darknet_py.eval (another issue).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Dict, List, Sequence, Tuple

import numpy as np

from darknet_py.cli.train import passive_omp_wait  # noqa: E402  (no torch import)
passive_omp_wait()  # before torch loads libgomp, as `detector train` does
import torch  # noqa: E402

def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP (VOC 2010+): area under the precision envelope."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    idx = np.where(r[1:] != r[:-1])[0]
    return float(np.sum((r[idx + 1] - r[idx]) * p[idx + 1]))


def iou_xywh(a: Sequence[float], b: np.ndarray) -> np.ndarray:
    ax1, ay1, ax2, ay2 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx1, by1 = b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2
    bx2, by2 = b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    inter = iw * ih
    return inter / (a[2] * a[3] + b[:, 2] * b[:, 3] - inter + 1e-12)


def mean_ap(model, images: List[str], classes: int, iou: float = 0.5) -> Tuple[float, List[float]]:
    from darknet_py.detect import run_detector
    truths: Dict[int, Dict[int, np.ndarray]] = {}
    for n, path in enumerate(images):
        rows = np.loadtxt(os.path.splitext(path)[0] + ".txt", ndmin=2)
        truths[n] = {c: rows[rows[:, 0] == c, 1:] for c in range(classes)}
    dets: Dict[int, List[Tuple[float, int, np.ndarray]]] = {c: [] for c in range(classes)}
    was = model.training
    model.eval()
    for n, result in enumerate(run_detector(model, images, thresh=0.005, nms=0.45,
                                            names=[str(c) for c in range(classes)],
                                            batch_size=16)):
        for d in result.detections:
            dets[d.class_id].append((d.prob, n, np.array([d.x, d.y, d.w, d.h])))
    model.train(was)
    aps = []
    for c in range(classes):
        total = sum(len(t[c]) for t in truths.values())
        found = sorted(dets[c], key=lambda t: -t[0])
        used = {n: np.zeros(len(t[c]), bool) for n, t in truths.items()}
        tp = np.zeros(len(found))
        for k, (_, n, box) in enumerate(found):
            gt = truths[n][c]
            if len(gt):
                overlaps = iou_xywh(box, gt)
                j = int(np.argmax(overlaps))
                if overlaps[j] >= iou and not used[n][j]:
                    used[n][j] = True
                    tp[k] = 1
        if total == 0:
            continue
        ctp = np.cumsum(tp)
        recall = ctp / total
        precision = ctp / np.maximum(np.arange(1, len(found) + 1), 1)
        aps.append(voc_ap(recall, precision) if len(found) else 0.0)
    return float(np.mean(aps)) if aps else 0.0, aps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=400)
    ap.add_argument("--valid", type=int, default=100)
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--size", type=int, default=128, help="network input")
    ap.add_argument("--div", type=int, default=4, help="filters divided by this")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--max-batches", type=int, default=3000)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--target", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: spinning threads on a shared machine cost 100x)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--dialect", default="pjreddie", choices=["pjreddie", "alexeyab"])
    ap.add_argument("--mosaic", action="store_true", help="AlexeyAB mosaic=1")
    ap.add_argument("--dir", help="work folder (default: a temporary one)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from darknet_py.train.data import read_data, read_image_list
    from darknet_py.train.synthetic import make_shapes, narrow_tiny_cfg
    from darknet_py.train.trainer import train_detector
    root = args.dir or tempfile.mkdtemp(prefix="dnpy-shapes-")
    t0 = time.perf_counter()
    data = make_shapes(root, train=args.train, valid=args.valid, size=args.image_size,
                       seed=args.seed)
    scale = args.size / args.image_size
    s = [int(round(v * args.image_size * scale)) for v in (0.2, 0.28, 0.36)]
    anchors = ", ".join(f"{v},{v}" for v in s + [int(v * 1.4) for v in s])
    augment = "saturation=1.5\nexposure=1.5\nhue=.1" + ("\nmosaic=1" if args.mosaic else "")
    cfg = narrow_tiny_cfg(os.path.join(root, "yolov3-tiny-shapes.cfg"), div=args.div,
                          size=args.size, classes=3, batch=args.batch,
                          max_batches=args.max_batches, lr=args.lr, anchors=anchors,
                          augment=augment)
    valid = read_image_list(read_data(data).valid)
    print(f"dataset: {args.train} train / {args.valid} valid images in {root} "
          f"({time.perf_counter() - t0:.1f} s); cfg {cfg}; {args.threads} threads", flush=True)
    history: List[Tuple[int, float, float, float]] = []
    start = time.perf_counter()

    def evaluate(i, model, loss, avg):
        if i % args.eval_every:
            return False
        t = time.perf_counter()
        m, aps = mean_ap(model, valid, 3)
        elapsed = t - start
        history.append((i, avg, m, elapsed))
        print(f"== iteration {i}: avg loss {avg:.3f}, mAP@0.5 {m:.4f} "
              f"(APs {', '.join(f'{a:.3f}' for a in aps)}), {elapsed:.0f} s training, "
              f"eval {time.perf_counter() - t:.1f} s", flush=True)
        return m > args.target

    devnull = open(os.devnull, "w")
    result = train_detector(data, cfg, workers=args.workers, seed=args.seed, chart=None,
                            dialect=args.dialect,
                            augment=not args.no_augment, callback=evaluate, stream=devnull)
    print("\niteration  avg_loss  mAP@0.5  seconds")
    for i, avg, m, sec in history:
        print(f"{i:9d}  {avg:8.3f}  {m:7.4f}  {sec:7.0f}")
    print(f"\nwaited {result.data_wait:.1f} s of {result.seconds:.1f} s for the loader "
          f"({args.workers} worker(s))")
    reached = [h for h in history if h[2] > args.target]
    if reached:
        i, _, m, sec = reached[0]
        print(f"\nmAP@0.5 {m:.4f} > {args.target} at iteration {i} after {sec:.0f} s of "
              f"training ({i * args.batch} images) on {args.threads} CPU threads")
        return 0
    print(f"\nmAP@0.5 stayed <= {args.target} after {result.iterations} iterations "
          f"({result.seconds:.0f} s)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
