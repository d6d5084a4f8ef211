"""YOLO9000's softmax tree (``tree=``): the tree file, [softmax] and [region] with it, and
the [region] decode that walks it, against each fork's real Darknet (forward and detect
cases made by ``darknet_py.darknet.dump_case``) and against values worked out by hand.

The small tree below has 13 classes in 6 groups: the roots (a, b, c), a's children (a1,
a2), b's (b1..b3), a1's (a1x, a1y), c's (c1, c2) and a second run of a's children (a3:
``read_tree`` opens a new group whenever the parent changes, so ``child[a]`` is that last
group of one class).
"""
from __future__ import annotations

import ctypes
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from darknet_py import CfgError
from darknet_py.cfg import parse_cfg, read_cfg
from darknet_py.compare import compare_case, load_case, match_detections
from darknet_py.darknet import dump_case
from darknet_py.detect import do_nms_sort, get_network_boxes, line_v3, to_detections, \
    to_detections_v3
from darknet_py.model import Darknet
from darknet_py import tree as T

TREE = "a -1\nb -1\nc -1\na1 0\na2 0\nb1 1\nb2 1\nb3 1\na1x 3\na1y 3\nc1 2\nc2 2\na3 0\n"
NAMES = [line.split()[0] for line in TREE.splitlines()]

REGION_CFG = """[net]
width={w}
height={h}
channels=3
batch=1

[convolutional]
batch_normalize=1
filters=8
size=3
stride={stride}
pad=1
activation=leaky

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
thresh=.6
tree={tree}
"""

SOFTMAX_CFG = """[net]
width=3
height=2
channels=3
batch=1

[convolutional]
filters={filters}
size=1
stride=1
pad=1
activation=linear

[avgpool]

[softmax]
groups=1
temperature={temperature}
tree={tree}
"""


@pytest.fixture()
def tree_file(tmp_path):
    path = tmp_path / "small.tree"
    path.write_text(TREE)
    return path


# -- the tree file and the walks, by hand ------------------------------------------------
def test_read_tree_groups_by_hand(tree_file):
    t = T.read_tree(tree_file)
    # runs of equal parents: [-1 x3] [0 x2] [1 x3] [3 x2] [2 x2] [0 x1]
    assert t.group_offset == (0, 3, 5, 8, 10, 12)
    assert t.group_size == (3, 2, 3, 2, 2, 1)
    assert t.child == (5, 2, 4, 3, -1, -1, -1, -1, -1, -1, -1, -1, -1)
    assert t.leaf == (False, False, False, False, True, True, True, True, True, True, True,
                      True, True)
    assert t.group == (0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 5)


def test_read_tree_odd_lines_as_darknet():
    # a first line whose parent is not -1 opens group 1: group 0 is empty
    t = T.Tree.parse(["x -2", "y -2"])
    assert (t.group_offset, t.group_size) == ((0, 0), (0, 2))
    assert T.hierarchy_top_prediction(np.ones(2, np.float32), t, 0.5) == 0
    t = T.Tree.parse(["orphan", "odd x"])  # no parent / a non-number: -1, as sscanf leaves it
    assert t.parent == (-1, -1) and t.group_size == (2,)


def test_hier_softmax_by_hand(tree_file):
    t = T.read_tree(tree_file)
    x = torch.tensor([0.0, math.log(3.0), 0.0, 1.0, 1.0, 0, 0, 0, 5.0, 5.0, 2.0, 2.0, 9.0,
                      7.0])
    y = T.hier_softmax(x, t).tolist()
    # roots (1, 3, 1)/5; pairs of equals 1/2; b's three equal 1/3; a3 alone 1; past the
    # tree (entry 13) 0
    want = [0.2, 0.6, 0.2, 0.5, 0.5, 1 / 3, 1 / 3, 1 / 3, 0.5, 0.5, 0.5, 0.5, 1.0, 0.0]
    assert y == pytest.approx(want, abs=1e-7)
    # temperature 2 halves the logits: roots (1, sqrt 3, 1)/(2 + sqrt 3)
    y2 = T.hier_softmax(x, t, temperature=2.0).tolist()
    s = 2 + math.sqrt(3)
    assert y2[:3] == pytest.approx([1 / s, math.sqrt(3) / s, 1 / s], abs=1e-7)


