"""The long fuzz run: the CI fuzz targets with far more examples, outside CI.

    python benchmarks/fuzz_long.py [--cfg 20000] [--all-cfgs 5000] [--weights 20000]
        [--seed 1] [--timeout 20]

Runs the same properties as ``tests/test_fuzz_cfg.py`` and
``tests/test_fuzz_weights.py`` (only :class:`~darknet_py.DarknetError` may
escape; whatever builds runs a forward pass with the promised shapes; a weights
file loads exactly or is refused with the model bit-for-bit unchanged), with
hypothesis *randomised* from ``--seed`` instead of derandomised:

* ``--cfg N``: N mutated cfgs drawn from the CI seeds (built-in cfgs covering
  every section type, and small real cfgs, shrunk);
* ``--all-cfgs N``: N mutated cfgs drawn from *every* reference cfg that
  builds once shrunk to 32x32 (needs ``$DARKNET_PY_REFERENCE``);
* ``--weights N``: N fuzzed weights files (random headers, lengths, byte flips,
  ``upto``) against the CI weights model.

Every example runs under a SIGALRM watchdog: one taking more than ``--timeout``
seconds counts as a hang. Exit status 0 only if there were no failures and no
hangs; the report lists examples, how many built/loaded, the slowest example
and the rate.

Recorded run (``--seed 1``, defaults, 2 shared CPU cores, torch 2.13 CPU, 106
reference cfgs building shrunk): 45,000 examples, 0 failures, 0 hangs::

    cfg (CI seeds): 20000 examples, 5502 built/loaded, 14498 refused with DarknetError;
        slowest 1995 ms; 376 s (53/s)
    cfg (all reference cfgs): 5000 examples, 1531 built/loaded, 3469 refused with
        DarknetError; slowest 640 ms; 142 s (35/s)
    weights: 20000 examples, 8505 built/loaded, 11495 refused with DarknetError;
        slowest 870 ms; 152 s (132/s)
    failures: 0, hangs: 0

(An earlier run found one failure, in the test harness itself: the mutator's
``bom`` op on a cfg whose lines had all been deleted.)
"""
from __future__ import annotations

import argparse
import collections
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import test_fuzz_cfg as fc  # noqa: E402
import test_fuzz_weights as fw  # noqa: E402


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang("example exceeded the watchdog timeout")


class Tally:
    def __init__(self, name: str, timeout: float) -> None:
        self.name, self.timeout = name, timeout
        self.counts = collections.Counter()
        self.slowest = 0.0
        self.start = time.perf_counter()

    def run(self, fn, *args) -> None:
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        t0 = time.perf_counter()
        try:
            ok = fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        self.slowest = max(self.slowest, time.perf_counter() - t0)
        self.counts["examples"] += 1
        self.counts["accepted" if ok else "refused"] += 1

    def report(self) -> str:
        took = time.perf_counter() - self.start
        n = self.counts["examples"]
        return (f"{self.name}: {n} examples, {self.counts['accepted']} built/loaded, "
                f"{self.counts['refused']} refused with DarknetError; slowest "
                f"{self.slowest * 1000:.0f} ms; {took:.0f} s ({n / max(took, 1e-9):.0f}/s)")


def _settings(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None, derandomize=False,
                    suppress_health_check=list(HealthCheck))


def all_reference_seeds():
    root = fc.reference_root()
    seeds = []
    if root is None or not (Path(root) / "cfg").is_dir():
        return seeds
    for path in sorted((Path(root) / "cfg").glob("*/*.cfg")):
        try:
            text = fc.shrink(path.read_text(encoding="utf-8"))
        except Exception:  # a cfg darknet_py cannot even read: not a seed
            continue
        if fc.build_or_refuse(text) is not None:
            seeds.append(text)
    return seeds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cfg", type=int, default=20000, help="mutated cfgs from the CI seeds")
    ap.add_argument("--all-cfgs", type=int, default=5000,
                    help="mutated cfgs from every reference cfg that builds shrunk")
    ap.add_argument("--weights", type=int, default=20000, help="fuzzed weights files")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per example")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    signal.signal(signal.SIGALRM, _alarm)
    failures = []
    reports = []

    def cfg_run(name, seeds, n):
        if not seeds or n <= 0:
            return
        tally = Tally(name, args.timeout)

        @seed(args.seed)
        @_settings(n)
        @given(text=st.sampled_from(seeds), ops=fc.MUTATIONS, dialect=fc.DIALECTS)
        def target(text, ops, dialect):
            tally.run(fc.cfg_target, fc.mutate(text, ops), dialect)
        try:
            target()
        except BaseException as exc:  # hypothesis re-raises the shrunk failing example
            failures.append(f"{name}: " + "".join(traceback.format_exception(exc)))
        reports.append(tally.report())
        print(reports[-1], flush=True)

    ci_seeds = [text for _, text in fc.SEEDS]
    cfg_run("cfg (CI seeds)", ci_seeds, args.cfg)
    if args.all_cfgs > 0:
        seeds = all_reference_seeds()
        print(f"all-cfgs: {len(seeds)} reference cfgs build shrunk", flush=True)
        cfg_run("cfg (all reference cfgs)", seeds, args.all_cfgs)
    if args.weights > 0:
        model = fw.make_model()
        tally = Tally("weights", args.timeout)
        n_floats = fw.needed_floats(model)

        @seed(args.seed)
        @_settings(args.weights)
        @given(major=fw.INT32, minor=fw.INT32, revision=fw.INT32,
               seen=st.integers(0, 2 ** 64 - 1),
               delta=st.one_of(st.just(0), st.integers(-64, 64), st.integers(-10 ** 6, 10 ** 6)),
               flips=st.lists(st.tuples(st.integers(0, 19), st.integers(1, 255)), max_size=3),
               upto=st.one_of(st.none(), st.integers(0, 12)))
        def weights(major, minor, revision, seen, delta, flips, upto):
            probe = fw.Header(major, minor, revision, 0)
            header = fw.Header(major, minor, revision, seen if probe.wide_seen else seen % 2 ** 32)
            data = bytearray(header.pack() + fw.body_of(n_floats))
            for at, xor in flips:
                data[at] ^= xor
            if delta < 0:
                del data[max(len(data) + delta, 0):]
            else:
                data += bytes(range(256)) * (delta // 256) + bytes(range(delta % 256))
            tally.run(lambda d, u: fw.weights_target(model, d, u) is not None, bytes(data), upto)
        try:
            weights()
        except BaseException as exc:
            failures.append("weights: " + "".join(traceback.format_exception(exc)))
        reports.append(tally.report())
        print(reports[-1], flush=True)
    hangs = [f for f in failures if "Hang" in f]
    print(f"failures: {len(failures) - len(hangs)}, hangs: {len(hangs)}")
    for failure in failures:
        print("  " + failure.replace("\n", "\n    "))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
