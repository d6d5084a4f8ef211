"""The synthetic-shapes benchmark trained by the real Darknet and by darknet_py, side by side.

    python benchmarks/train_synthetic_darknet.py [--dialect alexeyab|pjreddie]
        [--iterations 600] [--eval-every 100] [--side both|darknet|darknet_py]
        [--init fork|normal|uniform|darknet_py|harness] [--init-seed N] [--out DIR]

The same dataset, cfg and mAP@0.5 evaluator as ``benchmarks/train_synthetic.py``
(narrow yolov3-tiny at 128x128, 400 train / 100 valid generated shapes, batch 16), but
without augmentation so both trainers see exactly the same X/y: the train images are
resized to the network (darknet_py's loader with ``augment=False``: Darknet's
resize_image, truths as ``fill_truth`` gives them) and cut into batches of a fixed
shuffle, cycled (iteration k trains on batch (k-1) % n).

Darknet side: the real Darknet of the dialect's fork (darknet_py.darknet bridge, built
from ../shared/darknet-src, CPU) runs ``train_network`` on those batches from the
``--init`` weights (dump_case mode="train"), saving them every ``--eval-every``
iterations. ``--init fork`` (default) draws the fork's own make_convolutional_layer law
(pjreddie normal, AlexeyAB uniform); ``normal`` / ``uniform`` force one law on either
dialect (AlexeyAB from the normal law learns ~5x slower, README "Learning for real").
``--ablate`` turns one AlexeyAB CPU behaviour off on the darknet_py side (see --help).
darknet_py side: ``train_network`` from the very weights file Darknet started from, on
the same batches. Every saved checkpoint of both is loaded in darknet_py and scored with
``train_synthetic.mean_ap`` on the valid images. Prints and saves (JSON) both loss curves
and the mAP at each checkpoint.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from darknet_py import load  # noqa: E402
from train_synthetic import mean_ap  # noqa: E402


def shapes_setup(root: str, args):
    """Dataset, cfg (as train_synthetic.py writes them, no augmentation keys) and the
    fixed batches X (N,B,3,S,S), y (N,B,max,5|6)."""
    from darknet_py.train.data import (Augment, DetectionDataset, read_data,
                                       read_image_list)
    from darknet_py.train.synthetic import make_shapes, narrow_tiny_cfg
    data = make_shapes(root, train=args.train, valid=args.valid, size=args.image_size,
                       seed=args.seed)
    scale = args.size / args.image_size
    s = [int(round(v * args.image_size * scale)) for v in (0.2, 0.28, 0.36)]
    anchors = ", ".join(f"{v},{v}" for v in s + [int(v * 1.4) for v in s])
    cfg = narrow_tiny_cfg(os.path.join(root, "yolov3-tiny-shapes.cfg"), div=args.div,
                          size=args.size, classes=3, batch=args.batch,
                          max_batches=args.max_batches, lr=args.lr, anchors=anchors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = load(cfg, dialect=args.dialect, warn_unused=False)
    d = read_data(data)
    train = read_image_list(d.train)
    valid = read_image_list(d.valid)
    dataset = DetectionDataset(train, Augment.from_model(probe, augment=False))
    order = np.random.default_rng(args.seed).permutation(len(train))
    n = len(train) // args.batch
    X = np.zeros((n, args.batch, 3, args.size, args.size), np.float32)
    y = None
    for k in range(n):
        for b in range(args.batch):
            x, t, problems = dataset[(int(order[k * args.batch + b]), args.size, args.size, 0,
                                      False)]
            if y is None:
                y = np.zeros((n, args.batch) + t.shape, np.float32)
            X[k, b], y[k, b] = x, t
    return cfg, valid, X, y


def initial_weights(cfg, fork: str, kind: str, seed: int):
    """The network of ``cfg`` with the ``--init`` weights (see main's help)."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load(cfg, dialect=fork, warn_unused=False)
    if kind != "darknet_py":
        rng = np.random.default_rng(seed)
        with torch.no_grad():
            for layer in model.layers:
                w = getattr(layer, "weight", None)
                if isinstance(w, torch.nn.Parameter) and w.dim() == 4:
                    scale = float(np.sqrt(2.0 / np.prod(w.shape[1:])))
                    normal = kind == "normal" or (kind == "fork" and fork == "pjreddie")
                    draw = (rng.standard_normal(w.shape) if normal
                            else rng.uniform(-1, 1, w.shape))
                    w.copy_(torch.from_numpy(scale * draw))
    return model


ABLATIONS = {
    "stale-deltas": "zero every layer's delta before the forward (AlexeyAB's CPU "
                    "forward_network zeroes only layers with l.train: [route]/[upsample] "
                    "deltas add up over iterations; its GPU build zeroes all)",
    "cpu-quirks": "no CPU backward quirks at all (stale deltas, conv backward overwriting "
                  "the previous layer's delta)",
    "bn-bias": "BN biases learn (AlexeyAB's CPU backward never computes their updates)",
}


def ablated_dialect(fork: str, ablate):
    import dataclasses
    from darknet_py.dialect import get_dialect
    d = get_dialect(fork)
    return dataclasses.replace(d, bn_bias_learns=True) if "bn-bias" in ablate else d


def ablate_model(model, ablate) -> None:
    if "cpu-quirks" in ablate:
        model.cpu_backward_quirks = False
    if "stale-deltas" in ablate:
        for layer in model.layers:
            layer.ab_forward_zeroes_delta = True


def score(cfg, weights, valid, dialect):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load(cfg, weights, dialect=dialect, warn_unused=False)
    return mean_ap(model, valid, 3)[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dialect", default="alexeyab", choices=["pjreddie", "alexeyab"])
    ap.add_argument("--side", default="both", choices=["both", "darknet", "darknet_py"])
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--train", type=int, default=400)
    ap.add_argument("--valid", type=int, default=100)
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--size", type=int, default=128, help="network input")
    ap.add_argument("--div", type=int, default=4, help="filters divided by this")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--max-batches", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--init", default="fork", choices=["fork", "normal", "uniform", "darknet_py", "harness"],
                    help="initial weights: fork: the fork's make_convolutional_layer init "
                         "(pjreddie scale*rand_normal(), AlexeyAB scale*rand_uniform(-1,1), "
                         "scale = sqrt(2/fan_in); biases 0, BN scales 1), what `detector "
                         "train` without weights starts from (numpy draws, not Darknet's "
                         "rand); darknet_py: load(cfg) without weights, as train_synthetic.py "
                         "trains; harness: the bridge's seeded init (BN scales U(0.5,1.5), "
                         "biases U(-0.2,0.2), rolling statistics from a forward); normal / "
                         "uniform: the pjreddie / AlexeyAB draw whatever the dialect")
    ap.add_argument("--init-seed", type=int, help="seed of the initial weights (default --seed)")
    ap.add_argument("--ablate", action="append", default=[], choices=list(ABLATIONS),
                    help="darknet_py side only, to find what makes a run slow (no longer "
                         "Darknet's training): " + "; ".join(f"{k}: {v}" for k, v in
                                                           ABLATIONS.items()))
    ap.add_argument("--out", help="work folder (default: a temporary one)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from darknet_py.darknet import build_darknet, dump_case
    from darknet_py.train.engine import TrainState, train_network
    root = Path(args.out or tempfile.mkdtemp(prefix=f"dnpy-shapes-{args.dialect}-"))
    root.mkdir(parents=True, exist_ok=True)
    cfg, valid, X, y = shapes_setup(str(root), args)
    fork = args.dialect
    print(f"{fork}: {X.shape[0]} fixed batches of {args.batch}, {len(valid)} valid images, "
          f"cfg {cfg}", flush=True)
    build = build_darknet(fork=fork)
    t0 = time.perf_counter()
    # Darknet's random init (and, with --side darknet*, its training)
    k_dn = args.iterations if args.side != "darknet_py" else 1
    init = None
    init_seed = args.seed if args.init_seed is None else args.init_seed
    if args.init != "harness":
        init = root / f"init-{args.init}.weights"
        initial_weights(cfg, fork, args.init, init_seed).save_weights(init)
    case = dump_case(build, cfg, init, mode="train", out_dir=root / "darknet", X=X, y=y,
                     iterations=k_dn, seed=init_seed + 1, save_every=args.eval_every,
                     timeout=24 * 3600)
    t_dn = time.perf_counter() - t0
    manifest = json.loads((case / "case.json").read_text())
    start = case / manifest["weights"].split(" ")[0]
    result = {"dialect": fork, "init": args.init, "ablate": args.ablate, "init_seed": init_seed, "iterations": args.iterations, "batches": int(X.shape[0]),
              "batch": args.batch, "cfg": Path(cfg).read_text(), "darknet_seconds": t_dn}
    if args.side != "darknet_py":
        result["darknet_loss"] = [e["loss"] for e in manifest["train_log"]]
        result["darknet_map"] = {}
        for k in range(0, args.iterations + 1, args.eval_every):
            w = (start if k == 0 else case / f"weights_iter{k}.weights")
            m = score(cfg, w, valid, fork)
            result["darknet_map"][k] = m
            print(f"  Darknet    it {k:5d}  loss "
                  f"{result['darknet_loss'][k - 1] if k else float('nan'):9.4f}  "
                  f"mAP@0.5 {m:.4f}", flush=True)
        print(f"Darknet: {args.iterations} iterations in {t_dn:.0f} s", flush=True)
    if args.side != "darknet":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = load(cfg, start, dialect=ablated_dialect(fork, args.ablate),
                         warn_unused=False)
        ablate_model(model, args.ablate)
        state = TrainState.from_model(model)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        ours, maps = [], {0: mean_ap(model, valid, 3)[0]}
        print(f"  darknet_py it     0  mAP@0.5 {maps[0]:.4f}", flush=True)
        t0 = time.perf_counter()
        for k in range(1, args.iterations + 1):
            i = (k - 1) % X.shape[0]
            ours.append(train_network(model, state, Xt[i], yt[i]))
            if k % args.eval_every == 0:
                maps[k] = mean_ap(model, valid, 3)[0]
                model.save_weights(root / f"darknet_py_iter{k}.weights")
                ref = (f"  (Darknet loss {result['darknet_loss'][k - 1]:9.4f} mAP "
                       f"{result['darknet_map'][k]:.4f})" if "darknet_map" in result else "")
                print(f"  darknet_py it {k:5d}  loss {ours[-1]:9.4f}  mAP@0.5 {maps[k]:.4f}"
                      f"{ref}", flush=True)
        result.update(darknet_py_loss=ours, darknet_py_map=maps,
                      darknet_py_seconds=time.perf_counter() - t0)
    (root / "curves.json").write_text(json.dumps(result, indent=1))
    print(f"\ncheckpoint  " + ("Darknet_mAP  " if "darknet_map" in result else "")
          + ("darknet_py_mAP" if "darknet_py_map" in result else ""))
    for k in range(0, args.iterations + 1, args.eval_every):
        row = f"{k:10d}  "
        if "darknet_map" in result:
            row += f"{result['darknet_map'][k]:11.4f}  "
        if "darknet_py_map" in result:
            row += f"{result['darknet_py_map'][k]:14.4f}"
        print(row)
    print(f"curves: {root / 'curves.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
