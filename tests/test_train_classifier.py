"""``classifier train``: train_classifier and the CLI verb on a tiny generated dataset
(coloured images whose path names the class), checkpoint names and cadence as each fork's
train_classifier writes them (examples/classifier.c, src/classifier.c), bad inputs and the
NaN stop.

The tiny net ends in an 8x8 [convolutional] rather than [avgpool]: AlexeyAB's CPU build
never clears an [avgpool]'s l.delta (darknet_py reproduces it, base.StaleDelta), which makes
such a net's training unstable at this learning rate in that fork."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from darknet_py.cli import main
from darknet_py.errors import DataError
from darknet_py.train.checkpoint import ClassifierCadence
from darknet_py.train.trainer import TrainingStopped, train_classifier

CFG = """[net]
batch=12
subdivisions=1
width=16
height=16
channels=3
learning_rate=0.01
momentum=0.9
decay=0.0005
max_batches={max_batches}
min_crop=16
max_crop=20
hue=.05
saturation=1.2
exposure=1.2

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=3
size=8
stride=1
pad=0
activation=linear

[softmax]
groups=1
"""

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (20, 40, 230)}


def make_dataset(root, per_class=6, max_batches=40, extra=()):
    """Images img/<colour>_<i>.png with noise; relative paths (run from root) so only the
    file names can match the label names."""
    from PIL import Image
    rng = np.random.default_rng(0)
    (root / "img").mkdir()
    lines = []
    for name, rgb in COLOURS.items():
        for i in range(per_class):
            pix = np.clip(np.array(rgb)[None, None] + rng.normal(0, 25, (20, 24, 3)), 0, 255)
            rel = f"img/{name}_{i}.png"
            Image.fromarray(pix.astype(np.uint8)).save(root / rel)
            lines.append(rel)
    lines += list(extra)
    (root / "train.list").write_text("\n".join(lines) + "\n")
    (root / "labels.txt").write_text("red\ngreen\nblue\n")
    (root / "c.data").write_text("classes=3\ntrain=train.list\nlabels=labels.txt\n"
                                 "backup=backup\n")
    (root / "tiny.cfg").write_text(CFG.format(max_batches=max_batches))


@pytest.mark.parametrize("dialect", ["pjreddie", "alexeyab"])
def test_tiny_classifier_learns_and_writes_darknets_checkpoints(tmp_path, monkeypatch, capsys,
                                                                dialect):
    monkeypatch.chdir(tmp_path)
    make_dataset(tmp_path, extra=["img/missing_red.png", "img/nothing.png"])
    result = train_classifier("c.data", "tiny.cfg", dialect=dialect, workers=0, seed=3)
    assert result.iterations == 40 and result.seen == 40 * 12
    first, last = result.losses[0], np.mean(result.losses[-10:])
    assert last < 0.2 * first, (first, last)
    names = sorted(os.listdir("backup"))
    if dialect == "pjreddie":  # an epoch is 20 images: a numbered file each epoch passed
        epochs = [result.seen * k // 40 // 20 for k in range(1, 41)]
        expected = {f"tiny_{e}.weights" for e in set(epochs) if e > 0} | {"tiny.weights"}
    else:  # fewer than 100 iterations: only the final file
        expected = {"tiny_final.weights"}
    assert set(names) == expected
    out, err = capsys.readouterr()
    assert "40, 24.000: " in out  # Darknet's "i, epoch: loss, avg avg, ..." line
    assert err.count("missing_red.png") == 1 and err.count("nothing.png") == 1
    assert set(result.problems) == {"unusable image", "no label name in the image path"}
    # the checkpoint holds the weights and seen: resuming starts at its iteration
    more = train_classifier("c.data", "tiny.cfg", result.final,
                            dialect=dialect, workers=0, seed=4, max_batches=42)
    assert more.iterations == 2 and more.seen == 42 * 12
    assert more.losses[0] < first


def test_cadence_as_each_fork_writes():
    """pjreddie: base_E.weights when seen/N passes the epoch, .backup when i % 1000 == 0,
    base.weights at the end; AlexeyAB: base_i.weights 1000 and base_last.weights 100
    iterations after the last (counters from the start iteration), base_final.weights."""
    pj = ClassifierCadence("pjreddie", "b", "net", images=2500, start=950, start_seen=950 * 64)
    got = {i: pj.due(i, i * 64) for i in range(951, 2100)}
    hits = {i: v for i, v in got.items() if v}
    epochs = {i: v for i, v in hits.items() if any("_" in p for p in v)}
    assert [i for i in epochs] == [i for i in range(951, 2100)
                                   if i * 64 // 2500 > (i - 1) * 64 // 2500]
    assert hits[1000][-1] == os.path.join("b", "net.backup") and "b/net.backup" in hits[2000]
    assert pj.final() == os.path.join("b", "net.weights")
    ab = ClassifierCadence("alexeyab", "b", "net", images=10, start=50)
    hits = {i: v for i in range(51, 1200) if (v := ab.due(i, 0))}
    assert [i for i, v in hits.items() if "b/net_last.weights" in v] == list(range(150, 1200,
                                                                                   100))
    assert [i for i, v in hits.items() if any(p.endswith(f"_{i}.weights") for p in v)] == [1050]
    assert ab.final() == os.path.join("b", "net_final.weights")


def test_nan_stops_and_bad_data_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_dataset(tmp_path)

    def nan_step(model, state, X, y):
        state.seen += X.shape[0]
        return math.nan
    with pytest.raises(TrainingStopped, match="loss is nan at iteration 1"):
        train_classifier("c.data", "tiny.cfg", workers=0, seed=1, step=nan_step)
    (tmp_path / "c.data").write_text("classes=4\ntrain=train.list\nlabels=labels.txt\n"
                                     "backup=backup\n")
    (tmp_path / "labels.txt").write_text("red\ngreen\nblue\nwhite\n")
    with pytest.raises(DataError, match="classes=4, but the network's last layer has 3"):
        train_classifier("c.data", "tiny.cfg", workers=0)


def test_cli_classifier_train(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_dataset(tmp_path, max_batches=3)
    cfg = (tmp_path / "tiny.cfg").read_text()  # AlexeyAB's CutMix/Mosaic on half the batches
    (tmp_path / "tiny.cfg").write_text(cfg.replace("[net]\n", "[net]\nmosaic=1\ncutmix=1\n", 1))
    assert main(["classifier", "train", "c.data", "tiny.cfg", "--workers", "0", "--seed",
                 "2", "--dialect", "alexeyab"]) == 0
    assert os.listdir("backup") == ["tiny_final.weights"]
    assert main(["classifier", "train", "c.data", "tiny.cfg", "backup/tiny_final.weights",
                 "-clear", "--workers", "0", "--max-batches", "1", "--dialect",
                 "alexeyab"]) == 0
    out = capsys.readouterr().out
    assert "1, 0.667: " in out
    (tmp_path / "c.data").write_text("classes=3\ntrain=none.list\nlabels=labels.txt\n")
    assert main(["classifier", "train", "c.data", "tiny.cfg"]) == 2
    assert "none.list" in capsys.readouterr().err


@pytest.mark.parametrize("dialect", ["pjreddie", "alexeyab"])
def test_softmax_tree_truths_reach_the_step(tmp_path, monkeypatch, dialect):
    """A cfg whose [softmax] has tree=: each truth row train_network gets is fill_hierarchy
    of the path's one-hot (ancestors 1, groups off the path SECRET_NUM); pjreddie's .data
    tree= replaces the cfg's (its train_classifier sets net->hierarchy from it)."""
    from darknet_py.tree import SECRET_NUM
    monkeypatch.chdir(tmp_path)
    make_dataset(tmp_path, max_batches=2)
    # 5 classes: warm (red), cool (green, blue): "red", "green", "blue" are leaves
    (tmp_path / "labels.txt").write_text("warm\ncool\nred\ngreen\nblue\n")
    (tmp_path / "t.tree").write_text("warm -1\ncool -1\nred 0\ngreen 1\nblue 1\n")
    (tmp_path / "c.data").write_text("classes=5\ntrain=train.list\nlabels=labels.txt\n"
                                     "backup=backup\n")
    cfg = (tmp_path / "tiny.cfg").read_text().replace("filters=3\nsize=8", "filters=5\nsize=8")
    (tmp_path / "tiny.cfg").write_text(cfg.replace("[softmax]\ngroups=1", "[softmax]\ntree=t.tree"))
    seen = []

    def step(model, state, X, y):
        seen.append(y.numpy().copy())
        state.seen += X.shape[0]
        return 1.0
    train_classifier("c.data", "tiny.cfg", dialect=dialect, workers=0, seed=1, step=step,
                     augment=False)
    rows = {tuple(r) for batch in seen for r in batch}
    S = SECRET_NUM
    assert rows == {(1, 0, 1, S, S), (0, 1, S, 1, 0), (0, 1, S, 0, 1)}
    if dialect == "pjreddie":  # .data tree= wins over the cfg's: a flat tree, no ancestors
        (tmp_path / "flat.tree").write_text("warm -1\ncool -1\nred -1\ngreen -1\nblue -1\n")
        with open("c.data", "a") as f:
            f.write("tree=flat.tree\n")
        seen.clear()
        train_classifier("c.data", "tiny.cfg", dialect=dialect, workers=0, seed=1, step=step,
                         augment=False)
        rows = {tuple(r) for batch in seen for r in batch}
        assert rows == {(0, 0, 1, 0, 0), (0, 0, 0, 1, 0), (0, 0, 0, 0, 1)}


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_checkpoints_equal_darknet_classifier_train(tmp_path, monkeypatch, fork):
    """The same files (names and headers: version and seen) as the real ``darknet
    classifier train`` of each fork writes in the same run (batch 2, 1010 iterations, 18
    images: pjreddie's 112 epoch files + .backup + .weights; AlexeyAB's _1000, _last,
    _final)."""
    import subprocess
    from test_train_loop import counting_step, darknet_exe, headers
    exe = darknet_exe(fork)
    for side in ("c", "py"):
        (tmp_path / side).mkdir()
        make_dataset(tmp_path / side, max_batches=1010)
        cfg = (tmp_path / side / "tiny.cfg")
        cfg.write_text(cfg.read_text().replace("batch=12", "batch=2"))
        (tmp_path / side / "backup").mkdir()
    subprocess.run([str(exe), "classifier", "train", "c.data", "tiny.cfg"]
                   + (["-dont_show"] if fork == "alexeyab" else []), cwd=tmp_path / "c",
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=300)
    want = headers(tmp_path / "c" / "backup")
    monkeypatch.chdir(tmp_path / "py")
    train_classifier("c.data", "tiny.cfg", dialect=fork, workers=0, seed=0, step=counting_step,
                     stream=open(os.devnull, "w"))
    got = headers(tmp_path / "py" / "backup")
    assert len(want) == (114 if fork == "pjreddie" else 3)
    assert got == want


