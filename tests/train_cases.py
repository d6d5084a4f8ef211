"""Make train-mode case folders with the real Darknet (test helper).

``make_train_case`` writes a cfg, random initial weights (darknet_py's init, then BN
scales/biases and conv biases drawn uniformly so nothing is neutral), X/y, runs the
harness' ``train`` (Darknet's own train_network K times) and stores what it dumped in the
reference case format that :func:`darknet_py.compare.compare_case` reads.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch

import darknet_harness as dh
from darknet_py.cfg import parse_cfg
from darknet_py.model import Darknet


def random_model(cfg_text: str, fork: str, seed: int) -> Darknet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg(cfg_text), dialect=fork)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.layers:
            w = getattr(layer, "weight", None)
            if isinstance(w, torch.nn.Parameter) and w.dim() == 4:
                fan_in = w.shape[1] * w.shape[2] * w.shape[3]
                w.copy_(torch.randn(w.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            b = getattr(layer, "bias", None)
            if isinstance(b, torch.nn.Parameter):
                b.copy_(torch.rand(b.shape, generator=gen) * 0.4 - 0.2)
            bn = getattr(layer, "bn", None)
            if bn is not None:
                bn.scales.copy_(torch.rand(bn.scales.shape, generator=gen) + 0.5)
                bn.rolling_mean.copy_(torch.rand(bn.scales.shape, generator=gen) * 0.2 - 0.1)
                bn.rolling_variance.copy_(torch.rand(bn.scales.shape, generator=gen) + 0.5)
    return model


def make_train_case(fork: str, cfg_text: str, folder: Path, X: np.ndarray, y: np.ndarray,
                    K: int = 2, seed: int = 1, ycols: Optional[int] = None, seen: int = 0,
                    prepare=None) -> Path:
    """Run Darknet's train_network K times and store a train case folder; skip when no
    Darknet build or compiler is available. ``seen``: the initial weights' header seen
    (training starts at iteration seen / batch). ``prepare(model)`` edits the random initial
    weights before they are saved."""
    harness = dh.build_harness(fork)
    if isinstance(harness, str):
        dh.unavailable(harness)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.cfg").write_text(cfg_text)
    model = random_model(cfg_text, fork, seed)
    major, minor, revision, _ = model.header
    model.header = (major, minor, revision, int(seen))
    if prepare is not None:
        with torch.no_grad():
            prepare(model)
    model.save_weights(folder / "weights_init.weights")
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.float32)
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    rows = X.shape[0]
    ycols = ycols or y.shape[1] * y.shape[2]
    flat_y = np.zeros((rows, ycols), np.float32)
    flat_y[:, :y.shape[1] * y.shape[2]] = y.reshape(rows, -1)[:, :ycols]
    dh.write_f32(folder / "X.f32", X)
    dh.write_f32(folder / "y.f32", flat_y)
    dh.run(harness, ["train", "net.cfg", "weights_init.weights", "X.f32", rows, "y.f32", ycols,
                     K, "."], folder)
    log = []
    for line in (folder / "log.txt").read_text().split("\n"):
        if line.strip():
            k, loss, rate, seen = line.split()
            log.append({"iter": int(k), "loss": float(loss), "rate_used_in_update": float(rate),
                        "seen_after": int(seen)})
    costs = {}
    mini = model.net.mini_batch
    for line in (folder / "iter1_cost.txt").read_text().split("\n"):
        if not line.strip():
            continue
        index, cost = line.split()
        costs[index] = float(cost)
        i = int(index)
        shape = (mini,) + tuple(model.layers[i].out_shape)
        for what in ("output", "delta"):
            raw = folder / f"iter1_{what}_{i:03d}.f32"
            if raw.is_file():
                # with subdivisions > 1 these are the last mini-batch's: keep them only
                # when iteration 1 is one mini-batch
                if rows == mini:
                    np.save(folder / f"iter1_yolo_{what}_{i:03d}.npy",
                            dh.read_f32(raw).reshape(shape))
                raw.unlink()
    manifest = {
        "case": folder.name, "mode": "train", "cfg": "net.cfg",
        "darknet": {"repo": "AlexeyAB/darknet" if fork == "alexeyab" else "pjreddie/darknet"},
        "weights": "weights_init.weights", "K": K, "train_log": log,
    }
    if rows == mini:
        manifest["yolo_cost_iter1"] = costs
    (folder / "case.json").write_text(json.dumps(manifest, indent=1))
    return folder


def random_truths(rng: np.random.Generator, batch: int, rows: int, counts, classes: int,
                  fields: int = 5) -> np.ndarray:
    """``counts[b]`` random boxes for image b (x,y in (0.02,0.98), w,h in (0.03,0.9)),
    zero rows after them."""
    y = np.zeros((batch, rows, fields), np.float32)
    for b, n in enumerate(counts):
        y[b, :n, 0:2] = rng.uniform(0.02, 0.98, (n, 2))
        y[b, :n, 2:4] = rng.uniform(0.03, 0.9, (n, 2))
        y[b, :n, 4] = rng.integers(0, classes, n)
    return y
