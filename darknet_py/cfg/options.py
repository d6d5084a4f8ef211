"""Typed option objects with Darknet's defaults, one dataclass per section type.

A section type declares its keys once, as a dataclass whose fields carry
Darknet's defaults (``option(...)``); :class:`OptionReader` fills it from a
:class:`~darknet_py.cfg.reader.Section`, converting values the way Darknet's
parser would (but refusing garbage instead of turning it into 0) and recording
every key it read, so keys nobody read can be reported like Darknet's
"Unused field".

    >>> from dataclasses import dataclass
    >>> from darknet_py.cfg.reader import parse_cfg
    >>> @dataclass
    ... class Pool:
    ...     stride: int = option(1)
    ...     size: int = option(None)          # default: stride (resolved below)
    ...     def resolve(self, dialect):
    ...         if self.size is None: self.size = self.stride
    >>> sec = parse_cfg("[maxpool]\\nstride=2\\nsizee=3\\n", "m.cfg")[0]
    >>> reader = OptionReader(sec, "pjreddie")
    >>> reader.read(Pool)
    Pool(stride=2, size=2)
    >>> [e.key for e in reader.unused()]
    ['sizee']
"""
from __future__ import annotations

import difflib
import functools
import math
import re
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Type, TypeVar

from ..dialect import Dialect, get_dialect
from ..errors import CfgError
from .reader import Entry, Section

T = TypeVar("T")
_INT = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?")
#: no Darknet integer option needs more than this; bigger values are typos or attacks.
MAX_INT = 2 ** 31 - 1


