"""Fuzzed cfgs: only DarknetError may escape, nothing hangs, whatever builds runs.

Mutations of real cfgs (deleted, duplicated and swapped lines, swapped values,
huge, negative and zero numbers, garbage and unicode, CRLF, BOM, a missing
[net], truncation) are fed to ``Darknet(parse_cfg(text))``. The property:

* building raises nothing but :class:`~darknet_py.DarknetError`, whose message
  is one line starting with the cfg's name;
* a network that builds runs a forward pass, and every layer's output has the
  shape the builder promised (``out_shape``), with its table line and BFLOPs;
* sizes are bounded by small :mod:`darknet_py.limits`, so no example allocates
  more than a few MB or takes more than milliseconds.

Hypothesis runs derandomized (the same examples every run) with a few hundred
examples per target; ``benchmarks/fuzz_long.py`` runs the same targets far
longer. The seed cfgs are small real ones with [net] shrunk to 32x32 and
filters divided by 16 (the convs feeding a detection head keep theirs), plus a
built-in cfg using every section type, so the run does not need the reference
data (it uses it when present).
"""
from __future__ import annotations

import os
import re
import tempfile
import warnings
from typing import List, Sequence, Tuple

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from darknet_py import Darknet, DarknetError
from darknet_py.cfg import format_cfg, parse_cfg, read_cfg
from darknet_py.cfg.net import NetOptions
from darknet_py.cfg.options import key_of
from darknet_py.layers.base import CommonOptions
from darknet_py.layers.registry import options_class, section_names
from darknet_py.limits import Limits

try:  # the reference data is optional here: the built-in cfg always runs
    from conftest import reference_root
except ImportError:  # pragma: no cover - run outside pytest
    def reference_root():
        return None

#: caps for every fuzz example: tiny tensors, so nothing is slow and nothing is big.
FUZZ_LIMITS = Limits(max_layer_elements=1 << 18, max_parameters=1 << 21,
                     max_input_elements=1 << 14, max_layers=512)
NAME = "fuzz.cfg"

#: every section type with every kind of connection, tiny (AlexeyAB reads it all).
BUILTIN = """[net]
batch=1
width=16
height=16
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=8
size=1
stride=1
groups=2
activation=mish

[shortcut]
from=-2
activation=linear
weights_type=per_channel

[batchnorm]

[route]
layers=-1,-4
groups=2
group_id=1

[upsample]
stride=2

[dropout]
probability=.25

[convolutional]
filters=14
size=1
activation=linear
dontloadscales=1

[yolo]
mask=0,1
anchors=2,3, 4,5, 6,7
classes=2
num=3
scale_x_y=1.05

[route]
layers=-3

[maxpool]
size=3
stride=1

[avgpool]

[softmax]
groups=2
"""

#: pjreddie-only sections (and [region]/[detection] heads), tiny.
BUILTIN_PJREDDIE = """[net]
width=12
height=12
channels=3

[crop]
crop_height=10
crop_width=10
flip=1

[local]
filters=4
size=3
stride=1
pad=1
activation=leaky

[deconvolutional]
filters=4
size=2
stride=2
activation=linear
batch_normalize=1

[activation]
activation=relu

[normalization]
size=3

[l2norm]

[logistic]

[reorg]
stride=2

[convolutional]
filters=12
size=1
activation=linear

[region]
anchors=1,1, 2,2
classes=1
coords=4
num=2
softmax=1

[route]
layers=-3

[connected]
output=28
activation=leaky

[detection]
classes=2
coords=4
num=1
side=2
softmax=1

[cost]
type=sse
"""

#: AlexeyAB-only sections, tiny.
BUILTIN_ALEXEYAB = """[net]
width=16
height=16
channels=3

[convolutional]
filters=8
size=3
pad=1
activation=mish

[avgpool]

[scale_channels]
from=-2

[sam]
from=-3

[reorg3d]
stride=2

[local_avgpool]
size=2
stride=2

[empty]

[convolutional]
filters=28
size=1
activation=linear

[Gaussian_yolo]
mask=0,1
anchors=2,3, 4,5, 6,7
classes=5
num=3

[route]
layers=-3

[convolutional]
filters=20
size=1
activation=linear

[yolo]
mask=0,1
anchors=2,3, 4,5, 6,7
classes=5
num=3
embedding_layer=-1

[contrastive]
classes=5
yolo_layer=-1

[implicit]
filters=28
"""

