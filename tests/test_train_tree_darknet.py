"""Training with YOLO9000's softmax tree (``tree=``) against the real Darknet of both forks.

The 13-class tree of ``test_tree_darknet.py`` (roots a, b, c; a's children a1, a2 and, in a
later group, a3; b's b1..b3; a1's a1x, a1y; c's c1, c2) is written into each case folder and
named by its absolute path in the cfg.

* AlexeyAB ``[region]`` with the tree (its CPU forward_region_layer, hierarchical
  ``delta_region_class``): two truths on one cell and anchor with classes on different
  paths (the later truth rewrites only its own path's groups), interior classes, class -1
  (objectness and box only); then classfix=1 (the best truth's class path at the ignored
  cells), rescore, ``map=`` (the truth loop's ``class = map[class]``) and a class-only image
  (a truth with x, y > 100000: only that class is learned, at the cell and anchor where
  objectness times its path probability is largest). Loss, the [region]'s delta and cost of
  iteration 1, every layer's delta and update.
* pjreddie's ``[region]`` with the tree: its CPU forward softmaxes with ``l.temperature`` 0
  (parse_region never sets it): the real Darknet's loss is NaN; darknet_py refuses the cfg.
* ``[softmax] tree=`` classifiers, both forks (the CPU forward_softmax_layer: the tree's
  grouped softmax, ``softmax_x_ent_cpu`` on the truth as it is), with truths as Darknet's
  classifier loader makes them (``fill_hierarchy``: ancestors 1, groups off the path -1234)
  and ``[cost] type=masked`` after it, as darknet9000.cfg ends, or alone.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from darknet_py import tree as T
from darknet_py.compare import compare_case
from darknet_py.darknet import dump_case
from train_cases import random_model

TREE = "a -1\nb -1\nc -1\na1 0\na2 0\nb1 1\nb2 1\nb3 1\na1x 3\na1y 3\nc1 2\nc2 2\na3 0\n"

REGION = """[net]
width=48
height=40
channels=3
batch=2
subdivisions=1
learning_rate=0.01
momentum=0.9
decay=0.0005

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=36
size=1
stride=1
pad=1
activation=linear

[region]
anchors = 0.7,1.1, 3.0,4.3
classes=13
coords=4
num=2
softmax=1
object_scale=5
bias_match=1
thresh=.6
tree={tree}
{extra}
"""

CLASSIFIER = """[net]
width=8
height=8
channels=3
batch=8
subdivisions=2
learning_rate=0.0001
momentum=0.9
decay=0.005

[convolutional]
filters=4
size=3
stride=1
pad=1
batch_normalize=1
activation=leaky

[maxpool]
size=2
stride=2

[connected]
output=13
activation=linear

[softmax]
groups=1
{softmax}
tree={tree}
{cost}
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _truths(seed: int, fields: int) -> np.ndarray:
    """2 images: image 0 with 5 truths, the 4th on the 1st's cell and shape (another class
    path: a1x over b2), image 1 with 4 (interior classes and a -1)."""
    rng = np.random.default_rng(seed)
    y = np.zeros((2, 30 if fields == 5 else 200, fields), np.float32)
    y[0, :5, :2] = rng.uniform(0.05, 0.95, (5, 2))
    y[0, :5, 2:4] = rng.uniform(0.05, 0.6, (5, 2))
    y[0, :5, 4] = [6, 3, 12, 8, 11]
    y[0, 3, :4] = y[0, 0, :4]
    y[1, :4, :2] = rng.uniform(0.05, 0.95, (4, 2))
    y[1, :4, 2:4] = rng.uniform(0.05, 0.6, (4, 2))
    y[1, :4, 4] = [0, 9, -1, 4]
    return y


