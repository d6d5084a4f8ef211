"""Checkpoints as ``detector train`` writes them into the ``.data`` file's ``backup``.

Files are Darknet ``.weights`` (:func:`darknet_py.weights.save_weights`, written
to a temporary file and renamed, so a killed run never leaves half a file),
headed ``major=0 minor=2 revision=0`` (pjreddie) or ``revision=5`` (AlexeyAB)
with ``seen``, the images trained on, as each fork's ``save_weights``.

Cadence, from each fork's ``examples/detector.c`` / ``src/detector.c``
``train_detector`` (``i`` = iteration after the update, ``base`` = cfg name
without folder and extension):

pjreddie
    ``base.backup`` when ``i % 100 == 0``; ``base_i.weights`` when
    ``i % 10000 == 0 or (i < 1000 and i % 100 == 0)``; ``base_final.weights`` at the end.
AlexeyAB
    ``base_i.weights`` when ``i >= last_numbered + saveweights or i % saveweights == 0``
    (``saveweights=`` in the .data file, default 1000 when max_batches < 10000 else
    10000); ``base_last.weights`` when ``saveweights > savelast`` and
    ``i >= last_last + savelast or (i % savelast == 0 and i > 1)`` (``savelast=``,
    default 100), both counters starting at the iteration the run starts from;
    ``base_final.weights`` at the end.

Resuming: pass the ``.backup`` / ``_last.weights`` file as the weights; training
continues at its ``seen`` (``-clear`` starts the count at 0). A file shorter than
the network that ends on a layer boundary (``darknet53.conv.74``,
``yolov4.conv.137``) loads the layers it holds, as Darknet's fread-until-EOF does.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional

from ..errors import DataError, WeightsError
from ..weights import _layout, check_weights, read_header

if TYPE_CHECKING:  # pragma: no cover
    from ..model import Darknet


def basecfg(cfg: "os.PathLike[str] | str") -> str:
    """utils.c basecfg: the file name after the last '/', cut at its first '.'."""
    name = os.fspath(cfg).rsplit("/", 1)[-1]
    return name.split(".", 1)[0]


@dataclass
class Cadence:
    """Which checkpoint files each iteration writes, by fork."""
    dialect: str
    backup: str
    base: str
    max_batches: int
    start: int = 0
    saveweights: Optional[int] = None
    savelast: int = 100
    _iter_save: int = field(init=False, default=0)
    _iter_save_last: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.saveweights is None:
            self.saveweights = 1000 if self.max_batches < 10000 else 10000
        self._iter_save = self._iter_save_last = self.start

    @classmethod
    def from_data(cls, dialect: str, backup: str, cfg: str, max_batches: int, start: int,
                  options: Dict[str, str], source: Optional[str] = None) -> "Cadence":
        def num(key: str) -> Optional[int]:
            if key not in options:
                return None
            try:
                value = int(options[key])
            except ValueError:
                value = 0
            if value < 1:
                raise DataError(f"{key}={options[key]!r} must be a positive integer "
                                f"(iterations)", file=source, key=key)
            return value
        savelast = num("savelast")
        return cls(dialect, backup, basecfg(cfg), max_batches, start,
                   saveweights=num("saveweights"),
                   savelast=100 if savelast is None else savelast)

    def path(self, suffix: str) -> str:
        return os.path.join(self.backup, self.base + suffix)

    @property
    def resume_name(self) -> str:
        """The rolling checkpoint of this fork (what a killed run resumes from)."""
        return self.path(".backup" if self.dialect == "pjreddie" else "_last.weights")

    def due(self, i: int) -> List[str]:
        """Paths to write after iteration ``i`` (updates the AlexeyAB counters)."""
        if self.dialect == "pjreddie":
            out = []
            if i % 100 == 0:
                out.append(self.path(".backup"))
            if i % 10000 == 0 or (i < 1000 and i % 100 == 0):
                out.append(self.path(f"_{i}.weights"))
            return out
        out = []
        every, last = int(self.saveweights), int(self.savelast)
        if i >= self._iter_save + every or i % every == 0:
            self._iter_save = i
            out.append(self.path(f"_{i}.weights"))
        if every > last and (i >= self._iter_save_last + last or (i % last == 0 and i > 1)):
            self._iter_save_last = i
            out.append(self.path("_last.weights"))
        return out

    def final(self) -> str:
        return self.path("_final.weights")


@dataclass
class ClassifierCadence:
    """Which checkpoint files ``classifier train`` writes, by fork (``examples/classifier.c``
    / ``src/classifier.c`` ``train_classifier``; ``i`` = iteration after the update, ``seen``
    = images trained on, ``N`` = images in the train list).

    pjreddie
        ``base_E.weights`` when the epoch ``E = seen / N`` passes the last one (at first the
        epoch of the weights it starts from); ``base.backup`` when ``i % 1000 == 0``;
        ``base.weights`` at the end.
    AlexeyAB
        ``base_i.weights`` when ``i >= last_numbered + 1000``; ``base_last.weights`` when
        ``i >= last_last + 100`` (both counters start at the iteration the run starts
        from); ``base_final.weights`` at the end.
    """
    dialect: str
    backup: str
    base: str
    images: int
    start: int = 0
    start_seen: int = 0
    _epoch: int = field(init=False, default=0)
    _iter_save: int = field(init=False, default=0)
    _iter_save_last: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._epoch = self.start_seen // max(self.images, 1)
        self._iter_save = self._iter_save_last = self.start

    def path(self, suffix: str) -> str:
        return os.path.join(self.backup, self.base + suffix)

    @property
    def resume_name(self) -> str:
        return self.path(".backup" if self.dialect == "pjreddie" else "_last.weights")

    def due(self, i: int, seen: int) -> List[str]:
        out = []
        if self.dialect == "pjreddie":
            epoch = seen // max(self.images, 1)
            if epoch > self._epoch:
                self._epoch = epoch
                out.append(self.path(f"_{epoch}.weights"))
            if i % 1000 == 0:
                out.append(self.path(".backup"))
            return out
        if i >= self._iter_save + 1000:
            self._iter_save = i
            out.append(self.path(f"_{i}.weights"))
        if i >= self._iter_save_last + 100:
            self._iter_save_last = i
            out.append(self.path("_last.weights"))
        return out

    def final(self) -> str:
        return self.path(".weights" if self.dialect == "pjreddie" else "_final.weights")


@dataclass
class MapCadence:
    """When ``detector train -map`` computes the mAP (AlexeyAB's ``train_detector``).

    After iteration ``i``: when ``i >= max(last + every, burn_in)`` or ``i == max_batches``,
    where ``every = max(mAP_epochs * train_images // batch, 100)`` (C int arithmetic;
    ``batch`` is the cfg's, mini-batch x subdivisions; ``-mAP_epochs`` defaults to 4) and
    ``last`` is the iteration of the previous mAP, at first the one the run starts from.
    Each mAP >= the best so far (the best starts at -1) writes ``base_best.weights``.
    """
    every: int
    burn_in: int
    max_batches: int
    last: int = 0
    best: float = -1.0

    @classmethod
    def for_run(cls, epochs: int, images: int, batch: int, burn_in: int, max_batches: int,
                start: int) -> "MapCadence":
        return cls(max(epochs * images // max(batch, 1), 100), burn_in, max_batches, start)

    @property
    def next_at(self) -> int:
        return max(self.last + self.every, self.burn_in)

    def due(self, i: int) -> bool:
        """Whether iteration ``i`` computes the mAP (records it as the last one)."""
        if i >= self.next_at or i == self.max_batches:
            self.last = i
            return True
        return False

    def is_best(self, value: float) -> bool:
        """``mean_average_precision >= best_map`` (both C floats); updates the best."""
        import numpy as np
        value = float(np.float32(value))
        if value >= self.best:
            self.best = value
            return True
        return False


def save_checkpoint(model: "Darknet", path: str, seen: int) -> None:
    """Write ``path`` as this fork's save_weights does (atomic; header 0.2.rev, ``seen``)."""
    from ..weights import save_weights
    model.header = (0, 2, model.dialect.weights_revision, int(seen))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_weights(model, path)


def load_for_training(model: "Darknet", path: "os.PathLike[str] | str",
                      clear: bool = False) -> Dict[str, object]:
    """Load ``path`` into ``model`` to train from it; returns what was loaded.

    A complete file loads whole; a shorter one that ends exactly after layer ``k-1``
    loads layers ``0..k-1`` (the rest keep their initialisation). ``seen`` comes from
    the header unless ``clear``.
    """
    source = os.fspath(path)
    header = read_header(source)
    size = os.path.getsize(source)
    floats = (size - header.nbytes) // 4
    layout = _layout(model, None)
    needed = layout[-1][1] + layout[-1][2] if layout else 0
    upto = None
    if floats < needed:
        ends = {first + count: index + 1 for index, first, count in layout}
        upto = ends.get(floats)
        if upto is None:
            check_weights(model, source)  # raises the precise truncation error
            raise WeightsError("truncated inside a layer", file=source)  # pragma: no cover
    model.load_weights(source, upto=upto)
    seen = 0 if clear else int(header.seen)
    model.header = (0, 2, model.dialect.weights_revision, seen)
    return {"path": source, "seen": seen, "upto": upto, "header_seen": int(header.seen)}


__all__ = ["Cadence", "ClassifierCadence", "MapCadence", "basecfg", "load_for_training", "save_checkpoint"]
