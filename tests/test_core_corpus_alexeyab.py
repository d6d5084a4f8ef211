"""Every AlexeyAB cfg either builds and runs, or names what darknet_py lacks and where.

Two checks per cfg of ``reference/cfg/alexeyab`` (read with ``dialect="alexeyab"``:
AlexeyAB's Darknet is what reads them, even the ones pjreddie's could too):

* **build** at the cfg's own [net] size, on PyTorch's ``meta`` device (shapes
  only, no memory), so even the 1536x1536 P7 networks are checked in a fraction
  of a second. It must build, or raise a one-line :class:`CfgError` whose
  file:line is the offending section header (an unsupported section) or holds the
  offending key (an unsupported option value), and which says "not supported" /
  "unsupported" -- unless the cfg is in :data:`INCONSISTENT`, cfgs that Darknet
  itself only runs by reading past an array.
* **forward** with random weights at a reduced size with finite outputs: the
  first of :data:`SIZES` (capping width and height independently, never
  growing them) at which the network still builds; cfgs that only build at
  their own size (a [crop] of fixed size) run at it. Building the weights
  dominates the time (60-160M parameters for the big YOLOs), so the big ones
  are ``@pytest.mark.slow`` (:data:`SLOW`); the default run still forwards every
  AlexeyAB-only section type (sam, reorg3d, scale_channels, local_avgpool,
  contrastive, Gaussian_yolo).

At the time of writing the cfgs that raise are: cspx-p7-mish.cfg and cspx-p7-mish_hp.cfg
(:data:`INCONSISTENT`). The resnet cfgs with pjreddie-style strided [shortcut]s
(resnet50/101/152, their _yolo variants, resnext152-32x4d), on which AlexeyAB's own
parse_shortcut aborts, build with pjreddie's strided rule and a CfgWarning
(tests/test_shortcut_strided_darknet.py).
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
import torch

from darknet_py import CfgError, Darknet
from darknet_py.cfg import read_cfg
from darknet_py.layers import section_names

from conftest import reference_root

ROOT = reference_root() / "cfg" / "alexeyab"
AB = sorted(ROOT.rglob("*.cfg"))

#: sizes tried, in order, for the forward check (width and height capped separately)
SIZES = (64, 128, 256, 320)

#: cfgs that AlexeyAB's Darknet builds although they are inconsistent; darknet_py refuses them
#: (the regex the error must match).
INCONSISTENT = {
    # mask = 16,17,18,19 with num=16: get_yolo_box would read biases[32..39], past the array
    "cspx-p7-mish.cfg": r"mask: .*outside 0\.\.15",
    # "61,45    61,45" loses its space: 31 anchors, one of them 4561 (the 32nd stays .5)
    "cspx-p7-mish_hp.cfg": r"anchors: .*31 values but num=16",
}

#: forward checks kept out of the default run (seconds to build + run at 64-128 px, 2 busy
#: cores: mostly building 40-160M random weights)
SLOW = {
    "yolov4x-mish.cfg", "yolov4-csp-x-mish.cfg", "yolov4-csp-x-swish.cfg",
    "yolov4-csp-x-swish-frozen.cfg", "yolov4-csp.cfg", "yolov4-csp-swish.cfg", "yolov4.cfg",
    "yolov4_new.cfg", "yolov4-custom.cfg", "yolov4-p5.cfg", "yolov4-p5-frozen.cfg",
    "yolov4-p6.cfg", "cspx-p7-mish-omega.cfg", "cd53paspp-gamma.cfg", "yolov7.cfg",
    "yolov7x.cfg", "densenet201.cfg", "densenet201_yolo.cfg", "resnet152_yolo.cfg",
    "resnet152.cfg", "resnet101.cfg", "resnext152-32x4d.cfg", "darknet53.cfg",
    "csresnext50-panet-spp.cfg", "csresnext50-panet-spp-original-optimal.cfg",
    "csdarknet53-omega.cfg", "efficientnet_b0.cfg", "extraction22k.cfg", "yolov3.cfg",
    "yolov3-voc.cfg", "yolov3-spp.cfg", "yolov3_5l.cfg", "yolov3-openimages.cfg",
    "yolov3-voc.yolov3-giou-40.cfg", "yolov3.coco-giou-12.cfg", "yolo.cfg", "yolo-voc.cfg",
    "yolov2.cfg", "yolov2-voc.cfg", "yolo.2.0.cfg", "yolo-voc.2.0.cfg", "yolo.train.cfg",
    "yolo2.cfg", "yolo-coco.cfg", "yolo-small.cfg", "vgg-16.cfg", "strided.cfg",
    "extraction.cfg", "extraction.conv.cfg", "darknet19.cfg", "darknet19_448.cfg",
    "resnet50.cfg", "resnet50_yolo.cfg", "yolov7-tiny.cfg", "resnet152_trident.cfg",
    "yolo9000.cfg",
    "darknet53_448_xnor.cfg",
}


@pytest.fixture(autouse=True)
def _darknet_data(monkeypatch):
    """Darknet reads ``tree=data/9k.tree`` from its own folder: here the reference's data."""
    monkeypatch.setenv("DARKNET_PY_DATA", str(reference_root() / "data"))


