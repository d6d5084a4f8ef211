"""benchmarks/train_side_by_side.py --noise: the one-ulp perturbation it starts Darknet and
darknet_py from, and the first-over-tolerance count its verdict rests on."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from train_side_by_side import first_over, narrow_cfg, nudge, perturb_weights  # noqa: E402

F32 = np.float32


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed distance b - a in float32 units in the last place (same-sign finite values)."""
    ia = a.view(np.int32).astype(np.int64)
    ib = b.view(np.int32).astype(np.int64)
    sign = np.where(a < 0, -1, 1)
    return (ib - ia) * sign


def test_nudge_one_ulp_each_way():
    a = np.array([1.0, -1.0, 3.4e38, -2.5e-38, 0.1, 0.0, -0.0, np.inf, -np.inf, np.nan,
                  np.finfo(F32).tiny], F32)
    finite = np.isfinite(a) & (a != 0)
    up, down = nudge(a, "+"), nudge(a, "-")
    assert up.dtype == down.dtype == F32
    # every nonzero finite value moved exactly one float32 step, up / down (the smallest
    # normal, whose step toward 0 is a denormal, away from 0)
    normal = finite & (np.abs(a) > np.finfo(F32).tiny)
    assert (up[normal] > a[normal]).all() and (down[normal] < a[normal]).all()
    assert up[-1] > a[-1] and down[-1] > a[-1]
    assert (np.abs(_ulps(a[finite], up[finite])) == 1).all()
    assert (np.abs(_ulps(a[finite], down[finite])) == 1).all()
    assert up[0] == F32(1) + np.finfo(F32).eps and down[0] == F32(1) - np.finfo(F32).eps / 2
    # zeros (either sign), infinities and NaN stay bit for bit: no denormal appears
    keep = ~finite
    for moved in (up, down):
        assert moved[keep].tobytes() == a[keep].tobytes()
        assert not ((moved != 0) & (np.abs(moved) < np.finfo(F32).tiny)).any()


def test_nudge_random_direction_is_seeded():
    a = np.linspace(-2, 2, 1001, dtype=F32)
    r1, r1b, r2 = nudge(a, "~1"), nudge(a, "~1"), nudge(a, "~2")
    assert r1.tobytes() == r1b.tobytes()
    assert r1.tobytes() != r2.tobytes()
    nz = a != 0
    moved_up = r1[nz] > a[nz]
    assert (np.abs(r1[nz] - a[nz]) > 0).all()
    assert 0.4 < moved_up.mean() < 0.6  # both directions, about half each
    with pytest.raises(ValueError):
        nudge(a, "x")


def test_perturb_weights_file(tmp_path):
    """The perturbed .weights file keeps the header and moves every nonzero float of the
    body one ulp: loaded back, each tensor of the net is its original nudged."""
    from darknet_py import load
    from darknet_py.weights import read_header
    cfg = tmp_path / "net.cfg"
    cfg.write_text(narrow_cfg("pjreddie", 64, 1, 16, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load(cfg, dialect="pjreddie", warn_unused=False)
        model.save_weights(tmp_path / "a.weights")
        changed = perturb_weights(tmp_path / "a.weights", tmp_path / "b.weights", "+")
        moved = load(cfg, tmp_path / "b.weights", dialect="pjreddie", warn_unused=False)
    assert read_header(tmp_path / "a.weights") == read_header(tmp_path / "b.weights")
    a, b = model.state_dict(), moved.state_dict()
    total = 0
    for name, t in a.items():
        if not t.is_floating_point():
            continue
        x = t.detach().numpy().astype(F32)
        assert b[name].numpy().tobytes() == nudge(x, "+").tobytes(), name
        total += int((x != 0).sum())
    assert changed == total > 0
    n = (tmp_path / "a.weights").stat().st_size
    assert (tmp_path / "b.weights").stat().st_size == n


def test_first_over():
    assert first_over([0.0, 0.005, 0.02, 0.5], 0.01) == 3
    assert first_over([0.0, 0.01], 0.01) is None  # at the tolerance is within it
    assert first_over([0.0, float("inf")], 0.01) == 2  # a NaN loss counts as over
    assert first_over([float("nan")], 0.01) == 1
