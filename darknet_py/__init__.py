"""darknet_py: Darknet .cfg networks and .weights files in PyTorch, faithfully.

    >>> import darknet_py
    >>> darknet_py.Darknet  # doctest: +ELLIPSIS
    <class 'darknet_py.model.Darknet'>

``load(cfg, weights)`` is the usual entry point.
"""
from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Optional

from .cfg import read_cfg
from .dialect import ALEXEYAB, PJREDDIE, Dialect, get_dialect
from .errors import CfgError, CfgWarning, DarknetError, DataError, WeightsError
from .limits import Limits
from .limits import current as _limits_current
from . import zoo

if TYPE_CHECKING:  # pragma: no cover
    from . import fast
    from .model import Darknet, detect_dialect

#: imported on first use, so that ``import darknet_py`` (and ``darknet-py --help``)
#: does not pay for ``import torch``
_LAZY = {"Darknet": ("model", "Darknet"), "detect_dialect": ("model", "detect_dialect"),
         "fast": ("fast", None)}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = importlib.import_module(f".{module}", __name__)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value
    return value

__version__ = "0.1.0"


def load(cfg: "os.PathLike[str] | str", weights: "os.PathLike[str] | str | None" = None, *,
         dialect: "str | Dialect" = "auto", upto: Optional[int] = None,
         warn_unused: bool = True, limits: "Optional[Limits]" = None,
         mmap: bool = False) -> Darknet:
    """Build the network of ``cfg`` and, if given, load ``weights`` into it.

    ``dialect="auto"`` takes the dialect the cfg needs (AlexeyAB sections, keys
    or activations); when the cfg reads the same in both, a weights header with
    revision > 0 (written by AlexeyAB's fork) selects AlexeyAB, else pjreddie.
    ``limits`` caps what the cfg may allocate (:mod:`darknet_py.limits`).
    ``weights`` may also name official weights (``"yolov4"``, ``"darknet53.conv.74"``):
    they are fetched once and verified (:mod:`darknet_py.zoo`); an official partial
    file sets ``upto`` itself.

    The graph is built without random init and the file is read once, the parameters
    being views of that one buffer. ``mmap=True`` maps the file copy-on-write instead
    of reading it: the load costs almost no time or memory, pages come in on first
    use and are shared with the page cache; the file must then not be rewritten in
    place or truncated while the model lives (:func:`darknet_py.weights.load_weights`).
    """
    prefetch = None
    if weights is not None:
        if upto is None:
            upto = zoo.default_upto(weights)
        weights = zoo.resolve(weights)
        if upto is None and not mmap:
            from .weights import Prefetch
            # read while the graph is built; a file larger than any allowed network is not
            cap = (limits or _limits_current()).max_parameters
            prefetch = Prefetch(weights, max_floats=cap)
    try:
        return _load(cfg, weights, prefetch, dialect=dialect, upto=upto,
                     warn_unused=warn_unused, limits=limits, mmap=mmap)
    finally:
        if prefetch is not None:
            prefetch.cancel()


def _load(cfg, weights, prefetch, *, dialect, upto, warn_unused, limits, mmap) -> Darknet:
    from .model import Darknet, detect_dialect
    from .weights import read_header
    sections = read_cfg(cfg)
    if str(dialect) == "auto":
        found = detect_dialect(sections)
        if found is None and weights is not None:
            found = ALEXEYAB if read_header(weights).revision > 0 else PJREDDIE
        dialect = found or PJREDDIE
    if weights is None:
        return Darknet(sections, dialect, warn_unused=warn_unused, limits=limits)
    from .layers.base import uninitialised
    from .weights import load_weights, uncovered_layers
    # no random init that the file overwrites: parameters stay torch.empty (untouched
    # memory) until the load rebinds them to the file's floats, read once
    with uninitialised():
        model = Darknet(sections, dialect, warn_unused=warn_unused, limits=limits)
    for index in uncovered_layers(model, upto):
        model.layers[index].reset_parameters()
    load_weights(model, weights, upto=upto, mmap=mmap, prefetch=prefetch)
    return model


__all__ = ["ALEXEYAB", "CfgError", "CfgWarning", "Darknet", "DarknetError", "DataError",
           "Dialect", "PJREDDIE", "WeightsError", "fast", "get_dialect", "load", "read_cfg", "zoo"]
