"""The bridge to a real Darknet: build it, run it, dump case folders.

* :mod:`.build` -- :func:`build_darknet` (make a fork's CPU Darknet into a cache
  folder keyed by the source's sha256, reused next time) and :func:`from_existing`;
* :mod:`.harness` -- the project's own small C program (``harness.c``, package
  data), compiled on demand against the fork's ``include/darknet.h`` and linked
  with its library, run in a subprocess with a timeout;
* :mod:`.dump` -- :func:`dump_case`: forward / detect / train case folders in the
  format of ``shared/reference/darknet/README.md``, and :func:`decode_image`
  (a build's own stb_image).
"""
from .build import DarknetBuild, build_darknet, from_existing, resolve_build

__all__ = ["DarknetBuild", "build_darknet", "decode_image", "dump_case", "from_existing",
           "resolve_build"]


def __getattr__(name):  # dump pulls in numpy only when used
    if name in ("dump_case", "decode_image"):
        from . import dump
        return getattr(dump, name)
    raise AttributeError(name)
