"""Loading speed and peak memory: ``darknet_py.load(cfg, weights)`` against OpenCV's
``readNetFromDarknet`` and ``numpy.fromfile`` of the same file.

    pip install -e '.[bench]'      # opencv-python-headless<5, for the OpenCV row
    python benchmarks/bench_weights.py [--cfg cfg/yolov3.cfg] [--repeat 5]

Writes a random .weights file for the cfg (yolov3: ~248 MB) to a temporary
folder, warms the page cache, then runs each reader in a fresh subprocess:

* ``numpy.fromfile`` of the whole file (the floor: one read);
* ``darknet_py.load(cfg, weights)`` (cfg parse, graph build, weights; no random init);
* ``darknet_py`` ``model.load_weights`` into an already-built model (build excluded);
* OpenCV 4.x ``cv2.dnn.readNetFromDarknet(cfg, weights)`` (skipped if not installed).

Prints the first call's seconds (a fresh process, what a user's script pays) and
the best of N (later calls reuse memory the process already faulted in), ratios, and the peak RSS each process added over its
state just before the first load (VmHWM - VmRSS), in MB and in copies of the
file. Not a test: the machine's load moves the seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time, warnings
sys.path.insert(0, {root!r})
warnings.simplefilter("ignore")
mode, cfg, path, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
import numpy as np, torch
torch.set_num_threads(1)
import darknet_py
if mode == "opencv":
    import cv2
    cv2.setNumThreads(1)
    fn = lambda: cv2.dnn.readNetFromDarknet(cfg, path)
elif mode == "numpy":
    fn = lambda: np.fromfile(path, dtype=np.float32)
elif mode == "load":
    fn = lambda: darknet_py.load(cfg, path, warn_unused=False)
else:
    model = darknet_py.Darknet(darknet_py.read_cfg(cfg), warn_unused=False)
    fn = lambda: model.load_weights(path)
before = status("VmRSS")
times = []
for i in range(repeat):
    t = time.perf_counter()
    out = fn()
    times.append(time.perf_counter() - t)
    if i == 0:
        peak = status("VmHWM") - before
    del out
print(json.dumps({{"best": min(times), "first": times[0], "added_peak_mb": peak}}))
"""

ROWS = [("numpy", "numpy.fromfile"), ("load", "darknet_py.load(cfg, weights)"),
        ("load_weights", "darknet_py model.load_weights"),
        ("opencv", "OpenCV readNetFromDarknet")]


def run(mode: str, cfg: str, path: str, repeat: int) -> dict:
    code = CHILD.format(root=ROOT)
    out = subprocess.run([sys.executable, "-c", code, mode, cfg, path, str(repeat)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", default=os.path.join(ROOT, "cfg", "yolov3.cfg"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved rounds of all readers (best kept)")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from darknet_py import Darknet, read_cfg
    try:
        import cv2  # noqa: F401
        have_cv = hasattr(cv2.dnn, "readNetFromDarknet")
    except ImportError:
        have_cv = False
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.weights")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Darknet(read_cfg(args.cfg), warn_unused=False)
        model.save_weights(path)
        del model
        size_mb = os.path.getsize(path) / 2 ** 20
        with open(path, "rb") as f:  # warm the page cache so every reader reads memory
            while f.read(1 << 24):
                pass
        results: dict = {}
        for _ in range(args.rounds):
            for mode, _label in ROWS:
                if mode == "opencv" and not have_cv:
                    continue
                r = run(mode, args.cfg, path, args.repeat)
                old = results.get(mode)
                results[mode] = r if old is None else {
                    "best": min(old["best"], r["best"]), "first": min(old["first"], r["first"]),
                    "added_peak_mb": min(old["added_peak_mb"], r["added_peak_mb"])}
    print(f"file: {size_mb:.1f} MB ({os.path.basename(args.cfg)}), best of "
          f"{args.rounds}x{args.repeat}, 1 thread")
    for mode, label in ROWS:
        if mode not in results:
            print(f"{label:<32}: skipped (pip install 'opencv-python-headless<5')")
            continue
        r = results[mode]
        print(f"{label:<32}: first {r['first']:.3f} s, best {r['best']:.3f} s   VmHWM +{r['added_peak_mb']:.0f} MB "
              f"({r['added_peak_mb'] / size_mb:.2f} x file)")
    for key in ("first", "best"):
        load = results["load"][key]
        line = f"ratio load / numpy.fromfile ({key}): {load / results['numpy'][key]:.2f}"
        if "opencv" in results:
            line += f"   load / OpenCV ({key}): {load / results['opencv'][key]:.2f}"
        print(line)


if __name__ == "__main__":
    main()
