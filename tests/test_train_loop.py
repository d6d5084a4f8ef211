"""The training loop, checkpoints and CLI: cadence and resizing against the real Darknet
binaries of both forks, NaN stop, SIGKILL + resume, partial backbones, the CLI."""
from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import darknet_py
from darknet_py.train import checkpoint as C
from darknet_py.train.synthetic import make_shapes
from darknet_py.train.trainer import (TrainingStopped, alexeyab_random_size,
                                      pjreddie_random_size, train_detector)

ROOT = Path(__file__).resolve().parent.parent
BUILDS = Path(os.environ.get("DARKNET_PY_BUILDS", "/work/darknet-builds"))
EXES = {"pjreddie": BUILDS / "darknet-pjreddie-f6afaab" / "darknet",
        "alexeyab": BUILDS / "darknet-alexeyab-59596d7" / "darknet"}

TINY = """[net]
batch=2
subdivisions=1
width={w}
height={h}
channels=3
momentum=0.9
decay=0.0005
learning_rate={lr}
max_batches={max_batches}
policy=constant

[convolutional]
batch_normalize=1
filters=4
size=3
stride=2
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=24
activation=linear

[yolo]
mask=0,1,2
anchors=4,4,8,8,12,12
classes=3
num=3
jitter=.3
ignore_thresh=.7
truth_thresh=1
random={random}
"""


def tiny_cfg(folder: Path, *, w=32, h=32, lr=0.001, max_batches=320, random=0,
             name="tiny.cfg") -> str:
    path = folder / name
    path.write_text(TINY.format(w=w, h=h, lr=lr, max_batches=max_batches, random=random))
    return str(path)


def dataset(folder: Path, extra: str = "", backup: str = "backup") -> str:
    data = make_shapes(folder, train=8, valid=2, size=32, seed=0)
    text = Path(data).read_text()
    text = re.sub(r"backup=.*", f"backup={folder / backup}/", text) + extra
    Path(data).write_text(text)
    return data


def headers(folder: Path) -> dict:
    out = {}
    for f in sorted(folder.iterdir()):
        major, minor, rev = struct.unpack("<iii", f.read_bytes()[:12])
        seen = struct.unpack("<Q" if major * 10 + minor >= 2 else "<I",
                             f.read_bytes()[12:20 if major * 10 + minor >= 2 else 16])[0]
        out[f.name] = (major, minor, rev, seen)
    return out


def counting_step(model, state, X, y):
    """A stand-in for train_network that only counts images (loop mechanics tests)."""
    state.seen += X.shape[0]
    return 1.0


def need(exe: Path):
    if not exe.is_file():
        pytest.skip(f"no Darknet build at {exe} (set DARKNET_PY_BUILDS)")


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_checkpoints_equal_darknet_train_detector(tmp_path, fork):
    """The same files (names and headers: version and seen) as the real detector train."""
    need(EXES[fork])
    extra = "saveweights=150\n" if fork == "alexeyab" else ""
    cfg = tiny_cfg(tmp_path)
    c_data = dataset(tmp_path / "c", extra)
    args = [str(EXES[fork]), "detector", "train", c_data, cfg] + (
        ["-dont_show"] if fork == "alexeyab" else [])
    subprocess.run(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, timeout=120)
    want = headers(tmp_path / "c" / "backup")
    py_data = dataset(tmp_path / "py", extra)
    train_detector(py_data, cfg, dialect=fork, workers=0, seed=0, chart=None,
                   step=counting_step, stream=open(os.devnull, "w"))
    got = headers(tmp_path / "py" / "backup")
    assert got == want


def test_resume_cadence_alexeyab_counts_from_the_start_iteration():
    cad = C.Cadence("alexeyab", "b", "x", max_batches=5000, start=950)
    written = {i: cad.due(i) for i in range(951, 1301)}
    assert written[1000] == ["b/x_1000.weights", "b/x_last.weights"]
    assert written[1050] == []
    assert [i for i, p in written.items() if any("_last" in q for q in p)] == \
        [1000, 1100, 1200, 1300]
    cad = C.Cadence("alexeyab", "b", "x", max_batches=5000, start=0, saveweights=250,
                    savelast=70)  # the ">= previous + interval" rule at work
    got = [i for i in range(1, 600) if cad.due(i)]
    assert got == [70, 140, 210, 250, 280, 350, 420, 490, 500, 560]


