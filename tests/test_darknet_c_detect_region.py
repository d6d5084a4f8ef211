"""[region] (YOLOv2) decoding: get_network_boxes for region heads, as Darknet's ``detector test``.

pjreddie: ``region_layer.c:get_region_detections`` + ``correct_region_boxes``;
AlexeyAB: ``network.c:custom_get_region_detections`` (its ``get_region_boxes`` on the
transposed CPU buffer, objectness 1, ``correct_yolo_boxes`` with ``letter``). Each is
transliterated loop for loop below and compared with the vectorized decoder.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import darknet_py
from darknet_py.cfg import parse_cfg, read_cfg
from darknet_py.cli import main
from darknet_py.detect import (DetectionArrays, do_nms_sort, get_network_boxes,
                               get_region_detections, prepare, to_detections,
                               to_detections_v3)
from darknet_py.image import as_image
from darknet_py.model import Darknet

F = np.float32
ROOT = Path(__file__).resolve().parent.parent


# -- Darknet's C, transliterated (scalar float32 / double as the C code computes) -----------
def letterbox_new_size(im_w: int, im_h: int, netw: int, neth: int) -> Tuple[int, int]:
    if F(netw) / F(im_w) < F(neth) / F(im_h):
        return netw, (im_h * netw) // im_w
    return (im_w * neth) // im_h, neth


def correct_boxes_c(boxes: List[List[F]], im_w, im_h, netw, neth, letter=True) -> None:
    """correct_region_boxes (pjreddie) = correct_yolo_boxes (AlexeyAB, with ``letter``),
    relative=1, in place."""
    new_w, new_h = letterbox_new_size(im_w, im_h, netw, neth) if letter else (netw, neth)
    for b in boxes:
        b[0] = F((float(b[0]) - (netw - new_w) / 2.0 / netw) / float(F(new_w) / F(netw)))
        b[1] = F((float(b[1]) - (neth - new_h) / 2.0 / neth) / float(F(new_h) / F(neth)))
        b[2] = F(b[2] * F(F(netw) / F(new_w)))
        b[3] = F(b[3] * F(F(neth) / F(new_h)))


def get_region_detections_c(output: np.ndarray, lw: int, lh: int, num: int, classes: int,
                            coords: int, background: bool, biases: Sequence[float], im_w: int,
                            im_h: int, netw: int, neth: int, thresh: float) -> np.ndarray:
    """pjreddie region_layer.c:get_region_detections (no tree, no map, batch 1), relative=1.
    ``output`` is the flat l.output; returns (l.w*l.h*l.n, 4+1+classes) rows."""
    out = output.reshape(-1)
    t = F(thresh)

    def entry_index(location, entry):
        n = location // (lw * lh)
        loc = location % (lw * lh)
        return n * lw * lh * (coords + classes + 1) + entry * lw * lh + loc

    def get_region_box(index, i, j, n, stride):
        x = F(F(F(i) + out[index + 0 * stride]) / F(lw))
        y = F(F(F(j) + out[index + 1 * stride]) / F(lh))
        w = F(math.exp(float(out[index + 2 * stride])) * float(F(biases[2 * n])) / lw)
        h = F(math.exp(float(out[index + 3 * stride])) * float(F(biases[2 * n + 1])) / lh)
        return [x, y, w, h]

    dets: List = [None] * (lw * lh * num)
    for i in range(lw * lh):
        row = i // lw
        col = i % lw
        for n in range(num):
            index = n * lw * lh + i
            prob = [F(0)] * classes
            obj_index = entry_index(n * lw * lh + i, coords)
            box_index = entry_index(n * lw * lh + i, 0)
            scale = F(1) if background else out[obj_index]
            bbox = get_region_box(box_index, col, row, n, lw * lh)
            objectness = scale if scale > t else F(0)
            if objectness:
                for j in range(classes):
                    class_index = entry_index(n * lw * lh + i, coords + 1 + j)
                    p = F(scale * out[class_index])
                    prob[j] = p if p > t else F(0)
            dets[index] = (bbox, objectness, prob)
    boxes = [d[0] for d in dets]
    correct_boxes_c(boxes, im_w, im_h, netw, neth)
    return np.array([b + [d[1]] + d[2] for b, d in zip(boxes, dets)], F)


def custom_get_region_detections_c(output: np.ndarray, lw: int, lh: int, num: int, classes: int,
                                   classfix: int, biases: Sequence[float], im_w: int, im_h: int,
                                   netw: int, neth: int, thresh: float,
                                   letter: bool) -> np.ndarray:
    """AlexeyAB network.c:custom_get_region_detections -> region_layer.c:get_region_boxes(l,
    1, 1, thresh, probs, boxes, 0, map=0) on its CPU l.output, objectness 1, then
    correct_yolo_boxes(..., relative=1, letter)."""
    out = output.reshape(-1)
    t = F(thresh)

    def logistic_activate(x):  # 1.f/(1.f + expf(-x))
        return F(F(1) / F(F(1) + np.exp(-x, dtype=F)))

    def get_region_box(index, i, j, n):  # DOABS
        x = F(F(F(i) + logistic_activate(out[index + 0])) / F(lw))
        y = F(F(F(j) + logistic_activate(out[index + 1])) / F(lh))
        w = F(math.exp(float(out[index + 2])) * float(F(biases[2 * n])) / lw)
        h = F(math.exp(float(out[index + 3])) * float(F(biases[2 * n + 1])) / lh)
        return [x, y, w, h]

    boxes: List = [None] * (lw * lh * num)
    probs: List = [None] * (lw * lh * num)
    for i in range(lw * lh):
        row = i // lw
        col = i % lw
        for n in range(num):
            index = i * num + n
            p_index = index * (classes + 5) + 4
            scale = out[p_index]
            if classfix == -1 and scale < .5:
                scale = F(0)
            box_index = index * (classes + 5)
            boxes[index] = get_region_box(box_index, col, row, n)  # then x *= w (1) ...
            class_index = index * (classes + 5) + 5
            probs[index] = []
            for j in range(classes):
                prob = F(scale * out[class_index + j])
                probs[index].append(prob if prob > t else F(0))
    correct_boxes_c(boxes, im_w, im_h, netw, neth, letter)
    return np.array([b + [F(1)] + p for b, p in zip(boxes, probs)], F)


# -- helpers ----------------------------------------------------------------------------------
def region_net(lw: int, lh: int, num: int, classes: int, coords: int, softmax: bool,
               background: bool, classfix: int, dialect: str) -> Darknet:
    anchors = ",".join(f"{0.4 + 0.7 * k:.2f},{1.9 - 0.3 * k:.2f}" for k in range(num))
    text = (f"[net]\nwidth={lw}\nheight={lh}\nchannels={num * (coords + classes + 1)}\n"
            f"[region]\nclasses={classes}\ncoords={coords}\nnum={num}\nsoftmax={int(softmax)}\n"
            f"anchors={anchors}\n")
    if background:
        text += "background=1\n"
    if classfix:
        text += f"classfix={classfix}\n"
    return Darknet(parse_cfg(text), dialect)


def randomize(model: Darknet, seed: int) -> None:
    """Random weights with roughly unit-scale activations (Darknet() starts at zeros)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 4:
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / p[0].numel()) ** 0.5)
            elif name.endswith("scales"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if "variance" in name:
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
            elif "mean" in name:
                b.copy_(0.1 * torch.randn(b.shape, generator=g))


def check_equal(got: DetectionArrays, want: np.ndarray, atol: float = 0.0) -> None:
    arr = got.to_array()
    assert arr.shape == want.shape
    assert np.array_equal(arr[:, 4:], want[:, 4:])  # objectness and probs: bit for bit
    if atol:
        np.testing.assert_allclose(arr[:, :4], want[:, :4], rtol=0, atol=atol)
    else:
        assert np.array_equal(arr[:, :4], want[:, :4])


# -- decode against the transliterations ------------------------------------------------------
@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(net=st.sampled_from([(64, 64), (96, 32), (32, 96)]),
       im=st.sampled_from([(768, 576), (576, 768), (100, 100), (333, 97)]),
       num=st.sampled_from([1, 3]), coords=st.sampled_from([4, 4, 5]), softmax=st.booleans(),
       background=st.booleans(), thresh=st.sampled_from([0.0, 0.2, 0.5]),
       seed=st.integers(0, 2 ** 31 - 1))
def test_pjreddie_region_decode_matches_darknet_transcription(net, im, num, coords, softmax,
                                                              background, thresh, seed):
    classes, lw, lh = 3, net[0] // 16, net[1] // 16
    model = region_net(lw, lh, num, classes, coords, softmax, background, 0, "pjreddie")
    layer = model.layers[0]
    x = torch.from_numpy(np.random.default_rng(seed).normal(
        0, 2, (1, num * (coords + classes + 1), lh, lw)).astype(F))
    with torch.no_grad():
        out = model(x)[0][0]
    got = get_region_detections(out, layer, im[0], im[1], net[0], net[1], thresh)
    want = get_region_detections_c(out.numpy(), lw, lh, num, classes, coords, background,
                                   layer.anchors, im[0], im[1], net[0], net[1], thresh)
    assert len(got) == lw * lh * num  # every cell and anchor, unlike [yolo]
    check_equal(got, want)
    if not background and thresh > 0:
        assert ((got.objectness == 0) | (got.objectness > F(thresh))).all()


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(net=st.sampled_from([(64, 64), (96, 32), (32, 96)]),
       im=st.sampled_from([(768, 576), (576, 768), (100, 100), (333, 97)]),
       num=st.sampled_from([1, 3]), coords=st.sampled_from([4, 4, 5]), softmax=st.booleans(),
       classfix=st.sampled_from([0, -1]), letter=st.booleans(),
       thresh=st.sampled_from([0.0, 0.2, 0.5]), seed=st.integers(0, 2 ** 31 - 1))
def test_alexeyab_region_decode_matches_darknet_transcription(net, im, num, coords, softmax,
                                                              classfix, letter, thresh, seed):
    """AlexeyAB reads records of classes+5 floats from its [cell][anchor][entry] buffer, also
    with coords > 4 (where they are misaligned): transliterated as is."""
    classes, lw, lh = 3, net[0] // 16, net[1] // 16
    model = region_net(lw, lh, num, classes, coords, softmax, False, classfix, "alexeyab")
    layer = model.layers[0]
    x = torch.from_numpy(np.random.default_rng(seed).normal(
        0, 2, (1, num * (coords + classes + 1), lh, lw)).astype(F))
    with torch.no_grad():
        out = model(x)[0][0]
    got = get_region_detections(out, layer, im[0], im[1], net[0], net[1], thresh, letter)
    want = custom_get_region_detections_c(out.numpy(), lw, lh, num, classes, classfix,
                                          layer.anchors, im[0], im[1], net[0], net[1], thresh,
                                          letter)
    assert len(got) == lw * lh * num and (got.objectness == 1).all()
    # x, y: the logistic is torch's exp here, numpy's expf there (an ulp or so apart, 1e-6
    # at most); a letterbox correction then divides by new_w/net_w (new_h/net_h), i.e.
    # multiplies that difference by how much the image is shrunk inside the network input
    stretch = 1.0
    if letter:
        if net[0] / im[0] < net[1] / im[1]:
            stretch = net[1] / (im[1] * net[0] // im[0])
        else:
            stretch = net[0] / (im[0] * net[1] // im[1])
    check_equal(got, want, atol=1e-6 * max(1.0, stretch))


def test_row_order_is_darknets():
    """pjreddie fills anchor-major (n*H*W + cell), AlexeyAB cell-major (cell*num + n)."""
    lw, lh, num = 3, 2, 2
    for dialect in ("pjreddie", "alexeyab"):
        model = region_net(lw, lh, num, 1, 4, False, False, 0, dialect)
        x = torch.zeros((1, num * 6, lh, lw))  # x, y = logistic(0): the cell centres
        with torch.no_grad():
            out = model(x)[0][0]
        dets = get_region_detections(out, model.layers[0], 60, 40, 60, 40, 0.0, False)
        cells = np.floor(dets.boxes[:, :2] * [lw, lh]).astype(int)  # (col, row) per row
        want = [(c % lw, c // lw) for n in range(num) for c in range(lw * lh)]
        if dialect == "alexeyab":
            want = [(c % lw, c // lw) for c in range(lw * lh) for n in range(num)]
        assert [tuple(r) for r in cells] == want


# -- whole networks -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def yolov2_tiny(reference):
    cfg = reference / "cfg" / "pjreddie" / "yolov2-tiny.cfg"
    models = {}
    for dialect in ("pjreddie", "alexeyab"):
        model = Darknet(read_cfg(cfg), dialect)
        randomize(model, 7)
        models[dialect] = model
    return cfg, models


def _image(w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w * h * 3).reshape(h, w, 3)
    return np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("dialect,size", [("pjreddie", (200, 120)), ("alexeyab", (90, 160))])
def test_yolov2_tiny_detect_equals_the_transliteration(yolov2_tiny, dialect, size):
    """model.detect on a synthetic image = letterbox/resize, forward, the C decode
    transliterated above, do_nms_sort, draw_detections' lines."""
    _, models = yolov2_tiny
    model = models[dialect]
    layer = model.layers[model.heads[0]]
    img = _image(*size, seed=size[0])
    thresh = 0.1
    got = model.detect(img, thresh=thresh)
    letter = dialect == "pjreddie"  # AlexeyAB's detector test resizes unless -letter_box
    # stacked as run_detector does: a resized (not letterboxed) input is channels-last in
    # memory, and the forward of the same numbers laid out otherwise differs by ~1e-5
    x = torch.from_numpy(np.stack([prepare(as_image(img), model.width, model.height, letter)]))
    with torch.no_grad():
        out = model(x)[0][0].numpy()
    lw, lh = layer.out_shape.w, layer.out_shape.h
    if dialect == "pjreddie":
        rows = get_region_detections_c(out, lw, lh, layer.num, layer.classes, layer.coords,
                                       False, layer.anchors, size[0], size[1], model.width,
                                       model.height, thresh)
    else:
        rows = custom_get_region_detections_c(out, lw, lh, layer.num, layer.classes, 0,
                                              layer.anchors, size[0], size[1], model.width,
                                              model.height, thresh, letter)
    assert rows.shape == (13 * 13 * 5, 85)
    dets, _ = do_nms_sort(DetectionArrays(rows[:, :4].copy(), rows[:, 4].copy(),
                                          rows[:, 5:].copy()), 0.45)
    # printed order: pjreddie's draw_detections, AlexeyAB's draw_detections_v3
    lines = to_detections if dialect == "pjreddie" else to_detections_v3
    want = lines(dets, [str(i) for i in range(80)], thresh, *size)
    assert len(got) > 3, "random weights found nothing: the test would prove little"
    assert [(d.class_id, d.prob, d.objectness, d.index) for d in got] == \
        [(d.class_id, d.prob, d.objectness, d.index) for d in want]
    for a, b in zip(got, want):
        assert (a.x, a.y, a.w, a.h) == pytest.approx((b.x, b.y, b.w, b.h), rel=1e-6, abs=1e-7)


def test_detector_test_and_detect_cli_on_a_region_network(yolov2_tiny, tmp_path, capsys,
                                                           monkeypatch):
    cfg, models = yolov2_tiny
    model = models["pjreddie"]
    weights = tmp_path / "rand.weights"
    model.save_weights(weights)
    from PIL import Image
    Image.fromarray(_image(200, 120, 200)).save(tmp_path / "synth.png")
    monkeypatch.chdir(tmp_path)
    assert main(["detector", "test", str(ROOT / "cfg" / "coco.data"), str(cfg), str(weights),
                 "synth.png", "-thresh", "0.1", "--no-image"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line][1:]
    assert lines == [d.line for d in model.detect(tmp_path / "synth.png", thresh=0.1)]
    assert len(lines) > 3
    assert main(["detect", str(cfg), str(weights), "synth.png", "-thresh", "0.1",
                 "--no-image"]) == 0
    assert [line for line in capsys.readouterr().out.splitlines() if line][1:] == lines


# -- what is refused ---------------------------------------------------------------------------
def test_mixed_and_mismatched_heads_are_clear_errors():
    base = "[net]\nwidth=4\nheight=4\nchannels=3\n[convolutional]\nfilters=6\nsize=1\n" \
           "activation=linear\n[region]\nclasses=1\ncoords=4\nnum=1\n"
    # [region] then [yolo]: fill_network_boxes concatenates each head's detections in order
    mixed = Darknet(parse_cfg(base + "[yolo]\nclasses=1\nnum=1\nmask=0\nanchors=10,14\n"))
    torch.manual_seed(0)
    outs = [o[0] for o in mixed(torch.rand(1, 3, 4, 4))]
    dets = get_network_boxes(mixed, outs, 8, 8, 0.5)
    assert len(dets) == 4 * 4 + int((outs[1][4] > 0.5).sum())
    two = Darknet(parse_cfg(base + "[region]\nclasses=2\ncoords=3\nnum=1\n"))
    with pytest.raises(darknet_py.CfgError, match="different numbers of classes"):
        two.detect(np.zeros((8, 8, 3), np.uint8))
    same = Darknet(parse_cfg(base + "[region]\nclasses=1\ncoords=4\nnum=1\n"))
    dets = get_network_boxes(same, [o[0] for o in same(torch.zeros(1, 3, 4, 4))], 8, 8, 0.5)
    assert len(dets) == 2 * 4 * 4  # two [region] layers: concatenated in layer order
