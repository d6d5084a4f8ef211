"""Text -> sections, in Darknet's cfg dialect (``parser.c:read_cfg``).

Darknet's rules, kept here and nowhere else:

* every line loses *all* spaces, tabs, ``\\r`` and ``\\n`` before anything else
  (``a = 1`` is ``a=1``; spaces inside values vanish too);
* empty lines and lines starting with ``#`` or ``;`` are skipped (a ``#`` later
  in a line is part of the value);
* ``[name]`` opens a section (case-sensitive); other lines are ``key=value``
  split at the first ``=``;
* a key given twice keeps its *first* value (``option_list.c:option_find``).

Unlike Darknet, malformed lines are errors (Darknet prints and ignores them)
and every section remembers its file and line::

    >>> secs = parse_cfg("[net]\\nwidth = 416\\n[maxpool]\\nsize=2\\nsize=3\\n", "x.cfg")
    >>> secs[1].kind, secs[1].line, secs[1].get("size")
    ('maxpool', 3, '2')
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from .. import limits
from ..errors import CfgError

_STRIP = str.maketrans("", "", " \t\r\n")
MAX_CFG_BYTES = 16 * 1024 * 1024  # the largest real cfg is ~60 KB
#: section and key lines a cfg may have (the largest real cfg has ~2,600): parsing costs
#: ~300 bytes and a few microseconds per line, so 16 MB of ``a=1`` lines is refused early.
MAX_CFG_LINES = 1 << 18


@dataclass
class Entry:
    """One ``key=value`` line of a section."""

    key: str
    value: str
    line: int


@dataclass
class Section:
    """One ``[kind]`` block: its entries in file order, and where it came from."""

    kind: str
    file: str
    line: int
    entries: List[Entry] = field(default_factory=list)

    def get(self, key: str) -> Optional[str]:
        """First value of ``key`` (Darknet's first-occurrence rule), or None."""
        entry = self.find(key)
        return None if entry is None else entry.value

    def find(self, key: str) -> Optional[Entry]:
        for entry in self.entries:
            if entry.key == key:
                return entry
        return None

    def keys(self) -> List[str]:
        seen: Dict[str, None] = {}
        for entry in self.entries:
            seen.setdefault(entry.key, None)
        return list(seen)

    def set(self, key: str, value: object) -> None:
        """Replace the effective (first) value of ``key``, or append it."""
        entry = self.find(key)
        if entry is None:
            self.entries.append(Entry(key, str(value), 0))
        else:
            entry.value = str(value)

    def copy(self) -> "Section":
        return Section(self.kind, self.file, self.line,
                       [Entry(e.key, e.value, e.line) for e in self.entries])


def _decode(data: bytes, source: str) -> str:
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise CfgError(f"not a text cfg file (NUL byte at offset {offset})", file=source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CfgError(f"not a text cfg file (invalid UTF-8 at byte {exc.start})",
                       file=source) from None
    return text


def _lines(text: str) -> Iterator[Tuple[int, str]]:
    start, number = 0, 1
    while True:  # lazily: a refused cfg is never split whole
        end = text.find("\n", start)
        yield number, (text[start:] if end < 0 else text[start:end]).translate(_STRIP)
        if end < 0:
            return
        start, number = end + 1, number + 1


def parse_cfg(text: str, source: str = "<string>") -> List[Section]:
    """Parse cfg text into sections; ``source`` names it in errors."""
    if text.startswith("\ufeff"):  # a byte-order mark, as read_cfg drops it from files
        text = text[1:]
    sections: List[Section] = []
    max_sections = limits.current().max_layers + 1
    count = 0
    for number, line in _lines(text):
        if not line or line[0] in "#;":
            continue
        count += 1
        if count > MAX_CFG_LINES:
            raise CfgError(f"more than {MAX_CFG_LINES} section and key lines; not a real cfg?",
                           file=source, line=number)
        if line[0] == "[":
            if len(sections) == max_sections:
                raise CfgError(f"more than {max_sections - 1} layers "
                               f"(${limits.ENV['max_layers']})", file=source, line=number)
            if not line.endswith("]") or len(line) < 3:
                raise CfgError(f"malformed section header {line!r}", file=source, line=number)
            sections.append(Section(line[1:-1], source, number))
            continue
        key, sep, value = line.partition("=")
        if not sep or not key or not value:
            raise CfgError(f"cannot parse line {line!r} (expected key=value)",
                           file=source, line=number)
        if not sections:
            raise CfgError(f"option {key!r} before the first [section]", file=source, line=number)
        sections[-1].entries.append(Entry(key, value, number))
    if not sections:
        raise CfgError("no sections found (empty cfg file?)", file=source)
    return sections


def read_cfg(path: "os.PathLike[str] | str") -> List[Section]:
    """Read a cfg file; every problem is a one-line :class:`CfgError` naming it."""
    source = os.fspath(path)
    try:
        size = os.path.getsize(source)
        if size > MAX_CFG_BYTES:
            raise CfgError(f"file is {size} bytes; a cfg is text of at most "
                           f"{MAX_CFG_BYTES} bytes", file=source)
        with open(source, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise CfgError(f"cannot read cfg: {exc.strerror or exc}", file=source) from None
    try:
        return parse_cfg(_decode(data, source), source)
    except CfgError as exc:
        from ..sniff import mismatch
        wrong = mismatch(source, "cfg")
        if wrong is None:
            raise
        raise CfgError(f"{wrong}: arguments in the wrong order, or one missing? "
                       f"({exc.message})", file=source) from None
