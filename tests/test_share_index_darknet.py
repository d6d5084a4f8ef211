"""AlexeyAB's ``share_index`` (resnet152_trident's trident branches): a [convolutional] that
uses the weights, biases and BN values of an earlier one (make_convolutional_layer points
them at the share_layer's), and that load/save_weights skip."""
from __future__ import annotations

import pytest
import torch

from darknet_py import CfgError
from darknet_py.cfg import parse_cfg
from darknet_py.compare import compare_case
from darknet_py.darknet import dump_case
from darknet_py.model import Darknet

CFG = """[net]
width=9
height=7
channels=3
batch=1

[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[route]
layers=-2

[convolutional]
share_index=1
batch_normalize=1
filters=4
size=3
stride=1
pad=1
dilation=2
activation=leaky

[convolutional]
share_index=-3
batch_normalize=1
filters=4
size=3
stride=2
pad=1
activation=linear
"""


def test_share_index_matches_alexeyab_darknet(darknet_alexeyab, tmp_path):
    cfg = tmp_path / "share.cfg"
    cfg.write_text(CFG)
    case = dump_case(darknet_alexeyab, cfg, mode="forward", seed=3, out_dir=tmp_path / "case")
    report = compare_case(case)
    print(report)
    assert report.ok, str(report)
    assert [r.index for r in report.rows] == [0, 1, 2, 3, 4]


def test_share_index_by_hand():
    # layer 1 shares layer 0's 1x1 weights [[2, -1], [1, 1]] and biases (0.5, 0): the input
    # (1, 3) gives (2 - 3 + .5, 1 + 3) = (-0.5, 4), then (2*-0.5 - 4 + .5, -0.5 + 4) =
    # (-4.5, 3.5); the .weights hold layer 0's 2 biases and 4 weights only
    head = ("[net]\nwidth=1\nheight=1\nchannels=2\n"
            "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n")
    shared = "[convolutional]\nshare_index={}\nfilters=2\nsize=1\nactivation=linear\n"
    for tail, out in ((shared.format(0), 1), ("[route]\nlayers=-1\n" + shared.format(-2), 2)):
        model = Darknet(parse_cfg(head + tail), "alexeyab")
        with torch.no_grad():
            model.layers[0].weight.copy_(torch.tensor([[2.0, -1.0], [1.0, 1.0]]).view(2, 2, 1, 1))
            model.layers[0].bias.copy_(torch.tensor([0.5, 0.0]))
        outs = model.layer_outputs(torch.tensor([1.0, 3.0]).view(1, 2, 1, 1))
        assert outs[0].flatten().tolist() == [-0.5, 4.0]
        assert outs[out].flatten().tolist() == [-4.5, 3.5]
        assert sum(layer.weight_count() for layer in model.layers) == 6


@pytest.mark.parametrize("section, match", [
    ("[convolutional]\nshare_index=0\nfilters=1\nsize=1\n", "Layer size, nweights"),
    ("[convolutional]\nshare_index=0\nfilters=2\nsize=3\npad=1\n", "Layer size, nweights"),
    ("[convolutional]\nshare_index=0\nbatch_normalize=1\nfilters=2\nsize=1\n", "has none"),
    ("[convolutional]\nshare_index=5\nfilters=2\nsize=1\n", "only layers"),
])
def test_share_index_mismatch_is_a_clear_error(section, match):
    with pytest.raises(CfgError, match=match):
        Darknet(parse_cfg("[net]\nwidth=3\nheight=3\nchannels=2\n"
                          "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n" + section),
                "alexeyab")