def test_hierarchy_walks_by_hand(tree_file):
    t = T.read_tree(tree_file)
    p = np.array([[0.7, 0.2, 0.1, 0.9, 0.1, 0.2, 0.3, 0.5, 0.6, 0.4, 0.5, 0.5, 1.0]],
                 dtype=np.float32)
    q = T.hierarchy_predictions(p.copy(), t)[0]
    # a1 = .9*.7 = .63, a1x = .6*.63 = .378, b3 = .5*.2 = .1, a3 = 1*.7 = .7
    assert q[3] == pytest.approx(0.63) and q[8] == pytest.approx(0.378)
    assert q[7] == pytest.approx(0.1) and q[12] == pytest.approx(0.7)
    # the walk on these values: roots -> a (.7 > .5) -> child[a] = a3's group (the last
    # run of a's children): .7 * 1 > .5, a3 is a leaf -> 12
    assert T.hierarchy_top_prediction(p[0], t, 0.5) == 12
    # above .75 nothing at the top: the top group's best, a (0)
    assert T.hierarchy_top_prediction(p[0], t, 0.75) == 0
    # b's children: roots -> b (p=.9 set for the test) -> best b3 .5*.9 = .45 <= .5 -> b
    r = p[0].copy()
    r[:3] = (0.05, 0.9, 0.05)
    assert T.hierarchy_top_prediction(r, t, 0.5) == 1
    # no positive value at the top: index 0
    assert T.hierarchy_top_prediction(np.zeros(13, np.float32), t, 0.5) == 0
    # AlexeyAB: the last class above .5 keeps its value: a3 (.7); rows without one: 0
    kept = T.leaf_first_above(np.stack([q, np.full(13, 0.1, np.float32)]), 0.5)
    assert kept[0].tolist() == [0.0] * 12 + [pytest.approx(0.7)]
    assert not kept[1].any()


def test_tree_file_lines_as_fgetl_reads_them(tmp_path):
    # CRLF ends, a blank line (a class with an empty name, root), no final newline
    path = tmp_path / "crlf.tree"
    path.write_bytes(b"a -1\r\n\r\nb 0\r\nc 0")
    t = T.read_tree(path)
    assert t.name == ("a", "", "b", "c") and t.parent == (-1, -1, 0, 0)
    assert (t.group_offset, t.group_size) == ((0, 2), (2, 2))


def test_bad_tree_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.tree"
    bad.write_text("a -1\nb 5\n")
    with pytest.raises(CfgError, match=r"bad.tree:2: parent 5 is not an earlier line"):
        T.read_tree(bad)
    cfg = REGION_CFG.format(w=5, h=4, stride=1, tree=bad)
    with pytest.raises(CfgError, match=r":\d+: tree: \[region\] bad tree file: .*bad.tree:2"):
        Darknet(parse_cfg(cfg))
    wrong = tmp_path / "short.tree"
    wrong.write_text("a -1\nb -1\n")
    with pytest.raises(CfgError, match=r"has 2 classes but classes=13"):
        Darknet(parse_cfg(REGION_CFG.format(w=5, h=4, stride=1, tree=wrong)))


def test_missing_tree_names_the_cfg_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DARKNET_PY_REFERENCE", raising=False)
    monkeypatch.delenv(T.DATA_ENV, raising=False)
    text = REGION_CFG.format(w=5, h=4, stride=1, tree="data/none.tree")
    line = text.splitlines().index("tree=data/none.tree") + 1
    with pytest.raises(CfgError) as err:
        Darknet(parse_cfg(text))
    msg = str(err.value)
    assert f":{line}: tree: " in msg and "data/none.tree not found" in msg
    assert "DARKNET_PY_DATA" in msg and "\n" not in msg


