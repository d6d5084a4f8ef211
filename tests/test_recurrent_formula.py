"""Recurrent layers on tiny sizes against values worked out by hand from Darknet's formulas
(forward_rnn_layer, forward_gru_layer, forward_lstm_layer, forward_crnn_layer); the real
Darknet comparison is tests/test_recurrent_darknet.py."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from darknet_py import CfgError
from darknet_py.cfg import parse_cfg
from darknet_py.model import Darknet


def logistic(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def net(text: str, dialect: str = "pjreddie") -> Darknet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Darknet(parse_cfg(text), dialect).eval()


def fill(layer, weight: float, bias: float = 0.0) -> None:
    with torch.no_grad():
        layer.weight.fill_(weight)
        layer.bias.fill_(bias)


def run(model: Darknet, rows) -> list:
    with torch.no_grad():
        return model(torch.tensor(rows, dtype=torch.float32).view(len(rows), -1, 1, 1)).flatten().tolist()


@pytest.mark.parametrize("shortcut", [0, 1])
def test_rnn_steps_and_state_by_hand(shortcut):
    m = net(f"[net]\ninputs=1\ntime_steps=2\n[rnn]\noutput=1\nactivation=linear\nshortcut={shortcut}\n")
    rnn = m.layers[0]
    fill(rnn.input_layer, 2.0, 1.0)   # a = 2x + 1
    fill(rnn.self_layer, 0.5)         # s = state / 2
    fill(rnn.output_layer, 3.0)       # y = 3 state
    # call 1, x = 1, 10: state 3 (+0), then 21 + 1.5 (+3 with shortcut)
    s1 = 3.0
    s2 = 21.0 + 0.5 * s1 + (s1 if shortcut else 0.0)
    assert run(m, [1.0, 10.0]) == pytest.approx([3 * s1, 3 * s2])
    # call 2 goes on from the kept state (Darknet's l.state in inference)
    s3 = 1.0 + 0.5 * s2 + (s2 if shortcut else 0.0)
    s4 = 1.0 + 0.5 * s3 + (s3 if shortcut else 0.0)
    assert run(m, [0.0, 0.0]) == pytest.approx([3 * s3, 3 * s4])
    m.reset_state()
    assert run(m, [1.0, 10.0]) == pytest.approx([3 * s1, 3 * s2])


def test_rnn_batch_is_step_major_and_must_hold_whole_steps():
    m = net("[net]\ninputs=1\ntime_steps=2\n[rnn]\noutput=1\nactivation=linear\n")
    rnn = m.layers[0]
    fill(rnn.input_layer, 1.0)
    fill(rnn.self_layer, 1.0)
    fill(rnn.output_layer, 1.0)
    # 2 sequences: rows 0,1 = step 0 of sequences A,B; rows 2,3 = step 1
    assert run(m, [1.0, 100.0, 2.0, 200.0]) == pytest.approx([1.0, 100.0, 3.0, 300.0])
    with pytest.raises(ValueError, match="time_steps=2"):
        run(m, [1.0, 2.0, 3.0])


def test_rnn_alexeyab_hidden_and_logistic_self_layer():
    m = net("[net]\ninputs=1\ntime_steps=2\n[rnn]\noutput=1\nhidden=2\nlogistic=1\n"
            "activation=linear\n", "alexeyab")
    rnn = m.layers[0]
    assert rnn.self_layer.activation == "logistic" and rnn.hidden == 2
    fill(rnn.input_layer, 1.0)   # a = (x, x)
    fill(rnn.self_layer, 1.0)    # s = logistic(sum state) for both units
    fill(rnn.output_layer, 1.0)  # y = sum state
    s1 = 2.0 + logistic(0.0)                  # x = 2: each unit 2 + 0.5
    s2 = 0.0 + logistic(2 * s1)               # x = 0
    assert run(m, [2.0, 0.0]) == pytest.approx([2 * s1, 2 * s2])


@pytest.mark.parametrize("tanh", [0, 1])
def test_gru_by_hand(tanh):
    m = net(f"[net]\ninputs=1\ntime_steps=2\n[gru]\noutput=1\ntanh={tanh}\n")
    g = m.layers[0]
    for name in ("uz", "wz", "ur", "wr"):
        fill(getattr(g, name), 0.0)  # z = r = logistic(0) = 1/2
    fill(g.uh, 1.0)
    fill(g.wh, 2.0)
    act = math.tanh if tanh else logistic
    state, want = 0.0, []
    for x in (1.0, -3.0):
        h = act(x + 2.0 * (0.5 * state))       # uh(x) + wh(r * state)
        state = 0.5 * state + (1 - 0.5) * h     # weighted_sum: z*state + (1-z)*h
        want.append(state)
    assert run(m, [1.0, -3.0]) == pytest.approx(want)


def test_gru_weights_order_per_fork():
    pj = net("[net]\ninputs=2\ntime_steps=1\n[gru]\noutput=3\n").layers[0]
    ab = net("[net]\ninputs=2\ntime_steps=1\n[gru]\noutput=3\n", "alexeyab").layers[0]
    # pjreddie saves wz wr wh (3x3) then uz ur uh (3x2); AlexeyAB the input layers first
    assert [tuple(t.shape) for t in pj.weight_tensors()[1::2]] == [(3, 3)] * 3 + [(3, 2)] * 3
    assert [tuple(t.shape) for t in ab.weight_tensors()[1::2]] == [(3, 2)] * 3 + [(3, 3)] * 3


def test_lstm_by_hand():
    m = net("[net]\ninputs=1\ntime_steps=3\n[lstm]\noutput=1\n")
    l = m.layers[0]
    for name in ("uf", "ui", "uo", "wf", "wi", "wg", "wo"):
        fill(getattr(l, name), 0.0)  # f = i = o = 1/2
    fill(l.ug, 1.0, 0.5)             # g = tanh(x + 0.5)
    c, want = 0.0, []
    for x in (1.0, 0.0, -2.0):
        c = c * 0.5 + 0.5 * math.tanh(x + 0.5)
        want.append(0.5 * math.tanh(c))
    assert run(m, [1.0, 0.0, -2.0]) == pytest.approx(want)
    # h and c go on into the next call
    c = c * 0.5 + 0.5 * math.tanh(0.5)
    assert run(m, [0.0, 0.0, 0.0])[0] == pytest.approx(0.5 * math.tanh(c))


@pytest.mark.parametrize("dialect", ["pjreddie", "alexeyab"])
def test_crnn_by_hand(dialect):
    # one pixel: pjreddie's 3x3 kernels (padding 1) see only their centre; AlexeyAB size=1
    m = net("[net]\nwidth=1\nheight=1\nchannels=1\ntime_steps=2\n[crnn]\noutput_filters=1\n"
            "hidden_filters=1\noutput=1\nhidden=1\nsize=1\nactivation=leaky\n", dialect)
    r = m.layers[0]
    for layer, w in ((r.input_layer, 2.0), (r.self_layer, 0.5), (r.output_layer, 1.0)):
        with torch.no_grad():
            layer.weight.zero_()
            k = layer.weight.shape[-1] // 2
            layer.weight[..., k, k] = w
    leaky = (lambda v: v if v > 0 else 0.1 * v)
    s1 = leaky(2.0 * -1.0) + leaky(0.0)                 # x = -1
    s2 = leaky(2.0 * 3.0) + leaky(0.5 * s1)             # x = 3
    assert run(m, [-1.0, 3.0]) == pytest.approx([leaky(s1), leaky(s2)])


def test_pjreddie_crnn_swaps_width_and_height_and_warns():
    from darknet_py.errors import CfgWarning
    text = ("[net]\nwidth=4\nheight=3\nchannels=1\n[crnn]\noutput_filters=2\nhidden_filters=2\n")
    with pytest.warns(CfgWarning, match="swaps width and height"):
        pj = Darknet(parse_cfg(text), "pjreddie", warn_unused=False)
    assert tuple(pj.layers[0].out_shape) == (2, 4, 3)      # Darknet's out_h = the width
    with warnings.catch_warnings():
        warnings.simplefilter("error", CfgWarning)
        ab = Darknet(parse_cfg(text.replace("_filters", "") + "pad=1\n"), "alexeyab", warn_unused=False)
    assert tuple(ab.layers[0].out_shape) == (2, 3, 4)
    # AlexeyAB's default size=3 with pad=0 would shrink the image below the state's size
    with pytest.raises(CfgError, match="read past its buffers"):
        Darknet(parse_cfg(text.replace("_filters", "")), "alexeyab", warn_unused=False)


@pytest.mark.parametrize("section", ["[rnn]\noutput=3\n", "[gru]\noutput=3\n", "[lstm]\noutput=3\n"])
def test_recurrent_table_lines_list_the_inner_layers(section):
    m = net("[net]\ninputs=2\n" + section)
    lines = "\n".join(m.layer_table())
    assert "Layer: 2 inputs, 3 outputs" in lines and "\t\tconnected" in lines
