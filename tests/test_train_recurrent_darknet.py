"""Training of the recurrent sections and of the [softmax] classifier loss against the real
Darknet of both forks.

Each case runs the bridge's train mode (``darknet_py.darknet.dump_case(mode="train")``:
Darknet's own ``train_network`` K times on given X, one-hot y and weights) and checks it with
``darknet_py.compare.compare_case``: every layer's train-mode output of iteration 1, the
[softmax]'s output, delta and cost, the loss of each iteration and every tensor's update
(each iteration from Darknet's weights of the one before).

Each also checks every layer's ``l.delta`` after iteration 1's backward (``deltas=True``).

The recurrent cfgs are those of ``test_recurrent_darknet.py`` (a 1x1/3x3 convolution first,
see there) with a [softmax] loss after them and ``batch=4``: 3 steps of 4 sequences. With 2
sequences a step, the inner layers' BN normalizes pairs (each value +-0.707) and its
backward, which Darknet feeds the last step's statistics, is ill-conditioned: float noise
then grows to ~1e-3 of an update.

What Darknet does and darknet_py reproduces (read in the C, confirmed here):

* [rnn]/[crnn] (``backward_rnn_layer``/``backward_crnn_layer``): the self layer's delta
  after its backward (its activation's and BN's gradient applied) is what the input layer
  gets, not the state's; the output layer's weight gradient reads the state recomputed
  without the shortcut term; every inner BN's backward reads the last step's mean and
  variance (one ``l.mean``/``l.variance`` for all steps);
* [gru]: ``backward_gru_layer`` is empty in both forks;
* AlexeyAB's update_network skips layers without ``l.train`` ([connected], [rnn], [gru],
  [lstm]: their weights never move on its CPU build; [crnn] and [convolutional] do), and its
  forward never clears a [connected] layer's l.delta.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from darknet_py.compare import compare_case
from darknet_py.darknet import dump_case
from test_recurrent_darknet import CFGS
from train_cases import random_model

NET = "learning_rate=0.1\nmomentum=0.9\ndecay=0.005\n"


def train_cfg(kind: str, sequences: int = 4) -> str:
    """The forward-parity cfg of ``kind`` with ``sequences`` a step and a [softmax] loss."""
    text = CFGS[kind].replace("batch=2\n", f"batch={sequences}\n", 1)
    text = text.replace("[net]\n", "[net]\n" + NET, 1)
    return text + "\n[softmax]\n"


def run_case(build, cfg_text: str, tmp_path: Path, seed: int, K: int = 3):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "net.cfg").write_text(cfg_text)
    torch.manual_seed(seed)  # the inner [connected] weights: Darknet's uniform init
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = random_model(cfg_text, build.fork, seed)
    model.save_weights(folder / "init.weights")
    rows = model.net.mini_batch * model.net.subdivisions
    rng = np.random.default_rng(seed)
    X = rng.random((rows,) + tuple(model.input_shape), dtype=np.float32)
    classes = model.layers[-1].out_shape.numel
    y = np.zeros((rows, classes), np.float32)
    y[np.arange(rows), rng.integers(0, classes, rows)] = 1
    case = dump_case(build, folder / "net.cfg", folder / "init.weights", mode="train",
                     out_dir=tmp_path / "case", X=X, y=y, iterations=K, deltas=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = compare_case(case)
    print("\n".join(report.lines()))
    assert report.ok, "\n".join(report.lines())
    updates = [d for name, _, d in report.checks if name.endswith("weight update")]
    assert len(updates) == K
    # every layer's l.delta after iteration 1's backward (not the recurrent ones, whose
    # l.delta is one inner layer's, the loss, nor those up to a stopbackward)
    assert any(name.startswith("iteration 1 layer ") and name.endswith("l.delta")
               for name, _, _ in report.checks)
    return report


@pytest.mark.parametrize("kind,fork", [("rnn", "alexeyab"), ("gru", "pjreddie"),
                                       ("gru", "alexeyab"), ("crnn", "pjreddie"),
                                       ("crnn", "alexeyab")])
def test_recurrent_training_matches_darknet(kind, fork, request, tmp_path):
    """3 train_network calls of 3 steps x 4 sequences: BN inner layers and a shortcut state
    ([rnn], [crnn]), AlexeyAB's hidden=/logistic=, pjreddie's tanh= ([gru])."""
    build = request.getfixturevalue(f"darknet_{fork}")
    report = run_case(build, train_cfg(kind), tmp_path, seed=7)
    moved = [d for name, _, d in report.checks if name.endswith("weight update")]
    print(f"{fork} [{kind}]: {moved}")


def test_pjreddie_rnn_training_is_undefined_in_darknet(darknet_pjreddie, tmp_path):
    """pjreddie's make_rnn_layer allocates l.state for one step; its training forward
    writes time_steps steps into it: its own Darknet crashes on this cfg. darknet_py trains
    it by the same loops as AlexeyAB's and says so."""
    from darknet_py import load
    from darknet_py.errors import BridgeError, CfgWarning
    from darknet_py.train.engine import TrainState, train_network
    with pytest.raises(BridgeError, match="crashed"):
        run_case(darknet_pjreddie, train_cfg("rnn"), tmp_path, seed=7, K=1)
    model = load(tmp_path / "in" / "net.cfg", tmp_path / "in" / "init.weights",
                 dialect="pjreddie", warn_unused=False)
    X = torch.rand(12, 2, 3, 3)
    y = torch.zeros(12, 3)
    y[:, 0] = 1
    with pytest.warns(CfgWarning, match="heap overflow"):
        loss = train_network(model, TrainState.from_model(model), X, y)
    assert np.isfinite(loss)