def test_data_paths_resolve_as_darknet_then_data_env(tmp_path, monkeypatch):
    (tmp_path / "run" / "data").mkdir(parents=True)
    (tmp_path / "store").mkdir()
    (tmp_path / "run" / "data" / "t.tree").write_text("here -1\n")
    (tmp_path / "store" / "t.tree").write_text("there -1\n")
    (tmp_path / "store" / "u.tree").write_text("only -1\n")
    monkeypatch.setenv(T.DATA_ENV, str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path / "run")
    # Darknet's fopen (the working directory) first, then $DARKNET_PY_DATA
    assert T.read_tree(T.resolve_data_file("data/t.tree")).name == ("here",)
    assert T.read_tree(T.resolve_data_file("data/u.tree")).name == ("only",)
    assert T.resolve_data_file("data/v.tree") is None


def test_pjreddie_region_tree_training_is_refused(tree_file):
    """pjreddie's CPU [region] softmax with temperature 0 makes Darknet's loss NaN (shown on
    the real Darknet in test_train_tree_darknet.py): its loss is refused, naming the layer."""
    model = Darknet(parse_cfg(REGION_CFG.format(w=5, h=4, stride=1, tree=tree_file)),
                    dialect="pjreddie")
    out = model(torch.rand(1, 3, 4, 5))
    with pytest.raises(ValueError, match=r"layer 2 \[region\] tree=.*temperature.*NaN"):
        model.layers[-1].loss(out, torch.zeros(1, 30 * 5), (5, 4))


# -- forward parity against the real Darknet ---------------------------------------------
def _layers_ok(report, count):
    print(report)
    assert report.ok, str(report)
    assert [r.index for r in report.rows] == list(range(count))


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_region_tree_forward_matches_darknet(fork, tree_file, tmp_path, request):
    build = request.getfixturevalue(f"darknet_{fork}")
    cfg = tmp_path / "region_tree.cfg"
    cfg.write_text(REGION_CFG.format(w=5, h=4, stride=1, tree=tree_file))
    case = dump_case(build, cfg, mode="forward", seed=3, out_dir=tmp_path / "case")
    out = np.load(case / "layer_002.npy")
    if fork == "pjreddie":
        # l.temperature 0: the strided group softmaxes write NaN over the flat range
        # [coords+1, farthest block end) = [5, 10 + 3*40) of the 720 values
        nan = np.isnan(out.reshape(-1))
        assert nan[5:130].all() and not nan[:5].any() and not nan[130:].any()
    else:
        assert np.isfinite(out).all()
    _layers_ok(compare_case(case), 3)


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
@pytest.mark.parametrize("temperature, filters", [(1, 13), (2.5, 16)])
def test_softmax_tree_forward_matches_darknet(fork, temperature, filters, tree_file, tmp_path,
                                              request):
    build = request.getfixturevalue(f"darknet_{fork}")
    cfg = tmp_path / "softmax_tree.cfg"
    cfg.write_text(SOFTMAX_CFG.format(filters=filters, temperature=temperature, tree=tree_file))
    case = dump_case(build, cfg, mode="forward", seed=5, out_dir=tmp_path / "case")
    out = np.load(case / "layer_002.npy").reshape(-1)
    assert not out[13:].any()  # inputs past the tree: never written
    _layers_ok(compare_case(case), 3)


