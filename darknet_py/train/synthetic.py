"""A synthetic detection dataset: coloured shapes on noisy backgrounds, Darknet's format.

Three classes -- 0 red squares, 1 green discs, 2 blue triangles -- one to
``max_objects`` per image, written as ``NAME.png`` with ``NAME.txt`` beside it
(``class x y w h`` relative rows), a ``train.txt``/``valid.txt`` list, a
``shapes.names`` and a ``shapes.data`` (so both forks' label path rules find
the labels: the folder names hold no "images"/"JPEGImages"/"raw").

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> data = make_shapes(root, train=4, valid=2, size=64, seed=1)
    >>> sorted(read_data(data).options)
    ['backup', 'classes', 'names', 'train', 'valid']
"""
from __future__ import annotations

import os
from typing import List, Tuple

import numpy as np

from .data import read_data

NAMES = ("square", "disc", "triangle")
COLOURS = ((220, 40, 40), (40, 200, 60), (50, 70, 230))


def _draw(size: int, rng: np.random.Generator, max_objects: int
          ) -> Tuple[np.ndarray, List[Tuple[int, float, float, float, float]]]:
    from PIL import Image, ImageDraw
    base = rng.integers(60, 160, size=3)
    noise = rng.normal(0, 12, size=(size, size, 3))
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(img)
    rows = []
    placed: List[Tuple[int, int, int, int]] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            s = int(rng.integers(size // 6, size // 2.5))
            x0 = int(rng.integers(0, size - s))
            y0 = int(rng.integers(0, size - s))
            box = (x0, y0, x0 + s, y0 + s)
            if all(box[2] <= p[0] or box[0] >= p[2] or box[3] <= p[1] or box[1] >= p[3]
                   for p in placed):
                break
        else:
            continue
        placed.append(box)
        cls = int(rng.integers(len(NAMES)))
        colour = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in COLOURS[cls])
        if cls == 0:
            draw.rectangle([x0, y0, x0 + s - 1, y0 + s - 1], fill=colour)
        elif cls == 1:
            draw.ellipse([x0, y0, x0 + s - 1, y0 + s - 1], fill=colour)
        else:
            draw.polygon([(x0 + s / 2, y0), (x0, y0 + s - 1), (x0 + s - 1, y0 + s - 1)],
                         fill=colour)
        rows.append((cls, (x0 + s / 2) / size, (y0 + s / 2) / size, s / size, s / size))
    return np.asarray(img), rows


def make_shapes(root: "os.PathLike[str] | str", train: int = 200, valid: int = 50,
                size: int = 96, max_objects: int = 3, seed: int = 0) -> str:
    """Write the dataset under ``root``; returns the path of its ``.data`` file."""
    from PIL import Image
    root = os.path.abspath(os.fspath(root))
    folder = os.path.join(root, "shapes")
    os.makedirs(folder, exist_ok=True)
    os.makedirs(os.path.join(root, "backup"), exist_ok=True)
    rng = np.random.default_rng(seed)
    lists = {"train": [], "valid": []}
    for split, count in (("train", train), ("valid", valid)):
        for i in range(count):
            pixels, rows = _draw(size, rng, max_objects)
            stem = os.path.join(folder, f"{split}_{i:05d}")
            Image.fromarray(pixels).save(stem + ".png")
            with open(stem + ".txt", "w") as handle:
                handle.writelines(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n"
                                  for c, x, y, w, h in rows)
            lists[split].append(stem + ".png")
    for split, paths in lists.items():
        with open(os.path.join(root, f"{split}.txt"), "w") as handle:
            handle.write("\n".join(paths) + "\n")
    with open(os.path.join(root, "shapes.names"), "w") as handle:
        handle.write("\n".join(NAMES) + "\n")
    data = os.path.join(root, "shapes.data")
    with open(data, "w") as handle:
        handle.write(f"classes={len(NAMES)}\ntrain={root}/train.txt\nvalid={root}/valid.txt\n"
                     f"names={root}/shapes.names\nbackup={root}/backup/\n")
    return data


TINY_LAYOUT = [  # yolov3-tiny.cfg, filters before narrowing
    ("conv", 16, 3, 1), ("max", 2, 2), ("conv", 32, 3, 1), ("max", 2, 2),
    ("conv", 64, 3, 1), ("max", 2, 2), ("conv", 128, 3, 1), ("max", 2, 2),
    ("conv", 256, 3, 1), ("max", 2, 2), ("conv", 512, 3, 1), ("max", 2, 1),
    ("conv", 1024, 3, 1), ("conv", 256, 1, 1), ("conv", 512, 3, 1), ("head", "3,4,5"),
    ("route", "-4"), ("conv", 128, 1, 1), ("up",), ("route", "-1, 8"),
    ("conv", 256, 3, 1), ("head", "0,1,2"),
]


def narrow_tiny_cfg(path: str, *, div: int, size: int, classes: int, batch: int,
                    max_batches: int, lr: float, anchors: str, augment: str = "",
                    burn_in: int = 100) -> str:
    """Write yolov3-tiny's layout with every conv's filters divided by ``div`` (heads for
    ``classes``), input ``size``, steps at 80% and 90% of ``max_batches``; returns ``path``."""
    out = [f"[net]\nbatch={batch}\nsubdivisions=1\nwidth={size}\nheight={size}\nchannels=3\n"
           f"momentum=0.9\ndecay=0.0005\n{augment}\nlearning_rate={lr}\nburn_in={burn_in}\n"
           f"max_batches={max_batches}\npolicy=steps\nsteps={int(max_batches * 0.8)},"
           f"{int(max_batches * 0.9)}\nscales=.1,.1\n"]
    for item in TINY_LAYOUT:
        kind = item[0]
        if kind == "conv":
            _, filters, k, s = item
            out.append(f"[convolutional]\nbatch_normalize=1\nfilters={max(filters // div, 2)}\n"
                       f"size={k}\nstride={s}\npad=1\nactivation=leaky\n")
        elif kind == "max":
            out.append(f"[maxpool]\nsize={item[1]}\nstride={item[2]}\n")
        elif kind == "head":
            out.append(f"[convolutional]\nsize=1\nstride=1\npad=1\nfilters={3 * (classes + 5)}\n"
                       f"activation=linear\n\n[yolo]\nmask={item[1]}\nanchors={anchors}\n"
                       f"classes={classes}\nnum=6\njitter=.2\nignore_thresh=.7\n"
                       f"truth_thresh=1\nrandom=0\n")
        elif kind == "route":
            out.append(f"[route]\nlayers={item[1]}\n")
        elif kind == "up":
            out.append("[upsample]\nstride=2\n")
    with open(path, "w") as handle:
        handle.write("\n".join(out))
    return path
