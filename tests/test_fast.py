"""The inference fast path (darknet_py/fast.py) against the plain path and against Darknet.

On every visible reference case of both forks (forward and detect modes): every
layer of the fast path agrees with the plain path within the compare tolerance
(of that layer's max |value|), and both pass compare against the layers Darknet
dumped. Plus: when each path is taken, and the in-place reuse rules.
"""
from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch

import darknet_py
from darknet_py import Darknet, fast
from darknet_py.cfg import parse_cfg
from darknet_py.compare import DEFAULT_TOLERANCE, _official_weights, layer_diff, load_case

CASES = ["darknet/tiny-official-dog", "darknet/tiny-official-dog-416x256",
         "darknet/tiny-rand-nonsquare", "darknet/yolov3-narrow-rand-320",
         "darknet-alexeyab/yolov4-tiny-narrow-rand-256"]


def test_every_visible_case_is_listed(reference):
    found = sorted(f"{d.parent.name}/{d.name}" for d in reference.glob("darknet*/*")
                   if (d / "case.json").is_file() and load_case(d).mode in ("forward", "detect"))
    assert found == sorted(CASES)


@pytest.mark.parametrize("name", CASES)
def test_fast_path_agrees_with_plain_path_and_darknet(reference, name):
    case = load_case(reference / name)
    weights = case.weights or _official_weights(case.weights_name)
    if weights is None:
        pytest.skip(f"weights {case.weights_name} unavailable")
    model = darknet_py.load(case.cfg, weights, dialect=case.dialect, warn_unused=False)
    x = torch.from_numpy(np.load(case.folder / "input.npy"))
    with torch.no_grad():
        quick = model.layer_outputs(x)
        with fast.plain():
            slow = model.layer_outputs(x)
        heads_quick = model(x)
    worst = 0.0
    for i, (q, s) in enumerate(zip(quick, slow)):
        d = layer_diff(i, model.layers[i].kind, q[0].numpy(), s[0].numpy(), DEFAULT_TOLERANCE)
        assert d.ok, (i, d.max_rel)
        worst = max(worst, d.max_rel)
        ref_path = case.layer_file(i)
        if ref_path.is_file():
            ref = np.load(ref_path)
            for outs in (quick, slow):
                d = layer_diff(i, model.layers[i].kind, outs[i][0].numpy(), ref,
                               DEFAULT_TOLERANCE)
                assert d.ok, (i, d.max_rel)
    # heads of forward() (in-place reuse allowed) equal the heads of layer_outputs
    for h, idx in zip(heads_quick, model.heads):
        assert torch.equal(h, quick[idx])
    assert worst > 0  # the paths do differ (folded BN), by rounding only


def test_fast_path_is_chosen_only_in_eval_without_gradients(monkeypatch):
    model = Darknet(parse_cfg("[net]\nwidth=4\nheight=4\nchannels=1\n"
                              "[convolutional]\nbatch_normalize=1\nfilters=2\nsize=1\n"
                              "activation=leaky\n"))
    calls = []
    layer = model.layers[0]
    monkeypatch.setattr(layer, "infer",
                        lambda *a: calls.append(1) or type(layer).infer(layer, *a))
    x = torch.rand(1, 1, 4, 4)
    model(x)                                  # gradients on: plain
    model.train()
    with torch.no_grad():
        model(x)                              # training: plain
    model.eval()
    with torch.no_grad():
        with fast.plain():
            model(x)                          # forced plain
        model.fast = False
        model(x)
        assert calls == []
        model.fast = True
        model(x)
        with torch.inference_mode():
            model(x)
    assert calls == [1, 1]


def test_fold_follows_parameter_changes():
    model = Darknet(parse_cfg("[net]\nwidth=4\nheight=4\nchannels=1\n"
                              "[convolutional]\nbatch_normalize=1\nfilters=2\nsize=1\n"
                              "activation=linear\n"))
    x = torch.rand(1, 1, 4, 4)
    with torch.no_grad():
        before = model(x).clone()
        model.layers[0].bn.rolling_mean.add_(1.0)
        after = model(x)
        with fast.plain():
            plain = model(x)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, plain, rtol=1e-6, atol=1e-6)


