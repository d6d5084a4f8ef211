"""AlexeyAB's dilated convolutions against its real Darknet: it sizes the output as without
dilation, ``(h + 2*pad - size)/stride + 1``, and im2col_cpu_ext pads by ``pad*dilation``
(resnet152_trident's dilation=2/3 layers, size=3 pad=1, stride 1 and 2)."""
from __future__ import annotations

import pytest

from darknet_py import CfgError
from darknet_py.cfg import parse_cfg
from darknet_py.compare import compare_case
from darknet_py.darknet import dump_case
from darknet_py.model import Darknet

CFG = """[net]
width=13
height=11
channels=3
batch=1

[convolutional]
dilation=2
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[convolutional]
dilation=3
filters=5
size=3
stride=2
pad=1
activation=linear

[convolutional]
dilation=2
filters=4
groups=1
size=5
stride=1
pad=1
activation=linear
"""


def test_dilation_matches_alexeyab_darknet(darknet_alexeyab, tmp_path):
    cfg = tmp_path / "dil.cfg"
    cfg.write_text(CFG)
    case = dump_case(darknet_alexeyab, cfg, mode="forward", seed=4, out_dir=tmp_path / "case")
    report = compare_case(case)
    print(report)
    assert report.ok, str(report)
    assert [r.index for r in report.rows] == [0, 1, 2]


def test_dilation_with_a_padding_darknet_misreads_is_refused():
    # size=3 with padding=0 and dilation=2: im2col fills 9x9 columns, Darknet allocates 11x11
    with pytest.raises(CfgError, match="im2col .*not supported"):
        Darknet(parse_cfg("[net]\nwidth=13\nheight=13\nchannels=1\n[convolutional]\n"
                          "dilation=2\nfilters=1\nsize=3\npadding=0\n"), "alexeyab")