def _region_case(build, cfg_text: str, tmp_path: Path, X, y, seed: int, K: int = 2):
    """Darknet's train_network K times (every layer's l.delta of iteration 1 dumped),
    checked by compare_case."""
    folder = tmp_path / "in"
    (folder / "net.cfg").write_text(cfg_text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        random_model(cfg_text, build.fork, seed).save_weights(folder / "init.weights")
    case = dump_case(build, folder / "net.cfg", folder / "init.weights", mode="train",
                     out_dir=tmp_path / "case", X=X, y=y, iterations=K, deltas=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = compare_case(case)
    print("\n".join(report.lines()))
    assert report.ok, "\n".join(report.lines())
    names = [name for name, _, _ in report.checks]
    assert sum(1 for n in names if "[region] delta" in n) == 1, names
    assert any(n.endswith("l.delta") for n in names)
    assert sum(1 for n in names if n.endswith("weight update")) >= 2
    return report


def test_alexeyab_region_tree_training_matches_darknet(darknet_alexeyab, tmp_path):
    tree = _write(tmp_path / "in", "small.tree", TREE)
    rng = np.random.default_rng(51)
    X = rng.random((2, 3, 40, 48), dtype=np.float32)
    y = _truths(51, 6)
    cfg = REGION.format(tree=tree, extra="")
    _region_case(darknet_alexeyab, cfg, tmp_path, X, y, 51)


def test_alexeyab_region_tree_classfix_map_class_only(darknet_alexeyab, tmp_path):
    """classfix=1 with thresh=.2 (many ignored cells learn their best truth's class path,
    the class before any map), rescore, bias_match=0, map= (truth classes 0..4 -> tree
    classes) and image 1 class-only (its 2nd truth has x, y > 100000; its class is not
    mapped)."""
    tree = _write(tmp_path / "in", "small.tree", TREE)
    cmap = _write(tmp_path / "in", "small.map", "8\n5\n12\n-1\n0\n")
    rng = np.random.default_rng(52)
    X = rng.random((2, 3, 40, 48), dtype=np.float32)
    y = _truths(52, 6)
    y[0, :5, 4] = [0, 1, 2, 3, 4]
    y[1, :4, 4] = [1, 9, 2, 0]
    y[1, 1, :2] = 250000.0
    cfg = REGION.format(tree=tree, extra=f"map={cmap}\nclassfix=1\nrescore=1\n"
                                          f"bias_match=0").replace("thresh=.6", "thresh=.2")
    _region_case(darknet_alexeyab, cfg, tmp_path, X, y, 52)


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_region_map_without_tree_matches_darknet(fork, request, tmp_path):
    """``map=`` without a tree: the truth loop's class = map[class] (the map's classes, one
    of them 12, the last), with softmax classes; pjreddie's [region] (its CPU backward is
    empty: the updates are the decay alone)."""
    build = request.getfixturevalue(f"darknet_{fork}")
    cmap = _write(tmp_path / "in", "small.map", "8\n5\n12\n3\n0\n")
    rng = np.random.default_rng(54)
    X = rng.random((2, 3, 40, 48), dtype=np.float32)
    y = _truths(54, 5 if fork == "pjreddie" else 6)
    y[0, :5, 4] = [0, 1, 2, 3, 4]
    y[1, :4, 4] = [1, 4, 2, 0]
    cfg = REGION.format(tree="", extra=f"map={cmap}").replace("tree=\n", "")
    _region_case(build, cfg, tmp_path, X, y, 54)


def test_pjreddie_region_tree_is_nan_in_darknet_and_refused(tmp_path):
    """pjreddie's CPU forward_region_layer calls softmax_cpu with l.temperature = 0: the
    real Darknet's loss is NaN; darknet_py refuses the cfg in one line naming the layer."""
    from darknet_py import load
    from darknet_py.errors import CfgError
    from darknet_py.train.engine import TrainState, train_network
    import darknet_harness as dh
    tree = _write(tmp_path, "small.tree", TREE)
    rng = np.random.default_rng(53)
    X = rng.random((2, 3, 40, 48), dtype=np.float32)
    y = _truths(53, 5)
    cfg = REGION.format(tree=tree, extra="")
    folder = tmp_path / "c"
    harness = dh.build_harness("pjreddie")
    if isinstance(harness, str):
        dh.unavailable(harness)
    folder.mkdir()
    (folder / "net.cfg").write_text(cfg)
    random_model(cfg, "pjreddie", 1).save_weights(folder / "w.weights")
    dh.write_f32(folder / "X.f32", X)
    dh.write_f32(folder / "y.f32", y.reshape(2, -1))
    dh.run(harness, ["train", "net.cfg", "w.weights", "X.f32", 2, "y.f32", 30 * 5, 1, "."],
           folder)
    loss = float((folder / "log.txt").read_text().split()[1])
    assert math.isnan(loss)
    model = load(folder / "net.cfg", dialect="pjreddie", warn_unused=False)
    with pytest.raises(CfgError, match=r"net\.cfg:\d+: layer 3: \[region\] tree=.*"
                                       r"temperature.*NaN") as err:
        train_network(model, TrainState.from_model(model), torch.from_numpy(X),
                      torch.from_numpy(y))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("fork,softmax,cost", [
    ("pjreddie", "", "[cost]\ntype=masked"),
    ("alexeyab", "", "[cost]\ntype=masked"),
    ("pjreddie", "temperature=2", ""),
    ("alexeyab", "", ""),
], ids=["pj-masked", "ab-masked", "pj-temperature", "ab-alone"])
def test_softmax_tree_classifier_training_matches_darknet(fork, softmax, cost, request,
                                                           tmp_path):
    """conv (BN) + maxpool + connected(13) + [softmax] tree= (+ [cost] type=masked, as
    darknet9000.cfg), 2 mini-batches of 4 an update, labels at leaves and interior classes
    through fill_hierarchy: the softmax's delta is t - p everywhere (-1234 - p on the groups
    off the path, as the CPU build leaves them), the masked [cost] adds t - p only on the
    path's groups."""
    build = request.getfixturevalue(f"darknet_{fork}")
    folder = tmp_path / "in"
    tree = _write(folder, "small.tree", TREE)
    cfg_text = CLASSIFIER.format(tree=tree, softmax=softmax, cost=cost)
    (folder / "net.cfg").write_text(cfg_text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = random_model(cfg_text, fork, 21)
    model.save_weights(folder / "init.weights")
    rng = np.random.default_rng(21)
    X = rng.random((8, 3, 8, 8), dtype=np.float32)
    labels = np.zeros((8, 13), np.float32)
    labels[np.arange(8), [8, 5, 12, 3, 10, 7, 1, 9]] = 1
    y = T.fill_hierarchy(labels, T.read_tree(tree))
    assert (y == T.SECRET_NUM).any()
    case = dump_case(build, folder / "net.cfg", folder / "init.weights", mode="train",
                     out_dir=tmp_path / "case", X=X, y=y, iterations=3, deltas=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = compare_case(case)
    print("\n".join(report.lines()))
    assert report.ok, "\n".join(report.lines())
    names = [name for name, _, _ in report.checks]
    assert sum(1 for n in names if "[softmax] delta" in n) == 1, names
    assert sum(1 for n in names if n.endswith("weight update")) == 3


# -- without Darknet -------------------------------------------------------------------------
def test_fill_hierarchy_and_class_targets_by_hand(tmp_path):
    """data.c fill_hierarchy and the hierarchical delta_region_class's writes, worked out
    from the C on the small tree."""
    t = T.read_tree(_write(tmp_path, "small.tree", TREE))
    row = np.zeros(13, np.float32)
    row[8] = 1  # a1x: path a1x -> a1 -> a
    out = T.fill_hierarchy(row, t)
    m = T.SECRET_NUM
    assert out.tolist() == [1, 0, 0, 1, 0, m, m, m, 1, 0, m, m, m]
    # delta_region_class(a1x): group of a1x (a1x, a1y), of a1 (a1, a2), of a (a, b, c)
    entries, targets = t.class_targets(8)
    assert entries == (8, 9, 3, 4, 0, 1, 2)
    assert targets == (1, 0, 1, 0, 1, 0, 0)
    assert t.class_targets(-1) == ((), ())
    assert t.class_targets(12) == ((12, 0, 1, 2), (1, 1, 0, 0))
    assert T.read_map(_write(tmp_path, "m.map", " 7\n-2\nx\n12 3\n")) == (7, -2, 0, 12)


@pytest.mark.slow
def test_alexeyab_yolo9000_training_matches_darknet(darknet_alexeyab, reference, tmp_path):
    """The reference yolo9000.cfg (AlexeyAB) at 96x96, batch 2, with data/9k.tree (9418
    classes, 1846 groups) and data/coco9k.map: COCO truth classes mapped into the tree, and
    image 1 class-only (a 9k class, not mapped). Its [region] on Darknet's own input (the
    dumped output of layer 23): output, delta and cost; the whole run's loss and updates.
    (The whole net's [region] output differs by float32 noise from 24 layers, ~2e-5 of its
    max, as in the forward check of test_tree_darknet.py: over the 1e-5 of the head check.)"""
    import json
    import re
    from darknet_py.cfg import parse_cfg
    from darknet_py.model import Darknet
    text = (reference / "cfg" / "alexeyab" / "yolo9000.cfg").read_text()
    text = re.sub(r"(?m)^(width|height)=\d+", r"\g<1>=96", text)
    text = re.sub(r"(?m)^batch=\d+", "batch=2", text)
    data = reference / "data"
    text = text.replace("=data/", f"={data}/").replace("= data/", f"= {data}/")
    rng = np.random.default_rng(55)
    X = rng.random((2, 3, 96, 96), dtype=np.float32)
    y = _truths(55, 6)
    y[0, :5, 4] = [0, 16, 2, 56, 79]
    y[1, :4, 4] = [1, 7000, 11, -1]
    y[1, 1, :2] = 300000.0
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "net.cfg").write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        random_model(text, "alexeyab", 55).save_weights(folder / "init.weights")
    case = dump_case(darknet_alexeyab, folder / "net.cfg", folder / "init.weights",
                     mode="train", out_dir=tmp_path / "case", X=X, y=y, iterations=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        head = Darknet(parse_cfg(text), dialect="alexeyab").layers[24]
        report = compare_case(case)
    inp = torch.from_numpy(np.load(case / "iter1_layer_023.npy"))
    out = head._activate(inp)
    delta, cost = head.loss(out, torch.from_numpy(y), (96, 96), seen=2)
    ref_out = np.load(case / "iter1_yolo_output_024.npy")
    ref_delta = np.load(case / "iter1_yolo_delta_024.npy")
    ref_cost = json.loads((case / "case.json").read_text())["yolo_cost_iter1"]["24"]
    err_out = np.abs(out.numpy() - ref_out).max() / np.abs(ref_out).max()
    err_delta = np.abs(delta.numpy() - ref_delta).max() / np.abs(ref_delta).max()
    print(f"head on Darknet's input: output {err_out:.2e}, delta {err_delta:.2e} of max, "
          f"cost {float(cost):.6g} vs {ref_cost:.6g}")
    assert err_out < 1e-6 and err_delta < 1e-6
    assert abs(float(cost) - ref_cost) <= 1e-6 * ref_cost
    print("\n".join(report.lines()))
    whole = [(n, ok) for n, ok, _ in report.checks if n.endswith((" loss", "weight update"))]
    assert len(whole) == 4 and all(ok for _, ok in whole), report.lines()


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_bad_map_refused(fork, tmp_path):
    """A map= file that is not there (Darknet's parse_region would exit), a truth class past
    the map's lines (Darknet reads past its map) and, with a tree, a mapped class past the
    tree (Darknet reads past it): one line each, naming the layer."""
    from darknet_py import load
    from darknet_py.errors import CfgError, DataError
    from darknet_py.train.engine import TrainState, train_network
    tree = _write(tmp_path, "small.tree", TREE)
    _write(tmp_path, "ok.map", "8\n5\n13\n")
    X = torch.rand(2, 3, 40, 48)
    y = torch.from_numpy(_truths(56, 5 if fork == "pjreddie" else 6))
    y[:, :, 4] = torch.where(y[:, :, 0] > 0, 1.0, 0.0)
    cases = [("missing.map", "", CfgError, r"net\.cfg:\d+: layer 3: \[region\] map file "
                                           r"\S*missing\.map not found"),
             ("ok.map", "", DataError, r"layer 3: \[region\] truth class 3 outside the 3 lines")]
    if fork == "alexeyab":
        cases.append(("ok.map", f"tree={tree}", DataError,
                      r"layer 3: \[region\] truth class 13 outside the tree"))
    for name, extra, error, match in cases:
        cfg = REGION.format(tree="", extra=f"map={tmp_path / name}\n{extra}").replace(
            "tree=\n", "")
        (tmp_path / "net.cfg").write_text(cfg)
        model = load(tmp_path / "net.cfg", dialect=fork, warn_unused=False)
        yy = y.clone()
        if error is DataError and not extra:
            yy[0, 0, 4] = 3
        if extra:
            yy[0, 0, 4] = 2
        with pytest.raises(error, match=match) as err:
            train_network(model, TrainState.from_model(model), X, yy)
        assert "\n" not in str(err.value)
