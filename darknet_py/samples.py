"""Sample images that ship with a package on PyPI (no download, no copied files).

matplotlib (the ``examples`` extra: ``pip install -e '.[examples]'``) ships
``mpl-data/sample_data/grace_hopper.jpg``, a 512x600 portrait photo that
yolov3-tiny finds a person (and a tie) in. ``python -m darknet_py.samples``
prints its path, so a shell can hand it to ``darknet-py detect``::

    darknet-py detect cfg/yolov3-tiny.cfg yolov3-tiny "$(python -m darknet_py.samples)"

    >>> SAMPLES[0]
    'grace_hopper.jpg'
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

from .errors import DataError

#: sample images matplotlib ships in ``mpl-data/sample_data``
SAMPLES = ("grace_hopper.jpg", "logo2.png", "Minduka_Present_Blue_Pack.png")


def sample_path(name: str = "grace_hopper.jpg") -> Path:
    """Path of a sample image shipped by matplotlib; :class:`DataError` if unavailable."""
    try:
        from matplotlib import cbook
    except ImportError:
        raise DataError("sample images come with matplotlib: pip install matplotlib "
                        "(or darknet_py's 'examples' extra)") from None
    try:
        path = Path(cbook.get_sample_data(name, asfileobj=False))
    except (OSError, ValueError) as exc:
        raise DataError(f"matplotlib has no sample image {name!r}: {exc}") from None
    if not path.is_file():
        raise DataError(f"matplotlib has no sample image {name!r}", file=path)
    return path


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m darknet_py.samples [NAME]``: print the sample image's path."""
    args = sys.argv[1:] if argv is None else argv
    try:
        print(sample_path(*args[:1]))
    except DataError as exc:
        print(f"darknet-py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
