"""The live bridge reproduces every visible reference case of the real Darknet.

For each case folder in ``shared/reference`` (both forks), ``dump_case`` runs the
Darknet build of the fixture (built from ``shared/darknet-src`` with the
reference's flags) with that case's cfg, weights and input, and every array it
writes must equal the reference's within 1e-6 (of the array's max |value|, at
least 1e-6 absolute); printed lines, train logs and ``.weights`` files must be
identical. Without weights, the random init from the case's seed must reproduce
the case's ``.weights`` byte for byte.
"""
from __future__ import annotations

import filecmp
import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import reference_root
from darknet_py.cli import main
from darknet_py.compare import compare_case
from darknet_py.darknet import dump_case


def _visible_cases():
    root = reference_root()
    found = []
    for fork_dir in ("darknet", "darknet-alexeyab"):
        for case in sorted((root / fork_dir).glob("*/case.json")) if (root / fork_dir).is_dir() else []:
            found.append(f"{fork_dir}/{case.parent.name}")
    return found or ["darknet/tiny-rand-nonsquare"]  # no data: the test skips via the fixture


CASES = _visible_cases()


def _build(request, manifest):
    fork = "alexeyab" if "alexeyab" in manifest["darknet"]["repo"].lower() else "pjreddie"
    return request.getfixturevalue(f"darknet_{fork}")


def _weights(request, folder: Path, manifest) -> Path:
    name = manifest["weights"].split(" ")[0]
    if (folder / name).is_file():
        return folder / name
    return request.getfixturevalue("tiny_weights")  # the official weights, not stored in cases


def assert_same_arrays(ref: Path, out: Path) -> float:
    worst, count = 0.0, 0
    for path in sorted(ref.glob("*.npy")):
        want, got = np.load(path), np.load(out / path.name)
        assert got.shape == want.shape and got.dtype == want.dtype, path.name
        diff = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()) if want.size else 0.0
        scale = max(1.0, float(np.abs(want).max()) if want.size else 0.0)
        assert diff <= 1e-6 * scale, f"{path.name}: max error {diff:g}"
        worst, count = max(worst, diff), count + 1
    assert count > 0
    for path in sorted(ref.glob("*.txt")) + sorted(ref.glob("weights_iter*.weights")):
        assert path.read_bytes() == (out / path.name).read_bytes(), path.name
    return worst


@pytest.mark.parametrize("case", CASES)
def test_dump_reproduces_reference_case(reference, request, case, tmp_path):
    folder = reference / case
    manifest = json.loads((folder / "case.json").read_text())
    build = _build(request, manifest)
    out = tmp_path / "case"
    cfg = folder / manifest["cfg"]
    if manifest["mode"] == "forward":
        dump_case(build, cfg, _weights(request, folder, manifest), mode="forward", out_dir=out,
                  input=folder / "input.npy")
    elif manifest["mode"] == "detect":
        dump_case(build, cfg, _weights(request, folder, manifest), mode="detect", out_dir=out,
                  image=reference / "images" / manifest["image"],
                  thresholds=manifest["thresholds"], hier_thresh=manifest["hier_thresh"],
                  nms=manifest["nms"])
    else:
        dump_case(build, cfg, folder / "weights_init.weights", mode="train", out_dir=out,
                  X=folder / "X.npy", y=folder / "y.npy", iterations=manifest["K"],
                  seed=manifest["seed"])
    assert_same_arrays(folder, out)
    mine = json.loads((out / "case.json").read_text())
    for key in ("num_dets", "train_log", "yolo_cost_iter1", "image_shape_chw", "net_params", "K"):
        if key in manifest:
            assert mine[key] == manifest[key], key
    want_layers = [(l["index"], l["type"], l["out_c"], l["out_h"], l["out_w"]) for l in manifest["layers"]]
    got_layers = [(l["index"], l["type"], l["out_c"], l["out_h"], l["out_w"]) for l in mine["layers"]]
    assert got_layers == want_layers


@pytest.mark.parametrize("case", [c for c in CASES if "rand" in c or "train" in c])
def test_random_init_reproduces_reference_weights(reference, request, case, tmp_path):
    """Without weights, `seed` gives the very .weights file of the case (its `init` text)."""
    folder = reference / case
    manifest = json.loads((folder / "case.json").read_text())
    build = _build(request, manifest)
    train = manifest["mode"] == "train"
    out = dump_case(build, folder / manifest["cfg"], mode=manifest["mode"], out_dir=tmp_path / "c",
                    seed=manifest["seed"], input_seed=manifest.get("input_seed"),
                    X=folder / "X.npy" if train else None, y=folder / "y.npy" if train else None,
                    iterations=manifest.get("K", 1))
    name = "weights_init.weights" if train else "weights.weights"
    assert filecmp.cmp(out / name, folder / name, shallow=False)
    assert_same_arrays(folder, out)  # input from input_seed, every layer (train: every iteration)
    assert "init" in json.loads((out / "case.json").read_text())


def test_cli_dump_then_compare(reference, darknet_alexeyab, tmp_path, capsys):
    folder = reference / "darknet-alexeyab" / "yolov4-tiny-narrow-rand-256"
    out = tmp_path / "ab"
    assert main(["darknet", "dump", str(darknet_alexeyab.folder),
                 str(folder / "yolov4-tiny-narrow-256.cfg"), "--seed", "1", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    assert filecmp.cmp(out / "weights.weights", folder / "weights.weights", shallow=False)
    text = (out / "case.json").read_text()
    assert str(tmp_path) not in text and str(folder) not in text  # no absolute paths
    report = compare_case(out)
    assert report.ok and len(report.rows) == 38


def test_cli_compare_live(darknet_pjreddie, pj_cases, capsys):
    cfg = pj_cases / "tiny-rand-nonsquare" / "yolov3-tiny-narrow-416x256.cfg"
    weights = pj_cases / "tiny-rand-nonsquare" / "weights.weights"
    assert main(["compare", "--darknet", str(darknet_pjreddie.folder), str(cfg), str(weights)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("OK: ")


def test_train_mode_random_batch_alexeyab(darknet_alexeyab, ab_cases, tmp_path):
    """Seeded random batch and boxes (AlexeyAB: 6 floats a box, [yolo] max=200 boxes)."""
    cfg = ab_cases / "yolov4-tiny-narrow-rand-256" / "yolov4-tiny-narrow-256.cfg"
    out = dump_case(darknet_alexeyab, cfg, mode="train", out_dir=tmp_path / "t", iterations=2)
    m = json.loads((out / "case.json").read_text())
    y = np.load(out / "y.npy")
    assert y.shape == (1, 200, 6) and (y[0, 0, :4] > 0).all()
    assert [row["iter"] for row in m["train_log"]] == [1, 2]
    assert [row["seen_after"] for row in m["train_log"]] == [1, 2]
    assert sorted(m["yolo_cost_iter1"]) == ["30", "37"]
    assert np.load(out / "iter1_yolo_delta_037.npy").shape == (1, 255, 16, 16)
    assert (out / "weights_iter2.weights").is_file()
    again = dump_case(darknet_alexeyab, cfg, mode="train", out_dir=tmp_path / "t2", iterations=2)
    assert filecmp.cmp(out / "weights_iter2.weights", again / "weights_iter2.weights", shallow=False)