def test_alexeyab_random_sizes_are_darknets(tmp_path):
    """Every size the real AlexeyAB Darknet picks is one the rule picks, the first resize
    and the last 100 iterations take the largest."""
    need(EXES["alexeyab"])
    cfg = tiny_cfg(tmp_path, w=96, h=64, max_batches=200, random=1)
    data = dataset(tmp_path / "c")
    log = subprocess.run([str(EXES["alexeyab"]), "detector", "train", data, cfg, "-dont_show"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120).stdout
    sizes = [tuple(map(int, m)) for m in re.findall(r"^ (\d+) x (\d+) $", log, re.M)]
    assert len(sizes) == 20
    mine = {alexeyab_random_size(np.random.default_rng(s), 10, 200, 96, 64, 1.0, 32, False)
            for s in range(400)}
    biggest = alexeyab_random_size(np.random.default_rng(0), 0, 200, 96, 64, 1.0, 32, True)
    assert set(sizes) <= mine | {biggest}
    assert sizes[0] == biggest and all(s == biggest for s in sizes[-9:])


def test_pjreddie_random_sizes_reading_of_the_c():
    """Reading of examples/detector.c (its binary needs a minute at 608): 320..608 by
    32, 608 once batch + 200 > max_batches."""
    sizes = {pjreddie_random_size(np.random.default_rng(s), 0, 10000, 416, 416)
             for s in range(300)}
    assert sizes == {(d, d) for d in range(320, 609, 32)}
    assert pjreddie_random_size(np.random.default_rng(1), 9801, 10000, 416, 416) == (608, 608)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny_cfg(tmp_path, max_batches=400)
    data = dataset(tmp_path)

    def step(model, state, X, y):
        state.seen += X.shape[0]
        return float("nan") if state.seen // 2 == 150 else 1.0
    with pytest.raises(TrainingStopped, match=r"loss is nan at iteration 150.*tiny\.backup"):
        train_detector(data, cfg, workers=0, seed=0, chart=None, step=step,
                       stream=open(os.devnull, "w"))
    files = headers(tmp_path / "backup")
    assert files == {"tiny.backup": (0, 2, 0, 200), "tiny_100.weights": (0, 2, 0, 200)}


KILLABLE = """
import sys, time
from darknet_py.train.trainer import train_detector
def step(model, state, X, y):  # counts images; the engine runs in the resumed part
    state.seen += X.shape[0]
    time.sleep(0.002)
    return 1.0
train_detector(sys.argv[1], sys.argv[2], workers=1, seed=1, chart=None, step=step)
"""


def test_sigkill_then_resume_loses_at_most_one_interval(tmp_path):
    """A training process killed with SIGKILL (data loader worker and all) resumes from
    .backup, losing at most one checkpoint interval; the resumed run trains for real."""
    cfg = tiny_cfg(tmp_path, max_batches=100000)
    data = dataset(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, data, cfg], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    backup = tmp_path / "backup" / "tiny.backup"
    last = 0
    deadline = time.time() + 60
    for line in proc.stdout:
        m = re.match(r"(\d+): ", line)
        if m:
            last = int(m.group(1))
        if backup.exists() and last >= 250:
            break
        assert time.time() < deadline, "training too slow"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    seen = headers(tmp_path / "backup")["tiny.backup"][3]
    assert seen // 2 >= 200 and last - seen // 2 <= 100
    result = train_detector(data, cfg, str(backup), workers=0, seed=2, chart=None,
                            max_batches=seen // 2 + 3, stream=open(os.devnull, "w"))
    assert result.iterations == 3 and result.seen == seen + 6
    assert all(np.isfinite(result.losses))
    assert headers(tmp_path / "backup")["tiny_final.weights"][3] == seen + 6


def test_resume_clear_and_partial_backbone(tmp_path):
    cfg = tiny_cfg(tmp_path)
    model = darknet_py.load(cfg)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    C.save_checkpoint(model, str(tmp_path / "full.weights"), seen=2 * 77)
    model.save_weights(tmp_path / "part.weights", upto=1)  # layer 0 only
    fresh = darknet_py.load(cfg)
    info = C.load_for_training(fresh, tmp_path / "full.weights")
    assert info["seen"] == 154 and info["upto"] is None
    assert C.load_for_training(fresh, tmp_path / "full.weights", clear=True)["seen"] == 0
    other = darknet_py.load(cfg)
    before = other.layers[1].weight_tensors()[0].clone()
    info = C.load_for_training(other, tmp_path / "part.weights")
    assert info["upto"] == 1
    assert torch.equal(other.layers[0].weight_tensors()[-1], model.layers[0].weight_tensors()[-1])
    assert torch.equal(other.layers[1].weight_tensors()[0], before)
    data = dataset(tmp_path / "d")
    r = train_detector(data, cfg, str(tmp_path / "full.weights"), workers=0, chart=None,
                       max_batches=80, step=counting_step, stream=open(os.devnull, "w"))
    assert r.iterations == 3 and r.seen == 160
    r = train_detector(data, cfg, str(tmp_path / "full.weights"), clear=True, workers=0,
                       chart=None, max_batches=2, step=counting_step,
                       stream=open(os.devnull, "w"))
    assert r.iterations == 2 and r.seen == 4


def test_cli_detector_train_and_its_errors(tmp_path, capsys):
    from darknet_py.cli import main
    cfg = tiny_cfg(tmp_path)
    data = dataset(tmp_path)
    chart = tmp_path / "chart.png"
    assert main(["detector", "train", data, cfg, "--max-batches", "3", "--workers", "0",
                 "-chart", str(chart), "-dont_show"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^3: [\d.]+, [\d.]+ avg, 0\.001000 rate", out, re.M)
    assert (tmp_path / "backup" / "tiny_final.weights").is_file()
    pytest.importorskip("matplotlib")
    assert chart.read_bytes()[:4] == b"\x89PNG"
    assert main(["detector", "train", str(tmp_path / "none.data"), cfg]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.data" in err[0]


DDP_SCRIPT = """
import sys
from darknet_py.train.trainer import train_detector
train_detector(sys.argv[1], sys.argv[2], sys.argv[3], workers=0, seed=5, chart=None,
               max_batches=2, scheme=sys.argv[4])
"""


def _ddp_case(tmp_path, name):
    cfg = tmp_path / "ddp.cfg"
    cfg.write_text(TINY.format(w=32, h=32, lr=0.01, max_batches=2, random=0)
                   .replace("batch=2\nsubdivisions=1", "batch=4\nsubdivisions=2"))
    data = dataset(tmp_path / name)
    start = tmp_path / "start.weights"
    if not start.exists():
        model = darknet_py.load(cfg)
        C.save_checkpoint(model, str(start), seen=0)
    return str(cfg), data, str(start)


def _params(path, cfg):
    model = darknet_py.load(cfg, path)
    return [p.detach().clone() for p in model.parameters()]


def test_ddp_two_gloo_processes_equal_one_process(tmp_path):
    """2 CPU processes (torchrun, gloo) splitting batch=4 give the weights of one process
    training batch=4, after 2 iterations (the parameters; BN rolling statistics are each
    process's own, rank 0's are saved)."""
    cfg, data1, start = _ddp_case(tmp_path, "one")
    train_detector(data1, cfg, start, workers=0, seed=5, chart=None, max_batches=2,
                   stream=open(os.devnull, "w"))
    _, data2, _ = _ddp_case(tmp_path, "two")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", "--no-python", sys.executable,
                          "-c", DDP_SCRIPT, data2, cfg, start, "split"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    one = _params(tmp_path / "one" / "backup" / "ddp_final.weights", cfg)
    two = _params(tmp_path / "two" / "backup" / "ddp_final.weights", cfg)
    init = _params(start, cfg)
    assert headers(tmp_path / "two" / "backup")["ddp_final.weights"][3] == 8
    for a, b, s in zip(one, two, init):
        update = (a - s).abs().max()
        assert update > 0
        assert (a - b).abs().max() <= 1e-4 * update, (a - b).abs().max() / update


def test_darknet_multi_gpu_scheme_runs_at_lr_times_processes(tmp_path):
    """scheme="darknet": each process trains a whole batch at learning_rate x 2, weights
    averaged every 4 iterations (Darknet's train_networks/sync_nets)."""
    cfg, data, start = _ddp_case(tmp_path, "dk")
    script = DDP_SCRIPT.replace("max_batches=2", "max_batches=4")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", "--no-python", sys.executable, "-c", script,
                          data, cfg, start, "darknet"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert re.search(r"^4: [\d.]+, [\d.]+ avg, 0\.020000 rate", run.stdout, re.M), run.stdout
    assert headers(tmp_path / "dk" / "backup")["ddp_final.weights"][3] == 16


def test_progress_is_a_tqdm_bar_on_a_terminal():
    import io
    from darknet_py.train.trainer import Progress
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    stream = Terminal()
    progress = Progress(100, 10, 8, stream=stream)
    progress.update(11, 3.0, 4.0, 0.001, 0.1)
    progress.close()
    assert "11/100" in stream.getvalue() and "loss 3.000 avg 4.000" in stream.getvalue()
