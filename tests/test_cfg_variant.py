"""cfg variant: every detector cfg of both forks with 3 classes builds with the right head
channels; comments, order and untouched lines are kept; steps follow max_batches."""
from __future__ import annotations

import warnings

import pytest
import torch

from darknet_py import CfgError, Darknet
from darknet_py.cfg import read_cfg
from darknet_py.cfg.reader import parse_cfg
from darknet_py.cfg.variant import make_variant, write_variant
from darknet_py.model import HEAD_KINDS

from conftest import reference_root

CFGS = sorted((reference_root() / "cfg").glob("*/*.cfg"))
DETECTORS = [p for p in CFGS
             if any(s.kind in HEAD_KINDS for s in read_cfg(p))]


def _channels_for(sec, classes: int) -> int:
    """The head formulas as Darknet's parse_* functions check them (written out here)."""
    get = lambda k, d: sec.get(k) if sec.get(k) is not None else d  # noqa: E731
    num = int(get("num", 1))
    mask = [m for m in str(get("mask", "")).split(",") if m.strip()]
    n_mask = len(mask) or num
    if sec.kind == "yolo":
        return n_mask * (classes + 5)
    if sec.kind == "Gaussian_yolo":
        return n_mask * (classes + 9)
    if sec.kind == "region":
        return num * (int(get("coords", 4)) + classes + 1)
    side = int(get("side", 7))
    return side * side * ((1 + int(get("coords", 1))) * num + classes)


@pytest.mark.skipif(not DETECTORS, reason="Darknet reference cfgs not found")
@pytest.mark.parametrize("path", DETECTORS, ids=[f"{p.parent.name}/{p.name}" for p in DETECTORS])
def test_classes_3_builds_with_the_heads_formula(path):
    text = path.read_text()
    try:
        with warnings.catch_warnings(), torch.device("meta"):  # shapes only: fast
            warnings.simplefilter("ignore")
            Darknet(parse_cfg(text, str(path)), warn_unused=False)
    except CfgError as exc:
        pytest.skip(f"does not build today: {exc}")
    if any(s.kind in HEAD_KINDS and s.get("tree") for s in parse_cfg(text, str(path))):
        # YOLO9000: the tree file fixes the classes (9418); 3 would make Darknet read past
        # the tree's entries, so the variant is refused in one line naming the tree
        with pytest.raises(CfgError, match=r"tree .* has \d+ classes but classes=3"):
            make_variant(text, str(path), classes=3)
        return
    out, model = make_variant(text, str(path), classes=3)
    sections = parse_cfg(out, str(path))
    heads = [i for i, s in enumerate(sections[1:]) if s.kind in HEAD_KINDS]
    assert heads and heads == model.heads
    for i in heads:
        sec = sections[i + 1]
        assert sec.get("classes") == "3"
        assert model.layers[i - 1].out_shape.numel // (
            1 if sec.kind == "detection" else model.layers[i - 1].out_shape.h
            * model.layers[i - 1].out_shape.w) == _channels_for(sec, 3)
    # only classes= lines and the channel lines before heads changed; everything else kept
    before, after = text.splitlines(), out.splitlines()
    assert len(before) == len(after)
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert all(b.split("=")[0].strip() in ("classes", "filters", "output") for _, b in changed)


def test_variant_keeps_comments_spacing_and_crlf(tmp_path):
    src = tmp_path / "in.cfg"
    src.write_bytes(b"[net]\r\n# my comment\r\nwidth = 416\r\nheight=416\r\nchannels=3\r\n"
                    b"policy=steps\r\nsteps=400000,450000\r\nscales=.1,.1\r\nmax_batches = 500500\r\n"
                    b"\r\n[convolutional]\r\nfilters=255\r\nsize=1\r\n\r\n"
                    b"[yolo]\r\nmask = 0,1,2\r\nanchors = 10,13,  16,30,  33,23\r\nclasses=80\r\nnum=3\r\n")
    dst = tmp_path / "out.cfg"
    write_variant(src, dst, classes=2, width=320, height=256, max_batches=6000, batch=32,
                  subdivisions=8, anchors=[1, 2, 3, 4, 5, 6])
    assert dst.read_bytes() == (
        b"[net]\r\n# my comment\r\nwidth = 320\r\nheight=256\r\nchannels=3\r\n"
        b"policy=steps\r\nsteps=4800,5400\r\nscales=.1,.1\r\nmax_batches = 6000\r\n"
        b"batch=32\r\nsubdivisions=8\r\n"
        b"\r\n[convolutional]\r\nfilters=21\r\nsize=1\r\n\r\n"
        b"[yolo]\r\nmask = 0,1,2\r\nanchors = 1, 2, 3, 4, 5, 6\r\nclasses=2\r\nnum=3\r\n")


def test_variant_errors_are_one_line_and_write_nothing(tmp_path):
    src = tmp_path / "in.cfg"
    src.write_text("[net]\nwidth=64\nheight=64\nchannels=3\n[convolutional]\nfilters=24\n"
                   "size=1\n[yolo]\nmask=0,1,2\nanchors=1,2,3,4,5,6\nclasses=3\nnum=3\n")
    dst = tmp_path / "out.cfg"
    with pytest.raises(CfgError, match=r"in.cfg:8: anchors: 2 anchors given but this head has num=3"):
        write_variant(src, dst, anchors=[1, 2, 3, 4])
    with pytest.raises(CfgError, match="width"):  # the edited cfg does not build
        write_variant(src, dst, width=0, height=64)
    assert not dst.exists()
    no_head = tmp_path / "cls.cfg"
    no_head.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\n")
    with pytest.raises(CfgError, match="no detection head"):
        write_variant(no_head, dst, classes=3)
    assert not dst.exists()


def test_cli_cfg_variant(tmp_path, capsys):
    from darknet_py.cli import main
    path = reference_root() / "cfg" / "alexeyab" / "yolov4-tiny.cfg"
    if not path.is_file():
        pytest.skip("reference cfg not found")
    out = tmp_path / "v.cfg"
    assert main(["cfg", "variant", str(path), "-o", str(out), "--classes", "3",
                 "--max-batches", "6000"]) == 0
    model = Darknet(read_cfg(out), warn_unused=False)
    assert [model.layers[i].classes for i in model.heads] == [3, 3]
    assert model.net.steps == [4800, 5400] and model.net.max_batches == 6000
    assert main(["cfg", "variant", str(path), "-o", str(out), "--width", "320"]) == 2
    assert "--width and --height" in capsys.readouterr().err
