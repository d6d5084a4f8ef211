"""``xnor=1`` convolutions against the real Darknet of both forks, and worked out by hand.

pjreddie (forward_convolutional_layer's CPU path): binarize_weights with each filter's mean
|w|, binarize_cpu of the input, an ordinary convolution (zero padding).

AlexeyAB, two paths (see darknet_py/layers/convolutional.py):

* after ``calculate_binary_weights`` (its ``detector test`` and every other inference
  command, after ``fuse_conv_batchnorm``; the harness's detect mode): the bit-packed XNOR
  GEMM, ``mean|w| * sum(sign w * sign x)`` with padding counted as -1, bias, the activation
  (linear with ``bin_output=1`` unless a later route/shortcut reads the layer); c % 32 == 0
  repacks the input, otherwise ``im2col_cpu_custom_bin``, which reads no input unless the
  kernel is 3x3/stride 1/padding 1;
* without it (the harness's forward mode, ``network_predict`` right after loading): the
  float path, defined only for one-filter xnor layers (with more, binarize_weights runs
  past its buffers).

The reference cfgs' weights are written by darknet_py (:func:`random_init`): the harness's
own random init runs a training forward, the undefined float path.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import darknet_py
from darknet_py import CfgError
from darknet_py.cfg import parse_cfg
from darknet_py.compare import compare_case, load_case, match_detections
from darknet_py.darknet import dump_case
from darknet_py.detect import do_nms_sort, get_network_boxes
from darknet_py.init import random_init
from darknet_py.model import Darknet
from darknet_py.train.engine import check_trainable

#: a linear conv first, so that the xnor layers see inputs of both signs; then xnor layers
#: with BN, groups, a 1x1 kernel, stride 2 and padding
CFG = """[net]
width=9
height=7
channels=3
batch=1

[convolutional]
filters=4
size=3
pad=1
activation=linear

[convolutional]
xnor=1
batch_normalize=1
filters=6
size=3
pad=1
activation=leaky

[convolutional]
xnor=1
filters=4
groups=2
size=3
stride=2
pad=1
activation=linear

[convolutional]
xnor=1
batch_normalize=1
filters=3
size=1
activation=linear
"""


def test_xnor_matches_pjreddie_darknet(darknet_pjreddie, tmp_path):
    cfg = tmp_path / "xnor.cfg"
    cfg.write_text(CFG)
    case = dump_case(darknet_pjreddie, cfg, mode="forward", seed=3, out_dir=tmp_path / "case")
    report = compare_case(case)
    print(report.summary() if hasattr(report, "summary") else report)
    assert report.ok, str(report)
    assert report.worst is not None and report.worst.max_rel < 1e-5


def test_xnor_by_hand():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = Darknet(parse_cfg("[net]\nwidth=2\nheight=1\nchannels=1\n"
                              "[convolutional]\nxnor=1\nfilters=2\nsize=1\nactivation=linear\n"),
                    "pjreddie").eval()
    conv = m.layers[0]
    with torch.no_grad():
        conv.weight.view(-1).copy_(torch.tensor([-0.5, 2.0]))  # filter means |w|: 0.5 and 2
        conv.bias.fill_(0.25)
        out = m(torch.tensor([[[[3.0, 0.0]]]])).flatten().tolist()
    # input -> +1, -1 (0 is not > 0); filter 0 weight -> -0.5, filter 1 -> +2
    assert out == pytest.approx([-0.5 + 0.25, 0.5 + 0.25, 2 + 0.25, -2 + 0.25])


#: AlexeyAB bit-packed path: c % 32 != 0 read by im2col_cpu_custom_bin (layer 1, groups=2
#: ignored as make_convolutional_layer does for xnor), layers that read no input (2: stride 2
#: on 40 channels; 3: 1x1 on 8, with bin_output), the repacked c % 32 == 0 path (4, 5:
#: stride 2), bin_output cleared by a [route] (4) and a [shortcut] (8: its from-layer, 9: the
#: layer before it; 11 keeps it), stride_x != stride_y (7: no binarization)
CFG_AB = """[net]
width=12
height=10
channels=3
batch=1

[convolutional]
filters=8
size=3
pad=1
activation=linear

[convolutional]
xnor=1
batch_normalize=1
groups=2
filters=40
size=3
pad=1
activation=leaky

[convolutional]
xnor=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[convolutional]
xnor=1
batch_normalize=1
bin_output=1
filters=32
size=1
activation=leaky

[convolutional]
xnor=1
bin_output=1
filters=32
size=3
pad=1
activation=leaky

[convolutional]
xnor=1
batch_normalize=1
filters=6
size=3
stride=2
pad=1
activation=linear

[route]
layers=-2

[convolutional]
xnor=1
batch_normalize=1
filters=4
size=3
stride_x=2
stride_y=1
pad=1
activation=leaky

[convolutional]
xnor=1
bin_output=1
filters=32
size=3
pad=1
activation=leaky

[convolutional]
xnor=1
bin_output=1
batch_normalize=1
filters=32
size=1
activation=leaky

[shortcut]
from=-2
activation=linear

