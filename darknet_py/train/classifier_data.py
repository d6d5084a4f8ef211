"""Training data as Darknet's ``classifier train`` reads it.

* ``.data`` file (:func:`read_classifier_data`): ``classes`` (default 2), ``train``
  (``data/train.list``), ``labels`` (``data/labels.list``, one label name a line as
  ``get_labels`` reads it: empty lines kept), ``backup`` (``/backup/``), ``top`` (5),
  and pjreddie's ``tree=`` (a hierarchy file that replaces the cfg's, as its
  ``train_classifier`` does; AlexeyAB ignores the key).
* truth (:func:`label_truth`, data.c ``fill_truth`` / AlexeyAB ``fill_truth_smooth``):
  entry ``i`` is 1 when label ``i``'s name occurs anywhere in the image path (``strstr``:
  the first match is not special, every matching label is set, an empty label matches
  every path); AlexeyAB's ``label_smooth_eps`` gives ``1 - eps`` / ``eps / (k - 1)``.
  Darknet prints "Too many or too few labels" for a count other than 1 and trains the row
  anyway; here a path that matches no label is reported once and skipped (another image is
  drawn in its place; pjreddie's one-class case, where no match is a valid 0, is kept),
  several matches are reported once and trained as Darknet does (several 1s). With a
  hierarchy (the cfg's ``[softmax] tree=``, Darknet's ``net->hierarchy``)
  :func:`darknet_py.tree.fill_hierarchy` follows.
* augmentation (:class:`ClassifierAugment`, from [net]), data.c
  ``load_image_augment_paths`` per image, drawing from one random source in the C's order:
  ``random_augment_image`` (``aspect = rand_scale(aspect)``, crop side ``r = rand_int(min,
  max)``, ``scale = r / min(h, w*aspect)``, angle, then the centre offsets ``dx``, ``dy``
  -- AlexeyAB clamps their ranges at 0 first) and ``rotate_crop_image`` into a square of
  ``size`` (bilinear, 0 outside the image); flip (``rand()%2``; AlexeyAB only with
  [net] ``flip=1``); ``random_distort_image`` (hue, saturation, exposure, always applied);
  AlexeyAB then ``resize_image`` to the network's w x h. pjreddie's crop side runs over
  ``min_ratio*w .. max_ratio*w`` (``min_crop``/``max_crop`` / w by default) and the square is
  the network width; AlexeyAB's over ``min_crop .. max_crop`` with ``size = max(w, h)``.
  ``augment=False``: the image resized to the network, nothing random.
  AlexeyAB's ``mixup=1`` / ``cutmix=1`` / ``mosaic=1`` (:meth:`ClassifierDataset.mix`, for
  half of the batches). ``blur`` is ignored, as in AlexeyAB's build without OpenCV;
  ``contrastive`` is not implemented (a :class:`DataError` names the key).

The random source is numpy's in training; the tests feed glibc's ``rand()`` stream to
compare with the real Darknet's ``load_data_augment`` draw for draw.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import DataError
from ..image import as_image, resize_image
from .. import tree as _tree
from .data import Problem, _rand_scale, _uniform, distort_image

F32 = np.float32


# -- .data --------------------------------------------------------------------------------
@dataclass
class ClassifierData:
    """A classifier ``.data`` file with ``train_classifier``'s defaults."""
    path: str
    classes: int
    train: str
    labels: str
    backup: str
    top: int
    tree: Optional[str] = None
    valid: Optional[str] = None
    options: Dict[str, str] = field(default_factory=dict)

    def resolve(self, value: str) -> str:
        """As given when it exists (Darknet reads it relative to the current folder), else
        relative to the .data file's folder."""
        if os.path.isabs(value) or os.path.exists(value):
            return value
        beside = os.path.join(os.path.dirname(os.path.abspath(self.path)), value)
        return beside if os.path.exists(beside) else value


def read_classifier_data(path: "os.PathLike[str] | str") -> ClassifierData:
    from ..detect import read_data_cfg
    name = os.fspath(path)
    opts = read_data_cfg(name)

    def num(key: str, default: int) -> int:
        try:
            return int(opts.get(key, str(default)))
        except ValueError:
            raise DataError(f"{key}={opts[key]!r} is not an integer", file=name,
                            key=key) from None
    if num("tag", 0):
        raise DataError("tag=1 (pjreddie's tag training: labels from .txt files of tag ids) "
                        "is not implemented in darknet-py", file=name, key="tag")
    classes = num("classes", 2)
    if classes < 1:
        raise DataError(f"classes={classes} must be at least 1", file=name, key="classes")
    return ClassifierData(path=name, classes=classes,
                          train=opts.get("train", "data/train.list"),
                          labels=opts.get("labels", "data/labels.list"),
                          backup=opts.get("backup", "/backup/"), top=num("top", 5),
                          tree=opts.get("tree"), valid=opts.get("valid"), options=opts)


