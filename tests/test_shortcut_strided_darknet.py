"""pjreddie-style strided ``[shortcut]``s read in the AlexeyAB dialect.

AlexeyAB's cfg folder has pjreddie's resnet cfgs (resnet50/101/152.cfg, resnext152-32x4d.cfg,
and the _yolo variants built on them), whose shortcuts add a from-layer of twice the
previous layer's width and height. pjreddie's Darknet sums them with ``shortcut_cpu``'s
stride; AlexeyAB's ``parse_shortcut`` asserts equal width and height and aborts (its
Makefile does not define NDEBUG), whatever the input size. darknet_py reads them in the
AlexeyAB dialect with pjreddie's rule and a :class:`CfgWarning` saying so; these tests check
the abort on AlexeyAB's real build, and the rule against pjreddie's real Darknet on
AlexeyAB's resnet50.cfg at 64x64.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import darknet_py
from darknet_py import CfgError, CfgWarning
from darknet_py.cfg import parse_cfg
from darknet_py.compare import compare_case
from darknet_py.darknet import dump_case
from darknet_py.errors import BridgeError
from darknet_py.model import Darknet

from conftest import reference_root

RESNET50 = reference_root() / "cfg" / "alexeyab" / "resnet50.cfg"


def _small_resnet50(tmp_path: Path, size: int = 64) -> Path:
    if not RESNET50.is_file():
        pytest.skip(f"{RESNET50} not found")
    text = RESNET50.read_text()
    for key, value in (("width", size), ("height", size), ("batch", 1), ("subdivisions", 1)):
        text = re.sub(rf"(?m)^{key}\s*=.*$", f"{key}={value}", text)
    cfg = tmp_path / "resnet50_small.cfg"
    cfg.write_text(text)
    return cfg


def test_alexeyab_darknet_aborts_on_the_strided_shortcut(darknet_alexeyab, tmp_path):
    cfg = _small_resnet50(tmp_path)
    with pytest.raises(BridgeError) as info:
        dump_case(darknet_alexeyab, cfg, mode="forward", seed=3, out_dir=tmp_path / "case")
    message = str(info.value)
    assert "SIGABRT" in message, message
    log = re.search(r"Darknet's output is in (\S+\.log)", message)
    assert log, message
    assert "parse_shortcut: Assertion" in Path(log.group(1)).read_text(errors="replace")


def test_strided_shortcut_matches_pjreddie_darknet(darknet_pjreddie, tmp_path):
    cfg = _small_resnet50(tmp_path)
    case = dump_case(darknet_pjreddie, cfg, mode="forward", seed=3, out_dir=tmp_path / "case")
    # pjreddie's own dialect, every layer but the final [cost] (Darknet leaves its l.output
    # zero without truth; darknet_py passes the softmax through)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = len(darknet_py.load(cfg, dialect="pjreddie", warn_unused=False).layers)
    report = compare_case(case, layers=range(n - 1))
    assert report.ok, str(report)

    # AlexeyAB's dialect: its own batchnorm epsilon (1e-5 inside the sqrt; pjreddie 1e-6
    # outside) makes the convolutions differ, so each strided shortcut is fed Darknet's
    # dumped inputs and compared with pjreddie's dumped output
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = darknet_py.load(cfg, case / "weights.weights", dialect="alexeyab",
                                warn_unused=False)
    notes = [str(w.message) for w in caught if issubclass(w.category, CfgWarning)]
    strided = [layer for layer in model.layers if getattr(layer, "strided", False)]
    assert [layer.index for layer in strided] == [17, 33, 57]
    assert len(notes) == 3 and all("AlexeyAB's Darknet aborts here" in m for m in notes), notes

    def dumped(i):
        return torch.from_numpy(np.load(case / f"layer_{i:03d}.npy")).reshape(
            1, *model.layers[i].out_shape)

    for layer in strided:
        (ref,) = layer.refs
        assert model.layers[ref].out_shape.w == 2 * layer.out_shape.w
        with torch.no_grad():
            ours = layer(dumped(layer.index - 1), [dumped(ref)])
        want = dumped(layer.index)
        assert torch.isfinite(want).all()
        assert torch.allclose(ours, want, rtol=0, atol=1e-6), layer.index


STRIDED = """[net]
width=4
height=4
channels=2
[convolutional]
filters=2
size=1
activation=linear
[maxpool]
size=2
stride=2
[shortcut]
from=-2
activation=linear
"""


def test_strided_shortcut_by_hand():
    # shortcut_cpu with stride 2: out[c, y, x] = prev[c, y, x] + from[c, 2y, 2x]
    with pytest.warns(CfgWarning, match=r":13: \[shortcut\] layer 0 is 4x4 but the previous "
                                        r"layer is 2x2: AlexeyAB's Darknet aborts here"):
        model = Darknet(parse_cfg(STRIDED), "alexeyab")
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        model.layers[0].bias.zero_()
    x = torch.arange(32.0).view(1, 2, 4, 4)
    outs = model.layer_outputs(x)
    want = torch.nn.functional.max_pool2d(x, 2) + x[:, :, ::2, ::2]
    assert torch.equal(outs[2], want)
    pj = Darknet(parse_cfg(STRIDED), "pjreddie")
    pj.load_state_dict(model.state_dict())
    assert torch.equal(pj.layer_outputs(x)[2], outs[2])


@pytest.mark.parametrize("extra, match", [
    ("from=-2,-1\n", "single from-layer"),
    ("from=-2\nweights_type=per_feature\n", "single from-layer"),
])
def test_strided_shortcut_with_several_inputs_or_weights_is_refused(extra, match):
    cfg = STRIDED.replace("from=-2\n", extra)
    with pytest.raises(CfgError, match=match) as info:
        Darknet(parse_cfg(cfg), "alexeyab")
    assert "AlexeyAB's Darknet aborts" in str(info.value) and "\n" not in str(info.value)
