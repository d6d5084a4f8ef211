"""``darknet-py cfg variant IN.cfg -o OUT.cfg [--classes N] ...``: a cfg edited as Darknet
users edit theirs (see :mod:`darknet_py.cfg.variant`), validated by building it."""
from __future__ import annotations

import argparse

from ..cfg.variant import write_variant
from ..errors import CfgError


def _anchors(text: str):
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"anchors must be numbers w1,h1,w2,h2,...: {text!r}")


def _variant(args: argparse.Namespace) -> int:
    if (args.width is None) != (args.height is None):
        raise CfgError("give --width and --height together", file=args.cfg)
    model = write_variant(args.cfg, args.output, classes=args.classes, width=args.width,
                          height=args.height, anchors=args.anchors, batch=args.batch,
                          subdivisions=args.subdivisions, max_batches=args.max_batches)
    print(f"{args.output}: {len(model.layers)} layers, builds")
    return 0


def register(sub) -> None:
    p = sub.add_parser("cfg", help="cfg tools: variant (classes, size, anchors, batch...)")
    verbs = p.add_subparsers(dest="cfg_verb", metavar="ACTION")
    verbs.required = True
    v = verbs.add_parser("variant", help="write an edited copy of a cfg, comments kept")
    v.add_argument("cfg")
    v.add_argument("-o", "--output", required=True)
    v.add_argument("--classes", type=int)
    v.add_argument("--width", type=int)
    v.add_argument("--height", type=int)
    v.add_argument("--anchors", type=_anchors, help="w1,h1,w2,h2,... (num pairs)")
    v.add_argument("--batch", type=int)
    v.add_argument("--subdivisions", type=int)
    v.add_argument("--max-batches", type=int, dest="max_batches",
                   help="also sets steps to 80%% and 90%% of it")
    v.set_defaults(func=_variant)
