"""Compare darknet_py with outputs of the real Darknet, layer by layer.

A *case folder* (format: ``shared/reference/darknet/README.md``) holds a
``case.json`` manifest naming the cfg, the weights and the mode, the network
input ``input.npy`` and Darknet's ``l.output`` of layers as ``layer_NNN.npy``.
:func:`compare_case` runs the same cfg, weights and input and measures, per
layer, the max absolute error and that error relative to the layer's max
magnitude; a layer passes when the relative error is within ``tolerance``.

    >>> row = LayerDiff(3, "maxpool", (16, 208, 208), 2e-5, 5e-7, True)
    >>> row.format()
    '    3  maxpool         16x208x208      2.000e-05  5.000e-07'
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .errors import DataError
from .model import Darknet

DEFAULT_TOLERANCE = 1e-4


@dataclass
class LayerDiff:
    index: int
    kind: str
    shape: Tuple[int, ...]
    max_abs: float
    max_rel: float
    ok: bool
    note: str = ""

    def format(self) -> str:
        shape = "x".join(str(s) for s in self.shape)
        text = f"{self.index:>5}  {self.kind:<14}  {shape:<14}  {self.max_abs:>9.3e}  {self.max_rel:>9.3e}"
        if not self.ok:
            text += "  MISMATCH" + (f" ({self.note})" if self.note else "")
        return text


@dataclass
class CompareReport:
    case: str
    mode: str
    tolerance: float
    rows: List[LayerDiff] = field(default_factory=list)
    #: extra checks beyond layer outputs (e.g. detections): (name, ok, detail)
    checks: List[Tuple[str, bool, str]] = field(default_factory=list)

    @property
    def first_bad(self) -> Optional[LayerDiff]:
        return next((r for r in self.rows if not r.ok), None)

    @property
    def ok(self) -> bool:
        return self.first_bad is None and all(ok for _, ok, _ in self.checks)

    @property
    def worst(self) -> Optional[LayerDiff]:
        finite = [r for r in self.rows if math.isfinite(r.max_rel)]
        return max(finite, key=lambda r: r.max_rel) if finite else None

    def summary(self) -> str:
        worst = self.worst
        where = f", worst {worst.max_rel:.2e} at layer {worst.index}" if worst else ""
        state = "OK" if self.ok else "MISMATCH"
        bad = self.first_bad
        first = f", first bad layer {bad.index} ({bad.kind})" if bad else ""
        failed = [name for name, ok, _ in self.checks if not ok]
        extra = f", failed checks: {', '.join(failed)}" if failed else ""
        return (f"{state}: {self.case}: {len(self.rows)} layers compared{where} "
                f"(tolerance {self.tolerance:g} of each layer's max |value|){first}{extra}")

    def lines(self) -> List[str]:
        out = [f"{'layer':>5}  {'type':<14}  {'shape':<14}  {'max_abs':>9}  {'max_rel':>9}"]
        out += [r.format() for r in self.rows]
        for name, ok, detail in self.checks:
            out.append(f"{'ok' if ok else 'MISMATCH':>8}  {name}: {detail}")
        bad = self.first_bad
        out.append("first layer over tolerance: " + (f"{bad.index} ({bad.kind})" if bad else "none"))
        out.append(self.summary())
        return out


@dataclass
class Case:
    """A reference case folder, parsed."""

    folder: Path
    manifest: Dict
    mode: str
    cfg: Path
    weights: Optional[Path]
    weights_name: str
    dialect: str

    @property
    def name(self) -> str:
        return str(self.manifest.get("case") or self.folder.name)

    def layer_file(self, index: int) -> Path:
        return self.folder / f"layer_{index:03d}.npy"


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read array: {exc}", file=path) from None


def load_case(folder: "os.PathLike[str] | str") -> Case:
    """Parse ``folder/case.json``; the weights default to the file the manifest names."""
    root = Path(folder)
    manifest_path = root / "case.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("not a reference case folder (no case.json)", file=root) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read case manifest: {exc}", file=manifest_path) from None
    if not isinstance(manifest, dict) or "cfg" not in manifest:
        raise DataError("case.json has no 'cfg'", file=manifest_path)
    repo = str((manifest.get("darknet") or {}).get("repo", ""))
    dialect = "alexeyab" if "alexeyab" in repo.lower() else "pjreddie"
    weights_name = str(manifest.get("weights") or "").split(" ")[0]
    weights = root / weights_name if weights_name and (root / weights_name).is_file() else None
    return Case(root, manifest, str(manifest.get("mode", "forward")), root / manifest["cfg"],
                weights, weights_name, dialect)


def _official_weights(name: str) -> Optional[Path]:
    from . import zoo
    for key, spec in zoo.OFFICIAL.items():
        if spec.filename == name:
            return zoo.fetch(key)
    return None


def layer_diff(index: int, kind: str, ours: np.ndarray, ref: np.ndarray,
               tolerance: float) -> LayerDiff:
    """Errors of one layer; a shape mismatch or non-finite value fails it."""
    if ours.size == ref.size and ours.shape != ref.shape:
        ours = ours.reshape(ref.shape)
    if ours.shape != ref.shape:
        return LayerDiff(index, kind, tuple(ref.shape), math.inf, math.inf, False,
                         f"shape {tuple(ours.shape)} vs Darknet's {tuple(ref.shape)}")
    diff = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    ok = bool(np.isfinite(ours).all() == np.isfinite(ref).all()) and max_rel <= tolerance
    return LayerDiff(index, kind, tuple(ref.shape), max_abs, max_rel, ok)


def match_detections(ours: np.ndarray, ref: np.ndarray, thresh: float,
                     tolerance: float = 1e-4) -> Tuple[bool, str]:
    """Compare two (N, 5+classes) detection arrays as *sets* of (class, box, prob) above
    ``thresh`` (Darknet's qsort order is not stable): every pair must find a partner of the
    same class with box and prob within ``tolerance``."""
    def entries(arr: np.ndarray) -> List[Tuple[int, np.ndarray, float]]:
        rows, cls = np.nonzero(arr[:, 5:] > np.float32(thresh))
        return [(int(c), arr[r, :4].astype(np.float64), float(arr[r, 5 + c]))
                for r, c in zip(rows, cls)]
    mine, theirs = entries(ours), entries(ref)
    if len(mine) != len(theirs):
        return False, f"{len(mine)} (class, box) pairs, Darknet has {len(theirs)}"
    free = list(range(len(mine)))
    worst_box = worst_prob = 0.0
    for cls, box, prob in theirs:
        best, best_d = None, math.inf
        for j in free:
            if mine[j][0] == cls:
                d = float(np.abs(mine[j][1] - box).max())
                if d < best_d:
                    best, best_d = j, d
        if best is None or best_d > tolerance:
            return False, f"no detection of class {cls} at box {np.round(box, 4).tolist()}"
        free.remove(best)
        worst_box = max(worst_box, best_d)
        worst_prob = max(worst_prob, abs(mine[best][2] - prob))
    ok = worst_prob <= tolerance
    return ok, (f"{len(theirs)} (class, box) pairs, max box error {worst_box:.2e}, "
                f"max prob error {worst_prob:.2e}")


def detection_checks(case: Case, model: Darknet, heads: Sequence[torch.Tensor]) -> List[Tuple[str, bool, str]]:
    """Detect-mode cases: Darknet's get_network_boxes + do_nms_sort at each threshold."""
    from .detect import COCO_NAMES, detection_lines, do_nms_sort, get_network_boxes
    m = case.manifest
    try:
        _, im_h, im_w = m["image_shape_chw"]
        thresholds = [float(t) for t in m.get("thresholds", [0.5])]
    except (KeyError, TypeError, ValueError):
        raise DataError("detect case without image_shape_chw/thresholds",
                        file=case.folder / "case.json") from None
    nms, hier = float(m.get("nms", 0.45)), float(m.get("hier_thresh", 0.5))
    checks = []
    for t in thresholds:
        ref_path = case.folder / f"dets_t{t:g}.npy"
        if not ref_path.is_file():
            continue
        dets = get_network_boxes(model, [h[0].cpu() for h in heads], im_w, im_h, t, hier)
        kept, _ = do_nms_sort(dets, nms)
        ok, detail = match_detections(kept.to_array(), _load_npy(ref_path), t)
        checks.append((f"detections at thresh {t:g}", ok, detail))
        printed = case.folder / f"printed_t{t:g}.txt"
        if printed.is_file() and model.heads and len(COCO_NAMES) == model.layers[model.heads[0]].classes:
            want = printed.read_text(encoding="utf-8").splitlines()
            got = detection_lines(kept, COCO_NAMES, t)
            checks.append((f"printed lines at thresh {t:g}", sorted(got) == sorted(want),
                           f"{len(got)} lines, Darknet printed {len(want)}"))
    return checks


def compare_case(folder: "os.PathLike[str] | str", weights: "os.PathLike[str] | str | None" = None,
                 tolerance: float = DEFAULT_TOLERANCE, device: "str | torch.device" = "cpu",
                 layers: Optional[Sequence[int]] = None) -> CompareReport:
    """Run the case's cfg/weights/input and compare with every dumped layer."""
    case = load_case(folder)
    if case.mode == "train":
        return compare_train_case(case, weights=weights, tolerance=tolerance, device=device,
                                  layers=layers)
    if case.mode not in ("forward", "detect"):
        raise DataError(f"mode {case.mode!r} cases are not supported by compare yet "
                        f"(forward, detect and train are)", file=case.folder / "case.json")
    path = Path(weights) if weights is not None else case.weights
    if path is None:
        path = _official_weights(case.weights_name)
    if path is None:
        raise DataError(f"weights {case.weights_name!r} not found next to the case; "
                        f"pass --weights", file=case.folder)
    from . import load
    model = load(case.cfg, path, dialect=case.dialect, warn_unused=False).to(device).eval()
    x = torch.from_numpy(_load_npy(case.folder / "input.npy")).to(device)
    with torch.no_grad():
        outs = model.layer_outputs(x)
    report = CompareReport(case.name, case.mode, tolerance)
    wanted = range(len(outs)) if layers is None else layers
    for i in wanted:
        ref_path = case.layer_file(i)
        if not ref_path.is_file():
            continue
        ours = outs[i][0].detach().cpu().numpy()
        report.rows.append(layer_diff(i, model.layers[i].kind, ours, _load_npy(ref_path), tolerance))
    if not report.rows:
        raise DataError("no layer_NNN.npy files to compare", file=case.folder)
    if case.mode == "detect":
        report.checks.extend(detection_checks(case, model, [outs[i] for i in model.heads]))
    return report


# -- train-mode cases --------------------------------------------------------------------
#: [yolo]/[region] outputs and deltas of iteration 1: error relative to each layer's max
HEAD_TOLERANCE = 1e-5
#: reported loss per iteration, relative
LOSS_TOLERANCE = 1e-4
#: weights after minus weights before, per tensor, relative to that update's max |value|
UPDATE_TOLERANCE = 1e-3


def _weights_tensors(model: Darknet) -> List[Tuple[str, torch.Tensor]]:
    """Every tensor a .weights file stores, named ``layer N <kind> <what>``."""
    out = []
    for layer in model.layers:
        for name, t in layer.named_parameters():
            out.append((f"layer {layer.index} {layer.kind} {name}", t))
        for name, t in layer.named_buffers():
            if name.endswith(("rolling_mean", "rolling_variance")):
                out.append((f"layer {layer.index} {layer.kind} {name}", t))
    return out


def _snapshot(model: Darknet) -> Dict[str, np.ndarray]:
    return {n: t.detach().cpu().numpy().astype(np.float64).copy()
            for n, t in _weights_tensors(model)}


def _relative(ours: np.ndarray, ref: np.ndarray) -> Tuple[float, float]:
    diff = float(np.abs(ours - ref).max()) if ref.size else 0.0
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    return diff, (diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf))


