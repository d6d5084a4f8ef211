"""Training data as Darknet's ``detector train`` reads it.

* ``.data`` files (``option_list.c:read_data_cfg``): :func:`read_data` gives
  ``classes``, ``train``, ``valid``, ``names``, ``backup`` with Darknet's defaults.
* image lists (``get_paths``): one path a line, :func:`read_image_list`.
* labels: each image's ``.txt`` by the fork's path rule (:func:`label_path`:
  pjreddie ``fill_truth_detection``'s find_replace chain, AlexeyAB's
  ``replace_image_to_label``), ``class x y w h`` rows (:func:`read_label_file`).
* truths: up to the head's ``max`` boxes per image, 5 floats a box for pjreddie
  (x, y, w, h, class), 6 for AlexeyAB (+ track id), zero rows end the list.
* augmentation (:class:`Augment`, from the cfg): pjreddie ``load_data_detection``
  (jitter on the aspect ratio, ``place_image`` on a grey canvas, HSV distortion,
  flip), AlexeyAB ``load_data_detection`` (jitter crop of the four sides,
  ``resize``, ``letter_box``, flip, HSV, ``mosaic``), or none at all
  (``augment=False``: the image resized to the network, no flip, no colour
  change -- for side-by-side runs).
* a :class:`torch.utils.data.DataLoader` (:func:`make_loader`) whose batch
  sampler draws ``rand() % m`` images as Darknet's ``get_random_paths`` and
  carries the input size of each iteration, so ``random=1`` resizing reaches the
  worker processes.

Bad inputs never stop a run: a missing or unreadable image, a missing label
file, a malformed or out-of-range row are counted, reported once per file
(:class:`DataProblems`) and skipped (another image is drawn in place of a
skipped one); an empty label file is a negative image, as in Darknet.
Geometry and truth arithmetic follow the C in float32; the random streams are
numpy's, not glibc ``rand()``.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..dialect import Dialect, get_dialect
from ..errors import DataError
from ..image import as_image, resize_image

F32 = np.float32
Problem = Tuple[str, str, str]  # (kind, file, detail)


# -- .data and list files ------------------------------------------------------------
@dataclass
class DataConfig:
    """A ``.data`` file: Darknet's keys with ``detector train``'s defaults."""
    path: str
    classes: int
    train: str
    valid: str
    names: str
    backup: str
    options: Dict[str, str] = field(default_factory=dict)

    def resolve(self, value: str) -> str:
        """A path from the file: as given when it exists (Darknet reads it relative to the
        current folder), else relative to the .data file's folder."""
        if os.path.isabs(value) or os.path.exists(value):
            return value
        beside = os.path.join(os.path.dirname(os.path.abspath(self.path)), value)
        return beside if os.path.exists(beside) else value


def read_data(path: "os.PathLike[str] | str") -> DataConfig:
    """Parse a ``.data`` file like ``read_data_cfg`` (whitespace stripped, ``#``/``;`` comments).

    Defaults are train_detector's: ``train=data/train.list`` (AlexeyAB
    ``data/train.txt``), ``valid`` = train, ``names=data/names.list``,
    ``backup=/backup/``; ``classes`` defaults to 20 (``option_find_int``).
    """
    from ..detect import read_data_cfg
    name = os.fspath(path)
    opts = read_data_cfg(name)
    try:
        classes = int(opts.get("classes", "20"))
    except ValueError:
        raise DataError(f"classes={opts['classes']!r} is not an integer", file=name,
                        key="classes") from None
    train = opts.get("train", "data/train.list")
    return DataConfig(path=name, classes=classes, train=train, valid=opts.get("valid", train),
                      names=opts.get("names", "data/names.list"),
                      backup=opts.get("backup", "/backup/"), options=opts)


def read_image_list(path: "os.PathLike[str] | str") -> List[str]:
    """Darknet's ``get_paths``: one image path a line (line ends and surrounding blanks
    dropped, empty lines skipped). A missing or empty list is a :class:`DataError`."""
    name = os.fspath(path)
    try:
        with open(name, "r", encoding="utf-8", errors="replace") as handle:
            paths = [line.strip() for line in handle.read().splitlines()]
    except FileNotFoundError:
        raise DataError("no such image list file (the .data file's train=/valid=)",
                        file=name) from None
    except OSError as exc:
        raise DataError(f"cannot read image list: {exc.strerror or exc}", file=name) from None
    paths = [p for p in paths if p]
    if not paths:
        raise DataError("the image list is empty", file=name)
    return paths


def _find_replace(text: str, orig: str, rep: str) -> str:
    """utils.c find_replace: the first occurrence only."""
    return text.replace(orig, rep, 1)


def _replace_extension(text: str, orig: str, rep: str) -> str:
    """AlexeyAB find_replace_extension: only when ``orig`` ends the string."""
    return text[:-len(orig)] + rep if text.endswith(orig) else text


