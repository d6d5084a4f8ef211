"""AlexeyAB-only sections, each against a Python-loop transliteration of its C forward.

Every reference below walks the flat ``l.output`` / ``state.input`` buffers with
the index arithmetic of the AlexeyAB source it names, on tiny random tensors,
so a mismatch points at the exact C expression we got wrong.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from darknet_py import CfgError, Darknet
from darknet_py.cfg import parse_cfg
from darknet_py.layers import section_names
from darknet_c import reorg_cpu

AB_SECTIONS = ["sam", "scale_channels", "reorg3d", "empty", "silence", "local_avgpool",
               "local_avg", "implicit", "Gaussian_yolo", "contrastive"]


def net(text: str, dialect: str = "auto") -> Darknet:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every key in these cfgs must be read
        return Darknet(parse_cfg(text, "t.cfg"), dialect)


def head(w: int, h: int, c: int) -> str:
    return f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n"


def conv(filters: int, size: int = 1, activation: str = "linear") -> str:
    return (f"[convolutional]\nfilters={filters}\nsize={size}\npad=1\n"
            f"activation={activation}\n")


def outputs(model: Darknet, batch: int = 1, seed: int = 0):
    torch.manual_seed(seed)
    c, h, w = model.input_shape
    with torch.no_grad():
        return [o.clone() for o in model.layer_outputs(torch.randn(batch, c, h, w))]


def flat(t: torch.Tensor) -> list:
    return t.reshape(-1).tolist()


def f32(v: float) -> float:
    return float(np.float32(v))


def leaky(v: float) -> float:  # activations.h:leaky_activate, (x>0) ? x : .1*x in double
    return v if v > 0 else f32(0.1 * v)


def logistic(v: float) -> float:  # 1./(1. + exp(-x)), double, stored as float
    return f32(1.0 / (1.0 + math.exp(-v)))


def close(ours: torch.Tensor, ref: list, shape) -> None:
    torch.testing.assert_close(ours, torch.tensor(ref, dtype=torch.float32).view(shape),
                               rtol=2e-6, atol=2e-6)


def test_every_section_is_registered_and_alexeyab_only():
    names = section_names()
    for name in AB_SECTIONS:
        assert name in names
        cfg = head(4, 4, 2) + conv(2) + f"[{name}]\n"
        with pytest.raises(CfgError, match=r"t\.cfg:\d+: .*AlexeyAB-only"):
            Darknet(parse_cfg(cfg, "t.cfg"), "pjreddie", warn_unused=False)


# -- [sam] ---------------------------------------------------------------------------------
def test_sam_is_prev_times_from_then_activation():
    model = net(head(5, 3, 2) + conv(4) + conv(4, 3) + "[sam]\nfrom=-2\nactivation=leaky\n")
    assert model.dialect.name == "alexeyab"  # auto-detected from the section
    outs = outputs(model, batch=2)
    prev, frm = flat(outs[1]), flat(outs[0])
    # sam_layer.c:forward_sam_layer: l.output[i] = state.input[i] * from_output[i]; activate
    ref = [leaky(f32(prev[i] * frm[i])) for i in range(len(prev))]
    close(outs[2], ref, outs[2].shape)
    assert model.layers[2].refs == [0] and tuple(model.layers[2].out_shape) == (4, 3, 5)


@pytest.mark.parametrize("text, match", [
    (conv(4) + conv(3, 3) + "[sam]\nfrom=-2\n", r"t\.cfg:16: from: .*equal shapes"),
    (conv(4) + conv(4) + "[sam]\nfrom=-2,-1\n", r"t\.cfg:16: from: .*one layer"),
    (conv(4) + conv(4) + "[sam]\nfrom=-5\n", r"t\.cfg:16: from: .*refers to layer -5"),
    (conv(4) + conv(4) + "[sam]\nfrom=-2\nactivation=mish\n", r"t\.cfg:17: activation: .*outputs 0"),
    (conv(4) + conv(4) + "[sam]\n", r"t\.cfg:15: from: .*missing required key"),
])
def test_sam_errors(text, match):
    with pytest.raises(CfgError, match=match):
        net(head(4, 4, 3) + text)


# -- [scale_channels] ----------------------------------------------------------------------
def test_scale_channels_scales_each_channel_of_from():
    cfg = (head(4, 3, 2) + conv(3, 3) + "[avgpool]\n" + conv(3, 1, "logistic")
           + "[scale_channels]\nfrom=-3\n")
    model = net(cfg)
    outs = outputs(model, batch=2)
    prev, frm = flat(outs[2]), flat(outs[0])
    c, h, w = model.layers[3].out_shape
    channel_size = w * h
    # forward_scale_channels_layer: l.output[i] = state.input[i / channel_size] * from_output[i]
    ref = [f32(prev[i // channel_size] * frm[i]) for i in range(2 * c * h * w)]
    close(outs[3], ref, outs[3].shape)
    assert (c, h, w) == (3, 3, 4)


def test_scale_channels_scale_wh_scales_every_channel_by_a_map():
    cfg = head(4, 3, 2) + conv(3, 3) + conv(1, 1, "logistic") + "[scale_channels]\nfrom=-2\nscale_wh=1\nactivation=relu\n"
    model = net(cfg)
    outs = outputs(model, batch=2)
    prev, frm = flat(outs[1]), flat(outs[0])
    c, h, w = model.layers[2].out_shape
    channel_size, batch_size = w * h, c * w * h
    ref = []
    for i in range(2 * c * h * w):
        input_index = i % channel_size + (i // batch_size) * channel_size
        ref.append(max(f32(prev[input_index] * frm[i]), 0.0))
    close(outs[2], ref, outs[2].shape)


@pytest.mark.parametrize("text, match", [
    (conv(3) + conv(3) + "[scale_channels]\nfrom=-2\n", r"t\.cfg:16: from: .*must be 3x1x1"),
    (conv(3) + "[avgpool]\n" + conv(2) + "[scale_channels]\nfrom=-3\n", r"t\.cfg:\d+: from: .*must be 3x1x1"),
    (conv(3) + conv(2) + "[scale_channels]\nfrom=-2\nscale_wh=1\n", r"t\.cfg:17: scale_wh: .*1x4x4"),
    (conv(3) + "[avgpool]\n" + "[scale_channels]\nfrom=-2\nactivation=swish\n", r"activation: .*outputs 0"),
])
def test_scale_channels_errors(text, match):
    with pytest.raises(CfgError, match=match):
        net(head(4, 4, 3) + text)


# -- [reorg3d] -----------------------------------------------------------------------------
def reorg3d_reference(x: torch.Tensor, stride: int, reverse: int, out_shape) -> list:
    """reorg_layer.c:forward_reorg_layer: reorg_cpu(input, l.out_w, l.out_h, l.out_c, ...)."""
    c, h, w = out_shape
    batch = x.shape[0]
    out = [float("nan")] * (batch * c * h * w)
    reorg_cpu(flat(x), w, h, c, batch, stride, 1 if reverse else 0, out)
    return out


@pytest.mark.parametrize("w, h, c, stride, batch", [
    (4, 4, 3, 2, 2), (6, 3, 2, 3, 1), (4, 2, 1, 2, 1),
    (5, 7, 2, 2, 1),  # sizes not divisible by stride: Darknet reads the input as (c, 6, 4)
])
def test_reorg3d_forward_matches_reorg_cpu(w, h, c, stride, batch):
    model = net(head(w, h, c) + f"[reorg3d]\nstride={stride}\n")
    x = torch.arange(batch * c * h * w, dtype=torch.float32).view(batch, c, h, w)
    out = model(x)
    assert tuple(model.layers[0].out_shape) == (c * stride * stride, h // stride, w // stride)
    assert flat(out) == reorg3d_reference(x, stride, 0, model.layers[0].out_shape)


def test_reorg3d_is_not_reorg_old_permutation():
    # channel k of the output takes phase (k / c) of input channel k % c: with 2 input channels
    # the 4 phases of channel 0 land on channels 0, 2, 4, 6 (the old [reorg] puts them on 0..3)
    model = net(head(2, 2, 2) + "[reorg3d]\nstride=2\n")
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]]])
    assert flat(model(x)) == [1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0]


@pytest.mark.parametrize("w, h, c, stride, batch", [(2, 3, 16, 2, 2), (1, 2, 81, 3, 1),
                                                    (2, 2, 18, 2, 1)])
def test_reorg3d_reverse_matches_reorg_cpu(w, h, c, stride, batch):
    model = net(head(w, h, c) + f"[reorg3d]\nstride={stride}\nreverse=1\n")
    x = torch.arange(batch * c * h * w, dtype=torch.float32).view(batch, c, h, w)
    out = model(x)
    assert tuple(model.layers[0].out_shape) == (c // stride ** 2, h * stride, w * stride)
    if c % stride ** 2 == 0:  # else Darknet's batch offsets differ; darknet_py is per image
        assert flat(out) == reorg3d_reference(x, stride, 1, model.layers[0].out_shape)
    else:
        assert batch == 1 and flat(out) == reorg3d_reference(x, stride, 1, model.layers[0].out_shape)


@pytest.mark.parametrize("text, match", [
    ("[reorg3d]\nstride=2\nreverse=1\n", r"t\.cfg:7: reverse: .*stride\^4"),
    ("[reorg3d]\nstride=0\n", r"t\.cfg:6: stride"),
    ("[reorg3d]\nstride=8\n", r"t\.cfg:5: .*output shape would be 512x0x0"),
])
def test_reorg3d_errors(text, match):
    with pytest.raises(CfgError, match=match):
        net(head(4, 4, 8) + text)


# -- [empty] / [silence] -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["empty", "silence"])
def test_empty_and_silence_pass_the_previous_output_through(name):
    model = net(head(3, 2, 2) + conv(3, 3) + f"[{name}]\n" + conv(2))
    outs = outputs(model)
    assert torch.equal(outs[1], outs[0]) and outs[1].abs().sum() > 0
    assert tuple(model.layers[1].out_shape) == (3, 2, 3)


def test_empty_cannot_be_the_first_layer():
    with pytest.raises(CfgError, match=r"t\.cfg:5: .*first layer"):
        net(head(3, 2, 2) + "[empty]\n")


# -- [local_avgpool] -----------------------------------------------------------------------
def local_avgpool_reference(x: list, batch, c, h_in, w_in, out_h, out_w, size, stride_x,
                            stride_y, pad) -> list:
    """maxpool_layer.c:forward_local_avgpool_layer, loop for loop."""
    w_offset = -(pad // 2)  # C's -l.pad / 2 truncates toward zero
    h_offset = -(pad // 2)
    out = [0.0] * (batch * c * out_h * out_w)
    for b in range(batch):
        for k in range(c):
            for i in range(out_h):
                for j in range(out_w):
                    out_index = j + out_w * (i + out_h * (k + c * b))
                    avg, counter = np.float32(0), 0
                    for n in range(size):
                        for m in range(size):
                            cur_h = h_offset + i * stride_y + n
                            cur_w = w_offset + j * stride_x + m
                            index = cur_w + w_in * (cur_h + h_in * (k + b * c))
                            if 0 <= cur_h < h_in and 0 <= cur_w < w_in:
                                counter += 1
                                avg = np.float32(avg + np.float32(x[index]))
                    out[out_index] = float(avg / np.float32(counter))
    return out


@pytest.mark.parametrize("w, h, options", [
    (5, 4, "size=2\nstride=1\n"),               # padding 1: last row/column average only themselves
    (7, 5, "size=3\nstride=2\n"),               # padding 2, offset -1
    (10, 9, "size=4\nstride=4\n"),              # yolov4-tiny_contrastive's layer
    (6, 5, "size=3\nstride=1\nstride_x=2\n"),   # stride_x != stride_y
    (6, 6, "size=3\nstride=3\npadding=0\n"),
    (5, 5, "size=3\nstride=1\npadding=4\n"),    # windows partly off both sides
])
def test_local_avgpool_matches_the_c_loop(w, h, options):
    model = net(head(w, h, 2) + conv(3, 3) + "[local_avgpool]\n" + options)
    outs = outputs(model, batch=2)
    layer = model.layers[1]
    o = layer.opts
    c, out_h, out_w = layer.out_shape
    assert out_h == (h + o.padding - o.size) // o.stride_y + 1
    assert out_w == (w + o.padding - o.size) // o.stride_x + 1
    ref = local_avgpool_reference(flat(outs[0]), 2, c, h, w, out_h, out_w, o.size, o.stride_x,
                                  o.stride_y, o.padding)
    close(outs[1], ref, outs[1].shape)


def test_local_avgpool_excludes_padding_from_the_count():
    model = net(head(3, 1, 1) + "[local_avg]\nsize=3\nstride=1\n")  # padding 2, offset -1
    assert flat(model(torch.tensor([[[[3.0, 6.0, 9.0]]]]))) == [4.5, 6.0, 7.5]


@pytest.mark.parametrize("text, match", [
    ("[local_avgpool]\nsize=0\nstride=1\n", r"t\.cfg:6: size"),
    ("[local_avgpool]\nstride=0\n", r"t\.cfg:6: stride"),
    ("[local_avgpool]\nsize=9\nstride=1\npadding=0\n", r"t\.cfg:6: size: .*does not fit"),
    ("[local_avgpool]\nsize=2\npadding=-1\n", r"t\.cfg:7: padding"),
])
def test_local_avgpool_errors(text, match):
    with pytest.raises(CfgError, match=match):
        net(head(4, 4, 1) + text)


# -- [implicit] ----------------------------------------------------------------------------
def test_implicit_outputs_its_weights_for_every_image():
    model = net(head(4, 4, 3) + "[implicit]\nfilters=5\natoms=2\nmean=1.0\nstd=0.25\n")
    layer = model.layers[0]
    assert tuple(layer.out_shape) == (5, 2, 1)  # out_c=filters, out_h=atoms, out_w=1
    w = flat(layer.weight)
    assert all(0.75 <= v <= 1.25 for v in w)  # mean + rand_uniform(-std, std)
    out = model(torch.randn(3, 3, 4, 4))
    # forward_implicit_layer: l.output[i] = l.weights[i % l.nweights]
    assert flat(out) == [w[i % len(w)] for i in range(3 * len(w))]


def test_implicit_weights_are_saved_and_loaded_after_the_conv_weights(tmp_path):
    cfg = head(4, 4, 3) + conv(2) + "[implicit]\nfilters=3\natoms=2\n" + "[implicit]\nfilters=4\n"
    model = net(cfg)
    path = tmp_path / "i.weights"
    model.save_weights(path)
    body = np.fromfile(path, dtype=np.float32, offset=20)  # int32 x3 + uint64 seen
    conv_floats = [model.layers[0].bias, model.layers[0].weight]
    expected = np.concatenate([t.detach().numpy().ravel() for t in conv_floats]
                              + [model.layers[1].weight.detach().numpy().ravel(),
                                 model.layers[2].weight.detach().numpy().ravel()])
    assert np.array_equal(body, expected) and body.size == 2 + 2 * 3 + 6 + 4
    other = net(cfg)
    other.load_weights(path)
    assert torch.equal(other.layers[1].weight, model.layers[1].weight)
    assert torch.equal(other.layers[2].weight, model.layers[2].weight)


@pytest.mark.parametrize("text, match", [
    ("[implicit]\nfilters=0\n", r"t\.cfg:6: filters"),
    ("[implicit]\natoms=-1\n", r"t\.cfg:6: atoms"),
])
def test_implicit_errors(text, match):
    with pytest.raises(CfgError, match=match):
        net(head(4, 4, 1) + text)


# -- [Gaussian_yolo] -----------------------------------------------------------------------
def gaussian_yolo_reference(x: list, batch: int, n_anchors: int, classes: int, h: int, w: int,
                            scale_x_y: float) -> list:
    """gaussian_yolo_layer.c:forward_gaussian_yolo_layer (CPU branch), loop for loop."""
    outputs_per_image = h * w * n_anchors * (classes + 8 + 1)
    out = list(x)  # memcpy(l.output, state.input, ...)

    def entry_index(b, location, entry):  # entry_gaussian_index
        n, loc = location // (w * h), location % (w * h)
        return b * outputs_per_image + n * w * h * (8 + classes + 1) + entry * w * h + loc

    def activate(index, count):
        for i in range(index, index + count):
            out[i] = logistic(out[i])

    alpha = np.float32(scale_x_y)
    beta = np.float32(-0.5 * (float(alpha) - 1))

    def scal_add(index, count):  # X = X*ALPHA + BETA, float
        for i in range(index, index + count):
            out[i] = float(np.float32(np.float32(out[i]) * alpha) + beta)

    for b in range(batch):
        for n in range(n_anchors):
            index = entry_index(b, n * w * h, 0)
            activate(index, 2 * w * h)
            scal_add(index, w * h)
            index = entry_index(b, n * w * h, 2)
            activate(index, 2 * w * h)
            scal_add(index, w * h)
            activate(entry_index(b, n * w * h, 5), w * h)
            activate(entry_index(b, n * w * h, 7), w * h)
            activate(entry_index(b, n * w * h, 8), (1 + classes) * w * h)
    return out


@pytest.mark.parametrize("scale", [1.0, 1.1])
def test_gaussian_yolo_activations_match_the_c_loop(scale):
    classes, mask = 3, "0,2"
    cfg = (head(5, 4, 3) + conv(2 * (9 + classes), 3)
           + f"[Gaussian_yolo]\nclasses={classes}\nnum=3\nmask={mask}\n"
           + f"anchors=1,2,3,4,5,6\nscale_x_y={scale}\n")
    model = net(cfg)
    outs = outputs(model, batch=2)
    ref = gaussian_yolo_reference(flat(outs[0]), 2, 2, classes, 4, 5, scale)
    close(outs[1], ref, outs[1].shape)
    layer = model.layers[1]
    assert layer.anchors_wh == [(1.0, 2.0), (5.0, 6.0)] and layer.classes == classes
    assert model.heads == [1] and isinstance(model(torch.zeros(1, 3, 4, 5)), list)


def test_gaussian_yolo_defaults_and_attributes():
    model = net(head(2, 2, 1) + conv(10) + "[Gaussian_yolo]\nclasses=1\nyolo_point=left_top\n")
    layer = model.layers[1]
    assert layer.mask == [0] and layer.anchors == [0.5, 0.5]  # make_gaussian_yolo_layer's .5
    assert layer.yolo_point == "left_top" and layer.opts.max == 200 and layer.entries == 10


@pytest.mark.parametrize("text, match", [
    (conv(20) + "[Gaussian_yolo]\nclasses=2\n", r"t\.cfg:\d+: classes: .*needs 11"),
    (conv(11) + "[Gaussian_yolo]\nclasses=2\nnum=2\nmask=2\n", r"mask: .*outside 0\.\.1"),
    (conv(11) + "[Gaussian_yolo]\nclasses=2\nanchors=1,2,3,4\n", r"anchors: .*write past"),
    (conv(11) + "[Gaussian_yolo]\nclasses=2\nnum=0\n", r"t\.cfg:\d+: .*num must be >= 1"),
])
def test_gaussian_yolo_errors(text, match):
    with pytest.raises(CfgError, match=match):
        net(head(4, 4, 1) + text)


# -- [contrastive] -------------------------------------------------------------------------
def contrastive_cfg(yolo_extra: str = "embedding_layer=-2\n",
                    contrastive: str = "yolo_layer=-2\n", route: int = -3) -> str:
    return (head(4, 4, 3) + conv(8) + conv(12) + "[yolo]\nclasses=1\nnum=2\n" + yolo_extra
            + f"[route]\nlayers={route}\n" + "[contrastive]\n" + contrastive)


def test_contrastive_outputs_zeros_at_inference():
    model = net(contrastive_cfg())
    outs = outputs(model)
    # forward_contrastive_layer returns before touching the calloc'ed l.output
    assert outs[-1].shape == outs[-2].shape and not outs[-1].any()
    assert model.layers[-1].embedding_size == 4 and model.layers[-1].yolo_layer == 2


@pytest.mark.parametrize("yolo_extra, contrastive, route, match", [
    ("embedding_layer=-2\n", "classes=3\n", -3, r"yolo_layer: .*0, the default"),
    ("embedding_layer=-2\n", "yolo_layer=-1\n", -3, r"yolo_layer: .*\[route\], not a \[yolo\]"),
    ("", "yolo_layer=-2\n", -3, r"yolo_layer: .*no embedding_layer"),
    # the input is the 12-filter conv (6 per anchor), the embedding layer has 8 (4 per anchor)
    ("embedding_layer=-2\n", "yolo_layer=-2\n", -2, r"yolo_layer: .*x 6, but .*embedding size 4"),
])
def test_contrastive_errors(yolo_extra, contrastive, route, match):
    with pytest.raises(CfgError, match=r"t\.cfg:\d+: " + match):
        Darknet(parse_cfg(contrastive_cfg(yolo_extra, contrastive, route), "t.cfg"),
                warn_unused=False)


# -- [maxpool] maxpool_depth=1 ---------------------------------------------------------------
@pytest.mark.parametrize("c, out_channels", [(6, 2), (7, 3), (2, 4)])
def test_maxpool_depth_takes_the_max_over_strided_channel_groups(c, out_channels):
    model = net(head(3, 2, 2) + conv(c, 3) + f"[maxpool]\nmaxpool_depth=1\nout_channels={out_channels}\n"
                + "size=2\nstride=2\n")
    outs = outputs(model, batch=2)
    layer = model.layers[1]
    assert tuple(layer.out_shape) == (out_channels, 2, 3)  # size/stride do not apply
    x, h, w = flat(outs[0]), 2, 3
    # maxpool_layer.c:forward_maxpool_layer, the l.maxpool_depth branch
    ref = [0.0] * (2 * out_channels * h * w)
    for b in range(2):
        for i in range(h):
            for j in range(w):
                for g in range(out_channels):
                    out_index = j + w * (i + h * (g + out_channels * b))
                    best = -3.4028234663852886e38
                    for k in range(g, c, out_channels):
                        val = x[j + w * (i + h * (k + c * b))]
                        best = val if val > best else best
                    ref[out_index] = best
    assert flat(outs[1]) == ref


def test_maxpool_depth_is_alexeyab_only():
    cfg = head(3, 2, 2) + conv(4) + "[maxpool]\nmaxpool_depth=1\nout_channels=2\n"
    assert net(cfg).dialect.name == "alexeyab"  # auto-detected from the key
    with pytest.warns(Warning, match="maxpool_depth"):  # pjreddie does not read it
        model = Darknet(parse_cfg(cfg, "t.cfg"), "pjreddie")
    assert tuple(model.layers[1].out_shape) == (4, 2, 3)
    with pytest.raises(CfgError, match=r"t\.cfg:12: out_channels"):
        net(cfg.replace("out_channels=2", "out_channels=0"))


def test_batchnorm_section_stores_and_adds_biases(tmp_path):
    # AlexeyAB's load_batchnorm_weights reads biases, scales, rolling_mean, rolling_variance
    # (l.c each) and forward_batchnorm_layer adds the biases; pjreddie reads no biases.
    # Found by the differential run against the real Darknet (tests/test_diff_darknet.py).
    text = head(3, 2, 2) + "[batchnorm]\n"
    ab, pj = net(text, "alexeyab"), net(text, "pjreddie")
    assert ab.layers[0].weight_count() == 8 and pj.layers[0].weight_count() == 6
    header = np.array([0, 2, 5], np.int32).tobytes() + np.zeros(1, np.uint64).tobytes()
    body = np.array([1, 2, 3, 4, 0, 0, 1, 1], np.float32)  # biases, scales, means, variances
    path = tmp_path / "bn.weights"
    path.write_bytes(header + body.tobytes())
    ab.load_weights(path)
    x = torch.rand(1, 2, 2, 3)
    want = torch.cat([(x[:, :1] / math.sqrt(1 + 1e-5)) * 3 + 1, (x[:, 1:] / math.sqrt(1 + 1e-5)) * 4 + 2], 1)
    with torch.no_grad():
        assert torch.allclose(ab.eval()(x), want, atol=1e-6)
