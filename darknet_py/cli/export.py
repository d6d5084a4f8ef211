"""``darknet-py export CFG [WEIGHTS] --format onnx|torchscript|weights|cfg -o OUT``.

ONNX: dynamic batch always, ``--dynamic-size`` for dynamic height/width,
``--decode`` for boxes/objectness/scores inside the graph ([yolo] heads).
``--upto N`` keeps the first N layers (Darknet's ``partial``).
"""
from __future__ import annotations

import argparse

#: darknet_py.export.FORMATS, without importing torch for --help (tests/test_startup.py
#: checks that they agree)
FORMATS = ("onnx", "torchscript", "weights", "cfg")


def _run(args: argparse.Namespace) -> int:
    from .. import load
    from ..export import export
    from .detect import resolve_weights
    weights = resolve_weights(args.weights) if args.weights else None
    model = load(args.cfg, weights, dialect=args.dialect, warn_unused=False)
    kwargs = {"upto": args.upto}
    if args.format in ("onnx", "torchscript"):
        kwargs["decode"] = args.decode
        if args.width or args.height:
            kwargs["size"] = (args.width or model.width, args.height or model.height)
    if args.format == "onnx":
        kwargs.update(dynamic_size=args.dynamic_size, dynamic_batch=not args.static_batch,
                      opset=args.opset)
    export(model, args.output, args.format, **kwargs)
    print(f"{args.output}: {args.format}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="write the model as ONNX, TorchScript, .weights or .cfg")
    p.add_argument("cfg")
    p.add_argument("weights", nargs="?", help=".weights (or an official name); random if absent")
    p.add_argument("--format", "-f", choices=FORMATS, required=True)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--dialect", default="auto", choices=("auto", "pjreddie", "alexeyab"))
    p.add_argument("--upto", type=int, help="keep the first N layers (Darknet's partial)")
    p.add_argument("--decode", action="store_true",
                   help="onnx/torchscript: boxes, objectness and scores inside the graph")
    p.add_argument("--dynamic-size", action="store_true",
                   help="onnx: dynamic height and width (batch is dynamic unless --static-batch)")
    p.add_argument("--static-batch", action="store_true", help="onnx: fix the batch to 1")
    p.add_argument("--opset", type=int, default=17, help="onnx opset (default 17)")
    p.add_argument("--width", type=int, help="input width to trace (default the cfg's)")
    p.add_argument("--height", type=int, help="input height to trace (default the cfg's)")
    p.set_defaults(func=_run)
