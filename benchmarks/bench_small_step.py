"""Per-iteration time of ``train_network`` on a small net, darknet_py next to the real Darknet.

    python benchmarks/bench_small_step.py [--fork pjreddie|alexeyab|both] [--batch 4]
        [--size 128] [--div 4] [--iterations 40] [--rounds 3] [--exact] [--threads 1]
        [--no-darknet --weights FILE] [--save FILE] [--profile torch|cprofile]

The net of ``benchmarks/train_side_by_side.py`` (the fork's tiny cfg, every conv's filters /
``div``, heads for 3 classes, ``size`` x ``size``, ``batch`` images, subdivisions 1) on its
synthetic batches. Each round (interleaved, so both sides see the same machine load) runs the
real Darknet's ``train_network`` ``iterations`` times through the bridge (dump_case
mode="train") and darknet_py's ``train_network`` ``iterations`` times from the same initial
weights on the same batches. Darknet's per-iteration time is (time of the N-iteration run -
time of a 1-iteration run) / (N - 1), which removes the harness's start, weights load and
dumps; its CPU time is the child's user+system time. darknet_py's is wall and process CPU
time over its ``iterations`` calls (after one warm-up call). Prints the median over rounds of
each, and their ratio.

``--save FILE`` writes darknet_py's state_dict after the first round's iterations (torch.save)
to check that a change keeps the results bit-identical; ``--profile`` profiles darknet_py's
iterations of one round instead of timing (torch.profiler table by self CPU time, or
cProfile's top functions by total time).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from darknet_py.cli.train import passive_omp_wait  # noqa: E402  (no torch import)
passive_omp_wait()  # before torch loads libgomp, as `detector train` does
from darknet_py import load  # noqa: E402
import torch  # noqa: E402
from train_side_by_side import make_batches, narrow_cfg  # noqa: E402
from darknet_py.layers import batchnorm  # noqa: E402
from darknet_py.train.engine import TrainState, train_network  # noqa: E402


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def darknet_run(build, cfg: Path, out: Path, X, y, iterations: int, seed: int):
    """(wall s, CPU s) of one bridge run of ``iterations`` train_network calls."""
    from darknet_py.darknet import dump_case
    c0, t0 = _child_cpu(), time.perf_counter()
    dump_case(build, cfg, None, mode="train", out_dir=out, X=X, y=y, iterations=iterations,
              seed=seed, save_every=iterations, timeout=3600)
    return time.perf_counter() - t0, _child_cpu() - c0


def ours_run(model, state, Xt, yt, iterations: int, start: int, exact: bool):
    """(wall s, CPU s) of ``iterations`` train_network calls (batch k cycles)."""
    ctx = batchnorm.exact() if exact else _null()
    with ctx:
        c0, t0 = time.process_time(), time.perf_counter()
        for k in range(start, start + iterations):
            i = k % Xt.shape[0]
            train_network(model, state, Xt[i], yt[i])
        return time.perf_counter() - t0, time.process_time() - c0


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def profile(model, state, Xt, yt, iterations: int, exact: bool, how: str) -> None:
    if how == "torch":
        from torch.profiler import ProfilerActivity, profile as tprofile
        with tprofile(activities=[ProfilerActivity.CPU]) as prof:
            ours_run(model, state, Xt, yt, iterations, 1, exact)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40))
        print(f"ops called: {sum(e.count for e in prof.key_averages())} "
              f"({sum(e.count for e in prof.key_averages()) / iterations:.0f} a step)")
    else:
        import cProfile
        import pstats
        pr = cProfile.Profile(time.process_time)
        pr.enable()
        ours_run(model, state, Xt, yt, iterations, 1, exact)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(35)
        pstats.Stats(pr).sort_stats("cumtime").print_stats(30)


def run_fork(fork: str, args) -> dict:
    per_box = 6 if fork == "alexeyab" else 5
    work = Path(tempfile.mkdtemp(prefix=f"smallstep-{fork}-"))
    cfg = work / f"narrow-{fork}.cfg"
    cfg.write_text(narrow_cfg(fork, args.size, args.batch, args.div, 1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = load(cfg, dialect=fork, warn_unused=False)
    boxes = probe.layers[probe.heads[0]].opts.max
    X, y = make_batches(args.batches, args.batch, args.size, boxes, per_box, args.seed)
    build = None
    weights = args.weights
    if not args.no_darknet:
        from darknet_py.darknet import build_darknet
        build = build_darknet(fork=fork)
        darknet_run(build, cfg, work / "init", X, y, 1, args.seed)
        weights = work / "init" / "weights_init.weights"
    elif weights is None:
        raise SystemExit("--no-darknet needs --weights (an initial weights file of this net)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load(cfg, weights, dialect=fork, warn_unused=False)
    state = TrainState.from_model(model)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    ours_run(model, state, Xt, yt, 1, 0, args.exact)  # warm-up (first-call allocations)
    if args.profile:
        profile(model, state, Xt, yt, args.iterations, args.exact, args.profile)
        return {}
    n = args.iterations
    dw, dc, ow, oc = [], [], [], []
    for r in range(args.rounds):
        if build is not None:
            w1, c1 = darknet_run(build, cfg, work / "d1", X, y, 1, args.seed)
            wn, cn = darknet_run(build, cfg, work / "dn", X, y, n, args.seed)
            dw.append((wn - w1) / (n - 1))
            dc.append((cn - c1) / (n - 1))
        w, c = ours_run(model, state, Xt, yt, n, 1 + r * n, args.exact)
        ow.append(w / n)
        oc.append(c / n)
        if r == 0 and args.save:
            torch.save(model.state_dict(), args.save)
        line = f"  {fork} round {r + 1}: darknet_py {ow[-1] * 1e3:7.1f} ms wall {oc[-1] * 1e3:7.1f} ms CPU"
        if dw:
            line += f" | Darknet {dw[-1] * 1e3:7.1f} ms wall {dc[-1] * 1e3:7.1f} ms CPU"
        print(line, flush=True)
    med = statistics.median
    res = {"fork": fork, "ours_wall": med(ow), "ours_cpu": med(oc)}
    line = (f"{fork} batch {args.batch} {args.size}x{args.size} {'exact' if args.exact else 'default'}"
            f" {torch.get_num_threads()} thread(s) (OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}), median of {args.rounds} rounds x {n} "
            f"iterations: darknet_py {med(ow) * 1e3:.1f} ms wall, {med(oc) * 1e3:.1f} ms CPU an iteration")
    if dw:
        res.update(darknet_wall=med(dw), darknet_cpu=med(dc))
        line += (f"; Darknet {med(dw) * 1e3:.1f} ms wall, {med(dc) * 1e3:.1f} ms CPU "
                 f"(x{med(ow) / med(dw):.1f} wall, x{med(oc) / med(dc):.1f} CPU)")
    print(line, flush=True)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fork", choices=["pjreddie", "alexeyab", "both"], default="both")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--div", type=int, default=4)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: as is)")
    ap.add_argument("--exact", action="store_true", help="inside batchnorm.exact()")
    ap.add_argument("--no-darknet", action="store_true")
    ap.add_argument("--weights", type=Path, help="initial weights (with --no-darknet)")
    ap.add_argument("--save", type=Path, help="darknet_py's state_dict after round 1")
    ap.add_argument("--profile", choices=["torch", "cprofile"])
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    forks = ["pjreddie", "alexeyab"] if args.fork == "both" else [args.fork]
    if args.save and len(forks) > 1:
        raise SystemExit("--save needs one --fork")
    for fork in forks:
        run_fork(fork, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
