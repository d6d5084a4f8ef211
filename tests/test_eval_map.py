"""detector map against AlexeyAB's own ``./darknet detector map`` (built by the bridge), on a
21-image fixture (tests/map_fixture.py), for -points 0, 11 and 101; COCO numbers against
pycocotools called directly; exact labels give AP 1; bad inputs are one clear line."""
from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

import darknet_py
from darknet_py import DataError
from darknet_py.cfg.variant import make_variant
from darknet_py.eval.map import evaluate, load_dataset, validate_detector_map

from conftest import reference_root
from map_fixture import make_dataset

CFG = reference_root() / "cfg" / "alexeyab" / "yolov3-tiny.cfg"
SIZE = 256  # a smaller network input keeps the C and Python runs short


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_weights):
    if not CFG.is_file() or not (reference_root() / "images").is_dir():
        pytest.skip("reference cfg/images not found")
    root = tmp_path_factory.mktemp("map")
    text, _ = make_variant(CFG.read_text(), str(CFG), width=SIZE, height=SIZE)
    cfg = root / "yolov3-tiny-256.cfg"
    cfg.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = darknet_py.load(cfg, tiny_weights, dialect="alexeyab", warn_unused=False)
    data, dets = make_dataset(root, model)
    return root, cfg, Path(tiny_weights), model, data, dets


def _darknet_lines(stdout: str):
    """The map section of Darknet's stdout, without its progress and advice lines."""
    text = stdout[stdout.index("\n calculation mAP"):].replace("\r", "\n")
    return [l for l in text.split("\n")
            if l and "rank = " not in l and not l.startswith(("Set -points", " `-points"))]


