"""Images as Darknet sees them: decoding, ``resize_image`` and ``letterbox_image``.

Darknet's ``image`` is float32, channel-planar (C, H, W), RGB, values
``u8/255``. This module mirrors, one function each:

* ``image.c:load_image_color`` -> :func:`as_image` (decoding with Pillow where
  Darknet uses its bundled stb_image; see :func:`to_darknet_rgb` for how each
  pixel format is turned into what stb would hand Darknet),
* ``image.c:resize_image`` -> :func:`resize_image` (Darknet's own two-pass
  bilinear resize, bit for bit),
* ``image.c:letterbox_image`` -> :func:`letterbox_image`.

    >>> import numpy as np
    >>> im = np.ones((3, 4, 6), dtype=np.float32)
    >>> letterbox_image(im, 8, 8)[0, :, 0]   # 5 rows high ((4*8)/6), 1 row down ((8-5)/2)
    array([0.5, 1. , 1. , 1. , 1. , 1. , 0.5, 0.5], dtype=float32)

Where decoding differs from Darknet (documented, tested):

* JPEG: Pillow (libjpeg) and stb_image decode the same file to slightly
  different pixels (IDCT and chroma upsampling differ; up to 3/255 on
  ``dog.jpg``). Everything after decoding is bit-exact.
* EXIF orientation: Darknet ignores it (stb never reads EXIF), so by default
  darknet_py ignores it too; ``exif=True`` applies it instead.
* Formats stb cannot read (WebP, TIFF, ...) are decoded by Pillow all the same;
  Darknet would refuse them. CMYK JPEGs are converted by Pillow.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple, Union

import numpy as np

from .errors import DataError

#: what :func:`as_image` accepts: a path, a PIL image or an array (see there)
ImageLike = Union[str, "os.PathLike[str]", "PIL.Image.Image", np.ndarray]  # noqa: F821

_F32 = np.float32

#: an image decoder: None (Pillow) or a Darknet build (``DarknetBuild`` or its folder)
Decoder = Union[None, str, "os.PathLike[str]", "darknet_py.darknet.DarknetBuild"]  # noqa: F821


def load_image(path: "os.PathLike[str] | str", *, decoder: Decoder = None,
               exif: bool = False) -> np.ndarray:
    """Darknet's ``load_image_color(path, 0, 0)`` of a file: (3, H, W) float32 in [0, 1];
    ``decoder=build`` decodes with that Darknet build's own stb_image."""
    return to_float(decode_image(path, exif=exif, decoder=decoder))


# -- decoding --------------------------------------------------------------------------
def to_darknet_rgb(pil: "PIL.Image.Image") -> np.ndarray:  # noqa: F821
    """(3, H, W) uint8 RGB of a PIL image, as stb_image gives it with 3 channels asked.

    stb with ``req_comp=3`` replicates grey into R, G, B, drops alpha (no
    compositing), expands palettes, and reduces 16-bit samples to 8 bits by
    keeping the high byte (``v >> 8``).

    >>> from PIL import Image
    >>> grey16 = Image.fromarray(np.array([[0, 65535, 4660]], dtype=np.uint16))
    >>> to_darknet_rgb(grey16)[:, 0, :].tolist()
    [[0, 255, 18], [0, 255, 18], [0, 255, 18]]
    """
    mode = pil.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        grey = np.clip(np.asarray(pil).astype(np.int64) >> 8, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.broadcast_to(grey, (3,) + grey.shape))
    if mode == "F":
        grey = np.clip(np.asarray(pil, dtype=np.float64), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.broadcast_to(grey, (3,) + grey.shape))
    if mode != "RGB":
        pil = pil.convert("RGB")  # L/LA/P/PA/RGBA/1/CMYK/YCbCr: replicate, drop alpha
    return np.ascontiguousarray(np.asarray(pil, dtype=np.uint8).transpose(2, 0, 1))