_PJ_CHAIN = (("images", "labels"), ("JPEGImages", "labels"), ("raw", "labels"),
             (".jpg", ".txt"), (".png", ".txt"), (".JPG", ".txt"), (".JPEG", ".txt"))
_AB_DIRS = (("/images/train2017/", "/labels/train2017/"), ("/images/val2017/", "/labels/val2017/"),
            ("/JPEGImages/", "/labels/"),
            ("\\images\\train2017\\", "\\labels\\train2017\\"),
            ("\\images\\val2017\\", "\\labels\\val2017\\"),
            ("\\images\\train2014\\", "\\labels\\train2014\\"),
            ("\\images\\val2014\\", "\\labels\\val2014\\"),
            ("/images/train2014/", "/labels/train2014/"), ("/images/val2014/", "/labels/val2014/"),
            ("\\JPEGImages\\", "\\labels\\"))
_AB_EXTS = (".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".bmp", ".BMP", ".ppm", ".PPM",
            ".tiff", ".TIFF")


def label_path(image_path: str, dialect: "str | Dialect") -> str:
    """The label file Darknet reads for ``image_path``.

    pjreddie (data.c fill_truth_detection): first "images" -> "labels", then
    "JPEGImages" -> "labels", "raw" -> "labels", then .jpg/.png/.JPG/.JPEG -> .txt,
    each the first occurrence anywhere in the path. AlexeyAB
    (utils.c replace_image_to_label): only whole folder names of COCO/VOC layouts
    (``/images/train2017/``..., ``/JPEGImages/``), surrounding blanks trimmed, and the
    extension replaced only at the end (12 image extensions).

    >>> label_path("data/images/a.jpg", "pjreddie"), label_path("data/images/a.jpg", "alexeyab")
    ('data/labels/a.txt', 'data/images/a.txt')
    """
    if get_dialect(dialect).name == "pjreddie":
        out = image_path
        for orig, rep in _PJ_CHAIN:
            out = _find_replace(out, orig, rep)
        return out
    out = image_path
    for orig, rep in _AB_DIRS:
        out = _find_replace(out, orig, rep)
    out = out.strip(" \t")
    for ext in _AB_EXTS:
        out = _replace_extension(out, ext, ".txt")
    return out


def custom_hash(text: str) -> int:
    """AlexeyAB utils.c custom_hash (djb2 over the bytes, unsigned long arithmetic)."""
    h = 5381
    for byte in text.encode("utf-8", "surrogateescape"):
        h = (h * 33 + (byte if byte < 128 else byte - 256)) & 0xFFFFFFFFFFFFFFFF
    return h


def read_label_file(path: str, classes: int) -> Tuple[Optional[np.ndarray], List[Problem]]:
    """Rows ``class x y w h`` of a label file as an (n, 5) float64 array [id, x, y, w, h].

    Returns (None, [problem]) when the file is missing or unreadable. A row that is
    not five numbers, has a class outside 0..classes-1, a non-finite value, x or y
    outside [0, 1], or w or h outside (0, 1] is skipped and reported (Darknet's
    fscanf would stop reading the file at a malformed row; AlexeyAB's
    fill_truth_detection drops out-of-range classes and centres).
    """
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return None, [("missing label file", path, "")]
    except OSError as exc:
        return None, [("unreadable label file", path, str(exc.strerror or exc))]
    rows, problems = [], []
    for number, raw in enumerate(lines, 1):
        parts = raw.split()
        if not parts:
            continue
        try:
            if len(parts) != 5:
                raise ValueError
            cid = int(parts[0])
            x, y, w, h = (float(p) for p in parts[1:])
        except ValueError:
            problems.append(("malformed label row", path, f"line {number}: {raw.strip()!r} "
                             f"(expected 'class x y w h')"))
            continue
        if not 0 <= cid < classes:
            problems.append(("label row out of range", path, f"line {number}: class {cid} "
                             f"not in 0..{classes - 1}"))
            continue
        if not all(math.isfinite(v) for v in (x, y, w, h)) or not (
                0 <= x <= 1 and 0 <= y <= 1 and 0 < w <= 1 and 0 < h <= 1) or x == y == 0:
            problems.append(("label row out of range", path, f"line {number}: x y w h = "
                             f"{x:g} {y:g} {w:g} {h:g} (relative values: x, y in [0, 1], "
                             f"w, h in (0, 1], not x = y = 0)"))
            continue
        rows.append((cid, x, y, w, h))
    if not rows and not problems:
        problems.append(("empty label file (used as a negative image)", path, ""))
    return np.array(rows, dtype=np.float64).reshape(-1, 5), problems


