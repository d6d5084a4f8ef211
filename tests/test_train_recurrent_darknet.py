"""Training of the recurrent sections and of the [softmax] classifier loss against the real
Darknet of both forks.

Each case runs the bridge's train mode (``darknet_py.darknet.dump_case(mode="train")``:
Darknet's own ``train_network`` K times on given X, one-hot y and weights) and checks it with
``darknet_py.compare.compare_case``: every layer's train-mode output of iteration 1, the
[softmax]'s output, delta and cost, the loss of each iteration and every tensor's update
(each iteration from Darknet's weights of the one before).

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
                     out_dir=tmp_path / "case", X=X, y=y, iterations=K)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = compare_case(case)
    print("\n".join(report.lines()))
    assert report.ok, "\n".join(report.lines())
    updates = [d for name, _, d in report.checks if name.endswith("weight update")]
    assert len(updates) == K
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
