"""Speed of one Darknet training step: yolov3-tiny, 416x416, batch 8 (CPU by default).

    python benchmarks/bench_train_step.py [--cfg cfg/yolov3-tiny.cfg] [--size 416]
        [--batch 8] [--device cpu] [--repeat 3] [--exact]

One step = ``train_network``: train-mode forward (BN batch statistics), every [yolo]
layer's Darknet loss, backward (Darknet's BN backward), update_network (SGD, momentum,
decay). Prints the best time per step and its parts (forward, loss, backward, update)
timed separately. Training batchnorm's backward is the default fused one; ``--exact`` runs
the step inside ``batchnorm.exact()`` (the backward's sums in Darknet's sequential float
order and its factors in double, as ``darknet-py compare`` checks it; slower).

When pip ``pytorchyolo`` is installed (the ``bench`` extra), its step (its model of the
same cfg, compute_loss, backward, SGD step with momentum and decay) on the same batch
runs as the baseline in the same process, interleaved with ours (``--pairs`` pairs, one
step each in turn, same threads): the medians and the median ratio are printed, as the
machine's load changes during a run. Its torchvision/imgaug imports (NMS, seeding; not
used here) get empty stand-ins when those packages are missing.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from darknet_py import Darknet  # noqa: E402
from darknet_py.cfg import read_cfg  # noqa: E402
from darknet_py.layers import batchnorm  # noqa: E402
from darknet_py.train.engine import TrainState, forward_backward, train_network  # noqa: E402
from darknet_py.train.optimizer import update_network  # noqa: E402


def truths(batch: int, rows: int, classes: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    y = np.zeros((batch, rows, 5), np.float32)
    for b in range(batch):
        n = rng.integers(3, 15)
        y[b, :n, :2] = rng.uniform(0.05, 0.95, (n, 2))
        y[b, :n, 2:4] = rng.uniform(0.05, 0.6, (n, 2))
        y[b, :n, 4] = rng.integers(0, classes, n)
    return torch.from_numpy(y)


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cfg", default=os.path.join(ROOT, "cfg", "yolov3-tiny.cfg"))
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--exact", action="store_true",
                    help="training batchnorm in Darknet's exact arithmetic order")
    ap.add_argument("--pairs", type=int, default=7,
                    help="interleaved darknet_py/pytorchyolo step pairs for the ratio")
    args = ap.parse_args()
    if args.exact:
        batchnorm.EXACT = True
    sections = read_cfg(args.cfg)
    sections[0].set("batch", args.batch)
    sections[0].set("subdivisions", 1)
    sections[0].set("width", args.size)
    sections[0].set("height", args.size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(sections).to(args.device)
    head = model.layers[model.heads[0]]
    X = torch.rand(args.batch, 3, args.size, args.size, device=args.device)
    y = truths(args.batch, head.opts.max, head.classes).to(args.device)
    state = TrainState()
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def step():
        train_network(model, state, X, y)
        sync()

    t_step = best(step, args.repeat)
    model.train()
    indices = [i for i, l in enumerate(model.layers) if l.has_cost]

    def fwd():
        with torch.no_grad():
            model.outputs_of(X, indices)
        sync()

    outs = model.outputs_of(X, indices)

    def loss():
        for i, o in zip(indices, outs):
            model.layers[i].loss(o, y, (args.size, args.size))
        sync()

    def fwd_bwd():
        forward_backward(model, X, y)
        sync()

    def upd():
        update_network(model, state, 0.0, args.batch)
        sync()

    t_fwd, t_loss, t_fb, t_upd = (best(fwd, args.repeat), best(loss, args.repeat),
                                 best(fwd_bwd, args.repeat), best(upd, args.repeat))
    print(f"darknet_py {os.path.basename(args.cfg)} {args.size}x{args.size} batch {args.batch} "
          f"on {args.device} ({torch.get_num_threads()} threads, batchnorm "
          f"{'exact' if batchnorm.EXACT else 'fused'}):")
    print(f"  train step {t_step:.3f} s  = {args.batch / t_step:.1f} images/s")
    print(f"  forward (no grad) {t_fwd:.3f} s, [yolo] losses {t_loss * 1000:.1f} ms, "
          f"forward+loss+backward {t_fb:.3f} s, update {t_upd * 1000:.1f} ms")
    pytorchyolo = import_pytorchyolo()
    if isinstance(pytorchyolo, str):
        print(f"pytorchyolo baseline skipped: {pytorchyolo} (pip install pytorchyolo, the "
              f"`bench` extra)")
        return
    load_model, compute_loss = pytorchyolo
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = load_model(args.cfg).to(args.device).train()
    opt = torch.optim.SGD(theirs.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
    rows = []
    for b in range(args.batch):
        for t in range(y.shape[1]):
            if y[b, t, 0] == 0:
                break
            rows.append([b, float(y[b, t, 4]), *[float(v) for v in y[b, t, :4]]])
    targets = torch.tensor(rows, device=args.device)

    def their_step():
        opt.zero_grad()
        out = theirs(X)
        loss, _ = compute_loss(out, targets, theirs)
        loss.backward()
        opt.step()
        sync()

    # interleaved: one of ours, one of theirs, repeated, so both see the same machine load
    their_step()
    ours, their = [], []
    for _ in range(args.pairs):
        for fn, times in ((step, ours), (their_step, their)):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    ratios = [a / b for a, b in zip(ours, their)]
    print(f"interleaved, {args.pairs} pairs, same cfg/batch/{torch.get_num_threads()} threads: "
          f"darknet_py step median {np.median(ours):.3f} s (min {min(ours):.3f}), pytorchyolo "
          f"step median {np.median(their):.3f} s (min {min(their):.3f})")
    print(f"darknet_py/pytorchyolo step time: median of pair ratios {np.median(ratios):.2f} "
          f"(ratio of medians {np.median(ours) / np.median(their):.2f}; below 1 = darknet_py "
          f"faster)")


def import_pytorchyolo():
    """(load_model, compute_loss) of pip ``pytorchyolo``, or why not.

    Only its model and loss are used; its utils import torchvision (NMS) and imgaug
    (seeding), which cannot sit beside this torch, so empty stand-ins are put in
    ``sys.modules`` for those two when they are missing (nothing of them is called here).
    """
    import importlib.util
    import types
    if importlib.util.find_spec("pytorchyolo") is None:
        return "pytorchyolo is not installed"
    for name in ("torchvision", "imgaug"):
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = types.ModuleType(name)
    try:
        from pytorchyolo.models import load_model  # type: ignore
        from pytorchyolo.utils.loss import compute_loss  # type: ignore
    except Exception as exc:  # noqa: BLE001
        return f"{exc.__class__.__name__}: {exc}"
    return load_model, compute_loss

if __name__ == "__main__":
    main()
