"""Train cases made here with the real Darknet (tests/harness), checked by compare.

Each runs Darknet's train_network on a small cfg with random weights, X and truths, and
checks loss per iteration, the heads' deltas of iteration 1 and every tensor's update.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from darknet_py.compare import compare_case
from train_cases import make_train_case, random_truths

ROOT = Path(__file__).resolve().parent.parent


def _narrow_tiny(width: int, height: int, batch: int, subdivisions: int, extra_net: str = "",
                 yolo_extra: str = "", divide: int = 8) -> str:
    """cfg/yolov3-tiny.cfg with filters/divide (not the 255 before each [yolo]), the given
    size and batch, burn_in=3, and ``key=value`` overrides for [net] and each [yolo]."""
    overrides = {"[net]": dict(kv.split("=") for kv in extra_net.split()),
                 "[yolo]": dict(kv.split("=") for kv in yolo_extra.split())}
    overrides["[net]"].update(batch=str(batch), subdivisions=str(subdivisions),
                              width=str(width), height=str(height), burn_in="3")
    out, section = [], None
    for line in (ROOT / "cfg" / "yolov3-tiny.cfg").read_text().splitlines():
        s = line.strip()
        if s.startswith("["):
            section = s
            out.append(s)
            out += [f"{k}={v}" for k, v in overrides.get(s, {}).items()]
            continue
        key = s.split("=")[0].strip() if "=" in s else None
        if key is None or key in overrides.get(section, {}):
            continue
        value = s.split("=", 1)[1].strip()
        if section == "[convolutional]" and key == "filters" and value != "255":
            value = str(max(2, int(value) // divide))
        out.append(f"{key}={value}")
    return "\n".join(out) + "\n"


def _check(report):
    assert report.ok, "\n".join(report.lines())
    print("\n".join(report.lines()))
    return report


def test_pjreddie_tiny_nonsquare_crowded(tmp_path):
    """224x160, 2 images, many truths incl. two on one cell+anchor (Darknet's overwrite)."""
    rng = np.random.default_rng(11)
    X = rng.random((2, 3, 160, 224), dtype=np.float32)
    y = random_truths(rng, 2, 90, [12, 30], 80)
    y[0, 12] = y[0, 3]           # same box, other class: same cell and anchor
    y[0, 12, 4] = (y[0, 3, 4] + 1) % 80
    y[0, 13] = y[0, 5]
    y[0, 13, 0:2] += 0.001       # nearly the same box: later one wins the box deltas
    y[0, 13, 4] = 7
    cfg = _narrow_tiny(224, 160, 2, 1)
    report = _check(compare_case(make_train_case("pjreddie", cfg, tmp_path / "c", X, y, K=3)))
    assert sum(1 for name, _, _ in report.checks if "delta" in name) == 2


def test_pjreddie_truth_thresh_and_subdivisions(tmp_path):
    """ignore_thresh=.05 / truth_thresh=.1 reach both branches of the cell loop; batch 4
    in 2 subdivisions accumulates two mini-batches per update."""
    rng = np.random.default_rng(12)
    X = rng.random((4, 3, 128, 128), dtype=np.float32)
    y = random_truths(rng, 4, 90, [20, 5, 0, 40], 80)
    cfg = _narrow_tiny(128, 128, 4, 2, yolo_extra="ignore_thresh=.05 truth_thresh=.1")
    _check(compare_case(make_train_case("pjreddie", cfg, tmp_path / "c", X, y, K=2)))
