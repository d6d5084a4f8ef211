"""Loading speed and peak memory: ``darknet_py.load(cfg, weights)`` against OpenCV's
``readNetFromDarknet`` and ``numpy.fromfile`` of the same file.

    pip install -e '.[bench]'      # opencv-python-headless<5, for the OpenCV row
    python benchmarks/bench_weights.py [--cfg cfg/yolov3.cfg] [--repeat 5]

Writes a random .weights file for the cfg (yolov3: ~248 MB) to a temporary
folder, warms the page cache, then runs each reader in a fresh subprocess:

* ``numpy.fromfile`` of the whole file (the floor: one read);
* ``darknet_py.load(cfg, weights)`` (cfg parse, graph build, weights; no random init);
* ``darknet_py.load(cfg, weights, mmap=True)`` (the file mapped, not read: its pages
  come in when the parameters are first read, timed apart as "reading every parameter");
* ``darknet_py`` ``model.load_weights`` into an already-built model (build excluded);
* OpenCV 4.x ``cv2.dnn.readNetFromDarknet(cfg, weights)`` (skipped if not installed).

Prints the first call's seconds (a fresh process, what a user's script pays) and
the best of N (later calls reuse memory the process already faulted in), ratios,
and the peak RSS each process added over its state just before the first load
(VmHWM - VmRSS), in MB and in copies of the file. The modules each reader needs
(``import cv2``; ``darknet_py.model`` and the layer modules) are imported before
the clock starts and timed apart; ``import torch`` is done first in every child.
``--clock cpu`` counts the child's CPU time instead of wall time (steadier when
the machine is shared). Not a test: the machine's load moves the seconds.
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
mode, cfg, path, repeat, clock = sys.argv[1:6]
repeat = int(repeat)
now = time.process_time if clock == "cpu" else time.perf_counter
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
import numpy as np, torch
torch.set_num_threads(1)
t = now()
if mode == "opencv":
    import cv2
    cv2.setNumThreads(1)
    fn = lambda: cv2.dnn.readNetFromDarknet(cfg, path)
elif mode == "numpy":
    fn = lambda: np.fromfile(path, dtype=np.float32)
else:
    # what the load imports on first use (torch is imported above for every reader)
    import darknet_py, darknet_py.model, darknet_py.weights
    from darknet_py.layers import registry
    registry.section_names()
    if mode == "load":
        fn = lambda: darknet_py.load(cfg, path, warn_unused=False)
    elif mode == "load_mmap":
        fn = lambda: darknet_py.load(cfg, path, warn_unused=False, mmap=True)
    else:
        model = darknet_py.Darknet(darknet_py.read_cfg(cfg), warn_unused=False)
        fn = lambda: model.load_weights(path)
imports = now() - t
before = status("VmRSS")
times = []
touch = None
for i in range(repeat):
    t = now()
    out = fn()
    times.append(now() - t)
    if i == 0:
        peak = status("VmHWM") - before
        if mode.startswith("load"):
            # read every parameter once (a mapped file's pages come in here)
            params = (out if mode != "load_weights" else model).state_dict().values()
            t = now()
            for p in params:
                p.sum()
            touch = now() - t
    del out
print(json.dumps({{"best": min(times), "first": times[0], "added_peak_mb": peak,
                  "imports": imports, "touch": touch}}))
"""

ROWS = [("numpy", "numpy.fromfile"), ("load", "darknet_py.load(cfg, weights)"),
        ("load_mmap", "darknet_py.load(..., mmap=True)"),
        ("load_weights", "darknet_py model.load_weights"),
        ("opencv", "OpenCV readNetFromDarknet")]


def run(mode: str, cfg: str, path: str, repeat: int, clock: str) -> dict:
    code = CHILD.format(root=ROOT)
    out = subprocess.run([sys.executable, "-c", code, mode, cfg, path, str(repeat), clock],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", default=os.path.join(ROOT, "cfg", "yolov3.cfg"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved rounds of all readers (best kept)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: the child's process time (user + system; steadier on "
                             "a loaded machine, blind to waiting for the disk)")
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
                r = run(mode, args.cfg, path, args.repeat, args.clock)
                old = results.get(mode)
                results[mode] = r if old is None else {
                    k: (None if r[k] is None else min(old[k], r[k])) for k in r}
    print(f"file: {size_mb:.1f} MB ({os.path.basename(args.cfg)}), best of "
          f"{args.rounds}x{args.repeat}, 1 thread, {args.clock} clock; imports (torch excluded) "
          f"are timed apart; 'first' is a fresh process's first call")
    for mode, label in ROWS:
        if mode not in results:
            print(f"{label:<32}: skipped (pip install 'opencv-python-headless<5')")
            continue
        r = results[mode]
        line = (f"{label:<32}: first {r['first']:.3f} s, best {r['best']:.3f} s, "
                f"VmHWM +{r['added_peak_mb']:.0f} MB ({r['added_peak_mb'] / size_mb:.2f} x file)")
        if mode != "numpy":
            line += f", imports {r['imports']:.3f} s"
        if r.get("touch") is not None:
            line += f", then reading every parameter {r['touch']:.3f} s"
        print(line)
    for key in ("first", "best"):
        load = results["load"][key]
        line = f"ratio load / numpy.fromfile ({key}): {load / results['numpy'][key]:.2f}"
        if "opencv" in results:
            line += f"   load / OpenCV ({key}): {load / results['opencv'][key]:.2f}"
            line += (f"   load(mmap) / OpenCV ({key}): "
                     f"{results['load_mmap'][key] / results['opencv'][key]:.2f}")
        print(line)

if __name__ == "__main__":
    main()
