"""[Gaussian_yolo] training (AlexeyAB gaussian_yolo_layer.c) against the real AlexeyAB Darknet.

Each case runs the bridge's train mode (``darknet_py.darknet.dump_case(mode="train")``, the
harness's K train_network calls on given X/y and weights) and checks it with
``darknet_py.compare.compare_case``: loss per iteration, the heads' outputs, deltas and
costs of iteration 1, and every tensor's update.

The uncertainty deltas (``temp*(e^2/s - 1/(s+0.3))`` with ``e = (t - mu)/s``) grow like
1/s^3 where a sigma is near 0; with random weights some sigma outputs are, and a few huge
deltas beside ordinary ones of ~1 would leave the 1e-5-of-max check blind to everything
else. Three cases therefore scale the two head convolutions by 0.1 (sigmas near
logistic(0) = .5); one keeps the random head as drawn (its largest delta ~110).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from darknet_py.compare import compare_case
from darknet_py.darknet import dump_case
from test_train_darknet import _narrow_tiny
from train_cases import random_model, random_truths

ROOT = Path(__file__).resolve().parent.parent


def gaussian_cfg(head_extra: str = "", classes: int = 6, batch: int = 2) -> str:
    """yolov3-tiny at 160x128, filters/8, with [Gaussian_yolo] heads of ``classes`` classes."""
    cfg = _narrow_tiny(160, 128, batch, 1)
    filters = 3 * (9 + classes)
    lines, out = cfg.splitlines(), []
    for line in lines:
        if line == "filters=255":
            line = f"filters={filters}"
        elif line == "[yolo]":
            out.append("[Gaussian_yolo]")
            out += head_extra.split()
            continue
        elif line.startswith("classes="):
            line = f"classes={classes}"
        out.append(line)
    text = "\n".join(out) + "\n"
    # keys given in head_extra replace the cfg's own
    given = {kv.split("=")[0] for kv in head_extra.split()}
    keep, section, seen = [], None, set()
    for line in text.splitlines():
        if line.startswith("["):
            section, seen = line, set()
        key = line.split("=")[0] if "=" in line else None
        if section == "[Gaussian_yolo]" and key in given:
            if key in seen:
                continue
            seen.add(key)
        keep.append(line)
    return "\n".join(keep) + "\n"


def run_case(tmp_path: Path, darknet_alexeyab, head_extra: str, seed: int, counts,
             head_scale: float = 0.1, classes: int = 6, K: int = 2):
    cfg_text = gaussian_cfg(head_extra, classes, batch=len(counts))
    folder = tmp_path / "in"
    folder.mkdir()
    cfg = folder / "net.cfg"
    cfg.write_text(cfg_text)
    model = random_model(cfg_text, "alexeyab", seed)
    heads = [i for i, l in enumerate(model.layers) if l.kind == "Gaussian_yolo"]
    assert len(heads) == 2
    with torch.no_grad():
        for i in heads:
            conv = model.layers[i - 1]
            conv.weight.mul_(head_scale)
            conv.bias.mul_(head_scale)
    weights = folder / "init.weights"
    model.save_weights(weights)
    rng = np.random.default_rng(seed)
    X = rng.random((len(counts), 3, 128, 160), dtype=np.float32)
    y5 = random_truths(rng, len(counts), 200, counts, classes)
    y = np.zeros((len(counts), 200, 6), np.float32)
    y[..., :5] = y5
    case = dump_case(darknet_alexeyab, cfg, weights, mode="train", out_dir=tmp_path / "case",
                     X=X, y=y, iterations=K)
    report = compare_case(case)
    print("\n".join(report.lines()))
    assert report.ok, "\n".join(report.lines())
    deltas = [name for name, _, _ in report.checks if "[Gaussian_yolo] delta" in name]
    assert len(deltas) == 2
    return report


def test_gaussian_yolo_giou_iou_thresh(tmp_path, darknet_alexeyab):
    """Gaussian_yolov3_BDD.cfg's head keys: GIoU, iou_normalizer=.5, iou_thresh=.213
    (several anchors per truth, in both heads)."""
    run_case(tmp_path, darknet_alexeyab, "iou_loss=giou iou_normalizer=0.5 iou_thresh=0.213 "
             "uc_normalizer=1.0", 51, [14, 25])


def test_gaussian_yolo_mse_smooth_truth_thresh(tmp_path, darknet_alexeyab):
    """MSE box loss, uc_normalizer, label_smooth_eps, objectness_smooth, obj_normalizer, and
    ignore/truth thresholds low enough for the cell loop's truth branch."""
    run_case(tmp_path, darknet_alexeyab, "iou_loss=mse uc_normalizer=0.7 label_smooth_eps=0.1 "
             "objectness_smooth=1 obj_normalizer=0.5 ignore_thresh=0.05 truth_thresh=0.1",
             52, [20, 12])


def test_gaussian_yolo_ciou_yolo_point_max_delta(tmp_path, darknet_alexeyab):
    """CIoU with yolo_point=left_top (targets and cells at the box corner), max_delta."""
    run_case(tmp_path, darknet_alexeyab, "iou_loss=ciou yolo_point=left_top max_delta=5 "
             "iou_thresh=0.3", 53, [18, 9])


def test_gaussian_yolo_unscaled_head(tmp_path, darknet_alexeyab):
    """The random head as drawn (sigmas spread over (0, 1)): the larger uncertainty
    deltas, the loss and the updates they drive match too."""
    run_case(tmp_path, darknet_alexeyab, "iou_loss=mse", 54, [10, 16], head_scale=1.0)


def test_gaussian_yolo_loss_by_hand():
    """One cell, one anchor, one truth: the deltas from the C's formulas worked in float64
    (delta_gaussian_yolo_box with MSE, iou_normalizer .75 and uc_normalizer 1 by default)."""
    import math
    from darknet_py.cfg import parse_cfg
    from darknet_py.model import Darknet
    cfg = ("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=10\nsize=32\n"
           "stride=32\n[Gaussian_yolo]\nclasses=1\nnum=1\nanchors=16,16\n")
    head = Darknet(parse_cfg(cfg), dialect="alexeyab").layers[1]
    #        x    sx   y    sy   w    sw   h     sh   obj  cls
    vals = [0.4, 0.5, 0.6, 0.4, 0.1, 0.5, -0.2, 0.6, 0.7, 0.2]
    out = torch.tensor(vals).view(1, 10, 1, 1)
    truth = torch.zeros(1, 3, 6)
    truth[0, 0, :5] = torch.tensor([0.5, 0.5, 0.4, 0.3, 0.0])
    delta, cost = head.loss(out, truth, (32, 32))
    scale = 2 - 0.4 * 0.3
    targets = [0.5, 0.5, math.log(0.4 * 32 / 16), math.log(0.3 * 32 / 16)]
    want = []
    for k, t in enumerate(targets):
        mu, s = vals[2 * k], vals[2 * k + 1]
        e = (t - mu) / s
        normal = math.exp(-e * e / 2) / (math.sqrt(2 * math.pi) * (s + 0.3))
        temp = 0.5 / (normal + 1e-9) * normal * scale
        want += [0.75 * temp * e / s, temp * (e * e / s - 1 / (s + 0.3))]
    want += [1 - 0.7, 1 - 0.2]
    got = delta.flatten().double()
    assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), rtol=1e-6, atol=1e-7), \
        (got.tolist(), want)
    assert float(cost) == pytest.approx(sum(v * v for v in want), rel=1e-6)
