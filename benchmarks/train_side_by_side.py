"""Darknet and darknet_py trained side by side for many iterations on the same batches.

    python benchmarks/train_side_by_side.py [--fork pjreddie|alexeyab|both] [--iterations 200]
        [--size 128] [--batch 4] [--batches 8] [--div 4] [--tolerance 0.01] [--out DIR]
        [--resync] [--fresh] [--noise [--perturb w+,w-,w~1,w~2,x+,x-] [--ours-perturb 1]]

For each fork (pjreddie: cfg/yolov3-tiny.cfg, AlexeyAB: cfg/yolov4-tiny.cfg) the cfg is
narrowed (every conv's filters / ``div``, the convs before each [yolo] sized for 3
classes), set to ``size`` x ``size``, ``batch`` images, subdivisions 1, burn_in 10. A
synthetic set of coloured shapes with their boxes (darknet_py.train.synthetic) is cut
into ``batches`` distinct batches, cycled: iteration k trains on batch (k-1) % batches.
No augmentation: both sides get exactly these X/y.

Darknet side: the real Darknet of that fork (darknet_py.darknet bridge: built from the
tarball in ../shared/darknet-src) runs ``train_network`` ``iterations`` times on its own
random init (dump_case mode="train"). darknet_py side: ``train_network`` from the very
weights file Darknet started from, on the same batches. Both loss curves are printed
with the relative difference per iteration, plotted (PNG) and saved (JSON); every
``--save-every`` iterations the weights of both are compared (max |ours - Darknet's| over
max |Darknet's - initial|, per tensor: how far the trajectories have parted relative to how
far training moved).

``--resync`` starts every darknet_py iteration from Darknet's weights of the previous one
(darknet_py's momentum buffers carry on), so each loss measures one step's error, and
compares every iteration's parameter update with Darknet's (per tensor, max |difference|
over the update's max |value| above the one-ulp floor of the stored weights, as
``darknet-py compare`` does for train cases; tolerance 1e-3 reported, not judged); it stops
where Darknet's weights hold NaN (AlexeyAB's -Ofast logistic).

``--fresh`` checks every iteration's step on its own, momentum 0 on both sides (with
carried momentum one step's discrete float-level choice, e.g. a leaky pre-activation within
float noise of 0, stays in the next updates): for each k a one-iteration Darknet case from
Darknet's weights of iteration k-1 on batch k's data, checked by ``darknet-py compare``
(update within 1e-3 of its max, or EXPLAINED by such a choice found in Darknet's dumps).

``--noise`` measures the noise floor: Darknet again from its own initial weights file (must
give bit-identical losses), and from copies one float32 ulp away (``--perturb``: every
nonzero initial weight, or every nonzero input pixel, nudged toward +inf, -inf or a seeded
random direction: :func:`nudge`), on the same batches; darknet_py also from the first
weight perturbation (``--ours-perturb N``: the first N). Per iteration it prints the
relative loss difference of Darknet vs darknet_py, Darknet vs its perturbed run, darknet_py
vs its perturbed run and the envelope (the largest over Darknet's perturbed runs), the first
iteration each pair exceeds ``tolerance``, and each pair's median / mean difference after
``--settled`` iterations.

Exit status 1 when what the run judges fails:
  plain: any iteration's loss differs from Darknet's by more than ``tolerance``;
  ``--resync``: any single step's loss differs by more than ``tolerance`` (up to Darknet's
  first NaN loss, where the run stops: AlexeyAB's -Ofast logistic);
  ``--fresh`` (with either): also any fresh step compare reports a MISMATCH (neither
  within 1e-3 nor EXPLAINED);
  ``--noise`` (instead of the plain / ``--resync`` loss check): Darknet's rerun is not
  bit-identical, or darknet_py's loss parts from Darknet's (first iteration above
  ``tolerance``) earlier than the earliest iteration at which Darknet or darknet_py parts
  from its own 1-ulp-perturbed run.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from darknet_py.cli.train import passive_omp_wait  # noqa: E402  (no torch import)
passive_omp_wait()  # before torch loads libgomp, as `detector train` does
from darknet_py import load  # noqa: E402
import torch  # noqa: E402
from darknet_py.cfg import read_cfg  # noqa: E402
from darknet_py.cfg.writer import format_cfg  # noqa: E402
from darknet_py.train import synthetic  # noqa: E402
from darknet_py.layers import batchnorm  # noqa: E402
from darknet_py.train.engine import TrainState, train_network  # noqa: E402
from darknet_py.compare import UPDATE_TOLERANCE  # noqa: E402

CFG = {"pjreddie": ROOT / "cfg" / "yolov3-tiny.cfg", "alexeyab": ROOT / "cfg" / "yolov4-tiny.cfg"}
CLASSES = 3


def narrow_cfg(fork: str, size: int, batch: int, div: int, iterations: int) -> str:
    """The fork's tiny cfg, narrowed and set up for this run (see module doc)."""
    sections = read_cfg(CFG[fork])
    net = sections[0]
    for key, value in (("batch", batch), ("subdivisions", 1), ("width", size), ("height", size),
                       ("burn_in", 10), ("max_batches", max(iterations * 10, 1000))):
        net.set(key, value)
    for i, s in enumerate(sections):
        if s.kind == "convolutional" and s.get("filters") is not None:
            head = i + 1 < len(sections) and sections[i + 1].kind == "yolo"
            if head:
                masks = len(sections[i + 1].get("mask").split(","))
                s.set("filters", masks * (CLASSES + 5))
            else:
                s.set("filters", max(2, int(s.get("filters")) // div))
        if s.kind == "yolo":
            s.set("classes", CLASSES)
    return format_cfg(sections)


def make_batches(n: int, batch: int, size: int, boxes: int, per_box: int, seed: int):
    """``n`` batches of ``batch`` synthetic images (N,B,3,H,W) in [0,1] and truths
    (N,B,boxes,per_box): x,y,w,h,class[,track 0], zero rows after the last box."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, batch, 3, size, size), np.float32)
    y = np.zeros((n, batch, boxes, per_box), np.float32)
    for i in range(n):
        for b in range(batch):
            pixels, rows = synthetic._draw(size, rng, 4)
            X[i, b] = pixels.transpose(2, 0, 1).astype(np.float32) / 255.0
            for t, (c, cx, cy, w, h) in enumerate(rows[:boxes]):
                y[i, b, t, :5] = (cx, cy, w, h, c)
    return X, y


def _state(model) -> dict:
    return {k: v.detach().clone().double() for k, v in model.state_dict().items()}


#: the perturbations --noise runs Darknet from: ``w+`` / ``w-``: every nonzero float of the
#: initial weights file one float32 ulp toward +inf / -inf; ``w~S``: each one ulp in a
#: direction drawn with seed S; ``x+``: the weights as they are, every nonzero input pixel
#: one ulp toward +inf
PERTURBATIONS = ("w+", "w-", "w~1", "w~2", "x+", "x-")


def nudge(a: np.ndarray, how: str) -> np.ndarray:
    """``a`` (float32) with every nonzero finite element moved by one float32 ulp: toward
    +inf (``how`` "+"), -inf ("-"), or "~S": a direction per element drawn from
    ``np.random.default_rng(S)``. Zeros (and inf/NaN) stay as they are and a value that
    would become a denormal moves away from 0 instead, so no denormal appears
    (AlexeyAB's -Ofast build would flush it to zero)."""
    a = np.asarray(a, np.float32)
    if how == "+":
        target = np.full(a.shape, np.inf, np.float32)
    elif how == "-":
        target = np.full(a.shape, -np.inf, np.float32)
    elif how.startswith("~") and how[1:].isdigit():
        up = np.random.default_rng(int(how[1:])).random(a.shape) < 0.5
        target = np.where(up, np.float32(np.inf), np.float32(-np.inf)).astype(np.float32)
    else:
        raise ValueError(f"nudge: expected '+', '-' or '~SEED', got {how!r}")
    moved = np.nextafter(a, target)
    # the smallest normal moved toward 0 would become a denormal: it moves away from 0
    sub = np.abs(moved) < np.finfo(np.float32).tiny
    away = np.nextafter(a, np.copysign(np.float32(np.inf), a).astype(np.float32))
    moved = np.where(sub, away, moved)
    keep = (a == 0) | ~np.isfinite(a)
    return np.where(keep, a, moved).astype(np.float32)


def perturb_weights(src: Path, dst: Path, how: str) -> int:
    """Copy the .weights file ``src`` to ``dst`` with its body (every float after the
    header) nudged (:func:`nudge`); the header (version, seen) is kept. Returns how many
    floats changed."""
    from darknet_py.weights import parse_header
    data = Path(src).read_bytes()
    head = parse_header(data[:20], str(src)).nbytes
    body = np.frombuffer(data, np.float32, offset=head)
    new = nudge(body, how)
    Path(dst).write_bytes(data[:head] + new.tobytes())
    return int((new.view(np.uint32) != body.view(np.uint32)).sum())


def _rel(a, b) -> float:
    """|a - b| / |b|; inf when either is not finite (Darknet's own loss can go NaN)."""
    r = abs(a - b) / max(abs(b), 1e-30)
    return float(r) if np.isfinite(r) else float("inf")


def first_nonfinite(losses):
    """The first iteration (1-based) whose loss is NaN or inf, None when none is."""
    return next((k for k, v in enumerate(losses, 1) if not np.isfinite(v)), None)


def settled(rel, after: int) -> dict:
    """Median and mean of the finite relative differences of iterations ``after``+1 on
    (once the trajectories have parted: how far apart two runs typically are)."""
    tail = np.array([r for r in rel[after:] if np.isfinite(r)], np.float64)
    if not tail.size:
        return {"median": None, "mean": None, "iterations": 0}
    return {"median": float(np.median(tail)), "mean": float(tail.mean()), "iterations": int(tail.size)}


def first_over(rel, tolerance: float):
    """The first iteration (1-based) whose relative difference exceeds ``tolerance``,
    None when none does."""
    for k, r in enumerate(rel, 1):
        if not r <= tolerance:
            return k
    return None


def run_darknet(build, cfg: Path, out: Path, X, y, args, weights=None, save_every=None):
    """Darknet's ``train_network`` ``args.iterations`` times on the stack X/y: its losses,
    the case folder, the seconds it took."""
    from darknet_py.darknet import dump_case
    t0 = time.perf_counter()
    case = dump_case(build, cfg, weights, mode="train", out_dir=out, X=X, y=y,
                     iterations=args.iterations, seed=args.seed,
                     save_every=save_every or args.iterations, timeout=3600)
    seconds = time.perf_counter() - t0
    manifest = json.loads((case / "case.json").read_text())
    return [e["loss"] for e in manifest["train_log"]], case, seconds


def run_ours(fork: str, cfg: Path, weights: Path, X, y, args, theirs, case=None,
             label="darknet_py", ref_label="darknet"):
    """darknet_py's ``train_network`` from ``weights`` on the same batches. With ``case``
    (Darknet's run, every iteration's weights saved) and ``args.resync``, each iteration
    starts from Darknet's weights of the previous one and its parameter update is compared
    with Darknet's (per tensor, max |difference| over the update's max |value|, above the
    stored weights' one-ulp floor: darknet_py.compare's measure); without ``resync`` the
    weights of both are compared wherever Darknet saved them (how far they parted, relative
    to how far training moved). Returns losses, per-step update errors, drifts, seconds."""
    from darknet_py.compare import _snapshot, _update_error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load(cfg, weights, dialect=fork, warn_unused=False)
        shadow = load(cfg, weights, dialect=fork, warn_unused=False)
    init = _state(model)
    state = TrainState.from_model(model)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    losses, steps, drifts = [], [], []
    ref_before = _snapshot(model) if args.resync else None
    t0 = time.perf_counter()
    for k in range(1, args.iterations + 1):
        i = (k - 1) % args.batches
        if args.resync and k > 1:
            model.load_weights(case / f"weights_iter{k - 1}.weights")
        before = _snapshot(model) if args.resync else None
        with batchnorm.exact():  # Darknet's arithmetic order, as compare checks it
            loss = train_network(model, state, Xt[i], yt[i])
        losses.append(loss)
        saved = None if case is None else case / f"weights_iter{k}.weights"
        note = ""
        if args.resync:
            shadow.load_weights(saved)
            ref_after, after = _snapshot(shadow), _snapshot(model)
            worst, where = 0.0, ""
            finite = all(np.isfinite(t).all() for t in ref_after.values())
            for name, ref_t in ref_after.items():
                e = _update_error(after[name] - before[name], ref_t - ref_before[name],
                                  after[name], ref_t)
                if not e <= worst:
                    worst, where = e, name
            steps.append({"iteration": k, "worst": worst if finite else None, "tensor": where,
                          "darknet_finite": finite})
            note = f"  update {worst:.2e} of its max ({where})" if finite else \
                "  Darknet's weights not finite"
            ref_before = ref_after
            if not finite:
                print(f"  {fork} it {k:4d}  Darknet's weights after this iteration hold NaN/inf:"
                      f" stop the per-step check here", flush=True)
                break
        elif saved is not None and saved.is_file():
            shadow.load_weights(saved)
            ref, mine = _state(shadow), _state(model)
            d = max(float((mine[n] - ref[n]).abs().max()) /
                    max(float((ref[n] - init[n]).abs().max()), 1e-30)
                    for n in ref if ref[n].is_floating_point() and ref[n].numel())
            drifts.append((k, d))
            note = f"  weights apart {d:.2e} of their move"
        if theirs is not None:
            r = _rel(loss, theirs[k - 1])
            if args.verbose or k <= 5 or k % 10 == 0 or r > args.tolerance:
                print(f"  {fork} it {k:4d}  {ref_label} {theirs[k - 1]:12.6f}  "
                      f"{label} {loss:12.6f}  rel {r:.2e}{note}", flush=True)
    return losses, steps, drifts, time.perf_counter() - t0


def run_fork(fork: str, args, out: Path) -> dict:
    from darknet_py.darknet import build_darknet
    build = build_darknet(fork=fork)
    per_box = 6 if fork == "alexeyab" else 5
    text = narrow_cfg(fork, args.size, args.batch, args.div, args.iterations)
    work = Path(tempfile.mkdtemp(prefix=f"sbs-{fork}-"))
    cfg = work / f"narrow-{CFG[fork].stem}.cfg"
    cfg.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = load(cfg, dialect=fork, warn_unused=False)
    boxes = probe.layers[probe.heads[0]].opts.max
    X, y = make_batches(args.batches, args.batch, args.size, boxes, per_box, args.seed)
    theirs, case, t_darknet = run_darknet(build, cfg, work / "case", X, y, args,
                                          save_every=1 if args.resync or args.fresh else args.save_every)
    init = case / "weights_init.weights"
    ours, steps, drifts, t_ours = run_ours(fork, cfg, init, X, y, args, theirs, case)
    rel = [_rel(a, b) for a, b in zip(ours, theirs)]
    worst = int(np.argmax(rel))
    result = {"fork": fork, "resync": args.resync, "cfg": text, "iterations": args.iterations,
              "size": args.size, "batch": args.batch, "batches": args.batches,
              "tolerance": args.tolerance, "darknet_loss": theirs,
              "darknet_py_loss": ours, "relative_difference": rel,
              "max_relative_difference": rel[worst], "at_iteration": worst + 1,
              "first_over": first_over(rel, args.tolerance),
              "darknet_first_nonfinite": first_nonfinite(theirs),
              "weights_drift": drifts, "darknet_seconds": t_darknet,
              "darknet_py_seconds": t_ours, "threads": torch.get_num_threads()}
    print(f"{fork}: {args.iterations} iterations, max relative loss difference "
          f"{rel[worst]:.2e} at iteration {worst + 1}, first above {args.tolerance:g} at "
          f"{result['first_over']}; Darknet {t_darknet:.1f} s, darknet_py {t_ours:.1f} s "
          f"({torch.get_num_threads()} threads)", flush=True)
    if args.resync:
        checked = [s for s in steps if s["worst"] is not None]
        within = sum(s["worst"] <= UPDATE_TOLERANCE for s in checked)
        top = max(checked, key=lambda s: s["worst"]) if checked else None
        result["steps"] = steps
        result["steps_within"] = within
        result["steps_checked"] = len(checked)
        result["update_tolerance"] = UPDATE_TOLERANCE
        stop = next((s["iteration"] for s in steps if not s["darknet_finite"]), None)
        result["stopped_at_darknet_nan"] = stop
        if top is not None:
            print(f"{fork}: per-step updates of {len(checked)} iterations: {within} within "
                  f"{UPDATE_TOLERANCE:g} of their max; worst {top['worst']:.2e} at iteration "
                  f"{top['iteration']} ({top['tensor']})"
                  + (f"; stopped at iteration {stop}: Darknet's weights not finite" if stop else ""),
                  flush=True)
    if args.fresh:
        result["fresh"] = fresh_steps(fork, build, cfg, work, case, X, y, args)
    if args.noise:
        result["noise"] = noise_floor(fork, build, cfg, work, X, y, args, theirs, ours, init)
    return result


def fresh_steps(fork, build, cfg, work, case, X, y, args) -> dict:
    """Every iteration's step on its own, momentum zero on both sides: for k = 1..N, Darknet
    one train_network call from its weights of iteration k-1 (the header's seen gives the
    same rate) on batch (k-1) % batches, checked by ``darknet_py.compare`` (the update per
    tensor within 1e-3 of its max, or EXPLAINED by a float-level discrete choice found in
    Darknet's dumped outputs). Stops where Darknet's weights are no longer finite."""
    import re
    import shutil
    from darknet_py.compare import compare_case
    from darknet_py.darknet import dump_case
    steps = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shadow = load(cfg, dialect=fork, warn_unused=False)
    for k in range(1, args.iterations + 1):
        start = case / ("weights_init.weights" if k == 1 else f"weights_iter{k - 1}.weights")
        shadow.load_weights(start)
        if not all(torch.isfinite(t).all() for t in shadow.state_dict().values()
                   if t.is_floating_point()):
            print(f"  {fork} fresh step {k}: Darknet's weights of iteration {k - 1} are not "
                  f"finite: stop", flush=True)
            break
        i = (k - 1) % args.batches
        # its own name: the case writes weights_iter1.weights, which compare must not
        # take for the start
        begin = work / f"fresh_start{k}.weights"
        shutil.copyfile(start, begin)
        folder = dump_case(build, cfg, begin, mode="train", out_dir=work / f"fresh{k}", X=X[i],
                           y=y[i], iterations=1, timeout=600)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = compare_case(folder)
        checks = {n: (ok, d) for n, ok, d in report.checks}
        ok, detail = checks["iteration 1 weight update"]
        m = re.search(r"worst (\S+) of the update's max \|value\| at (.+?) \(", detail)
        worst = float(m.group(1)) if m else float("nan")
        loss_ok, loss_detail = checks.get("iteration 1 loss", (True, ""))
        why = report.explained.get("iteration 1 weight update")
        steps.append({"iteration": k, "worst": worst, "tensor": m.group(2) if m else "",
                      "ok": ok, "explained": why, "loss_ok": loss_ok, "loss": loss_detail})
        state = "ok" if ok and not why else ("EXPLAINED" if why else "MISMATCH")
        if args.verbose or not ok or why or k <= 3 or k % 20 == 0:
            print(f"  {fork} fresh step {k:4d}: update {worst:.2e} of its max ({state})"
                  + (f"; {why[:160]}" if why else ""), flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        begin.unlink()
    within = sum(s["worst"] <= UPDATE_TOLERANCE for s in steps)
    explained = sum(bool(s["explained"]) for s in steps)
    bad = [s["iteration"] for s in steps if not s["ok"]]
    top = max(steps, key=lambda s: s["worst"]) if steps else None
    out = {"steps": steps, "checked": len(steps), "within": within, "explained": explained,
           "mismatch_iterations": bad,
           "worst_unexplained": max((s["worst"] for s in steps if not s["explained"]), default=None)}
    if top:
        print(f"{fork}: fresh steps (momentum 0 both sides) over {len(steps)} iterations: "
              f"{within} updates within {UPDATE_TOLERANCE:g} of their max, {explained} EXPLAINED "
              f"by a float-level discrete choice, mismatches at {bad or 'none'}; worst "
              f"{top['worst']:.2e} (iteration {top['iteration']}), worst not explained "
              f"{out['worst_unexplained']:.2e}", flush=True)
    return out


def noise_floor(fork, build, cfg, work, X, y, args, theirs, ours, init) -> dict:
    """Darknet against itself: a rerun from the same weights file (must be bit-identical)
    and one run per :data:`PERTURBATIONS` entry on the same batches; darknet_py from the
    first weight perturbation. Per iteration: the relative loss difference of each pair."""
    tol = args.tolerance
    again, _, _ = run_darknet(build, cfg, work / "again", X, y, args, weights=init)
    identical = len(again) == len(theirs) and all(
        np.float32(a).tobytes() == np.float32(b).tobytes() for a, b in zip(again, theirs))
    print(f"{fork}: Darknet rerun from its own weights file: "
          f"{'bit-identical losses' if identical else 'DIFFERENT losses'} over "
          f"{len(theirs)} iterations", flush=True)
    runs = {}
    for how in args.perturb:
        if how.startswith("x"):
            losses, _, _ = run_darknet(build, cfg, work / f"noise-{how}", nudge(X, how[1:]), y,
                                       args, weights=init)
            changed = int((nudge(X, how[1:]) != X).sum())
        else:
            w = work / f"init-{how}.weights"
            changed = perturb_weights(init, w, how[1:])
            losses, _, _ = run_darknet(build, cfg, work / f"noise-{how}", X, y, args, weights=w)
        rel = [_rel(a, b) for a, b in zip(losses, theirs)]
        runs[how] = {"changed_floats": changed, "darknet_loss": losses, "relative_difference": rel,
                     "first_over": first_over(rel, tol), "first_nonfinite": first_nonfinite(losses),
                     "settled": settled(rel, args.settled)}
        print(f"{fork}: Darknet vs Darknet {how} ({changed} floats nudged 1 ulp): first above "
              f"{tol:g} at iteration {runs[how]['first_over']}; its loss first not finite at "
              f"{runs[how]['first_nonfinite']}", flush=True)
    weighted = [h for h in args.perturb if h.startswith("w")]
    ours_how = weighted[0]
    free = argparse.Namespace(**{**vars(args), "resync": False})
    ours_runs = {}
    for how in weighted[:max(1, args.ours_perturb)]:
        losses, _, _, _ = run_ours(fork, cfg, work / f"init-{how}.weights", X, y, free, ours,
                                   None, label=f"darknet_py {how}", ref_label="darknet_py")
        rel = [_rel(a, b) for a, b in zip(losses, ours)]
        ours_runs[how] = {"darknet_py_loss": losses, "relative_difference": rel,
                          "first_over": first_over(rel, tol),
                          "first_nonfinite": first_nonfinite(losses),
                          "settled": settled(rel, args.settled)}
        print(f"{fork}: darknet_py vs darknet_py {how}: first above {tol:g} at iteration "
              f"{ours_runs[how]['first_over']}", flush=True)
    ours_p = ours_runs[ours_how]["darknet_py_loss"]
    rel_ours = ours_runs[ours_how]["relative_difference"]
    rel_main = [_rel(a, b) for a, b in zip(ours, theirs)]
    envelope = [max(r["relative_difference"][k] for r in runs.values()) for k in range(len(theirs))]
    firsts = [r["first_over"] or len(theirs) + 1 for r in runs.values()]
    finite = [(m, e) for m, e in zip(rel_main, envelope) if np.isfinite(m) and np.isfinite(e)]
    within = sum(m <= e for m, e in finite)
    self_firsts = firsts + [r["first_over"] or len(theirs) + 1 for r in ours_runs.values()]
    noise = {"rerun_identical": identical, "perturbations": runs,
             "darknet_py_perturbation": ours_how, "darknet_py_perturbed_loss": ours_p,
             "darknet_py_vs_perturbed": rel_ours, "darknet_py_runs": ours_runs,
             "darknet_py_vs_perturbed_first_over": first_over(rel_ours, tol),
             "envelope": envelope, "iterations_within_envelope": within,
             "iterations_finite": len(finite),
             "darknet_self_first_over_min": min(firsts), "darknet_self_first_over_max": max(firsts),
             "self_first_over_min": min(self_firsts),
             "darknet_py_first_over": first_over(rel_main, tol),
             "darknet_first_nonfinite": first_nonfinite(theirs),
             "darknet_py_perturbed_first_nonfinite": first_nonfinite(ours_p),
             "settled_after": args.settled,
             "settled_darknet_vs_darknet_py": settled(rel_main, args.settled),
             "settled_darknet_py_vs_perturbed": settled(rel_ours, args.settled)}
    print(f"\n  {fork}: relative loss differences per iteration (D = Darknet, P = darknet_py, "
          f"' = from the {ours_how} weights; envelope = max over Darknet's perturbed runs)")
    print("   iter   D vs P    D vs D'   P vs P'   envelope")
    for k in range(len(theirs)):
        if args.verbose or k < 30 or (k + 1) % 10 == 0:
            print(f"  {k + 1:5d}  {rel_main[k]:.2e}  {runs[ours_how]['relative_difference'][k]:.2e}"
                  f"  {rel_ours[k]:.2e}  {envelope[k]:.2e}")
    print(f"  {fork}: first above {tol:g}: Darknet vs darknet_py at {noise['darknet_py_first_over']}; "
          + ", ".join(f"Darknet vs Darknet {h} at {r['first_over']}" for h, r in runs.items())
          + "; " + ", ".join(f"darknet_py vs darknet_py {h} at {r['first_over']}"
                             for h, r in ours_runs.items()) + "."
          f" Darknet vs darknet_py within Darknet's own envelope at {within} of {len(finite)} "
          f"iterations (those where both are finite)", flush=True)
    def fmt(st):
        return "-" if st["median"] is None else f"median {st['median']:.2e} mean {st['mean']:.2e}"
    print(f"  {fork}: relative loss difference over iterations {args.settled + 1}-{len(theirs)} "
          f"(finite ones): Darknet vs darknet_py {fmt(noise['settled_darknet_vs_darknet_py'])}; "
          + "; ".join(f"Darknet vs Darknet {h} {fmt(r['settled'])}" for h, r in runs.items())
          + "; " + "; ".join(f"darknet_py vs darknet_py {h} {fmt(r['settled'])}"
                             for h, r in ours_runs.items()),
          flush=True)
    return noise


def plot(results, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot (pip install matplotlib)")
        return
    fig, axes = plt.subplots(2, len(results), figsize=(6 * len(results), 7), squeeze=False)
    for j, r in enumerate(results):
        it = np.arange(1, len(r["darknet_loss"]) + 1)
        mine = np.arange(1, len(r["darknet_py_loss"]) + 1)  # shorter where --resync stopped
        ax = axes[0, j]
        ax.plot(it, r["darknet_loss"], label="Darknet", lw=2.5, alpha=0.6)
        ax.plot(mine, r["darknet_py_loss"], label="darknet_py", lw=1, ls="--")
        ax.set_title(f"{r['fork']}: narrow {CFG[r['fork']].stem}, {r['size']}px, batch {r['batch']}")
        ax.set_ylabel("loss")
        ax.set_yscale("log")
        ax.legend()
        ax = axes[1, j]
        ax.semilogy(mine, np.maximum(r["relative_difference"], 1e-12), label="Darknet vs darknet_py",
                    lw=2, color="k")
        noise = r.get("noise")
        if noise:
            for how, run in noise["perturbations"].items():
                ax.semilogy(it, np.maximum(run["relative_difference"], 1e-12), lw=0.8,
                            label=f"Darknet vs Darknet {how}")
            for how, run in noise["darknet_py_runs"].items():
                ax.semilogy(it, np.maximum(run["relative_difference"], 1e-12), lw=1, ls="--",
                            label=f"darknet_py vs darknet_py {how}")
            ax.legend(fontsize=7)
        ax.axhline(r["tolerance"], color="r", lw=0.8)
        ax.set_xlabel("iteration")
        ax.set_ylabel("relative loss difference |a - b| / |b|")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"plot: {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fork", choices=("pjreddie", "alexeyab", "both"), default="both")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--batches", type=int, default=8, help="distinct batches, cycled")
    ap.add_argument("--div", type=int, default=4, help="divide every conv's filters by this")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--save-every", type=int, default=20,
                    help="compare the weights of both every this many iterations")
    ap.add_argument("--tolerance", type=float, default=0.01)
    ap.add_argument("--out", default="side_by_side")
    ap.add_argument("--resync", action="store_true",
                    help="start each darknet_py iteration from Darknet's weights of the previous "
                         "one (momentum buffers carry on): one step's error, not two drifting "
                         "trajectories; every step's parameter update is compared with Darknet's")
    ap.add_argument("--fresh", action="store_true",
                    help="also check every iteration's step on its own (momentum 0 on both "
                         "sides): a one-iteration Darknet case from its weights of the "
                         "iteration before, checked by darknet_py.compare")
    ap.add_argument("--noise", action="store_true",
                    help="the noise floor: Darknet rerun from its own weights file, and from "
                         "copies perturbed by one float32 ulp (--perturb); darknet_py from the "
                         "first weight perturbation")
    ap.add_argument("--perturb", default=",".join(PERTURBATIONS),
                    help="comma-separated perturbations for --noise: w+ w- w~SEED x+ x- x~SEED "
                         "(w: every nonzero initial weight, x: every nonzero input pixel; one "
                         "ulp toward +inf, -inf, or a random direction per element)")
    ap.add_argument("--ours-perturb", type=int, default=1,
                    help="--noise: run darknet_py from this many of the weight perturbations "
                         "(in --perturb order; each costs a darknet_py run)")
    ap.add_argument("--settled", type=int, default=20,
                    help="--noise: also give median and mean relative differences of the "
                         "iterations after this one (the trajectories have parted)")
    ap.add_argument("--verbose", action="store_true", help="print every iteration")
    args = ap.parse_args()
    args.perturb = [h.strip() for h in args.perturb.split(",") if h.strip()]
    for how in args.perturb:
        if how[:1] not in ("w", "x"):
            ap.error(f"--perturb: {how!r} is not w+, w-, w~SEED, x+, x- or x~SEED")
        nudge(np.ones(1, np.float32), how[1:])  # raises on a bad direction
    if args.noise and not any(h.startswith("w") for h in args.perturb):
        ap.error("--noise needs at least one weight perturbation (w+, w-, w~SEED) in --perturb")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    forks = ("pjreddie", "alexeyab") if args.fork == "both" else (args.fork,)
    results = [run_fork(f, args, out) for f in forks]
    (out / "curves.json").write_text(json.dumps(results, indent=1))
    plot(results, out / "side_by_side.png")
    return verdict(results, args)


def verdict(results, args) -> int:
    """The exit status: 0 when every fork passes what this run checks (see the module doc)."""
    bad = []
    for r in results:
        f, tol = r["fork"], args.tolerance
        if args.noise:
            n = r["noise"]
            floor = n["self_first_over_min"]
            mine = r["first_over"] or r["iterations"] + 1
            ok = n["rerun_identical"] and mine >= floor
            print(f"{f}: Darknet vs darknet_py first above {tol:g} at iteration "
                  f"{r['first_over']}; Darknet vs its own 1-ulp-perturbed runs at "
                  f"{n['darknet_self_first_over_min']}..{n['darknet_self_first_over_max']}, "
                  "darknet_py vs its own at " + "/".join(str(x["first_over"]) for x in
                                                        n["darknet_py_runs"].values()) + "; "
                  f"darknet_py within Darknet's envelope at {n['iterations_within_envelope']} "
                  f"of {n['iterations_finite']} finite iterations; rerun "
                  f"{'bit-identical' if n['rerun_identical'] else 'NOT identical'} -- "
                  f"{'ok' if ok else 'FAIL'} (darknet_py parts from Darknet no earlier than "
                  f"either parts from a 1-ulp-perturbed copy of itself: iteration {floor})")
        elif args.resync:
            # judged up to Darknet's first NaN loss (AlexeyAB's -Ofast logistic, its own
            # undefined behaviour: each step starts from Darknet's finite weights before it)
            nf = r["darknet_first_nonfinite"]
            judged = r["relative_difference"][:nf - 1 if nf else None]
            top = max(judged, default=0.0)
            ok = top <= tol
            print(f"{f}: each step's loss within {top:.2e} of Darknet's over iterations "
                  f"1-{len(judged)}" + (f" (Darknet's loss NaN at {nf}: stopped there)" if nf else "")
                  + f" -- {'FAIL' if not ok else 'ok'} at tolerance {tol:g}")
        else:
            ok = r["max_relative_difference"] <= tol
            print(f"{f}: max relative loss difference {r['max_relative_difference']:.2e} "
                  f"(iteration {r['at_iteration']}) -- {'FAIL' if not ok else 'ok'} at tolerance {tol:g}")
        if "fresh" in r:
            fr = r["fresh"]
            fresh_ok = not fr["mismatch_iterations"]
            print(f"{f}: fresh steps: {fr['checked']} checked, {fr['within']} within "
                  f"{UPDATE_TOLERANCE:g}, {fr['explained']} explained, mismatches at "
                  f"{fr['mismatch_iterations'] or 'none'} -- {'ok' if fresh_ok else 'FAIL'}")
            ok = ok and fresh_ok
        if not ok:
            bad.append(f)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
