""".weights: header variants, byte-exact round trips, partial files, size errors."""
from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
import torch

import darknet_py
from darknet_py import Darknet, WeightsError
from darknet_py.cfg import parse_cfg
from darknet_py.weights import Header, read_header

OFFICIAL_SHA = "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c"
CFG = ("[net]\nwidth=8\nheight=8\nchannels=3\n"
       "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
       "[maxpool]\nsize=2\nstride=2\n"
       "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n")
# conv0: 4 biases + 3*4 BN + 4*3*3*3 weights; conv2: 2 biases + 2*4 weights
COUNTS = [4 + 12 + 108, 2 + 8]


def small(**kw) -> Darknet:
    return Darknet(parse_cfg(CFG, "small.cfg"), **kw)


def write(path, header: bytes, floats: int, seed: int = 0) -> np.ndarray:
    body = np.random.RandomState(seed).standard_normal(floats).astype("<f4")
    path.write_bytes(header + body.tobytes())
    return body


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_official_tiny_round_trip_is_byte_identical(pj_cases, tiny_weights, tmp_path):
    model = darknet_py.load(pj_cases / "tiny-official-dog" / "yolov3-tiny.cfg", tiny_weights)
    assert model.header == (0, 2, 0, 32013312)
    out = tmp_path / "again.weights"
    model.save_weights(out)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == OFFICIAL_SHA


@pytest.mark.parametrize("major, minor, wide", [(0, 2, True), (0, 1, False), (1, 0, True),
                                                (0, 1000, False), (1000, 2, False)])
def test_header_variants_round_trip(tmp_path, major, minor, wide):
    fmt = "<iiiQ" if wide else "<iiiI"
    src = tmp_path / "in.weights"
    body = write(src, struct.pack(fmt, major, minor, 7, 123456), sum(COUNTS))
    model = small()
    model.load_weights(src)
    assert model.header == (major, minor, 7, 123456)
    assert Header(*model.header).wide_seen is wide
    np.testing.assert_array_equal(model.layers[0].bias.detach().numpy(), body[:4])
    dst = tmp_path / "out.weights"
    model.save_weights(dst)
    assert dst.read_bytes() == src.read_bytes()


def test_parameter_order_is_darknets(tmp_path):
    src = tmp_path / "order.weights"
    body = write(src, struct.pack("<iiiQ", 0, 2, 0, 0), sum(COUNTS))
    model = small()
    model.load_weights(src)
    conv = model.layers[0]
    got = np.concatenate([conv.bias.detach().numpy(), conv.bn.scales.detach().numpy(),
                          conv.bn.rolling_mean.numpy(), conv.bn.rolling_variance.numpy(),
                          conv.weight.detach().numpy().ravel()])
    np.testing.assert_array_equal(got, body[:COUNTS[0]])


@pytest.mark.parametrize("floats, match", [
    (COUNTS[0] + 3, r"t\.weights: layer 2: truncated: expected 134 floats, found 127; the file "
                    r"ends inside layer 2 \[convolutional\] \(3 of its 10 floats\)"),
    (COUNTS[0], r"t\.weights: layer 2: truncated: .*none are left; .*upto=2"),
    (sum(COUNTS) + 5, r"t\.weights: oversized: expected 134 floats .*found 139 \(5 extra\)"),
])
@pytest.mark.parametrize("mmap", [False, True])
def test_size_errors_leave_the_model_untouched(tmp_path, floats, match, mmap):
    path = tmp_path / "t.weights"
    write(path, struct.pack("<iiiQ", 0, 2, 0, 0), floats)
    model = small()
    before = state(model)
    with pytest.raises(WeightsError, match=match) as info:
        model.load_weights(path, mmap=mmap)
    assert "\n" not in str(info.value)
    after = state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.header == (0, 2, 0, 0)


def test_bad_headers(tmp_path):
    short = tmp_path / "short.weights"
    short.write_bytes(b"\x00" * 10)
    with pytest.raises(WeightsError, match=r"short\.weights: truncated header"):
        small().load_weights(short)
    odd = tmp_path / "odd.weights"
    odd.write_bytes(struct.pack("<iiiQ", 0, 2, 0, 0) + b"\x00" * 7)
    with pytest.raises(WeightsError, match=r"odd\.weights: body of 7 bytes"):
        small().load_weights(odd)
    with pytest.raises(WeightsError, match=r"nope\.weights: cannot read"):
        read_header(tmp_path / "nope.weights")


def test_partial_load_and_save_upto(tmp_path):
    full = tmp_path / "full.weights"
    body = write(full, struct.pack("<iiiQ", 0, 2, 0, 64), sum(COUNTS))
    model = small()
    model.load_weights(full)
    backbone = tmp_path / "backbone.conv.2"
    model.save_weights(backbone, upto=2)             # like darknet partial ... 2
    assert backbone.stat().st_size == 20 + 4 * COUNTS[0]
    fresh = small()
    last_before = fresh.layers[2].weight.detach().clone()
    fresh.load_weights(backbone, upto=2)
    np.testing.assert_array_equal(fresh.layers[0].weight.detach().numpy().ravel(),
                                  body[16:COUNTS[0]])
    assert torch.equal(fresh.layers[2].weight, last_before)
    fresh.load_weights(full, upto=2)                 # a longer file is fine with upto


def test_dontload_skips_layers(tmp_path):
    cfg = CFG.replace("[convolutional]\nfilters=2", "[convolutional]\ndontload=1\nfilters=2")
    path = tmp_path / "d.weights"
    write(path, struct.pack("<iiiQ", 0, 2, 0, 0), COUNTS[0])
    Darknet(parse_cfg(cfg)).load_weights(path)


def test_load_picks_alexeyab_dialect_from_header_revision(tmp_path):
    (tmp_path / "s.cfg").write_text(CFG)
    path = tmp_path / "ab.weights"
    write(path, struct.pack("<iiiQ", 0, 2, 5, 0), sum(COUNTS))
    assert darknet_py.load(tmp_path / "s.cfg", path).dialect.name == "alexeyab"
    assert darknet_py.load(tmp_path / "s.cfg", path, dialect="pjreddie").dialect.name == "pjreddie"
