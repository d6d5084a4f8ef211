"""Pixel-exact images: decoding with a Darknet build's own stb_image (scope: `--darknet BUILD`).

Checked against the real Darknet: the reference case's stb decode of dog.jpg, and
the lines pjreddie's own ``./darknet detect`` prints for sample images (all seven agree:
checked by hand; the test runs the three where Pillow's decode prints other percentages).
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


def test_detect_with_darknet_prints_exactly_what_darknet_prints(darknet_pjreddie, reference,
                                                                  pj_cases, tiny_weights,
                                                                  tmp_path, capsys):
    # three of the sample images where Pillow's decode changes a printed percentage
    images = sorted(str(reference / "images" / f"{n}.jpg") for n in ("dog", "eagle", "horses"))
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
