"""Training batchnorm's two arithmetic modes: the default fused one and ``batchnorm.exact()``.

The exact forward (batch statistics) is Darknet's bit for bit; the default one and its
backward use PyTorch's reductions and still match the real Darknet within compare's tolerances (loss
1e-4, head outputs/deltas 1e-5, updates 1e-3), checked here on Darknet train cases of both
forks with ``exact_bn=False``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from darknet_py.compare import compare_case
from darknet_py.dialect import ALEXEYAB, PJREDDIE
from darknet_py.layers import batchnorm
from train_cases import make_train_case


def _darknet_sums(x: torch.Tensor, centre=None) -> np.ndarray:
    """mean_cpu/variance_cpu's loop: per channel one float32 running sum over image, then
    position (np.add.accumulate is that sequential sum by definition) of x or of
    (x - centre)**2."""
    rows = x.transpose(0, 1).reshape(x.shape[1], -1).numpy()
    if centre is not None:
        rows = (rows - centre.numpy()[:, None]) ** 2
    if rows.shape[1] == 0:
        return np.zeros(x.shape[1], np.float32)
    return np.add.accumulate(rows, axis=1, dtype=np.float32)[:, -1]


@pytest.mark.parametrize("shape", [(2, 1, 5, 7), (3, 2, 9, 4), (4, 16, 40, 33), (4, 300, 3, 5),
                                   (1, 5, 1, 1), (2, 3, 0, 4)])
def test_channel_sums_are_darknets_sequential_sums(shape):
    """Bit for bit, NCHW and channels-last, sums and centred sums of squares (one channel
    too, where numpy would otherwise sum pairwise); large offsets make any reordering show."""
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g) * 3 + 100
    for centre in (None, torch.rand(shape[1], generator=g) + 99):
        ref = _darknet_sums(x, centre)
        for layout in (torch.contiguous_format, torch.channels_last):
            got = batchnorm.channel_sums(x.contiguous(memory_format=layout), centre).numpy()
            assert np.array_equal(got, ref), (shape, centre, layout)
    if shape[0] * shape[2] * shape[3] > 1000:
        pairwise = np.add.reduce(x.transpose(0, 1).reshape(shape[1], -1).numpy(), axis=1)
        assert not np.array_equal(pairwise, _darknet_sums(x))  # the order matters


@pytest.mark.parametrize("dialect", [PJREDDIE, ALEXEYAB], ids=lambda d: d.name)
def test_fused_equals_exact(dialect):
    """Forward, rolling averages and the input, scale and bias gradients within float
    rounding of the exact mode (sequential float32 sums, double backward)."""
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(4, 6, 20, 18, generator=g) * 2 + 1
    scales, bias0 = torch.rand(6, generator=g) + 0.5, torch.randn(6, generator=g)
    grad = torch.randn(4, 6, 20, 18, generator=g)
    results = {}
    for exact in (True, False):
        bn = batchnorm.BatchNorm(6, dialect).train()
        with torch.no_grad():
            bn.scales.copy_(scales)
        x, bias = x0.clone().requires_grad_(), bias0.clone().requires_grad_()
        with batchnorm.exact(exact):
            assert batchnorm.EXACT is exact
            out = bn(x, bias)
            dx, dscales, dbias = torch.autograd.grad(out, (x, bn.scales, bias), grad)
        results[exact] = (out.detach(), bn.rolling_mean, bn.rolling_variance, dx, dscales, dbias)
    assert batchnorm.EXACT is False
    exact, fused = results[True], results[False]
    for a, b in zip(exact, fused):
        assert float((a - b).abs().max() / a.abs().max()) < 1e-5


def test_exact_restores_on_error():
    with pytest.raises(RuntimeError):
        with batchnorm.exact():
            raise RuntimeError("x")
    assert batchnorm.EXACT is False


def _ok(report):
    assert report.ok, "\n".join(report.lines())
    return report


def _heads_iter1(model, X, y, dtype):
    """Iteration 1's train-mode [yolo] outputs and deltas of the last mini-batch (as the
    case dumps them), the model evaluated in ``dtype`` in the default batchnorm mode."""
    import copy
    probe = copy.deepcopy(model).to(dtype).train()
    mini = model.net.mini_batch
    x = X[X.shape[0] - mini:].to(dtype)
    with torch.no_grad():
        outs = probe.layer_outputs(x)
    heads = {}
    for i, layer in enumerate(probe.layers):
        if layer.has_cost:
            delta, _ = layer.loss(outs[i], y[X.shape[0] - mini:].to(dtype),
                                  (x.shape[3], x.shape[2]), seen=int(model.seen) + X.shape[0])
            heads[i] = (outs[i].double().numpy(), delta.double().numpy())
    return heads


def test_default_mode_matches_darknet_reference(pj_cases):
    """pjreddie's train_network, 3 iterations (the reference case): the default mode (batch
    statistics and backward by PyTorch's reductions) passes compare's loss, update and
    layer checks; its iteration-1 [yolo] outputs and deltas, 2e-5 of their max from
    Darknet's (over the 1e-5 head tolerance exact mode meets), are judged against the
    float64 noise floor: no further from a float64 evaluation of the same net than
    Darknet's own float32 outputs are (Darknet's sequential float32 batch sums are the
    less exact ones)."""
    from darknet_py import load
    from darknet_py.compare import load_case
    folder = pj_cases / "train-tiny-narrow"
    report = compare_case(folder, exact_bn=False)
    names = [name for name, _, _ in report.checks]
    assert "iteration 1 layer 16 [yolo] delta" in names
    assert sum("weight update" in name for name in names) == 3
    bad = [(n, d) for n, ok, d in report.checks if not ok and "[yolo]" not in n]
    assert not bad and all(r.ok for r in report.rows), "\n".join(report.lines())
    case = load_case(folder)
    model = load(case.cfg, case.weights, dialect=case.dialect, warn_unused=False)
    X = torch.from_numpy(np.load(folder / "X.npy"))
    y = torch.from_numpy(np.load(folder / "y.npy"))
    ours, truth = _heads_iter1(model, X, y, torch.float32), _heads_iter1(model, X, y,
                                                                         torch.float64)
    assert sorted(ours) == [16, 23]
    for i in ours:
        for k, what in enumerate(("output", "delta")):
            ref = np.load(folder / f"iter1_yolo_{what}_{i:03d}.npy").astype(np.float64)
            t = truth[i][k].reshape(ref.shape)
            scale = np.abs(t).max()
            darknet_floor = np.abs(ref - t).max() / scale
            ours_err = np.abs(ours[i][k].reshape(ref.shape) - t).max() / scale
            assert ours_err <= darknet_floor, (i, what, ours_err, darknet_floor)


def test_default_mode_matches_darknet_alexeyab(reference, tmp_path):
    """AlexeyAB's yolov4-tiny (CIoU, both heads), batch 4 in 2 subdivisions, 2 iterations:
    the fused backward with AlexeyAB's sqrt(var)+1e-5 divisor against the real Darknet."""
    from test_train_darknet import _ab_truths, _narrow_tiny
    rng = np.random.default_rng(21)
    X = rng.random((4, 3, 128, 160), dtype=np.float32)
    cfg = _narrow_tiny(160, 128, 4, 2, cfg=reference / "cfg" / "alexeyab" / "yolov4-tiny.cfg")
    folder = make_train_case("alexeyab", cfg, tmp_path / "c", X, _ab_truths(21, [14, 25, 6, 9]),
                             K=2, ycols=200 * 6)
    report = _ok(compare_case(folder, exact_bn=False))
    assert sum("weight update" in name for name, _, _ in report.checks) == 2