def read_labels(path: str, classes: int, source: Optional[str] = None) -> List[str]:
    """``get_labels``: one name a line (empty lines kept: an empty name matches every
    path). Fewer names than ``classes`` is a DataError (Darknet would read past them)."""
    from ..detect import read_names
    names = read_names(path)
    if len(names) < classes:
        raise DataError(f"{len(names)} label names for classes={classes} (the .data file's "
                        f"labels= needs one name a line per class)", file=path)
    return names[:classes]


# -- truth --------------------------------------------------------------------------------
def label_truth(path: str, labels: Sequence[str], smooth_eps: float = 0.0
                ) -> Tuple[np.ndarray, int]:
    """fill_truth / fill_truth_smooth: (row float32 (k,), number of labels found in path).

    >>> label_truth("data/cifar/train/123_cat.png", ["airplane", "cat", "dog"])[0].tolist()
    [0.0, 1.0, 0.0]
    """
    k = len(labels)
    eps = F32(smooth_eps)
    on = F32(1) - eps
    off = eps / F32(k - 1) if eps and k > 1 else F32(0)
    found = np.array([name in path for name in labels], dtype=bool)
    row = np.where(found, on, off).astype(F32)
    return row, int(found.sum())


def hierarchy_of(model) -> Optional[_tree.Tree]:
    """Darknet's ``net->hierarchy``: the tree of the last ``[softmax]`` with ``tree=``
    (parser.c sets it for each softmax layer, ``lt == SOFTMAX``)."""
    out = None
    for layer in model.layers:
        if layer.kind == "softmax":
            out = layer.tree
    return out


# -- augmentation -------------------------------------------------------------------------
@dataclass
class ClassifierAugment:
    """What ``train_classifier`` passes to ``load_data_augment`` from [net]."""
    dialect: str
    w: int
    h: int
    min: int
    max: int
    size: int
    angle: float = 0.0
    aspect: float = 1.0
    hue: float = 0.0
    saturation: float = 1.0
    exposure: float = 1.0
    flip: bool = True
    smooth_eps: float = 0.0
    enabled: bool = True
    #: pjreddie: [net] min_ratio/max_ratio (the crop range at another width w is
    #: ``min_ratio*w .. max_ratio*w``, as its random=1 resizing sets args.min/max)
    ratios: Tuple[float, float] = (1.0, 2.0)
    #: AlexeyAB's net->mixup: 0 none, 1 mixup, 2 cutmix, 3 mosaic, 4 cutmix or mosaic
    mixup: int = 0

    def at_size(self, w: int) -> "ClassifierAugment":
        """pjreddie's random=1: the same augmentation at a square network of side w."""
        lo, hi = (int(F32(r) * F32(w)) for r in self.ratios)
        return ClassifierAugment(**{**self.__dict__, "w": w, "h": w, "size": w, "min": lo,
                                    "max": hi})

    @classmethod
    def from_model(cls, model, augment: bool = True, w: Optional[int] = None,
                   h: Optional[int] = None) -> "ClassifierAugment":
        n = model.net
        dialect = model.dialect.name
        w = int(w or model.input_shape.w)
        h = int(h or model.input_shape.h)
        ab = dialect == "alexeyab"
        mixup = 0
        if ab:
            if n.contrastive:
                raise DataError(f"[net] contrastive={n.contrastive}: AlexeyAB's contrastive "
                                f"classifier training is not implemented in darknet-py",
                                file=model.source, key="contrastive")
            mixup = int(n.mixup)  # parser.c: cutmix -> 2, mosaic -> 3, both -> 4
            if n.mosaic and n.cutmix:
                mixup = 4
            elif n.cutmix:
                mixup = 2
            elif n.mosaic:
                mixup = 3
            lo, hi, size = int(n.min_crop), int(n.max_crop), max(w, h)
        else:
            if w != h:
                raise DataError(f"pjreddie's classifier loader makes square {w}x{w} crops "
                                f"(args.size = net->w); the network is {w}x{h}",
                                file=model.source)
            width = F32(model.net.width)
            min_ratio = F32(n.min_ratio) if n.min_ratio is not None else \
                F32(n.min_crop) / width
            max_ratio = F32(n.max_ratio) if n.max_ratio is not None else \
                F32(n.max_crop) / width
            lo, hi, size = int(min_ratio * F32(w)), int(max_ratio * F32(w)), w
        return cls(dialect=dialect, w=w, h=h, min=lo, max=hi, size=size,
                   angle=float(n.angle), aspect=float(n.aspect), hue=float(n.hue),
                   saturation=float(n.saturation), exposure=float(n.exposure),
                   flip=bool(n.flip) if ab else True,
                   smooth_eps=float(n.label_smooth_eps) if ab else 0.0, enabled=augment,
                   ratios=(1.0, 2.0) if ab else (float(min_ratio), float(max_ratio)),
                   mixup=mixup)