@pytest.mark.parametrize("points", [0, 11, 101])
def test_map_prints_what_alexeyab_prints(setup, darknet_alexeyab, points):
    root, cfg, weights, model, data, dets = setup
    if darknet_alexeyab.exe is None:
        pytest.skip("the AlexeyAB build has no ./darknet executable")
    run = subprocess.run([str(darknet_alexeyab.exe), "detector", "map", str(data), str(cfg),
                          str(weights), "-points", str(points)], cwd=root,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    want = _darknet_lines(run.stdout)
    dataset = load_dataset(data, 80)
    result = evaluate(dets, dataset.truths, dataset.names, points=points)
    result.heads = [(i, 28) for i in model.heads]
    got = [l for l in result.lines() if l]
    assert got == want
    # a real spread of numbers, not a degenerate fixture
    assert 0.1 < result.mean_ap < 0.9 and result.tp_total > 20 and result.fp_total > 5
    assert len(dataset.paths) >= 20


def test_map_end_to_end_cli(setup, capsys):
    root, cfg, weights, model, data, dets = setup
    from darknet_py.cli import main
    assert main(["detector", "map", str(data), str(cfg), str(weights), "-points", "11",
                 "--coco"]) == 0
    out = capsys.readouterr().out
    dataset = load_dataset(data, 80)
    result = evaluate(dets, dataset.truths, dataset.names, points=11)
    result.heads = [(i, 28) for i in model.heads]
    assert out.startswith(result.text())
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in out


def test_coco_equals_pycocotools_called_directly(setup, tmp_path):
    pytest.importorskip("pycocotools", reason="pycocotools not installed")
    import json

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from darknet_py.eval.coco import coco_eval, coco_jsons
    root, cfg, weights, model, data, dets = setup
    dataset = load_dataset(data, 80)
    stats, _ = coco_eval(dets, dataset)
    gt, results = coco_jsons(dets, dataset)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(results))
    coco_gt = COCO(str(tmp_path / "gt.json"))
    evaluator = COCOeval(coco_gt, coco_gt.loadRes(str(tmp_path / "dt.json")), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    np.testing.assert_array_equal(stats, evaluator.stats)
    assert 0 < stats[1] < 1  # AP50


def test_exact_labels_give_ap_1(tmp_path, setup):
    pytest.importorskip("pycocotools", reason="pycocotools not installed")
    from darknet_py.eval.coco import coco_eval
    model = setup[3]
    data, dets = make_dataset(tmp_path, model, exact=True)
    dataset = load_dataset(data, 80)
    present = sorted({int(c) for t in dataset.truths for c in t.ids})
    assert len(present) >= 5
    for points in (0, 11, 101):
        result = evaluate(dets, dataset.truths, dataset.names, points=points)
        assert all(abs(result.ap[c] - 1.0) < 1e-12 for c in present)  # sums of 1/n steps
        assert result.fp_total == 0 and result.tp_total == result.unique_truth_count
    stats, _ = coco_eval(dets, dataset)
    assert stats[0] == 1.0 and stats[1] == 1.0


# -- bad inputs ------------------------------------------------------------------------
def _data(tmp_path, images, labels=None, classes=80, names=80, extra=""):
    folder = tmp_path / "set"
    folder.mkdir(exist_ok=True)
    listed = []
    for i, make in enumerate(images):
        p = folder / f"im{i}.png"
        if make:
            from PIL import Image
            Image.new("RGB", (32, 24)).save(p)
        if labels is not None:
            p.with_suffix(".txt").write_text(labels[i])
        listed.append(str(p))
    (folder / "valid.txt").write_text("".join(l + "\n" for l in listed))
    (folder / "x.names").write_text("".join(f"c{i}\n" for i in range(names)))
    data = folder / "x.data"
    data.write_text(f"classes={classes}\nvalid={folder / 'valid.txt'}\n"
                    f"names={folder / 'x.names'}\n{extra}")
    return data


@pytest.mark.parametrize("case,pattern", [
    ("missing", r"valid.txt: 2 of 3 listed images do not exist: .*im1.png, .*im2.png"),
    ("class", r"im0.txt:2: class id 80 is outside 0..79"),
    ("empty", r"valid.txt: the image list is empty"),
    ("classes", r"x.data: classes: classes=20 but the cfg's detection layers have 80"),
    ("names", r"x.data: names: the names file has 3 names but the cfg's detection layers have 80"),
])
def test_bad_datasets_are_one_clear_line(tmp_path, case, pattern):
    if case == "missing":
        data = _data(tmp_path, [True, False, False])
    elif case == "class":
        data = _data(tmp_path, [True], labels=["0 .5 .5 .1 .1\n80 .5 .5 .1 .1\n"])
    elif case == "empty":
        data = _data(tmp_path, [])
    elif case == "classes":
        data = _data(tmp_path, [True], classes=20)
    else:
        data = _data(tmp_path, [True], names=3)
    with pytest.raises(DataError, match=pattern) as info:
        load_dataset(data, 80)
    assert "\n" not in str(info.value)


def test_cli_map_bad_input_exit_2(tmp_path, capsys):
    from darknet_py.cli import main
    data = _data(tmp_path, [True, False])
    cfg = tmp_path / "t.cfg"
    cfg.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=255\n"
                   "size=1\n[yolo]\nmask=0,1,2\nanchors=1,2,3,4,5,6\nclasses=80\nnum=3\n")
    assert main(["detector", "map", str(data), str(cfg), "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "do not exist" in err[0]


def test_train_map_prints_detector_map_of_the_weights_it_keeps(setup, tmp_path):
    """``detector train -map`` evaluates the network being trained as ``detector map`` (the
    test above: AlexeyAB's printout) evaluates the weights file it keeps: one iteration of
    a loop that leaves the weights alone, then the same printed text and mAP, and
    ``_best.weights`` identical to the final weights."""
    import io
    import re as _re

    from darknet_py.train.trainer import train_detector
    root, cfg, weights, model, data, dets = setup
    text = data.read_text()
    local = tmp_path / "train.data"
    local.write_text(text + f"train={root / 'valid.txt'}\nbackup={tmp_path / 'backup'}\n")
    out = io.StringIO()

    def unchanged(model_, state, X, y):
        state.seen += X.shape[0]
        return 1.0
    import copy
    result = train_detector(str(local), str(cfg), workers=0, seed=0, chart=None,
                            step=unchanged, stream=out, calc_map=True, max_batches=1,
                            model=copy.deepcopy(model), augment=False, clear=True)
    want, _, _ = validate_detector_map(local, cfg, weights)
    assert result.maps == [(1, float(np.float32(want.mean_ap)))]
    assert 0.1 < want.mean_ap < 0.9
    assert want.text() in out.getvalue()
    assert _re.search(r"\n mean_average_precision \(mAP@0\.50\) = %f \nNew best mAP!\n"
                      % float(np.float32(want.mean_ap)), out.getvalue())
    best = Path(result.best).read_bytes()
    assert best == Path(result.final).read_bytes()
