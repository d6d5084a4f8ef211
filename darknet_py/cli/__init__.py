"""``darknet-py``: a thin command line over the Python API.

Each verb is one module in this package exposing ``register(subparsers)``,
which adds its sub-parser and sets ``func(args) -> int``. Errors from the
files given (:class:`~darknet_py.DarknetError`) print as one line and exit 2.

Global options work anywhere on the line, before or after the verb, so every
verb gets them without declaring them: ``--debug`` (tracebacks instead of
one-line errors), ``--device cpu|cuda|cuda:N`` (``args.device``: the value given,
else the verb's own ``--device`` default if it declares one, else None, which verbs
read as their default device, the CPU) and ``--version``. Warnings from the library
(:class:`~darknet_py.CfgWarning`, e.g. an unused cfg key) print as one
``darknet-py: warning: ...`` line each. Help texts are docstrings with their
reStructuredText markup removed (:func:`plain`).
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import sys
import textwrap
import warnings
from typing import Dict, List, Optional, Tuple

from ..errors import CfgWarning, DarknetError

#: global options: name -> takes a value
GLOBAL_OPTIONS: Dict[str, bool] = {"--debug": False, "--device": True, "--version": False}


def plain(text: Optional[str]) -> str:
    """A docstring as plain help text: no ``literal`` quotes, roles or ``::`` markers.

    >>> plain("``detector test`` prints :class:`~x.Y` lines of :mod:`x.z`::")
    'detector test prints Y lines of x.z:'
    """
    if not text:
        return ""
    # :role:`~a.b.C` shows C, :role:`a.b.C` shows a.b.C, as Sphinx renders them
    text = re.sub(r":[a-z]+:`(~?)([^`]+)`",
                  lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
    text = text.replace("``", "")
    return re.sub(r"::$", ":", text, flags=re.M)


class HelpFormatter(argparse.HelpFormatter):
    """Wraps each paragraph of a description on its own (docstrings have several);
    indented lines (examples) are kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for paragraph in re.split(r"\n\s*\n", text.strip("\n")):
            lines = paragraph.splitlines()
            if any(line[:1].isspace() for line in lines):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(textwrap.fill(" ".join(paragraph.split()), width,
                                         initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(out)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose descriptions, epilogs and sub-command helps are
    :func:`plain` text, for every verb and sub-verb (they inherit the class)."""

    def __init__(self, *args, **kwargs) -> None:
        for key in ("description", "epilog"):
            if kwargs.get(key):
                kwargs[key] = plain(kwargs[key])
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_subparsers(self, **kwargs):
        action = super().add_subparsers(**kwargs)
        add_parser = action.add_parser

        def add_plain_parser(name, **options):
            if options.get("help"):
                options["help"] = plain(options["help"])
            return add_parser(name, **options)

        action.add_parser = add_plain_parser
        return action


def split_globals(argv: List[str]) -> Tuple[Dict[str, object], List[str]]:
    """Take the global options out of ``argv`` wherever they are (up to a ``--``).

    >>> split_globals(["check", "--debug", "a.cfg", "--device", "cuda:1"])
    ({'debug': True, 'device': 'cuda:1'}, ['check', 'a.cfg'])
    """
    found: Dict[str, object] = {}
    rest: List[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name, eq, value = arg.partition("=")
        if name in GLOBAL_OPTIONS:
            key = name[2:]
            if GLOBAL_OPTIONS[name]:
                if not eq:
                    if i + 1 >= len(argv):
                        raise SystemExit(f"darknet-py: error: {name} needs a value")
                    i += 1
                    value = argv[i]
                found[key] = value
            else:
                found[key] = True
        else:
            rest.append(arg)
        i += 1
    return found, rest


def check_device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``, usable by this torch; else a one-line error."""
    if text == "cpu":
        return text
    import torch
    if not re.fullmatch(r"cuda(:\d+)?", text):
        raise DarknetError(f"--device {text}: expected cpu, cuda or cuda:N")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DarknetError(f"--device {text}: this torch ({torch.__version__}) has no usable "
                               f"CUDA device; install a CUDA build of torch (README: GPUs)")
        index = int(text.split(":")[1]) if ":" in text else 0
        if index >= torch.cuda.device_count():
            raise DarknetError(f"--device {text}: only {torch.cuda.device_count()} CUDA "
                               f"device(s) visible")
    return text


def version() -> str:
    import torch

    from .. import __version__
    cuda = torch.version.cuda or "none"
    return f"darknet-py {__version__} (torch {torch.__version__}, CUDA {cuda})"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="darknet-py",
        description="Darknet cfg/weights in PyTorch, faithfully.",
        epilog="Global options may also come after the verb.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--device", metavar="DEV", default=None,
                        help="cpu, cuda or cuda:N (default: each verb's, the CPU)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
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


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Library warnings as one clean line each (no source line of ours)."""
    text = " ".join(str(message).split("\n"))
    print(f"darknet-py: warning: {text}", file=sys.stderr if file is None else file)


def main(argv: Optional[List[str]] = None) -> int:
    options, rest = split_globals(list(sys.argv[1:] if argv is None else argv))
    debug = bool(options.get("debug"))
    if options.get("version"):
        print(version())
        return 0
    parser = build_parser()
    args = parser.parse_args(rest)
    args.debug = debug
    if "device" in options:
        args.device = str(options["device"])
    with warnings.catch_warnings():
        if not debug:
            warnings.simplefilter("always", CfgWarning)
            warnings.showwarning = _show_warning
        return _run(args, "device" in options)


def _run(args: argparse.Namespace, check: bool = False) -> int:
    try:
        if check:  # the user's --device (a verb's own default is the verb's business)
            check_device(args.device)
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
