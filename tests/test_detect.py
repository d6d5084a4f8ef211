"""Detection as Darknet's get_network_boxes + do_nms_sort + draw_detections (darknet_py.detect)."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import darknet_py
from darknet_py import DataError
from darknet_py.cfg import parse_cfg
from darknet_py.detect import (COCO_NAMES, Detection, DetectionArrays, box_iou,
                               correct_yolo_boxes, detection_lines, do_nms_sort,
                               draw_detections, get_network_boxes, get_yolo_detections,
                               names_from_data, read_data_cfg, read_names, resolve_names,
                               run_detector)
from darknet_py.detect import prepare
from darknet_py.image import as_image, letterbox_image, letterbox_size, to_float
from darknet_py.layers.yolo import YoloLayer
from darknet_py.model import Darknet

F = np.float32
ROOT = Path(__file__).resolve().parent.parent
CASES = {"tiny-official-dog": "yolov3-tiny.cfg",
         "tiny-official-dog-416x256": "yolov3-tiny-416x256.cfg"}
THRESHOLDS = (0.5, 0.005)


# -- literal transcriptions of Darknet's C (scalar float32), to check the vectorized code --
def iou_naive(a, b) -> F:
    def overlap(x1, w1, x2, w2):
        l1, l2 = F(x1 - F(w1 / F(2))), F(x2 - F(w2 / F(2)))
        left = l1 if l1 > l2 else l2
        r1, r2 = F(x1 + F(w1 / F(2))), F(x2 + F(w2 / F(2)))
        right = r1 if r1 < r2 else r2
        return F(right - left)
    w = overlap(a[0], a[2], b[0], b[2])
    h = overlap(a[1], a[3], b[1], b[3])
    inter = F(0) if (w < 0 or h < 0) else F(w * h)
    union = F(F(F(a[2] * a[3]) + F(b[2] * b[3])) - inter)
    with np.errstate(all="ignore"):
        return F(inter / union)


def nms_naive(boxes, obj, probs, thresh) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[int]]:
    dets = [[boxes[i].copy(), obj[i], probs[i].copy(), i] for i in range(len(obj))]
    k = len(dets) - 1
    i = 0
    while i <= k:
        if dets[i][1] == 0:
            dets[i], dets[k] = dets[k], dets[i]
            k -= 1
            i -= 1
        i += 1
    total = k + 1
    dets = dets[:total]
    for c in range(probs.shape[1]):
        dets.sort(key=lambda d: -d[2][c])  # glibc qsort is a stable merge sort
        for i in range(total):
            if dets[i][2][c] == 0:
                continue
            for j in range(i + 1, total):
                if iou_naive(dets[i][0], dets[j][0]) > F(thresh):
                    dets[j][2][c] = 0
    if not dets:
        return (np.zeros((0, 4), F), np.zeros(0, F), np.zeros((0, probs.shape[1]), F), [])
    return (np.array([d[0] for d in dets]), np.array([d[1] for d in dets]),
            np.array([d[2] for d in dets]), [d[3] for d in dets])


def yolo_naive(out, mask, anchors, classes, im_w, im_h, net_w, net_h, thresh, new_coords=False,
               dialect="pjreddie"):
    n_a, (_, lh, lw) = len(mask), out.shape
    t = F(thresh)
    rows = []
    for i in range(lw * lh):
        row, col = divmod(i, lw)
        for n in range(n_a):
            base = n * (5 + classes)
            obj = out[base + 4].flat[i]
            if obj <= t:
                continue
            tx, ty, tw, th = (out[base + e].flat[i] for e in range(4))
            aw, ah = F(anchors[2 * mask[n]]), F(anchors[2 * mask[n] + 1])
            x = F(F(F(col) + tx) / F(lw))
            y = F(F(F(row) + ty) / F(lh))
            if new_coords:
                w = F(F(F(F(tw * tw) * F(4)) * aw) / F(net_w))
                h = F(F(F(F(th * th) * F(4)) * ah) / F(net_h))
            else:
                w = F(math.exp(float(tw)) * float(aw) / net_w)
                h = F(math.exp(float(th)) * float(ah) / net_h)
            probs = []
            for j in range(classes):
                p = F(obj * out[base + 5 + j].flat[i])
                probs.append(p if p > t else F(0))
            rows.append([x, y, w, h, obj] + probs)
    # correct_yolo_boxes, relative=1
    if F(net_w) / F(im_w) < F(net_h) / F(im_h):
        new_w, new_h = net_w, (im_h * net_w) // im_w
    else:
        new_w, new_h = (im_w * net_h) // im_h, net_h
    for r in rows:
        r[0] = F((float(r[0]) - (net_w - new_w) / 2.0 / net_w) / float(F(new_w) / F(net_w)))
        r[1] = F((float(r[1]) - (net_h - new_h) / 2.0 / net_h) / float(F(new_h) / F(net_h)))
        if dialect == "alexeyab":  # AlexeyAB: b.w *= 1 / ratiow
            r[2] = F(r[2] * F(F(1) / F(F(new_w) / F(net_w))))
            r[3] = F(r[3] * F(F(1) / F(F(new_h) / F(net_h))))
        else:  # pjreddie: b.w *= (float)netw/new_w
            r[2] = F(r[2] * F(F(net_w) / F(new_w)))
            r[3] = F(r[3] * F(F(net_h) / F(new_h)))
    return np.array(rows, F).reshape(-1, 5 + classes)


# -- decode and NMS against the transcriptions ----------------------------------------------
@settings(max_examples=40, deadline=None)
@given(net=st.sampled_from([(64, 64), (96, 32), (32, 96)]),
       im=st.sampled_from([(768, 576), (576, 768), (100, 100), (333, 97)]),
       new_coords=st.booleans(), thresh=st.sampled_from([0.0, 0.2, 0.5]),
       seed=st.integers(0, 2 ** 31 - 1), dialect=st.sampled_from(["pjreddie", "alexeyab"]))
def test_yolo_decode_matches_darknet_transcription(net, im, new_coords, thresh, seed, dialect):
    rng = np.random.default_rng(seed)
    classes, mask, anchors = 3, [1, 2], [10, 14, 23, 27, 37, 58]
    lh, lw = net[1] // 16, net[0] // 16
    out = rng.random((len(mask) * (5 + classes), lh, lw), dtype=np.float32)
    out[2::8] = rng.normal(size=out[2::8].shape).astype(F)
    layer = SimpleNamespace(mask=mask, classes=classes, new_coords=new_coords, dialect_name=dialect,
                            anchors_wh=[(anchors[2 * m], anchors[2 * m + 1]) for m in mask])
    got = YoloLayer.get_detections(layer, torch.from_numpy(out), im[0], im[1], net[0], net[1],
                                   thresh)
    want = yolo_naive(out, mask, anchors, classes, im[0], im[1], net[0], net[1], thresh,
                      new_coords, dialect)
    assert got.to_array().shape == want.shape
    np.testing.assert_array_max_ulp(got.to_array(), want, maxulp=1)


_vals = st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.5, 0.9])


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 24).flatmap(lambda n: st.tuples(
    st.lists(st.tuples(st.sampled_from([0.2, 0.25, 0.5, 0.7]), st.sampled_from([0.3, 0.5]),
                       st.sampled_from([0.1, 0.2, 0.4]), st.sampled_from([0.2, 0.4])),
             min_size=n, max_size=n),
    st.lists(st.sampled_from([0.0, 0.6, 0.8]), min_size=n, max_size=n),
    st.lists(st.tuples(_vals, _vals, _vals), min_size=n, max_size=n))),
    st.sampled_from([0.0, 0.3, 0.45, 0.7]))
def test_do_nms_sort_matches_darknet_transcription(data, thresh):
    n = len(data[0])
    dets = DetectionArrays(np.array(data[0], F).reshape(n, 4), np.array(data[1], F).reshape(n),
                           np.array(data[2], F).reshape(n, 3))
    got, order = do_nms_sort(dets, thresh)
    wb, wo, wp, worder = nms_naive(dets.boxes, dets.objectness, dets.probs, thresh)
    assert order.tolist() == worder
    assert np.array_equal(got.boxes, wb) and np.array_equal(got.objectness, wo)
    assert np.array_equal(got.probs, wp)


def test_do_nms_sort_large_block_path_agrees(monkeypatch):
    """IoU rows on demand (used for very many candidate boxes) = the precomputed IoU table."""
    rng = np.random.default_rng(5)
    n = 300
    boxes = np.column_stack([rng.random(n), rng.random(n), 0.05 + 0.3 * rng.random(n),
                             0.05 + 0.3 * rng.random(n)]).astype(F)
    probs = (rng.random((n, 4)) * (rng.random((n, 4)) > 0.3)).astype(F)
    dets = DetectionArrays(boxes, np.ones(n, F), probs)
    block, order = do_nms_sort(dets, 0.45)
    import darknet_py.postprocess as detect_module
    monkeypatch.setattr(detect_module, "NMS_FULL", 16)
    rows, order2 = do_nms_sort(dets, 0.45)
    assert np.array_equal(order, order2) and np.array_equal(block.probs, rows.probs)
    assert (block.probs > 0).sum() < (probs > 0).sum()


def test_box_iou_is_darknets():
    a, b = np.array([0.5, 0.5, 0.2, 0.2], F), np.array([0.55, 0.45, 0.3, 0.1], F)
    assert box_iou(torch.from_numpy(a), torch.from_numpy(b)).item() == iou_naive(a, b)
    far = np.array([0.9, 0.9, 0.01, 0.01], F)
    assert box_iou(torch.from_numpy(a), torch.from_numpy(far)).item() == 0.0


def test_nms_is_per_class_not_class_agnostic():
    boxes = np.array([[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]], F)
    probs = np.array([[0.9, 0.0], [0.0, 0.8]], F)  # same box, different classes: both stay
    out, _ = do_nms_sort(DetectionArrays(boxes, np.ones(2, F), probs), 0.45)
    assert sorted(out.probs.max(axis=1).tolist()) == pytest.approx([0.8, 0.9])
    probs = np.array([[0.9, 0.0], [0.8, 0.0]], F)  # same class: the weaker is zeroed
    out, _ = do_nms_sort(DetectionArrays(boxes, np.ones(2, F), probs), 0.45)
    assert sorted(out.probs[:, 0].tolist()) == pytest.approx([0.0, 0.9])


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([(768, 576), (576, 768), (1, 1), (640, 100), (99, 700)]),
       st.sampled_from([(416, 416), (416, 256), (256, 416), (320, 608)]),
       st.floats(0.1, 0.9), st.floats(0.1, 0.9), st.floats(0.05, 0.5), st.floats(0.05, 0.5))
def test_correct_yolo_boxes_undoes_the_letterbox(im, net, x, y, w, h):
    """A box placed in the letterboxed input maps back to the same place in the image --
    up to Darknet's half pixel: letterbox_image offsets by (net-new)/2 in integers,
    correct_yolo_boxes by (net-new)/2. in double."""
    new_w, new_h = letterbox_size(im[0], im[1], net[0], net[1])
    dx, dy = (net[0] - new_w) // 2, (net[1] - new_h) // 2
    boxed = torch.tensor([[(dx + x * new_w) / net[0], (dy + y * new_h) / net[1],
                           w * new_w / net[0], h * new_h / net[1]]], dtype=torch.float32)
    back = correct_yolo_boxes(boxed, im[0], im[1], net[0], net[1])[0].tolist()
    half_x = (dx - (net[0] - new_w) / 2.0) / new_w
    half_y = (dy - (net[1] - new_h) / 2.0) / new_h
    assert abs(half_x) * new_w <= 0.5 and abs(half_y) * new_h <= 0.5
    assert back == pytest.approx([x + half_x, y + half_y, w, h], abs=2e-6)


# -- the reference cases: Darknet's own numbers ---------------------------------------------
@pytest.fixture(scope="module")
def models(pj_cases, tiny_weights) -> Dict[str, Darknet]:
    return {case: darknet_py.load(pj_cases / case / cfg, tiny_weights)
            for case, cfg in CASES.items()}


@pytest.fixture(scope="module")
def from_decoded(pj_cases, models):
    """get_network_boxes of each case run on Darknet's own decoded pixels, per thresh."""
    decoded = to_float(np.load(pj_cases / "tiny-official-dog" / "image_decoded_u8.npy"))
    out = {}
    for case, model in models.items():
        x = torch.from_numpy(letterbox_image(decoded, model.width, model.height))[None]
        with torch.no_grad():
            heads = model(x)
        for t in THRESHOLDS:
            out[case, t] = get_network_boxes(model, [h[0] for h in heads], 768, 576, t)
    return out


