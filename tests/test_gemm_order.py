"""Darknet-order evaluation (:mod:`darknet_py.gemm_order`) against the real Darknet: every
layer's output bit for bit (max error 0, not a tolerance).

Against: the reference cases (pjreddie's yolov3-tiny with the official weights on
dog.jpg, AlexeyAB's random-weights yolov4-tiny) and ``dump_case`` of both forks'
builds (fixtures ``darknet_pjreddie``/``darknet_alexeyab``) on small cfgs written
here to reach the arithmetic this mode reproduces: every pjreddie activation with
its double formula, AlexeyAB's through its own library, batchnorm on planes of
S % 4 = 0..3 values and S < 4 (normalize_cpu's vector body and scalar tail),
grouped, strided, dilated and flat 1x1 convolutions, [yolo] heads with and without
``scale_x_y``, [Gaussian_yolo]; AlexeyAB's detect mode with batchnorm fused as its
``detector test`` does. ``-m slow``: yolov4 (random weights) at 96x96.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import darknet_py
from darknet_py.gemm_order import darknet_order, gemm_nn


def _layers_equal(model, case: Path, x: torch.Tensor, build) -> int:
    """Assert every layer output of ``model`` on ``x`` in ``build``'s order equals the case's
    ``layer_NNN.npy`` exactly; returns how many layers were compared."""
    with darknet_order(build):
        outs = model.layer_outputs(x)
    bad = []
    for i, out in enumerate(outs):
        want = np.load(case / f"layer_{i:03d}.npy").reshape(-1)
        got = out.numpy().reshape(-1)
        # bit patterns: NaNs where Darknet has NaNs (AlexeyAB's -Ofast logistic of x < -88:
        # rcpps(inf) = 0, then its Newton step 0 * inf), and the signs of zeros
        if not np.array_equal(got.view(np.uint32), want.astype(np.float32).view(np.uint32)):
            bad.append(f"layer {i} [{model.layers[i].kind}]: {int(np.sum(got != want))} of "
                       f"{got.size} values differ, max {float(np.abs(got - want).max()):.3g}")
    assert not bad, "\n".join(bad)
    return len(outs)


def _input(case: Path, model) -> torch.Tensor:
    x = np.load(case / "input.npy").astype(np.float32)
    return torch.from_numpy(x).reshape(1, -1, model.height, model.width)


def test_gemm_nn_sums_in_k_order():
    """The definition: one float32 running sum per output, k ascending (checked against a
    scalar loop), which differs from a float64 product rounded once."""
    rng = np.random.RandomState(0)
    a = rng.standard_normal((3, 50)).astype(np.float32)
    b = rng.standard_normal((50, 4)).astype(np.float32)
    want = np.zeros((3, 4), dtype=np.float32)
    for i in range(3):
        for j in range(4):
            s = np.float32(0)
            for k in range(50):
                s = np.float32(s + np.float32(a[i, k] * b[k, j]))
            want[i, j] = s
    got = gemm_nn(a, b)
    assert np.array_equal(got, want)
    assert not np.array_equal(got, (a.astype(np.float64) @ b).astype(np.float32))


def test_pjreddie_official_yolov3_tiny_reference_case(darknet_pjreddie, pj_cases, tiny_weights):
    case = pj_cases / "tiny-official-dog"
    model = darknet_py.load(case / "yolov3-tiny.cfg", tiny_weights).eval()
    assert _layers_equal(model, case, _input(case, model), darknet_pjreddie) == 24


def test_alexeyab_yolov4_tiny_reference_case(darknet_alexeyab, ab_cases):
    case = ab_cases / "yolov4-tiny-narrow-rand-256"
    model = darknet_py.load(case / "yolov4-tiny-narrow-256.cfg", case / "weights.weights").eval()
    assert _layers_equal(model, case, _input(case, model), darknet_alexeyab) == 38


def _conv(filters, size=3, stride=1, activation="leaky", bn=1, extra=""):
    return (f"[convolutional]\nbatch_normalize={bn}\nfilters={filters}\nsize={size}\n"
            f"stride={stride}\npad=1\nactivation={activation}\n{extra}\n")


_YOLO = ("[yolo]\nmask=0,1,2\nanchors=4,5, 8,9, 12,10, 20,18\nclasses=2\nnum=4\n"
         "{extra}\n")

#: pjreddie: every activation, planes of 42x34 (S%4=0), 21x17 (1), 11x9 (3), 6x5 (2),
#: 3x3, 2x2 (S=4), 2x1 (S<4), groups, a flat strided 1x1 (pjreddie skips im2col for it)
PJ_CFG = ("[net]\nwidth=42\nheight=34\nchannels=3\nbatch=1\n\n"
          + _conv(8, activation="leaky")
          + _conv(8, stride=2, activation="logistic", bn=0)
          + "[maxpool]\nsize=2\nstride=2\n\n"
          + _conv(12, activation="tanh", extra="groups=2")
          + _conv(12, size=1, activation="elu")
          + _conv(10, stride=2, activation="selu")
          + _conv(10, activation="relie")
          + _conv(10, activation="ramp")
          + _conv(10, activation="loggy")
          + _conv(10, activation="plse", bn=0)
          + _conv(10, activation="lhtan")
          + _conv(10, activation="relu")
          + _conv(21, size=1, activation="linear")
          + _YOLO.format(extra="")
          + "[route]\nlayers=-3\n\n"
          + _conv(8, stride=5, activation="logistic")
          + "[route]\nlayers=-5\n\n"
          + _conv(8, stride=2, activation="leaky")
          + _conv(8, stride=2, activation="leaky")
          + "[route]\nlayers=-8\n\n"
          + _conv(8, size=1, stride=2, activation="leaky")
          )

#: AlexeyAB: its own activations (called from its library), dilation, groups, route
#: groups, shortcut, [yolo] with scale_x_y, [Gaussian_yolo]; non-square 44x28 input
AB_CFG = ("[net]\nwidth=44\nheight=28\nchannels=3\nbatch=1\n\n"
          + _conv(8, activation="mish")
          + _conv(8, stride=2, activation="swish")
          + _conv(8, activation="leaky", extra="dilation=2")
          + _conv(8, activation="hard_mish", extra="groups=2")
          + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n\n"
          + _conv(8, size=1, activation="logistic")
          + "[shortcut]\nfrom=-4\nactivation=linear\n\n"
          + _conv(8, stride=2, activation="relu6")
          + _conv(8, activation="gelu")
          + _conv(8, activation="normalize_channels_softmax", bn=0)
          + _conv(8, activation="tanh")
          + _conv(21, size=1, activation="linear")
          + _YOLO.format(extra="scale_x_y=1.05")
          + "[route]\nlayers=-3\n\n"
          + _conv(33, size=1, activation="linear")
          + "[Gaussian_yolo]\nmask=0,1,2\nanchors=4,5, 8,9, 12,10, 20,18\nclasses=2\nnum=4\n"
          )


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_small_networks_every_layer_bit_identical(fork, darknet_pjreddie, darknet_alexeyab,
                                                  tmp_path):
    from darknet_py.darknet import dump_case
    build = darknet_pjreddie if fork == "pjreddie" else darknet_alexeyab
    cfg = tmp_path / f"{fork}.cfg"
    cfg.write_text(PJ_CFG if fork == "pjreddie" else AB_CFG)
    case = dump_case(build, cfg, mode="forward", seed=3, out_dir=tmp_path / "case")
    model = darknet_py.load(cfg, case / "weights.weights", dialect=fork).eval()
    assert fork == "alexeyab" or model.layers[-1].flat_1x1  # read flat, as pjreddie does
    assert _layers_equal(model, case, _input(case, model), build) == len(model.layers) >= 16

def test_alexeyab_detect_mode_with_fused_batchnorm(darknet_alexeyab, reference, tmp_path):
    """AlexeyAB's detect path (what ``detector test`` runs): batchnorm fused into the
    convolutions after loading, then the forward; the dump's layers are that network's.
    (Up to the [yolo] head: with the [Gaussian_yolo] head after it, the detect dump of
    this cfg crashes inside Darknet; not investigated.)"""
    from darknet_py.darknet import dump_case
    cfg = tmp_path / "ab.cfg"
    cfg.write_text(AB_CFG[:AB_CFG.index("[route]\nlayers=-3")])  # up to its [yolo]
    first = dump_case(darknet_alexeyab, cfg, mode="forward", seed=5, out_dir=tmp_path / "init")
    case = dump_case(darknet_alexeyab, cfg, first / "weights.weights", mode="detect",
                     image=reference / "images" / "dog.jpg", out_dir=tmp_path / "detect")
    model = darknet_py.load(cfg, first / "weights.weights", dialect="alexeyab").eval()
    model.fuse_batchnorm()
    _layers_equal(model, case, _input(case, model), darknet_alexeyab)


@pytest.mark.slow
def test_alexeyab_yolov4_random_weights_at_96(darknet_alexeyab, reference, tmp_path):
    text = (reference / "cfg" / "alexeyab" / "yolov4.cfg").read_text()
    cfg = tmp_path / "yolov4-96.cfg"
    cfg.write_text(re.sub(r"(?m)^(width|height)=\d+$", r"\1=96", text))
    from darknet_py.darknet import dump_case
    case = dump_case(darknet_alexeyab, cfg, mode="forward", seed=1, out_dir=tmp_path / "case",
                     timeout=1200)
    model = darknet_py.load(cfg, case / "weights.weights", dialect="alexeyab").eval()
    assert _layers_equal(model, case, _input(case, model), darknet_alexeyab) == 162


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_compare_darknet_order_is_exact(fork, darknet_pjreddie, darknet_alexeyab, reference,
                                        tmp_path, capsys):
    """``darknet-py compare --darknet BUILD CFG [IMAGE] --darknet-order``: every layer's error
    0 (pjreddie: a detect-mode dump of dog.jpg, its detections checked too; AlexeyAB: forward)."""
    from darknet_py.cli import main
    build = darknet_pjreddie if fork == "pjreddie" else darknet_alexeyab
    cfg = tmp_path / f"{fork}.cfg"
    cfg.write_text(PJ_CFG if fork == "pjreddie" else AB_CFG)
    image = [str(reference / "images" / "dog.jpg")] if fork == "pjreddie" else []
    argv = ["compare", "--darknet", str(build.folder), str(cfg), *image, "--dialect", fork]
    assert main(argv + ["--darknet-order"]) == 0
    out = capsys.readouterr().out
    assert "OK:" in out and "worst 0.00e+00" in out
    assert fork == "alexeyab" or "detections at thresh 0.5" in out
    assert main(["compare", str(tmp_path), "--darknet-order"]) == 2
    assert "--darknet-order needs --darknet" in capsys.readouterr().err
