"""load(cfg, weights) without waste: no random init, one read, parameters are views of it.

Against the plain path (build with Darknet's init, then load_weights): the same
parameters bit for bit, and every parameter the file does not hold (past ``upto``,
``dontload``, ``dontloadscales``) gets Darknet's initial value, not uninitialised memory.
"""
from __future__ import annotations

import struct
import threading

import numpy as np
import pytest
import torch

import darknet_py
from darknet_py import Darknet, WeightsError
from darknet_py.cfg import parse_cfg
from darknet_py.layers.base import uninitialised
from darknet_py.weights import Prefetch, uncovered_layers

CFG = ("[net]\nwidth=8\nheight=8\nchannels=3\n"
       "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
       "[maxpool]\nsize=2\nstride=2\n"
       "[convolutional]\nbatch_normalize=1\nfilters=2\nsize=1\nactivation=linear\n"
       "[connected]\noutput=3\nactivation=linear\n")
# conv0: 4 + 12 + 108; conv2: 2 + 6 + 8; connected: 3 + 3*32
COUNTS = [124, 16, 99]


def write(path, floats: int, major: int = 0, minor: int = 2) -> np.ndarray:
    body = np.random.RandomState(1).uniform(0.1, 1.0, floats).astype("<f4")  # variances > 0
    fmt = "<iiiQ" if major < 1000 else "<iiiI"  # parser.c: 'seen' is 32 bits then
    path.write_bytes(struct.pack(fmt, major, minor, 0, 7) + body.tobytes())
    return body


def test_load_equals_build_then_load_weights(tmp_path):
    (tmp_path / "n.cfg").write_text(CFG)
    write(tmp_path / "n.weights", sum(COUNTS))
    fast = darknet_py.load(tmp_path / "n.cfg", tmp_path / "n.weights")
    plain = Darknet(parse_cfg(CFG))
    plain.load_weights(tmp_path / "n.weights")
    a, b = fast.state_dict(), plain.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # no second copy: every CPU float32 tensor is a view of the one buffer that was read
    storages = {t.untyped_storage().data_ptr() for t in fast.state_dict().values()}
    assert len(storages) == 1
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(fast(x), plain(x))


def test_transposed_connected_weights_are_copied(tmp_path):
    (tmp_path / "n.cfg").write_text(CFG)
    write(tmp_path / "n.weights", sum(COUNTS), major=1001)
    fast = darknet_py.load(tmp_path / "n.cfg", tmp_path / "n.weights")
    plain = Darknet(parse_cfg(CFG))
    plain.load_weights(tmp_path / "n.weights")
    assert torch.equal(fast.layers[3].weight, plain.layers[3].weight)


def test_what_the_file_lacks_gets_darknets_init(tmp_path):
    cfg = CFG.replace("[convolutional]\nbatch_normalize=1\nfilters=2",
                      "[convolutional]\ndontloadscales=1\nbatch_normalize=1\nfilters=2")
    (tmp_path / "n.cfg").write_text(cfg)
    write(tmp_path / "n.weights", COUNTS[0] + COUNTS[1] - 6)
    model = darknet_py.load(tmp_path / "n.cfg", tmp_path / "n.weights", upto=3)
    bn = model.layers[2].bn
    assert torch.equal(bn.scales, torch.ones(2))
    assert torch.equal(bn.rolling_mean, torch.zeros(2))
    assert torch.equal(bn.rolling_variance, torch.ones(2))
    fc = model.layers[3]
    assert torch.equal(fc.bias, torch.zeros(3))
    bound = (2.0 / 32) ** 0.5
    assert fc.weight.abs().max() <= bound and fc.weight.abs().sum() > 0


def test_uncovered_layers():
    with uninitialised():
        model = Darknet(parse_cfg(CFG))
    assert uncovered_layers(model) == []
    assert uncovered_layers(model, upto=1) == [2, 3]


