"""Resource caps: how big a network darknet_py agrees to build.

A cfg is a program of sorts: ``filters=2000000000`` or ``width=1000000`` asks
for tensors no machine has. Every size is checked against these caps *before*
anything is allocated, and refused with a :class:`~darknet_py.CfgError` that
names the cfg line, so a hostile or mistyped cfg never exhausts memory.

The defaults are far above every real Darknet network (the largest real cfgs
have ~160 M parameters, ~50 M floats in one layer's output and ~350 layers) and
match Darknet's own ``int`` sizes, so they only stop absurd cfgs:

* ``max_layer_elements`` (default 2**31-1, ``$DARKNET_PY_MAX_ELEMENTS``): floats in
  one layer's output per image, in one layer's weights, and in a padded
  intermediate (the padded input of a conv or maxpool);
* ``max_parameters`` (default 2**30 = 4 GiB of float32, ``$DARKNET_PY_MAX_PARAMETERS``):
  floats of all weights together, checked layer by layer before allocating;
* ``max_input_elements`` (default 2**31-1, ``$DARKNET_PY_MAX_INPUT``): the [net]
  width*height*channels (or ``inputs``);
* ``max_layers`` (default 65536, ``$DARKNET_PY_MAX_LAYERS``): layer sections, also
  enforced while parsing, so a 16 MB cfg of ``[avg]`` lines is refused early.

The environment variables take integers like ``1000000``, ``1e6`` or ``2**20``.

Precedence: an explicit ``Darknet(..., limits=Limits(...))`` argument, then
the innermost :func:`override` block, then the environment variables, then
the defaults::

    >>> DEFAULT.max_layers
    65536
    >>> with override(max_layer_elements=1000):
    ...     current().max_layer_elements
    1000
    >>> Limits(max_parameters=10).replace(max_layers=5)  # doctest: +NORMALIZE_WHITESPACE
    Limits(max_layer_elements=2147483647, max_parameters=10,
           max_input_elements=2147483647, max_layers=5)
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import threading
from dataclasses import dataclass
from typing import Dict, Iterator, List

from .errors import DarknetError

#: Darknet stores sizes in C ``int``: nothing bigger can exist there.
INT_MAX = 2 ** 31 - 1

ENV: Dict[str, str] = {
    "max_layer_elements": "DARKNET_PY_MAX_ELEMENTS",
    "max_parameters": "DARKNET_PY_MAX_PARAMETERS",
    "max_input_elements": "DARKNET_PY_MAX_INPUT",
    "max_layers": "DARKNET_PY_MAX_LAYERS",
}
_NUMBER = re.compile(r"\d[\d_]*|\d+(\.\d*)?[eE]\+?\d+|2\*\*\d+")


@dataclass(frozen=True)
class Limits:
    """The caps (all counts, all > 0); see the module docstring."""

    max_layer_elements: int = INT_MAX
    max_parameters: int = 2 ** 30
    max_input_elements: int = INT_MAX
    max_layers: int = 65536

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{f.name} must be a positive int, got {value!r}")

    def replace(self, **changes: int) -> "Limits":
        return dataclasses.replace(self, **changes)


DEFAULT = Limits()
_local = threading.local()


def _stack() -> List[Limits]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def _parse_env(name: str, text: str) -> int:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise DarknetError(f"environment variable {name}={text!r}: expected a positive "
                           f"integer (like 1000000, 1e6 or 2**20)")
    if text.startswith("2**"):
        value = 2 ** min(int(text[3:]), 64)
    else:
        value = int(float(text)) if ("e" in text or "E" in text) else int(text.replace("_", ""))
    if value < 1:
        raise DarknetError(f"environment variable {name}={text!r}: must be >= 1")
    return value


def from_env(base: Limits = DEFAULT) -> Limits:
    """``base`` with every cap whose environment variable is set replaced by its value."""
    changes = {}
    for field_name, env in ENV.items():
        text = os.environ.get(env)
        if text:
            changes[field_name] = _parse_env(env, text)
    return base.replace(**changes) if changes else base


def current() -> Limits:
    """The caps in force here: innermost :func:`override`, else environment, else defaults."""
    stack = _stack()
    return stack[-1] if stack else from_env()


@contextlib.contextmanager
def override(limits: "Limits | None" = None, **changes: int) -> Iterator[Limits]:
    """Use ``limits`` (default: the current ones) with ``changes`` inside the block."""
    new = (limits or current()).replace(**changes)
    stack = _stack()
    stack.append(new)
    try:
        yield new
    finally:
        stack.pop()

