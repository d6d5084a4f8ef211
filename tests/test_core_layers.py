"""Fast paths of the core layers give exactly the values of the plain formulation."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from darknet_py import CfgError, Darknet, fast
from darknet_py.cfg import parse_cfg
from darknet_py.layers.maxpool import FLT_MAX


def test_maxpool_window_max_equals_padded_max_pool2d():
    torch.manual_seed(0)
    checked = 0
    for size, stride, padding, h, w in itertools.product(
            [1, 2, 3, 5, 13], [1, 2, 3], [None, 0, 1, 4], [1, 5, 8, 13], [1, 6, 13]):
        cfg = (f"[net]\nwidth={w}\nheight={h}\nchannels=2\n[maxpool]\nsize={size}\n"
               f"stride={stride}\n" + ("" if padding is None else f"padding={padding}\n"))
        try:
            model = Darknet(parse_cfg(cfg), warn_unused=False)
        except CfgError:
            continue  # window does not fit
        layer = model.layers[0]
        x = torch.randn(2, 2, h, w)
        want = F.max_pool2d(F.pad(x, layer.pad, value=-FLT_MAX), layer.size, layer.stride)
        assert torch.equal(model(x), want), (size, stride, padding, h, w)
        checked += 1
    assert checked > 200



def _scan_output_and_grad(layer, x, g):
    """The training maxpool by Darknet's scan (_IndexedMax: l.indexes, scatter of deltas)."""
    from darknet_py.layers.maxpool import _IndexedMax
    x = x.detach().clone().requires_grad_(True)
    out = _IndexedMax.apply(x, layer)
    return out, torch.autograd.grad(out, x, g)[0]


def test_maxpool_training_max_pool2d_equals_darknet_scan():
    """Training takes PyTorch's max_pool2d (first max in row-major order, gradient to that
    cell) on Darknet's padded grid: the same outputs and input deltas as the scan of
    forward/backward_maxpool_layer, over exact ties, odd padding, stride_x != stride_y,
    contiguous and channels_last inputs; NaN / -FLT_MAX / -inf windows fall back to it."""
    torch.manual_seed(0)
    fast_checked = fallback = case = 0
    for size, sx, sy, padding, h, w in itertools.product(
            [1, 2, 3, 5], [1, 2, 3], [1, 2], [None, 0, 1, 3], [5, 8], [6, 9]):
        cfg = (f"[net]\nwidth={w}\nheight={h}\nchannels=3\n[maxpool]\nsize={size}\n"
               f"stride_x={sx}\nstride_y={sy}\n"
               + ("" if padding is None else f"padding={padding}\n"))
        try:
            layer = Darknet(parse_cfg(cfg), dialect="alexeyab", warn_unused=False).layers[0]
        except CfgError:
            continue  # window does not fit
        case += 1
        x = torch.randint(0, 2, (2, 3, h, w)).float()  # ties in nearly every window
        special = case % 7 == 3
        if special:  # Darknet: a NaN never wins, -FLT_MAX / -inf cells give no index
            x.view(-1)[:: 5] = float("nan")
            x.view(-1)[1:: 5] = -FLT_MAX
            x.view(-1)[2:: 5] = -float("inf")
        if case % 2:
            x = x.contiguous(memory_format=torch.channels_last)
        xr = x.clone().requires_grad_(True)
        taken = layer._aten_max(xr) is not None
        out = layer.forward(xr, [])
        g = torch.randn(out.shape)
        grad = torch.autograd.grad(out, xr, g)[0]
        want, want_grad = _scan_output_and_grad(layer, x, g)
        assert torch.equal(out, want) or (special and torch.allclose(out, want, equal_nan=True))
        assert torch.equal(grad, want_grad), (size, sx, sy, padding, h, w)
        if taken:
            fast_checked += 1
        else:
            fallback += 1
            # windows of padding only (size 1, padding 1) or the special values
            assert special or not bool((want > -FLT_MAX).all())
    assert fast_checked > 150 and fallback > 10

@pytest.mark.parametrize("dialect", ["pjreddie", "alexeyab"])
def test_inplace_inference_equals_autograd_path(dialect):
    cfg = ("[net]\nwidth=16\nheight=8\nchannels=3\n"
           "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
           "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=1\nactivation=linear\n"
           "[shortcut]\nfrom=-2\n")
    model = Darknet(parse_cfg(cfg), dialect=dialect)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.5, 1.5)
        for layer in model.layers[:2]:
            layer.bn.rolling_mean.uniform_(-0.1, 0.1)
            layer.bn.rolling_variance.uniform_(0.01, 0.5)
    x = torch.rand(2, 3, 8, 16)
    with_grad = model.layer_outputs(x)            # parameters require grad: out-of-place
    with torch.no_grad(), fast.plain():          # the plain path's in-place BN
        in_place = model.layer_outputs(x)
    assert with_grad[0].requires_grad
    for a, b in zip(with_grad, in_place):
        assert torch.equal(a, b)
