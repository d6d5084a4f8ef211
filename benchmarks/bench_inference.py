"""CPU inference: darknet_py against OpenCV 4.x, pytorchyolo and the conv-only floor.

    pip install -e '.[bench]'                     # opencv-python-headless<5
    pip install pytorchyolo --no-deps             # optional third row (needs tqdm)
    python benchmarks/bench_inference.py [--models yolov3-tiny,yolov3,yolov4-tiny]
        [--batches 1,8] [--size 416] [--threads 2] [--rounds 15] [--quick]

Every contender runs the same cfg and the same weights (official yolov3-tiny
weights when cached, else random ones darknet_py saves), on the same input, all
*interleaved* in one run: each round calls every contender once, so a busy
machine slows them alike. Reports the median and the best per contender, and the
ratios of darknet_py to each (medians; best in brackets):

* darknet_py: ``model(x)`` under ``torch.no_grad()`` (the fast path,
  :mod:`darknet_py.fast`), and the plain path for reference;
* OpenCV 4.x: ``cv2.dnn.readNetFromDarknet`` + ``forward`` of the [yolo] outputs;
* pytorchyolo (eriklindernoren/PyTorch-YOLOv3): ``Darknet(cfg)`` +
  ``load_darknet_weights``, eval mode (it imports torchvision and imgaug for
  training and data only: both are stubbed here);
* floor: the network's convolutions alone (``F.conv2d`` with each conv's weights
  and bias on an input of its shape), NCHW and channels_last, and a third with the
  weights prepacked once into oneDNN's blocked layout (channels_last, as the fast
  path runs them: without it the floor would pay a weight reorder per call that the
  fast path does not); the fastest of the three is counted.

A baseline that is not installed (or cannot run a cfg) is skipped with a message.
Not a test: timings move with the machine's load; compare ratios from one run.
On a shared machine, ``--threads 1 --clock cpu`` counts the CPU time each
contender used, which other processes disturb far less than wall time.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import types
import warnings

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from darknet_py import Darknet, fast, read_cfg  # noqa: E402
from darknet_py.cfg import write_cfg  # noqa: E402

CFGS = {
    "yolov3-tiny": os.path.join(ROOT, "cfg", "yolov3-tiny.cfg"),
    "yolov3": os.path.join(ROOT, "cfg", "yolov3.cfg"),
    # AlexeyAB's cfg (not shipped here): from the reference data, or pass --cfg-dir
    "yolov4-tiny": os.path.join(ROOT, "..", "shared", "reference", "cfg", "alexeyab",
                                "yolov4-tiny.cfg"),
}


def _stub_modules() -> None:
    """pytorchyolo imports torchvision and imgaug at module level, for training/data only."""
    for name in ("torchvision", "torchvision.ops", "torchvision.transforms", "imgaug",
                 "imgaug.augmenters", "imgaug.augmentables", "imgaug.augmentables.bbs",
                 "terminaltables"):
        if name not in sys.modules:
            try:
                __import__(name)
            except ImportError:
                sys.modules[name] = types.ModuleType(name)


def _pytorchyolo(cfg_path: str, weights_path: str):
    _stub_modules()
    from pytorchyolo.models import Darknet as YoloDarknet
    net = YoloDarknet(cfg_path)
    net.load_darknet_weights(weights_path)
    return net.eval()


def _opencv(cfg_path: str, weights_path: str, threads: int):
    import cv2
    if not hasattr(cv2.dnn, "readNetFromDarknet"):
        raise RuntimeError(f"OpenCV {cv2.__version__} has no Darknet importer (needs 4.x)")
    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromDarknet(cfg_path, weights_path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net, net.getUnconnectedOutLayersNames(), cv2.__version__


FLOORS = ("floor NCHW", "floor channels_last", "floor packed channels_last")


def _floor(model: Darknet, x: torch.Tensor):
    """The network's convolutions alone, each on an input of its shape: ``F.conv2d`` in
    NCHW and in channels_last, and oneDNN's convolution on a weight reordered once into
    its blocked layout (channels_last input, no fused activation; the prepacking the fast
    path does, so the floor does not charge the per-call weight reorder that ``F.conv2d``
    pays). Returns {name: callable}; the packed one is left out where torch lacks the op."""
    with torch.no_grad(), fast.plain():
        outs = model.layer_outputs(x)
    convs = [(l, outs[l.index - 1] if l.index else x)
             for l in model.layers if l.kind == "convolutional"]

    def run(pairs):
        for l, i in pairs:
            F.conv2d(i, l.weight, l.bias, l.stride, l.padding, l.dilation, l.groups)
    cl = [(l, i.contiguous(memory_format=torch.channels_last)) for l, i in convs]
    floors = {FLOORS[0]: lambda: run(convs), FLOORS[1]: lambda: run(cl)}
    try:
        pointwise = torch.ops.mkldnn._convolution_pointwise.default
        reorder = torch.ops.mkldnn._reorder_convolution_weight.default
    except (AttributeError, RuntimeError):
        return floors
    if not torch.backends.mkldnn.is_available():
        return floors
    packed = []
    for l, i in cl:
        pad, stride, dil = [l.padding] * 2, list(l.stride), [l.dilation] * 2
        w = reorder(l.weight.detach(), pad, stride, dil, l.groups, list(i.shape))
        packed.append((i, w, l.bias.detach(), pad, stride, dil, l.groups))

    def run_packed():
        for i, w, b, pad, stride, dil, groups in packed:
            pointwise(i, w, b, pad, stride, dil, groups, "none", [], None)
    floors[FLOORS[2]] = run_packed
    return floors


def bench(name: str, cfg_path: str, batch: int, args, tmp: str) -> None:
    sections = read_cfg(cfg_path)
    for key, value in (("width", args.size), ("height", args.size), ("batch", batch),
                       ("subdivisions", 1)):
        sections[0].set(key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(sections, warn_unused=False)
    cfg_out = os.path.join(tmp, f"{name}.cfg")
    weights = os.path.join(tmp, f"{name}.weights")
    write_cfg(sections, cfg_out)
    official = os.path.expanduser(f"~/.cache/darknet_py/{name}.weights")
    if os.path.isfile(official) and args.size == 416:
        model.load_weights(official)
        source = "official weights"
    else:
        source = "random weights"
    model.save_weights(weights)
    model.eval()
    x = torch.rand(batch, 3, args.size, args.size)
    contenders = {}
    with torch.no_grad():
        contenders["darknet_py"] = lambda: model(x)

        def plain():
            with fast.plain():
                model(x)
        contenders["darknet_py plain"] = plain
        contenders.update(_floor(model, x))
    skipped = []
    try:
        net, names, version = _opencv(cfg_out, weights, args.threads)
        blob = x.numpy()

        def run_cv():
            net.setInput(blob)
            return net.forward(names)
        contenders[f"OpenCV {version}"] = run_cv
    except Exception as exc:  # not installed, or cannot read the cfg
        skipped.append(f"OpenCV: skipped ({type(exc).__name__}: {exc})".splitlines()[0])
    try:
        yolo = _pytorchyolo(cfg_out, weights)
        contenders["pytorchyolo"] = lambda: yolo(x)
    except Exception as exc:
        skipped.append(f"pytorchyolo: skipped ({type(exc).__name__}: {exc})".splitlines()[0])
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times = {k: [] for k in contenders}
    with torch.no_grad():
        for fn in contenders.values():  # warm-up (folding, allocator, oneDNN primitives)
            fn()
        for _ in range(args.rounds):
            for key, fn in contenders.items():
                t = clock()
                fn()
                times[key].append(clock() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    floors = [k for k in FLOORS if k in med]
    floor_key = min(floors, key=med.get)
    floor_best = min(best[k] for k in floors)
    print(f"\n{name} at {args.size}x{args.size}, batch {batch}, {args.threads} threads, "
          f"{source}, {args.rounds} interleaved rounds, {args.clock} time")
    ours_m, ours_b = med["darknet_py"], best["darknet_py"]
    for key in contenders:
        line = f"  {key:<28} median {med[key] * 1000:8.1f} ms  best {best[key] * 1000:8.1f} ms"
        if key != "darknet_py":
            line += (f"   darknet_py/this = {ours_m / med[key]:.2f} "
                     f"[{ours_b / best[key]:.2f}]")
        print(line)
    print(f"  darknet_py / faster floor ({floor_key}) = {ours_m / med[floor_key]:.2f} "
          f"[best/best {ours_b / floor_best:.2f}]")
    for line in skipped:
        print("  " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", help="default yolov3-tiny,yolov3,yolov4-tiny")
    parser.add_argument("--batches", help="default 1,8")
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, help="default 15")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: yolov3-tiny, batch 1, 3 rounds, size 416 unless "
                             "given (every contender still runs)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: process CPU time, steadier on a shared machine (use with "
                             "--threads 1: with more, idle threads' spinning counts too)")
    parser.add_argument("--cfg-dir", help="folder holding <model>.cfg for models not in cfg/")
    args = parser.parse_args()
    quick = {"models": "yolov3-tiny", "batches": "1", "rounds": 3}
    full = {"models": "yolov3-tiny,yolov3,yolov4-tiny", "batches": "1,8", "rounds": 15}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, python "
          f"{platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            path = os.path.join(args.cfg_dir, f"{name}.cfg") if args.cfg_dir else CFGS.get(name)
            if not path or not os.path.isfile(path):
                print(f"\n{name}: skipped (no cfg at {path}; pass --cfg-dir)")
                continue
            for batch in (int(b) for b in args.batches.split(",")):
                bench(name, path, batch, args, tmp)


if __name__ == "__main__":
    main()
