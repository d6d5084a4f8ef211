"""``darknet-py check CFG [WEIGHTS]``: validate a cfg (and a weights file's size).

Prints the layer table Darknet prints while parsing the cfg (layer, filters,
size, input, output, BFLOPs), the total BFLOPs, the parameter count and every
key no parser read (Darknet's "Unused field"); with WEIGHTS, checks that the
file's header and size fit the network. Nothing is run and nothing is
allocated: the network is built on PyTorch's ``meta`` device, so checking a
cfg that asks for a 1000-layer 8K network costs no memory. The resource caps of
:mod:`darknet_py.limits` still apply (raise them with the ``--max-*`` options or
the ``DARKNET_PY_MAX_*`` environment variables).

Exit status: 0 when everything fits, 1 with ``--strict`` and unused keys, 2 on
any error (one line on stderr naming the file and line or layer).
"""
from __future__ import annotations

import argparse
import warnings
from typing import TYPE_CHECKING, List, Optional

from .. import limits as _limits
from .. import zoo
from ..cfg import read_cfg
from ..cfg.net import NET_SECTIONS
from ..dialect import ALEXEYAB, PJREDDIE
from ..errors import CfgWarning

if TYPE_CHECKING:  # pragma: no cover
    from ..model import Darknet


def check(cfg: str, weights: Optional[str] = None, *, width: Optional[int] = None,
          height: Optional[int] = None, dialect: str = "auto", upto: Optional[int] = None,
          limits: Optional[_limits.Limits] = None) -> "tuple[Darknet, List[str]]":
    """Build ``cfg`` on the meta device and return it with the report lines."""
    if weights is not None:
        if upto is None:
            upto = zoo.default_upto(weights)
        weights = zoo.resolve(weights)
    sections = read_cfg(cfg)
    import torch  # after reading the cfg: a missing or broken file needs no torch

    from ..layers.base import uninitialised
    from ..model import Darknet, detect_dialect
    from ..weights import check_weights, read_header
    first = sections[0]
    if first.kind in NET_SECTIONS:
        if width is not None:
            first.set("width", width)
        if height is not None:
            first.set("height", height)
    chosen = dialect
    if dialect == "auto":
        found = detect_dialect(sections)
        if found is None and weights is not None:
            found = ALEXEYAB if read_header(weights).revision > 0 else PJREDDIE
        chosen = (found or PJREDDIE).name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CfgWarning)
        # no init either: random init on the meta device goes through torch._refs,
        # which imports torch._dynamo (~3 s) for values that would not exist anyway
        with torch.device("meta"), uninitialised():
            model = Darknet(sections, chosen, warn_unused=False, limits=limits)
    lines = list(model.layer_table())
    n_params = sum(layer.weight_count() for layer in model.layers)
    lines.append(f"Total BFLOPs {model.bflops():.3f}")
    lines.append(f"Parameters {n_params} ({n_params * 4 / 2 ** 20:.1f} MiB as float32); "
                 f"input {model.width}x{model.height}x{model.input_shape.c}; "
                 f"dialect {model.dialect.name}")
    for sec, entry in model.unused:
        lines.append(f"Unused field: '{entry.key} = {entry.value}' "
                     f"({sec.file}:{entry.line} [{sec.kind}])")
    if weights is not None:
        header = check_weights(model, weights, upto=upto)
        lines.append(f"Weights {weights}: version {header.major}.{header.minor}.{header.revision}, "
                     f"seen {header.seen}: size fits"
                     + ("" if upto is None else f" layers 0..{upto - 1}"))
    return model, lines


def _run(args: argparse.Namespace) -> int:
    changes = {name: getattr(args, name) for name in _limits.ENV
               if getattr(args, name, None) is not None}
    limits = _limits.current().replace(**changes) if changes else None
    model, lines = check(args.cfg, args.weights, width=args.width, height=args.height,
                         dialect=args.dialect, upto=args.upto, limits=limits)
    for line in lines:
        print(line)
    return 1 if args.strict and model.unused else 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def register(sub) -> None:
    p = sub.add_parser("check", description=__doc__,
                       help="validate a cfg (and weights size); print Darknet's "
                                     "layer table without running or allocating anything")
    p.add_argument("cfg", help=".cfg file")
    p.add_argument("weights", nargs="?", help=".weights file or official name to check against "
                                              "the cfg (size and header only)")
    p.add_argument("--width", type=_positive, help="override [net] width")
    p.add_argument("--height", type=_positive, help="override [net] height")
    p.add_argument("--dialect", choices=("auto", "pjreddie", "alexeyab"), default="auto",
                   help="cfg dialect (default: %(default)s)")
    p.add_argument("--upto", type=_positive, help="weights hold only layers 0..UPTO-1")
    p.add_argument("--strict", action="store_true", help="exit 1 when the cfg has unused keys")
    for name, env in _limits.ENV.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=_positive,
                       metavar="N", help=f"resource cap (default ${env} or "
                                         f"{getattr(_limits.DEFAULT, name)})")
    p.set_defaults(func=_run)
