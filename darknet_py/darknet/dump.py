"""Case folders made by a real Darknet: :func:`dump_case`, and :func:`decode_image`.

:func:`dump_case` runs the harness (``harness.c``) of a Darknet build on a cfg
and writes a case folder in the format of ``shared/reference/darknet/README.md``
(``case.json`` with mode/cfg/weights/init/seed/input_seed/procedure/layers/files,
``input.npy``, ``layer_NNN.npy``, ...), which ``darknet-py compare`` reads:

* ``forward``: every layer's ``l.output`` for ``input`` (an array or ``.npy``, (C,H,W))
  or for ``np.random.RandomState(input_seed).uniform(0, 1, (C,H,W))``;
* ``detect``: ``detector test``'s path on ``image``: the build's stb_image decode
  (``image_decoded_u8.npy``), the network input (letterboxed; AlexeyAB: resized
  unless ``letterbox``, and BN fused as its ``detector test`` does), every layer,
  ``dets_<t>.npy`` / ``_prenms`` / ``_order`` and ``printed_<t>.txt`` per threshold;
* ``train``: ``iterations`` ``train_network`` calls on ``X`` (B,C,H,W) / ``y``
  (B, boxes, 5 pjreddie | 6 AlexeyAB; a network without detection heads, a classifier
  with a [softmax] loss: (B, truths), one-hot rows), or on a seeded random batch with random
  boxes / labels: ``train_log``, ``yolo_cost_iter1`` (every layer with a cost, [softmax]
  included), ``iter1_yolo_output/delta_NNN``, ``iter1_layer_NNN`` and
  ``weights_iter{k}.weights``; with ``deltas=True`` also ``iter1_delta_NNN``: every layer's
  ``l.delta`` as iteration 1's backward left it. ``HARNESS_ALLOC_LSTM_DELTA=1`` in the
  environment lets the harness allocate the CPU ``l.delta`` that both forks'
  ``make_lstm_layer`` omit (without it their training forward segfaults); the case says so.

Without ``weights`` the network is initialised at random from ``seed`` exactly as
the reference cases' ``init`` says (reproduces their ``.weights`` byte for byte)
and saved into the folder. The folder is written in a temporary sibling and
renamed into place: never half-written.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import BridgeError, DataError
from . import harness
from .build import DarknetBuild, resolve_build

PathLike = Union[str, "os.PathLike[str]"]
ArrayLike = Union[PathLike, np.ndarray]

MODES = ("forward", "detect", "train")

#: layer types (as the harness names them, lower-cased) that read boxes from the truth
DETECTION_HEADS = ("yolo", "region", "detection", "gaussian_yolo")

#: learning_rate_policy enum of darknet.h (both forks; AlexeyAB appends sgdr)
POLICIES = ("constant", "step", "exp", "poly", "steps", "sig", "random", "sgdr")

REPO = {"pjreddie": "pjreddie/darknet", "alexeyab": "AlexeyAB/darknet"}

INIT = {
    "pjreddie": (
        "srand(seed); parse_network_cfg(cfg) (darknet random init: conv weights = "
        "sqrt(2/(size*size*c/groups))*rand_normal(); make_yolo_layer calls srand(0), so layers after "
        "the first [yolo] are initialised from srand(0)); then srand(seed+7919): for every "
        "[convolutional] (and [batchnorm], BN [connected]) layer in order, per filter: BN scale~U(0.5,1.5) "
        "(if BN), bias (BN beta)~U(-0.2,0.2); then one train-mode forward on rand_uniform(0,1) input "
        "(same stream) and per BN filter rolling_mean = batch_mean + U(-0.1,0.1)*sqrt(batch_var), "
        "rolling_variance = batch_var*U(0.8,1.25). save_weights() right after: that file is the "
        "weights of this case."),
    "alexeyab": (
        "srand(seed); net=parse_network_cfg(cfg) (train-mode allocation); make_yolo_layer calls "
        "srand(time(0)), so srand(seed) again and REDRAW every conv weight with darknet's formula "
        "sqrt(2/(size*size*c/groups))*rand_uniform(-1,1), layer by layer; then srand(seed+7919): for "
        "every [convolutional] (and [batchnorm], BN [connected]) layer in order, per filter: BN "
        "scale~U(0.5,1.5) (if BN), bias~U(-0.2,0.2); then one train-mode forward (all-zero truth) on "
        "rand_uniform(0,1) input and per BN filter rolling_mean = batch_mean + "
        "U(-0.1,0.1)*sqrt(batch_var), rolling_variance = batch_var*U(0.8,1.25). save_weights() right "
        "after: that file is the weights of this case."),
}

PROCEDURE = {
    ("pjreddie", "forward"): "srand(seed); net=parse_network_cfg(cfg); set_batch_network(net,1); "
                             "load_weights or [random init]; network_predict(net, input) "
                             "(net->train=0); dump l.output of every layer",
    ("alexeyab", "forward"): "srand(seed); net=parse_network_cfg(cfg); set_batch_network(&net,1); "
                             "load_weights or [random init]; network_predict(net, input) "
                             "(state.train=0; NO fuse_conv_batchnorm); dump l.output of every layer",
    ("pjreddie", "detect"): "as detector test: net=parse_network_cfg(cfg); set_batch_network(net,1); "
                            "load_weights; im=load_image_color(image,0,0); "
                            "sized=letterbox_image(im,net->w,net->h); network_predict(net, sized.data); "
                            "for thresh: dets=get_network_boxes(net, im.w, im.h, thresh, hier_thresh, "
                            "0, 1, &nboxes); do_nms_sort(dets, nboxes, classes, nms); "
                            "draw_detections(...) prints printed_<t>.txt",
    ("alexeyab", "detect"): "as detector test: net=parse_network_cfg_custom(cfg,1,1); load_weights; "
                            "fuse_conv_batchnorm; calculate_binary_weights; "
                            "im=load_image(image,0,0,net.c); sized = letterbox_image if letter_box "
                            "else resize_image(im,net.w,net.h); network_predict; for thresh: "
                            "get_network_boxes(&net, im.w, im.h, thresh, hier_thresh, 0, 1, &nboxes, "
                            "letter_box); do_nms_sort or diounms_sort per nms_kind; "
                            "draw_detections_v3(...) prints printed_<t>.txt",
    ("pjreddie", "train"): "srand(seed); net=parse_network_cfg(cfg) (net->batch = batch/subdivisions); "
                           "load_weights or [random init]; build data d with d.X (B rows of C*H*W) "
                           "and d.y (B rows of net->truths); srand(seed+12345); for it in 1..K: "
                           "loss=train_network(net, d); after it==1 dump [yolo]/[region] "
                           "l.output/l.delta/*(l.cost) and every layer l.output (train mode, the last "
                           "mini-batch) [and, with -D, every layer's l.delta]; save_weights after "
                           "every it",
    ("alexeyab", "train"): "srand(seed); net=parse_network_cfg(cfg) (net.batch = batch/subdivisions); "
                           "load_weights or [random init]; data d with d.X (B rows) and d.y (B rows "
                           "of net.truths, 6 floats a box); srand(seed+12345); for it in 1..K: "
                           "loss=train_network(net, d) (one update per call); after it==1 dump "
                           "[yolo]/[region] l.output/l.delta/*(l.cost) and every layer l.output "
                           "[and, with -D, every layer's l.delta]; save_weights after every it",
}


@dataclass
class NetInfo:
    """What the harness reports about a parsed network."""

    w: int
    h: int
    c: int
    batch: int
    subdivisions: int
    inputs: int
    truths: int
    seen: int = 0
    params: Dict[str, float] = field(default_factory=dict)
    layers: List[dict] = field(default_factory=list)
    extra: Dict[str, list] = field(default_factory=dict)

    @property
    def classes(self) -> int:
        heads = [l["classes"] for l in self.layers if l["type"] in ("yolo", "region", "detection")]
        return heads[-1] if heads else 0


def _read_facts(path: Path) -> NetInfo:
    info: Optional[NetInfo] = None
    layers, extra = [], {}
    for line in path.read_text(encoding="utf-8").splitlines():
        kind, *v = line.split()
        if kind == "net":
            info = NetInfo(*map(int, v[:7]), seen=int(v[7]))
        elif kind == "params" and info is not None:
            keys = ("learning_rate", "momentum", "decay", "burn_in", "power", "policy", "max_batches")
            # float32 cfg values, written as their shortest repr (0.001, not 0.00100000005)
            info.params = {k: (float(str(np.float32(x))) if "." in x or "e" in x else int(x))
                           for k, x in zip(keys, v)}
        elif kind == "layer":
            layers.append({"index": int(v[0]), "type": v[1], "out_c": int(v[2]), "out_h": int(v[3]),
                           "out_w": int(v[4]), "outputs": int(v[5]), "classes": int(v[6]),
                           "dumped": bool(int(v[7]))})
        else:
            extra.setdefault(kind, []).append(v)
    if info is None:
        raise BridgeError("the Darknet harness wrote no network facts", file=path)
    info.layers, info.extra = layers, extra
    return info


# -- inputs ---------------------------------------------------------------------------------
def _array(value: ArrayLike, what: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.load(os.fspath(value), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {what} array: {exc}", file=value) from None


def random_boxes(rs: np.random.RandomState, rows: int, max_boxes: int, per_box: int,
                 classes: int) -> np.ndarray:
    """Seeded truth: 1..min(10, max_boxes) boxes an image, x,y~U(0.1,0.9), w,h~U(0.05,0.6),
    class uniform; zero rows end each list (track_id 0 for AlexeyAB's 6-float boxes)."""
    y = np.zeros((rows, max_boxes, per_box), dtype=np.float32)
    for b in range(rows):
        n = int(rs.randint(1, min(10, max_boxes) + 1))
        y[b, :n, 0:2] = rs.uniform(0.1, 0.9, (n, 2))
        y[b, :n, 2:4] = rs.uniform(0.05, 0.6, (n, 2))
        y[b, :n, 4] = rs.randint(0, max(classes, 1), n)
    return y


def random_labels(rs: np.random.RandomState, rows: int, classes: int) -> np.ndarray:
    """Seeded classifier truth: one class uniform per row, one-hot over ``classes``."""
    y = np.zeros((rows, classes), dtype=np.float32)
    y[np.arange(rows), rs.randint(0, max(classes, 1), rows)] = 1
    return y


def _finite(text: str) -> Optional[float]:
    value = float(text)
    return value if np.isfinite(value) else None


def _names_file(folder: Path, classes: int, names: Optional[Sequence[str]]) -> Path:
    from ..detect import COCO_NAMES
    if names is None:
        names = COCO_NAMES if classes == len(COCO_NAMES) else [str(i) for i in range(classes)]
    path = folder / "names.txt"
    path.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    return path


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _npy_entry(folder: Path, name: str, **extra) -> dict:
    arr = np.load(folder / name, mmap_mode="r")
    entry = {"file": name, "shape": list(arr.shape), "dtype": str(arr.dtype)}
    entry.update(extra)
    return entry


def _build_text(build: DarknetBuild) -> str:
    """How the build was made, without paths (case folders hold no absolute paths)."""
    try:
        meta = json.loads((Path(build.folder) / "build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    make = meta.get("make")
    if make:
        return " ".join(m for m in make if not m.startswith("-j")) + " (darknet_py build)"
    return f"your own build ({Path(build.lib).name})"


def network_info(build: "DarknetBuild | PathLike", cfg: PathLike, *,
                 timeout: float = harness.DEFAULT_TIMEOUT_S) -> NetInfo:
    """Parse ``cfg`` with the build's Darknet: input size, batch, truths, layer table."""
    build = resolve_build(build)
    cfg = Path(cfg).resolve()
    if not cfg.is_file():
        raise BridgeError("no such cfg file", file=cfg)
    with tempfile.TemporaryDirectory(prefix="dpy-info-") as tmp:
        harness.run(build, ["info", cfg, tmp], what=cfg, cwd=Path(tmp), timeout=timeout)
        return _read_facts(Path(tmp) / "harness.txt")


def decode_image(build: "DarknetBuild | PathLike", path: PathLike, *,
                 timeout: float = 120) -> np.ndarray:
    """(3, H, W) uint8: ``path`` decoded by the build's own stb_image (``load_image_color``)."""
    build = resolve_build(build)
    name = Path(path).resolve()
    if not name.is_file():
        raise DataError("no such image file", file=path)
    with tempfile.TemporaryDirectory(prefix="dpy-decode-") as tmp:
        stderr = harness.run(build, ["decode", name, "decoded.npy"], what=path, cwd=Path(tmp),
                             timeout=timeout)
        if "Cannot load image" in stderr or not (Path(tmp) / "decoded.npy").is_file():
            raise DataError(f"Darknet's stb_image cannot decode it ({harness._last_line(stderr)})",
                            file=path)
        return np.load(Path(tmp) / "decoded.npy")


def dump_case(build: "DarknetBuild | PathLike", cfg: PathLike, weights: Optional[PathLike] = None, *,
              mode: str = "forward", out_dir: PathLike, image: Optional[PathLike] = None,
              input: Optional[ArrayLike] = None, seed: Optional[int] = None,
              input_seed: Optional[int] = None, thresholds: Sequence[float] = (0.5, 0.005),
              hier_thresh: float = 0.5, nms: float = 0.45, letterbox: bool = False,
              names: Optional[Sequence[str]] = None, iterations: int = 3,
              X: Optional[ArrayLike] = None, y: Optional[ArrayLike] = None,
              save_every: int = 1, deltas: bool = False,
              timeout: float = harness.DEFAULT_TIMEOUT_S) -> Path:
    """Run the real Darknet of ``build`` on ``cfg`` and write a case folder to ``out_dir``.

    ``seed`` (default 1) seeds the random init when there are no ``weights``;
    ``input_seed`` (default ``seed + 1``) seeds a random input / train batch when
    none is given. In train mode ``X`` may be a stack of batches (N, B, C, H, W) with
    ``y`` (N, B, boxes, per_box): iteration k trains on batch (k-1) % N. ``save_every``
    keeps ``weights_iter{k}.weights`` only for k multiple of it (and the last).
    ``deltas`` (train) dumps every layer's ``l.delta`` after iteration 1's backward (the
    last mini-batch's) as ``iter1_delta_NNN.npy``. Returns the folder.
    """
    if mode not in MODES:
        raise BridgeError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    build = resolve_build(build)
    cfg_p = Path(cfg).resolve()
    if not cfg_p.is_file():
        raise BridgeError("no such cfg file", file=cfg)
    weights_p = None if weights is None else Path(weights).resolve()
    if weights_p is not None and not weights_p.is_file():
        raise BridgeError("no such weights file", file=weights)
    if mode == "detect" and image is None:
        raise BridgeError("detect mode needs an image")
    seed = 1 if seed is None else int(seed)
    input_seed = seed + 1 if input_seed is None else int(input_seed)
    out = Path(out_dir).resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "case.json").exists())):
        raise BridgeError("output exists and is not a case folder; choose a new folder", file=out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    work = Path(tempfile.mkdtemp(prefix="dpy-dump-"))
    try:
        info = network_info(build, cfg_p, timeout=timeout)
        shutil.copyfile(cfg_p, stage / cfg_p.name)
        args = [mode, cfg_p, stage]
        args += ["-w", weights_p] if weights_p is not None else ["-s", seed]
        manifest: dict = {"case": out.name, "mode": mode,
                          "darknet": {"repo": REPO[build.fork], "build": _build_text(build),
                                      "src_sha256": build.src_hash,
                                      "harness": "darknet_py/darknet/harness.c"},
                          "cfg": cfg_p.name}
        files: List[dict] = []
        # an image input (C,H,W), or flat for cfgs that give only [net] inputs=
        chw = (info.c, info.h, info.w) if info.c * info.h * info.w == info.inputs else (info.inputs,)
        if mode == "forward":
            if input is not None:
                x = np.ascontiguousarray(_array(input, "input"), dtype=np.float32)
                if x.size != info.inputs:
                    raise DataError(f"input has {x.size} values, the network takes {info.inputs} "
                                    f"(C,H,W = {chw})", file=None if isinstance(input, np.ndarray) else input)
                x = x.reshape(chw)
                desc = "the given input"
            else:
                x = np.random.RandomState(input_seed).uniform(0, 1, size=chw).astype(np.float32)
                desc = f"np.random.RandomState({input_seed}).uniform(0,1,size=(C,H,W)).astype(float32)"
                manifest["input_seed"] = input_seed
            np.save(stage / "input.npy", x)
            x.astype("<f4").tofile(work / "input.f32")
            args += ["-i", work / "input.f32"]
            files.append(_npy_entry(stage, "input.npy", layout="CHW", description=desc))
            manifest["input_shape_chw"] = list(chw)
        elif mode == "detect":
            image_p = Path(image).resolve()
            if not image_p.is_file():
                raise DataError("no such image file", file=image)
            args += ["-m", image_p, "-n", _names_file(work, info.classes, names),
                     "-H", hier_thresh, "-N", nms]
            for t in thresholds:
                args += ["-t", repr(float(t))]
            if letterbox:
                args.append("-l")
            manifest.update(image=image_p.name, thresholds=[float(t) for t in thresholds],
                            hier_thresh=hier_thresh, nms=nms)
        else:
            # detection heads read boxes of 5 (pjreddie) / 6 (AlexeyAB) floats; a classifier
            # ([softmax] loss) reads a row of net.truths floats (one-hot labels)
            detector = any(l["type"].lower() in DETECTION_HEADS for l in info.layers)
            per_box = (6 if build.fork == "alexeyab" else 5) if detector else max(info.truths, 1)
            row_shape = (info.truths // per_box, per_box) if detector else (info.truths,)
            nb = 1
            if X is not None:
                xs = np.ascontiguousarray(_array(X, "X"), dtype=np.float32)
                if xs.ndim == 5:  # a stack of batches, one per iteration (cycled)
                    nb, xs = xs.shape[0], xs.reshape((-1,) + xs.shape[2:])
                rows = xs.shape[0] if xs.ndim == 4 else xs.size // max(info.inputs, 1)
                rows //= nb
                if xs.size != nb * rows * info.inputs:
                    raise DataError(f"X must be (B, {', '.join(map(str, chw))})")
            else:
                rows = info.batch * info.subdivisions
                rs = np.random.RandomState(input_seed)
                xs = rs.uniform(0, 1, size=(rows,) + chw).astype(np.float32)
                manifest["input_seed"] = input_seed
            if y is not None:
                ys = np.ascontiguousarray(_array(y, "y"), dtype=np.float32)
            elif detector:
                ys = random_boxes(np.random.RandomState(input_seed + 1), rows,
                                  info.truths // per_box, per_box, info.classes)
            else:
                ys = random_labels(np.random.RandomState(input_seed + 1), rows, info.truths)
            if ys.size != nb * rows * info.truths:
                lead = f"{nb}, " if nb > 1 else ""
                want = ", ".join(map(str, row_shape))
                raise DataError(f"y must be ({lead}B, {want}) for this cfg (net truths "
                                f"{info.truths}), got {ys.shape}")
            stack = (nb,) if nb > 1 else ()
            ys = ys.reshape(stack + (rows,) + row_shape)
            if rows % info.batch:
                raise DataError(f"{rows} images is not a multiple of the mini-batch {info.batch}")
            if int(save_every) < 1:
                raise BridgeError(f"save_every must be a positive count, got {save_every}")
            np.save(stage / "X.npy", xs.reshape(stack + (rows,) + chw))
            np.save(stage / "y.npy", ys)
            xs.astype("<f4").tofile(work / "X.f32")
            ys.astype("<f4").tofile(work / "y.f32")
            args += ["-i", work / "X.f32", "-y", work / "y.f32", "-r", rows, "-k", int(iterations)]
            if nb > 1:
                args += ["-b", nb]
                manifest["batches"] = nb
            if int(save_every) != 1:
                args += ["-e", int(save_every)]
                manifest["save_every"] = int(save_every)
            if deltas:
                args.append("-D")
            files += [_npy_entry(stage, "X.npy", layout=("N x " if nb > 1 else "") + "BCHW, [0,1]"),
                      _npy_entry(stage, "y.npy", layout=(
                          f"B x {info.truths // per_box} x {per_box}: x,y,w,h (relative, center), "
                          "class_id" + (", track_id" if per_box == 6 else "")) if detector else
                          f"B x {info.truths}: net.truth rows (one-hot labels)")]
            params = dict(info.params)
            policy = int(params.get("policy", -1))
            params["policy"] = POLICIES[policy] if 0 <= policy < len(POLICIES) else policy
            manifest.update(input_shape_bchw=[rows, *chw], K=int(iterations),
                            net_params=dict(batch=info.batch * info.subdivisions,
                                            subdivisions=info.subdivisions, **params))
        stderr = harness.run(build, args, what=cfg_p, cwd=work, timeout=timeout)
        if mode == "detect" and "Cannot load image" in stderr:
            raise DataError(f"Darknet's stb_image cannot decode it ({harness._last_line(stderr)})",
                            file=image)
        facts = _read_facts(stage / "harness.txt")
        (stage / "harness.txt").unlink()
        if weights_p is not None:
            manifest["weights"] = weights_p.name
            if not (stage / weights_p.name).exists():
                _link_or_copy(weights_p, stage / weights_p.name)
        else:
            manifest["weights"] = ("weights_init.weights" if mode == "train" else "weights.weights") \
                + " (random init, see init)"
            manifest["init"] = INIT[build.fork]
            manifest["seed"] = seed
        manifest["procedure"] = PROCEDURE[(build.fork, mode)]
        patched = [int(i) for i, in facts.extra.get("lstm_delta", [])]
        if patched:
            manifest["harness_patch"] = (
                f"HARNESS_ALLOC_LSTM_DELTA=1: the harness allocated l.delta (outputs*batch*steps "
                f"floats) of the [lstm] layers {patched}, which make_lstm_layer leaves NULL on the "
                f"CPU (Darknet's own training dies there)")
        prefix = "iter1_" if mode == "train" else ""
        manifest["layers"] = [{k: l[k] for k in ("index", "type", "out_c", "out_h", "out_w", "dumped")}
                              for l in facts.layers]
        if mode == "detect":
            c, h, w, _, letter = facts.extra["image"][0]
            manifest["image_shape_chw"] = [int(c), int(h), int(w)]
            manifest["letterbox"] = bool(int(letter))
            manifest["num_dets"] = {f"t{float(t):g}": int(n) for t, n in facts.extra.get("dets", [])}
            files.append(_npy_entry(stage, "image_decoded_u8.npy", layout="CHW, RGB, uint8",
                                    description="load_image_color(path,0,0) (stb_image) as bytes; "
                                                "darknet float = np.float32(u8/255.)"))
            files.append(_npy_entry(stage, "input.npy", layout="CHW, RGB, [0,1]",
                                    description="the exact network input"))
            manifest["input_shape_chw"] = files[-1]["shape"]
        for l in facts.layers:
            name = f"{prefix}layer_{l['index']:03d}.npy"
            if l["dumped"] and (stage / name).exists():
                files.append(_npy_entry(stage, name, layer=l["index"], layer_type=l["type"]))
        if mode == "detect":
            for t in manifest["thresholds"]:
                for suffix in ("", "_prenms", "_order"):
                    files.append(_npy_entry(stage, f"dets_t{t:g}{suffix}.npy", thresh=t))
                files.append({"file": f"printed_t{t:g}.txt",
                              "description": "lines Darknet's draw_detections prints"})
        if mode == "train":
            manifest["train_log"] = [
                {"iter": int(it), "loss": float(loss), "rate_before_call": float(r0),
                 "rate_used_in_update": float(r1), "seen_after": int(seen), "net_cost": _finite(cost)}
                for it, loss, r0, r1, seen, cost in facts.extra.get("train", [])]
            manifest["yolo_cost_iter1"] = {str(int(i)): float(c) for i, c in facts.extra.get("cost", [])}
            for i, _ in facts.extra.get("cost", []):
                for part in ("output", "delta"):
                    files.append(_npy_entry(stage, f"iter1_yolo_{part}_{int(i):03d}.npy", layer=int(i)))
            for i, in facts.extra.get("delta", []):
                files.append(_npy_entry(stage, f"iter1_delta_{int(i):03d}.npy", layer=int(i),
                                        description="l.delta after iteration 1's backward "
                                                    "(the last mini-batch)"))
            files += [{"file": f"weights_iter{k}.weights"} for k in range(1, int(iterations) + 1)
                      if k % int(save_every) == 0 or k == int(iterations)]
        if weights_p is None:
            files.append({"file": manifest["weights"].split(" ")[0],
                          "description": "darknet weights file written by save_weights() after init"})
        manifest["files"] = files
        (stage / "case.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        (stage / "harness.log").unlink(missing_ok=True)
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return out


__all__ = ["MODES", "NetInfo", "decode_image", "dump_case", "network_info", "random_boxes",
           "random_labels"]