# -- augmentation (numpy, float32 (C, H, W) images) ------------------------------------
@dataclass
class Augment:
    """What the cfg asks of ``load_data_detection`` (the last detection head's jitter,
    resize and max; [net] hue/saturation/exposure/flip/letter_box/mosaic)."""
    dialect: str
    classes: int
    max_boxes: int
    jitter: float = 0.0
    hue: float = 0.0
    saturation: float = 1.0
    exposure: float = 1.0
    flip: bool = True
    resize: float = 1.0
    letter_box: bool = False
    mosaic: bool = False
    mosaic_bound: bool = False
    enabled: bool = True
    #: AlexeyAB: follow its OpenCV build (crop filled with the mean colour outside the
    #: image, colour unchanged when the draw is neutral; needed for mosaic) or, False, its
    #: build without OpenCV (edge pixels repeated, distort_image always applied)
    opencv: bool = True

    @property
    def truth_size(self) -> int:
        return 5 if self.dialect == "pjreddie" else 6

    @classmethod
    def from_model(cls, model, augment: bool = True) -> "Augment":
        """From a built :class:`~darknet_py.model.Darknet`: pjreddie reads the last
        layer (``net->layers[net->n-1]``), AlexeyAB the last detection layer."""
        if not model.heads:
            raise DataError("the network has no detection layer ([yolo]/[region]) to train",
                            file=model.source)
        dialect = model.dialect.name
        head = model.layers[len(model.layers) - 1 if dialect == "pjreddie" else model.heads[-1]]
        if not head.decodes:  # the detection layers: their options carry jitter/max/resize
            raise DataError(f"the last layer [{head.kind}] is not a detection layer Darknet's "
                            f"train_detector reads jitter/max from", file=model.source)
        opts = head.opts
        n = model.net
        ab = dialect == "alexeyab"
        mixup = 3 if (ab and n.mosaic) else 0
        return cls(dialect=dialect, classes=int(opts.classes), max_boxes=int(opts.max),
                   jitter=float(opts.jitter), hue=float(n.hue), saturation=float(n.saturation),
                   exposure=float(n.exposure), flip=bool(n.flip) if ab else True,
                   resize=float(opts.resize), letter_box=bool(n.letter_box) and ab,
                   mosaic=mixup == 3 and not n.cutmix, mosaic_bound=bool(n.mosaic_bound),
                   enabled=augment)


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """utils.c rand_uniform (swaps reversed bounds)."""
    if hi < lo:
        lo, hi = hi, lo
    return float(F32(rng.random()) * F32(hi - lo) + F32(lo))


def _rand_scale(rng: np.random.Generator, s: float) -> float:
    scale = _uniform(rng, 1.0, s)
    return scale if rng.integers(2) else float(F32(1.0) / F32(scale))


def rgb_to_hsv(im: np.ndarray) -> np.ndarray:
    """image.c rgb_to_hsv on a (3, H, W) float32 image (h in [0, 1))."""
    r, g, b = im[0], im[1], im[2]
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    delta = mx - mn
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(mx == 0, F32(0), delta / mx)
        h = np.where(r == mx, (g - b) / delta,
                     np.where(g == mx, F32(2) + (b - r) / delta, F32(4) + (r - g) / delta))
    h = np.where(mx == 0, F32(0), h)
    h = np.where(h < 0, h + F32(6), h)
    h = np.where(mx == 0, F32(0), h / F32(6))
    h = np.nan_to_num(h, nan=0.0)  # delta == 0 with max > 0: C gives nan, grey pixels
    return np.stack([h, s, mx]).astype(F32)


def hsv_to_rgb(im: np.ndarray) -> np.ndarray:
    """image.c hsv_to_rgb."""
    h, s, v = F32(6) * im[0], im[1], im[2]
    index = np.floor(h).astype(np.int64)
    f = h - index
    p = v * (1 - s)
    q = v * (1 - s * f)
    t = v * (1 - s * (1 - f))
    sector = np.clip(index, 0, 5)  # 5 and above: the C's final else
    r = np.choose(sector, [v, q, p, p, t, v])
    g = np.choose(sector, [t, v, v, q, p, p])
    b = np.choose(sector, [p, p, t, v, v, q])
    grey = s == 0
    out = np.stack([np.where(grey, v, r), np.where(grey, v, g), np.where(grey, v, b)])
    return out.astype(F32)


def distort_image(im: np.ndarray, hue: float, sat: float, val: float) -> np.ndarray:
    """image.c distort_image: scale S and V, shift H (wrapping), back to RGB, clip to [0, 1]."""
    if im.shape[0] < 3:
        return np.clip(im * F32(val), 0, 1).astype(F32)
    hsv = rgb_to_hsv(im)
    hsv[1] *= F32(sat)
    hsv[2] *= F32(val)
    hh = hsv[0] + F32(hue)
    hh = np.where(hh > 1, hh - 1, hh)
    hsv[0] = np.where(hh < 0, hh + 1, hh)
    return np.clip(hsv_to_rgb(hsv), 0, 1).astype(F32)


