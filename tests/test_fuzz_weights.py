"""Fuzzed .weights files: WeightsError or an exact load, never a half-loaded model.

Darknet reads a truncated weights file silently (``fread`` just stops). Here a
file that does not fit the network exactly is refused *before any parameter is
touched*, with a one-line message naming the file and the layer where it ends.

* exhaustive: truncation at every layer boundary, one float either side of it,
  mid-layer and mid-float; extra floats and stray bytes; a header whose version
  gives ``seen`` the other width;
* hypothesis (derandomized): random header words, random lengths, byte flips in
  the header, random ``upto``; the property is "WeightsError with the model
  bit-for-bit unchanged, or a load after which saving reproduces the file";
* :func:`darknet_py.weights.check_weights` (used by ``darknet-py check``) gives
  the same verdict and message as loading, without reading the floats;
* loading a file needs one buffer the size of its body, not more (tracemalloc).
"""
from __future__ import annotations

import os
import re
import struct
import tempfile
import tracemalloc
import warnings
from typing import Dict, Optional

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from darknet_py import Darknet, WeightsError
from darknet_py.cfg import parse_cfg
from darknet_py.weights import Header, _layout, check_weights

#: every kind of stored tensor: conv with and without BN, dontloadscales, dontload,
#: a standalone [batchnorm], AlexeyAB shortcut weights, layers that store nothing.
CFG = """[net]
width=8
height=8
channels=3

[convolutional]
batch_normalize=1
filters=4
size=3
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=4
size=1
activation=linear

[shortcut]
from=-2
weights_type=per_channel
weights_normalization=softmax

[batchnorm]

[convolutional]
batch_normalize=1
filters=6
size=1
dontloadscales=1

[convolutional]
batch_normalize=1
filters=2
size=1
dontload=1

[route]
layers=-1,-3

[convolutional]
filters=3
size=3
pad=1
groups=1
"""
NAME = "fuzz.weights"


def make_model(cfg: str = CFG, dialect: str = "alexeyab") -> Darknet:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg(cfg, "fuzz.cfg"), dialect)
    with torch.no_grad():  # distinct, recognisable values everywhere
        for i, t in enumerate(model.state_dict().values()):
            if t.is_floating_point():
                t.copy_(torch.arange(t.numel(), dtype=t.dtype).view_as(t) * 0.001 + i)
    return model


def needed_floats(model: Darknet, upto: Optional[int] = None) -> int:
    layout = _layout(model, upto)
    return layout[-1][1] + layout[-1][2] if layout else 0


def body_of(n: int, seed: int = 1) -> bytes:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g).numpy().astype("<f4").tobytes()


def snapshot(model: Darknet) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: Darknet, before: Dict[str, torch.Tensor]) -> None:
    for key, value in model.state_dict().items():
        old = before[key]
        if value.is_floating_point():  # bitwise, so NaNs compare too
            assert torch.equal(value.view(torch.int32), old.view(torch.int32)), key
        else:
            assert torch.equal(value, old), key


