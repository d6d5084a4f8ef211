"""One error hierarchy; every message names the file and the line or layer (and key).

``DarknetError`` (a ``ValueError``) > ``CfgError`` / ``WeightsError`` /
``DataError``; the CLI prints the one-line message and exits 2, with the
traceback only under ``--debug``. The resource caps of :mod:`darknet_py.limits`
are tested here too: they are what turns "a cfg asking for 10^12 floats" into a
CfgError instead of an out-of-memory kill.
"""
from __future__ import annotations

import struct
import time
import warnings

import pytest
import torch

import darknet_py
from darknet_py import CfgError, Darknet, DarknetError, DataError, WeightsError
from darknet_py import limits
from darknet_py.cfg import parse_cfg, read_cfg
from darknet_py.cfg.reader import MAX_CFG_BYTES
from darknet_py.cli import main
from darknet_py.limits import Limits

NET = "[net]\nwidth=8\nheight=8\nchannels=3\n"


def build(text: str, name: str = "e.cfg", **kwargs) -> Darknet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Darknet(parse_cfg(text, name), **kwargs)


def raised(fn, *args, **kwargs) -> DarknetError:
    with pytest.raises(DarknetError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    return info.value


# -- the hierarchy -------------------------------------------------------------------------
def test_hierarchy_and_exports():
    for cls in (CfgError, WeightsError, DataError):
        assert issubclass(cls, DarknetError) and issubclass(cls, ValueError)
        assert getattr(darknet_py, cls.__name__) is cls
    assert issubclass(DarknetError, ValueError)


def test_message_format_names_file_line_layer_and_key():
    assert str(CfgError("bad", file="a.cfg", line=3, key="size")) == "a.cfg:3: size: bad"
    assert str(WeightsError("short", file="w.weights", layer=7)) == "w.weights: layer 7: short"
    assert str(DataError("broken", file="x.jpg")) == "x.jpg: broken"
    err = CfgError("two\nlines", file="a.cfg", line=1)
    assert str(err) == "a.cfg:1: two lines" and (err.file, err.line, err.key) == ("a.cfg", 1, None)


# -- CfgError: reading ----------------------------------------------------------------------
def test_unreadable_cfg_files(tmp_path):
    err = raised(read_cfg, tmp_path / "missing.cfg")
    assert isinstance(err, CfgError) and str(err).startswith(f"{tmp_path / 'missing.cfg'}: ")
    binary = tmp_path / "bin.cfg"
    binary.write_bytes(b"[net]\nwidth=1\x00\n")
    assert "NUL byte at offset 13" in str(raised(read_cfg, binary))
    latin = tmp_path / "latin.cfg"
    latin.write_bytes(b"[net]\n# caf\xe9\n")
    assert str(raised(read_cfg, latin)).startswith(f"{latin}: not a text cfg file (invalid UTF-8")
    huge = tmp_path / "huge.cfg"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_CFG_BYTES + 1)  # sparse: costs no disk
    assert f"file is {MAX_CFG_BYTES + 1} bytes" in str(raised(read_cfg, huge))
    assert str(raised(read_cfg, tmp_path)).startswith(f"{tmp_path}: cannot read cfg")


@pytest.mark.parametrize("text,where", [
    ("[net]\n[maxpool\n", "p.cfg:2: malformed section header"),
    ("[net]\nwidth\n", "p.cfg:2: cannot parse line 'width'"),
    ("[net]\nwidth=\n", "p.cfg:2: cannot parse line"),
    ("\n\nwidth=3\n[net]\n", "p.cfg:3: option 'width' before the first [section]"),
    ("# only a comment\n", "p.cfg: no sections found"),
])
def test_parse_errors_name_file_and_line(text, where):
    assert str(raised(parse_cfg, text, "p.cfg")).startswith(where)


# -- CfgError: building ---------------------------------------------------------------------
@pytest.mark.parametrize("text,where", [
    ("[maxpool]\n", "e.cfg:1: first section must be [net]"),
    (NET + "[net]\n", "e.cfg:5: [net] must be the first section only"),
    (NET + "[no_such_layer]\n", "e.cfg:5: unsupported section [no_such_layer] (layer 0)"),
    (NET, "e.cfg:1: the cfg has a [net] section but no layers"),
    ("[net]\nwidth=8\n[maxpool]\n", "e.cfg:1: [net] width, height and channels must all be > 0"),
    (NET + "[convolutional]\nfilters=abc\n", "e.cfg:6: filters: [convolutional] expected an "
                                             "integer, got 'abc'"),
    (NET + "[convolutional]\nfilters=4\nstride=0\n", "e.cfg:7: stride: [convolutional] stride "
                                                     "must be > 0"),
    (NET + "[convolutional]\nactivation=lekay\n", "e.cfg:6: activation: [convolutional] unknown "
                                                  "activation 'lekay'"),
    (NET + "[maxpool]\n[route]\nlayers=1\n", "e.cfg:7: layers: [route] refers to layer 1"),
    (NET + "[maxpool]\n[route]\n", "e.cfg:6: layers: [route] missing required key"),
    (NET + "[maxpool]\nstride=2\n[shortcut]\nfrom=-5\n", "e.cfg:8: from: [shortcut] refers to"),
    (NET + "[convolutional]\nfilters=14\n[yolo]\nclasses=2\nnum=3\nmask=0,1,5\n",
     "e.cfg:10: mask: [yolo] mask [0, 1, 5] refers to anchors outside 0..2"),
    (NET + "[upsample]\nstride=-16\n", "e.cfg:5: [upsample] output shape would be 3x0x0"),
])
def test_build_errors_name_file_line_and_key(text, where):
    err = raised(build, text)
    assert isinstance(err, CfgError)
    assert str(err).startswith(where), str(err)