def _id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _build(sections, dialect="alexeyab", meta: bool = False) -> Darknet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "unused" keys: the corpus has plenty
        if meta:
            with torch.device("meta"):
                return Darknet(sections, dialect)
        return Darknet(sections, dialect)


#: recurrent cfgs forward ``time_steps`` rows (Darknet carves the steps out of the batch);
#: their *.train.cfg's 576 steps are capped to this many (the layers' parity over several
#: steps is tests/test_recurrent_darknet.py's)
MAX_STEPS = 4


def _resized(path: Path, cap: Optional[int]):
    sections = read_cfg(path)
    steps = sections[0].get("time_steps")
    if steps is not None and int(steps) > MAX_STEPS:
        sections[0].set("time_steps", MAX_STEPS)
    if cap is not None:
        net = sections[0]
        for key in ("width", "height"):
            value = net.get(key)
            if value is not None and int(value) > cap:
                net.set(key, cap)
    return sections


def _first_missing_section(sections) -> Optional[Tuple[str, int]]:
    for sec in sections[1:]:
        if sec.kind not in section_names():
            return sec.kind, sec.line
    return None


def _check_error(path: Path, error: CfgError) -> None:
    """A refusal must point at its line: the section header, or the line holding the key."""
    assert error.file == str(path) and error.line, f"no file:line in {error}"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()[error.line - 1]
    stripped = re.sub(r"\s", "", text)
    if error.key:
        assert stripped.startswith(error.key + "="), f"line {error.line} is {text!r}: {error}"
    else:
        assert stripped.startswith("["), f"line {error.line} is {text!r}: {error}"
    expected = INCONSISTENT.get(path.name)
    if expected is not None:
        assert re.search(expected, str(error)), str(error)
    else:
        assert re.search(r"not supported|unsupported", str(error)), str(error)


def _forward_size(path: Path):
    """The smallest of SIZES at which the cfg builds, else its own size (None)."""
    for cap in SIZES:
        try:
            _build(_resized(path, cap), meta=True)
            return cap
        except CfgError:
            continue
    return None


def _forward(path: Path) -> None:
    cap = _forward_size(path)
    model = _build(_resized(path, cap))
    assert model.dialect.name == "alexeyab"
    torch.manual_seed(0)
    c, h, w = model.input_shape
    with torch.no_grad():
        out = model(torch.rand(model.net.time_steps, c, h, w))
    outs: List[torch.Tensor] = out if isinstance(out, list) else [out]
    for o in outs:
        assert torch.isfinite(o).all()
    if not model.heads:
        assert outs[-1][0].numel() == model.layers[-1].out_shape.numel


@pytest.mark.skipif(not AB, reason="AlexeyAB reference cfgs not found")
@pytest.mark.parametrize("path", AB, ids=[_id(p) for p in AB])
def test_alexeyab_cfg_builds_and_runs_or_names_what_it_lacks(path):
    sections = read_cfg(path)
    missing = _first_missing_section(sections)
    try:
        model = _build(sections, meta=True)
    except CfgError as error:
        if missing is not None:
            kind, line = missing
            assert f"{path}:{line}:" in str(error) and f"[{kind}]" in str(error), str(error)
        _check_error(path, error)
        return
    assert missing is None
    net = sections[0]
    if net.get("width") is not None:
        assert (model.input_shape.w, model.input_shape.h) == (int(net.get("width")),
                                                              int(net.get("height")))
    if path.name not in SLOW:
        _forward(path)


SLOW_PATHS = [p for p in AB if p.name in SLOW]


@pytest.mark.slow
@pytest.mark.parametrize("path", SLOW_PATHS, ids=[_id(p) for p in SLOW_PATHS])
def test_alexeyab_big_cfg_runs(path):
    try:
        _build(read_cfg(path), meta=True)
    except CfgError as error:
        _check_error(path, error)
        pytest.skip(f"refused: {error}")
    _forward(path)


def test_every_slow_name_is_in_the_corpus():
    if not AB:
        pytest.skip("AlexeyAB reference cfgs not found")
    names = {p.name for p in AB}
    assert SLOW <= names and set(INCONSISTENT) <= names
