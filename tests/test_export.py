"""Export (darknet_py.export): ONNX and TorchScript against the torch model, .weights and
.cfg round trips, partial, clear errors, the CLI verb.

Tolerance: the exported graph runs the same float32 operations in another runtime;
outputs must agree within 1e-4 of the output's largest |value| (and absolutely within
1e-4 for the official yolov3-tiny weights on real images, where outputs are O(10)).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import darknet_py
from darknet_py import CfgError
from darknet_py.cfg import parse_cfg, read_cfg
from darknet_py.detect import get_yolo_detections
from darknet_py.export import (ExportGraph, export_cfg, export_onnx, export_torchscript,
                               export_weights)
from darknet_py.image import as_image, resize_image
from darknet_py.model import Darknet

from conftest import reference_root

CFG = reference_root() / "cfg"
IMAGES = reference_root() / "images"
SIZES = ((416, 416), (320, 608))  # (w, h): the cfg size and another multiple of 32


def _ort():
    return pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install "
                               "'darknet_py[export]')")


def _model(fork: str, name: str, weights=None) -> Darknet:
    path = CFG / fork / name
    if not path.is_file():
        pytest.skip(f"reference cfg {path} not found")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return darknet_py.load(path, weights)


def _inputs(batch: int, w: int, h: int) -> torch.Tensor:
    """Real images (resized) when the reference images are there, else uniform noise."""
    files = sorted(IMAGES.glob("*.jpg"))
    if not files:
        return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(batch))
    ims = [resize_image(as_image(str(files[i % len(files)])), w, h) for i in range(batch)]
    return torch.from_numpy(np.stack(ims))


def _close(got, want: torch.Tensor, absolute: bool = False) -> float:
    got = torch.as_tensor(np.asarray(got))
    assert got.shape == want.shape
    err = float((got - want).abs().max())
    scale = 1.0 if absolute else max(1.0, float(want.abs().max()))
    assert err <= 1e-4 * scale, f"max |diff| {err} over {scale}"
    return err


def _reference(graph: ExportGraph, x: torch.Tensor):
    with torch.no_grad():
        return graph(x)


# -- ONNX ----------------------------------------------------------------------------
@pytest.mark.parametrize("decode", [False, True])
def test_onnx_yolov3_tiny_official_weights(tiny_weights, decode):
    ort = _ort()
    model = _model("pjreddie", "yolov3-tiny.cfg", tiny_weights)
    buffer = io.BytesIO()
    names = export_onnx(model, buffer, decode=decode, dynamic_size=True)
    session = ort.InferenceSession(buffer.getvalue())
    assert [o.name for o in session.get_outputs()] == names
    graph = ExportGraph(model, decode=decode).eval()
    runs = ((1, SIZES[0]), (4, SIZES[1])) + (() if decode else ((4, SIZES[0]), (1, SIZES[1])))
    for batch, (w, h) in runs:
        x = _inputs(batch, w, h)
        got = session.run(None, {"images": x.numpy()})
        for g, want in zip(got, _reference(graph, x)):
            _close(g, want, absolute=True)


@pytest.mark.parametrize("decode", [False, True])
def test_onnx_yolov4_tiny_random_weights(decode):
    ort = _ort()
    model = _model("alexeyab", "yolov4-tiny.cfg")
    buffer = io.BytesIO()
    export_onnx(model, buffer, decode=decode, dynamic_size=True)
    session = ort.InferenceSession(buffer.getvalue())
    graph = ExportGraph(model, decode=decode).eval()
    for batch, (w, h) in ((1, SIZES[0]), (4, SIZES[1])):
        x = _inputs(batch, w, h)
        for g, want in zip(session.run(None, {"images": x.numpy()}), _reference(graph, x)):
            _close(g, want)


def test_onnx_upsample_is_one_resize_and_batch_is_dynamic():
    onnx = pytest.importorskip("onnx", reason="onnx not installed")
    model = _model("pjreddie", "yolov3-tiny.cfg")
    buffer = io.BytesIO()
    export_onnx(model, buffer)
    proto = onnx.load_from_string(buffer.getvalue())
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Resize") == 1  # the one [upsample] of yolov3-tiny
    resize = next(n for n in proto.graph.node if n.op_type == "Resize")
    assert {a.name: a.s for a in resize.attribute}["mode"] == b"nearest"
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 416, 416]
    onnx.checker.check_model(proto)


SMALL_AB = """[net]
width=96
height=64
channels=3
[convolutional]
filters=8
size=3
stride=2
pad=1
batch_normalize=1
activation=mish
[convolutional]
filters=21
size=1
activation=logistic
[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58, 81,82
classes=2
num=4
scale_x_y=2.0
new_coords=1
[route]
layers=-3
[convolutional]
filters=14
size=3
stride=2
pad=1
activation=linear
[yolo]
mask=3
anchors=10,14, 23,27, 37,58, 81,82
classes=9
num=4
scale_x_y=1.05
"""


def test_decode_equals_darknet_get_yolo_detections():
    """The in-graph decode = get_yolo_detections (thresh 0, no letterbox, image = net size)
    row for row, with scale_x_y (yolov4-tiny: 1.05; 2.0) and new_coords, at the cfg size
    and at another input size."""
    small = Darknet(parse_cfg(SMALL_AB.replace("classes=9", "classes=2").replace("filters=14", "filters=7"), "small.cfg"))
    for model, sizes in ((_model("alexeyab", "yolov4-tiny.cfg"), [(416, 416)]),
                         (small, [(96, 64), (160, 128)])):
        heads = [model.layers[i] for i in model.heads]
        assert any(h.scale_x_y != 1.0 for h in heads)
        for w, h in sizes:
            x = _inputs(2, w, h)
            boxes, obj, scores = _reference(ExportGraph(model, decode=True).eval(), x)
            with torch.no_grad():
                outs = model(x)
            for b in range(2):
                parts = [get_yolo_detections(o[b], head, w, h, w, h, thresh=0.0,
                                             letterbox=False) for o, head in zip(outs, heads)]
                keep = obj[b] > 0  # get_yolo_detections keeps objectness > thresh
                assert int(keep.sum()) > 0.9 * keep.numel()
                want_boxes = np.concatenate([p.boxes for p in parts])
                np.testing.assert_allclose(boxes[b][keep].numpy(), want_boxes, rtol=1e-5,
                                           atol=1e-6)
                np.testing.assert_array_equal(obj[b][keep].numpy(),
                                              np.concatenate([p.objectness for p in parts]))
                got = scores[b][keep].numpy()
                np.testing.assert_array_equal(np.where(got > 0, got, 0),
                                              np.concatenate([p.probs for p in parts]))
    assert any(h.new_coords for h in heads)


def test_decode_needs_one_class_count():
    with pytest.raises(CfgError, match="same number of classes"):
        ExportGraph(Darknet(parse_cfg(SMALL_AB, "small.cfg")), decode=True)


def test_decode_refuses_region_heads_naming_the_section():
    model = _model("pjreddie", "yolov2-tiny.cfg")
    with pytest.raises(CfgError, match=r"yolov2-tiny.cfg:\d+: layer \d+ \[region\]"):
        export_onnx(model, io.BytesIO(), decode=True)


def test_onnx_of_a_layer_that_cannot_export_names_its_section(monkeypatch):
    from darknet_py.layers import upsample
    model = Darknet(parse_cfg("[net]\nwidth=8\nheight=8\nchannels=1\n[upsample]\nstride=2\n",
                              "tiny.cfg"))

    def broken(self, x, refs):
        raise RuntimeError("no ONNX for this")
    monkeypatch.setattr(upsample.UpsampleLayer, "forward", broken)
    with pytest.raises(CfgError) as info:
        export_onnx(model, io.BytesIO())
    assert str(info.value).startswith("tiny.cfg:5: layer 0 [upsample] cannot be exported")
    assert "\n" not in str(info.value)


def test_onnx_of_rnn_whose_steps_exceed_the_batch_is_one_line():
    # Darknet carves time_steps out of the batch (rnn.train.cfg: time_steps=576); the traced
    # batch of 1 cannot hold them: one line naming the section, and naming it once
    model = Darknet(parse_cfg("[net]\ninputs=4\ntime_steps=3\nbatch=3\n"
                              "[rnn]\nbatch_normalize=1\noutput=4\nhidden=4\n"
                              "activation=leaky\n", "steps.cfg"))
    with pytest.raises(CfgError) as info:
        export_onnx(model, io.BytesIO())
    text = str(info.value)
    assert text.startswith("steps.cfg:5: layer 0 [rnn] cannot be exported: ")
    assert "\n" not in text and text.count("[rnn]") == 1 and "time_steps=3" in text


def test_onnx_partial_is_layer_output(tmp_path):
    ort = _ort()
    model = _model("pjreddie", "yolov3-tiny.cfg")
    path = tmp_path / "partial.onnx"
    assert export_onnx(model, path, upto=10) == ["layer_9"]
    x = _inputs(1, 416, 416)
    got = ort.InferenceSession(str(path)).run(None, {"images": x.numpy()})[0]
    with torch.no_grad():
        _close(got, model.layer_outputs(x, upto=9)[9])
    with pytest.raises(CfgError, match="upto=99"):
        export_onnx(model, path, upto=99)


# -- TorchScript -----------------------------------------------------------------------
@pytest.mark.parametrize("fork,name", [("pjreddie", "yolov3-tiny.cfg"),
                                       ("alexeyab", "yolov4-tiny.cfg")])
def test_torchscript_trace_holds_at_other_batches_and_sizes(fork, name, tmp_path):
    model = _model(fork, name)
    path = tmp_path / "m.pt"
    export_torchscript(model, path, decode=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path))
    graph = ExportGraph(model, decode=True).eval()
    for batch, (w, h) in ((1, SIZES[0]), (4, SIZES[1])):
        x = _inputs(batch, w, h)
        with torch.no_grad():
            for g, want in zip(loaded(x), graph(x)):
                _close(g, want)


# -- .weights and .cfg --------------------------------------------------------------------
def test_weights_round_trip_is_byte_identical(tiny_weights, tmp_path):
    model = _model("pjreddie", "yolov3-tiny.cfg", tiny_weights)
    out = tmp_path / "out.weights"
    export_weights(model, out)
    assert out.read_bytes() == Path(tiny_weights).read_bytes()


def test_weights_of_a_new_model_load_back_byte_identical(tmp_path):
    model = _model("alexeyab", "yolov4-tiny.cfg")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    first, second = tmp_path / "a.weights", tmp_path / "b.weights"
    export_weights(model, first)
    again = _model("alexeyab", "yolov4-tiny.cfg", first)
    export_weights(again, second)
    assert first.read_bytes() == second.read_bytes()
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_partial_weights_and_cfg_are_darknet_partial(tiny_weights, tmp_path):
    """``partial`` N: the header and the first N layers' floats (a prefix of the file); the
    cfg cut after layer N-1 builds and loads it exactly."""
    model = _model("pjreddie", "yolov3-tiny.cfg", tiny_weights)
    wpath, cpath = tmp_path / "p.weights", tmp_path / "p.cfg"
    export_weights(model, wpath, upto=13)
    export_cfg(model, cpath, upto=13)
    full = Path(tiny_weights).read_bytes()
    part = wpath.read_bytes()
    assert full.startswith(part) and len(part) < len(full)
    cut = darknet_py.load(cpath, wpath)
    assert len(cut.layers) == 13
    x = _inputs(1, 416, 416)
    with torch.no_grad():
        assert torch.equal(cut(x), model.layer_outputs(x, upto=12)[12])


def test_cfg_export_rebuilds_the_same_network(tmp_path):
    model = _model("alexeyab", "yolov4-tiny.cfg")
    path = tmp_path / "x.cfg"
    export_cfg(model, path)
    again = Darknet(read_cfg(path))
    assert again.layer_table() == model.layer_table()
    assert again.dialect == model.dialect


# -- CLI ------------------------------------------------------------------------------------
def test_cli_export_onnx_and_bad_input(tmp_path, capsys):
    _ort()
    from darknet_py.cli import main
    cfg = CFG / "pjreddie" / "yolov3-tiny.cfg"
    if not cfg.is_file():
        pytest.skip("reference cfg not found")
    out = tmp_path / "t.onnx"
    assert main(["export", str(cfg), "--format", "onnx", "-o", str(out), "--dynamic-size",
                 "--decode"]) == 0
    assert out.stat().st_size > 30_000_000  # 8.8M float weights
    bad = tmp_path / "bad.weights"
    bad.write_bytes(b"\0" * 100)
    target = tmp_path / "never.onnx"
    assert main(["export", str(cfg), str(bad), "--format", "onnx", "-o", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.weights" in err[0]
    assert not target.exists()