SEED_FILES = ("pjreddie/yolov3-tiny.cfg", "pjreddie/tiny.cfg", "pjreddie/cifar.cfg",
              "pjreddie/resnet18.cfg", "pjreddie/yolov3.cfg", "pjreddie/yolov2-tiny.cfg",
              "pjreddie/yolov1-tiny.cfg", "pjreddie/go.test.cfg",
              "alexeyab/yolov4-tiny.cfg", "alexeyab/yolov7-tiny.cfg",
              "alexeyab/yolov4-tiny_contrastive.cfg", "alexeyab/efficientnet_b0.cfg")
HEADS = ("yolo", "region", "Gaussian_yolo", "detection")


def _number(section, key: str) -> int:
    return int(float(section.get(key).split("#", 1)[0]))


def shrink(text: str, side: int = 32, divide: int = 16) -> str:
    """A real cfg made tiny: [net] side x side, batch 1, filters (and conv groups, [connected]
    outputs) / divide, except where a detection head needs the exact count."""
    sections = parse_cfg(text)
    for i, sec in enumerate(sections):
        feeds_head = i + 1 < len(sections) and sections[i + 1].kind in HEADS
        if sec.kind in ("net", "network"):
            for key in ("width", "height"):
                if sec.get(key):
                    sec.set(key, side)
            for key in ("batch", "subdivisions"):
                if sec.get(key):
                    sec.set(key, 1)
        elif sec.kind in ("convolutional", "conv", "local") and sec.get("filters"):
            if not feeds_head:
                sec.set("filters", max(2, _number(sec, "filters") // divide))
            if sec.get("groups") and _number(sec, "groups") > 1:
                sec.set("groups", max(1, _number(sec, "groups") // divide))
        elif sec.kind in ("connected", "conn") and sec.get("output") and not feeds_head:
            sec.set("output", max(2, _number(sec, "output") // divide))
    return format_cfg(sections)


def seed_cfgs() -> List[Tuple[str, str]]:
    """(name, text) of every seed: the built-in cfg, then the shrunk real ones found."""
    seeds = [("builtin", BUILTIN), ("builtin-pjreddie", BUILTIN_PJREDDIE),
             ("builtin-alexeyab", BUILTIN_ALEXEYAB)]
    root = reference_root()
    if root is not None:
        for rel in SEED_FILES:
            path = os.path.join(str(root), "cfg", rel)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as handle:
                    seeds.append((rel, shrink(handle.read())))
    return seeds


SEEDS = seed_cfgs()
#: seeds quick enough for hundreds of examples (< 40 sections); the big ones get fewer
LIGHT = [text for _, text in SEEDS if text.count("[") <= 41]
HEAVY = [text for _, text in SEEDS if text.count("[") > 41]


def _known_keys() -> List[str]:
    from dataclasses import fields
    keys = set()
    for cls in [NetOptions, CommonOptions] + [options_class(n) for n in section_names()]:
        if cls is not None:
            keys.update(key_of(f) for f in fields(cls))
    return sorted(keys)


KEYS = _known_keys()
SECTION_LINES = [f"[{name}]" for name in section_names()] + [
    "[net]", "[network]", "[]", "[", "[convolutional", "[ROUTE]", "[region]", "[connected]",
    "[\u00e9]"]
HOSTILE_NUMBERS = ["0", "-1", "-2", "1", "2", "3", "7", "-7", "255", "1000", "65535", "65536",
                   "2147483647", "-2147483648", "2147483648", "99999999999", "1e300", "-1e300",
                   "1e-300", "nan", "inf", "-inf", "0.5", "-0.5", "1.5", "2.9999", "1e9", "+5",
                   "--1", "0x10", "1_000", "1,2", "-1,-2,-3", "0,0,0,0", "1,", ",1", ",", ",,",
                   "1#2", "#", "3,4,5,6,7,8,9,10,11,12,13,14,15,16"]
HOSTILE_WORDS = ["linear", "leaky", "logistic", "mish", "swish", "relu", "none", "per_feature",
                 "per_channel", "softmax", "avg_relu", "steps", "poly", "random", "sgdr", "abc",
                 "\u00e9", "\U0001F600", "\u200b", "\x00", "\x7f", "\ufeff", "a=b", "[net]"]
VALUES = st.one_of(st.sampled_from(HOSTILE_NUMBERS + HOSTILE_WORDS),
                   st.integers(-2 ** 40, 2 ** 40).map(str),
                   st.integers(-3, 40).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.lists(st.integers(-200, 200), min_size=1, max_size=12).map(
                       lambda v: ",".join(map(str, v))),
                   st.text(min_size=1, max_size=6))
INDEX = st.integers(0, 1 << 16)
SET_VALUE = st.tuples(st.just("set_value"), INDEX, VALUES)
ADD_KEY = st.tuples(st.just("add_key"), INDEX, st.sampled_from(KEYS), VALUES)
# value-level ops are weighted up: they get past the parser and into the builders
OPS = st.one_of(
    st.tuples(st.just("delete"), INDEX),
    st.tuples(st.just("duplicate"), INDEX, INDEX),
    st.tuples(st.just("swap_lines"), INDEX, INDEX),
    st.tuples(st.just("swap_values"), INDEX, INDEX),
    st.tuples(st.just("swap_values"), INDEX, INDEX),
    SET_VALUE, SET_VALUE, SET_VALUE, SET_VALUE, SET_VALUE, SET_VALUE,
    st.tuples(st.just("set_key"), INDEX, st.sampled_from(KEYS)),
    ADD_KEY, ADD_KEY, ADD_KEY,
    st.tuples(st.just("insert_line"), INDEX, st.one_of(
        st.text(max_size=12),
        st.builds("{}={}".format, st.text(min_size=1, max_size=5), VALUES))),
    st.tuples(st.just("insert_section"), INDEX, st.sampled_from(SECTION_LINES)),
    st.tuples(st.just("move_section"), INDEX, INDEX),
    st.tuples(st.just("truncate"), INDEX),
    st.tuples(st.just("unicode"), INDEX, st.sampled_from(["\u00e9", "\U0001F600", "\u200b",
                                                          "\x00", "\t", "\r", "\x0b", "\u2028",
                                                          "\x85", " = ", "=", "#", ";"])),
    st.tuples(st.just("crlf")),
    st.tuples(st.just("bom")),
    st.tuples(st.just("drop_net")),
    st.tuples(st.just("drop_net_section")),
)
MUTATIONS = st.lists(OPS, min_size=1, max_size=5)
DIALECTS = st.sampled_from(["auto", "pjreddie", "alexeyab"])


def _kv(lines: List[str]) -> List[int]:
    return [i for i, line in enumerate(lines) if "=" in line and not line.lstrip().startswith("#")]


def mutate(text: str, ops: Sequence[tuple]) -> str:
    """Apply hypothesis-drawn mutation ops (indices wrap around) to cfg text."""
    lines = text.split("\n")
    for op in ops:
        kind, args = op[0], op[1:]
        n = len(lines)
        kv = _kv(lines)
        if kind == "delete" and n:
            del lines[args[0] % n]
        elif kind == "duplicate" and n:
            lines.insert(args[1] % (n + 1), lines[args[0] % n])
        elif kind == "swap_lines" and n:
            a, b = args[0] % n, args[1] % n
            lines[a], lines[b] = lines[b], lines[a]
        elif kind == "swap_values" and kv:
            a, b = kv[args[0] % len(kv)], kv[args[1] % len(kv)]
            (ka, va), (kb, vb) = lines[a].split("=", 1), lines[b].split("=", 1)
            lines[a], lines[b] = f"{ka}={vb}", f"{kb}={va}"
        elif kind == "set_value" and kv:
            a = kv[args[0] % len(kv)]
            lines[a] = lines[a].split("=", 1)[0] + "=" + args[1]
        elif kind == "set_key" and kv:
            a = kv[args[0] % len(kv)]
            lines[a] = args[1] + "=" + lines[a].split("=", 1)[1]
        elif kind == "add_key":
            lines.insert(args[0] % (n + 1), f"{args[1]}={args[2]}")
        elif kind == "insert_line":
            lines.insert(args[0] % (n + 1), args[1])
        elif kind == "insert_section":
            lines.insert(args[0] % (n + 1), args[1])
        elif kind == "move_section":
            starts = [i for i, line in enumerate(lines) if line.startswith("[")]
            if len(starts) > 1:
                k = args[0] % len(starts)
                end = starts[k + 1] if k + 1 < len(starts) else n
                block = lines[starts[k]:end]
                del lines[starts[k]:end]
                at = args[1] % (len(lines) + 1)
                lines[at:at] = block
        elif kind == "truncate":
            joined = "\n".join(lines)
            lines = joined[:args[0] % (len(joined) + 1)].split("\n")
        elif kind == "unicode" and n:
            a = args[0] % n
            cut = len(lines[a]) // 2
            lines[a] = lines[a][:cut] + args[1] + lines[a][cut:]
        elif kind == "crlf":
            lines = [line + "\r" for line in lines]
        elif kind == "bom":
            lines[:1] = ["\ufeff" + "".join(lines[:1])]
        elif kind == "drop_net":  # the [net] header (its keys then precede any section) ...
            lines = [line for line in lines if not line.strip().startswith(("[net", "[network"))]
        elif kind == "drop_net_section":  # ... or the whole [net] block
            starts = [i for i, line in enumerate(lines) if line.startswith("[")] + [n]
            if len(starts) > 1:
                del lines[starts[0]:starts[1]]
    return "\n".join(lines)


_MESSAGE = re.compile(re.escape(NAME) + r"(:\d+)?: \S")


def build_or_refuse(text: str, dialect: str = "auto", limits: Limits = FUZZ_LIMITS):
    """The model, or None when the cfg is refused with a well-formed DarknetError."""
    try:
        sections = parse_cfg(text, NAME)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Darknet(sections, dialect, limits=limits)
    except DarknetError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message, message
        assert _MESSAGE.match(message), f"error does not name the cfg: {message!r}"
        return None


def run_model(model: Darknet) -> None:
    """Forward pass on a random input; every output must have its promised shape."""
    table = model.layer_table()
    assert len(table) == len(model.layers) + 1
    assert model.bflops() >= 0
    x = torch.rand(1, *model.input_shape)
    with torch.no_grad():
        outputs = model.layer_outputs(x)
        model(x)
    assert len(outputs) == len(model.layers)
    for layer, out in zip(model.layers, outputs):
        if layer.flat:
            assert out[0].numel() == layer.out_shape.numel, (layer.index, layer.kind)
        else:
            assert tuple(out.shape[1:]) == tuple(layer.out_shape), (
                layer.index, layer.kind, tuple(out.shape), tuple(layer.out_shape))


def cfg_target(text: str, dialect: str = "auto", limits: Limits = FUZZ_LIMITS) -> bool:
    """The fuzz property for one cfg text; True when it built (and ran)."""
    model = build_or_refuse(text, dialect, limits)
    if model is None:
        return False
    run_model(model)
    return True


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # thousands of tiny ops: threads only add overhead (and contention between workers)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=300,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])


@settings(FUZZ, max_examples=200)
@given(text=st.one_of(st.text(max_size=40), st.sampled_from([BUILTIN, ""])),
       ops=st.lists(OPS, max_size=8))
def test_the_mutator_itself_never_fails(text, ops):
    assert isinstance(mutate(text, ops), str)


@pytest.mark.parametrize("name,text", SEEDS, ids=[s[0] for s in SEEDS])
def test_seed_cfgs_build_and_run(name, text):
    assert cfg_target(text), f"unmutated seed {name} must build under the fuzz limits"


@FUZZ
@given(seed=st.sampled_from(LIGHT), ops=MUTATIONS, dialect=DIALECTS)
def test_mutated_cfgs_build_and_run_or_raise_cfg_error(seed, ops, dialect):
    cfg_target(mutate(seed, ops), dialect)


@pytest.mark.skipif(not HEAVY, reason="needs the reference cfgs")
@settings(FUZZ, max_examples=40)
@given(seed=st.sampled_from(HEAVY or [""]), ops=MUTATIONS, dialect=DIALECTS)
def test_mutated_big_cfgs(seed, ops, dialect):
    cfg_target(mutate(seed, ops), dialect)


@settings(FUZZ, max_examples=200)
@given(seed=st.sampled_from([BUILTIN, BUILTIN_PJREDDIE, BUILTIN_ALEXEYAB]), ops=MUTATIONS,
       dialect=DIALECTS)
def test_mutated_builtin_cfgs(seed, ops, dialect):
    """Runs without the reference data: every section type darknet_py builds."""
    cfg_target(mutate(seed, ops), dialect)


BYTE_EDITS = st.lists(st.tuples(INDEX, st.sampled_from(["insert", "overwrite", "delete"]),
                                st.binary(min_size=1, max_size=4)), min_size=1, max_size=4)


@settings(FUZZ, max_examples=150)
@given(seed=st.sampled_from(LIGHT), edits=BYTE_EDITS,
       prefix=st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\x00"]))
def test_mutated_cfg_bytes_through_read_cfg(seed, edits, prefix):
    data = bytearray(prefix + seed.encode("utf-8"))
    for at, how, blob in edits:
        at %= len(data) + 1
        if how == "insert":
            data[at:at] = blob
        elif how == "overwrite":
            data[at:at + len(blob)] = blob
        else:
            del data[at:at + len(blob)]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, NAME)
        with open(path, "wb") as handle:
            handle.write(bytes(data))
        try:
            sections = read_cfg(path)
        except DarknetError as exc:
            assert str(exc).startswith(path) and "\n" not in str(exc)
            return
    cfg_target(format_cfg(sections))


def _entries(text: str) -> List[Tuple[int, str]]:
    return [(i, line.split("=", 1)[0]) for i, line in enumerate(text.split("\n"))
            if "=" in line]


@pytest.mark.parametrize("value", ["0", "-1", "-2147483648", "2147483647", "99999999999",
                                   "1e300", "nan", "inf", "-inf", "0.5", "abc", "1,2,3",
                                   "-5,-6", "1e9", "\u00e9"])
def test_every_key_of_the_builtin_cfgs_with_hostile_values(value):
    """Exhaustive: each key of the built-in cfgs in turn gets a hostile value."""
    for text, dialect in ((BUILTIN, "alexeyab"), (BUILTIN_PJREDDIE, "pjreddie"),
                          (BUILTIN_ALEXEYAB, "alexeyab")):
        lines = text.split("\n")
        for i, key in _entries(text):
            mutated = list(lines)
            mutated[i] = f"{key}={value}"
            cfg_target("\n".join(mutated), dialect)


def test_every_line_of_the_builtin_cfgs_deleted_or_duplicated():
    for text, dialect in ((BUILTIN, "alexeyab"), (BUILTIN_PJREDDIE, "pjreddie"),
                          (BUILTIN_ALEXEYAB, "alexeyab")):
        lines = text.split("\n")
        for i in range(len(lines)):
            cfg_target("\n".join(lines[:i] + lines[i + 1:]), dialect)
            cfg_target("\n".join(lines[:i + 1] + lines[i:]), dialect)


@pytest.mark.parametrize("text,where", [
    ("[net]\nwidth=1000000\nheight=1000000\nchannels=3\n[maxpool]\n", "fuzz.cfg:2: width"),
    ("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=1000000000\nsize=3\n"
     "pad=1\n",
     "fuzz.cfg:6: filters"),
    ("[net]\nwidth=8\nheight=8\nchannels=3\n[upsample]\nstride=1000000\n", "fuzz.cfg:5"),
    ("[net]\nwidth=8\nheight=8\nchannels=3\n[maxpool]\nsize=1\npadding=2000000000\n",
     "fuzz.cfg:7: padding"),
    ("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nsize=1\npadding=1000000000\n",
     "fuzz.cfg:7: padding"),
    ("[net]\nwidth=8\nheight=8\nchannels=3\n[activation]\nactivation=linear\n"
     + "[route]\nlayers=-1,-1\n" * 40,
     "fuzz.cfg:"),
])
def test_huge_tensors_are_refused_before_allocation(text, where):
    """A cfg asking for ~10^12 floats is refused with a message (default caps, no memory)."""
    with pytest.raises(DarknetError) as info:
        Darknet(parse_cfg(text, NAME))
    assert str(info.value).startswith(where)
    assert "limit" in str(info.value)
