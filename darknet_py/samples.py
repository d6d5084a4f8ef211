"""Sample images that ship with a package on PyPI (no download, no copied files).

matplotlib (the ``examples`` extra: ``pip install -e '.[examples]'``) ships
``mpl-data/sample_data/grace_hopper.jpg``, a 512x600 portrait photo that
yolov3-tiny finds a person (and a tie) in. ``python -m darknet_py.samples``
prints its path, so a shell can hand it to ``darknet-py detect``::

    darknet-py detect cfg/yolov3-tiny.cfg yolov3-tiny "$(python -m darknet_py.samples)" -thresh 0.2

(yolov3-tiny finds the tie at 46% and the person at 23%, so the default 0.5
threshold prints nothing for this photo.)

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


def _matplotlib(name: str) -> Optional[Path]:
    try:
        from matplotlib import cbook
    except ImportError:
        return None
    try:
        path = Path(cbook.get_sample_data(name, asfileobj=False))
    except (OSError, ValueError):
        return None
    return path if path.is_file() else None


def _skimage(name: str) -> Optional[Path]:
    try:
        import skimage
    except ImportError:
        return None
    path = Path(skimage.__file__).parent / "data" / name
    return path if path.is_file() else None


def sample_path(name: str = "grace_hopper.jpg") -> Path:
    """Path of a sample image shipped by matplotlib (``mpl-data/sample_data``) or, if
    installed, scikit-image (``skimage/data``: e.g. ``motorcycle_left.png``, ``coffee.png``);
    :class:`DataError` if neither has it."""
    for finder in (_matplotlib, _skimage):
        path = finder(name)
        if path is not None:
            return path
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise DataError(f"sample image {name!r} not found: sample images come with "
                        "matplotlib: pip install matplotlib (or darknet_py's 'examples' "
                        "extra)") from None
    raise DataError(f"no sample image {name!r} in matplotlib (or scikit-image) sample data")


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
