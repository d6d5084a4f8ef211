"""cfg reader, typed options, writer: Darknet's dialect facts from OPTIONS.md."""
from __future__ import annotations

import warnings

import pytest

from darknet_py import CfgError, CfgWarning, Darknet
from darknet_py.cfg import OptionReader, format_cfg, parse_cfg, read_cfg
from darknet_py.cfg.net import NetOptions
from darknet_py.layers.maxpool import MaxpoolOptions
from darknet_py.layers.yolo import YoloOptions

NET = "[net]\nwidth=8\nheight=8\nchannels=3\n"


def test_whitespace_comments_and_first_key_wins():
    text = "[net]\n  wid th = 41 6\n# a comment\n; another\n\nwidth=1\n[maxpool]\nsize = 2 # not a comment?\n"
    sec = parse_cfg(text, "t.cfg")
    assert sec[0].get("width") == "416"           # spaces inside values vanish, first wins
    assert sec[1].get("size") == "2#notacomment?"  # '#' later in a line is part of the value
    assert (sec[1].kind, sec[1].line, sec[1].file) == ("maxpool", 7, "t.cfg")


def test_network_alias_crlf_and_bom(tmp_path):
    path = tmp_path / "w.cfg"
    path.write_bytes(b"\xef\xbb\xbf[network]\r\nwidth=4\r\nheight=4\r\nchannels=1\r\n[avgpool]\r\n")
    model = Darknet(read_cfg(path))
    assert tuple(model.layers[0].out_shape) == (1, 1, 1)


def test_lists_negative_and_absolute_routes():
    cfg = NET + "[convolutional]\nfilters=2\n[convolutional]\nfilters=3\n[route]\nlayers=-1, 0\n"
    model = Darknet(parse_cfg(cfg))
    assert model.layers[2].refs == [1, 0]
    assert model.layers[2].out_shape.c == 5


def test_defaults_live_in_option_classes():
    sec = parse_cfg("[maxpool]\nstride=2\n")[0]
    opts = OptionReader(sec, "pjreddie").read(MaxpoolOptions)
    assert (opts.size, opts.padding) == (2, 1)         # size=stride, padding=size-1
    yolo = parse_cfg("[yolo]\nnum=3\n")[0]
    assert OptionReader(yolo, "pjreddie").read(YoloOptions).max == 90
    assert OptionReader(yolo, "alexeyab").read(YoloOptions).max == 200
    assert OptionReader(yolo, "pjreddie").read(YoloOptions).mask == [0, 1, 2]


def test_float_for_int_truncates_like_atoi():
    sec = parse_cfg("[net]\nbatch=64.9\nwidth=2\nheight=2\nchannels=1\n")[0]
    assert OptionReader(sec, "pjreddie").read(NetOptions).batch == 64


def test_unused_keys_are_reported_with_file_and_line():
    with pytest.warns(CfgWarning, match=r"u\.cfg:6 \[convolutional\] fliters \(did you mean filters\?\)"):
        Darknet(parse_cfg(NET + "[convolutional]\nfliters=2\n", "u.cfg"))


def test_dialect_only_keys_are_unused_in_the_other_dialect():
    cfg = NET + "[convolutional]\nfilters=4\n[route]\nlayers=-1\ngroups=2\ngroup_id=1\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Darknet(parse_cfg(cfg)).dialect.name == "alexeyab"  # auto: groups is AB-only
    with pytest.warns(CfgWarning, match="groups"):
        model = Darknet(parse_cfg(cfg), dialect="pjreddie")
    assert model.layers[1].out_shape.c == 4


@pytest.mark.parametrize("text, match", [
    (NET + "[convolutional]\nfilters=abc\n", r"x\.cfg:6: filters: .*integer.*'abc'"),
    (NET + "[convolushunal]\nfilters=2\n", r"x\.cfg:5: unsupported section \[convolushunal\]"),
    (NET + "[route]\nlayers=-3\n", r"x\.cfg:6: layers: .*refers to layer -3"),
    (NET + "[route]\n", r"x\.cfg:5: layers: .*missing required key"),
    (NET + "[convolutional]\nactivation=leeky\n", r"x\.cfg:6: activation: .*unknown activation"),
    (NET + "[maxpool]\nstride=0\n", r"x\.cfg:6: stride"),
    (NET + "[convolutional]\nfilters=2\nsize=100\n", r"x\.cfg:7: size"),
    (NET + "[convolutional]\nfilters\n", r"x\.cfg:6: cannot parse line"),
    ("[convolutional]\nfilters=2\n", r"x\.cfg:1: first section must be \[net\]"),
    ("width=3\n[net]\n", r"x\.cfg:1: option 'width' before the first"),
    ("# only a comment\n", r"x\.cfg: no sections"),
    (NET, r"x\.cfg:1: the cfg has a \[net\] section but no layers"),
    (NET + "[yolo]\nclasses=2\n", r"x\.cfg:6: classes: .*channels"),
])
def test_bad_cfgs_raise_one_line_errors(text, match):
    with pytest.raises(CfgError, match=match) as info:
        Darknet(parse_cfg(text, "x.cfg"), warn_unused=False)
    assert "\n" not in str(info.value)


def test_empty_and_binary_files(tmp_path):
    empty = tmp_path / "empty.cfg"
    empty.write_text("")
    with pytest.raises(CfgError, match=r"empty\.cfg: no sections"):
        read_cfg(empty)
    binary = tmp_path / "model.weights"
    binary.write_bytes(b"\x00\x00\x00\x00\x02\x00\x00\x00" + bytes(range(256)))
    with pytest.raises(CfgError, match=r"model\.weights: not a text cfg file"):
        read_cfg(binary)
    latin = tmp_path / "latin.cfg"
    latin.write_bytes(b"[net]\nwidth=\xe9\n")
    with pytest.raises(CfgError, match=r"latin\.cfg: not a text cfg file"):
        read_cfg(latin)
    with pytest.raises(CfgError, match=r"missing\.cfg: cannot read cfg"):
        read_cfg(tmp_path / "missing.cfg")


def test_writer_round_trips_every_reference_cfg(reference):
    paths = sorted((reference / "cfg").rglob("*.cfg"))
    assert len(paths) >= 100
    for path in paths:
        sections = read_cfg(path)
        again = parse_cfg(format_cfg(sections), str(path))
        assert [(s.kind, [(e.key, e.value) for e in s.entries]) for s in again] == \
               [(s.kind, [(e.key, e.value) for e in s.entries]) for s in sections], path


def test_darknet_takes_a_cfg_path(tmp_path):
    """Darknet(path) reads the file as Darknet(read_cfg(path)) would; a missing or empty
    file is read_cfg's one-line error naming it (not an AttributeError from inside)."""
    import pathlib
    cfg = pathlib.Path(__file__).resolve().parent.parent / "cfg" / "yolov3-tiny.cfg"
    a, b = Darknet(str(cfg)), Darknet(read_cfg(cfg))
    assert [l.kind for l in a.layers] == [l.kind for l in b.layers]
    assert [tuple(l.out_shape) for l in a.layers] == [tuple(l.out_shape) for l in b.layers]
    assert a.source == b.source and Darknet(cfg).dialect == b.dialect
    empty = tmp_path / "empty.cfg"
    empty.write_text("")
    for path in (empty, tmp_path / "missing.cfg"):
        with pytest.raises(CfgError) as info:
            Darknet(path)
        assert path.name in str(info.value) and "\n" not in str(info.value)