def decode_image(path: "os.PathLike[str] | str", *, exif: bool = False,
                 decoder: "Decoder" = None) -> np.ndarray:
    """Decode an image file to (3, H, W) uint8 RGB; any failure is one-line :class:`DataError`.

    ``exif=True`` applies the EXIF orientation tag (Darknet does not).
    ``decoder``: None decodes with Pillow; a Darknet build
    (:class:`darknet_py.darknet.DarknetBuild` or its folder) decodes with that
    build's own stb_image (``load_image_color``, through the harness), pixel for
    pixel what that Darknet sees.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    name = os.fspath(path)
    if not os.path.exists(name):
        raise DataError("no such image file", file=name)
    if os.path.isdir(name):
        raise DataError("is a folder, not an image", file=name)
    if decoder is not None:
        if exif:
            raise DataError("exif=True cannot be applied by Darknet's decoder (stb_image "
                            "ignores EXIF); drop one of them", file=name)
        from .darknet.dump import decode_image as darknet_decode
        return darknet_decode(decoder, name)
    try:
        with Image.open(name) as pil:
            pil.load()
            if exif:
                pil = ImageOps.exif_transpose(pil)
            return to_darknet_rgb(pil)
    except UnidentifiedImageError:
        raise DataError("not an image Pillow can read", file=name) from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"image too large: {exc}", file=name) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt data
        raise DataError(f"cannot decode image: {exc}", file=name) from None


def to_float(u8: np.ndarray) -> np.ndarray:
    """Darknet's ``(float)data/255.`` for (C, H, W) uint8 pixels, as float32.

    >>> to_float(np.array([[[0, 1, 255]]], dtype=np.uint8))
    array([[[0.        , 0.00392157, 1.        ]]], dtype=float32)
    """
    return _U8_TO_FLOAT[u8]


#: every u8 value's ``(float)v/255.`` (division in double, rounded to float, as Darknet)
_U8_TO_FLOAT = (np.arange(256, dtype=np.float64) / 255.0).astype(_F32)


def as_image(image: ImageLike, *, exif: bool = False, decoder: "Decoder" = None) -> np.ndarray:
    """Darknet's ``load_image_color(path, 0, 0)``: (3, H, W) float32 in [0, 1].

    Accepts a path, a PIL image, or a numpy array: uint8 (H, W, 3) / (H, W) as
    PIL would hand it, or float (3, H, W) already in Darknet's layout. Paths
    are decoded by ``decoder`` (see :func:`decode_image`: a Darknet build gives
    its stb_image's exact pixels).

    >>> as_image(np.zeros((2, 5, 3), dtype=np.uint8)).shape
    (3, 2, 5)
    """
    if isinstance(image, (str, os.PathLike)):
        return to_float(decode_image(image, exif=exif, decoder=decoder))
    if isinstance(image, np.ndarray):
        return _array_image(image)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        from PIL import ImageOps
        return to_float(to_darknet_rgb(ImageOps.exif_transpose(image) if exif else image))
    raise TypeError(f"expected a path, PIL image or numpy array, got {type(image).__name__}")


def _array_image(a: np.ndarray) -> np.ndarray:
    if a.size == 0:
        raise DataError(f"empty image array of shape {a.shape}")
    if a.dtype == np.uint8:
        if a.ndim == 2:
            a = np.broadcast_to(a, (3,) + a.shape)
            return to_float(np.ascontiguousarray(a))
        if a.ndim == 3 and a.shape[2] in (1, 3, 4):
            rgb = a[:, :, :3] if a.shape[2] != 1 else np.repeat(a, 3, axis=2)
            return to_float(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
        raise DataError(f"uint8 image arrays must be (H, W), (H, W, 3) or (H, W, 4), "
                        f"got {a.shape}")
    if np.issubdtype(a.dtype, np.floating):
        if a.ndim == 3 and a.shape[0] == 3:
            return np.ascontiguousarray(a, dtype=_F32)
        raise DataError(f"float image arrays must be Darknet's (3, H, W) in [0, 1], got {a.shape}")
    raise DataError(f"unsupported image array dtype {a.dtype}")


# -- geometry --------------------------------------------------------------------------
def _axis_weights(old: int, new: int) -> Tuple[np.ndarray, np.ndarray]:
    """Source index and fraction per output position, as resize_image computes them.

    ``scale = (float)(old-1)/(new-1)``; ``s = (float)i * scale``; ``ix = (int)s``;
    ``d = s - ix`` -- all float32.
    """
    if new > 1:
        scale = _F32(old - 1) / _F32(new - 1)
    else:
        scale = _F32(0.0)  # Darknet divides by 0 here; its result only uses index 0
    s = np.arange(new, dtype=_F32) * scale
    ix = s.astype(np.int64)  # C (int) cast: truncation, s >= 0
    d = (s - ix.astype(_F32)).astype(_F32)
    return ix, d


def resize_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """Darknet's ``image.c:resize_image``: (C, H, W) float32 -> (C, h, w), bit for bit.

    Two passes, float32 throughout. Horizontally into a (C, H, w) part:
    ``(1-dx)*p[ix] + dx*p[ix+1]``, the last column (or all columns of a 1-wide
    image) copied from the source's last column. Then vertically:
    ``(1-dy)*part[iy]``, to which ``dy*part[iy+1]`` is added except on the
    last output row (or when the source is 1 row high) -- so the last row keeps
    only ``(1-dy)*part[iy]``, exactly as Darknet does.

    >>> im = np.array([[[0., 1.], [1., 0.]]], dtype=np.float32)
    >>> resize_image(im, 3, 3)
    array([[[0. , 0.5, 1. ],
            [0.5, 0.5, 0.5],
            [1. , 0.5, 0. ]]], dtype=float32)
    """
    if im.ndim != 3:
        raise ValueError(f"expected a (C, H, W) image, got shape {im.shape}")
    c, hh, ww = im.shape
    if w <= 0 or h <= 0:
        return np.zeros((c, max(h, 0), max(w, 0)), dtype=_F32)
    im = np.ascontiguousarray(im, dtype=_F32)
    # pass 1: columns
    ix, dx = _axis_weights(ww, w)
    if ww == 1:
        part = np.repeat(im[:, :, -1:], w, axis=2)
    else:
        ix = np.minimum(ix, ww - 1)
        ix1 = np.minimum(ix + 1, ww - 1)
        one = _F32(1.0)
        part = (one - dx) * im[:, :, ix] + dx * im[:, :, ix1]
        part[:, :, w - 1] = im[:, :, ww - 1]
    part = part.astype(_F32, copy=False)
    # pass 2: rows
    iy, dy = _axis_weights(hh, h)
    iy = np.minimum(iy, hh - 1)
    one = _F32(1.0)
    out = ((one - dy)[:, None] * part[:, iy, :]).astype(_F32, copy=False)
    if hh > 1 and h > 1:
        rows = slice(0, h - 1)  # every row but the last gets the second term
        iy1 = np.minimum(iy[rows] + 1, hh - 1)
        out[:, rows, :] += dy[rows][:, None] * part[:, iy1, :]
    return out


def letterbox_size(im_w: int, im_h: int, net_w: int, net_h: int) -> Tuple[int, int]:
    """Darknet's integer (new_w, new_h) of the image inside a letterboxed net_w x net_h.

    Also ``yolo_layer.c:correct_yolo_boxes``'s new_w/new_h (same comparison).

    >>> letterbox_size(768, 576, 416, 416), letterbox_size(768, 576, 416, 256)
    ((416, 312), (341, 256))
    """
    if _F32(net_w) / _F32(im_w) < _F32(net_h) / _F32(im_h):
        return net_w, (im_h * net_w) // im_w
    return (im_w * net_h) // im_h, net_h


def letterbox_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """Darknet's ``image.c:letterbox_image``: keep aspect, fill 0.5, centre with integer offsets.

    >>> letterbox_image(np.zeros((3, 2, 4), dtype=np.float32), 4, 4)[0]
    array([[0.5, 0.5, 0.5, 0.5],
           [0. , 0. , 0. , 0. ],
           [0. , 0. , 0. , 0. ],
           [0.5, 0.5, 0.5, 0.5]], dtype=float32)
    """
    c, hh, ww = im.shape
    new_w, new_h = letterbox_size(ww, hh, w, h)
    boxed = np.full((c, h, w), 0.5, dtype=_F32)
    if new_w <= 0 or new_h <= 0:
        return boxed  # Darknet's resized image is empty: nothing is embedded
    resized = resize_image(im, new_w, new_h)
    dx, dy = (w - new_w) // 2, (h - new_h) // 2
    # embed_image: set_pixel ignores what falls outside
    x0, y0 = max(dx, 0), max(dy, 0)
    x1, y1 = min(dx + new_w, w), min(dy + new_h, h)
    boxed[:, y0:y1, x0:x1] = resized[:, y0 - dy:y1 - dy, x0 - dx:x1 - dx]
    return boxed


def image_size(path: "os.PathLike[str] | str") -> Tuple[int, int]:
    """(width, height) of an image file without decoding its pixels."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as pil:
            return pil.size
    except FileNotFoundError:
        raise DataError("no such image file", file=path) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"cannot read image: {exc}", file=path) from None


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tga", ".ppm", ".pgm", ".pnm",
                  ".psd", ".hdr", ".pic", ".webp", ".tif", ".tiff")


def is_image_name(path: "os.PathLike[str] | str") -> bool:
    """Whether a file name looks like an image (by its suffix).

    >>> is_image_name("a/dog.JPG"), is_image_name("list.txt")
    (True, False)
    """
    return Path(path).suffix.lower() in IMAGE_SUFFIXES
