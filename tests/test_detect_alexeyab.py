"""AlexeyAB's ``detector test`` against the real thing.

Each test runs AlexeyAB's own ``./darknet detector test DATA CFG WEIGHTS IMAGE
-dont_show -ext_output -out FILE [-letter_box]`` (the bridge's ``darknet_alexeyab``
build) and ``darknet-py detector test`` with the same arguments (``--dialect
alexeyab``, ``--darknet BUILD`` so that both decode the JPEG with the build's
stb_image), and compares

* what each prints per image, from `` Detection layer:`` to the last box line
  (the milliseconds masked): exactly. ``--darknet BUILD`` also evaluates the network
  in that build's arithmetic order (:mod:`darknet_py.gemm_order`), so even values on
  a rounding boundary print as Darknet prints them (eagle.jpg, letterboxed,
  yolov3-tiny: a bird at probability 0.7649998 in Darknet and here, 76%; 0.7649993
  on the fast path, whose sums run in other orders);
* the ``-out`` JSON (``detection_to_json``): the same objects, each number equal to its
  6 printed decimals or 1 in the last apart (measured: [Gaussian_yolo] at 128x128 has
  box centres 1e-6 apart; its box decode is not in Darknet's arithmetic order).

Networks: yolov3-tiny with its official weights (pjreddie's file: only
``--dialect alexeyab`` asks for AlexeyAB's behaviour), yolov4-tiny and yolov4
with seeded random weights (:func:`darknet_py.init.random_init`, written to a
.weights file both load). yolov3-tiny uses default NMS, yolov4(-tiny)
``nms_kind=greedynms`` and ``scale_x_y``.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import torch

import darknet_py
from darknet_py.cli import main
from darknet_py.image import as_image, image_size, resize_image
from darknet_py.init import random_init

#: the default run's images; ``-m slow`` runs all seven sample images
IMAGES = ("dog", "eagle", "horses", "person")
ALL_IMAGES = ("dog", "eagle", "giraffe", "horses", "kite", "person", "scream")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory, reference) -> Path:
    folder = tmp_path_factory.mktemp("alexeyab-detect")
    data = folder / "coco.data"
    data.write_text(f"classes=80\nnames={reference / 'images' / 'coco.names'}\n")
    return data


def _block(text: str) -> list:
    """The per-image part of detector test's stdout, milliseconds masked."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith(" Detection layer:") or "Predicted in" in line)
    out = [re.sub(r"Predicted in [0-9.]+ milli-seconds", "Predicted in X milli-seconds", line)
           for line in lines[start:] if line.strip()]
    return out


