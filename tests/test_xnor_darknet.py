"""pjreddie's ``xnor=1`` convolutions against its real Darknet (forward_convolutional_layer's
CPU path: binarize_weights with each filter's mean |w|, binarize_cpu of the input), and the
same binarization worked out by hand. AlexeyAB's dialect refuses xnor=1 (see
darknet_py/layers/convolutional.py)."""
from __future__ import annotations

import warnings

import pytest
import torch

from darknet_py import CfgError
from darknet_py.cfg import parse_cfg
from darknet_py.compare import compare_case
from darknet_py.darknet import dump_case
from darknet_py.model import Darknet

#: a linear conv first, so that the xnor layers see inputs of both signs; then xnor layers
#: with BN, groups, a 1x1 kernel, stride 2 and padding
CFG = """[net]
width=9
height=7
channels=3
batch=1

[convolutional]
filters=4
size=3
pad=1
activation=linear

[convolutional]
xnor=1
batch_normalize=1
filters=6
size=3
pad=1
activation=leaky

[convolutional]
xnor=1
filters=4
groups=2
size=3
stride=2
pad=1
activation=linear

[convolutional]
xnor=1
batch_normalize=1
filters=3
size=1
activation=linear
"""


def test_xnor_matches_pjreddie_darknet(darknet_pjreddie, tmp_path):
    cfg = tmp_path / "xnor.cfg"
    cfg.write_text(CFG)
    case = dump_case(darknet_pjreddie, cfg, mode="forward", seed=3, out_dir=tmp_path / "case")
    report = compare_case(case)
    print(report.summary() if hasattr(report, "summary") else report)
    assert report.ok, str(report)
    assert report.worst is not None and report.worst.max_rel < 1e-5


def test_xnor_by_hand():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = Darknet(parse_cfg("[net]\nwidth=2\nheight=1\nchannels=1\n"
                              "[convolutional]\nxnor=1\nfilters=2\nsize=1\nactivation=linear\n"),
                    "pjreddie").eval()
    conv = m.layers[0]
    with torch.no_grad():
        conv.weight.view(-1).copy_(torch.tensor([-0.5, 2.0]))  # filter means |w|: 0.5 and 2
        conv.bias.fill_(0.25)
        out = m(torch.tensor([[[[3.0, 0.0]]]])).flatten().tolist()
    # input -> +1, -1 (0 is not > 0); filter 0 weight -> -0.5, filter 1 -> +2
    assert out == pytest.approx([-0.5 + 0.25, 0.5 + 0.25, 2 + 0.25, -2 + 0.25])


def test_xnor_alexeyab_is_a_clear_error():
    with pytest.raises(CfgError, match="xnor=1 is not supported"):
        Darknet(parse_cfg("[net]\nwidth=2\nheight=2\nchannels=1\n"
                          "[convolutional]\nxnor=1\nfilters=2\nsize=1\n"), "alexeyab")
