"""Throughput of ``detector test`` over a folder of images, batch 1 vs batch 8, on CPU.

    python benchmarks/bench_detect.py [FOLDER] [--cfg cfg/yolov3-tiny.cfg]
        [--weights yolov3-tiny] [--batches 1 8] [--repeat 2] [--threads N]

Times the whole of Darknet's per-image work as ``darknet-py detector test``
does it (decode with Pillow, letterbox_image, forward, get_network_boxes,
do_nms_sort, the printed lines), without writing annotated images. Without
FOLDER it makes 16 images in a temporary folder from matplotlib's
``grace_hopper.jpg`` (if installed) or from synthetic gradients, in
portrait, landscape and square sizes. WEIGHTS may be an official name (fetched
and sha256-checked once). Prints images/s (best of ``--repeat`` passes after
one warm-up pass) per batch size. Not a test.
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


def run(model, paths: List[Path], batch: int) -> float:
    from darknet_py.detect import run_detector

    start = time.perf_counter()
    for result in run_detector(model, paths, thresh=0.5, nms=0.45, batch_size=batch):
        [d.line for d in result.detections]
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", help="folder of images (default: make 16)")
    parser.add_argument("--cfg", default=str(ROOT / "cfg" / "yolov3-tiny.cfg"))
    parser.add_argument("--weights", default="yolov3-tiny")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
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
            paths = make_images(Path(tmp))
        print(f"{len(paths)} images, {Path(args.cfg).name} {model.width}x{model.height}, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{os.cpu_count()} CPUs")
        for batch in args.batches:
            run(model, paths[:batch], batch)  # warm-up
            best = min(run(model, paths, batch) for _ in range(max(1, args.repeat)))
            print(f"batch {batch:>3}: {len(paths) / best:7.2f} images/s "
                  f"({1000 * best / len(paths):.1f} ms/image)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
