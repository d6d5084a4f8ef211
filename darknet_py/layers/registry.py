"""Section name -> builder. One decorator, no if/elif chain.

A new section type is one new module in ``darknet_py/layers/`` that does::

    from .registry import register

    @register("sam")
    def build(ctx):
        ...

Every module in the package is imported on first use, so nothing else needs
editing.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Dict, List, Optional

Builder = Callable[..., object]
_BUILDERS: Dict[str, Builder] = {}
_OPTIONS: Dict[str, Optional[type]] = {}
_ONLY: Dict[str, Optional[str]] = {}
_loaded = False


def register(*names: str, options: Optional[type] = None,
             only: Optional[str] = None) -> Callable[[Builder], Builder]:
    """Register ``build(ctx)`` for one or more section names (``"maxpool", "max"``).

    ``options`` is the section's option dataclass (for docs, ``check`` and
    dialect detection); ``only`` names the one dialect that has this section.
    """
    def deco(fn: Builder) -> Builder:
        for name in names:
            if name in _BUILDERS and _BUILDERS[name] is not fn:
                raise RuntimeError(f"section [{name}] registered twice")
            _BUILDERS[name] = fn
            _OPTIONS[name] = options
            _ONLY[name] = only
        return fn
    return deco


def options_class(kind: str) -> Optional[type]:
    _load_all()
    return _OPTIONS.get(kind)


def section_dialect(kind: str) -> Optional[str]:
    """The only dialect that knows section ``kind``, or None when both do."""
    _load_all()
    return _ONLY.get(kind)


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{__package__}.{info.name}")


def get_builder(kind: str) -> Optional[Builder]:
    _load_all()
    return _BUILDERS.get(kind)


def section_names() -> List[str]:
    """Every section name that can be built."""
    _load_all()
    return sorted(_BUILDERS)