def option(default: Any = MISSING, *, key: Optional[str] = None, alexeyab: Any = MISSING,
           only: Optional[str] = None, required: bool = False,
           choices: "Optional[Callable[[], Iterable[str]]]" = None, doc: str = "") -> Any:
    """Declare one cfg key.

    ``default`` is pjreddie's default, ``alexeyab`` the fork's where it differs,
    ``key`` the spelling in the cfg when it is not a Python name (``from``),
    ``only`` the dialect whose parser reads the key (the other one leaves it
    unread, so it keeps its default and is reported as unused), ``choices`` a
    function returning the values Darknet accepts (any other value is an error
    naming them; Darknet itself would silently fall back to a default).
    """
    meta = {"key": key, "alexeyab": alexeyab, "required": required, "doc": doc, "only": only,
            "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata=meta)
    return field(default=None if default is MISSING else default, metadata=meta)


def _parse_int(text: str) -> int:
    text = text.split("#", 1)[0]  # atoi stops at the '#' of "filters=40  #32" (AlexeyAB cfgs)
    if not _INT.fullmatch(text):
        raise ValueError("expected an integer")
    value = float(text)
    if not math.isfinite(value) or abs(value) > MAX_INT:
        raise ValueError(f"integer out of range (|value| <= {MAX_INT})")
    return int(value)  # atoi/atof truncation toward zero


def _parse_float(text: str) -> float:
    text = text.split("#", 1)[0]  # atof stops there too
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a number") from None
    if math.isnan(value):
        raise ValueError("expected a number, got NaN")
    return value


def _parse_list(text: str, item) -> list:
    # AlexeyAB stops reading list items at '#'; an empty trailing item is ignored.
    text = text.split("#", 1)[0]
    items = text.split(",")
    if items and items[-1] == "":
        items.pop()
    if not items or any(i == "" for i in items):
        raise ValueError("expected a comma-separated list")
    return [item(i) for i in items]


@functools.lru_cache(maxsize=None)
def _converter(tp: Any):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:  # Optional[X]
        inner = [a for a in args if a is not type(None)]
        return _converter(inner[0])
    if origin in (list, List):
        item = _converter(args[0])
        return lambda text: _parse_list(text, item)
    if tp is int:
        return _parse_int
    if tp is float:
        return _parse_float
    if tp is str:
        return str
    raise TypeError(f"unsupported option type {tp!r}")


_HINTS: Dict[type, Dict[str, Any]] = {}


def _hints(cls: type) -> Dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def key_of(f) -> str:
    return f.metadata.get("key") or f.name


@dataclass(frozen=True)
class _Planned:
    """What :meth:`OptionReader.read` does with one field of an option class in a dialect."""

    name: str
    key: str
    default: Any
    factory: Any  # default_factory (a fresh list per read) or None
    read: bool  # False: another dialect's key, left at its default and unread
    convert: Any
    required: bool
    choices: Any


@functools.lru_cache(maxsize=None)
def _plan(cls: type, dialect: str) -> "tuple[_Planned, ...]":
    """The fields of ``cls`` as ``dialect`` reads them, worked out once per class
    (dataclass introspection and type hints cost more than reading a section)."""
    hints = _hints(cls)
    plan = []
    for f in fields(cls):
        if not f.init:
            continue
        default, factory = f.default, None
        if default is MISSING:
            default, factory = None, f.default_factory
        ab_default = f.metadata.get("alexeyab", MISSING)
        if dialect == "alexeyab" and ab_default is not MISSING:
            default, factory = ab_default, None
        only = f.metadata.get("only")
        plan.append(_Planned(f.name, key_of(f), default, factory,
                             only is None or only == dialect, _converter(hints[f.name]),
                             bool(f.metadata.get("required")), f.metadata.get("choices")))
    return tuple(plan)


class OptionReader:
    """Reads typed options from one section and remembers which keys were read."""

    def __init__(self, section: Section, dialect: "str | Dialect") -> None:
        self.section = section
        self.dialect = get_dialect(dialect)
        self.used: Set[str] = set()

    # -- errors -----------------------------------------------------------------
    def error(self, message: str, key: Optional[str] = None) -> CfgError:
        """A CfgError pointing at ``key``'s line (or the section header)."""
        entry = self.section.find(key) if key else None
        line = entry.line if entry is not None and entry.line else self.section.line
        return CfgError(f"[{self.section.kind}] {message}", file=self.section.file,
                        line=line, key=key)

    # -- single values ----------------------------------------------------------
    def get(self, key: str, tp: Any, default: Any = None, required: bool = False) -> Any:
        return self._get(key, _converter(tp), default, required)

    def _get(self, key: str, convert, default: Any, required: bool) -> Any:
        self.used.add(key)
        entry = self.section.find(key)
        if entry is None:
            if required:
                raise self.error("missing required key", key)
            return default
        try:
            return convert(entry.value)
        except ValueError as exc:
            raise CfgError(f"[{self.section.kind}] {exc}, got {entry.value!r}",
                           file=self.section.file, line=entry.line, key=key) from None

    def has(self, key: str) -> bool:
        return self.section.find(key) is not None

    # -- whole option objects ---------------------------------------------------
    def read(self, cls: Type[T]) -> T:
        """Fill dataclass ``cls`` from the section; calls ``resolve(dialect)`` if defined."""
        values = {}
        for f in _plan(cls, self.dialect.name):
            default = f.default if f.factory is None else f.factory()
            if not f.read:
                values[f.name] = default
                continue
            value = self._get(f.key, f.convert, default, f.required)
            if f.choices is not None and value not in set(f.choices()):
                raise self.error(f"unknown {f.key} {value!r} (Darknet knows: "
                                 f"{', '.join(sorted(f.choices()))})", f.key)
            values[f.name] = value
        obj = cls(**values)
        resolve = getattr(obj, "resolve", None)
        if resolve is not None:
            try:
                resolve(self.dialect)
            except ValueError as exc:
                raise self.error(str(exc)) from None
        return obj

    def suggestion(self, key: str) -> Optional[str]:
        """The read key closest to a (probably misspelt) unused ``key``, if any is close."""
        match = difflib.get_close_matches(key, sorted(self.used), n=1, cutoff=0.75)
        return match[0] if match else None

    def unused(self) -> List[Entry]:
        """Entries whose key no parser asked for (Darknet's "Unused field")."""
        return [e for e in self.section.entries if e.key not in self.used]

    def check(self, condition: bool, message: str, key: Optional[str] = None) -> None:
        if not condition:
            raise self.error(message, key)


@functools.lru_cache(maxsize=None)
def dialect_keys(cls: type, dialect: str) -> "frozenset[str]":
    """Keys of ``cls`` that only ``dialect``'s parser reads."""
    return frozenset(key_of(f) for f in fields(cls) if f.metadata.get("only") == dialect)


def describe(cls: type) -> List[Dict[str, Any]]:
    """The keys of an option class with their defaults (for docs and ``check``)."""
    out = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        out.append({"key": key_of(f), "default": default,
                    "alexeyab": f.metadata.get("alexeyab", MISSING),
                    "required": bool(f.metadata.get("required")), "doc": f.metadata.get("doc", "")})
    return out
