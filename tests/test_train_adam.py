"""[net] adam=1: darknet_py's Adam against a float64 re-statement of the CUDA C.

Neither fork's CPU build has an Adam update (no GPU Darknet is run here), so the reference
is written from reading blas_kernels.cu, per element, in float64:

* ``adam_update_gpu`` (pjreddie blas_kernels.cu:180-192, AlexeyAB 209-221)::

      m = B1*m;  v = B2*v;  d = d - decay*batch*w
      m = m + (1-B1)*d;  v = v + (1-B2)*d*d
      w = w + rate * mhat / (sqrt(vhat) + eps)     (adam_kernel: pj 163-172, AB 192-201)
      mhat = m / (1 - B1^t);  vhat = v / (1 - B2^t);  d = 0

  with ``d`` the layer's ``*_updates``: the negative gradient summed over the batch;
* ``rate = get_current_rate * l.learning_rate_scale`` (update_convolutional_layer_gpu:
  pj convolutional_kernels.cu:302, AB 1300 which also divides by [net] loss_scale), not
  divided by batch; every tensor (weights, biases, BN scales) is decayed;
* ``t``: pjreddie ``++*net.t`` (network.c:827-828, counts updates from 0 in the process,
  never read from .weights); AlexeyAB ``get_current_batch(net)`` (network_kernels.cu:289);
* which layers: pjreddie's conv, connected (connected_layer.c:267), deconv; AlexeyAB's conv
  only (``l.adam``, convolutional_layer.c:662); defaults B1 .9, B2 .999, eps 1e-7
  (pjreddie parser.c:671-673) or 1e-6 (AlexeyAB parser.c:1188-1190).
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

from darknet_py.cfg import parse_cfg
from darknet_py.errors import CfgError
from darknet_py.model import Darknet
from darknet_py.train.engine import TrainState, train_network

BATCH = 4  # batch=4, subdivisions=2: one update per train_network call
SEEN0 = 10 * BATCH  # the .weights header's seen: get_current_batch starts at 10

CFG = """[net]
width=6
height=6
channels=2
batch=4
subdivisions=2
learning_rate=0.01
momentum=0.9
decay=0.05
burn_in=13
power=2
adam={adam}
{extra}

[convolutional]
filters=3
size=3
stride=1
pad=1
batch_normalize=1
activation=leaky
learning_rate=0.5

[convolutional]
filters=2
size=1
stride=1
activation=linear

[connected]
output=3
activation=linear