def _rand_int(rng, lo: int, hi: int) -> int:
    """utils.c rand_int: ``rand() % (max - min + 1) + min`` (swapped when reversed)."""
    if hi < lo:
        lo, hi = hi, lo
    return int(rng.integers(hi - lo + 1)) + lo


def rotate_crop_image(im: np.ndarray, rad: float, s: float, w: int, h: int, dx: float,
                      dy: float, aspect: float) -> np.ndarray:
    """image.c rotate_crop_image (both forks): a w x h window, rotated by ``rad`` and scaled
    by ``s`` around the image centre shifted by (dx, dy); bilinear, 0 outside the image.
    The source coordinates in double (cos/sin of the float angle), stored as float."""
    c, ih, iw = im.shape
    cx, cy = F32(iw / 2.0), F32(ih / 2.0)
    s64, a64 = float(F32(s)), float(F32(aspect))
    ox = float(F32(F32(dx) / F32(s)) * F32(aspect))  # dx/s*aspect: float arithmetic
    oy = float(F32(dy) / F32(s))
    cos, sin = math.cos(float(F32(rad))), math.sin(float(F32(rad)))
    xs = (np.arange(w, dtype=np.float64) - w / 2.0) / s64 * a64 + ox
    ys = (np.arange(h, dtype=np.float64) - h / 2.0) / s64 + oy
    rx = (cos * xs[None, :] - sin * ys[:, None] + float(cx)).astype(F32)
    ry = (sin * xs[None, :] + cos * ys[:, None] + float(cy)).astype(F32)
    ix, iy = np.floor(rx).astype(np.int64), np.floor(ry).astype(np.int64)
    fx = (rx - ix.astype(F32)).astype(F32)
    fy = (ry - iy.astype(F32)).astype(F32)
    padded = np.zeros((c, ih + 2, iw + 2), dtype=F32)  # get_pixel_extend: 0 outside
    padded[:, 1:ih + 1, 1:iw + 1] = im

    def px(x, y):
        inside = (x >= -1) & (x <= iw) & (y >= -1) & (y <= ih)
        xc, yc = np.clip(x + 1, 0, iw + 1), np.clip(y + 1, 0, ih + 1)
        return np.where(inside[None], padded[:, yc, xc], F32(0))
    one = F32(1)
    val = (one - fy) * (one - fx) * px(ix, iy)
    val = val + fy * (one - fx) * px(ix, iy + 1)
    val = val + (one - fy) * fx * px(ix + 1, iy)
    val = val + fy * fx * px(ix + 1, iy + 1)
    return val.astype(F32)


@dataclass
class CropDraw:
    """The values random_augment_image drew (for tests and diagnostics)."""
    aspect: float
    r: int
    scale: float
    rad: float
    dx: float
    dy: float


