"""Pixel-exact images: decoding with a Darknet build's own stb_image (scope: `--darknet BUILD`).

Checked against the real Darknet: the reference case's stb decode of dog.jpg, and
the lines pjreddie's own ``./darknet detect`` prints for sample images: ``--darknet BUILD``
decodes with the build's stb_image and evaluates in its arithmetic order
(:mod:`darknet_py.gemm_order`), so every line is equal, rounding boundaries included
(the default run: the three images where Pillow's decode prints other percentages;
``-m slow``: all seven).
"""
from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from darknet_py.cli import main
from darknet_py.image import decode_image, load_image


def test_decode_with_darknet_equals_its_stb_image(darknet_pjreddie, darknet_alexeyab, reference,
                                                  pj_cases):
    dog = reference / "images" / "dog.jpg"
    want = np.load(pj_cases / "tiny-official-dog" / "image_decoded_u8.npy")
    for build in (darknet_pjreddie, darknet_alexeyab):
        assert np.array_equal(decode_image(dog, decoder=build), want)
    assert np.array_equal(load_image(dog, decoder=darknet_pjreddie.folder),
                          (want / np.float64(255)).astype(np.float32))
    # the premise: Pillow's JPEG decoder gives other pixels for this file
    assert not np.array_equal(decode_image(dog), want)


def _labels_folder(cwd: Path) -> None:
    """What `./darknet detect` reads besides the cfg: cfg/coco.data, data/coco.names and the
    data/labels/*.png glyphs it draws with (stand-ins here: only their existence matters to
    the printed lines)."""
    from PIL import Image
    (cwd / "cfg").mkdir()
    (cwd / "data" / "labels").mkdir(parents=True)
    (cwd / "cfg" / "coco.data").write_text("classes=80\nnames=data/coco.names\n")
    png = io.BytesIO()
    Image.new("RGB", (2, 3)).save(png, "PNG")
    for i in range(32, 127):
        for j in range(8):
            (cwd / "data" / "labels" / f"{i}_{j}.png").write_bytes(png.getvalue())


def _by_image(text: str) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.replace("Enter Image Path: ", "").strip()
        if ": Predicted in " in line:
            current = line.split(": Predicted in ")[0]
            out[current] = []
        elif current is not None and line.endswith("%"):
            out[current].append(line)
    return out


@pytest.mark.parametrize("names", [
    pytest.param(("dog", "eagle", "horses"), id="three"),  # where Pillow's decode differs
    pytest.param(("dog", "eagle", "giraffe", "horses", "kite", "person", "scream"), id="all",
                 marks=pytest.mark.slow)])
def test_detect_with_darknet_prints_exactly_what_darknet_prints(darknet_pjreddie, reference,
                                                                  pj_cases, tiny_weights,
                                                                  tmp_path, capsys, names):
    images = sorted(str(reference / "images" / f"{n}.jpg") for n in names)
    cfg = pj_cases / "tiny-official-dog" / "yolov3-tiny.cfg"
    _labels_folder(tmp_path)
    (tmp_path / "data" / "coco.names").write_bytes((reference / "images" / "coco.names").read_bytes())
    real = subprocess.run([str(darknet_pjreddie.exe), "detect", str(cfg), str(tiny_weights)],
                          input="\n".join(images) + "\n", cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert real.returncode == 0, real.stderr[-2000:]
    darknet = _by_image(real.stdout)
    assert sorted(darknet) == images and darknet[images[0]]
    assert main(["detect", str(cfg), str(tiny_weights), *images, "--no-image",
                 "--darknet", str(darknet_pjreddie.folder)]) == 0
    ours = _by_image(capsys.readouterr().out)
    assert ours == darknet
    assert darknet[str(reference / "images" / "dog.jpg")][0] == "dog: 57%"


def test_alexeyab_detect_dump_prints_what_its_detector_test_prints(darknet_alexeyab, reference,
                                                                     ab_cases, pj_cases,
                                                                     tiny_weights, tmp_path):
    """The harness's AlexeyAB detect path (load_image, resize, fuse_conv_batchnorm, NMS kind,
    draw_detections_v3) against that build's own `./darknet detector test` at -thresh 0.5:
    the official yolov3-tiny, and random-weights yolov4-tiny (thousands of lines)."""
    from darknet_py.darknet import dump_case
    _labels_folder(tmp_path)
    (tmp_path / "data" / "coco.names").write_bytes((reference / "images" / "coco.names").read_bytes())
    dog = reference / "images" / "dog.jpg"
    rand = ab_cases / "yolov4-tiny-narrow-rand-256"
    for i, (cfg, weights) in enumerate([(pj_cases / "tiny-official-dog" / "yolov3-tiny.cfg", tiny_weights),
                                        (rand / "yolov4-tiny-narrow-256.cfg", rand / "weights.weights")]):
        real = subprocess.run([str(darknet_alexeyab.exe), "detector", "test", "cfg/coco.data",
                               str(cfg), str(weights), str(dog), "-dont_show", "-thresh", "0.5"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert real.returncode == 0, real.stderr[-2000:]
        lines = [ln for ln in real.stdout.splitlines() if ln.endswith("%")]
        out = dump_case(darknet_alexeyab, cfg, weights, mode="detect", image=dog, thresholds=[0.5],
                        out_dir=tmp_path / f"case{i}")
        assert (out / "printed_t0.5.txt").read_text().splitlines() == lines and lines
