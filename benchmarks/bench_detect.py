"""Throughput of ``detector test`` over a folder of images, by batch size and decode workers.

    python benchmarks/bench_detect.py [FOLDER] [--cfg cfg/yolov3-tiny.cfg]
        [--weights yolov3-tiny] [--batches 1 8 32] [--workers 0 2] [--repeat 2]
        [--threads N] [--thresh 0.005]

Times the whole of Darknet's per-image work as ``darknet-py detector test``
does it (decode with Pillow, letterbox_image, forward, get_network_boxes,
do_nms_sort, the printed lines), without writing annotated images. Without
FOLDER it makes 16 images in a temporary folder from matplotlib's
``grace_hopper.jpg`` (if installed) or from synthetic gradients, in
portrait, landscape and square sizes. WEIGHTS may be an official name (fetched
and sha256-checked once). Prints images/s (best of ``--repeat`` passes after
one warm-up pass) per batch size and number of decode workers (0: decode in
the main thread; N: the next images are decoded and letterboxed in N threads
while the network runs), the forward's share of the time, and the
postprocessing (get_network_boxes + do_nms_sort at ``--thresh``) per image
against the forward per image. Not a test.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = [(768, 576), (576, 768), (640, 640), (1280, 720), (500, 375), (375, 500), (800, 600),
         (1024, 768)]


def make_images(folder: Path, count: int = 16) -> List[Path]:
    """``count`` JPEGs of assorted sizes: the matplotlib sample photo, or gradients."""
    import numpy as np
    from PIL import Image

    try:
        from darknet_py.samples import sample_path
        base = Image.open(sample_path()).convert("RGB")
    except Exception:  # no matplotlib: synthetic
        yy, xx = np.mgrid[0:480, 0:640]
        base = Image.fromarray(np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8))
    paths = []
    for i in range(count):
        w, h = SIZES[i % len(SIZES)]
        path = folder / f"img{i:02d}.jpg"
        base.resize((w, h)).save(path, quality=90)
        paths.append(path)
    return paths


def run(model, paths: List[Path], batch: int, workers: int, thresh: float):
    from darknet_py.detect import run_detector

    start = time.perf_counter()
    forward = 0.0
    for result in run_detector(model, paths, thresh=thresh, nms=0.45, batch_size=batch,
                               workers=workers):
        [d.line for d in result.detections]
        forward += result.seconds
    return time.perf_counter() - start, forward


def postprocess(model, path: Path, thresh: float, repeat: int = 5):
    """(seconds of get_network_boxes + do_nms_sort, seconds of the forward, boxes) for one image."""
    import torch

    from darknet_py.detect import as_image, default_letterbox, do_nms_sort, get_network_boxes
    from darknet_py.detect import prepare

    letter = default_letterbox(model)
    im = as_image(str(path))
    x = torch.from_numpy(prepare(im, model.width, model.height, letter))[None]
    h, w = im.shape[1:]
    best_post = best_fwd = float("inf")
    with torch.no_grad():
        for _ in range(repeat):
            t = time.perf_counter()
            outs = model(x)
            t1 = time.perf_counter()
            dets = get_network_boxes(model, [o[0] for o in outs], w, h, thresh, 0.5, letter)
            kept, _ = do_nms_sort(dets, 0.45)
            t2 = time.perf_counter()
            best_fwd, best_post = min(best_fwd, t1 - t), min(best_post, t2 - t1)
    return best_post, best_fwd, len(dets)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", help="folder of images (default: make 16)")
    parser.add_argument("--cfg", default=str(ROOT / "cfg" / "yolov3-tiny.cfg"))
    parser.add_argument("--weights", default="yolov3-tiny")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--thresh", type=float, default=0.005)
    parser.add_argument("--count", type=int, default=32, help="images to make (no FOLDER)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()

    import torch

    import darknet_py
    from darknet_py.cli.detect import expand_inputs, resolve_weights

    if args.threads:
        torch.set_num_threads(args.threads)
    model = darknet_py.load(args.cfg, resolve_weights(args.weights))
    with tempfile.TemporaryDirectory() as tmp:
        if args.folder:
            paths = [Path(p) for p in expand_inputs([args.folder])]
        else:
            paths = make_images(Path(tmp), args.count)
        print(f"{len(paths)} images, {Path(args.cfg).name} {model.width}x{model.height}, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{os.cpu_count()} CPUs")
        post, fwd, boxes = postprocess(model, paths[0], args.thresh)
        print(f"postprocessing at thresh {args.thresh:g} ({boxes} boxes): {post * 1000:.1f} ms "
              f"= {post / fwd:.3f} x the forward ({fwd * 1000:.1f} ms, batch 1)")
        for batch in args.batches:
            for workers in args.workers:
                run(model, paths[:batch], batch, workers, args.thresh)  # warm-up
                total, forward = min(run(model, paths, batch, workers, args.thresh)
                                     for _ in range(max(1, args.repeat)))
                print(f"batch {batch:>3}, {workers} decode workers: "
                      f"{len(paths) / total:7.2f} images/s ({1000 * total / len(paths):.1f} "
                      f"ms/image, forward {100 * forward / total:.0f}% of the time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