def test_alexeyab_lstm_training_matches_darknet(darknet_alexeyab, tmp_path, monkeypatch):
    """AlexeyAB's [lstm] (BN inner layers, then a plain one), its Darknet run with the
    harness's HARNESS_ALLOC_LSTM_DELTA=1 (make_lstm_layer leaves the CPU l.delta NULL and
    forward_lstm_layer's fill_cpu of it segfaults): backward_lstm_layer's step 0 reads the
    step's own cell and output as the previous ones, its cell delta carries over to the next
    backward, and the state kept after a training step is step 0's."""
    monkeypatch.setenv("HARNESS_ALLOC_LSTM_DELTA", "1")
    report = run_case(darknet_alexeyab, train_cfg("lstm"), tmp_path, seed=7)
    print([d for name, _, d in report.checks if name.endswith("weight update")])


def test_lstm_training_refused_where_darknet_cannot(darknet_pjreddie, tmp_path, monkeypatch):
    """pjreddie's make_lstm_layer sets no CPU l.backward: its Darknet calls address 0 in
    backward_network (even with the l.delta buffer the harness can add); darknet_py refuses
    to train it with one line naming the layer. AlexeyAB's own Darknet dies without that
    buffer (its CPU forward clears the NULL l.delta)."""
    from darknet_py import load
    from darknet_py.errors import BridgeError, CfgError
    from darknet_py.train.engine import TrainState, train_network
    monkeypatch.setenv("HARNESS_ALLOC_LSTM_DELTA", "1")
    with pytest.raises(BridgeError, match="crashed"):
        run_case(darknet_pjreddie, train_cfg("lstm"), tmp_path, seed=7, K=1)
    model = load(tmp_path / "in" / "net.cfg", dialect="pjreddie", warn_unused=False)
    with pytest.raises(CfgError, match=r"net\.cfg:\d+.*layer 1.*no CPU backward"):
        train_network(model, TrainState.from_model(model), torch.rand(12, 2, 3, 3),
                      torch.zeros(12, 3))


