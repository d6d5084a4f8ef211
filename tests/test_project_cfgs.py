"""The project's own cfg/*.cfg (written by tools/make_cfgs.py) against the forks' cfgs.

Each of our files must give Darknet the same network as the pjreddie/darknet
(YOLOv2, YOLOv3) or AlexeyAB/darknet (YOLOv4) cfg of the same name: the same section kinds in the same order, and per section
the same effective options (first occurrence of a key wins), with values
compared as numbers ("0.1" == ".1", "1" == "1.0", lists item by item).
"""
from __future__ import annotations

import math
import runpy
import warnings
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from darknet_py.cfg import read_cfg
from darknet_py.model import Darknet

ROOT = Path(__file__).resolve().parent.parent
CFG_DIR = ROOT / "cfg"
NAMES = ["yolov3.cfg", "yolov3-tiny.cfg", "yolov3-spp.cfg", "darknet53.cfg", "yolov2.cfg",
         "yolov2-tiny.cfg", "yolov2-voc.cfg", "yolov2-tiny-voc.cfg", "yolov4.cfg",
         "yolov4-tiny.cfg"]
#: the fork whose cfg each of ours reproduces (default pjreddie)
FORK = {"yolov4.cfg": "alexeyab", "yolov4-tiny.cfg": "alexeyab"}
#: layers (sections after [net]) of the detectors, as Darknet prints them
LAYERS = {"yolov3.cfg": 107, "yolov3-tiny.cfg": 24, "yolov3-spp.cfg": 114}


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def normalise(value: str):
    """A cfg value as a tuple of floats when it is a number or a list of numbers,
    else the string itself."""
    items = value.split(",")
    if len(items) > 1 and items[-1] == "":
        items.pop()  # "1,2," -- a trailing comma adds no item
    numbers = [_number(i) for i in items]
    if all(n is not None for n in numbers):
        return tuple(numbers)
    return value


def effective(path: Path) -> List[Tuple[str, Dict[str, object]]]:
    out = []
    for sec in read_cfg(path):
        options = {key: normalise(sec.get(key)) for key in sec.keys()}
        out.append((sec.kind, options))
    return out


@pytest.fixture(scope="module")
def build():
    """build(name): our cfg/<name> as a network, built once for this module
    (the Darknet-53 ones hold 40M+ floats each; freed when the module ends)."""
    cache: Dict[str, Darknet] = {}

    def get(name: str) -> Darknet:
        if name not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unused-key warnings: not this test's business
                cache[name] = Darknet.from_cfg(CFG_DIR / name)
        return cache[name]

    yield get
    cache.clear()


@pytest.fixture(scope="module")
def fork_cfg(reference):
    """fork_cfg(name): the reference cfg of that name from the fork ours follows."""
    def get(name: str) -> Path:
        folder = reference / "cfg" / FORK.get(name, "pjreddie")
        if not folder.is_dir():
            pytest.skip(f"no {folder.name} cfgs under {reference}")
        return folder / name
    return get


def test_normalise():
    assert normalise(".1") == normalise("0.1")
    assert normalise("1") == normalise("1.0")
    assert normalise("10,13,16,30") == normalise("10.0,13,16,30,")
    assert normalise("1,2") != normalise("1,2,3")
    assert normalise("leaky") == "leaky"


def test_generator_is_in_sync():
    """cfg/*.cfg are exactly what tools/make_cfgs.py writes (edit the script, not them)."""
    make = runpy.run_path(str(ROOT / "tools" / "make_cfgs.py"))
    for name in NAMES:
        assert (CFG_DIR / name).read_text(encoding="utf-8") == make["render"](name), name


@pytest.mark.parametrize("name", NAMES)
def test_same_sections_and_values_as_the_forks_cfg(name, fork_cfg):
    ours = effective(CFG_DIR / name)
    theirs = effective(fork_cfg(name))
    assert [k for k, _ in ours] == [k for k, _ in theirs]
    for index, ((kind, mine), (_, ref)) in enumerate(zip(ours, theirs)):
        assert mine == ref, f"{name}: section {index} [{kind}] (layer {index - 1}) differs"


@pytest.mark.parametrize("name", NAMES)
def test_builds_with_darknets_layer_count(name, fork_cfg, build):
    net = build(name)
    # one layer per section after [net]; the sections are those of the reference
    # (test above), so this is also the reference's count
    expected = LAYERS.get(name, len(read_cfg(fork_cfg(name))) - 1)
    assert len(net.layers) == expected
    assert [l.kind for l in net.layers] == [s.kind for s in read_cfg(fork_cfg(name))[1:]]


def test_darknet53_classifier_shape(build):
    net = build("darknet53.cfg")
    assert net.layers[-1].kind == "softmax"
    assert tuple(net.layers[-1].out_shape) == tuple(net.layers[-2].out_shape)
    assert net.layers[-2].out_shape.c == 1000


def test_official_tiny_weights_load(tiny_weights, build):
    net = build("yolov3-tiny.cfg")
    net.load_weights(tiny_weights)
    assert net.seen > 0
