"""pjreddie-dialect sections, each against a Python-loop transliteration of its C forward.

Every reference walks the flat ``net.input`` / ``l.output`` buffers with the
index arithmetic of the Darknet function it names (``region_layer.c``,
``blas.c:reorg_cpu``, ``im2col``/``col2im``, ...), on tiny random tensors, so
a mismatch points at the C expression we got wrong. Float math is done in
float32 numpy where Darknet's order matters (l2norm, lrn) and compared with a
tight tolerance elsewhere.
"""
from __future__ import annotations

import math
import struct
import warnings

import numpy as np
import pytest
import torch

from darknet_py import CfgError, Darknet
from darknet_py.cfg import parse_cfg
from darknet_py.errors import CfgWarning
from darknet_py.layers import section_names
from darknet_c import reorg_cpu

PJ_SECTIONS = ["region", "reorg", "connected", "conn", "local", "crop", "cost", "activation",
               "logistic", "l2norm", "normalization", "lrn", "deconvolutional", "deconv",
               "detection"]


def net(text: str, dialect: str = "auto") -> Darknet:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every key in these cfgs must be read
        return Darknet(parse_cfg(text, "t.cfg"), dialect)


def head(w: int, h: int, c: int) -> str:
    return f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n"


def run(model: Darknet, batch: int = 2, seed: int = 0, scale: float = 2.0):
    """(input, every layer's output) for a random input."""
    torch.manual_seed(seed)
    c, h, w = model.input_shape
    x = torch.randn(batch, c, h, w) * scale
    with torch.no_grad():
        return x, [o.clone() for o in model.layer_outputs(x)]


def flat(t: torch.Tensor) -> list:
    return t.reshape(-1).tolist()


def logistic(v: float) -> float:  # activations.h: 1./(1. + exp(-x))
    return 1.0 / (1.0 + math.exp(-v))


def softmax_c(buf: list, start: int, n: int, stride: int) -> None:
    """blas.c:softmax(input + start, n, temp=1, stride, output + start), in place."""
    vals = [buf[start + i * stride] for i in range(n)]
    largest = max(vals)
    e = [math.exp(v - largest) for v in vals]
    total = sum(e)
    for i in range(n):
        buf[start + i * stride] = e[i] / total


def close(got: torch.Tensor, want: list, tol: float = 2e-6) -> None:
    np.testing.assert_allclose(np.asarray(flat(got)), np.asarray(want), rtol=tol, atol=tol)


def expect_error(text: str, *fragments: str, dialect: str = "auto") -> str:
    with pytest.raises(CfgError) as info:
        net(text, dialect)
    message = str(info.value)
    assert "\n" not in message and message.startswith("t.cfg:")
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_every_section_is_registered():
    names = section_names()
    assert all(s in names for s in PJ_SECTIONS)