def _as_set(arr: np.ndarray, thresh: float) -> List[Tuple[int, np.ndarray, float]]:
    return sorted(((int(c), arr[r, :4], float(arr[r, 5 + c]))
                   for r, c in zip(*np.nonzero(arr[:, 5:] > F(thresh)))),
                  key=lambda e: (e[0], *e[1].tolist()))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("thresh", THRESHOLDS)
def test_prenms_detections_in_darknet_fill_order(pj_cases, from_decoded, case, thresh):
    want = np.load(pj_cases / case / f"dets_t{thresh}_prenms.npy")
    got = from_decoded[case, thresh].to_array()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("thresh", THRESHOLDS)
def test_nms_detections_match_darknet_as_sets(pj_cases, from_decoded, case, thresh):
    want = np.load(pj_cases / case / f"dets_t{thresh}.npy")
    got, order = do_nms_sort(from_decoded[case, thresh], 0.45)
    assert got.to_array().shape == want.shape
    gs, ws = _as_set(got.to_array(), thresh), _as_set(want, thresh)
    assert [g[0] for g in gs] == [w[0] for w in ws]
    for (_, gbox, gprob), (_, wbox, wprob) in zip(gs, ws):
        assert abs(gprob - wprob) <= 1e-4
        assert np.abs(gbox - wbox).max() <= 1e-4
    # stronger than asked: glibc's qsort is a stable merge sort, so even the order is Darknet's
    assert order.tolist() == np.load(pj_cases / case / f"dets_t{thresh}_order.npy").tolist()


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("thresh", THRESHOLDS)
def test_printed_lines_are_darknets(pj_cases, from_decoded, case, thresh):
    got, _ = do_nms_sort(from_decoded[case, thresh], 0.45)
    want = (pj_cases / case / f"printed_t{thresh}.txt").read_text().splitlines()
    assert detection_lines(got, COCO_NAMES, thresh) == want


