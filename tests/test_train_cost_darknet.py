"""Training through ``[cost]`` layers against the real Darknet of both forks.

Each case runs the bridge's train mode (``dump_case(mode="train")``: Darknet's own
``train_network`` K times on given X, y and weights, every layer's l.delta after iteration 1)
and checks it with ``compare_case``: every layer's train-mode output of iteration 1 (the
[cost]'s ``l.output`` is its per-value loss, and type=masked writes -1234 into the previous
layer's output), the [cost]'s delta and cost, the loss of each iteration and every tensor's
update.

* a classifier, [softmax] then [cost] (the classifier cfgs' ending): y one-hot rows; the
  softmax keeps its own cross-entropy delta and cost, the [cost] adds ``scale`` times its
  sse delta to the softmax's delta, the loss is the mean of the two costs;
* regressions, [convolutional] or [connected] then [cost], y real targets: sse, seg
  (pjreddie: the CPU trains it as sse), masked (truths of -1234 mask values, as
  darknet9000.cfg's labels do), smooth (targets far enough for both of its branches; the
  forks' opposite delta signs where ``|diff| >= 1``), L1 (pjreddie).
* the reference writing.cfg, shrunk (a per-pixel regression).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from darknet_py.compare import compare_case
from darknet_py.darknet import dump_case
from test_train_recurrent_darknet import CLASSIFIER
from train_cases import random_model

NET = "learning_rate=0.1\nmomentum=0.9\ndecay=0.005\n"

REGRESSION = """[net]
width=6
height=6
channels=3
batch=8
subdivisions=2
""" + NET + """
[convolutional]
filters=4
size=3
stride=1
pad=1
batch_normalize=1
activation=leaky

