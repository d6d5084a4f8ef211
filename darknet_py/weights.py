"""Darknet ``.weights`` files: header + every layer's floats in cfg order.

Header (``parser.c:load_weights_upto``): int32 major, minor, revision, then
``seen`` as 64 bits when ``major*10+minor >= 2`` and both are < 1000, else as
32 bits. Then, for layer 0, 1, ... the floats each layer module lists in
:meth:`~darknet_py.layers.base.DarknetLayer.weight_tensors` (for a conv:
biases, [scales, rolling_mean, rolling_variance], weights), little-endian
float32. Which layer stores what lives in that layer's module; this file only
walks them.

Loading checks the file size against the network *before* touching any
parameter, reads the body with one ``readinto`` (or maps it, ``mmap=True``) and
makes the parameters views of it. Saving writes atomically and reproduces a loaded file byte for byte.

    >>> import io, struct
    >>> header = parse_header(struct.pack("<iiiQ", 0, 2, 0, 32013312), "x.weights")
    >>> header.seen, header.nbytes
    (32013312, 20)
"""
from __future__ import annotations

import mmap as _mmap
import os
import struct
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, List, Optional, Tuple

import numpy as np
import torch

from .errors import WeightsError
from .io import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from .model import Darknet


@dataclass(frozen=True)
class Header:
    major: int
    minor: int
    revision: int
    seen: int

    @property
    def wide_seen(self) -> bool:
        """True when ``seen`` is stored as 64 bits."""
        return (self.major * 10 + self.minor) >= 2 and self.major < 1000 and self.minor < 1000

    @property
    def transpose(self) -> bool:
        """Darknet transposes [connected] weights of files with major or minor > 1000."""
        return self.major > 1000 or self.minor > 1000

    @property
    def nbytes(self) -> int:
        return 12 + (8 if self.wide_seen else 4)

    def pack(self) -> bytes:
        fmt = "<iiiQ" if self.wide_seen else "<iiiI"
        return struct.pack(fmt, self.major, self.minor, self.revision, self.seen)

    def as_tuple(self) -> Tuple[int, int, int, int]:
        return (self.major, self.minor, self.revision, self.seen)


def parse_header(data: bytes, source: str) -> Header:
    if len(data) < 16:
        raise WeightsError(f"truncated header: {len(data)} bytes, a .weights file starts with "
                           f"at least 16", file=source)
    major, minor, revision = struct.unpack_from("<iii", data)
    probe = Header(major, minor, revision, 0)
    if probe.wide_seen:
        if len(data) < 20:
            raise WeightsError(f"truncated header: {len(data)} bytes, version {major}.{minor} "
                               f"needs 20", file=source)
        (seen,) = struct.unpack_from("<Q", data, 12)
    else:
        (seen,) = struct.unpack_from("<I", data, 12)
    return Header(major, minor, revision, seen)


def read_header(path: "os.PathLike[str] | str") -> Header:
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            return parse_header(handle.read(20), source)
    except OSError as exc:
        raise WeightsError(f"cannot read weights: {exc.strerror or exc}", file=source) from None


def _layer_tensors(model: "Darknet", upto: Optional[int]) -> Iterator[Tuple[int, List[torch.Tensor]]]:
    last = len(model.layers) if upto is None else min(upto, len(model.layers))
    for i in range(last):
        if model.common[i].dontload:
            continue
        yield i, model.layers[i].weight_tensors()


def _layout(model: "Darknet", upto: Optional[int]) -> List[Tuple[int, int, int]]:
    """(layer index, first float, float count) of every layer with weights."""
    out, offset = [], 0
    for i, tensors in _layer_tensors(model, upto):
        n = sum(t.numel() for t in tensors)
        if n:
            out.append((i, offset, n))
            offset += n
    return out


def _kind(model: "Darknet", index: int) -> str:
    return f"[{model.sections[index + 1].kind}]"


