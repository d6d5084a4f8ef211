"""Layer-by-layer parity with the real Darknet, through the user-facing compare."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from darknet_py import DataError
from darknet_py.cli import main
from darknet_py import compare as cmp
from darknet_py.compare import FLOOR_CAP, FLOOR_FACTOR, compare_case, layer_diff

FORWARD = ["darknet/yolov3-narrow-rand-320", "darknet/tiny-rand-nonsquare",
           "darknet-alexeyab/yolov4-tiny-narrow-rand-256"]


@pytest.mark.parametrize("case", FORWARD)
def test_forward_cases_match_darknet(reference, case):
    report = compare_case(reference / case)
    assert report.ok, "\n".join(report.lines())
    assert len(report.rows) == len(json.loads((reference / case / "case.json").read_text())["layers"])
    assert report.worst.max_rel < 1e-4


def test_official_tiny_dog_matches_darknet(pj_cases, tiny_weights):
    report = compare_case(pj_cases / "tiny-official-dog", weights=tiny_weights)
    assert report.ok and len(report.rows) == 24
    assert report.worst.max_rel < 2e-5
    assert [name for name, _, _ in report.checks] == [
        "detections at thresh 0.5", "printed lines at thresh 0.5",
        "detections at thresh 0.005", "printed lines at thresh 0.005"]


def test_detect_mode_catches_a_moved_box(pj_cases, tiny_weights, tmp_path):
    broken = tmp_path / "dog"
    shutil.copytree(pj_cases / "tiny-official-dog-416x256", broken)
    dets = np.load(broken / "dets_t0.5.npy")
    row = int(np.nonzero((dets[:, 5:] > 0.5).any(axis=1))[0][0])
    dets[row, 0] += 0.01
    np.save(broken / "dets_t0.5.npy", dets)
    report = compare_case(broken, weights=tiny_weights)
    assert not report.ok and report.first_bad is None
    assert [name for name, ok, _ in report.checks if not ok] == ["detections at thresh 0.5"]


def test_cli_prints_table_and_exit_codes(pj_cases, tmp_path, capsys):
    case = pj_cases / "tiny-rand-nonsquare"
    assert main(["compare", str(case)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["layer", "type", "shape", "max_abs", "max_rel", "floor", "allowed"]
    assert out[1].split()[:3] == ["0", "convolutional", "4x256x416"]
    assert out[-2] == "first layer over tolerance: none" and out[-1].startswith("OK: ")

    broken = tmp_path / "broken"
    shutil.copytree(case, broken)
    ref = np.load(broken / "layer_005.npy")
    ref[0, 0, 0] += 0.01 * np.abs(ref).max()
    np.save(broken / "layer_005.npy", ref)
    assert main(["compare", str(broken)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == "first layer over tolerance: 5 (maxpool)"
    assert out[-1].startswith("MISMATCH: ")


def test_floor_is_measured_and_small_on_the_visible_cases(reference):
    # darknet_py's own float32-vs-float64 distance: of the order of the error, never zero on convs
    report = compare_case(reference / "darknet/tiny-rand-nonsquare")
    for row in report.rows:
        assert 1e-8 < row.floor < 1e-5 and row.allowed == cmp.DEFAULT_TOLERANCE, row.format()
        assert row.max_rel <= FLOOR_FACTOR * row.floor, row.format()


def test_a_perturbed_layer_is_a_mismatch_although_its_floor_is_small(pj_cases, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(pj_cases / "tiny-rand-nonsquare", broken)
    ref = np.load(broken / "layer_013.npy")
    ref[3, 2, 1] += 3e-4 * np.abs(ref).max()       # 3x the fixed tolerance, ~100x the floor
    np.save(broken / "layer_013.npy", ref)
    report = compare_case(broken)
    bad = report.first_bad
    assert bad is not None and bad.index == 13 and bad.floor < 1e-5
    assert [r.index for r in report.rows if not r.ok] == [13]


def test_a_fault_in_darknet_py_is_not_hidden_by_the_floor(pj_cases, monkeypatch):
    # The floor is darknet_py against itself: a wrong formula is wrong in float64 too.
    from darknet_py.layers import activations
    monkeypatch.setitem(activations._ACTIVATIONS, "leaky",
                        lambda x: __import__("torch").where(x > 0, x, 0.1001 * x))
    # the patched table is the plain path's (the fast path fuses leaky into the conv)
    report = compare_case(pj_cases / "tiny-rand-nonsquare", fast=False)
    bad = report.first_bad
    assert bad is not None and bad.index == 0, "\n".join(report.lines())
    assert bad.max_rel > 1e-4 and bad.floor < 1e-6


def test_noise_floor_rule_on_synthetic_layers():
    ref = np.linspace(-1, 1, 101, dtype=np.float32)
    noise = np.zeros_like(ref)
    noise[7] = 3e-4
    ours = ref + noise
    # darknet_py's float32 is 1e-4 from its float64: 3e-4 from Darknet is within k = FLOOR_FACTOR times that
    deep = layer_diff(0, "convolutional", ours, ref, ours64=ours.astype(np.float64) + 1e-4)
    assert deep.ok and np.isclose(deep.floor, 1e-4) and np.isclose(deep.allowed, FLOOR_FACTOR * 1e-4)
    # ... but not under --strict, nor when darknet_py's own float32 is exact
    assert not layer_diff(0, "convolutional", ours, ref, ours64=ours.astype(np.float64) + 1e-4,
                          strict=True).ok
    shallow = layer_diff(0, "convolutional", ours, ref, ours64=ours.astype(np.float64) + 1e-7)
    assert not shallow.ok and shallow.allowed == 1e-4
    # no float64 output: the fixed tolerance
    assert not layer_diff(0, "convolutional", ours, ref).ok


def test_noise_floor_rule_on_discontinuities_and_overflow():
    ref = np.arange(-4, 5, dtype=np.float32)
    # a step activation that flips one element between float32 and float64: the floor is
    # huge, but it never excuses more than FLOOR_CAP, and the row says why
    flipped = ref.astype(np.float64)
    flipped[2] += 1.0
    row = layer_diff(0, "activation", ref + np.float32(0.1), ref, ours64=flipped)
    assert not row.ok and row.allowed == FLOOR_CAP and "ill-conditioned" in row.note
    # float32 overflowed where float64 did not: floor inf, still capped
    ours = ref.copy()
    ours[0] = np.inf
    row = layer_diff(0, "convolutional", ours, ref, ours64=ref.astype(np.float64))
    assert not row.ok and row.floor == np.inf and "darknet_py has 1 inf/nan" in row.note
    # the same inf in Darknet and in both of ours is a match; a nan where Darknet has a number is not
    ref_inf = ours.copy()
    assert layer_diff(0, "convolutional", ours, ref_inf, ours64=ours.astype(np.float64)).ok
    nan = ref.copy()
    nan[1] = np.nan
    assert not layer_diff(0, "convolutional", nan, ref, ours64=nan.astype(np.float64)).ok
    # a layer that is all zeros in Darknet and in ours (e.g. relu of negatives)
    zero = np.zeros(5, np.float32)
    assert layer_diff(0, "convolutional", zero, zero, ours64=zero.astype(np.float64)).ok
    assert not layer_diff(0, "convolutional", zero + 1e-9, zero, ours64=zero.astype(np.float64)).ok


def test_cli_strict_keeps_the_fixed_tolerance(pj_cases, capsys):
    assert main(["compare", "--strict", str(pj_cases / "tiny-rand-nonsquare")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("OK: ") and "strict" in out[-1]


def test_compare_rejects_what_it_cannot_run(pj_cases, tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "no case.json" in capsys.readouterr().err

    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "case.json").write_text('{"cfg": "x.cfg", "mode": "fancy"}')
    with pytest.raises(DataError, match="fancy"):
        compare_case(odd)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("case", FORWARD)
def test_forward_cases_match_darknet_on_cuda(reference, case):
    # PyTorch lets cuDNN use TF32 by default (~1e-3 drift); the model keeps float32 unless
    # model.allow_tf32 is set. Measured on an H200: worst 2.2e-5 (yolov3-narrow).
    report = compare_case(reference / case, device="cuda")
    assert report.ok, "\n".join(report.lines())


def test_wide_sums_changes_only_the_rounding_of_convolution_sums():
    # compare's delta floor: inside wide_sums a float32 convolution / matrix product sums in
    # float64 and rounds once, forward and backward; the result stays float32 and everything
    # else (here the leaky) is untouched
    import torch
    import torch.nn.functional as F
    from darknet_py.compare import wide_sums
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 16, 9, 9, generator=g, requires_grad=True)
    w = torch.randn(8, 16, 3, 3, generator=g, requires_grad=True)
    m = torch.randn(8, 5, generator=g)

    def run():
        y = F.leaky_relu(F.conv2d(x, w, None, 1, 1), 0.1)
        z = y.flatten(2).mean(2) @ m
        (z * z).sum().backward()
        out = (z.detach().clone(), x.grad.clone(), w.grad.clone())
        x.grad = w.grad = None
        return out
    plain = run()
    with wide_sums():
        wide = run()
    with torch.no_grad():
        y = F.leaky_relu(F.conv2d(x.double(), w.double(), None, 1, 1).float(), 0.1)
        zd = (y.flatten(2).mean(2).double() @ m.double()).float()
    assert all(t.dtype == torch.float32 for t in wide)
    assert torch.equal(wide[0], zd)  # the float64 sums, rounded once
    for a, b in zip(plain, wide):  # float32 rounding apart, no more
        assert 0 < (a - b).abs().max() <= 1e-5 * b.abs().max()