[convolutional]
xnor=1
bin_output=1
filters=8
size=1
activation=leaky
"""

#: AlexeyAB float path: one filter per xnor layer (BN, stride 2, 1x1, bin_output unused)
CFG_AB_FLOAT = """[net]
width=9
height=7
channels=3
batch=1

[convolutional]
filters=4
size=3
pad=1
activation=linear

[convolutional]
xnor=1
batch_normalize=1
filters=1
size=3
pad=1
activation=leaky

[convolutional]
filters=3
size=1
activation=linear

[convolutional]
xnor=1
bin_output=1
filters=1
size=3
stride=2
pad=1
activation=leaky

[convolutional]
filters=2
size=1
activation=linear

[convolutional]
xnor=1
batch_normalize=1
filters=1
size=1
activation=linear
"""


def _quiet_load(cfg, weights=None) -> Darknet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the layers that read no input warn
        return darknet_py.load(cfg, weights, dialect="alexeyab")


def _weights(cfg: Path, seed: int, tame_heads: bool = False) -> Path:
    """darknet_py's seeded random weights for ``cfg``, written next to it. ``tame_heads``
    scales the layer before each head to outputs within +-1 (random ones give boxes many
    images wide, where 1e-4 absolute box agreement asks for more than float rounding)."""
    model = _quiet_load(cfg)
    random_init(model, seed=seed)
    if tame_heads:
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand((1,) + tuple(model.input_shape), generator=gen)
        with torch.no_grad():
            outs = model.layer_outputs(x)
            for i in model.heads:
                model.layers[i - 1].weight.mul_(1.0 / float(outs[i - 1].abs().max()))
    path = cfg.with_suffix(".weights")
    model.save_weights(path)
    return path


def _compare(case) -> "tuple[object, float]":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = compare_case(case)
    worst = max(report.rows, key=lambda row: row.max_rel)
    print(f"{case}: worst layer {worst.index} ({worst.kind}) {worst.max_rel:.2g}")
    return report, worst.max_rel


def test_xnor_alexeyab_bit_packed_matches_darknet(darknet_alexeyab, reference, tmp_path):
    cfg = tmp_path / "xnor_ab.cfg"
    cfg.write_text(CFG_AB)
    case = dump_case(darknet_alexeyab, cfg, _weights(cfg, seed=5), mode="detect",
                     image=reference / "images" / "dog.jpg", thresholds=[0.5],
                     out_dir=tmp_path / "case")
    report, worst = _compare(case)
    assert report.ok, str(report)
    assert len(report.rows) == 12 and worst < 1e-5
    # bin_output cleared by the [route] (4) and the [shortcut] (8, 9), kept (linear) on 3, 11
    model = _quiet_load(case / "xnor_ab.cfg", case / "xnor_ab.weights")
    assert [model.layers[i].bin_output for i in (3, 4, 8, 9, 11)] == [True, False, False,
                                                                      False, True]
    # and it shows: with bin_output kept, layers 4, 8 and 9 would not match Darknet's
    x = torch.from_numpy(np.load(case / "input.npy"))[None]
    for i in (4, 8, 9):
        model.layers[i].bin_output = True
    with torch.no_grad():
        outs = model.layer_outputs(x)
    for i in (4, 8, 9):
        ref = np.load(case / f"layer_{i:03d}.npy")
        assert np.abs(outs[i][0].numpy() - ref).max() > 1e-2 * np.abs(ref).max()


def test_xnor_alexeyab_float_path_matches_darknet(darknet_alexeyab, tmp_path):
    cfg = tmp_path / "xnor_ab_float.cfg"
    cfg.write_text(CFG_AB_FLOAT)
    case = dump_case(darknet_alexeyab, cfg, mode="forward", seed=3, out_dir=tmp_path / "case")
    report, worst = _compare(case)
    assert report.ok, str(report)
    assert len(report.rows) == 6 and worst < 1e-5
    # the same weights and input through the bit-packed path: padding -1, not 0
    model = _quiet_load(case / "xnor_ab_float.cfg", case / "weights.weights").eval()
    x = torch.from_numpy(np.load(case / "input.npy"))[None]
    with torch.no_grad():
        packed = model.layer_outputs(x)[1][0].numpy()
    ref = np.load(case / "layer_001.npy")
    assert np.abs(packed - ref).max() > 1e-2 * np.abs(ref).max()


#: AlexeyAB's four xnor cfgs at small input sizes: (path under cfg/alexeyab, size)
CORPUS = [("tiny-yolo_xnor.cfg", 96), ("yolov3-tiny_xnor.cfg", 64),
          ("yolov1/xyolo.test.cfg", 64),
          pytest.param("darknet53_448_xnor.cfg", 64, marks=pytest.mark.slow)]


@pytest.mark.parametrize("name,size", CORPUS)
def test_xnor_alexeyab_corpus_cfgs_match_darknet(darknet_alexeyab, reference, tmp_path, name, size):
    text = (reference / "cfg" / "alexeyab" / name).read_text()
    text = re.sub(r"(?m)^\s*width\s*=.*$", f"width={size}", text, count=1)
    text = re.sub(r"(?m)^\s*height\s*=.*$", f"height={size}", text, count=1)
    cfg = tmp_path / Path(name).name
    cfg.write_text(text)
    case = dump_case(darknet_alexeyab, cfg, _weights(cfg, seed=7, tame_heads=True), mode="detect",
                     image=reference / "images" / "dog.jpg", thresholds=[0.5, 0.005],
                     out_dir=tmp_path / "case")
    report, worst = _compare(case)
    assert all(row.ok for row in report.rows), str(report)
    assert worst < 1e-5
    pixel_boxes = "xyolo" in name  # [detection] decodes to pixels: compare relative boxes
    for check, ok, detail in report.checks:
        if not (pixel_boxes and check.startswith("detections")):
            assert ok, f"{check}: {detail}"
    if pixel_boxes:
        c = load_case(case)
        _, im_h, im_w = c.manifest["image_shape_chw"]
        model = _quiet_load(c.cfg, c.weights).eval()
        x = torch.from_numpy(np.load(case / "input.npy"))[None]
        with torch.no_grad():
            outs = model.layer_outputs(x)
        scale = np.array([im_w, im_h, im_w, im_h], dtype=np.float32)
        for t in (0.5, 0.005):
            dets = get_network_boxes(model, [outs[i][0] for i in model.heads], im_w, im_h, t,
                                     0.5, False)
            ours = do_nms_sort(dets, 0.45)[0].to_array()
            ref = np.load(case / f"dets_t{t:g}.npy")
            ours[:, :4] /= scale
            ref[:, :4] /= scale
            ok, detail = match_detections(ours, ref, t)
            assert ok, detail


def test_xnor_alexeyab_bit_packed_by_hand():
    """3x3 kernels on a 1x2 image of one channel (the im2col_cpu_custom_bin path): the
    padding counts as -1."""
    cfg = ("[net]\nwidth=2\nheight=1\nchannels=1\n[convolutional]\nxnor=1\nbin_output=1\n"
           "filters=2\nsize=3\npad=1\nactivation=leaky\n")
    model = Darknet(parse_cfg(cfg), "alexeyab").eval()
    conv = model.layers[0]
    with torch.no_grad():
        w0 = torch.full((3, 3), 0.5)
        w0[1, 1] = -0.5  # filter 0: mean |w| 0.5, signs + but the centre
        conv.weight[0, 0] = w0
        conv.weight[1, 0] = -2.0  # filter 1: mean |w| 2, signs all -
        conv.bias.fill_(0.25)
        out = model(torch.tensor([[[[3.0, -1.0]]]])).flatten().tolist()
    # signs of the padded input: centre pixel +1 at (0,0), everything else -1
    # filter 0, pixel 0: 8 x (+1 * -1) + (-1 * +1) = -9; pixel 1: left +1, centre +1, 7 x -1 = -5
    # filter 1, pixel 0 and 1: -(sum of the input signs) = -(8 x -1 + 1) = 7
    # bin_output=1: linear, not leaky
    assert out == pytest.approx([-9 * 0.5 + 0.25, -5 * 0.5 + 0.25, 7 * 2 + 0.25, 7 * 2 + 0.25])
    # Darknet's float path (no calculate_binary_weights) with 2 filters runs past its buffers
    model.calculate_binary_weights(False)
    with pytest.raises(CfgError, match="calculate_binary_weights"):
        model(torch.zeros(1, 1, 1, 2))


def test_xnor_alexeyab_blind_by_hand():
    """1x1 kernel on 1 channel: im2col_cpu_custom_bin leaves the input bits 0, every output
    is -mean|w| * sum(sign w) + bias whatever the input."""
    cfg = ("[net]\nwidth=3\nheight=1\nchannels=1\n[convolutional]\nxnor=1\n"
           "filters=1\nsize=1\nactivation=linear\n")
    with pytest.warns(UserWarning, match="no non-optimized version"):
        model = Darknet(parse_cfg(cfg), "alexeyab").eval()
    with torch.no_grad():
        model.layers[0].weight.fill_(0.5)
        model.layers[0].bias.fill_(0.25)
        out = model(torch.tensor([[[[3.0, -1.0, 0.0]]]])).flatten().tolist()
    assert out == [-0.5 + 0.25] * 3


def test_xnor_alexeyab_batchnorm_fused_as_darknet():
    """The bit-packed path binarizes the weights fuse_conv_batchnorm makes: fusing first
    changes none of its layers' outputs, to the bit (layer 7, a float convolution, moves
    by float rounding)."""
    cfg = parse_cfg(CFG_AB)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = random_init(Darknet(cfg, "alexeyab"), seed=2)
    x = torch.rand(2, 3, 10, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model.layer_outputs(x)
        after = model.fuse_batchnorm().layer_outputs(x)
    assert all(torch.equal(before[i], after[i]) for i in range(7))


def test_xnor_alexeyab_training_is_a_clear_error():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg(CFG_AB), "alexeyab")
    with pytest.raises(CfgError, match="layer 1: xnor=1 is not trainable"):
        check_trainable(model)