def _update_error(ours: np.ndarray, ref: np.ndarray, ours_after: np.ndarray,
                  ref_after: np.ndarray) -> float:
    """max |ours - ref| over the update's max |value|, not counting the float32 rounding of
    the stored weights: each "after" is rounded to float32 once (half a unit in the last
    place each), so one ulp of the weights is the floor below which the two updates
    cannot be told apart (it matters when the rate is tiny, as in burn-in)."""
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    ulp = np.spacing(np.maximum(np.abs(ours_after), np.abs(ref_after)).astype(np.float32))
    excess = np.maximum(np.abs(ours - ref) - ulp.astype(np.float64), 0.0)
    worst = float(excess.max()) if excess.size else 0.0
    if scale == 0:
        return 0.0 if worst == 0 else math.inf
    return worst / scale


def compare_train_case(case: "Case", weights: "os.PathLike[str] | str | None" = None,
                       tolerance: float = DEFAULT_TOLERANCE, device: "str | torch.device" = "cpu",
                       layers: Optional[Sequence[int]] = None) -> CompareReport:
    """A train-mode case: ``X.npy``/``y.npy``, the initial weights and K train_network calls.

    Checks whichever of these the folder holds: every ``iter1_layer_NNN.npy`` (train-mode
    output of iteration 1, ``tolerance``), ``iter1_yolo_output/delta_NNN.npy`` (the heads'
    outputs and deltas, :data:`HEAD_TOLERANCE`), ``yolo_cost_iter1``, the loss, rate and
    seen of each iteration in ``train_log`` (:data:`LOSS_TOLERANCE`) and, for each
    ``weights_iter{k}.weights``, every tensor's update (after - before, each iteration
    starting from Darknet's ``weights_iter{k-1}`` when there is one) against Darknet's
    (:data:`UPDATE_TOLERANCE` of the update's max |value|, above the one-ulp floor of the
    stored float32 weights: see :func:`_update_error`).
    """
    import copy

    from . import load
    from .train.engine import TrainState, train_network
    m = case.manifest
    path = Path(weights) if weights is not None else case.weights
    if path is None:
        raise DataError(f"initial weights {case.weights_name!r} not found in the case",
                        file=case.folder)
    model = load(case.cfg, path, dialect=case.dialect, warn_unused=False).to(device)
    X = torch.from_numpy(_load_npy(case.folder / "X.npy")).to(device)
    y = torch.from_numpy(_load_npy(case.folder / "y.npy")).to(device)
    report = CompareReport(case.name, case.mode, tolerance)
    log = list(m.get("train_log") or [])
    iterations = int(m.get("K", len(log)))
    if iterations < 1:
        raise DataError("train case with no iterations (K / train_log)", file=case.folder)
    mini = model.net.mini_batch
    # iteration 1's train-mode outputs and deltas, on a copy (the forward moves BN averages)
    probe = copy.deepcopy(model).train()
    first = X[:mini]
    with torch.no_grad():
        outs = probe.layer_outputs(first)
    wanted = range(len(outs)) if layers is None else layers
    for i in wanted:
        ref_path = case.folder / f"iter1_layer_{i:03d}.npy"
        if ref_path.is_file():
            ref = _load_npy(ref_path)
            ours = outs[i].detach().cpu().numpy()
            report.rows.append(layer_diff(i, probe.layers[i].kind, ours, ref, tolerance))
    costs = {str(k): float(v) for k, v in (m.get("yolo_cost_iter1") or {}).items()}
    net_size = (first.shape[3], first.shape[2])
    for i, layer in enumerate(probe.layers):
        if not layer.has_cost:
            continue
        out_path = case.folder / f"iter1_yolo_output_{i:03d}.npy"
        delta_path = case.folder / f"iter1_yolo_delta_{i:03d}.npy"
        if not (out_path.is_file() or delta_path.is_file() or str(i) in costs):
            continue
        delta, cost = layer.loss(outs[i], y[:mini], net_size, seen=mini)
        for what, ours, p in (("output", outs[i], out_path), ("delta", delta, delta_path)):
            if p.is_file():
                ref = _load_npy(p)
                diff, rel = _relative(ours.detach().cpu().numpy().reshape(ref.shape)
                                      .astype(np.float64), ref.astype(np.float64))
                report.checks.append((f"iteration 1 layer {i} [{layer.kind}] {what}",
                                      rel <= HEAD_TOLERANCE,
                                      f"max error {diff:.3e} = {rel:.2e} of max |value| "
                                      f"(tolerance {HEAD_TOLERANCE:g})"))
        if str(i) in costs:
            ref_cost = costs[str(i)]
            rel = abs(float(cost) - ref_cost) / max(abs(ref_cost), 1e-30)
            report.checks.append((f"iteration 1 layer {i} cost", rel <= LOSS_TOLERANCE,
                                  f"{float(cost):.6g} vs Darknet's {ref_cost:.6g} "
                                  f"(relative {rel:.2e})"))
    del probe, outs
    # K train_network calls
    state = TrainState.from_model(model)
    ref_before = _snapshot(model)
    for k in range(1, iterations + 1):
        start = case.folder / f"weights_iter{k - 1}.weights"
        if k > 1 and start.is_file():
            # each iteration starts from Darknet's own weights (our momentum buffers carry
            # on): one iteration's update is compared, not two drifting trajectories, whose
            # discrete choices (ignore_thresh, maxpool argmax) may part after a few steps
            model.load_weights(start)
        before = _snapshot(model)
        loss = train_network(model, state, X, y)
        entry = log[k - 1] if k - 1 < len(log) else {}
        if "loss" in entry:
            ref_loss = float(entry["loss"])
            rel = abs(loss - ref_loss) / max(abs(ref_loss), 1e-30)
            report.checks.append((f"iteration {k} loss", rel <= LOSS_TOLERANCE,
                                  f"{loss:.6f} vs Darknet's {ref_loss:.6f} (relative {rel:.2e})"))
        if "rate_used_in_update" in entry:
            ref_rate = float(entry["rate_used_in_update"])
            ok = abs(state.rate - ref_rate) <= 1e-6 * max(abs(ref_rate), 1e-30)
            report.checks.append((f"iteration {k} learning rate", ok,
                                  f"{state.rate:.9g} vs Darknet's {ref_rate:.9g}"))
        if "seen_after" in entry:
            report.checks.append((f"iteration {k} seen", state.seen == int(entry["seen_after"]),
                                  f"{state.seen} vs Darknet's {int(entry['seen_after'])}"))
        ref_path = case.folder / f"weights_iter{k}.weights"
        if not ref_path.is_file():
            ref_before = None
            continue
        ref_model = load(case.cfg, ref_path, dialect=case.dialect, warn_unused=False)
        ref_after = _snapshot(ref_model)
        after = _snapshot(model)
        if ref_before is None:
            continue
        worst_name, worst_rel, bad = "", 0.0, []
        for name, ref_t in ref_after.items():
            ref_update = ref_t - ref_before[name]
            ours = after[name] - before[name]
            rel = _update_error(ours, ref_update, after[name], ref_t)
            if rel > worst_rel or not worst_name:
                worst_name, worst_rel = name, rel
            if not rel <= UPDATE_TOLERANCE:
                bad.append(f"{name} ({rel:.2e})")
        detail = (f"{len(ref_after)} tensors, worst {worst_rel:.2e} of the update's max "
                  f"|value| at {worst_name} (tolerance {UPDATE_TOLERANCE:g})")
        if bad:
            detail += "; over: " + ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        report.checks.append((f"iteration {k} weight update", not bad, detail))
        ref_before = ref_after
    if not report.rows and not report.checks:
        raise DataError("nothing to compare in this train case", file=case.folder)
    return report
