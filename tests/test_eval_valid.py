"""detector valid: COCO json against pjreddie's own ./darknet detector valid; COCO 2014 and
2017 names load and evaluate in pycocotools against the right images; VOC files."""
from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

import darknet_py
from darknet_py import DataError
from darknet_py.cfg.variant import make_variant
from darknet_py.eval.valid import validate_detector

from conftest import reference_root
from map_fixture import make_images

IDS = [42, 73, 139, 285, 632, 724]


def _model(tmp, tiny_weights, fork):
    src = reference_root() / "cfg" / fork / "yolov3-tiny.cfg"
    if not src.is_file():
        pytest.skip("reference cfg not found")
    text, _ = make_variant(src.read_text(), str(src), width=256, height=256)
    cfg = tmp / f"tiny-{fork}.cfg"
    cfg.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cfg, darknet_py.load(cfg, tiny_weights, dialect=fork, warn_unused=False)


def _coco_set(root: Path, style: str):
    """Six images named the COCO 2014 or 2017 way, a .data with eval=coco."""
    pngs = make_images(root / "src")[:len(IDS)]
    folder = root / ("val2014" if style == "2014" else "val2017")
    folder.mkdir(parents=True)
    paths = []
    for i, p in zip(IDS, pngs):
        name = f"COCO_val2014_{i:012d}.png" if style == "2014" else f"{i:012d}.png"
        shutil.copy(p, folder / name)
        paths.append(folder / name)
    (root / "valid.txt").write_text("".join(f"{p}\n" for p in paths))
    (root / "coco.names").write_text((reference_root() / "images" / "coco.names").read_text())
    (root / "results").mkdir()
    data = root / "coco.data"
    data.write_text(f"classes=80\nvalid={root / 'valid.txt'}\nnames={root / 'coco.names'}\n"
                    f"eval=coco\nresults={root / 'results'}\n")
    return data, paths


def test_coco_json_equals_pjreddie_valid(tmp_path_factory, tiny_weights, darknet_pjreddie):
    root = tmp_path_factory.mktemp("valid")  # no "_" in the path: pjreddie searches it for one
    assert "_" not in str(root)
    data, _ = _coco_set(root, "2017")
    cfg, model = _model(root, tiny_weights, "pjreddie")
    run = subprocess.run([str(darknet_pjreddie.exe), "detector", "valid", str(data), str(cfg),
                          str(tiny_weights), "-out", "c"], cwd=root, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    want = json.loads((root / "results" / "c.json").read_text())
    validate_detector(data, model=model, outfile="py")
    got = json.loads((root / "results" / "py.json").read_text())
    assert len(got) == len(want) > 50
    # same rows in the same order; numbers as printed (%f) within the float32 noise of
    # a 24-layer network's outputs (measured: score <= ~3e-6, box <= ~1e-3 px)
    for g, w in zip(got, want):
        assert (g["image_id"], g["category_id"]) == (w["image_id"], w["category_id"])
    boxes = np.abs(np.array([g["bbox"] for g in got]) - np.array([w["bbox"] for w in want]))
    scores = np.abs(np.array([g["score"] for g in got]) - np.array([w["score"] for w in want]))
    assert boxes.max() <= 1e-2 and scores.max() <= 1e-5, (boxes.max(), scores.max())
    assert {g["image_id"] for g in got} <= set(IDS)


@pytest.mark.parametrize("style", ["2014", "2017"])
def test_coco_names_evaluate_against_the_right_images(tmp_path, tiny_weights, style):
    pytest.importorskip("pycocotools", reason="pycocotools not installed")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from PIL import Image
    data, paths = _coco_set(tmp_path, style)
    _, model = _model(tmp_path, tiny_weights, "alexeyab")
    out = validate_detector(data, model=model)
    results = json.loads(Path(out[0]).read_text())
    assert {r["image_id"] for r in results} == set(IDS)
    # ground truth: the confident results themselves, under their image ids
    images = [{"id": i, "width": Image.open(p).size[0], "height": Image.open(p).size[1]}
              for i, p in zip(IDS, paths)]
    anns = [{"id": k + 1, "image_id": r["image_id"], "category_id": r["category_id"],
             "bbox": r["bbox"], "area": r["bbox"][2] * r["bbox"][3], "iscrowd": 0}
            for k, r in enumerate(x for x in results if x["score"] > 0.3)]
    cats = [{"id": c} for c in sorted({a["category_id"] for a in anns})]
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": cats}
    gt.createIndex()
    ev = COCOeval(gt, gt.loadRes(out[0]), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[1] > 0.95  # AP50: every confident result finds its own image's box
    for r in results:  # boxes clipped to the image
        w, h = next((im["width"], im["height"]) for im in images if im["id"] == r["image_id"])
        x, y, bw, bh = r["bbox"]
        assert x >= 0 and y >= 0 and x + bw <= w + 1e-3 and y + bh <= h + 1e-3


def test_voc_files_and_bad_inputs(tmp_path, tiny_weights):
    pngs = make_images(tmp_path / "im")[:3]
    (tmp_path / "valid.txt").write_text("".join(f"{p}\n" for p in pngs))
    (tmp_path / "x.names").write_text((reference_root() / "images" / "coco.names").read_text())
    res = tmp_path / "res"
    data = tmp_path / "x.data"
    data.write_text(f"valid={tmp_path / 'valid.txt'}\nnames={tmp_path / 'x.names'}\n"
                    f"results={res}\n")
    _, model = _model(tmp_path, tiny_weights, "pjreddie")
    files = validate_detector(data, model=model)
    assert len(files) == 80
    dog = (res / "comp4_det_test_dog.txt").read_text().splitlines()
    assert dog and all(len(l.split()) == 6 for l in dog)
    assert {l.split()[0] for l in dog} <= {p.stem for p in pngs}
    # a missing image: one line, nothing written
    (tmp_path / "valid.txt").write_text(f"{pngs[0]}\n{tmp_path / 'gone.png'}\n")
    shutil.rmtree(res)
    with pytest.raises(DataError, match=r"valid.txt: 1 of 2 listed images do not exist"):
        validate_detector(data, model=model)
    assert not res.exists()
