"""AlexeyAB's training extras against the real AlexeyAB Darknet (tests/harness train cases):
[net] ema_alpha, per-layer onlyforward / train_only_bn / dont_update / burnin_update.

Each case is the narrow yolov4-tiny of test_train_darknet (160x128, batch 2, random
weights, X and truths), K train_network calls in Darknet and in darknet_py, every
tensor's update compared (:func:`darknet_py.compare.compare_case`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from darknet_py.compare import compare_case
from test_train_darknet import _ab_truths, _check, _narrow_tiny
from train_cases import make_train_case


def _v4_case(reference, tmp_path, seed: int, extra_net: str = "", edit=None, K: int = 2,
             seen: int = 0, counts=(14, 25), prepare=None):
    cfg = _narrow_tiny(160, 128, 2, 1, extra_net=extra_net,
                       cfg=reference / "cfg" / "alexeyab" / "yolov4-tiny.cfg")
    if edit is not None:
        cfg = edit(cfg)
    rng = np.random.default_rng(seed)
    X = rng.random((len(counts), 3, 128, 160), dtype=np.float32)
    y = _ab_truths(seed, list(counts))
    return make_train_case("alexeyab", cfg, tmp_path / "c", X, y, K=K, ycols=200 * 6,
                           seen=seen, prepare=prepare)


def _body(path: Path) -> bytes:
    """A .weights file without its header (major, minor, revision: 12 bytes; seen: 8)."""
    return path.read_bytes()[20:]


def test_ema_alpha(reference, tmp_path):
    """ema_alpha=0.5, max_batches=2004, starting at iteration 1000 (seen 2000): Darknet's
    train_network_waitkey initialises the EMA at iteration 1002 (max_batches/2) and updates
    it there and at 1003, applies it to the weights at 1004 (max_batches - 1000) and leaves
    it alone at 1005. Every update (1004's is the jump to the EMA) and the EMA weights
    Darknet saves after each call (save_weights_upto(..., save_ema=1), as
    train_detector's backup/NAME_ema.weights) match darknet_py's."""
    folder = _v4_case(reference, tmp_path, 52, "max_batches=2004 ema_alpha=0.5 "
                      "policy=constant learning_rate=0.001", K=5, seen=2000)
    emas = sorted(p.name for p in folder.glob("weights_iter*_ema.weights"))
    assert emas == [f"weights_iter{k}_ema.weights" for k in (2, 3, 4, 5)]
    # Darknet's own side: at 1004 the weights became the EMA, at 1003 they were not
    assert _body(folder / "weights_iter4.weights") == _body(folder / "weights_iter4_ema.weights")
    assert _body(folder / "weights_iter3.weights") != _body(folder / "weights_iter3_ema.weights")
    report = _check(compare_case(folder))
    names = [name for name, _, _ in report.checks]
    assert [n for n in names if "EMA" in n] == [f"iteration {k} EMA weights" for k in (2, 3, 4, 5)]
    assert sum(1 for n in names if n.endswith("weight update")) == 5


def test_ema_checkpoints_of_train_detector(tmp_path):
    """train_detector with ema_alpha (AlexeyAB, max_batches=40, savelast=10): the real
    `darknet detector train` and darknet_py write the same files with the same headers --
    _ema.weights with each _last.weights once the EMA is initialised (iteration 20 =
    max_batches/2: at 20, 30 and 40). Content, from a reading of the C (the runs' data
    differ): max_batches - 1000 is below max_batches/2, so the EMA is initialised at 20
    (ema_update(net, 0): the weights themselves) and neither updated nor applied after; save_weights_upto(..., save_ema=1)
    writes the convolutional biases, BN scales and weights from the EMA and the rolling
    statistics as they are."""
    import os
    import subprocess
    import torch
    import darknet_py
    from test_train_loop import darknet_exe, dataset, headers, tiny_cfg
    from darknet_py.train.trainer import train_detector
    exe = darknet_exe("alexeyab")
    cfg = tiny_cfg(tmp_path, max_batches=40)
    Path(cfg).write_text(Path(cfg).read_text().replace("[net]\n", "[net]\nema_alpha=0.9\n"))
    extra = "saveweights=30\nsavelast=10\n"
    c_data = dataset(tmp_path / "c", extra)
    subprocess.run([str(exe), "detector", "train", c_data, cfg, "-dont_show"], cwd=tmp_path,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   timeout=300)
    want = headers(tmp_path / "c" / "backup")
    assert {"tiny_ema.weights", "tiny_last.weights"} <= set(want)
    snap = {}

    def at_20(i, model, loss, avg):
        if i == 20:
            snap.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return False

    py_data = dataset(tmp_path / "py", extra)
    train_detector(py_data, cfg, dialect="alexeyab", workers=0, seed=0, chart=None,
                   callback=at_20, stream=open(os.devnull, "w"))
    backup = tmp_path / "py" / "backup"
    assert headers(backup) == want
    ema = darknet_py.load(cfg, backup / "tiny_ema.weights", dialect="alexeyab").state_dict()
    last = darknet_py.load(cfg, backup / "tiny_last.weights", dialect="alexeyab").state_dict()
    for name, value in ema.items():
        rolling = name.endswith(("rolling_mean", "rolling_variance"))
        assert torch.equal(value, (last if rolling else snap)[name]), name
    # the weights moved after 20 (the EMA file is not just the last weights)
    assert not torch.equal(ema["layers.1.weight"], last["layers.1.weight"])
    assert not torch.equal(ema["layers.0.bn.scales"], last["layers.0.bn.scales"])


def _with_keys(cfg: str, keys) -> str:
    """``cfg`` with ``key=value`` lines added to the n-th section of a kind, for each
    ((kind, n), line) in ``keys``."""
    out, seen = [], {}
    for line in cfg.splitlines():
        out.append(line)
        if line.startswith("["):
            seen[line] = seen.get(line, -1) + 1
            out += [text for (kind, n), text in keys if kind == line and n == seen[line]]
    return "\n".join(out) + "\n"


def _layer_kinds(folder):
    import warnings
    from darknet_py import load
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load(folder / "net.cfg", dialect="alexeyab")


def test_onlyforward_and_gpu_only_keys(reference, tmp_path):
    """onlyforward=1 on layer 5 ([convolutional] inside the first CSP block, read by a
    [route]) and on the first [yolo] (layer 30): AlexeyAB's CPU backward_network skips
    their backward (`if (l.onlyforward) continue;`), so layer 5's weights get no gradient,
    nothing reaches layers 4/2 through it, and the head's cost still counts (its CPU
    forward computes it) but its delta never reaches layer 29. train_only_bn=1 (layer 10:
    set_train_only_bn marks every layer before it), dont_update=1000 (layer 12) and
    burnin_update=2 (layer 13) are parsed but only update_network_gpu and the CUDA
    convolution backward read them: on the CPU the updates are plain ones, as darknet_py's."""
    keys = [(("[convolutional]", 4), "onlyforward=1"), (("[yolo]", 0), "onlyforward=1"),
            (("[convolutional]", 6), "train_only_bn=1"), (("[convolutional]", 7),
                                                           "dont_update=1000"),
            (("[convolutional]", 8), "burnin_update=2")]
    folder = _v4_case(reference, tmp_path, 53, edit=lambda c: _with_keys(c, keys), K=2)
    model = _layer_kinds(folder)
    assert [i for i, l in enumerate(model.layers) if l.skips_backward] == [5, 30]
    assert [model.common[i].train_only_bn for i in (10,)] == [1]
    assert model.common[12].dont_update == 1000 and model.common[13].burnin_update == 2
    report = _check(compare_case(folder))
    assert sum(1 for name, _, _ in report.checks if name.endswith("weight update")) == 2


def _counters(seed: int, classes: int = 80) -> str:
    """counters_per_class for ``classes`` classes, 0 (counted as 1) to 12: multipliers up
    to 12 (larger ones amplify float noise of the outputs -- a near-tie IoU of Darknet's
    and darknet_py's predicted boxes, 3.5e-6 apart -- past the deltas' 1e-5 of max |value|:
    seen with 399, 2.3e-5)."""
    rng = np.random.default_rng(seed)
    c = rng.integers(1, 13, classes)
    c[:3] = [0, 1, 2]
    return ",".join(str(int(v)) for v in c)


@pytest.mark.parametrize("extra,seed", [
    ("", 61),
    ("iou_thresh=0.25 cls_normalizer=2.5 ignore_thresh=0.05 truth_thresh=0.1 "
     "iou_loss=giou max_delta=20", 62),
    ("iou_loss=mse objectness_smooth=1 ignore_thresh=0.05 truth_thresh=0.1 "
     "label_smooth_eps=0.1 cls_normalizer=0.5", 63),
    ("focal_loss=1 iou_thresh=0.3 cls_normalizer=3", 64)])
def test_counters_per_class(reference, tmp_path, extra, seed):
    """counters_per_class on both heads of the narrow yolov4-tiny (a 0 counter counts as
    1; max_delta caps the multipliers): the heads' deltas and costs of iteration 1 and the
    updates of 2 iterations as AlexeyAB's forward_yolo_layer with l.classes_multipliers --
    box deltas times iou_normalizer * m, the truths' objectness times m, their class delta
    times m * cls_normalizer (not with focal_loss), the truth_thresh branch with
    objectness_smooth -- across iou_thresh, giou/mse/ciou and label smoothing."""
    from test_train_darknet import _ab_case
    report = _ab_case(reference, tmp_path, f"counters_per_class={_counters(seed)} {extra}",
                      seed, [25, 30])
    assert sum(1 for name, _, _ in report.checks if "[yolo] delta" in name) == 2


def test_classes_multipliers_reading_of_the_c():
    """parser.c get_classes_multipliers: max / counter (counters below 1 as 1) in float,
    capped at max_delta; a count that is not classes= is refused as Darknet's parser does."""
    from darknet_py.cfg import parse_cfg
    from darknet_py.errors import CfgError
    from darknet_py.layers.yolo import classes_multipliers
    assert classes_multipliers([0, 3, 300], 3.4028234663852886e38) == [300.0, 100.0, 1.0]
    assert classes_multipliers([7, 3, 21], 5) == [3.0, 5.0, 1.0]
    assert classes_multipliers([3], 1e30) == [1.0]
    from darknet_py.model import Darknet
    text = ("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=21\nsize=1\n"
            "[yolo]\nmask=0,1,2\nnum=3\nanchors=1,1,2,2,3,3\nclasses=2\n"
            "counters_per_class=5,1,3\n")
    with pytest.raises(CfgError, match="counters_per_class has 3 values for classes=2"):
        Darknet(parse_cfg(text), dialect="alexeyab")


@pytest.mark.parametrize("extra", [
    "equidistant_point=5",
    "num_sigmas_reject_badlabels=2",
    "badlabels_rejection_percentage=5",
    "equidistant_point=5 num_sigmas_reject_badlabels=2 badlabels_rejection_percentage=5"])
def test_equidistant_point_and_bad_label_rejection(reference, tmp_path, extra):
    """[net] equidistant_point / num_sigmas_reject_badlabels / badlabels_rejection_percentage
    (max_batches=8: bad-label rejection from iteration 7, past 3/4; equidistant point from
    6), 4 train_network calls from iteration 5: AlexeyAB's forward_yolo_layer keeps net-level
    rolling statistics of the heads' nonzero |delta| across both heads and iterations and
    zeroes the deltas above (bad labels) or below (equidistant point) thresholds from them.
    Every update matches Darknet's (measured: within 1.1e-5 of the update's max; without the
    rejection in darknet_py, 2.8e-3 / 0.75 / 0.095 of it)."""
    folder = _v4_case(reference, tmp_path, 52, f"max_batches=8 {extra} policy=constant "
                      "learning_rate=0.001", K=4, seen=10)
    report = _check(compare_case(folder))
    assert sum(1 for name, _, _ in report.checks if name.endswith("weight update")) == 4


def test_weights_reject_freq(reference, tmp_path):
    """[net] weights_reject_freq=1: after the update Darknet's reject_similar_weights
    re-initialises, in each eligible [convolutional], the first filter of its most similar
    pair when their cosine similarity is above 0.4 (bias 0, BN scale 1, weights
    sqrt(2/fan_in) * U(-1, 1) from C's rand(), which darknet_py does not reproduce).
    Measured against the real AlexeyAB: the same (layer, filter) pairs are re-initialised
    (Darknet's are the BN scales exactly 1), their new weights are within the same bound,
    and every other weight, bias, scale and rolling statistic moves as Darknet's (within
    1e-3 of the update's max, as compare's update check)."""
    import torch
    from darknet_py import load
    from darknet_py.compare import _update_error
    from darknet_py.layers import batchnorm
    from darknet_py.train.engine import TrainState, train_network
    folder = _v4_case(reference, tmp_path, 54, "max_batches=1000 weights_reject_freq=1 "
                      "policy=constant learning_rate=0.001", K=1)
    model = load(folder / "net.cfg", folder / "weights_init.weights", dialect="alexeyab",
                 warn_unused=False)
    ref = load(folder / "net.cfg", folder / "weights_iter1.weights", dialect="alexeyab",
               warn_unused=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = TrainState.from_model(model)
    X = torch.from_numpy(np.load(folder / "X.npy"))
    y = torch.from_numpy(np.load(folder / "y.npy"))
    with batchnorm.exact():
        train_network(model, state, X, y)
    darknet = [(i, int(k)) for i, layer in enumerate(ref.layers)
               if getattr(layer, "bn", None) is not None
               for k in (layer.bn.scales == 1.0).nonzero().flatten()]
    assert state.rejected == darknet and len(darknet) >= 3, (state.rejected, darknet)
    ours, theirs = model.state_dict(), ref.state_dict()
    rejected = {}
    for i, k in darknet:
        rejected.setdefault(i, []).append(k)
    worst = 0.0
    for name, after in ours.items():
        if name not in theirs or not torch.is_floating_point(after):
            continue
        index = int(name.split(".")[1])
        a, r, b = (t.double().numpy().copy() for t in (after, theirs[name], before[name]))
        for k in rejected.get(index, []):
            if name.endswith(".weight"):
                bound = float(np.float32((2.0 / (a[k].size)) ** 0.5))
                assert np.abs(a[k]).max() <= bound and np.abs(r[k]).max() <= bound
                assert not np.array_equal(a[k], b[k])
            if name.endswith((".bias", "bn.scales")):  # 0 and 1 in both
                assert a[k] == r[k] == (1.0 if name.endswith("scales") else 0.0), name
            if name.endswith((".weight", ".bias", "bn.scales")):
                a[k] = r[k] = b[k] = 0  # compared above
        if a.size:
            worst = max(worst, _update_error(a - b, r - b, a, r))
    print(f"worst update error outside the re-initialised filters: {worst:.2e}")
    assert worst <= 1e-3, worst


def test_onlyforward_pjreddie_changes_nothing_on_the_cpu(tmp_path):
    """pjreddie reads onlyforward but only its CUDA [yolo]/[region] forward looks at it:
    with onlyforward=1 on a [convolutional] and the first [yolo] of yolov3-tiny, the real
    pjreddie train_network (CPU) trains as without, and so does darknet_py."""
    rng = np.random.default_rng(71)
    X = rng.random((2, 3, 96, 96), dtype=np.float32)
    from train_cases import random_truths
    y = random_truths(rng, 2, 90, [6, 11], 80)
    cfg = _with_keys(_narrow_tiny(96, 96, 2, 1), [(("[convolutional]", 3), "onlyforward=1"),
                                                  (("[yolo]", 0), "onlyforward=1")])
    folder = make_train_case("pjreddie", cfg, tmp_path / "c", X, y, K=2)
    import warnings
    from darknet_py import load
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load(folder / "net.cfg", dialect="pjreddie")
    assert [i for i, c in enumerate(model.common) if c.onlyforward] == [6, 16]
    assert not any(layer.skips_backward for layer in model.layers)
    report = _check(compare_case(folder))
    assert sum(1 for name, _, _ in report.checks if name.endswith("weight update")) == 2


@pytest.mark.parametrize("extra,seed", [
    ("counters_per_class=0,7,3,12,1,5 iou_loss=giou iou_thresh=0.213 cls_normalizer=2", 81),
    ("counters_per_class=4,4,9,1,2,6 iou_loss=mse label_smooth_eps=0.1 objectness_smooth=1 "
     "ignore_thresh=0.05 truth_thresh=0.1 cls_normalizer=0.5 max_delta=3", 82)])
def test_counters_per_class_gaussian_yolo(tmp_path, darknet_alexeyab, extra, seed):
    """counters_per_class in [Gaussian_yolo] (test_train_gaussian_yolo's yolov3-tiny with
    two Gaussian heads, 6 classes): forward_gaussian_yolo_layer's multipliers -- box means
    x iou_normalizer * m, the truths' objectness x m, a class x m * cls_normalizer where its
    whole vector is written and x m elsewhere (objectness_smooth's included) -- against
    the real AlexeyAB: heads' deltas, costs, losses and updates of 2 iterations."""
    from test_train_gaussian_yolo import run_case
    run_case(tmp_path, darknet_alexeyab, extra, seed, [16, 22])


def test_weights_reject_freq_refuses_a_grouped_convolution():
    """reject_similar_weights takes size*size*c weights a filter, not c/groups: on a grouped
    convolution Darknet reads past the layer's weights; darknet_py refuses, naming it."""
    import warnings
    from darknet_py.cfg import parse_cfg
    from darknet_py.model import Darknet
    text = ("[net]\nwidth=8\nheight=8\nchannels=4\n[convolutional]\nfilters=4\nsize=1\n"
            "activation=leaky\n[convolutional]\nfilters=4\nsize=3\npad=1\ngroups=2\n"
            "activation=leaky\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg(text), dialect="alexeyab")
    with pytest.raises(ValueError, match=r"layer 1 \[convolutional\]: weights_reject_freq "
                                         r"with groups=2"):
        model.layers[1].reject_similar_weights(0.4)


def test_onlyforward_on_a_layer_that_hands_its_input_on():
    """A one-input [route] returns its input itself: with onlyforward=1 (AlexeyAB) nothing
    reaches the layers before it through it, as backward_network's `continue` there."""
    import warnings
    import torch
    from darknet_py.cfg import parse_cfg
    from darknet_py.model import Darknet
    from darknet_py.train.engine import forward_backward
    text = ("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=18\nsize=1\n"
            "activation=leaky\n[route]\nlayers=-1\n{}\n[yolo]\nmask=0,1,2\nnum=3\n"
            "anchors=2,2,4,4,6,6\nclasses=1\n")
    X = torch.rand(1, 3, 8, 8)
    y = torch.zeros(1, 200, 6)
    y[0, 0, :5] = torch.tensor([0.5, 0.5, 0.4, 0.4, 0])
    grads = []
    for extra in ("", "onlyforward=1"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Darknet(parse_cfg(text.format(extra)), dialect="alexeyab")
        model.train()
        forward_backward(model, X, y)
        grads.append(model.layers[0].weight.grad)
    assert grads[0] is not None and grads[0].abs().sum() > 0
    assert grads[1] is None
