"""Cfg variants: the edits every Darknet user makes by hand, done on the text.

:func:`make_variant` changes classes (every head, and the channels of the layer
before each head by that head's own formula: ``[yolo]`` (classes+5)*len(mask),
``[Gaussian_yolo]`` (classes+9)*len(mask), ``[region]`` num*(coords+classes+1),
``[detection]`` side*side*((1+coords)*num+classes)), the network size, anchors,
batch/subdivisions and max_batches (with ``steps`` at 80% and 90% of it, as
AlexeyAB's README advises). Only the lines that change are rewritten (their
``key = value`` spacing kept); comments, blank lines, order and line endings
stay. The result is validated by building it before anything is written.

    >>> text = "[net]\\n# size\\nwidth = 416\\nheight=416\\nchannels=3\\n" \\
    ...        "[convolutional]\\nfilters=255\\nsize=1\\n" \\
    ...        "[yolo]\\nmask=0,1,2\\nanchors=1,2,3,4,5,6\\nclasses=80\\nnum=3\\n"
    >>> out, model = make_variant(text, classes=3, width=320)
    >>> print(out, end="")
    [net]
    # size
    width = 320
    height=416
    channels=3
    [convolutional]
    filters=24
    size=1
    [yolo]
    mask=0,1,2
    anchors=1,2,3,4,5,6
    classes=3
    num=3
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import CfgError
from ..io import atomic_write
from .reader import Entry, Section, _decode, parse_cfg

_KEY_LINE = re.compile(r"^(\s*[^=\s]+\s*=\s*)(.*?)(\s*)$")


class CfgText:
    """A cfg's lines plus its parsed sections, editable line by line."""

    def __init__(self, text: str, source: str = "<string>") -> None:
        self.source = source
        self.lines = text.splitlines(keepends=True)
        self.sections = parse_cfg(text, source)
        self._replace: Dict[int, str] = {}
        self._insert: Dict[int, List[str]] = {}
        ending = next((l[len(l.rstrip("\r\n")):] for l in self.lines if l.endswith("\n")), "\n")
        self.newline = ending or "\n"

    def set(self, section: Section, key: str, value: object) -> None:
        """Set ``key`` (its first occurrence, the one Darknet reads) or add it to the section."""
        value = str(value)
        entry = section.find(key)
        if entry is not None:
            raw = self.lines[entry.line - 1]
            body = raw.rstrip("\r\n")
            match = _KEY_LINE.match(body)
            prefix = match.group(1) if match else f"{key}="
            self._replace[entry.line] = prefix + value + raw[len(body):]
            entry.value = value
            return
        last = max([section.line] + [e.line for e in section.entries])
        self._insert.setdefault(last, []).append(f"{key}={value}")
        section.entries.append(Entry(key, value, 0))

    def text(self) -> str:
        out: List[str] = []
        for number, raw in enumerate(self.lines, 1):
            line = self._replace.get(number, raw)
            added = self._insert.get(number)
            if added and not line.endswith(("\n", "\r")):
                line += self.newline
            out.append(line)
            for extra in added or ():
                out.append(extra + self.newline)
        return "".join(out)


def _build(text: str, source: str, dialect):
    """Build on PyTorch's meta device: every check and shape, no memory, no weight init."""
    import torch
    from ..model import Darknet
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        return Darknet(parse_cfg(text, source), dialect, warn_unused=False)


def _anchor_text(anchors: Sequence[float]) -> str:
    return ", ".join(f"{a:g}" for a in anchors)


def make_variant(text: str, source: str = "<string>", *, classes: Optional[int] = None,
                 width: Optional[int] = None, height: Optional[int] = None,
                 anchors: Optional[Sequence[float]] = None, batch: Optional[int] = None,
                 subdivisions: Optional[int] = None, max_batches: Optional[int] = None,
                 dialect="auto") -> Tuple[str, "object"]:
    """The edited cfg text and the model built from it on the meta device (shapes only: the
    validation); see the module doc.

    ``anchors`` (w1, h1, w2, h2, ...) go into every head; their count must be the
    heads' ``num`` (masks index them). Errors are one-line :class:`CfgError`.
    """
    cfg = CfgText(text, source)
    model = _build(text, source, dialect)  # the input must build: its heads tell the formulas
    net = cfg.sections[0]
    for key, value in (("width", width), ("height", height), ("batch", batch),
                       ("subdivisions", subdivisions)):
        if value is not None:
            if value <= 0:
                raise CfgError(f"{key} must be > 0, got {value}", file=source)
            cfg.set(net, key, value)
    if max_batches is not None:
        if max_batches <= 0:
            raise CfgError(f"max_batches must be > 0, got {max_batches}", file=source)
        cfg.set(net, "max_batches", max_batches)
        if net.get("steps") is not None or net.get("policy") == "steps":
            cfg.set(net, "steps", f"{int(max_batches * 0.8)},{int(max_batches * 0.9)}")
            scales = [s for s in (net.get("scales") or "").split(",") if s]
            if len(scales) != 2:
                cfg.set(net, "scales", ",".join((scales + [".1", ".1"])[:2]))
    if anchors is not None:
        anchors = [float(a) for a in anchors]
        if not anchors or len(anchors) % 2:
            raise CfgError(f"anchors need w,h pairs; got {len(anchors)} numbers", file=source)
    heads = [model.layers[i] for i in model.heads]
    if (classes is not None or anchors is not None) and not heads:
        raise CfgError("the cfg has no detection head ([yolo], [region], [Gaussian_yolo], "
                       "[detection]) whose classes or anchors could change", file=source)
    for head in heads:
        sec = cfg.sections[head.index + 1]
        if anchors is not None:
            num = int(sec.get("num") or 1)
            if len(anchors) != 2 * num:
                raise CfgError(f"{len(anchors) // 2} anchors given but this head has num={num}",
                               file=source, line=sec.line, key="anchors")
            cfg.set(sec, "anchors", _anchor_text(anchors))
        if classes is None:
            continue
        if classes <= 0:
            raise CfgError(f"classes must be > 0, got {classes}", file=source)
        cfg.set(sec, "classes", classes)
        before = model.layers[head.index - 1] if head.index > 0 else None
        key = before.channels_key if before is not None else None
        if key is None:
            what = "nothing" if before is None else f"[{before.kind}]"
            raise CfgError(f"layer {head.index} [{head.kind}] follows {what}, whose channels "
                           f"cannot be set for {classes} classes", file=source, line=sec.line)
        cfg.set(cfg.sections[head.index], key, head.input_channels(classes))
    out = cfg.text()
    built = _build(out, source, model.dialect)
    return out, built


def write_variant(src: "os.PathLike[str] | str", dst: "os.PathLike[str] | str", **edits):
    """Read ``src``, apply :func:`make_variant`'s edits, write ``dst`` atomically; returns
    the model built from the result."""
    source = os.fspath(src)
    try:
        with open(source, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise CfgError(f"cannot read cfg: {exc.strerror or exc}", file=source) from None
    text, model = make_variant(_decode(data, source), source, **edits)
    atomic_write(dst, text.encode("utf-8"))
    return model
