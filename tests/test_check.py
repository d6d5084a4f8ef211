"""``darknet-py check``: Darknet's layer table, BFLOPs, unused keys, weights size.

The table lines are pjreddie's ``make_*_layer`` ``fprintf`` formats; the
expected lines below are what pjreddie's darknet prints for yolov3.cfg and
yolov3-tiny.cfg at 416x416, and the shapes are checked against the layer
tables the real Darknet recorded in the reference cases (``case.json``).
"""
from __future__ import annotations

import json
import re
import time

import pytest

from darknet_py.cli import main
from darknet_py.cli.check import check
from darknet_py.layers.base import table_shape

YOLOV3_416 = {
    0: "    0 conv     32  3 x 3 / 1   416 x 416 x   3   ->   416 x 416 x  32  0.299 BFLOPs",
    1: "    1 conv     64  3 x 3 / 2   416 x 416 x  32   ->   208 x 208 x  64  1.595 BFLOPs",
    2: "    2 conv     32  1 x 1 / 1   208 x 208 x  64   ->   208 x 208 x  32  0.177 BFLOPs",
    4: "    4 res    1                 208 x 208 x  64   ->   208 x 208 x  64",
    36: "   36 res   33                  52 x  52 x 256   ->    52 x  52 x 256",
    75: "   75 conv    512  1 x 1 / 1    13 x  13 x1024   ->    13 x  13 x 512  0.177 BFLOPs",
    81: "   81 conv    255  1 x 1 / 1    13 x  13 x1024   ->    13 x  13 x 255  0.088 BFLOPs",
    82: "   82 yolo",
    83: "   83 route  79",
    85: "   85 upsample            2x    13 x  13 x 256   ->    26 x  26 x 256",
    86: "   86 route  85 61",
    105: "  105 conv    255  1 x 1 / 1    52 x  52 x 256   ->    52 x  52 x 255  0.353 BFLOPs",
    106: "  106 yolo",
}
TINY_416 = {
    0: "    0 conv     16  3 x 3 / 1   416 x 416 x   3   ->   416 x 416 x  16  0.150 BFLOPs",
    1: "    1 max          2 x 2 / 2   416 x 416 x  16   ->   208 x 208 x  16",
    11: "   11 max          2 x 2 / 1    13 x  13 x 512   ->    13 x  13 x 512",
    12: "   12 conv   1024  3 x 3 / 1    13 x  13 x 512   ->    13 x  13 x1024  1.595 BFLOPs",
    16: "   16 yolo",
    17: "   17 route  13",
    19: "   19 upsample            2x    13 x  13 x 128   ->    26 x  26 x 128",
    20: "   20 route  19 8",
    23: "   23 yolo",
}
HEADER = "layer     filters    size              input                output"


@pytest.fixture(scope="module")
def yolov3(reference):
    return reference / "cfg" / "pjreddie" / "yolov3.cfg"


def test_yolov3_416_table_and_total_bflops(yolov3):
    model, lines = check(str(yolov3), width=416, height=416)
    assert lines[0] == HEADER
    table = lines[1:108]
    assert len(model.layers) == 107
    for index, line in YOLOV3_416.items():
        assert table[index] == line
    assert lines[108] == "Total BFLOPs 65.864"
    assert abs(model.bflops() - 65.864) < 5e-4
    # the total is the sum of the conv lines' BFLOPs (what pjreddie quotes as 65.86 Bn)
    printed = sum(float(m.group(1)) for m in map(re.compile(r"(\d+\.\d{3}) BFLOPs$").search,
                                                   table) if m)
    assert abs(printed - 65.864) < 0.05
    assert lines[109].startswith("Parameters 62001757 ") and "dialect pjreddie" in lines[109]


def test_yolov3_tiny_table(reference):
    _, lines = check(str(reference / "cfg" / "pjreddie" / "yolov3-tiny.cfg"))
    for index, line in TINY_416.items():
        assert lines[1 + index] == line
    assert lines[25] == "Total BFLOPs 5.565"


def _case_shapes(case_dir):
    manifest = json.loads((case_dir / "case.json").read_text())
    return manifest, [(l["index"], l["type"], l["out_w"], l["out_h"], l["out_c"])
                      for l in manifest["layers"]]


@pytest.mark.parametrize("case", ["darknet/yolov3-narrow-rand-320",
                                  "darknet/tiny-rand-nonsquare",
                                  "darknet-alexeyab/yolov4-tiny-narrow-rand-256"])
def test_shapes_and_weights_size_match_real_darknet(reference, case):
    case_dir = reference / case
    manifest, expected = _case_shapes(case_dir)
    weights = case_dir / manifest["weights"].split(" ")[0]
    model, lines = check(str(case_dir / manifest["cfg"]), str(weights))
    assert len(model.layers) == len(expected)
    for (index, kind, w, h, c), layer, line in zip(expected, model.layers, lines[1:]):
        assert layer.index == index
        if kind == "softmax":
            assert layer.out_shape.numel == w * h * c
        else:
            assert (layer.out_shape.w, layer.out_shape.h, layer.out_shape.c) == (w, h, c), index
        if "->" in line and kind in ("convolutional", "maxpool", "shortcut", "upsample"):
            assert line.endswith(table_shape(layer.out_shape)) or \
                table_shape(layer.out_shape) + "  " in line, line
    assert lines[-1].startswith(f"Weights {weights}: version ") and "size fits" in lines[-1]


