"""The .weights size each corpus cfg expects equals what the real Darknet reads for it.

``tools/darknet_weights_size.c`` (compiled against each fork's build from the
bridge fixtures) parses the cfg with that fork's ``parse_network_cfg`` and writes
its ``save_weights`` file, whose size is what ``load_weights`` reads (the same
per-layer loop). darknet_py's size: the 20-byte header plus 4 bytes per float of
every layer's ``weight_tensors``. The default run checks the tiny YOLO cfgs of both
forks; ``-m slow`` checks every cfg that builds (tools/coverage.py writes the table).
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import darknet_py
from darknet_py.errors import DarknetError

from conftest import reference_root

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from coverage import compile_size_tool  # noqa: E402

sys.path.pop(0)


def _cfgs(reference_dir: Path, fork: str, tiny: bool):
    manifest = json.loads((reference_dir / "cfg" / "manifest.json").read_text())
    return [reference_dir / "cfg" / fork / e["file"] for e in manifest["cfgs"]
            if e["repo"] == fork and (not tiny or ("tiny" in e["file"] and "yolo" in e["file"]))]


def _all_flat(model) -> bool:
    """No layer whose input is wider and taller than 1 (AlexeyAB's avg_counter stays 0)."""
    shapes = [model.input_shape] + [layer.out_shape for layer in model.layers[:-1]]
    return not any(s.w > 1 and s.h > 1 for s in shapes)


#: the CfgWarning of a pjreddie-style strided [shortcut] read in the AlexeyAB dialect
STRIDED = "AlexeyAB's Darknet aborts here (assert in parse_shortcut)"


def _check(build, fork: str, cfgs, tmp_path: Path, strided_build=None) -> int:
    """Our .weights size of each cfg that builds == the size ``build``'s save_weights writes.
    An AlexeyAB cfg with pjreddie-style strided shortcuts: AlexeyAB's parser must abort on it,
    and the size is pjreddie's (``strided_build``), whose rule darknet_py follows there."""
    tool = compile_size_tool(Path(build.folder), fork, tmp_path / f"ws_{fork}")
    # Darknet opens the data files cfgs name (tree=data/9k.tree) relative to its working
    # directory: run it beside the reference's data folder
    data = reference_root() / "data"
    if data.is_dir() and not (tmp_path / "data").exists():
        (tmp_path / "data").symlink_to(data)
    pj_tool = None
    checked = 0
    for cfg in cfgs:
        try:
            with warnings.catch_warnings(record=True) as caught, torch.device("meta"):
                warnings.simplefilter("always")
                model = darknet_py.load(cfg, dialect=fork)
        except DarknetError:
            continue  # the coverage table lists what does not build
        ours = 20 + 4 * sum(layer.weight_count() for layer in model.layers)
        done = subprocess.run([str(tool), str(cfg), str(tmp_path / "w.weights")], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
        if any(STRIDED in str(w.message) for w in caught):
            assert done.returncode != 0 and "parse_shortcut: Assertion" in done.stderr, cfg.name
            if strided_build is None:
                continue
            if pj_tool is None:
                pj_tool = compile_size_tool(Path(strided_build.folder), "pjreddie",
                                            tmp_path / "ws_pjreddie")
            done = subprocess.run([str(pj_tool), str(cfg), str(tmp_path / "w.weights")],
                                  cwd=tmp_path, capture_output=True, text=True, timeout=600)
        if fork == "alexeyab" and _all_flat(model):
            # parse_network_cfg divides avg_outputs by the count of layers with w > 1 and
            # h > 1: an integer division by zero (SIGFPE) on networks made only of flat layers
            assert done.returncode == -signal.SIGFPE, f"{cfg.name}: {done.stderr[-500:]}"
            continue
        assert done.returncode == 0, f"{cfg.name}: {done.stderr[-500:]}"
        assert int(done.stdout.split()[-1]) == ours, cfg.name
        checked += 1
    return checked


def test_tiny_cfgs_pjreddie(darknet_pjreddie, reference, tmp_path):
    assert _check(darknet_pjreddie, "pjreddie", _cfgs(reference, "pjreddie", True), tmp_path) >= 3


def test_tiny_cfgs_alexeyab(darknet_alexeyab, reference, tmp_path):
    assert _check(darknet_alexeyab, "alexeyab", _cfgs(reference, "alexeyab", True), tmp_path) >= 12


@pytest.mark.slow
@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_every_cfg(fork, request, reference, tmp_path):
    build = request.getfixturevalue(f"darknet_{fork}")
    pj = request.getfixturevalue("darknet_pjreddie") if fork == "alexeyab" else None
    assert _check(build, fork, _cfgs(reference, fork, False), tmp_path, pj) >= 40


#: AlexeyAB's cfgs with pjreddie-style strided [shortcut]s
STRIDED_CFGS = ("resnet50.cfg", "resnet101.cfg", "resnet152.cfg", "resnext152-32x4d.cfg",
                "build-darknet-x64/resnet50_yolo.cfg", "build-darknet-x64/resnet152_yolo.cfg")


def test_strided_resnet50_alexeyab(darknet_alexeyab, darknet_pjreddie, reference, tmp_path):
    """AlexeyAB's resnet50.cfg: AlexeyAB's parser aborts; the size is pjreddie's Darknet's."""
    cfg = reference / "cfg" / "alexeyab" / "resnet50.cfg"
    assert _check(darknet_alexeyab, "alexeyab", [cfg], tmp_path, darknet_pjreddie) == 1


@pytest.mark.slow
def test_strided_resnets_alexeyab(darknet_alexeyab, darknet_pjreddie, reference, tmp_path):
    cfgs = [reference / "cfg" / "alexeyab" / name for name in STRIDED_CFGS]
    assert _check(darknet_alexeyab, "alexeyab", cfgs, tmp_path, darknet_pjreddie) == 6