# -- [region] -------------------------------------------------------------------------
def region_reference(x: torch.Tensor, n: int, coords: int, classes: int, softmax: bool,
                     background: bool) -> list:
    """region_layer.c:forward_region_layer (pjreddie, CPU) on the flat input."""
    batch, _, h, w = x.shape
    inp = flat(x)
    out = list(inp)
    outputs = h * w * n * (coords + classes + 1)

    def entry_index(b, location, entry):
        a, loc = divmod(location, w * h)
        return b * outputs + a * w * h * (coords + classes + 1) + entry * w * h + loc

    for b in range(batch):
        for a in range(n):
            i0 = entry_index(b, a * w * h, 0)
            for k in range(2 * w * h):
                out[i0 + k] = logistic(out[i0 + k])
            i0 = entry_index(b, a * w * h, coords)
            if not background:
                for k in range(w * h):
                    out[i0 + k] = logistic(out[i0 + k])
            i0 = entry_index(b, a * w * h, coords + 1)
            if not softmax:
                for k in range(classes * w * h):
                    out[i0 + k] = logistic(out[i0 + k])
    if softmax:
        # softmax_cpu(net.input + index, classes + background, batch*n, inputs/n, w*h, 1, w*h)
        index = entry_index(0, 0, coords + (0 if background else 1))
        soft = list(inp)
        for bb in range(batch * n):
            for g in range(w * h):
                softmax_c(soft, index + bb * (outputs // n) + g, classes + int(background), w * h)
        for bb in range(batch * n):
            for g in range(w * h):
                for k in range(classes + int(background)):
                    i = index + bb * (outputs // n) + g + k * w * h
                    out[i] = soft[i]
    return out


@pytest.mark.parametrize("softmax,background,coords", [(1, 0, 4), (0, 0, 4), (1, 1, 4),
                                                       (0, 1, 5), (1, 0, 2)])
def test_region_matches_forward_region_layer(softmax, background, coords):
    n, classes = 3, 4
    c = n * (coords + classes + 1)
    model = net(head(3, 2, c) + f"[region]\ncoords={coords}\nclasses={classes}\nnum={n}\n"
                f"softmax={softmax}\nbackground={background}\n"
                f"anchors=1,2,3,4,5,6\n")
    x, (out,) = run(model)
    close(out, region_reference(x, n, coords, classes, bool(softmax), bool(background)))
    layer = model.layers[0]
    assert layer.anchors_wh == [(1.0, 2.0), (3.0, 4.0), (5.0, 6.0)]
    assert (layer.num, layer.classes, layer.coords) == (n, classes, coords)
    assert torch.equal(layer.entries(out), out.view(2, n, coords + classes + 1, 2, 3))


@pytest.mark.parametrize("softmax", [1, 0])
def test_region_alexeyab_flattens_and_activates_entry_4_and_5(softmax):
    n, coords, classes = 2, 4, 3
    c = n * (coords + classes + 1)
    text = (head(2, 2, c) + f"[region]\ncoords={coords}\nclasses={classes}\nnum={n}\n"
            f"softmax={softmax}\n")
    model = net(text, "alexeyab")
    x, (out,) = run(model)
    size, hw, batch = coords + classes + 1, 4, x.shape[0]
    inp = flat(x)
    # blas.c:flatten(l.output, w*h, size*n, batch, 1): swap[b*L*S + i*L + c] = x[b*L*S + c*S + i]
    want = [0.0] * len(inp)
    for b in range(batch):
        for ch in range(size * n):
            for i in range(hw):
                want[b * size * n * hw + i * size * n + ch] = inp[b * size * n * hw + ch * hw + i]
    for b in range(batch):
        for i in range(hw * n):
            index = size * i + b * c * hw
            want[index + 4] = logistic(want[index + 4])
            if softmax:  # otherwise the classes stay raw
                softmax_c(want, index + 5, classes, 1)
    close(out, want)
    layer = model.layers[0]
    assert layer.cell_major and not layer.xy_activated
    # entries(): back to [anchor][entry][cell] with x, y through the logistic
    ent = layer.entries(out)
    pj = net(head(2, 2, c) + f"[region]\ncoords={coords}\nclasses={classes}\nnum={n}\n"
             f"softmax=1\n", "pjreddie")
    if softmax:  # same values as pjreddie's layout
        with torch.no_grad():
            close(ent, flat(pj(x)[0]))


def test_region_errors():
    bad = head(1, 1, 26) + "[region]\n"
    expect_error(bad, "26 channels", "needs 25", "classes")
    msg = expect_error(head(1, 1, 25) + "[region]\nnum=1\ntree=data/no-such.tree\n", "tree",
                       "not found")
    assert msg.startswith("t.cfg:7: tree:")
    expect_error(head(1, 1, 25) + "[region]\nnum=1\nanchors=1,2,3,4\n", "anchors")
    expect_error(head(1, 1, 25) + "[region]\nnum=0\n", "num")
    expect_error(head(1, 1, 8) + "[region]\ncoords=2\nclasses=5\n", "coords", "AlexeyAB",
                 dialect="alexeyab")


def test_region_missing_anchors_default_to_half():
    model = net(head(1, 1, 50) + "[region]\nnum=2\nanchors=3,4\n")
    assert model.layers[0].anchors == [3.0, 4.0, 0.5, 0.5]


# -- [reorg] --------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["pjreddie", "alexeyab"])
@pytest.mark.parametrize("stride", [2, 3])
def test_reorg_matches_reorg_cpu_with_input_dims(stride, dialect):
    c, h, w = 2 * stride * stride, 2 * stride, 3 * stride
    model = net(head(w, h, c) + f"[reorg]\nstride={stride}\n", dialect)
    assert tuple(model.layers[0].out_shape) == (c * stride * stride, h // stride, w // stride)
    x, (out,) = run(model)
    assert flat(out) == reorg_cpu(flat(x), w, h, c, 2, stride, False)


def test_reorg_reverse_matches_reorg_cpu_forward():
    c, h, w, s = 8, 3, 2, 2
    model = net(head(w, h, c) + f"[reorg]\nstride={s}\nreverse=1\n")
    assert tuple(model.layers[0].out_shape) == (c // 4, h * s, w * s)
    x, (out,) = run(model)
    assert flat(out) == reorg_cpu(flat(x), w, h, c, 2, s, True)


def test_reorg_yolov2_passthrough_shape():
    model = net(head(26, 26, 64) + "[reorg]\nstride=2\n")
    assert tuple(model.layers[0].out_shape) == (256, 13, 13)


@pytest.mark.parametrize("reverse", [0, 1])
def test_reorg_flatten_matches_blas_flatten(reverse):
    c, h, w = 3, 2, 2
    model = net(head(w, h, c) + f"[reorg]\nflatten=1\nreverse={reverse}\n")
    x, (out,) = run(model)
    inp, size, layers = flat(x), h * w, c
    want = [0.0] * len(inp)
    for b in range(2):
        for ch in range(layers):
            for i in range(size):
                i1 = b * layers * size + ch * size + i
                i2 = b * layers * size + i * layers + ch
                if reverse:
                    want[i1] = inp[i2]
                else:
                    want[i2] = inp[i1]
    assert flat(out) == want


def test_reorg_extra_appends_zeros_then_softmax():
    model = net(head(2, 2, 1) + "[reorg]\nextra=1\nstride=1\n[softmax]\n")
    assert tuple(model.layers[0].out_shape) == (5, 1, 1)
    x, (padded, soft) = run(model)
    assert flat(padded) == [v for b in range(2) for v in flat(x[b]) + [0.0]]
    assert soft.shape == (2, 5)


def test_reorg_errors():
    expect_error(head(5, 4, 4) + "[reorg]\nstride=2\n", "not divisible by stride=2", "stride")
    expect_error(head(4, 4, 6) + "[reorg]\nstride=2\n", "6 channels", "stride")
    expect_error(head(4, 4, 6) + "[reorg]\nstride=2\nreverse=1\n", "stride")
    expect_error(head(4, 4, 4) + "[reorg]\nstride=0\n", "stride")
    expect_error(head(4, 4, 4) + "[reorg]\nextra=1\nflatten=1\n", "flatten")


# -- [connected] ----------------------------------------------------------------------
def _bn_pj(v, mean, var, scale):  # normalize_cpu (pjreddie), scale_bias
    return (v - mean) / (math.sqrt(var) + 1e-6) * scale


def _bn_ab(v, mean, var, scale):  # normalize_cpu (AlexeyAB)
    return (v - mean) / math.sqrt(var + 1e-5) * scale


@pytest.mark.parametrize("bn,dialect", [(0, "pjreddie"), (1, "pjreddie"), (1, "alexeyab")])
def test_connected_matches_gemm_bn_activation(bn, dialect):
    model = net(head(3, 2, 2) + f"[conn]\noutput=5\nactivation=leaky\nbatch_normalize={bn}\n",
                dialect)
    layer = model.layers[0]
    torch.manual_seed(1)
    with torch.no_grad():
        layer.bias.uniform_(-1, 1)
        if bn:
            layer.bn.scales.uniform_(0.5, 2)
            layer.bn.rolling_mean.uniform_(-1, 1)
            layer.bn.rolling_variance.uniform_(0.1, 2)
    x, (out,) = run(model)
    assert out.shape == (2, 5)  # flat, like softmax
    inp, wts = flat(x), flat(layer.weight)
    want = []
    for b in range(2):
        for o in range(5):
            v = sum(inp[b * 12 + k] * wts[o * 12 + k] for k in range(12))
            if bn:
                f = _bn_pj if dialect == "pjreddie" else _bn_ab
                v = f(v, layer.bn.rolling_mean[o].item(), layer.bn.rolling_variance[o].item(),
                      layer.bn.scales[o].item())
            v += layer.bias[o].item()
            want.append(v if v > 0 else 0.1 * v)
    close(out, want, 1e-5)


def _weights_file(path, floats, major=0, minor=2):
    header = struct.pack("<iiiQ", major, minor, 0, 7) if major < 1000 and minor < 1000 \
        else struct.pack("<iiiI", major, minor, 0, 7)
    path.write_bytes(header + np.asarray(floats, dtype="<f4").tobytes())


def test_connected_weights_order_bias_weights_then_bn(tmp_path):
    model = net(head(1, 1, 3) + "[connected]\noutput=2\nbatch_normalize=1\n")
    layer = model.layers[0]
    floats = list(range(2 + 6 + 6))
    _weights_file(tmp_path / "c.weights", floats)
    model.load_weights(tmp_path / "c.weights")
    assert flat(layer.bias) == [0, 1]
    assert layer.weight.tolist() == [[2, 3, 4], [5, 6, 7]]  # [outputs][inputs]
    assert flat(layer.bn.scales) == [8, 9]
    assert flat(layer.bn.rolling_mean) == [10, 11]
    assert flat(layer.bn.rolling_variance) == [12, 13]


def test_connected_transposed_file_loads_and_saves_byte_for_byte(tmp_path):
    model = net(head(1, 1, 3) + "[connected]\noutput=2\n")
    floats = [0.5, -0.5] + list(range(6))  # weights stored [inputs][outputs]
    src = tmp_path / "t.weights"
    _weights_file(src, floats, major=1001, minor=0)
    model.load_weights(src)
    # parser.c:transpose_matrix(l.weights, l.inputs, l.outputs)
    assert model.layers[0].weight.tolist() == [[0, 2, 4], [1, 3, 5]]
    dst = tmp_path / "u.weights"
    model.save_weights(dst)
    assert dst.read_bytes() == src.read_bytes()
    # a plain file afterwards is read untransposed again
    _weights_file(src, floats)
    model.load_weights(src)
    assert model.layers[0].weight.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_connected_errors():
    expect_error(head(1, 1, 3) + "[connected]\noutput=0\n", "output")
    expect_error(head(1, 1, 3) + "[connected]\noutput=2\nactivation=nope\n", "activation")


# -- [local] --------------------------------------------------------------------------
def im2col_get(x, c, h, w, row, col, ch, pad):
    row -= pad
    col -= pad
    if row < 0 or col < 0 or row >= h or col >= w:
        return 0.0
    return x[col + w * (row + h * ch)]


@pytest.mark.parametrize("size,stride,pad", [(3, 1, 1), (3, 2, 0), (2, 1, 0), (1, 2, 0)])
def test_local_matches_im2col_and_per_location_gemm(size, stride, pad):
    c, h, w, n = 2, 5, 4, 3
    model = net(head(w, h, c) + f"[local]\nfilters={n}\nsize={size}\nstride={stride}\n"
                f"pad={pad}\nactivation=linear\n")
    layer = model.layers[0]
    with torch.no_grad():
        layer.bias.uniform_(-1, 1)
    x, (out,) = run(model)
    _, oh, ow = layer.out_shape
    assert oh == ((h - size) if not pad else (h - 1)) // stride + 1
    locations, k = oh * ow, c * size * size
    wts, bias = flat(layer.weight), flat(layer.bias)
    want = []
    for b in range(2):
        inp = flat(x[b])
        # im2col_cpu: rows c_col = (ch*size + kh)*size + kw, columns = output positions
        cols = [[0.0] * locations for _ in range(k)]
        for cc in range(k):
            kw, kh, ch = cc % size, (cc // size) % size, cc // size // size
            for yy in range(oh):
                for xx in range(ow):
                    cols[cc][yy * ow + xx] = im2col_get(inp, c, h, w, kh + yy * stride,
                                                        kw + xx * stride, ch, pad)
        for f in range(n):
            for j in range(locations):
                a = j * k * n  # l.weights + j*size*size*c*n, then row f
                want.append(bias[f * locations + j] +
                            sum(wts[a + f * k + q] * cols[q][j] for q in range(k)))
    close(out, want, 1e-5)


def test_local_weights_order_biases_then_weights(tmp_path):
    model = net(head(2, 2, 1) + "[local]\nfilters=1\nsize=1\n")
    floats = list(range(4 + 4))
    _weights_file(tmp_path / "l.weights", floats)
    model.load_weights(tmp_path / "l.weights")
    assert flat(model.layers[0].bias) == [0, 1, 2, 3]
    assert flat(model.layers[0].weight) == [4, 5, 6, 7]


def test_local_errors():
    expect_error(head(5, 5, 1) + "[local]\nsize=5\npad=1\n", "im2col", "pad")
    expect_error(head(2, 2, 1) + "[local]\nsize=3\n", "output shape")
    expect_error(head(5, 5, 1) + "[local]\nstride=0\n", "stride")


# -- [crop] ---------------------------------------------------------------------------
@pytest.mark.parametrize("noadjust", [0, 1])
def test_crop_center_scale_trans(noadjust):
    c, h, w, ch, cw = 2, 7, 6, 4, 3
    model = net(head(w, h, c) + f"[crop]\ncrop_height={ch}\ncrop_width={cw}\nflip=1\nangle=0\n"
                f"saturation=1\nexposure=1\nshift=.2\nnoadjust={noadjust}\n")
    x, (out,) = run(model)
    inp = flat(x)
    scale, trans = (1.0, 0.0) if noadjust else (2.0, -1.0)
    dh, dw = (h - ch) // 2, (w - cw) // 2
    want = []
    for b in range(2):
        for k in range(c):
            for i in range(ch):
                for j in range(cw):
                    index = (j + dw) + w * ((i + dh) + h * (k + c * b))
                    want.append(np.float32(np.float32(inp[index]) * np.float32(scale)) + trans)
    assert flat(out) == [float(np.float32(v)) for v in want]


def test_crop_training_flip_stays_inside():
    model = net(head(5, 5, 1) + "[crop]\ncrop_height=5\ncrop_width=5\nflip=1\nnoadjust=1\n")
    model.train()
    x = torch.arange(25.0).view(1, 1, 5, 5)
    seen = {tuple(flat(model(x))) for _ in range(30)}
    assert seen == {tuple(flat(x)), tuple(flat(x.flip(3)))}


def test_crop_errors():
    expect_error(head(4, 4, 1) + "[crop]\ncrop_height=5\ncrop_width=2\n", "crop_height")
    expect_error(head(4, 4, 1) + "[crop]\ncrop_height=2\ncrop_width=0\n", "crop_width")


# -- [cost] ---------------------------------------------------------------------------
def test_cost_outputs_its_empty_loss_buffer_and_is_skipped_as_network_output():
    # forward_cost_layer returns without truth: l.output stays calloc'd zeros (flat);
    # get_network_output skips trailing cost layers
    model = net(head(3, 1, 2) + "[softmax]\n[cost]\ntype=masked\nscale=2\nratio=0\n")
    x, (soft, cost) = run(model)
    assert cost.shape == soft.shape and not cost.any()
    with torch.no_grad():
        assert torch.equal(model(x).reshape(2, -1), soft)
    assert model.output_index == 0
    assert model.layers[1].cost_type == "masked"


def test_cost_unknown_type_falls_back_to_sse_with_a_warning():
    with pytest.warns(CfgWarning, match="t.cfg:6: .*unknown type 'l3'"):
        model = Darknet(parse_cfg(head(1, 1, 1) + "[cost]\ntype=l3\n", "t.cfg"))
    assert model.layers[0].cost_type == "sse"
    with pytest.warns(CfgWarning, match="wgan"):
        Darknet(parse_cfg(head(1, 1, 1) + "[cost]\ntype=wgan\n", "t.cfg"), "alexeyab")


# -- [activation] / [logistic] / [l2norm] / [normalization] -------------------------------
def test_activation_and_logistic_layers():
    model = net(head(2, 2, 3) + "[activation]\nactivation=relie\n[logistic]\n")
    x, (act, lg) = run(model)
    want = [v if v > 0 else 0.01 * v for v in flat(x)]
    close(act, want)
    close(lg, [logistic(v) for v in want])
    default = net(head(1, 1, 1) + "[activation]\n")
    assert default.layers[0].activation == "linear"
    expect_error(head(1, 1, 1) + "[activation]\nactivation=bogus\n", "activation")


def test_l2norm_matches_l2normalize_cpu():
    c, h, w = 5, 2, 3
    model = net(head(w, h, c) + "[l2norm]\n")
    x, (out,) = run(model)
    inp = np.asarray(flat(x), dtype=np.float32)
    want = inp.copy()
    spatial = h * w
    for b in range(2):
        for i in range(spatial):
            total = np.float32(0)
            for f in range(c):
                index = b * c * spatial + f * spatial + i
                total = np.float32(total + np.float32(inp[index] * inp[index]))
            total = np.float32(np.sqrt(total))
            for f in range(c):
                index = b * c * spatial + f * spatial + i
                want[index] = np.float32(want[index] / total)
    assert flat(out) == want.tolist()


@pytest.mark.parametrize("size,c", [(5, 9), (3, 4), (4, 6), (1, 2)])
def test_normalization_matches_darknet_running_window(size, c):
    h, w = 2, 2
    alpha, beta, kappa = 0.3, 0.75, 2.0
    model = net(head(w, h, c) + f"[lrn]\nalpha={alpha}\nbeta={beta}\nkappa={kappa}\n"
                f"size={size}\n")
    x, (out,) = run(model)
    f32 = np.float32
    a, bt, kp = f32(alpha), f32(beta), f32(kappa)
    inp = np.asarray(flat(x), dtype=np.float32)
    hw = h * w
    want = []
    for b in range(2):
        img = inp[b * c * hw:(b + 1) * c * hw]
        sq = [f32(float(v) ** 2) for v in img]          # pow_cpu(.., 2, input, .., squared)
        norms = [kp] * (c * hw)                            # const_cpu(w*h, kappa, norms)
        for k in range(size // 2):                         # axpy_cpu(w*h, alpha, squared + w*h*k)
            for p in range(hw):
                norms[p] = f32(norms[p] + f32(a * sq[hw * k + p]))
        for k in range(1, c):
            for p in range(hw):
                norms[hw * k + p] = norms[hw * (k - 1) + p]
            prev = k - ((size - 1) // 2) - 1
            nxt = k + size // 2
            for p in range(hw):
                if prev >= 0:
                    norms[hw * k + p] = f32(norms[hw * k + p] + f32(-a * sq[hw * prev + p]))
                if nxt < c:
                    norms[hw * k + p] = f32(norms[hw * k + p] + f32(a * sq[hw * nxt + p]))
        for p in range(c * hw):
            base = float(norms[p])  # C pow(): NaN for a negative base and a fractional power
            powered = math.pow(base, -float(bt)) if base >= 0 else math.nan
            want.append(f32(f32(powered) * img[p]))
    np.testing.assert_array_equal(np.asarray(flat(out), dtype=np.float32), np.asarray(want))


def test_normalization_errors():
    expect_error(head(1, 1, 2) + "[normalization]\nsize=0\n", "size")
    expect_error(head(1, 1, 2) + "[normalization]\nsize=7\n", "size/2", "size")


# -- [deconvolutional] ----------------------------------------------------------------
def col2im_add(buf, c, h, w, size, stride, pad, col, ch_col, h_col, w_col):
    kw = ch_col % size
    kh = (ch_col // size) % size
    ch = ch_col // size // size
    row = kh + h_col * stride - pad
    cl = kw + w_col * stride - pad
    if 0 <= row < h and 0 <= cl < w:
        buf[cl + w * (row + h * ch)] += col


@pytest.mark.parametrize("size,stride,pad_key,bn", [(3, 2, "pad=1", 0), (4, 2, "padding=1", 1),
                                                    (2, 3, "padding=0", 0), (1, 1, "pad=0", 1)])
def test_deconvolutional_matches_gemm_col2im(size, stride, pad_key, bn):
    c, h, w, n = 2, 3, 4, 3
    model = net(head(w, h, c) + f"[deconvolutional]\nfilters={n}\nsize={size}\n"
                f"stride={stride}\n{pad_key}\nactivation=linear\nbatch_normalize={bn}\n")
    layer = model.layers[0]
    pad = size // 2 if pad_key == "pad=1" else int(pad_key.split("=")[1])  # pad=0: 0
    oh, ow = (h - 1) * stride + size - 2 * pad, (w - 1) * stride + size - 2 * pad
    assert tuple(layer.out_shape) == (n, oh, ow)
    torch.manual_seed(3)
    with torch.no_grad():
        layer.bias.uniform_(-1, 1)
        if bn:
            layer.bn.rolling_mean.uniform_(-1, 1)
            layer.bn.rolling_variance.uniform_(0.5, 2)
            layer.bn.scales.uniform_(0.5, 2)
    x, (out,) = run(model)
    wts = flat(layer.weight)  # [c][n*size*size]
    m, kk = size * size * n, h * w
    want = []
    for b in range(2):
        inp = flat(x[b])
        buf = [0.0] * (n * oh * ow)
        # gemm_cpu(1,0,m,kk,c,1,a,m,b,kk,0,ws,kk): ws[i][j] = sum_t a[t][i] * b[t][j]
        for i in range(m):
            for j in range(kk):
                v = sum(wts[t * m + i] * inp[t * kk + j] for t in range(c))
                col2im_add(buf, n, oh, ow, size, stride, pad, v, i, j // w, j % w)
        for f in range(n):
            for p in range(oh * ow):
                v = buf[f * oh * ow + p]
                if bn:
                    v = _bn_pj(v, layer.bn.rolling_mean[f].item(),
                               layer.bn.rolling_variance[f].item(), layer.bn.scales[f].item())
                want.append(v + layer.bias[f].item())
    close(out, want, 1e-5)


def test_deconvolutional_weights_order(tmp_path):
    model = net(head(1, 1, 2) + "[deconv]\nfilters=3\nsize=1\nbatch_normalize=1\n")
    layer = model.layers[0]
    _weights_file(tmp_path / "d.weights", list(range(3 + 9 + 6)))
    model.load_weights(tmp_path / "d.weights")
    assert flat(layer.bias) == [0, 1, 2]
    assert flat(layer.bn.scales) == [3, 4, 5]
    assert flat(layer.bn.rolling_variance) == [9, 10, 11]
    assert layer.weight.reshape(2, 3).tolist() == [[12, 13, 14], [15, 16, 17]]  # [c][n]


def test_deconvolutional_errors():
    expect_error(head(1, 1, 1) + "[deconv]\nsize=2\npadding=1\n", "output shape")
    expect_error(head(1, 1, 1) + "[deconv]\nfilters=0\n", "filters")


# -- [detection] ----------------------------------------------------------------------
@pytest.mark.parametrize("softmax", [0, 1])
def test_detection_softmax_per_cell(softmax):
    side, num, coords, classes = 2, 2, 4, 3
    inputs = side * side * ((1 + coords) * num + classes)
    model = net(head(1, 1, inputs) + f"[detection]\nside={side}\nnum={num}\ncoords={coords}\n"
                f"classes={classes}\nsoftmax={softmax}\nrescore=1\nsqrt=1\n")
    x, (out,) = run(model)
    assert out.shape == (2, inputs)
    want = flat(x)
    if softmax:
        for b in range(2):
            for i in range(side * side):
                softmax_c(want, b * inputs + i * classes, classes, 1)
    close(out, want)
    expect_error(head(1, 1, inputs + 1) + f"[detection]\nside={side}\nnum={num}\n"
                 f"coords={coords}\nclasses={classes}\n", "side")


# -- dialects --------------------------------------------------------------------------
@pytest.mark.parametrize("section", ["logistic", "l2norm", "deconvolutional", "deconv"])
def test_pjreddie_only_sections(section):
    model = Darknet(parse_cfg(head(2, 2, 1) + f"[{section}]\n", "t.cfg"))
    assert model.dialect.name == "pjreddie"
    expect_error(head(2, 2, 1) + f"[{section}]\n", "pjreddie-only", dialect="alexeyab")


def test_yolov1_style_stack_builds_and_runs():
    text = (head(8, 8, 3) + "[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\n"
            "activation=leaky\n[local]\nsize=3\nstride=1\npad=1\nfilters=4\nactivation=leaky\n"
            "[dropout]\nprobability=.5\n[connected]\noutput=28\nactivation=linear\n"
            "[detection]\nclasses=2\ncoords=4\nrescore=1\nside=2\nnum=1\nsoftmax=0\nsqrt=1\n")
    model = net(text)
    assert model.heads == [4]
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        (out,) = model(x)
    assert out.shape == (1, 28) and torch.isfinite(out).all()


def test_layer_table_lines_are_pjreddies_fprintfs():
    text = (head(8, 8, 4) + "[crop]\ncrop_width=6\ncrop_height=6\n[lrn]\n[local]\nfilters=4\n"
            "size=3\npad=1\n[reorg]\nstride=2\n[deconv]\nfilters=3\nsize=2\nstride=2\n"
            "[connected]\noutput=5\n[cost]\n")
    lines = net(text).layer_table()[1:]
    assert lines == [
        "    0 Crop Layer: 8 x 8 -> 6 x 6 x 4 image",
        "    1 Local Response Normalization Layer: 6 x 6 x 4 image, 5 size",
        "    2 Local Layer: 6 x 6 x 4 image, 4 filters -> 6 x 6 x 4 image",
        "    3 reorg              / 2     6 x   6 x   4   ->     3 x   3 x  16",
        "    4 deconv    3  2 x 2 / 2     3 x   3 x  16   ->     6 x   6 x   3",
        "    5 connected                             108  ->     5",
        "    6 cost                                              5",
    ]
