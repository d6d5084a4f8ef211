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
                 layers: Optional[Sequence[int]] = None,
                 dialect: Optional[str] = None) -> CompareReport:
    """Run the case's cfg/weights/input and compare with every dumped layer.
    ``dialect``: read the cfg as this fork does (default: the fork that made the case)."""
    case = load_case(folder)
    if case.mode not in ("forward", "detect"):
        raise DataError(f"mode {case.mode!r} cases are not supported by compare yet "
                        f"(forward and detect are)", file=case.folder / "case.json")
    path = Path(weights) if weights is not None else case.weights
    if path is None:
        path = _official_weights(case.weights_name)
    if path is None:
        raise DataError(f"weights {case.weights_name!r} not found next to the case; "
                        f"pass --weights", file=case.folder)
    from . import load
    model = load(case.cfg, path, dialect=dialect or case.dialect,
                 warn_unused=False).to(device).eval()
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