def test_weights_that_do_not_fit_exit_2_and_name_the_layer(reference, tmp_path, capsys):
    case_dir = reference / "darknet" / "tiny-rand-nonsquare"
    cfg = case_dir / "yolov3-tiny-narrow-416x256.cfg"
    data = (case_dir / "weights.weights").read_bytes()
    short = tmp_path / "short.weights"
    short.write_bytes(data[:len(data) // 8 * 4])
    assert main(["check", str(cfg), str(short)]) == 2
    err = capsys.readouterr().err
    assert re.match(rf"darknet-py: error: {re.escape(str(short))}: layer \d+: truncated: ", err)
    assert main(["check", str(cfg), str(case_dir / "weights.weights")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(HEADER + "\n") and "size fits" in out


def test_check_allocates_nothing_and_runs_nothing(yolov3):
    """A 4096x4096 yolov3 (2 GB first-layer output, 248 MB of weights) checks in no memory."""
    start = time.perf_counter()
    model, lines = check(str(yolov3), width=4096, height=4096)
    assert time.perf_counter() - start < 30
    assert all(p.is_meta for p in model.parameters())
    assert all(b.is_meta for b in model.buffers())
    assert "   0 conv     32  3 x 3 / 1  4096 x4096 x   3   ->  4096 x4096 x  32" in lines[1]


def test_limits_still_apply_and_can_be_raised(yolov3, capsys, monkeypatch):
    assert main(["check", str(yolov3), "--width", "8192", "--height", "8192"]) == 2
    err = capsys.readouterr().err
    assert "exceeds the limit of 2147483647 per layer ($DARKNET_PY_MAX_ELEMENTS)" in err
    assert main(["check", str(yolov3), "--width", "8192", "--height", "8192",
                 "--max-layer-elements", "4000000000"]) == 0
    assert "8192 x8192 x  32" in capsys.readouterr().out
    monkeypatch.setenv("DARKNET_PY_MAX_PARAMETERS", "1000000")
    assert main(["check", str(yolov3)]) == 2
    assert "over the limit of 1000000 ($DARKNET_PY_MAX_PARAMETERS)" in capsys.readouterr().err


def test_unused_keys_are_listed_and_strict_fails(tmp_path, capsys):
    cfg = tmp_path / "typo.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfliters=8\n"
                   "size=3\n[maxpool]\nsize=2\nstride=2\n")
    assert main(["check", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"Unused field: 'fliters = 8' ({cfg}:6 [convolutional])" in out
    assert main(["check", "--strict", str(cfg)]) == 1


def test_dialect_and_upto(reference, tmp_path, capsys):
    case_dir = reference / "darknet" / "yolov3-narrow-rand-320"
    cfg = case_dir / "yolov3-narrow-320.cfg"
    weights = case_dir / "weights.weights"
    data = weights.read_bytes()
    model, _ = check(str(cfg))
    from darknet_py.weights import _layout
    first, count = _layout(model, 75)[-1][1:]
    partial = tmp_path / "darknet53.conv.75"
    partial.write_bytes(data[:20 + 4 * (first + count)])
    assert main(["check", str(cfg), str(partial)]) == 2
    assert "loads with upto=75" in capsys.readouterr().err
    assert main(["check", str(cfg), str(partial), "--upto", "75"]) == 0
    assert "size fits layers 0..74" in capsys.readouterr().out
    assert main(["check", "--dialect", "alexeyab", str(cfg)]) == 0
    assert "dialect alexeyab" in capsys.readouterr().out


def test_width_override_only_touches_the_copy(tmp_path):
    cfg = tmp_path / "net.cfg"
    text = "[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=2\nsize=1\n"
    cfg.write_text(text)
    model, lines = check(str(cfg), width=64)
    assert model.width == 64 and model.height == 32
    assert cfg.read_text() == text


@pytest.mark.slow
def test_every_reference_cfg_checks_or_fails_cleanly(reference, capsys):
    """All 149 real cfgs: a table, or a one-line error (exit 2) -- never a traceback."""
    for path in sorted((reference / "cfg").glob("*/*.cfg")):
        code = main(["check", str(path)])
        out, err = capsys.readouterr()
        assert code in (0, 2), path
        if code == 0:
            assert out.startswith(HEADER) and "Total BFLOPs" in out
        else:
            assert err.count("\n") == 1 and err.startswith(f"darknet-py: error: {path}")


def test_check_command_is_registered():
    from darknet_py.cli import build_parser
    args = build_parser().parse_args(["check", "a.cfg", "b.weights", "--width", "416"])
    assert (args.cfg, args.weights, args.width, args.func.__module__) == (
        "a.cfg", "b.weights", 416, "darknet_py.cli.check")