def match_jpeg(want: np.ndarray, got: DetectionArrays, thresh: float,
               margin: float = 0.02) -> Tuple[int, float, float]:
    """Every Darknet (det, class) with prob > thresh+margin must be found in ``got`` (same
    class, nearest box); returns (count, max prob difference, max box difference)."""
    count, dprob, dbox = 0, 0.0, 0.0
    for r, c in zip(*np.nonzero(want[:, 5:] > thresh + margin)):
        count += 1
        cand = np.nonzero(got.probs[:, c] > 0)[0]
        assert cand.size, f"class {c} box {want[r, :4]} not found"
        dist = np.abs(got.boxes[cand] - want[r, :4]).max(axis=1)
        best = cand[int(np.argmin(dist))]
        dbox = max(dbox, float(dist.min()))
        dprob = max(dprob, abs(float(got.probs[best, c]) - float(want[r, 5 + c])))
    return count, dprob, dbox


@pytest.mark.parametrize("case", list(CASES))
def test_from_jpeg_through_pillow(reference, pj_cases, models, case):
    """Pillow decodes dog.jpg a little differently from stb: every Darknet detection more
    than 0.02 from the threshold is still found, prob and box within 0.01 (measured on
    these cases: prob <= 0.0069, box <= 0.0009)."""
    model = models[case]
    image = as_image(reference / "images" / "dog.jpg")  # Pillow's decode, not stb's
    with torch.no_grad():
        heads = model(torch.from_numpy(prepare(image, model.width, model.height))[None])
    for thresh in THRESHOLDS:
        pre = get_network_boxes(model, [h[0] for h in heads], 768, 576, thresh)
        result = SimpleNamespace(dets=do_nms_sort(pre, 0.45)[0])
        want = np.load(pj_cases / case / f"dets_t{thresh}.npy")
        count, dprob, dbox = match_jpeg(want, result.dets, thresh)
        assert count > 0 and dprob <= 0.01 and dbox <= 0.01, (count, dprob, dbox)
        # and nothing we find far above the threshold is unknown to Darknet
        back, _, _ = match_jpeg(result.dets.to_array(), DetectionArrays(
            want[:, :4], want[:, 4], want[:, 5:]), thresh)
        assert back > 0