def test_mmap_load_is_the_same_and_copy_on_write(tmp_path):
    (tmp_path / "n.cfg").write_text(CFG)
    body = write(tmp_path / "n.weights", sum(COUNTS))
    on_disk = (tmp_path / "n.weights").read_bytes()
    read = darknet_py.load(tmp_path / "n.cfg", tmp_path / "n.weights")
    mapped = darknet_py.load(tmp_path / "n.cfg", tmp_path / "n.weights", mmap=True)
    a, b = read.state_dict(), mapped.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    storages = {t.untyped_storage().data_ptr() for t in b.values()}
    assert len(storages) == 1  # every parameter a view of the one mapping
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(read(x), mapped(x))
    # writing a parameter (as training does) never reaches the file
    with torch.no_grad():
        mapped.layers[0].weight.add_(1.0)
    assert (tmp_path / "n.weights").read_bytes() == on_disk
    assert torch.equal(mapped.layers[0].weight, read.layers[0].weight + 1.0)
    # saving over the mapped file writes a new file and renames it: the model keeps its values
    mapped.save_weights(tmp_path / "n.weights")
    assert torch.equal(mapped.layers[2].weight, read.layers[2].weight)
    assert np.array_equal(np.frombuffer((tmp_path / "n.weights").read_bytes()[20 + 4 * COUNTS[0]:],
                                        "<f4"), body[COUNTS[0]:])


def test_mmap_load_upto_of_a_longer_file(tmp_path):
    (tmp_path / "n.cfg").write_text(CFG)
    write(tmp_path / "n.weights", sum(COUNTS))
    plain = Darknet(parse_cfg(CFG))
    plain.load_weights(tmp_path / "n.weights", upto=1)
    mapped = Darknet(parse_cfg(CFG))
    mapped.load_weights(tmp_path / "n.weights", upto=1, mmap=True)
    assert torch.equal(plain.layers[0].weight, mapped.layers[0].weight)
    assert torch.equal(plain.layers[0].bn.rolling_variance, mapped.layers[0].bn.rolling_variance)


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("floats, match", [
    (sum(COUNTS) - 1, r"n\.weights: layer 3: truncated: expected 239 floats, found 238; the file "
                      r"ends inside layer 3 \[connected\] \(98 of its 99 floats\)"),
    (sum(COUNTS) + 2, r"n\.weights: oversized: expected 239 floats for the network, found 241"),
])
def test_load_size_errors_are_one_line_before_any_parameter(tmp_path, monkeypatch, floats,
                                                            match, mmap):
    (tmp_path / "n.cfg").write_text(CFG)
    write(tmp_path / "n.weights", floats)
    bound = []  # the file's floats become tensors only after the size check passed
    from_numpy = torch.from_numpy
    monkeypatch.setattr(torch, "from_numpy", lambda a: bound.append(a) or from_numpy(a))
    with pytest.raises(WeightsError, match=match) as info:
        darknet_py.load(tmp_path / "n.cfg", tmp_path / "n.weights", mmap=mmap)
    assert "\n" not in str(info.value)
    assert bound == []
    # the read started while the graph was built (mmap=False) is stopped and dropped
    assert not [t for t in threading.enumerate() if t.name == "darknet_py weights"]


def test_prefetch_reads_the_body_or_gives_nothing(tmp_path):
    body = write(tmp_path / "n.weights", 1000)
    fetch = Prefetch(tmp_path / "n.weights", chunk=256)  # 16 reads
    got = fetch.take(20, 1000)
    assert got is not None and np.array_equal(got, body)
    assert Prefetch(tmp_path / "n.weights").take(20, 999) is None  # not what the network needs
    assert Prefetch(tmp_path / "n.weights").take(16, 1000) is None  # another header width
    assert Prefetch(tmp_path / "missing.weights").take(20, 1000) is None
    (tmp_path / "short.weights").write_bytes(b"\0" * 8)
    assert Prefetch(tmp_path / "short.weights").take(20, 0) is None
    assert Prefetch(tmp_path / "n.weights", max_floats=999).take(20, 1000) is None  # over a cap
    assert Prefetch(tmp_path / "n.weights", max_floats=1000).take(20, 1000) is not None
    stopped = Prefetch(tmp_path / "n.weights", chunk=4)
    stopped.cancel()
    assert stopped.body is None and not stopped._thread.is_alive()
