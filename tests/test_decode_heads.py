"""Decode and NMS formulas checked against values worked out by hand.

[Gaussian_yolo] (``get_gaussian_yolo_detections``), [detection]
(``get_detection_detections``), AlexeyAB's ``correct_yolo_boxes`` size scale,
``box_diou``/``box_diounms`` and ``diounms_sort``. The same code is compared with the
real AlexeyAB build in tests/test_detect_alexeyab.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from darknet_py.cfg import parse_cfg
from darknet_py.model import Darknet
from darknet_py.postprocess import DetectionArrays, box_diou, diounms_sort, do_nms_sort


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_gaussian_yolo_decode_by_hand():
    # one 1x1 cell, one anchor (20, 10) on a 40x40 input, 2 classes
    cfg = ("[net]\nwidth=40\nheight=40\nchannels=11\n"
           "[Gaussian_yolo]\nclasses=2\nnum=1\nmask=0\nanchors=20,10\n")
    net = Darknet(parse_cfg(cfg), "alexeyab")
    head = net.layers[0]
    # entries: x, sx, y, sy, w, sw, h, sh, obj, c0, c1 (logistic on all but w, h)
    raw = [_logit(0.25), _logit(0.2), _logit(0.5), _logit(0.4), math.log(2.0), _logit(0.1),
           0.0, _logit(0.3), _logit(0.8), _logit(0.9), _logit(0.1)]
    out = net(torch.tensor(raw, dtype=torch.float32).view(1, 11, 1, 1))[0][0]
    dets = head.get_detections(out, 40, 40, 40, 40, 0.25, letterbox=False)
    assert len(dets) == 1
    # x = (0 + .25)/1, y = .5, w = exp(ln 2)*20/40 = 1, h = 1*10/40 = .25
    np.testing.assert_allclose(dets.boxes[0], [0.25, 0.5, 1.0, 0.25], rtol=1e-6)
    # mean sigma = (.2 + .4 + .1 + .3)/4 = .25; prob = .8 * .9 * (1 - .25) = .54; .8*.1*.75 = .06
    np.testing.assert_allclose(dets.probs[0], [0.54, 0.0], rtol=1e-6)
    assert dets.objectness[0] == pytest.approx(0.8)


def test_detection_decode_by_hand():
    # side=1, num=1, classes=2, sqrt=1: [c0, c1, scale, x, y, w, h]
    cfg = ("[net]\nwidth=1\nheight=1\nchannels=7\n"
           "[detection]\nside=1\nnum=1\ncoords=4\nclasses=2\nsqrt=1\n")
    net = Darknet(parse_cfg(cfg))
    head = net.layers[0]
    out = net(torch.tensor([0.5, 0.25, 0.8, 0.5, 0.25, 0.5, 0.2]).view(1, 7, 1, 1))[0][0]
    dets = head.get_detections(out, 100, 50, 448, 448, 0.3)
    # x = (.5 + 0)/1 * 100 = 50 (pixels: Darknet passes the image size), y = .25*50 = 12.5,
    # w = .5**2 * 100 = 25, h = .2**2 * 50 = 2; probs .8*.5 = .4, .8*.25 = .2 -> 0 (< .3)
    np.testing.assert_allclose(dets.boxes[0], [50.0, 12.5, 25.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(dets.probs[0], [0.4, 0.0], rtol=1e-6)
    assert dets.objectness[0] == pytest.approx(0.8)


def test_alexeyab_correct_yolo_boxes_size_scale():
    from darknet_py.layers.yolo import correct_yolo_boxes
    b = torch.tensor([[0.5, 0.5, 0.3, 0.3]])
    # 768x576 into 416x416 letterboxed: new 416x312; ratio h = 312/416 = .75
    pj = correct_yolo_boxes(b, 768, 576, 416, 416, True, "pjreddie")[0]
    ab = correct_yolo_boxes(b, 768, 576, 416, 416, True, "alexeyab")[0]
    assert float(ab[3]) == pytest.approx(0.3 / 0.75, rel=1e-6)
    assert float(pj[3]) == pytest.approx(0.3 * 416 / 312, rel=1e-6)
    # without letterbox nothing changes
    same = correct_yolo_boxes(b, 768, 576, 416, 416, False, "alexeyab")[0]
    assert same.tolist() == b[0].tolist()


def test_box_diou_by_hand():
    a = torch.tensor([0.5, 0.5, 0.2, 0.2])
    b = torch.tensor([0.6, 0.5, 0.2, 0.2])
    # IoU = .02/.06 = 1/3; enclosing box .3 x .2: c = .09 + .04 = .13; d = .01
    assert float(box_diou(a, b, 1.0)) == pytest.approx(1 / 3 - 0.01 / 0.13, rel=1e-5)
    assert float(box_diou(a, b, 0.6)) == pytest.approx(1 / 3 - (0.01 / 0.13) ** 0.6, rel=1e-5)
    # same centre: d = 0, DIoU = IoU
    assert float(box_diou(a, torch.tensor([0.5, 0.5, 0.1, 0.1]))) == pytest.approx(0.25)


def test_diounms_suppresses_less_than_iou_nms():
    # two boxes with IoU 1/3 and centres apart: IoU-NMS at .3 suppresses the second,
    # DIoU (1/3 - (.01/.13)**.6 = .12) does not; corners = plain IoU
    boxes = np.array([[0.5, 0.5, 0.2, 0.2], [0.6, 0.5, 0.2, 0.2]], np.float32)
    dets = DetectionArrays(boxes, np.ones(2, np.float32), np.array([[0.9], [0.8]], np.float32))
    iou, _ = do_nms_sort(dets, 0.3)
    assert iou.probs[:, 0].tolist() == pytest.approx([0.9, 0.0])
    for kind in ("greedynms", "diounms"):
        kept, _ = diounms_sort(dets, 0.3, kind, 0.6)
        assert kept.probs[:, 0].tolist() == pytest.approx([0.9, 0.8])
    corners, _ = diounms_sort(dets, 0.3, "cornersnms")
    assert corners.probs[:, 0].tolist() == pytest.approx([0.9, 0.0])
    # beta_nms matters for diounms only: beta 3 makes the penalty tiny (.077**3), so suppress
    strict, _ = diounms_sort(dets, 0.3, "diounms", 3.0)
    assert strict.probs[:, 0].tolist() == pytest.approx([0.9, 0.0])
    loose, _ = diounms_sort(dets, 0.3, "greedynms", 3.0)  # greedynms ignores beta: .6
    assert loose.probs[:, 0].tolist() == pytest.approx([0.9, 0.8])
