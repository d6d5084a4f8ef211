"""CPU inference speed against OpenCV's Darknet importer and a conv-only PyTorch floor.

    pip install 'opencv-python-headless<5'     # OpenCV 5 removed its Darknet importer
    python benchmarks/bench_inference.py [--cfg cfg/yolov3-tiny.cfg] [--size 416] [--threads 2]

All three run the same cfg and the same random weights (darknet_py saves them,
OpenCV reads that .weights file), on one 1x3xSIZExSIZE input, best of N:

* darknet_py: ``model(x)`` under ``torch.no_grad()`` (Darknet's numerics: BN,
  activations and maxpool as separate passes in Darknet's order);
* OpenCV 4.x: ``cv2.dnn.readNetFromDarknet`` + ``forward`` of the [yolo] outputs;
* floor: only the network's convolutions (``F.conv2d`` on inputs of each conv's
  shape), i.e. what no PyTorch implementation of this cfg can beat.

Prints seconds per image and the ratios darknet_py/OpenCV and darknet_py/floor.
Time it on a quiet machine: a second busy process can slow 2-thread torch 10x.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from darknet_py import Darknet, read_cfg  # noqa: E402


def best_of(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", default=os.path.join(ROOT, "cfg", "yolov3-tiny.cfg"))
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    sections = read_cfg(args.cfg)
    sections[0].set("width", args.size)
    sections[0].set("height", args.size)
    sections[0].set("batch", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(sections)
    x = torch.rand(1, 3, args.size, args.size)

    with torch.no_grad():
        ours = best_of(lambda: model(x), args.repeat)
        convs = [(layer, torch.rand(1, layer.weight.shape[1] * layer.groups,
                                    *model.layers[layer.index - 1].out_shape[1:])
                  if layer.index else x)
                 for layer in model.layers if layer.kind == "convolutional"]
        floor = best_of(lambda: [F.conv2d(i, l.weight, l.bias, l.stride, l.padding, l.dilation,
                                          l.groups) for l, i in convs], args.repeat)
    print(f"{os.path.basename(args.cfg)} at {args.size}x{args.size}, batch 1, "
          f"{args.threads} threads")
    print(f"darknet_py          : {ours * 1000:8.1f} ms")
    print(f"conv-only floor     : {floor * 1000:8.1f} ms   darknet_py/floor  = {ours / floor:.2f}")
    try:
        import cv2
    except ImportError:
        print("OpenCV              : not installed (pip install 'opencv-python-headless<5')")
        return
    if not hasattr(cv2.dnn, "readNetFromDarknet"):
        print(f"OpenCV {cv2.__version__}: no Darknet importer (needs OpenCV 4.x)")
        return
    cv2.setNumThreads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path, weights_path = os.path.join(tmp, "net.cfg"), os.path.join(tmp, "net.weights")
        from darknet_py.cfg import write_cfg
        write_cfg(sections, cfg_path)
        model.save_weights(weights_path)
        net = cv2.dnn.readNetFromDarknet(cfg_path, weights_path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    blob = x.numpy()
    names = net.getUnconnectedOutLayersNames()

    def run_cv():
        net.setInput(blob)
        return net.forward(names)
    theirs = best_of(run_cv, args.repeat)
    print(f"OpenCV {cv2.__version__:<12} : {theirs * 1000:8.1f} ms   darknet_py/OpenCV = "
          f"{ours / theirs:.2f}")


if __name__ == "__main__":
    main()
