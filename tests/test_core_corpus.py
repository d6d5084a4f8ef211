"""Every pjreddie cfg either builds and runs at its [net] size, or names what it lacks."""
from __future__ import annotations

import warnings

import pytest
import torch

from darknet_py import CfgError, Darknet
from darknet_py.cfg import read_cfg
from darknet_py.layers import section_names
from darknet_py.tree import resolve_data_file

from conftest import reference_root

#: recurrent cfgs forward ``time_steps`` rows (Darknet carves the steps out of the batch);
#: rnn.train.cfg's 576 steps are capped to this many (the layers' parity over several steps is
#: tests/test_recurrent_darknet.py's)
MAX_STEPS = 4

PJ = sorted((reference_root() / "cfg" / "pjreddie").glob("*.cfg"))


@pytest.fixture(autouse=True)
def _darknet_data(monkeypatch):
    """Darknet reads ``tree=data/9k.tree`` from its own folder: here the reference's data."""
    monkeypatch.setenv("DARKNET_PY_DATA", str(reference_root() / "data"))


def _needs(sections):
    """Why Darknet itself needs something we do not build, or None."""
    for sec in sections[1:]:
        if sec.kind not in section_names():
            return f"[{sec.kind}]", sec.line
        tree = sec.get("tree")
        if tree is not None and resolve_data_file(tree) is None:  # a hierarchy file not here
            return "tree", sec.find("tree").line
    return None


@pytest.mark.skipif(not PJ, reason="Darknet reference cfgs not found")
@pytest.mark.parametrize("path", PJ, ids=[p.name for p in PJ])
def test_pjreddie_cfg_builds_or_names_the_unsupported_section(path):
    sections = read_cfg(path)
    needs = _needs(sections)
    if needs is not None:
        what, line = needs
        with pytest.raises(CfgError) as info:
            Darknet(sections, warn_unused=False)
        assert f"{path}:{line}:" in str(info.value) and what in str(info.value)
        return
    steps = sections[0].get("time_steps")
    if steps is not None and int(steps) > MAX_STEPS:
        sections[0].set("time_steps", MAX_STEPS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(sections)
    torch.manual_seed(0)
    c, h, w = model.input_shape
    with torch.no_grad():
        out = model(torch.rand(model.net.time_steps, c, h, w))
    outs = out if isinstance(out, list) else [out]
    for o, i in zip(outs, model.heads or [len(model.layers) - 1]):
        if model.layers[i].kind == "region" and model.layers[i].tree is not None:
            # pjreddie's CPU tree softmax writes NaN (its l.temperature is 0; region.py)
            o = o[~torch.isnan(o)]
            assert o.numel()
        assert torch.isfinite(o).all()
    last = model.layers[-1]
    assert outs[-1].shape[1:].numel() == last.out_shape.numel
