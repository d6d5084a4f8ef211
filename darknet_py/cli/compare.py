"""``darknet-py compare CASE_DIR [--weights FILE]``: per-layer errors against Darknet."""
from __future__ import annotations

import argparse

#: darknet_py.compare.DEFAULT_TOLERANCE, without importing torch for --help
DEFAULT_TOLERANCE = 1e-4


def _run(args: argparse.Namespace) -> int:
    from .. import compare
    report = compare.compare_case(args.case, weights=args.weights, tolerance=args.tolerance,
                                  device=args.device, fast=not args.plain)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def register(sub) -> None:
    p = sub.add_parser("compare", help="compare every layer with a Darknet reference case folder")
    p.add_argument("case", help="case folder with case.json, input.npy and layer_NNN.npy")
    p.add_argument("--weights", help="weights file (default: the one case.json names)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="max error relative to each layer's max |value| (default %(default)g)")
    p.add_argument("--device", default="cpu", help="torch device (default %(default)s)")
    p.add_argument("--plain", action="store_true",
                   help="run the plain path (Darknet's operation order, no batchnorm folding) "
                        "instead of the inference fast path")
    p.set_defaults(func=_run)
