"""``darknet-py``: a thin command line over the Python API.

Each verb is one module in this package exposing ``register(subparsers)``,
which adds its sub-parser and sets ``func(args) -> int``. Errors from the
files given (:class:`~darknet_py.DarknetError`) print as one line and exit 2;
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import List, Optional

from ..errors import DarknetError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="darknet-py",
                                     description="Darknet cfg/weights in PyTorch, faithfully.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DarknetError as exc:
        if args.debug:
            raise
        print(f"darknet-py: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `darknet-py check ... | head`: the reader went away; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        if args.debug:
            raise
        name = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"darknet-py: error: {name}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("darknet-py: interrupted", file=sys.stderr)
        return 130
