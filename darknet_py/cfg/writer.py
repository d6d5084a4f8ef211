"""Sections -> cfg text that :func:`parse_cfg` reads back to the same sections.

    >>> from darknet_py.cfg.reader import parse_cfg
    >>> text = format_cfg(parse_cfg("[net]\\nwidth = 416\\n[maxpool]\\nsize=2\\n"))
    >>> print(text, end="")
    [net]
    width=416
    <BLANKLINE>
    [maxpool]
    size=2
"""
from __future__ import annotations

import os
from typing import Iterable

from .reader import Section
from ..io import atomic_write


def format_cfg(sections: Iterable[Section]) -> str:
    blocks = []
    for sec in sections:
        lines = [f"[{sec.kind}]"] + [f"{e.key}={e.value}" for e in sec.entries]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def write_cfg(sections: Iterable[Section], path: "os.PathLike[str] | str") -> None:
    """Write atomically: the file is either the old one or the complete new one."""
    atomic_write(path, format_cfg(sections).encode("utf-8"))
