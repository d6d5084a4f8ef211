"""``classifier valid`` / ``predict``: the input crops and top_k against the real Darknet C
(ctypes), and accuracy of a tiny trained classifier through the API and the CLI."""
from __future__ import annotations

import ctypes
import os

import numpy as np
import pytest

from darknet_py.cli import main
from darknet_py.eval import classifier as E
from darknet_py.train.trainer import train_classifier
from test_train_classifier import make_dataset
from test_train_data import Image, darknet_lib


def _c_image(arr):
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    c, h, w = arr.shape
    return Image(w, h, c, arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))), arr


@pytest.mark.parametrize("shape", [(3, 21, 30), (3, 40, 17), (3, 16, 16)])
def test_crops_equal_darknet(shape):
    """pjreddie center_crop_image; AlexeyAB resize_min then crop_image at the centre."""
    im = np.random.default_rng(4).random(shape, dtype=np.float32)
    pj = ctypes.CDLL(str(darknet_lib("pjreddie")))
    pj.center_crop_image.restype = Image
    pj.center_crop_image.argtypes = [Image, ctypes.c_int, ctypes.c_int]
    ab = ctypes.CDLL(str(darknet_lib("alexeyab")))
    ab.resize_min.restype = ab.crop_image.restype = Image
    ab.resize_min.argtypes = [Image, ctypes.c_int]
    ab.crop_image.argtypes = [Image] + [ctypes.c_int] * 4
    for w, h in [(16, 16), (12, 12), (24, 24)]:
        ci, keep = _c_image(im)
        out = pj.center_crop_image(ci, w, h)
        c = np.ctypeslib.as_array(out.data, shape=(3, h, w))
        np.testing.assert_array_equal(E.center_crop_image(im, w, h), c)
        r = ab.resize_min(ci, w)
        crop = ab.crop_image(r, (r.w - w) // 2, (r.h - h) // 2, w, h)
        c = np.ctypeslib.as_array(crop.data, shape=(3, h, w))
        np.testing.assert_array_equal(E.resize_min_crop(im, w, h), c)


def test_top_k_equals_darknet():
    lib = ctypes.CDLL(str(darknet_lib("pjreddie")))
    lib.top_k.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    rng = np.random.default_rng(5)
    for n, k in [(10, 3), (5, 5), (7, 1)]:
        a = np.round(rng.random(n, dtype=np.float32), 1).astype(np.float32)  # with ties
        idx = np.zeros(k, dtype=np.int32)
        lib.top_k(a.ctypes.data_as(ctypes.c_void_p), n, k, idx.ctypes.data_as(ctypes.c_void_p))
        assert E.top_k(a, k) == idx.tolist(), a


@pytest.mark.parametrize("dialect", ["pjreddie", "alexeyab"])
def test_trained_tiny_classifier_validates_and_predicts(tmp_path, monkeypatch, capsys, dialect):
    monkeypatch.chdir(tmp_path)
    make_dataset(tmp_path, max_batches=40)
    with open("c.data", "a") as f:
        f.write("valid=train.list\ntop=2\n")
    result = train_classifier("c.data", "tiny.cfg", dialect=dialect, workers=0, seed=3)
    capsys.readouterr()
    valid = E.validate_classifier("c.data", "tiny.cfg", result.final, dialect=dialect)
    assert valid.images == 18 and valid.k == 2
    assert valid.top1 == 1.0 and valid.topk == 1.0, valid.lines[-1]
    assert valid.lines[-1] == "17: top 1: 1.000000, top 2: 1.000000"
    rows = E.predict_classifier("c.data", "tiny.cfg", result.final, ["img/blue_2.png"],
                                dialect=dialect)
    assert [r[1] for r in rows[0]][0] == "blue" and len(rows[0]) == 2
    capsys.readouterr()
    assert main(["classifier", "predict", "c.data", "tiny.cfg", result.final,
                 "img/green_1.png", "-top", "1", "--dialect", dialect]) == 0
    line = capsys.readouterr().out.strip()
    assert line.endswith("%: green") if dialect == "pjreddie" else line.startswith("green: ")
    assert main(["classifier", "valid", "c.data", "tiny.cfg", result.final, "--dialect",
                 dialect]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("17: top 1: 1.0000")


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_valid_and_predict_equal_darknet(tmp_path, monkeypatch, capsys, fork):
    """Weights from 3 iterations of the real ``darknet classifier train`` (scores far from
    0/1); the real ``classifier valid`` and ``predict`` against darknet_py's: the same
    running top-1/top-2 lines, and (pjreddie's per-image line, AlexeyAB's ``name: score``)
    the same scores to 1e-5 (printed with %f; float sums in another order)."""
    import re
    import subprocess
    from test_train_loop import darknet_exe
    exe = str(darknet_exe(fork))
    make_dataset(tmp_path, max_batches=3)
    with open(tmp_path / "c.data", "a") as f:
        f.write("valid=train.list\ntop=2\n")
    (tmp_path / "backup").mkdir()
    dont = ["-dont_show"] if fork == "alexeyab" else []
    subprocess.run([exe, "classifier", "train", "c.data", "tiny.cfg"] + dont, cwd=tmp_path,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   timeout=120)
    weights = "backup/tiny.weights" if fork == "pjreddie" else "backup/tiny_final.weights"
    c_valid = subprocess.run([exe, "classifier", "valid", "c.data", "tiny.cfg", weights],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120).stdout
    c_pred = subprocess.run([exe, "classifier", "predict", "c.data", "tiny.cfg", weights,
                             "img/red_0.png"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120).stdout
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    E.validate_classifier("c.data", "tiny.cfg", weights, dialect=fork)
    E.predict_classifier("c.data", "tiny.cfg", weights, ["img/red_0.png"], dialect=fork)
    mine = capsys.readouterr().out
    top = re.compile(r"(\d+): top 1: ([\d.]+), top 2: ([\d.]+)")
    assert top.findall(mine) == top.findall(c_valid) and len(top.findall(mine)) == 18
    if fork == "pjreddie":
        row = re.compile(r"^(\S+), (-?\d+), ([\d.]+), ([\d.]+), $", re.M)
        want, got = row.findall(c_valid), row.findall(mine)
        pred = re.compile(r"^\s*([\d.]+)%: (\w+)$", re.M)
    else:
        want, got = [], []
        pred = re.compile(r"^(\w+): ([\d.]+)$", re.M)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a[:2] == b[:2]
        np.testing.assert_allclose([float(v) for v in a[2:]], [float(v) for v in b[2:]],
                                   atol=1e-5)
    pw, pg = pred.findall(c_pred), pred.findall(mine)
    assert len(pw) == len(pg) == 2
    key = (lambda m: (m[1], float(m[0]))) if fork == "pjreddie" else (
        lambda m: (m[0], float(m[1])))
    for a, b in zip(map(key, pg), map(key, pw)):
        assert a[0] == b[0]
        assert abs(a[1] - b[1]) <= (0.011 if fork == "pjreddie" else 1e-5)
