"""Startup: what a ``darknet-py detect`` run costs outside ``import torch`` and the forward.

    python benchmarks/bench_startup.py [--cfg cfg/yolov3-tiny.cfg] [--weights yolov3-tiny]
        [--image IMAGE] [--repeat 5]

Each command runs in a fresh interpreter, best of ``--repeat``:

* ``python -c pass`` (the interpreter alone) and ``python -c "import torch"``;
* ``darknet-py --help`` and ``darknet-py check --help`` (neither imports torch);
* ``darknet-py detect CFG WEIGHTS IMAGE --no-image``: its wall time, the forward it
  reports ("Predicted in ... seconds"), and the rest: cfg, weights, image decode,
  letterbox, boxes, NMS, printing, imports other than torch.

Not a test: seconds move with the machine's load.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(args, repeat: int):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    best, out = float("inf"), ""
    for _ in range(repeat):
        t = time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, check=True)
        elapsed = time.perf_counter() - t
        if elapsed < best:
            best, out = elapsed, done.stdout
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", default=str(ROOT / "cfg" / "yolov3-tiny.cfg"))
    parser.add_argument("--weights", default="yolov3-tiny")
    parser.add_argument("--image", help="default: matplotlib's grace_hopper.jpg")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    image = args.image
    if image is None:
        sys.path.insert(0, str(ROOT))
        from darknet_py.samples import sample_path
        image = str(sample_path())
    py = sys.executable
    cli = [py, "-m", "darknet_py.cli"]
    bare, _ = timed([py, "-c", "pass"], args.repeat)
    torch_s, _ = timed([py, "-c", "import torch"], args.repeat)
    helps, _ = timed(cli + ["--help"], args.repeat)
    check_help, _ = timed(cli + ["check", "--help"], args.repeat)
    det, out = timed(cli + ["detect", args.cfg, args.weights, image, "--no-image"], args.repeat)
    forward = float(re.search(r"Predicted in ([0-9.]+) seconds", out).group(1))
    print(f"python -c pass            : {bare:.3f} s")
    print(f"python -c 'import torch'  : {torch_s:.3f} s")
    print(f"darknet-py --help         : {helps:.3f} s")
    print(f"darknet-py check --help   : {check_help:.3f} s")
    print(f"darknet-py detect         : {det:.3f} s  = import torch {torch_s:.3f} + forward "
          f"{forward:.3f} + the rest {det - torch_s - forward:.3f} s")


if __name__ == "__main__":
    main()