{tail}
[cost]
{cost}
"""

CONV_TAIL = "[convolutional]\nfilters=2\nsize=1\nstride=1\nactivation=linear\n"
CONNECTED_TAIL = "[maxpool]\nsize=2\nstride=2\n\n[connected]\noutput=7\nactivation=linear\n"


def run_cost_case(build, cfg_text: str, tmp_path: Path, seed: int, y_of, K: int = 3):
    """Darknet's train_network K times on ``cfg_text`` (random weights, X; y from
    ``y_of(rng, rows, truths)``) against darknet_py: the report, checked ok."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "net.cfg").write_text(cfg_text)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = random_model(cfg_text, build.fork, seed)
    model.save_weights(folder / "init.weights")
    rows = model.net.mini_batch * model.net.subdivisions
    rng = np.random.default_rng(seed)
    X = rng.random((rows,) + tuple(model.input_shape), dtype=np.float32)
    y = y_of(rng, rows, model.layers[-1].out_shape.numel).astype(np.float32)
    case = dump_case(build, folder / "net.cfg", folder / "init.weights", mode="train",
                     out_dir=tmp_path / "case", X=X, y=y, iterations=K, deltas=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = compare_case(case)
    print("\n".join(report.lines()))
    assert report.ok, "\n".join(report.lines())
    names = [name for name, _, _ in report.checks]
    last = len(model.layers) - 1
    assert {f"iteration 1 layer {last} [cost] output", f"iteration 1 layer {last} [cost] delta",
            f"iteration 1 layer {last} cost"} <= set(names), names
    assert sum(1 for n in names if n.endswith("weight update")) == K
    assert any(n.endswith("l.delta") for n in names)
    assert any(row.kind == "cost" for row in report.rows)
    return report


def one_hot(rng, rows, n):
    y = np.zeros((rows, n), np.float32)
    y[np.arange(rows), rng.integers(0, n, rows)] = 1
    return y


def targets(rng, rows, n):
    return rng.uniform(-2.5, 2.5, (rows, n))


def masked_targets(rng, rows, n):
    y = rng.uniform(-1, 1, (rows, n))
    y[rng.random((rows, n)) < 0.3] = -1234
    return y


@pytest.mark.parametrize("fork,cost", [("pjreddie", "type=sse"), ("alexeyab", "type=sse"),
                                       ("pjreddie", "type=sse\nscale=0.5")])
def test_classifier_softmax_cost_training_matches_darknet(fork, cost, request, tmp_path):
    """conv + BN connected + [softmax] + [cost] (as the classifier cfgs end), 2 mini-batches
    of 4 an update: both losses' deltas summed into the softmax's (scale=0.5: half the
    [cost]'s), the loss the mean of both layers' costs."""
    build = request.getfixturevalue(f"darknet_{fork}")
    cfg = CLASSIFIER.format(stop="", softmax="", bn0=1) + "\n[cost]\n" + cost + "\n"
    report = run_cost_case(build, cfg, tmp_path, 11, one_hot)
    assert sum(1 for name, _, _ in report.checks if "[softmax] delta" in name) == 1


@pytest.mark.parametrize("fork,tail,cost,y_of", [
    ("pjreddie", CONNECTED_TAIL, "type=sse", targets),
    ("alexeyab", CONV_TAIL, "type=sse\nscale=2", targets),
    ("alexeyab", CONNECTED_TAIL, "type=sse", targets),
    ("pjreddie", CONV_TAIL, "type=seg", targets),
    ("pjreddie", CONV_TAIL, "type=masked", masked_targets),
    ("alexeyab", CONV_TAIL, "type=masked", masked_targets),
    ("pjreddie", CONV_TAIL, "type=smooth", targets),
    ("alexeyab", CONV_TAIL, "type=smooth", targets),
    ("pjreddie", CONNECTED_TAIL, "type=L1", targets),
], ids=["pj-connected-sse", "ab-conv-sse-scale2", "ab-connected-sse", "pj-seg", "pj-masked", "ab-masked",
        "pj-smooth", "ab-smooth", "pj-connected-L1"])
def test_regression_cost_training_matches_darknet(fork, tail, cost, y_of, request, tmp_path):
    """conv (BN) + conv or connected + [cost]: the [cost]'s delta times ``scale`` is the
    layer before's (AlexeyAB's [connected]: never updated, its l.delta never cleared)."""
    build = request.getfixturevalue(f"darknet_{fork}")
    cfg = REGRESSION.format(tail=tail, cost=cost)
    run_cost_case(build, cfg, tmp_path, 12, y_of)


# -- without Darknet -------------------------------------------------------------------------
def _cost(fork: str, cost: str, n: int = 4):
    from darknet_py.cfg import parse_cfg
    from darknet_py.model import Darknet
    return Darknet(parse_cfg(f"[net]\nwidth=1\nheight=1\nchannels={n}\n[cost]\n{cost}\n"),
                   dialect=fork).layers[0]


def test_cost_loss_by_hand():
    """The blas.c loops on one row: l2 (t - x, its square), smooth_l1 (pjreddie's CPU delta
    has the sign of -diff where |diff| >= 1, AlexeyAB's of diff), l1 (diff == 0: -1), masked
    (truth -1234: the input is set to -1234, delta and loss 0)."""
    x = torch.tensor([[0.5, 2.0, -1.0, 0.25]])
    t = torch.tensor([[1.0, -1.0, 1.5, 0.25]])   # diff .5, -3, 2.5, 0
    delta, cost = _cost("pjreddie", "type=sse").loss(x, t, (1, 1))
    assert delta.tolist() == [[0.5, -3.0, 2.5, 0.0]] and float(cost) == 0.25 + 9 + 6.25
    delta, cost = _cost("pjreddie", "type=smooth").loss(x, t, (1, 1))
    assert delta.tolist() == [[0.5, 1.0, -1.0, 0.0]] and float(cost) == 0.25 + 5 + 4
    delta, cost = _cost("alexeyab", "type=smooth").loss(x, t, (1, 1))
    assert delta.tolist() == [[0.5, -1.0, 1.0, 0.0]] and float(cost) == 0.25 + 5 + 4
    delta, cost = _cost("pjreddie", "type=L1").loss(x, t, (1, 1))
    assert delta.tolist() == [[1.0, -1.0, 1.0, -1.0]] and float(cost) == 0.5 + 3 + 2.5
    masked = _cost("alexeyab", "type=masked")
    tm = torch.tensor([[1.0, -1234.0, 1.5, -1234.0]])
    delta, cost = masked.loss(x, tm, (1, 1))
    assert delta.tolist() == [[0.5, 0.0, 2.5, 0.0]] and float(cost) == 0.25 + 6.25
    out, before = masked.loss_buffers(x, tm)
    assert out.tolist() == [[0.25, 0.0, 6.25, 0.0]]
    assert before.tolist() == [[0.5, -1234.0, -1.0, -1234.0]]
    assert _cost("pjreddie", "type=sse\nscale=3").input_delta(delta, x).tolist() == \
        [[1.5, 0.0, 7.5, 0.0]]
    with pytest.raises(ValueError, match=r"layer 0 \[cost\]: a truth row has 3 values"):
        masked.loss(x, tm[:, :3], (1, 1))


@pytest.mark.parametrize("cost,what", [("type=wgan", "type=wgan"),
                                       ("type=sse\nthresh=.2", "thresh=0.2"),
                                       ("type=seg\nnoobj=.5", "type=seg with noobj=0.5")])
def test_cuda_only_cost_options_refused_in_training(cost, what, tmp_path):
    """pjreddie's wgan, thresh= and seg's noobj= exist only in forward_cost_layer_gpu (its
    CPU forward trains sse): refused with one line naming the layer."""
    from darknet_py import load
    from darknet_py.errors import CfgError
    from darknet_py.train.engine import TrainState, train_network
    cfg = tmp_path / "net.cfg"
    cfg.write_text("[net]\nwidth=2\nheight=2\nchannels=1\nbatch=2\n[convolutional]\nfilters=2\n"
                   f"size=1\nactivation=linear\n[softmax]\n[cost]\n{cost}\n")
    model = load(cfg, dialect="pjreddie", warn_unused=False)
    with pytest.raises(CfgError, match=rf"net\.cfg:11.*layer 2.*\[cost\] {what}.*CUDA") as err:
        train_network(model, TrainState.from_model(model), torch.rand(2, 1, 2, 2),
                      torch.zeros(2, 8))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_writing_cfg_training_matches_darknet(fork, reference, request, tmp_path):
    """The reference writing.cfg (4 convolutions, a logistic 1-channel map, [cost] sse: a
    per-pixel regression) at 16x16, batch 8 in 2 subdivisions, learning_rate=0.001 (its own
    1e-8 moves nothing), targets in [0, 1]."""
    build = request.getfixturevalue(f"darknet_{fork}")
    text = (reference / "cfg" / fork / "writing.cfg").read_text()
    net, rest = text.split("[convolutional]", 1)
    keep = [line for line in net.splitlines()
            if line.split("=")[0].strip() not in ("batch", "subdivisions", "height", "width",
                                                  "learning_rate")]
    cfg = ("\n".join(keep) + "\nbatch=8\nsubdivisions=2\nheight=16\nwidth=16\n"
           "learning_rate=0.001\n\n[convolutional]" + rest)
    run_cost_case(build, cfg, tmp_path, 13, lambda rng, rows, n: rng.random((rows, n)))