# -- the Python API ---------------------------------------------------------------------
def test_model_detect_api(reference, models):
    model = models["tiny-official-dog"]
    path = reference / "images" / "dog.jpg"
    dets = model.detect(path)
    assert [d.name for d in dets] == ["dog", "car", "truck", "car", "bicycle"]
    assert all(isinstance(d, Detection) for d in dets)
    dog = dets[0]
    assert dog.class_id == 16 and dog.image == str(path)
    assert dog.prob == pytest.approx(0.5735, abs=0.01) and dog.prob <= dog.objectness
    assert dog.x1 == pytest.approx((dog.x - dog.w / 2) * 768)
    assert dog.y2 == pytest.approx((dog.y + dog.h / 2) * 576)
    assert dog.to_json()["name"] == "dog" and dog.line.startswith("dog: ")
    with Image.open(path) as pil:
        same = model.detect([pil.copy(), np.asarray(pil)], batch_size=2)
    for other in same:
        assert [d.name for d in other] == [d.name for d in dets]
        assert [d.prob for d in other] == pytest.approx([d.prob for d in dets], abs=1e-5)
    low = model.detect(str(path), thresh=0.25, nms=0, hier_thresh=0.3,
                       names=[n.upper() for n in COCO_NAMES])
    assert len(low) > len(dets) + 3 and "DOG" in {d.name for d in low}  # no NMS