def weights_target(model: Darknet, data: bytes, upto: Optional[int] = None) -> Optional[Header]:
    """The property for one file content: exact load, or WeightsError and nothing changed."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, NAME)
        with open(path, "wb") as handle:
            handle.write(data)
        before = snapshot(model)
        header_before = model.header
        try:
            checked = check_weights(model, path, upto=upto)
        except WeightsError as exc:
            checked = exc
        try:
            header = model.load_weights(path, upto=upto)
        except WeightsError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith(path), message
            assert_unchanged(model, before)
            assert model.header == header_before
            assert isinstance(checked, WeightsError) and str(checked) == message
            return None
        assert not isinstance(checked, WeightsError), checked
        header = model.header if header is None else header
        # what was loaded is exactly the file: saving reproduces its first bytes
        again = os.path.join(tmp, "again.weights")
        model.save_weights(again, upto=upto)
        with open(again, "rb") as handle:
            saved = handle.read()
        assert data[:len(saved)] == saved
        model.load_state_dict(before)
        model.header = header_before
        return checked


@pytest.fixture(scope="module")
def model() -> Darknet:
    return make_model()


def test_exact_file_loads_and_round_trips(model):
    n = needed_floats(model)
    data = Header(0, 2, 5, 1234).pack() + body_of(n)
    assert weights_target(model, data) == Header(0, 2, 5, 1234)
    narrow = Header(0, 1, 0, 7).pack() + body_of(n)  # version 0.1: 32-bit seen
    assert weights_target(model, narrow).nbytes == 16


def test_truncation_at_every_layer_boundary_and_inside_every_layer(model):
    header = Header(0, 2, 0, 0).pack()
    body = body_of(needed_floats(model))
    layout = _layout(model, None)
    assert len(layout) >= 6
    for index, first, count in layout:
        cuts = {first, first + 1, first + count // 2, first + count - 1}
        if first:
            cuts.add(first - 1)
        for cut in sorted(c for c in cuts if c < len(body) // 4):
            for stray in (0, 1, 3):
                data = header + body[:cut * 4 + stray]
                assert weights_target(model, data) is None
                with pytest.raises(WeightsError) as info:
                    model.load_weights(_write(data))
                owner = next(i for i, f, c in layout if f <= cut < f + c)
                assert re.search(rf"layer {owner}\b", str(info.value)), str(info.value)
        if first:
            # a file holding exactly layers 0..index-1 loads with the upto it suggests
            data = header + body[:first * 4]
            with pytest.raises(WeightsError, match=rf"upto={index}\b"):
                model.load_weights(_write(data))
            assert weights_target(model, data, upto=index) is not None


def test_extra_floats_and_stray_bytes_after_the_last_layer(model):
    header = Header(0, 2, 0, 0).pack()
    body = body_of(needed_floats(model))
    for extra in (b"\x00", b"\x00" * 3, b"\x00" * 4, b"\x00" * 400):
        assert weights_target(model, header + body + extra) is None
    with pytest.raises(WeightsError, match=r"oversized: .*\(100 extra\)"):
        model.load_weights(_write(header + body + b"\x00" * 400))
    with pytest.raises(WeightsError, match=r"3 stray byte"):
        model.load_weights(_write(header + body + b"\x00" * 3))
    # with upto, a longer file is a partial load (darknet53.conv.74 style), stray bytes are not
    assert weights_target(model, header + body + b"\x00" * 400, upto=3) is not None


def test_header_with_the_other_seen_width_is_explained(model):
    body = body_of(needed_floats(model))
    wide_as_narrow = struct.pack("<iiiQ", 0, 1, 0, 5) + body  # 64-bit seen, version says 32
    with pytest.raises(WeightsError, match=r"version 0\.1 stores 'seen' in 4 bytes; with 8"):
        model.load_weights(_write(wide_as_narrow))
    narrow_as_wide = struct.pack("<iiiI", 0, 2, 0, 5) + body
    with pytest.raises(WeightsError, match=r"version 0\.2 stores 'seen' in 8 bytes; with 4"):
        model.load_weights(_write(narrow_as_wide))


@pytest.mark.parametrize("size", [0, 1, 11, 12, 15, 16, 19])
def test_truncated_headers(model, size):
    data = Header(0, 2, 0, 0).pack()[:size]
    assert weights_target(model, data) is None
    with pytest.raises(WeightsError, match=r"truncated header"):
        model.load_weights(_write(data))


def test_unreadable_paths_are_weights_errors(model, tmp_path):
    with pytest.raises(WeightsError, match=r"missing\.weights: cannot read weights"):
        model.load_weights(tmp_path / "missing.weights")
    with pytest.raises(WeightsError, match=r"cannot read weights"):
        model.load_weights(tmp_path)
    with pytest.raises(WeightsError, match=r"cannot read weights"):
        check_weights(model, tmp_path / "missing.weights")


_TMP = tempfile.mkdtemp(prefix="darknet_py_fuzz_w_")


def _write(data: bytes) -> str:
    path = os.path.join(_TMP, NAME)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


INT32 = st.one_of(st.sampled_from([0, 1, 2, 3, 999, 1000, 1001, -1, 2 ** 31 - 1, -2 ** 31]),
                  st.integers(-2 ** 31, 2 ** 31 - 1))
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=300,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(major=INT32, minor=INT32, revision=INT32, seen=st.integers(0, 2 ** 64 - 1),
       delta=st.one_of(st.just(0), st.integers(-64, 64), st.integers(-10 ** 6, 10 ** 6)),
       flips=st.lists(st.tuples(st.integers(0, 19), st.integers(1, 255)), max_size=3),
       upto=st.one_of(st.none(), st.integers(0, 12)))
def test_fuzzed_weights_files(model, major, minor, revision, seen, delta, flips, upto):
    probe = Header(major, minor, revision, 0)
    header = Header(major, minor, revision, seen if probe.wide_seen else seen % 2 ** 32)
    data = bytearray(header.pack() + body_of(needed_floats(model)))
    for at, xor in flips:
        data[at] ^= xor
    if delta < 0:
        del data[max(len(data) + delta, 0):]
    else:
        data += bytes(range(256)) * (delta // 256) + bytes(range(delta % 256))
    weights_target(model, bytes(data), upto)


@settings(FUZZ, max_examples=150)
@given(cut=st.integers(0, 10 ** 6), upto=st.one_of(st.none(), st.integers(1, 10)))
def test_fuzzed_lengths_with_upto(model, cut, upto):
    body = body_of(needed_floats(model))
    data = Header(0, 2, 0, 0).pack() + body
    weights_target(model, data[:cut % (len(data) + 1)], upto)


def test_loading_needs_one_body_sized_buffer_only():
    """A file of B body bytes is read with one B-byte buffer, not two or three copies."""
    cfg = "[net]\nwidth=4\nheight=4\nchannels=64\n[convolutional]\nfilters=512\nsize=3\npad=1\n"
    model = make_model(cfg, "pjreddie")
    n = needed_floats(model)
    assert n * 4 > 1 << 20
    path = _write(Header(0, 2, 0, 0).pack() + body_of(n))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        model.load_weights(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < n * 4 * 1.2 + (256 << 10), (peak, n * 4)


def test_saving_copies_nothing_and_loading_back_is_exact():
    cfg = "[net]\nwidth=4\nheight=4\nchannels=64\n[convolutional]\nfilters=512\nsize=3\npad=1\n"
    model = make_model(cfg, "pjreddie")
    path = _write(b"")
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        model.save_weights(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 << 10, peak  # the floats go from the tensors to the file directly
    with open(path, "rb") as handle:
        assert weights_target(model, handle.read()) is not None


def test_yolov3_tiny_shrunk_boundaries(reference):
    """The same exhaustive boundary sweep on a real (narrowed) network."""
    from test_fuzz_cfg import shrink
    text = (reference / "cfg" / "pjreddie" / "yolov3-tiny.cfg").read_text()
    model = make_model(shrink(text, side=32, divide=8), "pjreddie")
    header = Header(0, 2, 0, 0).pack()
    body = body_of(needed_floats(model))
    assert weights_target(model, header + body) is not None
    for index, first, count in _layout(model, None):
        for cut in (first, first + count // 2):
            if cut:
                assert weights_target(model, header + body[:cut * 4]) is None
