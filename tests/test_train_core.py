"""Training core against the real Darknet: train-mode forward, [yolo] loss, update, schedule.

The reference is ``darknet/train-tiny-narrow`` (pjreddie f6afaab's train_network, 3 calls on
a narrow yolov3-tiny at 160x160, batch 2); see its README.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from darknet_py.cli import main
from darknet_py.compare import compare_case
from darknet_py.model import Darknet
from darknet_py.train.engine import TrainState, train_network

CASE = "train-tiny-narrow"


@pytest.fixture(scope="module")
def train_case(pj_cases):
    return pj_cases / CASE


@pytest.fixture(scope="module")
def train_report(train_case):
    return compare_case(train_case)


def test_train_case_matches_darknet(train_report, train_case):
    report = train_report
    assert report.ok, "\n".join(report.lines())
    manifest = json.loads((train_case / "case.json").read_text())
    assert len(report.rows) == len(manifest["layers"])
    names = [name for name, _, _ in report.checks]
    for head in (16, 23):
        assert f"iteration 1 layer {head} [yolo] output" in names
        assert f"iteration 1 layer {head} [yolo] delta" in names
        assert f"iteration 1 layer {head} cost" in names
    for k in (1, 2, 3):
        assert f"iteration {k} loss" in names
        assert f"iteration {k} weight update" in names
        assert f"iteration {k} learning rate" in names
    # measured margins (README): train-mode outputs <1e-5, deltas <1e-5, updates <1e-3
    assert report.worst.max_rel < 1e-5


def test_compare_cli_lists_train_checks(train_case, capsys):
    assert main(["compare", str(train_case)]) == 0
    out = capsys.readouterr().out
    assert "iteration 3 weight update" in out and "MISMATCH" not in out


def test_compare_train_catches_a_wrong_update(train_case, tmp_path):
    import shutil
    broken = tmp_path / "case"
    shutil.copytree(train_case, broken)
    data = bytearray((broken / "weights_iter2.weights").read_bytes())
    # nudge the first bias of layer 0 (right after the 20-byte header) by 1e-3
    v = np.frombuffer(bytes(data[20:24]), dtype=np.float32)[0] + np.float32(1e-3)
    data[20:24] = np.float32(v).tobytes()
    (broken / "weights_iter2.weights").chmod(0o644)
    (broken / "weights_iter2.weights").write_bytes(bytes(data))
    report = compare_case(broken)
    bad = [name for name, ok, _ in report.checks if not ok]
    assert bad == ["iteration 2 weight update", "iteration 3 weight update"]


def test_truth_assignment_matches_darknet(train_case):
    """Which [yolo] layer and mask slot learns each truth (best of all anchors by shape IoU)."""
    from darknet_py.layers.yolo import best_anchor
    manifest = json.loads((train_case / "case.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet.from_cfg(train_case / manifest["cfg"])
    y = torch.from_numpy(np.load(train_case / "y.npy"))
    rows = manifest["truth_assignment"]
    assert rows
    for row in rows:
        b, t = row["image"], row["t"]
        truth = y[b, t]
        head = model.layers[model.heads[0]]
        n = int(best_anchor(head, truth[2:3], truth[3:4], model.width, model.height)[0])
        assert n == row["best_anchor"], row
        owners = [i for i in model.heads if n in model.layers[i].mask]
        assert owners == [row["yolo_layer"]], row
        assert model.layers[owners[0]].mask.index(n) == row["mask_n"], row


def test_loss_gradient_is_minus_delta(train_case):
    """Darknet's backward adds l.delta into the previous layer: d(loss)/d(head input) = -delta."""
    manifest = json.loads((train_case / "case.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet.from_cfg(train_case / manifest["cfg"])
    model.load_weights(train_case / "weights_init.weights")
    model.train()
    X = torch.from_numpy(np.load(train_case / "X.npy"))
    y = torch.from_numpy(np.load(train_case / "y.npy"))
    captured = {}
    head = model.layers[16]
    head.register_forward_hook(lambda m, inp, out: captured.update(x=inp[0]))
    (out,) = model.outputs_of(X, [16])
    captured["x"].retain_grad()
    delta, _ = head.loss(out, y, (160, 160))
    (-(delta * out).sum()).backward()
    assert torch.equal(captured["x"].grad, -delta)


def test_subdivisions_accumulate_like_one_batch(train_case):
    """batch=2 subdivisions=2 does two mini-batch passes and one update at seen=2."""
    manifest = json.loads((train_case / "case.json").read_text())
    text = (train_case / manifest["cfg"]).read_text().replace("subdivisions=1", "subdivisions=2")
    from darknet_py.cfg import parse_cfg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg(text))
    model.load_weights(train_case / "weights_init.weights")
    state = TrainState.from_model(model)
    X = torch.from_numpy(np.load(train_case / "X.npy"))
    y = torch.from_numpy(np.load(train_case / "y.npy"))
    w0 = model.layers[0].weight.detach().clone()
    loss = train_network(model, state, X, y)
    assert state.seen == 2 and state.iteration == 1
    assert len(state.net_costs) == 2
    assert loss == pytest.approx(sum(state.net_costs) / 2, rel=1e-6)
    assert not torch.equal(model.layers[0].weight, w0)


def test_bad_training_inputs_are_clear_errors(train_case):
    from darknet_py.cfg import parse_cfg
    from darknet_py.errors import DataError
    manifest = json.loads((train_case / "case.json").read_text())
    text = (train_case / manifest["cfg"]).read_text()
    X = torch.from_numpy(np.load(train_case / "X.npy"))
    y = torch.from_numpy(np.load(train_case / "y.npy"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg(text))
    bad = y.clone()
    bad[0, 0, 4] = 80  # classes=80: 0..79
    with pytest.raises(DataError, match="truth class 80 outside 0..79"):
        train_network(model, TrainState(), X, bad)
    with pytest.raises(ValueError, match="multiple of the mini-batch"):
        train_network(model, TrainState(), X[:1], y[:1])


def test_unimplemented_training_keys_are_refused(train_case):
    from darknet_py.cfg import parse_cfg
    from darknet_py.errors import CfgError
    manifest = json.loads((train_case / "case.json").read_text())
    text = (train_case / manifest["cfg"]).read_text()
    X = torch.from_numpy(np.load(train_case / "X.npy"))
    y = torch.from_numpy(np.load(train_case / "y.npy"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg(text.replace("[yolo]\n", "[yolo]\nmap=data/9k.map\n", 1)))
    with pytest.raises(ValueError, match=r"\[yolo\]: map= \(class remapping\) is not supported"):
        train_network(model, TrainState(), X, y)


def test_stopbackward_freezes_the_layers_below(train_case):
    """backward_network breaks at a stopbackward layer: it and the layers before it get no
    gradient (weight decay and momentum still move their weights, as update_network does)."""
    from darknet_py.cfg import parse_cfg
    manifest = json.loads((train_case / "case.json").read_text())
    text = (train_case / manifest["cfg"]).read_text()
    parts = text.split("[convolutional]\n")
    parts[3] = "stopbackward=1\n" + parts[3]  # the third conv = layer 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg("[convolutional]\n".join(parts)))
    model.load_weights(train_case / "weights_init.weights")
    assert model.common[4].stopbackward == 1
    from darknet_py.train.engine import forward_backward
    forward_backward(model, torch.from_numpy(np.load(train_case / "X.npy")),
                     torch.from_numpy(np.load(train_case / "y.npy")))
    assert all(p.grad is None for l in model.layers[:5] for p in l.parameters())
    assert model.layers[6].weight.grad is not None
