"""``darknet-py weights list|fetch``: the official weights of both Darknet forks."""
from __future__ import annotations

import argparse

from .. import zoo


def _fetch(args: argparse.Namespace) -> int:
    for name in args.names:
        print(zoo.fetch(name, cache=args.cache))
    return 0


def _list(args: argparse.Namespace) -> int:
    for line in zoo.table():
        print(line)
    if args.sources:
        print()
        for w in zoo.OFFICIAL.values():
            print(f"{w.name}: {w.source}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("weights", help="official weights: list, fetch (verified, cached)")
    verbs = p.add_subparsers(dest="weights_verb", metavar="ACTION")
    verbs.required = True
    f = verbs.add_parser("fetch", help="download official weights into the cache and print "
                                       "the path (resumes; verifies size and checksum)",
                         description="Download official weights into the cache "
                                     "($DARKNET_PY_CACHE or ~/.cache/darknet_py) and print the "
                                     "path. $DARKNET_PY_MIRROR (a URL prefix or a folder) is "
                                     "tried before the official URL.")
    f.add_argument("names", nargs="+", metavar="NAME", help="official name (see `weights list`)")
    f.add_argument("--cache", help="cache folder (default $DARKNET_PY_CACHE or "
                                   "~/.cache/darknet_py)")
    f.set_defaults(func=_fetch)
    ls = verbs.add_parser("list", help="the official weights: name, fork, size, checksum, cfg, URL")
    ls.add_argument("--sources", action="store_true",
                    help="also say where each size and checksum comes from")
    ls.set_defaults(func=_list)