def test_weights_are_reordered_once_and_serve_every_shape(monkeypatch):
    # oneDNN's blocked weight is made on the first fast forward and reused by later inputs
    # of other sizes and batches (same numbers as the plain path); a model holding it can
    # still be deep-copied and saved (the opaque cache is dropped, then remade)
    from darknet_py.layers import convolutional
    if convolutional._REORDER_WEIGHT is None or not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN weight reorder")
    model = Darknet(parse_cfg(QUIRKS["pjreddie"])).eval()
    _random_bn(model, 2)
    reorders = []
    real = convolutional._REORDER_WEIGHT
    monkeypatch.setattr(convolutional, "_REORDER_WEIGHT",
                        lambda *a: reorders.append(a[-1]) or real(*a))
    convs = sum(layer.kind == "convolutional" for layer in model.layers)
    with torch.no_grad():
        for batch, h, w in [(1, 10, 14), (3, 11, 13), (1, 8, 16)]:
            x = torch.rand(batch, 3, h, w)
            got = model.layer_outputs(x)
            with fast.plain():
                want = model.layer_outputs(x)
            for i, (q, s) in enumerate(zip(got, want)):
                for b in range(batch):
                    d = layer_diff(i, model.layers[i].kind, q[b].numpy(), s[b].numpy(),
                                   DEFAULT_TOLERANCE)
                    assert d.ok, (batch, h, w, i, d.max_rel)
        assert len(reorders) == convs
        twin = copy.deepcopy(model)
        buffer = io.BytesIO()
        torch.save(model, buffer)
        x = torch.rand(1, 3, 10, 14)
        torch.testing.assert_close(twin(x), model(x), rtol=0, atol=0)
    assert len(reorders) == 2 * convs


def test_in_place_reuse_never_touches_a_tensor_read_later():
    # layer 3 (route of one layer) hands back layer 1's output, which layer 5 reads again:
    # the shortcut at 4 must not add into it; the input tensor itself is never written
    cfg = ("[net]\nwidth=6\nheight=6\nchannels=2\n"
           "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=leaky\n"
           "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"
           "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"
           "[route]\nlayers=1\n"
           "[shortcut]\nfrom=-3\nactivation=leaky\n"
           "[route]\nlayers=1,4\n"
           "[dropout]\nprobability=.5\n"
           "[shortcut]\nfrom=-7\nactivation=linear\n")
    model = Darknet(parse_cfg(cfg.replace("from=-7", "from=0")))
    x = torch.rand(2, 2, 6, 6)
    x_copy = x.clone()
    with torch.no_grad():
        with fast.plain():
            want = model.layer_outputs(x)
        got = model(x)
    assert torch.equal(x, x_copy)
    torch.testing.assert_close(got, want[-1], rtol=1e-5, atol=1e-6)


def test_batches_run_channels_last_with_the_same_numbers(reference):
    # fast_layout "auto": a CPU batch > 1 runs in channels-last memory
    case = load_case(reference / "darknet-alexeyab/yolov4-tiny-narrow-rand-256")
    model = darknet_py.load(case.cfg, case.weights, dialect=case.dialect, warn_unused=False)
    x = torch.from_numpy(np.load(case.folder / "input.npy"))
    x = x.reshape(1, *x.shape[-3:])
    x = torch.cat([x, x.flip(-1)])
    with torch.no_grad():
        quick = model.layer_outputs(x)
        heads = model(x)
        with fast.plain():
            slow = model.layer_outputs(x)
    assert fast.prepare(model, x).is_contiguous(memory_format=torch.channels_last)
    for i, (q, s) in enumerate(zip(quick, slow)):
        assert q.is_contiguous()
        for b in range(2):
            d = layer_diff(i, model.layers[i].kind, q[b].numpy(), s[b].numpy(), DEFAULT_TOLERANCE)
            assert d.ok, (i, b, d.max_rel)
    for h, idx in zip(heads, model.heads):
        torch.testing.assert_close(h, quick[idx], rtol=0, atol=0)