def _header_hint(header: Optional[Header], body_bytes: int, needed: int) -> str:
    """Why a file one float off might be: a header whose version gives ``seen`` the wrong width."""
    if header is None or not needed:
        return ""
    other = 4 if header.wide_seen else 8
    mine = header.nbytes - 12
    if body_bytes + mine - other == needed * 4:
        return (f" (the header's version {header.major}.{header.minor} stores 'seen' in {mine} "
                f"bytes; with {other} the size would match: was the version changed?)")
    return ""


def _size_error(model: "Darknet", source: str, layout, available: int,
                upto: Optional[int], header: Optional[Header] = None,
                stray: int = 0) -> WeightsError:
    needed = layout[-1][1] + layout[-1][2] if layout else 0
    hint = _header_hint(header, available * 4 + stray, needed)
    if stray:
        odd = (f"body of {available * 4 + stray} bytes is not a whole number of float32 "
               f"values")
        if available >= needed:
            return WeightsError(f"{odd}: {stray} stray byte(s) after float {available}{hint}",
                                file=source)
        for index, first, count in layout:
            if first + count > available:
                err = WeightsError(
                    f"{odd}; expected {needed} floats, the file ends inside layer {index} "
                    f"{_kind(model, index)} ({max(available - first, 0)} of its {count} floats "
                    f"and {stray} byte(s)){hint}", file=source)
                err.layer = index  # named in the text already
                return err
    if available < needed:
        for index, first, count in layout:
            if first + count > available:
                have = max(available - first, 0)
                if have == 0:
                    if first and not hint:
                        hint = (f"; the file ends exactly after layer {index - 1}: a partial "
                                f"file (like darknet53.conv.74) loads with upto={index}")
                    return WeightsError(
                        f"truncated: expected {needed} floats, found {available}; layer {index} "
                        f"{_kind(model, index)} needs {count} and none are left{hint}",
                        file=source, layer=index)
                return WeightsError(
                    f"truncated: expected {needed} floats, found {available}; the file ends "
                    f"inside layer {index} {_kind(model, index)} ({have} of its {count} "
                    f"floats){hint}",
                    file=source, layer=index)
    extra = available - needed
    scope = "the network" if upto is None else f"layers 0..{upto - 1}"
    hint = hint or "; is this the cfg these weights were trained with?"
    return WeightsError(f"oversized: expected {needed} floats for {scope}, found {available} "
                        f"({extra} extra){hint}", file=source)


def _check_file(model: "Darknet", handle, source: str,
                upto: Optional[int]) -> Tuple[Header, int]:
    """Header of the open file and the floats to read; raises unless its size fits ``model``."""
    size = os.fstat(handle.fileno()).st_size
    header = parse_header(handle.read(20), source)
    layout = _layout(model, upto)
    needed = layout[-1][1] + layout[-1][2] if layout else 0
    available, stray = divmod(size - header.nbytes, 4)
    if stray or available < needed or (upto is None and available != needed):
        raise _explained(_size_error(model, source, layout, available, upto, header, stray),
                         model, source)
    return header, needed


def _explained(err: WeightsError, model: "Darknet", source: str) -> WeightsError:
    """Add what may explain a size mismatch: the file is not weights at all (an image or a
    cfg given in the wrong place), or the cfg has keys Darknet ignored (a typo such as
    ``fliters`` leaves the default and changes the parameter count)."""
    from .sniff import mismatch
    extra = []
    wrong = mismatch(source, "weights")
    if wrong is not None:
        extra.append(f"{wrong}: arguments in the wrong order?")
    if model.unused_notes:
        shown = model.unused_notes[:3]
        more = len(model.unused_notes) - len(shown)
        extra.append("the cfg has keys Darknet ignores, which may explain it: "
                     + ", ".join(shown) + (f" and {more} more" if more > 0 else ""))
    if extra:
        err.message += "; " + "; ".join(extra)
        err.args = (str(err) + "; " + "; ".join(extra),)
    return err


