"""darknet_py: Darknet .cfg networks and .weights files in PyTorch, faithfully.

    >>> import darknet_py
    >>> darknet_py.Darknet  # doctest: +ELLIPSIS
    <class 'darknet_py.model.Darknet'>

``load(cfg, weights)`` is the usual entry point.
"""
from __future__ import annotations

import os
from typing import Optional

from .cfg import read_cfg
from .dialect import ALEXEYAB, PJREDDIE, Dialect, get_dialect
from .errors import CfgError, CfgWarning, DarknetError, DataError, WeightsError
from .limits import Limits
from .model import Darknet, detect_dialect
from . import zoo

__version__ = "0.1.0"


def load(cfg: "os.PathLike[str] | str", weights: "os.PathLike[str] | str | None" = None, *,
         dialect: "str | Dialect" = "auto", upto: Optional[int] = None,
         warn_unused: bool = True, limits: "Optional[Limits]" = None) -> Darknet:
    """Build the network of ``cfg`` and, if given, load ``weights`` into it.

    ``dialect="auto"`` takes the dialect the cfg needs (AlexeyAB sections, keys
    or activations); when the cfg reads the same in both, a weights header with
    revision > 0 (written by AlexeyAB's fork) selects AlexeyAB, else pjreddie.
    ``limits`` caps what the cfg may allocate (:mod:`darknet_py.limits`).
    ``weights`` may also name official weights (``"yolov4"``, ``"darknet53.conv.74"``):
    they are fetched once and verified (:mod:`darknet_py.zoo`); an official partial
    file sets ``upto`` itself.
    """
    from .weights import read_header
    if weights is not None:
        if upto is None:
            upto = zoo.default_upto(weights)
        weights = zoo.resolve(weights)
    sections = read_cfg(cfg)
    if str(dialect) == "auto":
        found = detect_dialect(sections)
        if found is None and weights is not None:
            found = ALEXEYAB if read_header(weights).revision > 0 else PJREDDIE
        dialect = found or PJREDDIE
    model = Darknet(sections, dialect, warn_unused=warn_unused, limits=limits)
    if weights is not None:
        model.load_weights(weights, upto=upto)
    return model


__all__ = ["ALEXEYAB", "CfgError", "CfgWarning", "Darknet", "DarknetError", "DataError",
           "Dialect", "PJREDDIE", "WeightsError", "get_dialect", "load", "read_cfg", "zoo"]
