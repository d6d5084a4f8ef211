"""Building the real Darknets: clean cache, reuse, concurrency, your own build."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from darknet_py.cli import main
from darknet_py.darknet import build_darknet, dump_case, from_existing
from darknet_py.darknet.build import MAKE_FLAGS, TARBALLS, detect_fork, source_root

ROOT = Path(__file__).resolve().parent.parent


def _cli_build(cache: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, DARKNET_PY_CACHE=str(cache), PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "darknet_py.cli", "darknet", "build", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def _clean_build(fork, darknet_build, tmp_path):
    """Two concurrent `darknet-py darknet build` into an empty cache: one build, same folder."""
    cache = tmp_path / "cache"
    procs = [_cli_build(cache, "--fork", fork) for _ in range(2)]
    outs = [p.communicate(timeout=1800) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    folders = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(folders) == 1
    folder = Path(folders.pop())
    assert folder.parent == cache / "darknet" and folder.name.startswith(f"{fork}-")
    assert sorted(p.name for p in (cache / "darknet").iterdir() if not p.name.startswith(".")) \
        == [folder.name]                                  # nothing half-built left beside it
    assert sum("building" in err for _, err in outs) == 1  # the second waited and reused
    meta = json.loads((folder / "build.json").read_text())
    assert meta["make"][2:] == MAKE_FLAGS[fork] and meta["src_hash"] == darknet_build.src_hash
    assert (folder / "build.log").is_file() and (folder / "darknet").is_file()
    start = time.monotonic()
    again = build_darknet(fork=fork, cache=cache / "darknet")
    assert again.folder == folder and time.monotonic() - start < 5
    return meta


@pytest.mark.slow
def test_pjreddie_builds_from_a_clean_cache_once_and_is_reused(darknet_pjreddie, tmp_path):
    meta = _clean_build("pjreddie", darknet_pjreddie, tmp_path)
    assert meta["lib"] == "libdarknet.a"


@pytest.mark.slow
def test_alexeyab_builds_from_a_clean_cache_once_and_is_reused(darknet_alexeyab, tmp_path):
    meta = _clean_build("alexeyab", darknet_alexeyab, tmp_path)
    assert meta["lib"] == "libdarknet.so"


FAKE_HEADER = "struct layer{ int n; }; typedef struct network{ int n; } network;\n"
FAKE_MAKEFILE = """all:
\tsleep 1
\techo built > libdarknet.a
\techo built > darknet
\techo "flags: $(GPU) $(CUDNN) $(OPENCV) $(OPENMP)"
"""


def test_concurrent_builds_of_one_source_build_once(tmp_path, darknet_pjreddie):
    """The cache logic on a stand-in source (a Makefile that sleeps): two processes at once
    build it once under the lock, atomically renamed; a third call reuses it at once.
    (``darknet_pjreddie``: only for its toolchain check -- builds need make and gcc.)"""
    tree = tmp_path / "fake-darknet"
    (tree / "include").mkdir(parents=True)
    (tree / "include" / "darknet.h").write_text(FAKE_HEADER)
    (tree / "Makefile").write_text(FAKE_MAKEFILE)
    cache = tmp_path / "cache"
    procs = [_cli_build(cache, str(tree)) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    folders = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(folders) == 1
    folder = Path(folders.pop())
    assert sum("building" in err for _, err in outs) == 1
    assert [p.name for p in (cache / "darknet").iterdir() if not p.name.startswith(".")] == [folder.name]
    assert "flags: 0 0 0 0" in (folder / "build.log").read_text()
    start = time.monotonic()
    assert build_darknet(tree, cache=cache / "darknet").folder == folder
    assert time.monotonic() - start < 2
    (tree / "Makefile").write_text(FAKE_MAKEFILE + "# changed\n")  # another source: another build
    assert build_darknet(tree, cache=cache / "darknet").folder != folder


def test_fixture_builds_are_reused(darknet_pjreddie, darknet_alexeyab):
    for build in (darknet_pjreddie, darknet_alexeyab):
        start = time.monotonic()
        assert build_darknet(fork=build.fork).folder == build.folder
        assert time.monotonic() - start < 5


def test_forks_detected_from_the_sources(darknet_pjreddie):
    for fork, name in TARBALLS.items():
        assert detect_fork(source_root() / name) == fork
    assert detect_fork(darknet_pjreddie.folder) == "pjreddie"  # a source tree


def test_your_own_build(darknet_alexeyab, ab_cases, tmp_path, capsys, monkeypatch):
    """--lib/--include: a Darknet built elsewhere (here: the fixture's, used as a user's)."""
    monkeypatch.setenv("DARKNET_PY_CACHE", str(tmp_path / "cache"))
    assert main(["darknet", "build", "--lib", str(darknet_alexeyab.lib),
                 "--include", str(darknet_alexeyab.include)]) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1])
    own = from_existing(darknet_alexeyab.lib, darknet_alexeyab.include)
    assert own.folder == folder and own.fork == "alexeyab"
    case = ab_cases / "yolov4-tiny-narrow-rand-256"
    out = dump_case(folder, case / "yolov4-tiny-narrow-256.cfg", case / "weights.weights",
                    out_dir=tmp_path / "c", input=case / "input.npy")
    for name in ("layer_030.npy", "layer_037.npy"):
        assert np.array_equal(np.load(out / name), np.load(case / name))