def check_weights(model: "Darknet", path: "os.PathLike[str] | str",
                  upto: Optional[int] = None) -> Header:
    """Check that ``path`` fits ``model`` (header and size) without reading its floats.

    Works on a model built on the ``meta`` device (nothing allocated); raises the
    :class:`WeightsError` :func:`load_weights` would raise.
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            return _check_file(model, handle, source, upto)[0]
    except OSError as exc:
        raise WeightsError(f"cannot read weights: {exc.strerror or exc}", file=source) from None


def _buffer(floats: int) -> np.ndarray:
    """An uninitialised float32 buffer for ``floats`` values, faulted in up front.

    Linux: an anonymous mapping with ``MAP_POPULATE``, whose pages the kernel provides in
    one pass rather than one page fault at a time while the file is read into it
    (measured on this project's VM: 0.15 s vs 0.21 s median for yolov3's 236 MB, and
    steadier than numpy's transparent-huge-page buffer, 0.06-0.9 s). Elsewhere
    ``torch.empty``."""
    flags = getattr(_mmap, "MAP_POPULATE", None)
    if floats and flags is not None:
        try:
            area = _mmap.mmap(-1, floats * 4, flags=_mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS
                              | flags)
            return np.frombuffer(area, dtype=np.float32)
        except (OSError, ValueError):
            pass
    return torch.empty(floats, dtype=torch.float32).numpy()


class Prefetch:
    """A weights file's body read in a background thread while the graph is built.

    :func:`load_weights` takes the buffer once the file's size has been checked against
    the network, so nothing changes before that check; a file that does not fit stops
    the reader (after at most one more chunk) and the buffer is dropped. Reads are
    ``readinto`` calls of ``chunk`` bytes, which release the GIL: on a machine with a
    second core the read and the Python build overlap. Anything unexpected (the file
    cannot be opened, its header is bad) leaves the buffer unused and the plain read
    reports it. A body of more than ``max_floats`` floats (the parameter limit,
    :mod:`darknet_py.limits`) is not read ahead: no network built here could take it.
    """

    def __init__(self, path: "os.PathLike[str] | str", chunk: int = 1 << 25,
                 max_floats: Optional[int] = None) -> None:
        import threading
        self.source = os.fspath(path)
        self.body: Optional[np.ndarray] = None
        self._stop = threading.Event()
        self._done = 0
        self._thread: Optional[threading.Thread] = None
        try:
            handle = open(self.source, "rb", buffering=0)
        except OSError:
            return
        try:
            size = os.fstat(handle.fileno()).st_size
            header = parse_header(handle.read(20), self.source)
        except (OSError, WeightsError):
            handle.close()
            return
        floats = max(size - header.nbytes, 0) // 4
        if max_floats is not None and floats > max_floats:  # no network here could take it
            handle.close()
            return
        self._offset = header.nbytes

        def run() -> None:
            try:
                self.body = body = _buffer(floats)
                view = memoryview(body).cast("B")
                handle.seek(self._offset)
                while self._done < len(view) and not self._stop.is_set():
                    n = handle.readinto(view[self._done:self._done + chunk])
                    if not n:
                        break
                    self._done += n
            except (OSError, MemoryError):
                self._done = -1
            finally:
                handle.close()
        self._thread = threading.Thread(target=run, name="darknet_py weights", daemon=True)
        self._thread.start()

    def take(self, offset: int, floats: int) -> Optional[np.ndarray]:
        """The body of ``floats`` floats at byte ``offset``, when that is what was read."""
        if self._thread is None:
            return None
        self._thread.join()
        body, self.body = self.body, None
        if body is None or offset != self._offset or self._done != floats * 4 \
                or len(body) != floats:
            return None
        return body

    def cancel(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self.body = None


def load_weights(model: "Darknet", path: "os.PathLike[str] | str",
                 upto: Optional[int] = None, *, mmap: bool = False,
                 prefetch: Optional[Prefetch] = None) -> Header:
    """Load ``path`` into ``model`` (layers ``0..upto-1`` when given).

    The whole file must match the network exactly (with ``upto``, it may be
    longer). On any error no parameter is modified.

    The body is read once (one ``readinto``) into one float32 buffer; every CPU
    float32 parameter or buffer is then rebound to its slice of it (no copy), the
    others (another device or dtype, a transposed view) get a copy. So the load
    adds the file's size to the process once, and a model built with
    :func:`darknet_py.layers.base.uninitialised` holds no other copy.

    With ``mmap=True`` the body is not read: it is mapped copy-on-write
    (``numpy.memmap`` mode ``"c"``) and the parameters are views of the mapping.
    Pages are read from the file (or the page cache, shared with other processes)
    on first use, and a parameter changed in place (training) gets private copies
    of only the pages it writes; the file is never written. The mapping follows
    the file, so the file must not be rewritten in place or truncated while the
    model lives (Darknet's own ``save_weights`` does that; this package's writes a
    new file and renames it, which is safe).
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            try:
                header, needed = _check_file(model, handle, source, upto)
            except BaseException:
                if prefetch is not None:
                    prefetch.cancel()
                raise
            body = None if prefetch is None else prefetch.take(header.nbytes, needed)
            if body is not None:
                pass
            elif mmap and needed:
                try:
                    body = np.memmap(handle, dtype="<f4", mode="c", offset=header.nbytes,
                                     shape=(needed,))
                except (OSError, ValueError) as exc:  # ValueError: it shrank since checked
                    raise WeightsError(f"cannot map weights: "
                                       f"{getattr(exc, 'strerror', None) or exc}",
                                       file=source) from None
            else:
                handle.seek(header.nbytes)
                body = _buffer(needed)
                if handle.readinto(memoryview(body).cast("B")) != needed * 4:
                    raise WeightsError("file changed while reading", file=source)
    except OSError as exc:
        raise WeightsError(f"cannot read weights: {exc.strerror or exc}", file=source) from None
    if sys.byteorder != "little":  # pragma: no cover
        body = body.astype("=f4")
    flat = torch.from_numpy(body)
    _mark_transposed(model, header)
    owned = {id(t) for t in model.parameters()} | {id(t) for t in model.buffers()}
    offset = 0
    with torch.no_grad():
        for _, tensors in _layer_tensors(model, upto):
            for t in tensors:
                n = t.numel()
                src = flat[offset:offset + n].view(t.shape)
                if (id(t) in owned and t.dtype == torch.float32 and t.device.type == "cpu"
                        and t.layout == torch.strided):
                    t.data = src
                else:
                    t.copy_(src)
                offset += n
    model.header = header.as_tuple()
    return header


def uncovered_layers(model: "Darknet", upto: Optional[int] = None) -> List[int]:
    """Layers holding a parameter or persistent buffer that a load with ``upto`` does
    not fill (past ``upto``, ``dontload``, ``dontloadscales``)."""
    filled = set()
    for _, tensors in _layer_tensors(model, upto):
        for t in tensors:
            filled.add(id(t if t._base is None else t._base))
    return [i for i, layer in enumerate(model.layers)
            if any(id(t) not in filled for t in layer.state_dict(keep_vars=True).values())]


def _mark_transposed(model: "Darknet", header: Header) -> None:
    """[connected] weights are stored [inputs][outputs] in files with major or minor > 1000
    (``load_connected_weights``); such layers then hand out the transposed view."""
    for layer in model.layers:
        layer.set_weights_transposed(header.transpose)


def _chunks(model: "Darknet", upto: Optional[int]) -> Iterator[memoryview]:
    # a view of each CPU float32 tensor's memory: no copy (on a little-endian host)
    for _, tensors in _layer_tensors(model, upto):
        for t in tensors:
            array = t.detach().to("cpu", torch.float32).contiguous().numpy()
            yield memoryview(array.astype("<f4", copy=False)).cast("B")


def save_weights(model: "Darknet", path: "os.PathLike[str] | str",
                 upto: Optional[int] = None) -> None:
    """Write the model's .weights (layers ``0..upto-1`` when given), keeping its header."""
    header = Header(*model.header)
    _mark_transposed(model, header)

    def stream() -> Iterator["bytes | memoryview"]:
        yield header.pack()
        yield from _chunks(model, upto)
    atomic_write(path, stream())
