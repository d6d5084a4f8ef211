"""``darknet-py weights fetch NAME``: download and verify official weights."""
from __future__ import annotations

import argparse

from .. import zoo


def _fetch(args: argparse.Namespace) -> int:
    path = zoo.fetch(args.name, cache=args.cache)
    print(path)
    return 0


def register(sub) -> None:
    p = sub.add_parser("weights", help="official weights: fetch (sha256-checked)")
    verbs = p.add_subparsers(dest="weights_verb", metavar="ACTION")
    verbs.required = True
    f = verbs.add_parser("fetch", help="download official weights into the cache and print the path")
    f.add_argument("name", choices=sorted(zoo.OFFICIAL))
    f.add_argument("--cache", help="cache folder (default $DARKNET_PY_CACHE or ~/.cache/darknet_py)")
    f.set_defaults(func=_fetch)
