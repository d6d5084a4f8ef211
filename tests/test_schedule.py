"""get_current_rate of both forks for every policy, against the real Darknet's function
(tests/harness ``rate``: parse_network_cfg, set *seen, call get_current_rate)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import darknet_harness as dh
from darknet_py.cfg import parse_cfg
from darknet_py.model import Darknet
from darknet_py.train.schedule import current_batch, current_rate

NET = "[net]\nbatch=8\nsubdivisions=2\nwidth=8\nheight=8\nchannels=3\nlearning_rate=0.01\n"
LAYER = "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"
POLICIES = {
    "constant": "policy=constant\n",
    "burn_in": "policy=constant\nburn_in=100\npower=3\n",
    "step": "policy=step\nstep=37\nscale=0.7\n",
    "steps": "policy=steps\nsteps=10,50,90\nscales=.5,2,.1\nburn_in=5\n",
    "exp": "policy=exp\ngamma=0.993\n",
    "poly": "policy=poly\npower=2.5\nmax_batches=400\nburn_in=20\n",
    "sigmoid": "policy=sigmoid\ngamma=0.05\nstep=150\n",
}
AB_ONLY = {"sgdr": "policy=sgdr\nsgdr_cycle=40\nsgdr_mult=2\nlearning_rate_min=0.0001\n"
                   "max_batches=1000\n"}
BATCHES = [0, 1, 2, 4, 5, 9, 10, 11, 19, 20, 36, 37, 38, 49, 50, 51, 89, 90, 99, 100, 101,
           149, 150, 151, 200, 399]


def _rates(fork, cfg_text, tmp_path):
    harness = dh.build_harness(fork)
    if isinstance(harness, str):
        pytest.skip(harness)
    (tmp_path / "net.cfg").write_text(cfg_text)
    seen = [b * 8 for b in BATCHES]  # batch=8: get_current_batch = seen/8
    out = dh.run(harness, ["rate", "net.cfg"] + seen, tmp_path)
    lines = [l for l in out.splitlines() if l.strip() and not l.startswith(("layer", " "))]
    return [float(v) for v in lines[-len(seen):]]


@pytest.mark.parametrize("fork,policy", [("pjreddie", p) for p in POLICIES]
                         + [("alexeyab", p) for p in list(POLICIES) + list(AB_ONLY)])
def test_rate_equals_darknet(fork, policy, tmp_path):
    cfg = NET + {**POLICIES, **AB_ONLY}[policy] + LAYER
    theirs = _rates(fork, cfg, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg(cfg), dialect=fork)
    ours = [current_rate(model.net, b, model.dialect) for b in BATCHES]
    # the harness prints %.9g of a float: equal floats print equally
    assert [float(f"{np.float32(v):.9g}") for v in ours] == theirs


def test_current_batch_counts_full_batches():
    assert current_batch(seen=64 * 10 + 63, batch=32, subdivisions=2) == 10


def test_pjreddie_sgdr_is_constant():
    """pjreddie's get_policy does not know sgdr: 'going with constant'."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg(NET + AB_ONLY["sgdr"] + LAYER), dialect="pjreddie")
    assert current_rate(model.net, 77, model.dialect) == pytest.approx(0.01)
