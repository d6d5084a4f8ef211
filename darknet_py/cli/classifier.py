"""``darknet-py classifier train DATA CFG [WEIGHTS]``: Darknet's classifier training command.

As ``darknet classifier train``: trains CFG on the ``.data`` file's ``train=`` list, each
image's class being the ``labels=`` name found in its path, with the cfg's [net]
augmentation (crop size, aspect, angle, hue/saturation/exposure, flip), writing
checkpoints into ``backup=`` by the cfg fork's cadence (pjreddie: ``<cfg>_<epoch>.weights``
each epoch, ``<cfg>.backup`` every 1000 iterations, ``<cfg>.weights`` at the end;
AlexeyAB: ``<cfg>_<i>.weights`` every 1000, ``<cfg>_last.weights`` every 100,
``<cfg>_final.weights``). WEIGHTS may be a full ``.weights`` (training resumes at its
``seen``; ``-clear`` restarts at 0) or a partial backbone (``darknet53.conv.74``).
"""
from __future__ import annotations

import argparse


def _train(args: argparse.Namespace) -> int:
    from ..errors import DarknetError
    from .train import _device, passive_omp_wait
    if len([g for g in args.gpus.split(",") if g]) > 1:
        raise DarknetError(f"-gpus {args.gpus}: classifier train runs on one device here "
                           f"(give one index)")
    passive_omp_wait()
    from ..train.trainer import train_classifier
    result = train_classifier(args.data, args.cfg, args.weights, clear=args.clear,
                              dialect=args.dialect, augment=not args.no_augment,
                              workers=args.workers, device=_device(args), seed=args.seed,
                              max_batches=args.max_batches, calc_topk=args.topk)
    return 0 if result.final else 1


def _valid(args: argparse.Namespace) -> int:
    from ..eval.classifier import validate_classifier
    from .train import _device
    validate_classifier(args.data, args.cfg, args.weights, dialect=args.dialect,
                        device=_device(args))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ..eval.classifier import predict_classifier
    from .train import _device
    predict_classifier(args.data, args.cfg, args.weights, args.images, top=args.top,
                       dialect=args.dialect, device=_device(args))
    return 0


def register(sub) -> None:
    p = sub.add_parser("classifier", help="Darknet's classifier commands: train, valid, "
                                          "predict",
                       description="Darknet's `classifier` commands.")
    verbs = p.add_subparsers(dest="classifier_verb", metavar="ACTION")
    verbs.required = True
    t = verbs.add_parser("train", allow_abbrev=False,
                         help="train a classifier, as `darknet classifier train`",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("data", help=".data file (classes, train, labels, backup)")
    t.add_argument("cfg", help=".cfg file")
    t.add_argument("weights", nargs="?", help="initial .weights (full, or a partial backbone)")
    t.add_argument("-clear", "--clear", action="store_true",
                   help="start counting seen/iterations at 0")
    t.add_argument("-gpus", "--gpus", default="", metavar="0",
                   help="device index (one process; several devices are not implemented here)")
    t.add_argument("-dont_show", "--dont-show", dest="dont_show", action="store_true",
                   help="accepted for Darknet compatibility (no window is ever shown)")
    t.add_argument("-topk", "--topk", action="store_true",
                   help="AlexeyAB's top-k accuracy on the valid list every 2 epochs "
                        "(>= 100 iterations, burn_in) and at the end")
    t.add_argument("--no-augment", action="store_true",
                   help="no augmentation (each image resized to the network; side-by-side runs)")
    t.add_argument("--workers", type=int, default=2, help="data loader processes (default 2)")
    t.add_argument("--max-batches", type=int, help="override the cfg's max_batches")
    t.add_argument("--seed", type=int, help="seed of the data order and augmentation")
    t.add_argument("--device", help="torch device (default: cuda:GPU when available, else cpu)")
    t.add_argument("--dialect", default="auto", choices=["auto", "pjreddie", "alexeyab"])
    t.set_defaults(func=_train)
    for name, func, help_ in [("valid", _valid, "top-1/top-k accuracy on the .data file's "
                               "valid= list, as `darknet classifier valid`"),
                              ("predict", _predict, "the best classes of images, as "
                               "`darknet classifier predict`")]:
        v = verbs.add_parser(name, allow_abbrev=False, help=help_, description=help_)
        v.add_argument("data", help=".data file (classes, valid, labels/names, top)")
        v.add_argument("cfg", help=".cfg file")
        v.add_argument("weights", help=".weights file")
        if name == "predict":
            v.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
            v.add_argument("-top", "--top", type=int, default=0,
                           help="how many classes (default: the .data file's top, else 1)")
        v.add_argument("-gpus", "--gpus", default="", metavar="0", help="device index")
        v.add_argument("--device", help="torch device (default: cuda when available)")
        v.add_argument("--dialect", default="auto", choices=["auto", "pjreddie", "alexeyab"])
        v.set_defaults(func=func)


__all__ = ["register"]