def test_batched_equals_one_at_a_time(reference, models):
    model = models["tiny-official-dog-416x256"]
    images = [reference / "images" / n for n in ("dog.jpg", "person.jpg")]
    one = [r.dets.to_array() for r in run_detector(model, images, thresh=0.1, batch_size=1)]
    many = [r.dets.to_array() for r in run_detector(model, images, thresh=0.1, batch_size=2)]
    for a, b in zip(one, many):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_decode_workers_change_nothing_but_timing(reference, models, tmp_path):
    model = models["tiny-official-dog-416x256"]
    (tmp_path / "junk.png").write_text("not an image")
    images = [reference / "images" / "dog.jpg", tmp_path / "junk.png",
              reference / "images" / "person.jpg"]
    runs = {}
    for workers in (0, 2):
        failed = []
        results = list(run_detector(model, images, thresh=0.1, batch_size=1, workers=workers,
                                    on_error=lambda exc, image: failed.append(image)))
        runs[workers] = [(r.source, r.dets.to_array()) for r in results]
        assert failed == [tmp_path / "junk.png"]
    assert [s for s, _ in runs[0]] == [s for s, _ in runs[2]] == [str(images[0]), str(images[2])]
    for (_, a), (_, b) in zip(runs[0], runs[2]):
        np.testing.assert_array_equal(a, b)