# -- resource limits --------------------------------------------------------------------------
def test_limits_refuse_before_allocating_and_name_the_line():
    text = NET + "[convolutional]\nfilters=64\nsize=3\npad=1\n" * 3
    tight = Limits(max_parameters=50_000)
    err = raised(build, text, limits=tight)
    assert str(err).startswith("e.cfg:14: filters: [convolutional] 36864 weights bring the "
                               "network to 75584 parameters, over the limit of 50000")
    assert "$DARKNET_PY_MAX_PARAMETERS" in str(err)
    err = raised(build, text, limits=Limits(max_layer_elements=4000))
    assert str(err).startswith("e.cfg:5: [convolutional] output 64x8x8 (c x h x w) of 4096 "
                               "floats exceeds the limit of 4000 per layer")
    assert str(raised(build, text, limits=Limits(max_input_elements=100))).startswith(
        "e.cfg:2: width: [net] input 8x8x3 has 192 values, over the limit of 100")
    assert str(raised(build, text, limits=Limits(max_layers=2))).startswith(
        "e.cfg:13: more than 2 layers")
    assert len(build(text).layers) == 3  # defaults: fine


def test_limits_from_environment_override_and_argument(monkeypatch):
    text = NET + "[convolutional]\nfilters=64\nsize=3\npad=1\n"
    monkeypatch.setenv("DARKNET_PY_MAX_ELEMENTS", "1e3")
    assert limits.current().max_layer_elements == 1000
    assert "limit of 1000 per layer" in str(raised(build, text))
    with limits.override(max_layer_elements=10 ** 6):  # the block beats the environment
        assert len(build(text).layers) == 1
        # and an explicit argument beats the block
        assert "limit of 10 per" in str(raised(build, text, limits=Limits(max_layer_elements=10)))
    monkeypatch.setenv("DARKNET_PY_MAX_ELEMENTS", "2**20")
    monkeypatch.setenv("DARKNET_PY_MAX_PARAMETERS", "1_000_000")
    assert limits.current() == Limits(max_layer_elements=2 ** 20, max_parameters=1_000_000)
    monkeypatch.setenv("DARKNET_PY_MAX_LAYERS", "many")
    err = raised(limits.current)
    assert str(err).startswith("environment variable DARKNET_PY_MAX_LAYERS='many': expected")
    monkeypatch.setenv("DARKNET_PY_MAX_LAYERS", "0")
    assert "must be >= 1" in str(raised(limits.current))
    with pytest.raises(ValueError, match="positive int"):
        Limits(max_layers=0)


def test_cfgs_with_absurdly_many_lines_are_refused_while_parsing():
    """16 MB of ``[avg]`` or ``a=1`` lines would take a minute and a GB to parse."""
    from darknet_py.cfg.reader import MAX_CFG_LINES
    start = time.perf_counter()
    text = NET + "[avg]\n" * 70000
    assert str(raised(parse_cfg, text, "n.cfg")).startswith(
        "n.cfg:65541: more than 65536 layers ($DARKNET_PY_MAX_LAYERS)")
    with limits.override(max_layers=10):
        assert str(raised(parse_cfg, text, "n.cfg")).startswith("n.cfg:15: more than 10 layers")
    text = NET + "[avg]\n" + "a=1\n" * MAX_CFG_LINES
    assert str(raised(parse_cfg, text, "n.cfg")).startswith(
        f"n.cfg:{MAX_CFG_LINES + 1}: more than {MAX_CFG_LINES} section and key lines")
    assert time.perf_counter() - start < 30


def test_override_is_restored_after_an_error():
    before = limits.current()
    with pytest.raises(CfgError):
        with limits.override(max_layers=1):
            build(NET + "[maxpool]\n[maxpool]\n")
    assert limits.current() == before


def test_a_cfg_asking_for_a_trillion_floats_costs_nothing():
    # 10^6 x 10^6 x 1: refused from the [net] numbers alone, before any layer exists
    err = raised(build, "[net]\nwidth=1000000\nheight=1000000\nchannels=1\n[maxpool]\n")
    assert "1000000000000 values, over the limit" in str(err)
    err = raised(build, NET + "[convolutional]\nfilters=1000000\nsize=1000\npadding=500\n")
    assert str(err).startswith("e.cfg:6: filters:") and "limit" in str(err)


