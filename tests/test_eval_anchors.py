"""calc_anchors: AlexeyAB's own ./darknet detector calc_anchors (its srand(time(0)) pinned by
an LD_PRELOAD time()) prints the same text, anchors and avg IoU as darknet-py with that seed;
k-means++ with restarts recovers 9 known sizes; anchors go into a cfg variant."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from darknet_py import DataError
from darknet_py.eval.anchors import anchor_values, calc_anchors

from conftest import reference_root

SIZES = [(10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198),
         (373, 326)]


def _labels(root: Path, spread: float, images: int = 12, per: int = 20, seed: int = 1):
    rng = np.random.default_rng(seed)
    (root / "im").mkdir(parents=True)
    paths = []
    for i in range(images):
        p = root / "im" / f"{i}.jpg"
        paths.append(p)
        lines = []
        for _ in range(per):
            w, h = SIZES[rng.integers(len(SIZES))]
            w, h = w * np.exp(rng.normal(0, spread)), h * np.exp(rng.normal(0, spread))
            lines.append(f"{rng.integers(3)} {rng.uniform(.3, .7):.6f} {rng.uniform(.3, .7):.6f} "
                         f"{min(w / 416, 1):.6f} {min(h / 416, 1):.6f}")
        p.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    (root / "train.txt").write_text("".join(f"{p}\n" for p in paths))
    data = root / "obj.data"
    data.write_text(f"classes=3\ntrain={root / 'train.txt'}\n")
    return data


@pytest.mark.parametrize("seed,clusters", [(4242, 9), (7, 6)])
def test_same_seed_same_output_as_alexeyab(tmp_path, darknet_alexeyab, seed, clusters):
    if darknet_alexeyab.exe is None or shutil.which("gcc") is None:
        pytest.skip("needs the AlexeyAB ./darknet and gcc (to pin its time())")
    fake = tmp_path / "faketime.c"
    fake.write_text("#include <time.h>\ntime_t time(time_t *t) { if (t) *t = %d; return %d; }\n"
                    % (seed, seed))
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "faketime.so"), str(fake)],
                   check=True)
    data = _labels(tmp_path / "set", spread=0.3)
    run = subprocess.run([str(darknet_alexeyab.exe), "detector", "calc_anchors", str(data),
                          "-num_of_clusters", str(clusters), "-width", "416", "-height", "416"],
                         cwd=tmp_path, capture_output=True, timeout=300,
                         env={**os.environ, "LD_PRELOAD": str(tmp_path / "faketime.so")})
    assert run.returncode == 0, run.stderr[-2000:]
    stdout = run.stdout.decode()  # bytes: keep its "\r"
    want = stdout[stdout.index("\n num_of_clusters"):]
    printed = []
    result = calc_anchors(data, clusters, 416, 416, seed=seed, out=printed.append)
    assert "".join(printed) == want
    assert (tmp_path / "anchors.txt").read_text() == want.split("anchors = ")[1].split("\n")[0]
    assert result.iterations >= 1


def test_kmeans_plusplus_recovers_nine_sizes(tmp_path):
    data = _labels(tmp_path, spread=0.02, images=20, per=30)
    result = calc_anchors(data, 9, 416, 416, seed=0, init="kmeans++", restarts=5)
    got = sorted(map(tuple, result.centers.tolist()), key=lambda s: s[0] * s[1])
    want = sorted(SIZES, key=lambda s: s[0] * s[1])
    assert np.abs(np.array(got) - np.array(want)).max() <= 2.0


def test_anchors_into_a_cfg_variant(tmp_path, capsys, monkeypatch):
    from darknet_py.cli import main
    from darknet_py import Darknet
    from darknet_py.cfg import read_cfg
    cfg = reference_root() / "cfg" / "pjreddie" / "yolov3.cfg"
    if not cfg.is_file():
        pytest.skip("reference cfg not found")
    data = _labels(tmp_path / "set", spread=0.05)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "y.cfg"
    assert main(["detector", "calc_anchors", str(data), "-num_of_clusters", "9", "-width", "416",
                 "-height", "416", "--seed", "3", "--cfg", str(cfg), "--out-cfg", str(out)]) == 0
    printed = capsys.readouterr().out
    line = printed.split("anchors = ")[1].splitlines()[0]
    model = Darknet(read_cfg(out), warn_unused=False)
    head = model.layers[model.heads[0]]
    assert head.anchors == [float(v) for v in line.replace(" ", "").split(",")]
    assert (tmp_path / "anchors.txt").read_text() == line


def test_bad_anchor_inputs(tmp_path):
    data = tmp_path / "x.data"
    (tmp_path / "t.txt").write_text("")
    data.write_text(f"train={tmp_path / 't.txt'}\n")
    with pytest.raises(DataError, match="t.txt: the image list is empty"):
        calc_anchors(data, 9, 416, 416)
    with pytest.raises(DataError, match="width, height and num_of_clusters must be > 0"):
        calc_anchors(data, 9, -1, 416)
    small = _labels(tmp_path / "s", spread=0.1, images=1, per=3)
    with pytest.raises(DataError, match="3 label boxes for 9 clusters"):
        calc_anchors(small, 9, 416, 416)
