"""A small detection dataset for the evaluation tests, made deterministically.

Images: the reference sample images (PNG, so Darknet's stb_image and Pillow decode the
same pixels), each also mirrored and cropped: 21 images. Labels: yolov3-tiny's
detections at thresh 0.25 (as ``detector map`` detects), perturbed with a seeded RNG --
boxes shifted and rescaled, some dropped, some classes changed, some objects added --
so AP, TP and FP are neither 0 nor perfect. Files: ``images/*.png`` with their ``.txt``
labels beside them (Darknet's label path for a plain folder), ``valid.txt``, ``coco.names``
and ``obj.data``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
from PIL import Image, ImageOps

from conftest import reference_root


def make_images(folder: Path) -> List[Path]:
    src = sorted((reference_root() / "images").glob("*.jpg"))
    out = []
    folder.mkdir(parents=True, exist_ok=True)
    for path in src:
        im = Image.open(path).convert("RGB")
        im.thumbnail((480, 480))
        w, h = im.size
        variants = {"": im, "_flip": ImageOps.mirror(im),
                    "_crop": im.crop((w // 8, h // 10, w - w // 10, h - h // 8))}
        for suffix, v in variants.items():
            target = folder / f"{path.stem}{suffix}.png"
            v.save(target)
            out.append(target)
    return out


def perturb(dets, rng: np.random.Generator, classes: int) -> List[str]:
    """Label lines ``id x y w h`` from detections (list of (class, x, y, w, h))."""
    lines = []
    for cid, x, y, w, h in dets:
        if rng.random() < 0.15:
            continue  # a missed label: a false positive for the model
        x += rng.normal(0, 0.03) * w
        y += rng.normal(0, 0.03) * h
        w *= float(np.exp(rng.normal(0, 0.12)))
        h *= float(np.exp(rng.normal(0, 0.12)))
        if rng.random() < 0.07:
            cid = int(rng.integers(classes))
        lines.append(f"{cid} {x:.6f} {y:.6f} {w:.6f} {h:.6f}")
    for _ in range(int(rng.integers(0, 2))):  # an object the model does not see
        w, h = rng.uniform(0.05, 0.3, 2)
        x, y = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
        lines.append(f"{int(rng.integers(classes))} {x:.6f} {y:.6f} {w:.6f} {h:.6f}")
    return lines


def assert_trained_bn(model) -> None:
    """The fixture's detections only mean something from a trained network with batch
    normalization (the inference path the mAP runs through): most convolutions have
    ``batch_normalize=1`` and their rolling statistics are loaded ones, not the 0/1 a
    fresh layer starts with."""
    import torch
    convs = [layer for layer in model.layers if layer.kind == "convolutional"]
    bns = [layer.bn for layer in convs if layer.bn is not None]
    assert len(bns) >= len(convs) - len(model.heads), (len(bns), len(convs))
    assert all(not torch.equal(bn.rolling_variance, torch.ones_like(bn.rolling_variance))
               and bool(bn.rolling_mean.abs().sum() > 0) for bn in bns)


def make_dataset(root: Path, model, seed: int = 0, exact: bool = False):
    """Write the dataset under ``root``; returns the .data path and the model's map
    detections. ``exact``: labels are the detections themselves (every class above 0.25),
    unperturbed."""
    from darknet_py.eval.map import map_detections
    assert_trained_bn(model)
    images = make_images(root / "images")
    classes = model.layers[model.heads[-1]].classes
    dets = map_detections(model, [str(p) for p in images])
    rng = np.random.default_rng(seed)
    for path, d in zip(images, dets):
        rows, cols = np.nonzero(d.probs > np.float32(0.25))
        found = [(int(c), *map(float, d.boxes[r])) for r, c in zip(rows, cols)]
        if exact:
            lines = [f"{c} {x!r} {y!r} {w!r} {h!r}" for c, x, y, w, h in found]
        else:
            lines = perturb(found, rng, classes)
        path.with_suffix(".txt").write_text("".join(line + "\n" for line in lines))
    (root / "valid.txt").write_text("".join(f"{p}\n" for p in images))
    names = (reference_root() / "images" / "coco.names").read_text()
    (root / "coco.names").write_text(names)
    data = root / "obj.data"
    data.write_text(f"classes={classes}\nvalid={root / 'valid.txt'}\nnames={root / 'coco.names'}\n")
    return data, dets