def test_topk_during_training_at_alexeyabs_cadence(tmp_path, monkeypatch, capsys):
    """-topk (AlexeyAB's calc_topk): classifier valid's top-k when i >= max(last + 2 *
    images / batch, burn_in, 100) and at max_batches (100 and burn_in are floors, not
    intervals: with 18 images, batch 12, every 3 iterations after 100); k = the .data top
    (default 5) clamped to classes; printed as "accuracy topK = a"."""
    from test_train_loop import counting_step
    monkeypatch.chdir(tmp_path)
    make_dataset(tmp_path, max_batches=250)
    with open("c.data", "a") as f:
        f.write("valid=train.list\n")
    result = train_classifier("c.data", "tiny.cfg", dialect="alexeyab", workers=0, seed=1,
                              step=counting_step, calc_topk=True)
    expected = [100] + list(range(103, 251, 3))
    assert [i for i, _ in result.maps] == expected
    assert all(a == 1.0 for _, a in result.maps)  # top3 of 3 classes
    assert capsys.readouterr().out.count(" accuracy top3 = 1.000000 ") == len(expected)
    (tmp_path / "tiny.cfg").write_text(CFG.format(max_batches=40).replace("[net]\n",
                                                                          "[net]\nburn_in=30\n"))
    with open("c.data", "a") as f:
        f.write("top=1\n")
    result = train_classifier("c.data", "tiny.cfg", dialect="alexeyab", workers=0, seed=3,
                              calc_topk=True)
    assert [i for i, _ in result.maps] == [40] and result.maps[0][1] == 1.0  # it learned