def place_image(im: np.ndarray, w: int, h: int, dx: int, dy: int, canvas: np.ndarray) -> None:
    """image.c place_image: bilinear (zero outside the source) into canvas at (dx, dy)."""
    c, ih, iw = im.shape
    if w <= 0 or h <= 0:
        return
    # As Darknet's -Ofast build computes it (read from its machine code): the scale is
    # im.w * (1/w); 1-dx is (ix+1) - rx; the sum (p00*(1-dx))*(1-dy) + ((1-dx)*dy)*p01
    # + (dx*(1-dy))*p10 + (dx*dy)*p11, left to right.
    rx = np.arange(w, dtype=F32) * (F32(iw) * (F32(1) / F32(w)))
    ry = np.arange(h, dtype=F32) * (F32(ih) * (F32(1) / F32(h)))
    ix, iy = np.floor(rx).astype(np.int64), np.floor(ry).astype(np.int64)
    fx = (rx - ix.astype(F32)).astype(F32)[None, :]
    fy = (ry - iy.astype(F32)).astype(F32)[:, None]
    gx = ((ix + 1).astype(F32) - rx).astype(F32)[None, :]
    gy = ((iy + 1).astype(F32) - ry).astype(F32)[:, None]
    padded = np.zeros((c, ih + 1, iw + 1), dtype=F32)  # get_pixel_extend: 0 outside
    padded[:, :ih, :iw] = im
    ix1, iy1 = np.minimum(ix + 1, iw), np.minimum(iy + 1, ih)
    ixc, iyc = np.minimum(ix, iw), np.minimum(iy, ih)
    rows0, rows1 = padded[:, iyc], padded[:, iy1]
    val = (rows0[:, :, ixc] * gx) * gy
    val = val + (gx * fy) * rows1[:, :, ixc]
    val = val + (fx * gy) * rows0[:, :, ix1]
    val = val + (fx * fy) * rows1[:, :, ix1]
    # set_pixel ignores what falls outside the canvas
    ch, cw = canvas.shape[1:]
    x0, y0 = max(dx, 0), max(dy, 0)
    x1, y1 = min(dx + w, cw), min(dy + h, ch)
    if x1 > x0 and y1 > y0:
        canvas[:, y0:y1, x0:x1] = val[:, y0 - dy:y1 - dy, x0 - dx:x1 - dx]


def crop_fill(im: np.ndarray, left: int, top: int, w: int, h: int,
              fill: Optional[np.ndarray] = None) -> np.ndarray:
    """A w x h window at (left, top); outside the image: ``fill`` per channel (OpenCV path's
    cv::mean) or, when None, the nearest edge pixel (image.c crop_image's clamp)."""
    c, ih, iw = im.shape
    if fill is None:
        ys = np.clip(np.arange(top, top + h), 0, ih - 1)
        xs = np.clip(np.arange(left, left + w), 0, iw - 1)
        return im[:, ys][:, :, xs].astype(F32)
    out = np.empty((c, h, w), dtype=F32)
    out[:] = fill.reshape(c, 1, 1)
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + w, iw), min(top + h, ih)
    if x1 > x0 and y1 > y0:
        out[:, y0 - top:y1 - top, x0 - left:x1 - left] = im[:, y0:y1, x0:x1]
    return out