# -- WeightsError -----------------------------------------------------------------------------
def small() -> Darknet:
    return build(NET + "[convolutional]\nfilters=4\nsize=3\nbatch_normalize=1\n"
                       "[maxpool]\n[convolutional]\nfilters=2\nsize=1\n")


def test_weights_errors_name_file_and_layer(tmp_path):
    model = small()
    header = struct.pack("<iiiQ", 0, 2, 0, 0)
    n0, n2 = 4 * 4 + 4 * 3 * 9, 2 + 2 * 4
    path = tmp_path / "w.weights"
    path.write_bytes(header + b"\x00" * 4 * (n0 + 3))
    err = raised(model.load_weights, path)
    assert isinstance(err, WeightsError) and err.layer == 2
    assert str(err).startswith(f"{path}: layer 2: truncated: expected {n0 + n2} floats, "
                               f"found {n0 + 3}; the file ends inside layer 2 [convolutional]")
    path.write_bytes(header + b"\x00" * 4 * n0)
    assert str(raised(model.load_weights, path)).startswith(
        f"{path}: layer 2: truncated: expected {n0 + n2} floats, found {n0}; layer 2 "
        f"[convolutional] needs {n2} and none are left; the file ends exactly after layer 1")
    path.write_bytes(header + b"\x00" * 4 * (n0 + n2 + 1))
    assert str(raised(model.load_weights, path)).startswith(
        f"{path}: oversized: expected {n0 + n2} floats for the network, found {n0 + n2 + 1}")
    path.write_bytes(header[:10])
    assert str(raised(model.load_weights, path)).startswith(f"{path}: truncated header")
    assert str(raised(model.load_weights, tmp_path / "none.weights")).startswith(
        f"{tmp_path / 'none.weights'}: cannot read weights")


# -- DataError --------------------------------------------------------------------------------
def test_data_errors_name_the_file(tmp_path):
    from darknet_py.compare import load_case
    err = raised(load_case, tmp_path)
    assert isinstance(err, DataError) and str(err).startswith(f"{tmp_path}: not a reference case")
    (tmp_path / "case.json").write_text("{not json")
    assert str(raised(load_case, tmp_path)).startswith(f"{tmp_path / 'case.json'}: cannot read")


def test_corrupted_image_is_a_data_error(tmp_path):
    image = pytest.importorskip("darknet_py.image")
    from PIL import Image
    good = tmp_path / "good.jpg"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(good)
    data = good.read_bytes()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(data[:len(data) // 3])
    err = raised(image.decode_image, broken)
    assert isinstance(err, DataError) and str(err).startswith(f"{broken}: ")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8 definitely not a jpeg")
    assert str(raised(image.decode_image, junk)).startswith(f"{junk}: ")
    assert str(raised(image.decode_image, tmp_path / "gone.png")).startswith(
        f"{tmp_path / 'gone.png'}: no such image file")


# -- the command line -------------------------------------------------------------------------
def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(NET + "[convolutional]\nfilters=4\nsize=0\n")
    assert main(["check", str(cfg)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"darknet-py: error: {cfg}:7: size: [convolutional] size must be > 0, got 0\n"
    with pytest.raises(CfgError):
        main(["--debug", "check", str(cfg)])
    assert main(["check", str(tmp_path / "missing.cfg")]) == 2
    assert capsys.readouterr().err.startswith(f"darknet-py: error: {tmp_path / 'missing.cfg'}:")


def test_cli_weights_error_exits_2(tmp_path, capsys):
    cfg = tmp_path / "ok.cfg"
    cfg.write_text(NET + "[convolutional]\nfilters=4\nsize=3\n")
    weights = tmp_path / "ok.weights"
    weights.write_bytes(struct.pack("<iiiQ", 0, 2, 0, 0) + b"\x00" * 4 * 100)
    assert main(["check", str(cfg), str(weights)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"darknet-py: error: {weights}: layer 0: truncated: expected 112 floats")


def test_errors_leave_no_half_built_state():
    # a failed build does not disturb the next one, and no override leaks
    before = limits.current()
    for _ in range(3):
        raised(build, NET + "[maxpool]\n[route]\nlayers=7\n")
    assert limits.current() == before
    model = build(NET + "[maxpool]\n")
    assert torch.equal(model(torch.ones(1, 3, 8, 8)), torch.ones(1, 3, 8, 8))


def test_dropout_cannot_be_the_first_layer():
    # Darknet aliases the previous layer's output (layers[-1]); found by the differential run
    from darknet_py import CfgError, Darknet
    from darknet_py.cfg import parse_cfg
    with pytest.raises(CfgError, match="first layer"):
        Darknet(parse_cfg("[net]\nwidth=4\nheight=4\nchannels=1\n[dropout]\n", "d.cfg"))