# -- [softmax]: a classifier's loss --------------------------------------------------------
CLASSIFIER = """[net]
width=8
height=8
channels=3
batch=8
subdivisions=2
""" + NET + """
[convolutional]
filters=4
size=3
stride=1
pad=1
batch_normalize={bn0}
activation=leaky

[convolutional]
filters=4
size=1
activation=leaky
{stop}
[maxpool]
size=2
stride=2

[connected]
output=6
batch_normalize=1
activation=logistic

[connected]
output=5
activation=linear

[softmax]
{softmax}
"""


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
@pytest.mark.parametrize("stop,softmax", [("", ""), ("stopbackward=1", "temperature=2")])
def test_softmax_classifier_training_matches_darknet(fork, stop, softmax, request, tmp_path):
    """softmax_x_ent_cpu's delta (t - p) and cost (sum of -log p where t is set), passed to
    the input unchanged (no softmax nor temperature derivative); two mini-batches of 4 an
    update (with 2, the [connected] BN normalizes pairs: ill-conditioned, see above);
    BN [connected] (AlexeyAB: rolling .95/.05, never updated, its l.delta never cleared);
    stopbackward=1 (AlexeyAB: the layers before it are built with l.train 0, never updated;
    without BN there: see test_alexeyab_frozen_batchnorm_refused)."""
    build = request.getfixturevalue(f"darknet_{fork}")
    cfg = CLASSIFIER.format(stop=stop, softmax=softmax, bn0=0 if stop else 1)
    report = run_case(build, cfg, tmp_path, seed=11)
    assert sum(1 for name, _, _ in report.checks if "[softmax] delta" in name) == 1


def test_alexeyab_frozen_batchnorm_refused(darknet_alexeyab, tmp_path):
    """AlexeyAB builds the layers before the last stopbackward=1 with train=0, which leaves
    their BN buffers (l.mean, l.x...) unallocated: its CPU training forward segfaults in
    forward_batchnorm_layer. darknet_py refuses that cfg, naming the layer."""
    from darknet_py import load
    from darknet_py.errors import BridgeError, CfgError
    from darknet_py.train.engine import TrainState, train_network
    cfg = CLASSIFIER.format(stop="stopbackward=1", softmax="", bn0=1)
    with pytest.raises(BridgeError, match="crashed"):
        run_case(darknet_alexeyab, cfg, tmp_path, seed=11, K=1)
    model = load(tmp_path / "in" / "net.cfg", dialect="alexeyab", warn_unused=False)
    with pytest.raises(CfgError, match=r"net\.cfg:\d+.*layer 0.*stopbackward"):
        train_network(model, TrainState.from_model(model), torch.rand(4, 3, 8, 8),
                      torch.zeros(4, 5))


# -- without Darknet -------------------------------------------------------------------------
def test_softmax_loss_by_hand():
    """softmax_x_ent_cpu on one row: delta t - p everywhere, cost -log p where t != 0 only
    (a soft label's other entries add nothing); noloss=1: both zero."""
    from darknet_py.cfg import parse_cfg
    from darknet_py.model import Darknet
    layer = Darknet(parse_cfg("[net]\nwidth=1\nheight=1\nchannels=3\n[softmax]\n")).layers[0]
    p = torch.tensor([[0.2, 0.5, 0.3]])
    t = torch.tensor([[0.0, 1.0, 0.25]])
    delta, cost = layer.loss(p, t, (1, 1))
    assert torch.equal(delta, t - p)
    assert float(cost) == pytest.approx(-np.log(0.5) - np.log(0.3), rel=1e-6)
    quiet = Darknet(parse_cfg("[net]\nwidth=1\nheight=1\nchannels=3\n[softmax]\nnoloss=1\n"))
    delta, cost = quiet.layers[0].loss(p, t, (1, 1))
    assert not delta.any() and float(cost) == 0
    with pytest.raises(ValueError, match="truth row has 2 values"):
        layer.loss(p, t[:, :2], (1, 1))


def test_softmax_backward_passes_the_delta_unchanged():
    """backward_softmax_layer: axpy(l.delta -> net.delta), whatever the temperature."""
    from darknet_py.cfg import parse_cfg
    from darknet_py.model import Darknet
    net = Darknet(parse_cfg("[net]\nwidth=1\nheight=1\nchannels=4\n[softmax]\ntemperature=3\n"))
    net.train()
    x = torch.randn(2, 4, 1, 1, requires_grad=True)
    out = net.layers[0](x, [])
    g = torch.randn(2, 4)
    out.backward(g)
    assert torch.equal(x.grad.reshape(2, 4), g)