def _darknet(build, data: Path, cfg: Path, weights: Path, image: Path, out: Path,
             letter_box: bool) -> list:
    args = [str(build.exe), "detector", "test", str(data), str(cfg), str(weights), str(image),
            "-dont_show", "-ext_output", "-out", str(out)]
    if letter_box:
        args.append("-letter_box")
    done = subprocess.run(args, cwd=out.parent, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return _block(done.stdout)


def _ours(capsys, build, data: Path, cfg: Path, weights: Path, image: Path, out: Path,
          letter_box: bool):
    """Our printed block and our --json records (full-precision values per line)."""
    capsys.readouterr()
    records = out.with_suffix(".records.json")
    argv = ["detector", "test", str(data), str(cfg), str(weights), str(image), "-dont_show",
            "-ext_output", "-out", str(out), "--no-image", "--dialect", "alexeyab",
            "--darknet", str(build.folder), "--json", str(records)]
    if letter_box:
        argv.append("-letter_box")
    assert main(argv) == 0
    return _block(capsys.readouterr().out), json.loads(records.read_text())


def _objects(path: Path) -> list:
    return [o for frame in json.loads(path.read_text()) for o in frame["objects"]]


def _same(capsys, build, data, cfg, weights, tmp_path, images, letter_box) -> int:
    """Compare every image (``images``: paths); returns how many box lines were compared."""
    lines = 0
    for image in images:
        want = _darknet(build, data, cfg, weights, image, tmp_path / "darknet.json", letter_box)
        got, records = _ours(capsys, build, data, cfg, weights, image, tmp_path / "ours.json",
                             letter_box)
        assert got == want, image.name
        assert len(records) == sum(1 for line in got if line.endswith(")"))
        a, b = _objects(tmp_path / "darknet.json"), _objects(tmp_path / "ours.json")
        assert [(o["class_id"], o["name"]) for o in a] == [(o["class_id"], o["name"]) for o in b]
        for x, y in zip(a, b):  # %f's 6 decimals: equal, or 1 apart (the boxes' decode)
            assert x["confidence"] == pytest.approx(y["confidence"], abs=1.01e-6)
            for key, value in x["relative_coordinates"].items():
                assert value == pytest.approx(y["relative_coordinates"][key], abs=1.01e-6)
        lines += len(want) - 1 - sum(line.startswith(" Detection layer:") for line in want)
    return lines


def _images(reference: Path, names=IMAGES) -> list:
    return [reference / "images" / f"{name}.jpg" for name in names]


@pytest.mark.parametrize("letter_box", [False, True])
def test_yolov3_tiny_official_weights(darknet_alexeyab, data_file, reference, tiny_weights,
                                      capsys, tmp_path, letter_box):
    cfg = reference / "cfg" / "alexeyab" / "yolov3-tiny.cfg"
    lines = _same(capsys, darknet_alexeyab, data_file, cfg, tiny_weights, tmp_path,
                  _images(reference), letter_box)
    assert lines >= 12, "too few detections to prove anything"


def _random_weights(cfg: Path, out: Path, reference: Path, **kwargs) -> Path:
    model = darknet_py.load(cfg, dialect="alexeyab")
    image = as_image(reference / "images" / "dog.jpg")
    x = torch.from_numpy(resize_image(image, model.width, model.height))[None]
    random_init(model, 1, x, **kwargs)
    model.save_weights(out)
    return out


@pytest.fixture(scope="module")
def yolov4_tiny_weights(tmp_path_factory, reference) -> Path:
    cfg = reference / "cfg" / "alexeyab" / "yolov4-tiny.cfg"
    return _random_weights(cfg, tmp_path_factory.mktemp("v4t") / "yolov4-tiny-rand.weights",
                           reference, objectness_bias=-3.0)


@pytest.mark.parametrize("letter_box", [False, True])
def test_yolov4_tiny_random_weights(darknet_alexeyab, data_file, reference, yolov4_tiny_weights,
                                    capsys, tmp_path, letter_box):
    cfg = reference / "cfg" / "alexeyab" / "yolov4-tiny.cfg"
    # two images keep the default run short (--darknet evaluates in Darknet's order, ~10x
    # the fast path's time); they print 16+83 and 7+100 lines; all seven with -m slow
    lines = _same(capsys, darknet_alexeyab, data_file, cfg, yolov4_tiny_weights, tmp_path,
                  _images(reference, ("eagle", "person")), letter_box)
    assert lines >= 12, "too few detections to prove anything"


@pytest.mark.slow
@pytest.mark.parametrize("letter_box", [False, True])
def test_tiny_networks_on_every_sample_image(darknet_alexeyab, data_file, reference,
                                             tiny_weights, yolov4_tiny_weights, capsys,
                                             tmp_path, letter_box):
    for cfg, weights in (("yolov3-tiny.cfg", tiny_weights),
                         ("yolov4-tiny.cfg", yolov4_tiny_weights)):
        _same(capsys, darknet_alexeyab, data_file, reference / "cfg" / "alexeyab" / cfg,
              weights, tmp_path, _images(reference, ALL_IMAGES), letter_box)


@pytest.mark.slow
@pytest.mark.parametrize("letter_box", [False, True])
def test_yolov4_random_weights(darknet_alexeyab, data_file, reference, capsys, tmp_path,
                               letter_box):
    """yolov4 at 608x608 (about a minute per image for Darknet on one core). Deep random
    networks amplify float rounding ~1000x (measured: a 1e-7 input change moves the
    heads by 1e-3 with BN scales U(.5, 1.5)); BN scales U(.05, .15) bring that to 1e-5,
    and larger class/objectness logits give a few confident boxes: on the fast path,
    person.jpg's ~1300 boxes then printed 2-3 lines 1 apart in a percentage (values
    4e-5 from a .5 boundary); in the build's arithmetic order (``--darknet``) all of
    its 1204 (1307 letterboxed) lines print identically, as do dog's and horses'
    (35+87 and 4+21)."""
    cfg = reference / "cfg" / "alexeyab" / "yolov4.cfg"
    weights = _random_weights(cfg, tmp_path / "yolov4-rand.weights", reference,
                              objectness_bias=-7.0, bn_scales=(0.05, 0.15), head_gain=25.0,
                              class_bias=-3.0)
    lines = _same(capsys, darknet_alexeyab, data_file, cfg, weights, tmp_path,
                  _images(reference, ("dog", "horses", "person")), letter_box)
    assert lines >= 5


@pytest.mark.parametrize("size", [128, pytest.param(256, marks=pytest.mark.slow)])
@pytest.mark.parametrize("letter_box", [False, True])
def test_gaussian_yolov3_random_weights(darknet_alexeyab, reference, capsys, tmp_path,
                                        letter_box, size):
    """[Gaussian_yolo] (Gaussian_yolov3_BDD.cfg at 128x128, ``-m slow`` also 256x256,
    instead of 512 to keep the test short; 10 classes): its decode (uncertainty-weighted
    probabilities, pjreddie-style box correction) and printing against AlexeyAB's own."""
    text = (reference / "cfg" / "alexeyab" / "Gaussian_yolov3_BDD.cfg").read_text()
    cfg = tmp_path / f"Gaussian_yolov3_BDD-{size}.cfg"
    cfg.write_text(re.sub(r"(?m)^(width|height)=512$", rf"\1={size}", text))
    names = tmp_path / "bdd.names"
    names.write_text("".join(f"c{i}\n" for i in range(10)))
    data = tmp_path / "bdd.data"
    data.write_text(f"classes=10\nnames={names}\n")
    weights = _random_weights(cfg, tmp_path / "g.weights", reference, objectness_bias=-4.0,
                              bn_scales=(0.2, 0.6), head_gain=4.0, class_bias=-1.0)
    lines = _same(capsys, darknet_alexeyab, data, cfg, weights, tmp_path,
                  _images(reference, ("person", "kite")), letter_box)
    assert lines >= 5


@pytest.mark.parametrize("letter_box", [False, True])
def test_yolov1_tiny_detection_layer_random_weights(darknet_alexeyab, reference, capsys,
                                                    tmp_path, letter_box):
    """[detection] (YOLOv1, pjreddie's yolov1-tiny.cfg read as AlexeyAB does):
    ``get_detection_detections`` scales boxes by the image size although relative
    ones are asked for, and leaves ``dets[i].classes`` 0, so AlexeyAB prints no lines;
    its -out JSON has the detections: same classes and probabilities (1e-4), boxes
    within 1e-4 of the image size."""
    cfg = reference / "cfg" / "pjreddie" / "yolov1-tiny.cfg"
    data = tmp_path / "voc.data"
    data.write_text(f"classes=20\nnames={reference / 'data' / 'voc.names'}\n")
    model = darknet_py.load(cfg, dialect="alexeyab")
    x = torch.from_numpy(resize_image(as_image(reference / "images" / "dog.jpg"),
                                      model.width, model.height))[None]
    random_init(model, 1, x, objectness_bias=0.35, head_gain=0.15, class_bias=0.35)
    weights = tmp_path / "yolov1-tiny-rand.weights"
    model.save_weights(weights)
    total = 0
    for image in _images(reference, ("dog", "person")):
        want = _darknet(darknet_alexeyab, data, cfg, weights, image, tmp_path / "darknet.json",
                        letter_box)
        got, _ = _ours(capsys, darknet_alexeyab, data, cfg, weights, image,
                       tmp_path / "ours.json", letter_box)
        assert got == want and len(got) == 1  # only "Predicted in"
        a, b = _objects(tmp_path / "darknet.json"), _objects(tmp_path / "ours.json")
        assert [o["class_id"] for o in a] == [o["class_id"] for o in b]
        im_w, im_h = image_size(image)
        for p, q in zip(a, b):
            assert p["confidence"] == pytest.approx(q["confidence"], abs=1e-4)
            for key, size in (("center_x", im_w), ("width", im_w), ("center_y", im_h),
                              ("height", im_h)):
                assert abs(p["relative_coordinates"][key] - q["relative_coordinates"][key]) \
                    <= 1e-4 * size
        total += len(a)
    assert total >= 10