[cost]
"""

#: fork -> ([net] extra keys, B1, B2, eps, loss_scale, t of the k-th update (1-based),
#: layers that take Adam, update batch: AlexeyAB's update_network_gpu multiplies it by
#: get_sequence_value = subdivisions / sequential_subdivisions, network_kernels.cu:283)
FORKS = {
    "pjreddie": ("", 0.9, 0.999, 1e-7, 1.0, lambda k: k, (0, 1, 2), BATCH),
    "alexeyab": ("B1=0.85\nB2=0.995\nloss_scale=2\nsequential_subdivisions=1", 0.85, 0.995,
                 1e-6, 2.0, lambda k: SEEN0 // BATCH + k, (0, 1), 2 * BATCH),
}


def _model(fork: str, adam: int = 1, seed: int = 3) -> Darknet:
    text = CFG.format(adam=adam, extra=FORKS[fork][0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg(text), dialect=fork)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) - 0.5)
        for layer in model.layers:
            bn = getattr(layer, "bn", None)
            if bn is not None:
                bn.scales.add_(1.0)
    major, minor, rev, _ = model.header
    model.header = (major, minor, rev, SEEN0)
    return model


def _data(k: int):
    gen = torch.Generator().manual_seed(100 + k)
    return torch.rand(BATCH, 2, 6, 6, generator=gen), torch.rand(BATCH, 3, generator=gen)


def _rate(batch_num: int) -> float:
    """get_current_rate, policy=constant with burn_in=13, power=2 (network.c)."""
    lr = 0.01
    return lr * (batch_num / 13) ** 2 if batch_num < 13 else lr


@pytest.mark.parametrize("fork", sorted(FORKS))
def test_adam_follows_the_cuda_update(fork):
    _, B1, B2, eps, loss_scale, t_of, adam_layers, update_batch = FORKS[fork]
    model = _model(fork)
    state = TrainState.from_model(model)
    seen_before = {}

    def capture(m):
        seen_before.clear()
        for i in adam_layers:
            for name, p in m.layers[i].named_parameters():
                # no grad: AlexeyAB's CPU backward leaves a BN conv's bias_updates at 0
                # (its GPU one does not; darknet_py's backward is the CPU one's)
                g = torch.zeros_like(p) if p.grad is None else p.grad
                seen_before[(i, name)] = (p.detach().double().clone(),
                                          -g.detach().double().clone())

    state.before_update = capture
    moments = {}
    for k in range(1, 5):  # batch_num 11, 12 in burn_in; 13, 14 after it
        train_network(model, state, *_data(k))
        batch_num = SEEN0 // BATCH + k
        t = t_of(k)
        assert state.adam_t == t
        assert state.rate == pytest.approx(_rate(batch_num), rel=1e-6)
        params = {(i, n): p for i in adam_layers for n, p in model.layers[i].named_parameters()}
        assert set(params) == set(seen_before)
        for key, (w, d) in seen_before.items():
            scale = 0.5 if key[0] == 0 else 1.0  # [convolutional] learning_rate=0.5
            rate = _rate(batch_num) * scale / loss_scale
            m, v = moments.get(key, (torch.zeros_like(w), torch.zeros_like(w)))
            m, v = B1 * m, B2 * v
            d = d - 0.05 * update_batch * w
            m = m + (1 - B1) * d
            v = v + (1 - B2) * d * d
            moments[key] = (m, v)
            mhat, vhat = m / (1 - B1 ** t), v / (1 - B2 ** t)
            want = rate * mhat / (vhat.sqrt() + eps)
            got = params[key].detach().double() - w
            assert torch.allclose(got, want, rtol=2e-4, atol=2e-7), (fork, k, key,
                                                                       (got - want).abs().max())
            assert want.abs().max() > 1e-4  # every tensor moved
    # the momentum buffers stay at zero (adam_update_gpu fills d with 0)
    for i in adam_layers:
        for name, _ in model.layers[i].named_parameters():
            buf = state.updates.get(f"layers.{i}.{name}")
            assert buf is None or not bool(buf.ne(0).any())


@pytest.mark.parametrize("fork", sorted(FORKS))
def test_adam_is_not_sgd(fork):
    X, y = _data(1)
    after = {}
    for adam in (0, 1):
        model = _model(fork, adam=adam)
        state = TrainState.from_model(model)
        train_network(model, state, X, y)
        after[adam] = [p.detach().clone() for p in model.layers[0].parameters()]
    assert all(not torch.allclose(a, b) for a, b in zip(after[0], after[1]))


@pytest.mark.parametrize("fork", sorted(FORKS))
def test_adam_state_dict_round_trip(fork):
    model = _model(fork)
    state = TrainState.from_model(model)
    for k in (1, 2):
        train_network(model, state, *_data(k))
    saved = state.state_dict()
    assert saved["adam_m"] and saved["adam_v"] and saved["adam_t"] == state.adam_t
    # the model as it is (AlexeyAB's [connected] keeps a stale delta outside state_dict)
    resumed = copy.deepcopy(model)
    state2 = TrainState.from_model(resumed)
    state2.load_state_dict(saved)
    for k in (3, 4):
        train_network(model, state, *_data(k))
        train_network(resumed, state2, *_data(k))
    assert state2.adam_t == state.adam_t
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    # without the moments a resume is a different run
    fresh = copy.deepcopy(resumed)
    state3 = TrainState.from_model(fresh)
    train_network(fresh, state3, *_data(5))
    train_network(model, state, *_data(5))
    assert not torch.equal(fresh.layers[0].weight, model.layers[0].weight)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("fork", sorted(FORKS))
def test_adam_on_cuda_tensors_matches_cpu(fork):
    runs = []
    for device in ("cpu", "cuda"):
        model = _model(fork).to(device)
        state = TrainState.from_model(model)
        for k in (1, 2, 3):
            train_network(model, state, *_data(k))
        assert all(v.device.type == device for v in state.adam_m.values())
        runs.append([p.detach().cpu() for p in model.parameters()])
    for a, b in zip(*runs):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_alexeyab_fixes_nan_before_adam():
    """update_convolutional_layer_gpu (AlexeyAB convolutional_kernels.cu:1306-1307):
    NaN/inf weight updates become 0, NaN/inf weights 1/(index+1) (blas_kernels.cu:1463-1502)
    before adam_update_gpu."""
    model = _model("alexeyab")
    state = TrainState.from_model(model)
    with torch.no_grad():
        model.layers[1].weight.view(-1)[4] = float("nan")
    X, y = _data(1)
    before = {}
    state.before_update = lambda m: before.update(
        w=m.layers[1].weight.detach().double().clone(),
        d=-m.layers[1].weight.grad.detach().double().clone())
    train_network(model, state, X, y)
    w, d = before["w"].view(-1).clone(), before["d"].view(-1).clone()
    d[~torch.isfinite(d)] = 0.0
    w[~torch.isfinite(w)] = 1.0 / 5
    d = d - 0.05 * 2 * BATCH * w  # x get_sequence_value (sequential_subdivisions=1)
    m, v = (1 - 0.85) * d, (1 - 0.995) * d * d
    t = SEEN0 // BATCH + 1
    want = w + _rate(t) / 2.0 * (m / (1 - 0.85 ** t)) / ((v / (1 - 0.995 ** t)).sqrt() + 1e-6)
    got = model.layers[1].weight.detach().double().view(-1)
    assert bool(torch.isfinite(got).all())
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fork, section, adam", [
    # pjreddie: make_connected_layer(..., adam) inside rnn/gru_layer.c, update_rnn/gru_layer_gpu
    # call update_connected_layer_gpu (Adam branch, connected_layer.c:267); deconvolutional
    # (deconvolutional_kernels.cu:119)
    ("pjreddie", "[rnn]\noutput=3\nhidden=3\nactivation=leaky", True),
    ("pjreddie", "[gru]\noutput=3", True),
    ("pjreddie", "[deconvolutional]\nfilters=2\nsize=2\nstride=2\nbatch_normalize=1", True),
    # AlexeyAB: crnn_layer.c makes its convolutions with adam=0 (SGD with momentum)
    ("alexeyab", "[crnn]\nhidden=2\noutput=2\nsize=3\npad=1\nactivation=leaky", False),
])
def test_which_layers_take_adam(fork, section, adam):
    text = (f"[net]\nwidth=4\nheight=4\nchannels=1\nbatch=2\nadam=1\n\n{section}\n\n"
            f"[cost]\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg(text), dialect=fork)
        state = TrainState()
        gen = torch.Generator().manual_seed(0)
        outputs = model.layers[-1].out_shape.numel
        train_network(model, state, torch.rand(2, 1, 4, 4, generator=gen),
                      torch.rand(2, outputs, generator=gen))  # pjreddie [rnn] warns
    names = {f"layers.0.{n}" for n, _ in model.layers[0].named_parameters()}
    assert set(state.adam_m if adam else state.updates) == names
    assert not (state.updates if adam else state.adam_m)


def test_pjreddie_crnn_with_adam_is_refused():
    text = """[net]
width=4
height=4
channels=1
batch=2
adam=1

[crnn]
hidden=2
output=2
steps=1
activation=leaky

[cost]
"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg(text), dialect="pjreddie")
    with pytest.raises(CfgError, match=r"adam=1 with a \[crnn\]"):
        train_network(model, TrainState(), torch.rand(2, 1, 4, 4), torch.rand(2, 32))