def _yolo9000_cfg(fork: str, reference: Path, size: int, folder: Path) -> Path:
    """The fork's yolo9000.cfg at size x size, its data/ paths made absolute (the harness
    runs Darknet in a scratch folder)."""
    text = (reference / "cfg" / fork / "yolo9000.cfg").read_text()
    text = re.sub(r"(?m)^(width|height)=\d+", rf"\g<1>={size}", text)
    text = text.replace("=data/", f"={reference / 'data'}/").replace("= data/",
                                                                     f"= {reference / 'data'}/")
    path = folder / "yolo9000.cfg"
    path.write_text(text)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_yolo9000_forward_matches_darknet(fork, reference, tmp_path, request):
    build = request.getfixturevalue(f"darknet_{fork}")
    cfg = _yolo9000_cfg(fork, reference, 96, tmp_path)
    case = dump_case(build, cfg, mode="forward", seed=3, out_dir=tmp_path / "case")
    _layers_ok(compare_case(case), 25)


def test_darknet9000_forward_matches_darknet(darknet_pjreddie, reference, tmp_path):
    # darknet9000.cfg (pjreddie's 9k classifier: [softmax] tree=data/9k.tree) at 64x64
    text = (reference / "cfg" / "pjreddie" / "darknet9000.cfg").read_text()
    text = re.sub(r"(?m)^(width|height)=\d+", r"\g<1>=64", text)
    cfg = tmp_path / "darknet9000.cfg"
    cfg.write_text(text.replace("=data/", f"={reference / 'data'}/"))
    case = dump_case(darknet_pjreddie, cfg, mode="forward", seed=3, out_dir=tmp_path / "case")
    # the trailing [cost] (26) is left out: its l.output keeps the loss of the harness's
    # random-init train-mode pass (forward_cost_layer returns without truth)
    report = compare_case(case, layers=range(26))
    _layers_ok(report, 26)
    assert report.rows[25].kind == "softmax"


def test_yolo9000_builds_with_the_reference_tree(reference, monkeypatch, tmp_path):
    # the cfg names data/9k.tree; run from elsewhere, $DARKNET_PY_DATA finds it
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DARKNET_PY_REFERENCE", raising=False)
    monkeypatch.setenv(T.DATA_ENV, str(reference / "data"))
    for fork in ("pjreddie", "alexeyab"):
        model = Darknet(read_cfg(reference / "cfg" / fork / "yolo9000.cfg"), fork)
        head = model.layers[model.heads[0]]
        assert head.tree.n == head.classes == 9418 and head.tree.groups == 1846  # runs of equal parents
    model = Darknet(read_cfg(reference / "cfg" / "pjreddie" / "darknet9000.cfg"), "pjreddie")
    assert model.layers[-2].tree.n == 9418


# -- decode parity: Darknet's detector test path on an image -----------------------------
@pytest.mark.parametrize("fork, thresh, hier", [
    ("pjreddie", 0.3, 0.5), ("pjreddie", 0.2, 0.1),
    ("alexeyab", 0.3, 0.5), ("alexeyab", 0.5, 0.5)])
def test_region_tree_detect_matches_darknet(fork, thresh, hier, tree_file, reference, tmp_path,
                                            request):
    build = request.getfixturevalue(f"darknet_{fork}")
    cfg = tmp_path / "region_tree.cfg"
    # 32x32: dog.jpg (768x576) is letterboxed (pjreddie) or stretched (AlexeyAB's default)
    cfg.write_text(REGION_CFG.format(w=32, h=32, stride=2, tree=tree_file))
    # one threshold per case: Darknet's decode multiplies l.output down the tree in place,
    # so a second get_network_boxes on the same output would multiply again
    case = dump_case(build, cfg, mode="detect", seed=7, image=reference / "images" / "dog.jpg",
                     thresholds=(thresh,), hier_thresh=hier, names=NAMES,
                     out_dir=tmp_path / "case")
    report = compare_case(case)
    print(report)
    assert report.ok, str(report)
    assert [name for name, _, _ in report.checks] == [f"detections at thresh {thresh:g}"]
    want = (case / f"printed_t{thresh:g}.txt").read_text().splitlines()
    # the printed lines, from our own forward and decode
    c = load_case(case)
    from darknet_py import load
    model = load(c.cfg, c.weights, dialect=fork, warn_unused=False).eval()
    x = torch.from_numpy(np.load(case / "input.npy"))[None]
    with torch.no_grad():
        head = model.layer_outputs(x)[model.heads[0]][0]
    _, ih, iw = c.manifest["image_shape_chw"]
    assert c.manifest["letterbox"] == (fork == "pjreddie")
    dets = get_network_boxes(model, [head], iw, ih, thresh, hier,
                             letterbox=c.manifest["letterbox"])
    kept, _ = do_nms_sort(dets, 0.45)
    if fork == "pjreddie":
        got = [d.line for d in to_detections(kept, NAMES, thresh, iw, ih)]
    else:
        got = [line_v3(d, iw, ih) for d in to_detections_v3(kept, NAMES, thresh, iw, ih)]
    print(len(want), "lines:", want[:6])
    assert want, "the case should print detections"
    assert got == want


