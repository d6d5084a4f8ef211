"""darknet_py's random init draws conv weights as each fork's Darknet does.

A network built without weights starts training (``detector train`` with no weights
file) from its make_*_layer init. The forks differ: make_convolutional_layer draws
``scale*rand_normal()`` (pjreddie) or ``scale*rand_uniform(-1, 1)`` (AlexeyAB, a third
of the variance), scale = sqrt(2/(size*size*c/groups)). Training from scratch depends on it: the shapes benchmark (benchmarks/
train_synthetic_darknet.py) trains the real AlexeyAB Darknet to mAP@0.5 ~0.6 at 200
iterations from its own uniform init and ~0.1 from the normal one.

The real Darknet's draws come from the bridge's seeded init (``dump_case`` without
weights: the conv weights are make_convolutional_layer's, only biases and BN values are
redrawn); the deciles of weight / scale of each layer must match darknet_py's draws.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from darknet_py import load
from darknet_py.cfg import parse_cfg
from darknet_py.darknet import dump_case
from darknet_py.model import Darknet

CFG = """[net]
batch=1
width=16
height=16
channels=32

[convolutional]
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=leaky

[convolutional]
filters=32
size=1
stride=1
pad=1
activation=linear
"""

DECILES = np.linspace(0.05, 0.95, 10)


def _deciles(w: torch.Tensor) -> np.ndarray:
    return np.quantile(w.detach().double().numpy().ravel(), DECILES)


def _scale(layer) -> float:
    return float(np.sqrt(2.0 / np.prod(layer.weight.shape[1:])))  # size*size*c/groups


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_init_draws_as_darknet(fork, request, tmp_path):
    build = request.getfixturevalue(f"darknet_{fork}")
    cfg = tmp_path / "init.cfg"
    cfg.write_text(CFG)
    case = dump_case(build, cfg, mode="forward", out_dir=tmp_path / "case", seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = load(cfg, case / "weights.weights", dialect=fork, warn_unused=False)
        torch.manual_seed(3)
        ours = Darknet(parse_cfg(CFG), dialect=fork)
    for a, b in zip(theirs.layers, ours.layers):
        scale = _scale(a)
        want, got = _deciles(a.weight) / scale, _deciles(b.weight) / scale
        # 18432 / 2048 draws: deciles of the same law agree to ~0.03 / ~0.08; N(0, 1)
        # and U(-1, 1) differ by up to 0.7 (1.64 vs 0.9 at the 95% point)
        assert np.abs(got - want).max() < 0.15, (fork, want.round(3), got.round(3))
        if fork == "alexeyab":  # rand_uniform(-1, 1): nothing beyond the scale
            assert float(a.weight.abs().max()) <= scale * (1 + 1e-6)
            assert float(b.weight.abs().max()) <= scale * (1 + 1e-6)
        else:  # rand_normal(): some beyond 2x the scale
            assert float(a.weight.abs().max()) > 2 * scale
            assert float(b.weight.abs().max()) > 2 * scale
        assert float(b.bias.abs().max()) == 0.0
