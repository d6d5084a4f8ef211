"""Bad datasets through the CLI of the evaluation verbs (``detector map``, ``detector
valid``, ``detector calc_anchors``, ``detector train -map``): a valid list naming missing
images, labels with a class out of range, an empty list, a cfg whose classes disagree with
the .data file. Each is exit status 2 with one stderr line naming the file and the cause,
nothing on stdout, and no file written or changed (checked on the whole folder tree)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from PIL import Image

from darknet_py.cli import main

CFG = """[net]
batch=2
subdivisions=1
width=32
height=32
channels=3
max_batches=2
[convolutional]
batch_normalize=1
filters=4
size=3
stride=2
pad=1
activation=leaky
[convolutional]
filters=21
size=1
activation=linear
[yolo]
mask=0,1,2
anchors=4,4, 8,8, 12,12
classes=2
num=3
"""

CASES = {
    # case: (regular expression of the one stderr line)
    "missing": r"valid\.txt: 2 of 3 listed images do not exist: \S*im1\.png, \S*im2\.png$",
    "class": r"im0\.txt:2: class id 2 is outside 0\.\.1 \(the model has 2 classes\)$",
    "empty": r"valid\.txt: the image list is empty",
    "classes": r"x\.data: classes: classes=20 but the cfg's detection layers have 2 classes$",
}


def _dataset(root: Path, case: str) -> Path:
    """A .data (valid= and train= the same list) broken the way ``case`` says."""
    folder = root / "set"
    folder.mkdir()
    count = {"missing": 3, "empty": 0}.get(case, 2)
    listed = []
    for i in range(count):
        image = folder / f"im{i}.png"
        if case != "missing" or i == 0:
            Image.new("RGB", (40, 30), (i * 60, 90, 30)).save(image)
        label = "0 .5 .5 .2 .3\n" + ("2 .4 .4 .1 .1\n" if case == "class" and i == 0 else "")
        image.with_suffix(".txt").write_text(label)
        listed.append(str(image))
    (folder / "valid.txt").write_text("".join(p + "\n" for p in listed))
    (folder / "x.names").write_text("a\nb\n")
    data = folder / "x.data"
    classes = 20 if case == "classes" else 2
    data.write_text(f"classes={classes}\ntrain={folder / 'valid.txt'}\n"
                    f"valid={folder / 'valid.txt'}\nnames={folder / 'x.names'}\n"
                    f"backup={root / 'backup'}\nresults={root / 'results'}\n")
    (root / "t.cfg").write_text(CFG)
    return data


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


VERBS = {
    "map": lambda data, cfg: ["detector", "map", data, cfg, "none"],
    "map --coco": lambda data, cfg: ["detector", "map", data, cfg, "none", "--coco"],
    "valid": lambda data, cfg: ["detector", "valid", data, cfg, "none"],
    "train -map": lambda data, cfg: ["detector", "train", data, cfg, "-map", "--workers", "0",
                                     "--no-chart", "-dont_show"],
}
#: what each verb reads: valid writes detections and never opens labels
SKIP = {("valid", "class")}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("verb", list(VERBS))
def test_one_line_and_nothing_written(tmp_path, capsys, monkeypatch, verb, case):
    if (verb, case) in SKIP:
        pytest.skip("detector valid does not read labels")
    data = _dataset(tmp_path, case)
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    assert main(VERBS[verb](str(data), str(tmp_path / "t.cfg"))) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1, (out, err)
    assert lines[0].startswith("darknet-py: error: ")
    assert re.search(CASES[case], lines[0]), lines[0]
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("case", ["empty", "class"])
def test_calc_anchors_bad_lists(tmp_path, capsys, monkeypatch, case):
    """calc_anchors reads only the train list and its labels: an empty list is one line and
    writes no anchors.txt; a class id >= classes is counted, as Darknet grows its counters
    (not an error there, so not here)."""
    data = _dataset(tmp_path, case)
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    code = main(["detector", "calc_anchors", str(data), "-num_of_clusters", "2", "-width",
                 "32", "-height", "32", "--seed", "1"])
    out, err = capsys.readouterr()
    if case == "empty":
        assert code == 2  # stdout: only the header Darknet prints before reading the list
        assert out.strip() == "num_of_clusters = 2, width = 32, height = 32"
        lines = err.strip().splitlines()
        assert len(lines) == 1 and re.search(r"valid\.txt: the image list is empty", lines[0])
        assert _tree(tmp_path) == before
    else:
        assert code == 0 and "counters_per_class = 2, 0, 1" in out
        assert os.path.isfile(tmp_path / "anchors.txt")
