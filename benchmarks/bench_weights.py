"""Weights-loading speed and peak memory against numpy.fromfile of the same file.

    python benchmarks/bench_weights.py [--cfg cfg/yolov3.cfg] [--repeat 5]

Writes a yolov3-sized random .weights file (~248 MB) to a temporary folder,
then, each in a fresh subprocess so peak RSS is clean:

* baseline: ``numpy.fromfile`` of the whole file;
* darknet_py: ``load_weights`` into an already-built model (build time excluded,
  it is printed separately).

Prints best-of-N seconds, the ratio darknet_py/baseline, and the peak RSS each
process added over its state just before loading (in MB and in copies of the
file). Not a test: time it on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
mode, cfg, path, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import numpy as np, torch
torch.set_num_threads(1)
build = 0.0
if mode == "darknet_py":
    from darknet_py import Darknet, read_cfg
    t = time.perf_counter(); model = Darknet(read_cfg(cfg), warn_unused=False); build = time.perf_counter() - t
before = rss_mb()
best = float("inf")
for _ in range(repeat):
    t = time.perf_counter()
    if mode == "numpy":
        data = np.fromfile(path, dtype=np.float32)
    else:
        model.load_weights(path)
    best = min(best, time.perf_counter() - t)
    if mode == "numpy":
        del data
print(json.dumps({{"best": best, "build": build, "added_peak_mb": peak_mb() - before}}))
"""


def run(mode: str, cfg: str, path: str, repeat: int) -> dict:
    code = CHILD.format(root=ROOT)
    out = subprocess.run([sys.executable, "-c", code, mode, cfg, path, str(repeat)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", default=os.path.join(ROOT, "cfg", "yolov3.cfg"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from darknet_py import Darknet, read_cfg
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.weights")
        model = Darknet(read_cfg(args.cfg), warn_unused=False)
        model.save_weights(path)
        del model
        size_mb = os.path.getsize(path) / 2 ** 20
        # warm the page cache so both sides read from memory
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass
        base = run("numpy", args.cfg, path, args.repeat)
        ours = run("darknet_py", args.cfg, path, args.repeat)
    print(f"file: {size_mb:.1f} MB ({os.path.basename(args.cfg)})")
    print(f"numpy.fromfile      : {base['best']:.3f} s   peak +{base['added_peak_mb']:.0f} MB "
          f"({base['added_peak_mb'] / size_mb:.2f} x file)")
    print(f"darknet_py load     : {ours['best']:.3f} s   peak +{ours['added_peak_mb']:.0f} MB "
          f"({ours['added_peak_mb'] / size_mb:.2f} x file)   [model build {ours['build']:.2f} s]")
    print(f"ratio darknet_py/numpy: {ours['best'] / base['best']:.2f}")


if __name__ == "__main__":
    main()
