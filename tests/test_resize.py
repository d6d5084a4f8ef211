"""Resizing like Darknet's resize_network: every input size the graph takes, shapes by
Darknet's arithmetic, a clear error otherwise, and outputs equal to Darknet's after
resize_network at a size other than the cfg's."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from darknet_py.cfg import parse_cfg, read_cfg
from darknet_py.model import Darknet

import darknet_harness as dh

ROOT = Path(__file__).resolve().parent.parent
SIZES = list(range(320, 609, 32))
CFGS = {"yolov3-tiny": "pjreddie/yolov3-tiny.cfg", "yolov3": "pjreddie/yolov3.cfg",
        "yolov2-tiny": "pjreddie/yolov2-tiny.cfg", "yolov4-tiny": "alexeyab/yolov4-tiny.cfg"}


def _model(reference, name, narrow=False):
    """The cfg as is, or (narrow) with 4 filters in every conv not feeding a head: the
    shapes are the same, the compute tiny."""
    sections = read_cfg(reference / "cfg" / CFGS[name])
    if narrow:
        heads = {i for i, s in enumerate(sections) if s.kind in ("yolo", "region")}
        for i, s in enumerate(sections):
            if s.kind == "convolutional" and i + 1 not in heads:
                s.set("filters", 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Darknet(sections)


@pytest.mark.parametrize("name", list(CFGS))
def test_every_size_has_darknet_shapes(reference, name):
    """All multiples of 32 in 320..608, square and not: each head is (w/32, h/32) (and x2, x4)."""
    model = _model(reference, name)
    base = [model.layers[i].out_shape for i in model.heads]
    for w in SIZES:
        for h in SIZES:
            shapes = model.shapes_for(w, h)
            for head, b in zip(model.heads, base):
                s = shapes[head]
                factor = s.w * 32 // w
                assert (s.c, s.h, s.w) == (b.c, h * factor // 32, w * factor // 32)


@pytest.mark.parametrize("name", list(CFGS))
def test_forward_runs_at_other_sizes(reference, name):
    model = _model(reference, name, narrow=True)
    sample = [(320, 320), (608, 352), (352, 608)]
    for w, h in sample:
        with torch.no_grad():
            outs = model(torch.rand(1, 3, h, w))
        shapes = model.shapes_for(w, h)
        assert [tuple(o.shape[1:]) for o in outs] == [tuple(shapes[i]) for i in model.heads]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CFGS))
def test_forward_runs_at_every_size(reference, name):
    model = _model(reference, name, narrow=True)
    for w in SIZES:
        for h in (w, 928 - w):
            with torch.no_grad():
                outs = model(torch.rand(1, 3, h, w))
            shapes = model.shapes_for(w, h)
            assert [tuple(o.shape[1:]) for o in outs] == [tuple(shapes[i]) for i in model.heads]


def test_resize_updates_input_and_layers(reference):
    model = _model(reference, "yolov3-tiny", narrow=True)
    model.resize(320, 480)
    assert tuple(model.input_shape) == (3, 480, 320)
    assert (model.width, model.height) == (320, 480)
    assert [tuple(model.layers[i].out_shape) for i in model.heads] == [(255, 15, 10),
                                                                       (255, 30, 20)]
    assert tuple(model.layers[0].out_shape) == (4, 480, 320)
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 480, 320))
    assert tuple(outs[1].shape) == (1, 255, 30, 20)


def test_size_that_cannot_fit_names_layer_and_sizes(reference):
    model = _model(reference, "yolov3")
    with pytest.raises(ValueError) as err:
        model.shapes_for(330, 416)
    text = str(err.value)
    assert "layer 86 [route]" in text and "330x416" in text
    assert "width 320 or 345" in text
    with pytest.raises(ValueError, match="cannot take a 330x416"):
        model(torch.rand(1, 3, 416, 330))
    with pytest.raises(ValueError, match="layer 86"):
        model.resize(330, 416)
    assert model.width == 608  # unchanged by a refused resize


def test_reorg_size_that_cannot_fit(reference):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(read_cfg(reference / "cfg" / "pjreddie" / "yolov2.cfg"))
    model.shapes_for(416, 416)
    with pytest.raises(ValueError, match=r"\[reorg\].*not divisible by stride=2"):
        model.shapes_for(400, 416)


# -- parity with Darknet's resize_network ---------------------------------------------------
def _resize_parity(fork, case_dir, w, h, tmp_path, tolerance):
    harness = dh.build_harness(fork)
    if isinstance(harness, str):
        pytest.skip(harness)
    manifest = json.loads((case_dir / "case.json").read_text())
    cfg = case_dir / manifest["cfg"]
    weights = case_dir / manifest["weights"].split(" ")[0]
    rng = np.random.default_rng(5)
    x = rng.random((3, h, w), dtype=np.float32)
    dh.write_f32(tmp_path / "x.f32", x)
    dh.run(harness, ["resize", cfg, weights, tmp_path / "x.f32", w, h, tmp_path], tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet.from_cfg(cfg, dialect=fork)
    model.load_weights(weights)
    model.resize(w, h)
    rows = [[int(v) for v in line.split()[1:]]
            for line in (tmp_path / "shapes.txt").read_text().splitlines()]
    assert len(rows) == len(model.layers)
    for layer, (c, oh, ow, outputs, lh, lw) in zip(model.layers, rows):
        assert layer.out_shape.numel == outputs, layer.index
        if layer.index in model.heads:
            # resize_yolo_layer/resize_region_layer set l.w, l.h and l.outputs but leave
            # l.out_w/l.out_h at the build size (both forks); the output is w x h
            assert (layer.out_shape.h, layer.out_shape.w) == (lh, lw), layer.index
        else:
            assert tuple(layer.out_shape) == (c, oh, ow), layer.index
    with torch.no_grad():
        outs = model.layer_outputs(torch.from_numpy(x))
    worst = 0.0
    for i, out in enumerate(outs):
        ref = dh.read_f32(tmp_path / f"layer_{i:03d}.f32")
        ours = out[0].numpy().reshape(-1)
        rel = float(np.abs(ours - ref).max() / np.abs(ref).max())
        assert rel < tolerance, (i, rel)
        worst = max(worst, rel)
    return worst


def test_resize_matches_darknet_pjreddie(pj_cases, tmp_path):
    # yolov3 narrow, built at 320x320, run by both at 416x288 after resize_network
    worst = _resize_parity("pjreddie", pj_cases / "yolov3-narrow-rand-320", 416, 288, tmp_path,
                           1e-4)
    assert worst < 1e-4


def test_resize_matches_darknet_alexeyab(ab_cases, tmp_path):
    # yolov4-tiny narrow, built at 256x256, run by both at 320x192 after resize_network
    worst = _resize_parity("alexeyab", ab_cases / "yolov4-tiny-narrow-rand-256", 320, 192,
                           tmp_path, 1e-4)
    assert worst < 1e-4