def test_portrait_and_landscape_networks(reference, pj_cases, tiny_weights, tmp_path):
    """Unseen network sizes and images: the pipeline is the same code, and Darknet's geometry
    (letterbox into a portrait network, correct_yolo_boxes back) keeps boxes in place."""
    cfg = (pj_cases / "tiny-official-dog" / "yolov3-tiny.cfg").read_text()
    found = {}
    for w, h in ((256, 416), (352, 224)):
        text = cfg.replace("width=416", f"width={w}").replace("height=416", f"height={h}")
        (tmp_path / f"{w}x{h}.cfg").write_text(text)
        model = darknet_py.load(tmp_path / f"{w}x{h}.cfg", tiny_weights)
        assert (model.width, model.height) == (w, h)
        dets = model.detect(reference / "images" / "person.jpg", thresh=0.4)
        found[w, h] = {d.name for d in dets}
        for d in dets:
            assert -0.1 < d.x < 1.1 and -0.1 < d.y < 1.1 and 0 < d.w < 1.5 and 0 < d.h < 1.5
    assert all("person" in names for names in found.values()), found


def test_model_without_yolo_heads_is_a_clear_error():
    net = Darknet(parse_cfg("[net]\nwidth=8\nheight=8\nchannels=3\n"
                            "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"))
    with pytest.raises(darknet_py.CfgError, match="no detection layer"):
        net.detect(np.zeros((8, 8, 3), np.uint8))


def test_thin_image_in_a_list(models, tmp_path):
    Image.new("RGB", (10000, 20)).save(tmp_path / "strip.png")
    with pytest.raises(DataError, match="strip.png"):
        models["tiny-official-dog"].detect([tmp_path / "strip.png"])
    Image.new("RGB", (1, 1), (128, 128, 128)).save(tmp_path / "dot.png")
    assert models["tiny-official-dog"].detect(tmp_path / "dot.png") == []


# -- names and .data files ------------------------------------------------------------------
def test_coco_names(reference):
    assert len(COCO_NAMES) == 80
    assert list(COCO_NAMES) == (reference / "images" / "coco.names").read_text().splitlines()
    assert read_names(ROOT / "cfg" / "coco.names") == list(COCO_NAMES)
    assert names_from_data(ROOT / "cfg" / "coco.data") == list(COCO_NAMES)


def test_data_file_names_resolution(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "my.names").write_text("a\nb\r\n")
    (tmp_path / "sub" / "x.data").write_text("# comment\nclasses= 2\n names = my.names\n")
    assert read_data_cfg(tmp_path / "sub" / "x.data") == {"classes": "2", "names": "my.names"}
    assert names_from_data(tmp_path / "sub" / "x.data") == ["a", "b"]  # beside the .data
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.names").write_text("c\nd\n")
    assert names_from_data("sub/x.data") == ["c", "d"]  # the current folder first, as Darknet
    (tmp_path / "bad.data").write_text("names = nowhere.names\n")
    with pytest.raises(DataError, match="nowhere.names") as err:
        names_from_data("bad.data")
    assert "\n" not in str(err.value) and "bad.data" in str(err.value)
    with pytest.raises(DataError, match="no such .data file"):
        names_from_data("missing.data")
    (tmp_path / "junk.data").write_text("just words\n")
    with pytest.raises(darknet_py.CfgError, match="junk.data:1"):
        read_data_cfg("junk.data")
    with pytest.raises(DataError, match="2 class names for a network with 3 classes"):
        resolve_names(["a", "b"], 3)


def test_draw_detections_colours_and_labels():
    img = Image.new("RGB", (200, 100), (255, 255, 255))
    dets = DetectionArrays(np.array([[0.5, 0.5, 0.5, 0.5]], F), np.array([0.9], F),
                           np.array([[0.0, 0.8, 0.7]], F))
    out = draw_detections(img, dets, ["a", "b", "c"], 0.5)
    px = np.asarray(out)
    assert out.size == img.size
    assert (px[60, 100] == 255).all()  # inside the box: untouched
    assert tuple(px[75, 100]) == (255, 170, 0)  # bottom edge, class 1's colour of 3
    assert not (px[50, 50] == 255).all()  # the left edge (x = 50) is drawn
