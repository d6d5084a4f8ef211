"""Training data loader throughput: images/s of darknet_py.train.data at a network size.

    python benchmarks/bench_data.py [--size 416] [--batch 16] [--batches 20] [--workers 0 2]

Generates a synthetic shapes dataset (256x256 PNGs) in a temporary folder and
times batches of the pjreddie and AlexeyAB (with mosaic) pipelines per worker count.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from darknet_py.train import data as D
from darknet_py.train.synthetic import make_shapes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = ap.parse_args()
    root = tempfile.mkdtemp()
    data = make_shapes(root, train=64, valid=0, size=256, seed=0)
    paths = D.read_image_list(D.read_data(data).train)
    print(f"{os.cpu_count()} CPUs; {args.batches} batches of {args.batch} at "
          f"{args.size}x{args.size}")
    for name, aug in (("pjreddie", D.Augment("pjreddie", 3, 90, jitter=0.3, hue=0.1,
                                             saturation=1.5, exposure=1.5)),
                      ("alexeyab mosaic", D.Augment("alexeyab", 3, 200, jitter=0.3, hue=0.1,
                                                    saturation=1.5, exposure=1.5, mosaic=True)),
                      ("no augmentation", D.Augment("pjreddie", 3, 90, enabled=False))):
        for workers in args.workers:
            plan = D.BatchPlan(len(paths), args.batch, D.fixed_size(args.size, args.size),
                               seed=1, mosaic=aug.mosaic, iterations=args.batches + 2)
            it = iter(D.make_loader(D.DetectionDataset(paths, aug), plan, workers=workers))
            next(it), next(it)  # start-up
            t = time.perf_counter()
            for _ in range(args.batches):
                next(it)
            rate = args.batches * args.batch / (time.perf_counter() - t)
            print(f"{name:16s} workers={workers}: {rate:7.1f} images/s")


if __name__ == "__main__":
    main()
