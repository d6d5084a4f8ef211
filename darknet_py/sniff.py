"""What a file looks like, from its first bytes: for errors about arguments in the wrong order.

    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "x")
    >>> _ = open(path, "wb").write(bytes([0xFF, 0xD8, 0xFF, 0xE0]) + bytes(60))
    >>> looks_like(path)
    'a JPEG image'
    >>> _ = open(path, "w").write("# comment\\n[net]\\nwidth=416\\n")
    >>> looks_like(path)
    'a Darknet .cfg file'
    >>> expect(path, "weights")
    Traceback (most recent call last):
    ...
    darknet_py.errors.WeightsError: ...x: this is a Darknet .cfg file, not a .weights file: arguments in the wrong order, or one missing?
"""
from __future__ import annotations

import os
import struct
from typing import Dict, Optional, Type

from .errors import CfgError, DarknetError, DataError, WeightsError

CFG = "a Darknet .cfg file"
WEIGHTS = "a Darknet .weights file"
DATA = "a Darknet .data file"
FOLDER = "a folder"
_IMAGES = {b"\xff\xd8\xff": "a JPEG image", b"\x89PNG\r\n\x1a\n": "a PNG image",
           b"GIF8": "a GIF image", b"BM": "a BMP image"}
_DATA_KEYS = {"classes", "train", "valid", "names", "backup", "eval", "labels", "results",
              "map", "top", "test", "leaves", "tree"}

#: role -> (description of what belongs there, error class, kinds accepted)
ROLES: Dict[str, tuple] = {
    "cfg": ("a .cfg file", CfgError, {CFG}),
    "weights": ("a .weights file", WeightsError, {WEIGHTS}),
    "data": ("a .data file", DataError, {DATA}),
    "image": ("an image", DataError, set(_IMAGES.values()) | {FOLDER}),
}


def _text_kind(head: bytes) -> Optional[str]:
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        # a multi-byte character cut at the end of the sample is still text
        try:
            text = head[:-4].decode("utf-8-sig")
        except UnicodeDecodeError:
            return None
    if "\x00" in text:
        return None
    keys = set()
    for raw in text.splitlines():
        line = "".join(raw.split())
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            return CFG
        if "=" in line:
            keys.add(line.split("=", 1)[0])
    if keys and keys <= _DATA_KEYS:
        return DATA
    return None


def _weights_kind(head: bytes, size: int) -> Optional[str]:
    if len(head) < 20:
        return None
    major, minor, revision = struct.unpack_from("<iii", head)
    if not (0 <= major < 1000 and 0 <= minor < 1000 and 0 <= revision < 1000):
        return None
    header = 20 if major * 10 + minor >= 2 else 16
    return WEIGHTS if size > header and (size - header) % 4 == 0 else None


def looks_like(path: "os.PathLike[str] | str") -> Optional[str]:
    """'a JPEG image', 'a Darknet .cfg file', ... or None (unknown, missing, unreadable)."""
    try:
        if os.path.isdir(path):
            return FOLDER
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    for magic, kind in _IMAGES.items():
        if head.startswith(magic):
            return kind
    return _text_kind(head) or _weights_kind(head, size)


def mismatch(path: "os.PathLike[str] | str", role: str) -> Optional[str]:
    """'this is a JPEG image, not a .weights file' when ``path`` is recognisably
    something other than what ``role`` needs, else None."""
    wanted, _, accepted = ROLES[role]
    found = looks_like(path)
    if found is None or found in accepted:
        return None
    return f"this is {found}, not {wanted}"


def expect(path: "os.PathLike[str] | str", role: str, usage: Optional[str] = None) -> None:
    """Raise (the role's error class) when ``path`` is clearly not a ``role`` file."""
    problem = mismatch(path, role)
    if problem is None:
        return
    cls: Type[DarknetError] = ROLES[role][1]
    tail = ": arguments in the wrong order, or one missing?"
    if usage:
        tail += f" (usage: {usage})"
    raise cls(problem + tail, file=path)