def random_augment_image(im: np.ndarray, aug: ClassifierAugment, rng) -> Tuple[np.ndarray,
                                                                              CropDraw]:
    """image.c random_augment_image (pjreddie's random_augment_args + rotate_crop_image;
    AlexeyAB's clamps the offset ranges at 0): a ``size`` x ``size`` crop."""
    _, ih, iw = im.shape
    aspect = F32(_rand_scale(rng, aug.aspect))
    r = _rand_int(rng, aug.min, aug.max)
    wa = F32(iw) * aspect
    side = int(F32(ih) if F32(ih) < wa else wa)  # int = (h < w*aspect) ? h : w*aspect
    scale = F32(F32(r) / F32(side))
    if aug.dialect == "pjreddie":  # * TWO_PI (a float constant) / 360. (double)
        rad = F32(float(F32(_uniform(rng, -aug.angle, aug.angle)) * F32(2 * math.pi)) / 360.0)
    else:  # * 2.0 * M_PI / 360. in double
        rad = F32(_uniform(rng, -aug.angle, aug.angle) * 2.0 * math.pi / 360.0)
    size = aug.size
    dx = F32(float(F32(F32(iw) * scale) / aspect - F32(size)) / 2.0)
    dy = F32(float(F32(ih) * scale - F32(size)) / 2.0)
    if aug.dialect == "alexeyab":
        dx, dy = max(dx, F32(0)), max(dy, F32(0))
    dx = F32(_uniform(rng, -float(dx), float(dx)))
    dy = F32(_uniform(rng, -float(dy), float(dy)))
    crop = rotate_crop_image(im, float(rad), float(scale), size, size, float(dx), float(dy),
                             float(aspect))
    return crop, CropDraw(float(aspect), r, float(scale), float(rad), float(dx), float(dy))


def augment_image(im: np.ndarray, aug: ClassifierAugment, rng) -> np.ndarray:
    """load_image_augment_paths on one decoded image: crop, flip, colour, (AlexeyAB) resize."""
    if not aug.enabled:
        return resize_image(im, aug.w, aug.h)
    crop, _ = random_augment_image(im, aug, rng)
    flip = bool(rng.integers(2)) if aug.flip else False
    if flip:
        crop = crop[:, :, ::-1].copy()
    crop = distort_image(crop, _uniform(rng, -aug.hue, aug.hue),
                         _rand_scale(rng, aug.saturation), _rand_scale(rng, aug.exposure))
    if aug.dialect == "alexeyab":
        crop = resize_image(crop, aug.w, aug.h)
    return crop