# -- shapes from the input, and the conv quirks main's plain path copies ------------------
QUIRKS = {
    # pjreddie: a 1x1 kernel with stride 2 skips im2col (gemm reads the input flat); an odd
    # size reaches the maxpool's right/bottom padding, an even one does not
    "pjreddie": ("[net]\nwidth=14\nheight=10\nchannels=3\n"
                 "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
                 "[maxpool]\nsize=2\nstride=2\n"
                 "[convolutional]\nbatch_normalize=1\nfilters=6\nsize=1\nstride=2\n"
                 "activation=leaky\n"
                 "[maxpool]\nsize=3\nstride=1\n"
                 "[convolutional]\nfilters=5\nsize=1\nactivation=linear\n"),
    # AlexeyAB: dilation pads by pad*dilation; a 1x1 kernel with stride_x=1 (stride_y 2)
    # skips im2col and reads flat
    "alexeyab": ("[net]\nwidth=12\nheight=9\nchannels=3\n"
                 "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\ndilation=2\n"
                 "activation=mish\n"
                 "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=1\nstride_x=1\nstride_y=2\n"
                 "activation=leaky\n"
                 "[maxpool]\nsize=2\nstride=2\n"
                 "[convolutional]\nbatch_normalize=1\nfilters=3\nsize=3\npad=1\ndilation=2\n"
                 "activation=relu\n"),
}


def _random_bn(model: Darknet, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.layers:
            bn = getattr(layer, "bn", None)
            if bn is not None:
                bn.scales.copy_(torch.rand(bn.scales.shape, generator=g) + 0.5)
                bn.rolling_mean.copy_(torch.randn(bn.rolling_mean.shape, generator=g) * 0.1)
                bn.rolling_variance.copy_(torch.rand(bn.rolling_variance.shape, generator=g) + 0.5)
            if hasattr(layer, "bias") and isinstance(layer.bias, torch.Tensor):
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * 0.1)


@pytest.mark.parametrize("dialect", sorted(QUIRKS))
@pytest.mark.parametrize("size", [None, (13, 11), (16, 8)])
@pytest.mark.parametrize("batch", [1, 2])
def test_fast_path_takes_shapes_from_the_input_and_keeps_the_conv_quirks(dialect, size, batch):
    torch.manual_seed(0)
    model = Darknet(parse_cfg(QUIRKS[dialect]), dialect).eval()
    _random_bn(model, 1)
    if dialect == "pjreddie":
        assert model.layers[2].flat_1x1
    else:
        assert model.layers[1].flat_1x1 and model.layers[0].dilation == 2
    w, h = size or (model.width, model.height)
    x = torch.rand(batch, 3, h, w)
    with torch.no_grad():
        quick = model.layer_outputs(x)
        with fast.plain():
            slow = model.layer_outputs(x)
    assert [q.shape for q in quick] == [s.shape for s in slow]
    for i, (q, s) in enumerate(zip(quick, slow)):
        for b in range(batch):
            d = layer_diff(i, model.layers[i].kind, q[b].numpy(), s[b].numpy(), DEFAULT_TOLERANCE)
            assert d.ok, (i, b, d.max_rel)


def test_fast_path_after_resize_agrees_with_plain(reference):
    case = load_case(reference / "darknet-alexeyab/yolov4-tiny-narrow-rand-256")
    model = darknet_py.load(case.cfg, case.weights, dialect=case.dialect, warn_unused=False)
    model.resize(320, 192)
    x = torch.rand(2, 3, 192, 320)
    with torch.no_grad():
        quick = model.layer_outputs(x)
        with fast.plain():
            slow = model.layer_outputs(x)
    for i, (q, s) in enumerate(zip(quick, slow)):
        assert q.shape == s.shape
        for b in range(2):
            d = layer_diff(i, model.layers[i].kind, q[b].numpy(), s[b].numpy(), DEFAULT_TOLERANCE)
            assert d.ok, (i, b, d.max_rel)


def test_tracing_takes_the_plain_path(monkeypatch):
    # exported graphs (darknet_py.export traces under no_grad in eval) hold portable ops only
    model = Darknet(parse_cfg(QUIRKS["pjreddie"])).eval()
    calls = []
    for layer in model.layers:
        if layer.kind == "convolutional":
            monkeypatch.setattr(layer, "fold", lambda l=layer: calls.append(1) or type(l).fold(l))
    x = torch.rand(1, 3, 10, 14)
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
        assert calls == []
        want = model(x)
        assert calls
        torch.testing.assert_close(traced(x), want, rtol=1e-5, atol=1e-6)
