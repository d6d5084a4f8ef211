"""``darknet-py detector train DATA CFG [WEIGHTS]``: Darknet's training command.

As ``darknet detector train``: trains CFG on the ``.data`` file's ``train=`` list,
writing checkpoints into its ``backup=`` folder by the cfg fork's cadence
(``.backup`` / ``_last.weights``, numbered, ``_final.weights``). WEIGHTS may be a
full ``.weights`` (training resumes at its ``seen``; ``-clear`` restarts at 0) or
a partial backbone such as ``darknet53.conv.74``. ``-gpus 0,1`` with several
devices starts one process per device through ``torch.distributed.run``
(torchrun; gloo on CPU, nccl on CUDA); under torchrun the processes split the
cfg batch, or with ``--scheme darknet`` each trains a whole batch at learning
rate x processes and the weights are averaged every 4 iterations (Darknet's own).
``-map`` evaluates the ``valid`` list as ``detector map`` does, at AlexeyAB's cadence,
keeping the best in ``<backup>/<cfg name>_best.weights``.
The loss chart is written to ``chart_<cfg name>.png`` (``-chart PATH``; needs
matplotlib); ``-dont_show`` is accepted (nothing is ever shown in a window).
"""
from __future__ import annotations

import argparse
import os
import sys


def _device(args: argparse.Namespace) -> str:
    import torch
    if args.device:
        return args.device
    gpus = [int(g) for g in args.gpus.split(",")] if args.gpus else [0]
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return f"cuda:{gpus[local % len(gpus)]}"
    return "cpu"


def passive_omp_wait() -> None:
    """Before torch loads libgomp (it reads the variable once): OpenMP threads that wait at
    the end of a parallel op sleep instead of spinning, unless the user set
    OMP_WAIT_POLICY. The same results; on a loaded machine spinning threads take the cores
    the working ones need (a small net's training step at 2 threads: 1.5-2.8 s -> 0.12-0.22
    s, README "step speed"). Training only: an idle machine's batch-1 inference measured
    ~10-20% slower with it (a wake-up per parallel op)."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _train(args: argparse.Namespace) -> int:
    passive_omp_wait()
    gpus = args.gpus.split(",") if args.gpus else []
    if len(gpus) > 1 and "WORLD_SIZE" not in os.environ:
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={len(gpus)}", "-m", "darknet_py.cli"] + sys.argv[1:]
        sys.stdout.flush()
        os.execv(sys.executable, argv)
    from ..train.checkpoint import basecfg
    from ..train.trainer import train_detector
    device = _device(args)
    chart = None if args.no_chart else (args.chart or f"chart_{basecfg(args.cfg)}.png")
    result = train_detector(args.data, args.cfg, args.weights, clear=args.clear,
                            dialect=args.dialect, augment=not args.no_augment,
                            workers=args.workers, device=device, seed=args.seed,
                            max_batches=args.max_batches, chart=chart, scheme=args.scheme,
                            calc_map=args.map, map_epochs=args.map_epochs, thresh=args.thresh,
                            iou_thresh=args.iou_thresh)
    return 0 if result.final or int(os.environ.get("RANK", "0")) else 1


def add_to_detector(verbs) -> None:
    """Add ``train`` to the ``detector`` verb's actions."""
    t = verbs.add_parser("train", allow_abbrev=False,
                         help="train a network, as `darknet detector train`",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("data", help=".data file (classes, train, backup; valid, names)")
    t.add_argument("cfg", help=".cfg file")
    t.add_argument("weights", nargs="?", help="initial .weights (full, or a partial backbone)")
    t.add_argument("-gpus", "--gpus", default="", metavar="0,1",
                   help="devices; several start one process each (torchrun)")
    t.add_argument("-clear", "--clear", action="store_true",
                   help="start counting seen/iterations at 0")
    t.add_argument("-dont_show", "--dont-show", dest="dont_show", action="store_true",
                   help="accepted for Darknet compatibility (no window is ever shown)")
    t.add_argument("-map", "--map", action="store_true",
                   help="AlexeyAB's mAP on the valid list during training (every -mAP_epochs "
                        "epochs, >= 100 iterations apart, and at the end); best kept in "
                        "backup/<cfg>_best.weights and drawn on the chart")
    t.add_argument("-mAP_epochs", "--map-epochs", dest="map_epochs", type=int, default=4,
                   help="epochs between mAP evaluations (default 4)")
    t.add_argument("-thresh", "--thresh", type=float, default=0.25,
                   help="-map: confidence for the TP/FP/precision/recall lines")
    t.add_argument("-iou_thresh", "--iou-thresh", dest="iou_thresh", type=float, default=0.5,
                   help="-map: IoU for a true positive")
    t.add_argument("-chart", "--chart", metavar="PNG", help="loss chart path")
    t.add_argument("--no-chart", action="store_true", help="do not draw the loss chart")
    t.add_argument("--no-augment", action="store_true",
                   help="no augmentation and no random resizing (side-by-side runs)")
    t.add_argument("--workers", type=int, default=2, help="data loader processes (default 2)")
    t.add_argument("--max-batches", type=int, help="override the cfg's max_batches")
    t.add_argument("--seed", type=int, help="seed of the data order and augmentation")
    t.add_argument("--device", help="torch device (default: cuda:GPU when available, else cpu)")
    t.add_argument("--dialect", default="auto", choices=["auto", "pjreddie", "alexeyab"])
    t.add_argument("--scheme", default="split", choices=["split", "darknet"],
                   help="several processes: split the batch (default) or Darknet's scheme")
    t.set_defaults(func=_train)


__all__ = ["add_to_detector"]
