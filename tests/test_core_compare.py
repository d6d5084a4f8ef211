"""Layer-by-layer parity with the real Darknet, through the user-facing compare."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from darknet_py import DataError
from darknet_py.cli import main
from darknet_py.compare import compare_case

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
    assert out[0].split() == ["layer", "type", "shape", "max_abs", "max_rel"]
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