def _randomize(rng, rows: np.ndarray, track: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """data.c randomize_boxes: swap each box with box ``rand() % n`` (the track ids follow)."""
    order = np.arange(len(rows))
    for i in range(len(order)):
        j = int(rng.integers(len(order)))
        order[[i, j]] = order[[j, i]]
    return rows[order], track[order]


def correct_boxes(boxes: np.ndarray, dx: float, dy: float, sx: float, sy: float, flip: bool,
                  alexeyab: bool) -> np.ndarray:
    """data.c correct_boxes on [id, x, y, w, h] rows (float32 like box_label); boxes at
    (0, 0) -- and for AlexeyAB boxes entirely outside the image -- become 999999."""
    out = boxes.astype(F32).copy()
    if not len(out):
        return out
    x, y, w, h = out[:, 1], out[:, 2], out[:, 3], out[:, 4]
    left, right, top, bottom = x - w / 2, x + w / 2, y - h / 2, y + h / 2
    bad = (x == 0) & (y == 0)
    if alexeyab:
        bad |= ((x + w / 2) < 0) | ((y + h / 2) < 0) | ((x - w / 2) > 1) | ((y - h / 2) > 1)
    left = left * F32(sx) - F32(dx)
    right = right * F32(sx) - F32(dx)
    top = top * F32(sy) - F32(dy)
    bottom = bottom * F32(sy) - F32(dy)
    if flip:
        left, right = 1 - right, 1 - left
    left, right = np.clip(left, 0, 1), np.clip(right, 0, 1)
    top, bottom = np.clip(top, 0, 1), np.clip(bottom, 0, 1)
    nx, ny = (left + right) / 2, (top + bottom) / 2
    nw, nh = np.clip(right - left, 0, 1), np.clip(bottom - top, 0, 1)
    res = np.stack([out[:, 0], nx, ny, nw, nh], 1).astype(F32)
    res[bad, 1:] = 999999
    return res


def fill_truth(boxes: np.ndarray, track_ids: np.ndarray, aug: Augment, net_w: int,
               net_h: int) -> np.ndarray:
    """fill_truth_detection after correct_boxes: the first ``max`` boxes, small or invalid
    ones dropped by each fork's rule, as a (max, 5|6) float32 array."""
    size = aug.truth_size
    truth = np.zeros((aug.max_boxes, size), dtype=F32)
    count = min(len(boxes), aug.max_boxes)
    k = 0
    lowest_w, lowest_h = F32(1) / F32(net_w), F32(1) / F32(net_h)
    for i in range(count):
        cid, x, y, w, h = (F32(v) for v in boxes[i])
        if aug.dialect == "pjreddie":
            if w < F32(.001) or h < F32(.001):
                continue
            truth[k] = (x, y, w, h, cid)
        else:
            if cid >= aug.classes or w < lowest_w or h < lowest_h or x == 999999:
                continue
            if x <= 0 or x > 1 or y <= 0 or y > 1:
                continue
            w, h = min(w, F32(1)), min(h, F32(1))
            x = x + lowest_w if x == 0 else x
            y = y + lowest_h if y == 0 else y
            truth[k] = (x, y, w, h, cid, F32(track_ids[i]))
        k += 1
    return truth


# -- one training image ----------------------------------------------------------------
class DetectionDataset(torch.utils.data.Dataset):
    """Images of a list with their truths, augmented as the cfg's Darknet does.

    Items are keyed ``(index, w, h, seed, mosaic)``: the sampler chooses the image,
    the network size of the iteration and the random stream; the result is
    ``(X (3, h, w) float32, y (max, 5|6) float32, problems)``.
    """

    #: images tried in place of unusable ones before giving up (a DataError)
    max_tries = 50

    def __init__(self, paths: Sequence[str], aug: Augment) -> None:
        if not len(paths):
            raise DataError("no training images")
        self.paths = list(paths)
        self.aug = aug
        self._labels: Dict[str, Tuple[Optional[np.ndarray], List[Problem]]] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def labels(self, image: str) -> Tuple[str, Optional[np.ndarray], List[Problem]]:
        lp = label_path(image, self.aug.dialect)
        if lp not in self._labels:
            if lp == image:
                self._labels[lp] = (None, [("no label path for image", image,
                                            "the image name has no extension Darknet "
                                            "replaces by .txt")])
            else:
                self._labels[lp] = read_label_file(lp, self.aug.classes)
        rows, problems = self._labels[lp]
        return lp, rows, problems

    def load(self, index: int, problems: List[Problem]
             ) -> Optional[Tuple[np.ndarray, str, np.ndarray]]:
        """(image, label path, rows) or None (reported in ``problems``) when unusable."""
        path = self.paths[index]
        lp, rows, label_problems = self.labels(path)
        problems.extend(label_problems)
        if rows is None:
            return None
        try:
            im = as_image(path)
        except DataError as exc:
            problems.append(("unusable image", path, exc.message))
            return None
        return im, lp, rows

    def __getitem__(self, key) -> Tuple[np.ndarray, np.ndarray, List[Problem]]:
        index, w, h, seed, mosaic = key
        # an int seed, or any source with random() in [0, 1] and integers(n) (the tests
        # drive the pipeline with glibc's rand() to compare with Darknet draw for draw)
        rng = np.random.default_rng(seed) if isinstance(seed, (int, np.integer)) else seed
        problems: List[Problem] = []
        if mosaic and self.aug.enabled:
            x, y = self._mosaic(index, w, h, rng, problems)
        else:
            x, y = self._one(index, w, h, rng, problems)
        return x, y, problems

    def _usable(self, index: int, rng: np.random.Generator, problems: List[Problem]):
        for _ in range(self.max_tries):
            got = self.load(index, problems)
            if got is not None:
                return got
            index = int(rng.integers(len(self.paths)))
        raise DataError(f"no usable image in {self.max_tries} tries; see the problems "
                        f"reported above", file=self.paths[index])

    def _one(self, index, w, h, rng, problems, geometry=None):
        im, lp, rows = self._usable(index, rng, problems)
        aug = self.aug
        track = (custom_hash(lp) % 4000) * 4000 + np.arange(len(rows))
        if not aug.enabled:
            sized = resize_image(im, w, h)
            boxes = correct_boxes(rows, 0.0, 0.0, 1.0, 1.0, False, aug.dialect == "alexeyab")
            return sized, fill_truth(boxes, track, aug, w, h)
        if aug.dialect == "pjreddie":
            return self._pjreddie(im, rows, track, w, h, rng)
        return self._alexeyab(im, rows, track, w, h, rng, geometry)[:2]

    def _pjreddie(self, orig, rows, track, w, h, rng):
        aug = self.aug
        _, oh, ow = orig.shape
        sized = np.full((orig.shape[0], h, w), 0.5, dtype=F32)
        dw, dh = F32(aug.jitter) * F32(ow), F32(aug.jitter) * F32(oh)
        new_ar = F32(ow + _uniform(rng, -dw, dw)) / F32(oh + _uniform(rng, -dh, dh))
        if new_ar < 1:
            nh = F32(h)
            nw = nh * new_ar
        else:
            nw = F32(w)
            nh = nw / new_ar
        dx = F32(_uniform(rng, 0, w - nw))
        dy = F32(_uniform(rng, 0, h - nh))
        place_image(orig, int(nw), int(nh), int(dx), int(dy), sized)
        sized = distort_image(sized, _uniform(rng, -aug.hue, aug.hue),
                              _rand_scale(rng, aug.saturation), _rand_scale(rng, aug.exposure))
        flip = bool(rng.integers(2))
        if flip:
            sized = sized[:, :, ::-1].copy()
        rows, track = _randomize(rng, rows, track)  # fill_truth_detection draws last
        boxes = correct_boxes(rows, -dx / F32(w), -dy / F32(h), nw / F32(w), nh / F32(h), flip,
                              False)
        return sized, fill_truth(boxes, track, aug, w, h)

    def _alexeyab_geometry(self, ow, oh, w, h, rng):
        aug = self.aug
        dw, dh = int(ow * F32(aug.jitter)), int(oh * F32(aug.jitter))
        down = up = F32(aug.resize)
        if down > 1:
            down = 1 / down
        if up < 1:
            up = 1 / up
        min_rdw, min_rdh = int(ow * (1 - 1 / down) / 2), int(oh * (1 - 1 / down) / 2)
        max_rdw, max_rdh = int(ow * (1 - 1 / up) / 2), int(oh * (1 - 1 / up) / 2)
        rr1, rr2 = F32(rng.random()), F32(rng.random())
        r = [F32(rng.random()) for _ in range(4)]
        flip = bool(rng.integers(2)) if aug.flip else False
        rng.random()  # r_scale: drawn, unused
        hue = _uniform(rng, -aug.hue, aug.hue)
        sat, exp = _rand_scale(rng, aug.saturation), _rand_scale(rng, aug.exposure)

        def pre(lo, hi, part):  # rand_precalc_random (a float)
            lo, hi = (hi, lo) if hi < lo else (lo, hi)
            return F32(part) * F32(hi - lo) + F32(lo)
        pleft, pright = int(pre(-dw, dw, r[0])), int(pre(-dw, dw, r[1]))
        ptop, pbot = int(pre(-dh, dh, r[2])), int(pre(-dh, dh, r[3]))
        hi_w, hi_h = (0, 0) if aug.resize < 1 else (max_rdw, max_rdh)
        # int += float: the sum in float, then truncated
        pleft = int(F32(pleft) + pre(min_rdw, hi_w, rr1))
        pright = int(F32(pright) + pre(min_rdw, hi_w, rr2))
        ptop = int(F32(ptop) + pre(min_rdh, hi_h, rr1))
        pbot = int(F32(pbot) + pre(min_rdh, hi_h, rr2))
        if aug.letter_box:
            img_ar, net_ar = F32(ow) / F32(oh), F32(w) / F32(h)
            if img_ar / net_ar > 1:
                delta = (F32(ow) / net_ar - oh) / 2
                ptop, pbot = int(ptop - delta), int(pbot - delta)
            else:
                delta = (F32(oh) * net_ar - ow) / 2
                pleft, pright = int(pleft - delta), int(pright - delta)
        return [pleft, pright, ptop, pbot], flip, (hue, sat, exp)

    def _alexeyab(self, orig, rows, track, w, h, rng, geometry=None):
        aug = self.aug
        _, oh, ow = orig.shape
        (pleft, pright, ptop, pbot), flip, (hue, sat, exp) = self._alexeyab_geometry(
            ow, oh, w, h, rng)
        if geometry is not None:  # mosaic: this part keeps the sides facing the centre
            pleft, pright, ptop, pbot = geometry(pleft, pright, ptop, pbot, flip, rng)
        swidth, sheight = ow - pleft - pright, oh - ptop - pbot
        if swidth <= 0 or sheight <= 0 or ow - pleft <= 0 or oh - ptop <= 0:
            swidth, sheight, pleft, ptop = ow, oh, 0, 0
        sx, sy = F32(swidth) / F32(ow), F32(sheight) / F32(oh)
        dx, dy = (F32(pleft) / F32(ow)) / sx, (F32(ptop) / F32(oh)) / sy
        rows, track = _randomize(rng, rows, track)  # fill_truth_detection draws last
        boxes = correct_boxes(rows, dx, dy, F32(1) / sx, F32(1) / sy, flip, True)
        truth = fill_truth(boxes, track, aug, w, h)
        if not aug.opencv:
            cropped = crop_fill(orig, pleft, ptop, swidth, sheight)
        elif (pleft, ptop, swidth, sheight) == (0, 0, ow, oh):
            cropped = orig
        else:
            cropped = crop_fill(orig, pleft, ptop, swidth, sheight, orig.mean(axis=(1, 2)))
        sized = resize_image(cropped, w, h)
        if flip:
            sized = sized[:, :, ::-1].copy()
        if sat != 1 or exp != 1 or hue != 0 or not aug.opencv:
            sized = distort_image(sized, hue, sat, exp)
        return sized, truth, (pleft, pright, ptop, pbot, flip)

    def _mosaic(self, index, w, h, rng, problems):
        """AlexeyAB mosaic (use_mixup == 3): four images, each cropped towards the cut
        point (cut_x, cut_y) in [0.2, 0.8) of the canvas, truths by blend_truth_mosaic."""
        aug = self.aug
        cut_x = int(rng.integers(int(w * 0.2), int(w * 0.8) + 1))
        cut_y = int(rng.integers(int(h * 0.2), int(h * 0.8) + 1))
        canvas = np.zeros((3, h, w), dtype=F32)
        truth = np.zeros((aug.max_boxes, aug.truth_size), dtype=F32)
        for part in range(4):
            idx = index if part == 0 else int(rng.integers(len(self.paths)))
            towards = bool(rng.integers(2) == 0)

            def geometry(pl, pr, pt, pb, flip, _rng, part=part, towards=towards):
                if not towards:
                    return pl, pr, pt, pb
                # which sides collapse, per quadrant (flip mirrors left/right)
                move_left = (part in (1, 3)) != flip
                if move_left:
                    pl, pr = pl + pr, 0
                else:
                    pr, pl = pr + pl, 0
                if part in (0, 1):
                    pb, pt = pb + pt, 0
                else:
                    pt, pb = pt + pb, 0
                return pl, pr, pt, pb
            im, lp, rows = self._usable(idx, rng, problems)
            track = (custom_hash(lp) % 4000) * 4000 + np.arange(len(rows))
            ai, part_truth, (pleft, pright, ptop, pbot, flip) = self._alexeyab(
                im, rows, track, w, h, rng, geometry)
            _, oh, ow = im.shape
            if flip:
                pleft, pright = pright, pleft
            ls = min(cut_x, max(0, int(-pleft * w / ow)))
            ts = min(cut_y, max(0, int(-ptop * h / oh)))
            rs = min(w - cut_x, max(0, int(-pright * w / ow)))
            bs = min(h - cut_y, max(0, int(-pbot * h / oh)))
            if part == 0:
                canvas[:, :cut_y, :cut_x] = ai[:, h - cut_y - bs:h - bs, w - cut_x - rs:w - rs]
            elif part == 1:
                canvas[:, :cut_y, cut_x:] = ai[:, h - cut_y - bs:h - bs, ls:ls + w - cut_x]
            elif part == 2:
                canvas[:, cut_y:, :cut_x] = ai[:, ts:ts + h - cut_y, w - cut_x - rs:w - rs]
            else:
                canvas[:, cut_y:, cut_x:] = ai[:, ts:ts + h - cut_y, ls:ls + w - cut_x]
            _blend_truth_mosaic(truth, part_truth, w, h, cut_x, cut_y, part, ls, rs, ts, bs,
                                aug.mosaic_bound)
        return canvas, truth


def _blend_truth_mosaic(new, old, w, h, cut_x, cut_y, part, ls, rs, ts, bs, bound) -> None:
    """data.c blend_truth_mosaic: shift this part's truths into its quadrant, clip, keep
    the ones still inside with a size over one pixel (x, y, w, h, class are copied)."""
    lowest_w, lowest_h = F32(1) / F32(w), F32(1) / F32(h)
    count = int(np.argmin(new[:, 0] != 0)) if (new[:, 0] == 0).any() else len(new)
    k = count
    for t in range(len(new) - count):
        if k >= len(new):
            break
        o = old[t]
        if not o[0]:
            break
        xb, yb, wb, hb = (F32(v) for v in o[:4])
        if part in (0, 2):
            xb = xb - F32(w - cut_x - rs) / F32(w)
        else:
            xb = xb + F32(cut_x - ls) / F32(w)
        if part in (0, 1):
            yb = yb - F32(h - cut_y - bs) / F32(h)
        else:
            yb = yb + F32(cut_y - ts) / F32(h)
        left, right = int((xb - wb / 2) * w), int((xb + wb / 2) * w)
        top, bot = int((yb - hb / 2) * h), int((yb + hb / 2) * h)
        if bound:
            lb, rb = (0, cut_x) if part in (0, 2) else (cut_x, w)
            tb, bb = (0, cut_y) if part in (0, 1) else (cut_y, h)
            left, right, top, bot = max(left, lb), min(right, rb), max(top, tb), min(bot, bb)
            xb, wb = F32((right + left) / 2) / F32(w), F32(right - left) / F32(w)
            yb, hb = F32((bot + top) / 2) / F32(h), F32(bot - top) / F32(h)
        else:
            if left < 0:
                diff = F32(left) / F32(w)
                xb, wb = xb - diff / 2, wb + diff
            if right > w:
                diff = F32(right - w) / F32(w)
                xb, wb = xb - diff / 2, wb - diff
            if top < 0:
                diff = F32(top) / F32(h)
                yb, hb = yb - diff / 2, hb + diff
            if bot > h:
                diff = F32(bot - h) / F32(h)
                yb, hb = yb - diff / 2, hb - diff
            left, right = int((xb - wb / 2) * w), int((xb + wb / 2) * w)
            top, bot = int((yb - hb / 2) * h), int((yb + hb / 2) * h)
        if (left >= 0 and right <= w and top >= 0 and bot <= h and 0 < wb < 1 and 0 < hb < 1
                and 0 < xb < 1 and 0 < yb < 1 and wb > lowest_w and hb > lowest_h):
            new[k, :5] = (xb, yb, wb, hb, o[4])
            k += 1


# -- batches ---------------------------------------------------------------------------
SizeFn = Callable[[int], Tuple[int, int]]


class BatchPlan(torch.utils.data.Sampler):
    """The images of each iteration, drawn as ``get_random_paths`` (``rand() % m``, with
    replacement), with that iteration's network size and random seeds.

    ``size(k)`` gives (w, h) of the k-th batch of this run (the trainer's ``random=1``
    rule; a pure function of k so prefetching workers agree). With ``world > 1`` each
    rank takes its contiguous share of the same total batch.
    """

    def __init__(self, count: int, batch: int, size: SizeFn, *, seed: int = 0, start: int = 0,
                 mosaic: bool = False, rank: int = 0, world: int = 1,
                 iterations: Optional[int] = None) -> None:
        if batch % world:
            raise ValueError(f"batch {batch} does not split over {world} processes")
        self.count, self.batch, self.size = count, batch, size
        self.seed, self.start, self.mosaic = seed, start, mosaic
        self.rank, self.world, self.iterations = rank, world, iterations

    def keys(self, k: int) -> List[tuple]:
        rng = np.random.default_rng([self.seed, self.start + k])
        w, h = self.size(k)
        mosaic = bool(self.mosaic and rng.integers(2) == 1)
        idx = rng.integers(self.count, size=self.batch)
        seeds = rng.integers(2 ** 62, size=self.batch)
        share = self.batch // self.world
        lo = self.rank * share
        return [(int(idx[i]), w, h, int(seeds[i]), mosaic) for i in range(lo, lo + share)]

    def __iter__(self) -> Iterator[List[tuple]]:
        k = 0
        while self.iterations is None or k < self.iterations:
            yield self.keys(k)
            k += 1

    def __len__(self) -> int:  # pragma: no cover - only meaningful when bounded
        return self.iterations if self.iterations is not None else sys.maxsize


def collate(items) -> Tuple[torch.Tensor, torch.Tensor, List[Problem]]:
    xs, ys, problems = zip(*items)
    return (torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)),
            [p for ps in problems for p in ps])