# -- the dataset --------------------------------------------------------------------------
class ClassifierDataset(torch.utils.data.Dataset):
    """Images of a list with their one-hot truths, augmented as the cfg's Darknet does.

    Items are keyed like :class:`darknet_py.train.data.BatchPlan`'s ``(index, w, h, seed,
    mosaic)`` (mosaic unused); the result is ``(X (3, h, w) float32, y (classes,) float32,
    problems)``. An image that cannot be read, or whose path names no label, is reported
    and another one drawn in its place.
    """

    max_tries = 50

    def __init__(self, paths: Sequence[str], labels: Sequence[str], aug: ClassifierAugment,
                 hierarchy: Optional[_tree.Tree] = None) -> None:
        if not len(paths):
            raise DataError("no training images")
        self.paths, self.labels, self.aug, self.hierarchy = list(paths), list(labels), aug, \
            hierarchy

    def __len__(self) -> int:
        return len(self.paths)

    def truth(self, path: str, problems: List[Problem]) -> Optional[np.ndarray]:
        row, count = label_truth(path, self.labels, self.aug.smooth_eps)
        if count == 0 and not (len(self.labels) == 1 and self.aug.dialect == "pjreddie"):
            problems.append(("no label name in the image path", path,
                             "Darknet's fill_truth: none of the labels= names occurs in it"))
            return None
        if count > 1:
            found = [name for name in self.labels if name in path]
            problems.append(("several label names in the image path (trained with each set, "
                             "as Darknet does)", path, ", ".join(repr(f) for f in found)))
        if self.hierarchy is not None:
            row = _tree.fill_hierarchy(row, self.hierarchy)
        return row

    def load(self, index: int, problems: List[Problem]):
        path = self.paths[index]
        row = self.truth(path, problems)
        if row is None:
            return None
        try:
            im = as_image(path)
        except DataError as exc:
            problems.append(("unusable image", path, exc.message))
            return None
        return im, row

    def sample(self, index: int, rng, problems: List[Problem],
               aug: Optional[ClassifierAugment] = None) -> Tuple[np.ndarray, np.ndarray]:
        """One augmented image and its truth row (an unusable one replaced by a draw)."""
        aug = aug or self.aug
        for _ in range(self.max_tries):
            got = self.load(index, problems)
            if got is not None:
                im, row = got
                return augment_image(im, aug, rng), row
            index = int(rng.integers(len(self.paths)))
        raise DataError(f"no usable image in {self.max_tries} tries; see the problems "
                        f"reported above", file=self.paths[index])

    def mix(self, x: np.ndarray, y: np.ndarray, rng, problems: List[Problem],
            aug: Optional[ClassifierAugment] = None) -> Tuple[np.ndarray, np.ndarray]:
        """AlexeyAB load_data_augment's mixing of one image (the batch drew ``rand_int(0,
        1)`` = 1): partners drawn as ``get_random_paths`` (``rand() % m``) and augmented
        (a second; with mixup >= 3 a third and a fourth), then mixup (the mean of images
        and truths), CutMix (a ``rand_int(w*.3, w*.8)`` x ``rand_int(h*.3, h*.8)`` box at
        ``rand_int(0, w - cut_w - 1)``, ``rand_int(0, h - cut_h - 1)`` from the second
        image; truths weighted by its area share) or Mosaic (four quadrants split at
        ``rand_int(w*.2, w*.8)``, ``rand_int(h*.2, h*.8)``; truths weighted by the
        quadrant areas); mixup=4 picks CutMix or Mosaic by ``rand_int(2, 3)``."""
        aug = aug or self.aug
        parts = [(x, y)]
        for _ in range(3 if aug.mixup >= 3 else 1):
            parts.append(self.sample(int(rng.integers(len(self.paths))), rng, problems, aug))
        kind = _rand_int(rng, 2, 3) if aug.mixup == 4 else aug.mixup
        w, h = x.shape[2], x.shape[1]
        if kind == 1:
            two = F32(2)
            return (x + parts[1][0]) / two, (y + parts[1][1]) / two
        if kind == 2:
            lo, hi = F32(0.3), F32(0.8)
            cut_w = _rand_int(rng, int(F32(w) * lo), int(F32(w) * hi))
            cut_h = _rand_int(rng, int(F32(h) * lo), int(F32(h) * hi))
            cut_x = _rand_int(rng, 0, w - cut_w - 1)
            cut_y = _rand_int(rng, 0, h - cut_h - 1)
            alpha = F32(cut_w * cut_h) / F32(w * h)
            beta = F32(1) - alpha
            out = x.copy()
            out[:, cut_y:cut_y + cut_h, cut_x:cut_x + cut_w] = \
                parts[1][0][:, cut_y:cut_y + cut_h, cut_x:cut_x + cut_w]
            return out, (y * beta + parts[1][1] * alpha).astype(F32)
        off = F32(0.2)
        cut_x = _rand_int(rng, int(F32(w) * off), int(F32(w) * (F32(1) - off)))
        cut_y = _rand_int(rng, int(F32(h) * off), int(F32(h) * (F32(1) - off)))
        area = F32(w * h)
        s = [F32(cut_x * cut_y) / area, F32((w - cut_x) * cut_y) / area,
             F32(cut_x * (h - cut_y)) / area, F32((w - cut_x) * (h - cut_y)) / area]
        out = x.copy()
        out[:, :cut_y, cut_x:] = parts[1][0][:, :cut_y, cut_x:]
        out[:, cut_y:, :cut_x] = parts[2][0][:, cut_y:, :cut_x]
        out[:, cut_y:, cut_x:] = parts[3][0][:, cut_y:, cut_x:]
        row = y * s[0]
        for (_, yk), sk in zip(parts[1:], s[1:]):
            row = row + yk * sk
        return out, row.astype(F32)

    def __getitem__(self, key):
        """``key[4]`` is the batch's mixing coin (BatchPlan draws it per batch, as
        load_data_augment's ``rand_int(0, 1)``); used when the cfg asks for mixing."""
        index, w, h, seed, mixed = key
        rng = np.random.default_rng(seed) if isinstance(seed, (int, np.integer)) else seed
        aug = self.aug
        if (w, h) != (aug.w, aug.h):  # pjreddie random=1: a new square size
            aug = aug.at_size(w)
        problems: List[Problem] = []
        x, y = self.sample(index, rng, problems, aug)
        if mixed and aug.mixup and aug.enabled:
            x, y = self.mix(x, y, rng, problems, aug)
        return x, y, problems

__all__ = ["ClassifierAugment", "ClassifierData", "ClassifierDataset", "CropDraw",
           "augment_image", "hierarchy_of", "label_truth", "read_classifier_data",
           "read_labels", "random_augment_image", "rotate_crop_image"]
