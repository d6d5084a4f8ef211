"""``darknet-py compare CASE_DIR [--weights FILE] [--strict]``: per-layer errors against Darknet.

``darknet-py compare --darknet BUILD CFG [WEIGHTS] [IMAGE]`` first runs that
Darknet build on CFG (``darknet dump``: detect mode with an IMAGE, else forward
on a seeded random input; random init from ``--seed`` without WEIGHTS) into a
temporary case folder, then compares it.

Each layer passes within max(--tolerance, k x its noise floor) (see darknet_py.compare);
``--strict`` keeps the fixed tolerance alone. ``--plain`` runs darknet_py's plain path
(Darknet's operation order) instead of the inference fast path (darknet_py.fast).
``--darknet-order`` (with ``--darknet``) runs in that build's arithmetic order
(darknet_py.gemm_order: its summation order and activation code), where every layer's
error is 0.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ..errors import BridgeError

#: darknet_py.compare's DEFAULT_TOLERANCE and FLOOR_FACTOR, without importing torch for
#: --help (tests/test_startup.py checks that they agree)
DEFAULT_TOLERANCE = 1e-4
FLOOR_FACTOR = 5.0


def _dump_live(args: argparse.Namespace, folder: Path) -> Path:
    from ..darknet.dump import dump_case
    from ..image import is_image_name
    cfg, *rest = args.case
    weights = image = None
    for item in rest:
        if is_image_name(item) and image is None:
            image = item
        elif weights is None and not is_image_name(item):
            weights = item
        else:
            raise BridgeError(f"unexpected argument {item!r}: give CFG [WEIGHTS] [IMAGE]")
    return dump_case(args.darknet, cfg, weights, mode="detect" if image else "forward",
                     out_dir=folder / Path(cfg).stem, image=image, seed=args.seed)


def _run(args: argparse.Namespace) -> int:
    from .. import compare
    with tempfile.TemporaryDirectory(prefix="dpy-compare-") as tmp:
        if args.darknet:
            case = _dump_live(args, Path(tmp))
        elif len(args.case) != 1:
            raise BridgeError("give one CASE_DIR (or --darknet BUILD CFG [WEIGHTS] [IMAGE])")
        else:
            case = args.case[0]
        if args.darknet_order and not args.darknet:
            raise BridgeError("--darknet-order needs --darknet BUILD (the build whose "
                              "arithmetic to follow)")
        report = compare.compare_case(case, weights=args.weights, tolerance=args.tolerance,
                                      device=args.device or "cpu", strict=args.strict,
                                      fast=not args.plain,
                                      dialect=None if args.dialect == "auto" else args.dialect,
                                      darknet_order=args.darknet if args.darknet_order else None)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def register(sub) -> None:
    p = sub.add_parser("compare", help="compare every layer with a Darknet case folder "
                                       "(or with a Darknet build, live)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("case", nargs="+", metavar="CASE_DIR",
                   help="case folder with case.json, input.npy and layer_NNN.npy; "
                        "with --darknet: CFG [WEIGHTS] [IMAGE]")
    p.add_argument("--darknet", metavar="BUILD",
                   help="a Darknet build folder (`darknet-py darknet build`): dump CFG with it first")
    p.add_argument("--seed", type=int, help="with --darknet and no WEIGHTS: random init seed "
                                            "(default 1)")
    p.add_argument("--weights", help="weights file or official name (default: the one "
                                     "case.json names)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="error relative to each layer's max |value| that always passes "
                        "(default %(default)g)")
    p.add_argument("--strict", action="store_true",
                   help="hold every layer to --tolerance alone; by default a layer may also be "
                        f"{FLOOR_FACTOR:g}x darknet_py's own float32-vs-float64 distance "
                        "(its noise floor) away from Darknet")
    p.add_argument("--dialect", choices=("auto", "pjreddie", "alexeyab"), default="auto",
                   help="read the cfg as this fork does (default: the fork that made the case)")
    p.add_argument("--plain", action="store_true",
                   help="run the plain path (Darknet's operation order, no batchnorm folding) "
                        "instead of the inference fast path")
    p.add_argument("--darknet-order", action="store_true",
                   help="with --darknet: evaluate in that build's arithmetic order "
                        "(darknet_py.gemm_order; CPU, slow): every layer equal bit for bit")
    p.set_defaults(func=_run)