class DataProblems:
    """Counts bad inputs and reports each (kind, file, detail) once through ``report``."""

    def __init__(self, report: Optional[Callable[[str], None]] = None) -> None:
        self.report = report or (lambda line: print(line, file=sys.stderr, flush=True))
        self.seen: set = set()
        self.counts: Dict[str, int] = {}

    def add(self, problems: Sequence[Problem]) -> None:
        for kind, file, detail in problems:
            key = (kind, file, detail)
            if key in self.seen:
                continue
            self.seen.add(key)
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.report(f"darknet-py: data: {kind}: {file}" + (f": {detail}" if detail else ""))

    def summary(self) -> str:
        if not self.counts:
            return "no data problems"
        return "; ".join(f"{n} x {kind}" for kind, n in sorted(self.counts.items()))


def make_loader(dataset: DetectionDataset, plan: BatchPlan, workers: int = 2,
                prefetch: int = 2) -> torch.utils.data.DataLoader:
    """A DataLoader over ``plan``'s batches; ``workers`` processes decode and augment."""
    kwargs = dict(batch_sampler=plan, num_workers=workers, collate_fn=collate)
    if workers > 0:
        kwargs.update(prefetch_factor=prefetch, persistent_workers=False)
    return torch.utils.data.DataLoader(dataset, **kwargs)


def fixed_size(w: int, h: int) -> SizeFn:
    return lambda k: (w, h)


__all__ = ["Augment", "BatchPlan", "DataConfig", "DataProblems", "DetectionDataset",
           "collate", "correct_boxes", "custom_hash", "distort_image", "fill_truth",
           "fixed_size", "hsv_to_rgb", "label_path", "make_loader", "place_image",
           "read_data", "read_image_list", "read_label_file", "rgb_to_hsv"]
