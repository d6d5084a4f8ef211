"""Darknet and darknet_py trained side by side for many iterations on the same batches.

    python benchmarks/train_side_by_side.py [--fork pjreddie|alexeyab|both] [--iterations 200]
        [--size 128] [--batch 4] [--batches 8] [--div 4] [--tolerance 0.01] [--out DIR]

For each fork (pjreddie: cfg/yolov3-tiny.cfg, AlexeyAB: cfg/yolov4-tiny.cfg) the cfg is
narrowed (every conv's filters / ``div``, the convs before each [yolo] sized for 3
classes), set to ``size`` x ``size``, ``batch`` images, subdivisions 1, burn_in 10. A
synthetic set of coloured shapes with their boxes (darknet_py.train.synthetic) is cut
into ``batches`` distinct batches, cycled: iteration k trains on batch (k-1) % batches.
No augmentation: both sides get exactly these X/y.

Darknet side: the real Darknet of that fork (darknet_py.darknet bridge: built from the
tarball in ../shared/darknet-src) runs ``train_network`` ``iterations`` times on its own
random init (dump_case mode="train"). darknet_py side: ``train_network`` from the very
weights file Darknet started from, on the same batches. Both loss curves are printed
with the relative difference per iteration, plotted (PNG) and saved (JSON); every
``--save-every`` iterations the weights of both are compared (max |ours - Darknet's| over
max |Darknet's - initial|, per tensor: how far the trajectories have parted relative to how
far training moved). ``--resync`` starts every darknet_py iteration from Darknet's weights
of the previous one, so each loss measures one step's error. Exits 1 when any iteration's loss differs by more than ``tolerance``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from darknet_py import load  # noqa: E402
from darknet_py.cfg import read_cfg  # noqa: E402
from darknet_py.cfg.writer import format_cfg  # noqa: E402
from darknet_py.train import synthetic  # noqa: E402
from darknet_py.layers import batchnorm  # noqa: E402
from darknet_py.train.engine import TrainState, train_network  # noqa: E402

CFG = {"pjreddie": ROOT / "cfg" / "yolov3-tiny.cfg", "alexeyab": ROOT / "cfg" / "yolov4-tiny.cfg"}
CLASSES = 3


def narrow_cfg(fork: str, size: int, batch: int, div: int, iterations: int) -> str:
    """The fork's tiny cfg, narrowed and set up for this run (see module doc)."""
    sections = read_cfg(CFG[fork])
    net = sections[0]
    for key, value in (("batch", batch), ("subdivisions", 1), ("width", size), ("height", size),
                       ("burn_in", 10), ("max_batches", max(iterations * 10, 1000))):
        net.set(key, value)
    for i, s in enumerate(sections):
        if s.kind == "convolutional" and s.get("filters") is not None:
            head = i + 1 < len(sections) and sections[i + 1].kind == "yolo"
            if head:
                masks = len(sections[i + 1].get("mask").split(","))
                s.set("filters", masks * (CLASSES + 5))
            else:
                s.set("filters", max(2, int(s.get("filters")) // div))
        if s.kind == "yolo":
            s.set("classes", CLASSES)
    return format_cfg(sections)


def make_batches(n: int, batch: int, size: int, boxes: int, per_box: int, seed: int):
    """``n`` batches of ``batch`` synthetic images (N,B,3,H,W) in [0,1] and truths
    (N,B,boxes,per_box): x,y,w,h,class[,track 0], zero rows after the last box."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, batch, 3, size, size), np.float32)
    y = np.zeros((n, batch, boxes, per_box), np.float32)
    for i in range(n):
        for b in range(batch):
            pixels, rows = synthetic._draw(size, rng, 4)
            X[i, b] = pixels.transpose(2, 0, 1).astype(np.float32) / 255.0
            for t, (c, cx, cy, w, h) in enumerate(rows[:boxes]):
                y[i, b, t, :5] = (cx, cy, w, h, c)
    return X, y


def _state(model) -> dict:
    return {k: v.detach().clone().double() for k, v in model.state_dict().items()}


def run_fork(fork: str, args, out: Path) -> dict:
    from darknet_py.darknet import build_darknet, dump_case
    build = build_darknet(fork=fork)
    per_box = 6 if fork == "alexeyab" else 5
    text = narrow_cfg(fork, args.size, args.batch, args.div, args.iterations)
    work = Path(tempfile.mkdtemp(prefix=f"sbs-{fork}-"))
    cfg = work / f"narrow-{CFG[fork].stem}.cfg"
    cfg.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = load(cfg, dialect=fork, warn_unused=False)
    boxes = probe.layers[probe.heads[0]].opts.max
    X, y = make_batches(args.batches, args.batch, args.size, boxes, per_box, args.seed)
    t0 = time.perf_counter()
    case = dump_case(build, cfg, mode="train", out_dir=work / "case", X=X, y=y,
                     iterations=args.iterations, seed=args.seed,
                     save_every=1 if args.resync else args.save_every,
                     timeout=3600)
    t_darknet = time.perf_counter() - t0
    manifest = json.loads((case / "case.json").read_text())
    theirs = [e["loss"] for e in manifest["train_log"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load(cfg, case / "weights_init.weights", dialect=fork, warn_unused=False)
        shadow = load(cfg, case / "weights_init.weights", dialect=fork, warn_unused=False)
    init = _state(model)
    state = TrainState.from_model(model)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    ours, rel, drifts = [], [], []
    t0 = time.perf_counter()
    for k in range(1, args.iterations + 1):
        i = (k - 1) % args.batches
        if args.resync and k > 1:
            model.load_weights(case / f"weights_iter{k - 1}.weights")
        with batchnorm.exact():  # Darknet's arithmetic order, as compare checks it
            loss = train_network(model, state, Xt[i], yt[i])
        ours.append(loss)
        r = abs(loss - theirs[k - 1]) / max(abs(theirs[k - 1]), 1e-30)
        if not np.isfinite(r):  # a NaN on either side (Darknet's own loss can blow up)
            r = float("inf")
        rel.append(r)
        saved = case / f"weights_iter{k}.weights"
        d = None
        if saved.is_file():
            shadow.load_weights(saved)
            ref, mine = _state(shadow), _state(model)
            d = max(float((mine[n] - ref[n]).abs().max()) /
                    max(float((ref[n] - init[n]).abs().max()), 1e-30)
                    for n in ref if ref[n].is_floating_point() and ref[n].numel())
            drifts.append((k, d))
        if args.verbose or k <= 5 or k % 10 == 0 or r > args.tolerance:
            extra = f"  weights apart {d:.2e} of their move" if d is not None else ""
            print(f"  {fork} it {k:4d}  darknet {theirs[k - 1]:12.6f}  darknet_py {loss:12.6f}"
                  f"  rel {r:.2e}{extra}", flush=True)
    t_ours = time.perf_counter() - t0
    worst = int(np.argmax(rel))
    result = {"fork": fork, "resync": args.resync, "cfg": text, "iterations": args.iterations, "size": args.size,
              "batch": args.batch, "batches": args.batches, "darknet_loss": theirs,
              "darknet_py_loss": ours, "relative_difference": rel,
              "max_relative_difference": rel[worst], "at_iteration": worst + 1,
              "weights_drift": drifts, "darknet_seconds": t_darknet,
              "darknet_py_seconds": t_ours, "threads": torch.get_num_threads()}
    print(f"{fork}: {args.iterations} iterations, max relative loss difference "
          f"{rel[worst]:.2e} at iteration {worst + 1}; Darknet {t_darknet:.1f} s, "
          f"darknet_py {t_ours:.1f} s ({torch.get_num_threads()} threads)", flush=True)
    return result


def plot(results, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot (pip install matplotlib)")
        return
    fig, axes = plt.subplots(2, len(results), figsize=(6 * len(results), 7), squeeze=False)
    for j, r in enumerate(results):
        it = np.arange(1, len(r["darknet_loss"]) + 1)
        ax = axes[0, j]
        ax.plot(it, r["darknet_loss"], label="Darknet", lw=2.5, alpha=0.6)
        ax.plot(it, r["darknet_py_loss"], label="darknet_py", lw=1, ls="--")
        ax.set_title(f"{r['fork']}: narrow {CFG[r['fork']].stem}, {r['size']}px, batch {r['batch']}")
        ax.set_ylabel("loss")
        ax.set_yscale("log")
        ax.legend()
        ax = axes[1, j]
        ax.semilogy(it, np.maximum(r["relative_difference"], 1e-12))
        ax.axhline(0.01, color="r", lw=0.8)
        ax.set_xlabel("iteration")
        ax.set_ylabel("|darknet_py - Darknet| / Darknet")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"plot: {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fork", choices=("pjreddie", "alexeyab", "both"), default="both")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--batches", type=int, default=8, help="distinct batches, cycled")
    ap.add_argument("--div", type=int, default=4, help="divide every conv's filters by this")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--save-every", type=int, default=20,
                    help="compare the weights of both every this many iterations")
    ap.add_argument("--tolerance", type=float, default=0.01)
    ap.add_argument("--out", default="side_by_side")
    ap.add_argument("--resync", action="store_true",
                    help="start each darknet_py iteration from Darknet's weights of the previous "
                         "one (momentum buffers carry on): one step's error, not two drifting "
                         "trajectories")
    ap.add_argument("--verbose", action="store_true", help="print every iteration")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    forks = ("pjreddie", "alexeyab") if args.fork == "both" else (args.fork,)
    results = [run_fork(f, args, out) for f in forks]
    (out / "curves.json").write_text(json.dumps(results, indent=1))
    plot(results, out / "side_by_side.png")
    bad = [r for r in results if r["max_relative_difference"] > args.tolerance]
    for r in results:
        print(f"{r['fork']}: max relative loss difference {r['max_relative_difference']:.2e} "
              f"(iteration {r['at_iteration']}) -- "
              f"{'FAIL' if r in bad else 'ok'} at tolerance {args.tolerance:g}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
