"""One error hierarchy for everything darknet_py reads.

Every message names the file and, where there is one, the line or layer and
the key, so a user can go straight to the offending spot::

    >>> raise CfgError("bad value", file="yolov3.cfg", line=12, key="filters")
    Traceback (most recent call last):
    ...
    darknet_py.errors.CfgError: yolov3.cfg:12: filters: bad value
"""
from __future__ import annotations

from typing import Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


class DarknetError(ValueError):
    """Base class: a problem with a file given to darknet_py (never a bug in it)."""

    def __init__(self, message: str, *, file: Optional[object] = None,
                 line: Optional[int] = None, layer: Optional[int] = None,
                 key: Optional[str] = None) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.line = line
        self.layer = layer
        self.key = key
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
        parts = [p for p in (where,
                             None if self.layer is None else f"layer {self.layer}",
                             self.key) if p]
        prefix = ": ".join(parts)
        text = " ".join(self.message.split("\n"))  # always one line
        return f"{prefix}: {text}" if prefix else text


class CfgError(DarknetError):
    """A .cfg (or .data/.names) file that Darknet's dialect cannot express."""


class WeightsError(DarknetError):
    """A .weights file that does not fit the network it is loaded into."""


class DataError(DarknetError):
    """An image, label or dataset file that cannot be used."""


class CfgWarning(UserWarning):
    """Something Darknet would accept but probably is not what you meant (unused keys)."""


class BridgeError(DarknetError):
    """A real Darknet that could not be built or run (darknet_py.darknet: build, harness)."""