# -- tree.c itself, through each fork's libdarknet.so ------------------------------------
class CTree(ctypes.Structure):
    """``tree`` of darknet.h (the same in both forks)."""
    _fields_ = [("leaf", ctypes.POINTER(ctypes.c_int)), ("n", ctypes.c_int),
                ("parent", ctypes.POINTER(ctypes.c_int)), ("child", ctypes.POINTER(ctypes.c_int)),
                ("group", ctypes.POINTER(ctypes.c_int)), ("name", ctypes.POINTER(ctypes.c_char_p)),
                ("groups", ctypes.c_int), ("group_size", ctypes.POINTER(ctypes.c_int)),
                ("group_offset", ctypes.POINTER(ctypes.c_int))]


@pytest.fixture(scope="module", params=["pjreddie", "alexeyab"])
def tree_lib(request):
    import darknet_harness as dh
    folder = dh.build_folder(request.param)
    if isinstance(folder, str):
        dh.unavailable(folder)
    lib = ctypes.CDLL(str(folder / "libdarknet.so"))
    lib.read_tree.restype = ctypes.POINTER(CTree)
    lib.read_tree.argtypes = [ctypes.c_char_p]
    lib.fork = request.param
    return lib


def _tree_paths(tmp_path, reference):
    small = tmp_path / "small.tree"
    small.write_text(TREE)
    odd = tmp_path / "odd.tree"  # CRLF, a blank line, a repeated parent run, no final newline
    odd.write_bytes(b"a -1\r\n\r\nb 0\r\nc 0\nd 1\n  e   0  \nf 2.5")
    return [small, odd, reference / "data" / "9k.tree"]


def test_read_tree_equals_darknets(tree_lib, tmp_path, reference):
    for path in _tree_paths(tmp_path, reference):
        c = tree_lib.read_tree(str(path).encode()).contents
        ours = T.read_tree(path)
        n, g = c.n, c.groups
        assert (n, g) == (ours.n, ours.groups)
        assert c.parent[:n] == list(ours.parent) and c.group[:n] == list(ours.group)
        assert c.group_size[:g] == list(ours.group_size)
        assert c.group_offset[:g] == list(ours.group_offset)
        assert [bool(v) for v in c.leaf[:n]] == list(ours.leaf)
        assert [v.decode() for v in c.name[:n]] == list(ours.name)
        if tree_lib.fork == "pjreddie":
            assert c.child[:n] == list(ours.child)
        else:  # AlexeyAB's read_tree never fills child (nothing of its reads it)
            assert not c.child


def test_hierarchy_walks_equal_darknets(tree_lib, tmp_path, reference):
    f32p = ctypes.POINTER(ctypes.c_float)
    rs = np.random.RandomState(11)
    for path in _tree_paths(tmp_path, reference):
        ctree = tree_lib.read_tree(str(path).encode())
        ours = T.read_tree(path)
        # the grouped softmax of logits spread enough that walks go deep and stop early
        logits = torch.from_numpy(rs.normal(0, 3, (40, ours.n)).astype(np.float32))
        rows = T.hier_softmax(logits, ours).numpy()
        for only_leaves in (1, 0):  # 1: as the classifier's predict does (net->hierarchy)
            want = rows.copy()
            for r in want:
                args = (r.ctypes.data_as(f32p), ours.n, ctree, only_leaves)
                tree_lib.hierarchy_predictions(*args, *((1,) if tree_lib.fork == "pjreddie"
                                                        else ()))
            got = T.hierarchy_predictions(rows.copy(), ours, bool(only_leaves))
            assert np.array_equal(got, want)
        if tree_lib.fork != "pjreddie":
            continue  # AlexeyAB's hierarchy_top_prediction reads the child table it never fills
        tree_lib.hierarchy_top_prediction.restype = ctypes.c_int
        tops = set()
        for th in (0.0, 0.05, 0.3, 0.5, 0.9):
            for r in got:
                c = tree_lib.hierarchy_top_prediction(r.ctypes.data_as(f32p), ctree,
                                                      ctypes.c_float(th), 1)
                assert T.hierarchy_top_prediction(r, ours, th) == c
                tops.add(c)
        assert len(tops) > min(5, ours.n // 2)  # the walks end in many places


def test_softmax_tree_cannot_shrink_below_its_tree(tree_file):
    from darknet_py.layers.base import ResizeError, Shape
    model = Darknet(parse_cfg(SOFTMAX_CFG.format(filters=16, temperature=1, tree=tree_file)))
    layer = model.layers[2]
    assert layer.resize(Shape(16, 1, 1), []) == Shape(16, 1, 1)
    with pytest.raises(ResizeError, match="fewer than the 13 classes"):
        layer.resize(Shape(12, 1, 1), [])


@pytest.mark.slow
@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_yolo9000_decode_matches_darknet(fork, reference, tmp_path, request):
    """The 9k tree's decode at scale (yolo9000 at 96x96, random weights, dog.jpg): Darknet's
    own [region] output decoded here gives its detections exactly and its printed lines;
    and end to end (our forward, then decode) every layer and the detections match."""
    build = request.getfixturevalue(f"darknet_{fork}")
    cfg = _yolo9000_cfg(fork, reference, 96, tmp_path)
    names = (reference / "data" / "9k.names").read_text().splitlines()
    thresh = 0.3
    case = dump_case(build, cfg, mode="detect", seed=3, image=reference / "images" / "dog.jpg",
                     thresholds=(thresh,), names=names, out_dir=tmp_path / "case")
    c = load_case(case)
    from darknet_py import load
    model = load(c.cfg, c.weights, dialect=fork, warn_unused=False)
    head = torch.from_numpy(np.load(case / f"layer_{model.heads[0]:03d}.npy"))
    _, ih, iw = c.manifest["image_shape_chw"]
    dets = get_network_boxes(model, [head], iw, ih, thresh, 0.5,
                             letterbox=c.manifest["letterbox"])
    pre = np.load(case / f"dets_t{thresh:g}_prenms.npy")
    got = dets.to_array()
    assert np.array_equal(got[:, 4:], pre[:, 4:])  # objectness and every class probability
    np.testing.assert_allclose(got[:, :4], pre[:, :4], rtol=1e-6, atol=1e-6)
    kept, _ = do_nms_sort(dets, 0.45)
    ok, detail = match_detections(kept.to_array(), np.load(case / f"dets_t{thresh:g}.npy"),
                                  thresh)
    assert ok, detail
    want = (case / f"printed_t{thresh:g}.txt").read_text().splitlines()
    if fork == "pjreddie":
        lines = [d.line for d in to_detections(kept, names, thresh, iw, ih)]
    else:
        lines = [line_v3(d, iw, ih) for d in to_detections_v3(kept, names, thresh, iw, ih)]
    print(detail, want)
    assert want and lines == want
    report = compare_case(case)
    print(report.checks)
    assert report.ok, str(report)
