"""The long differential run: thousands of random cfgs through the real Darknet and darknet_py.

    python benchmarks/diff_long.py --seed 1 --count 2000 --fork pjreddie [--build FOLDER]

Draws ``--count`` cfgs from :func:`darknet_py.testing.cfgs.cfgs` (the same strategy as
``tests/test_diff_darknet.py``, a different stream: hypothesis seeded with ``--seed``), dumps
each with the Darknet build (forward mode, random init and input seeded per cfg) and
compares under the noise-floor rule. Prints one line per mismatch or Darknet failure (the
cfg is saved under ``--keep``), and a summary: cfgs run, mismatches, Darknet failures, how
often each section type was compared. Exit status 1 if anything did not match.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed as hyp_seed, settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from darknet_py.testing.cfgs import cfgs  # noqa: E402
from darknet_py.testing.differential import check_cfg, section_kinds  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--fork", choices=("pjreddie", "alexeyab"), required=True)
    p.add_argument("--build", help="Darknet build folder (default: build the fork's tarball)")
    p.add_argument("--max-sections", type=int, default=8)
    p.add_argument("--init", choices=("auto", "darknet_py", "darknet"), default="auto",
                   help="random weights written by darknet_py, or the harness's own random init "
                        "(runs Darknet's train-mode forward); auto (default): darknet_py's "
                        "unless the fork cannot load a section's weights")
    p.add_argument("--keep", default="diff_long_failures",
                   help="folder for the cfgs that did not match (default %(default)s)")
    args = p.parse_args(argv)

    build = _build(args)
    keep = Path(args.keep)
    counts = collections.Counter()
    kinds = collections.Counter()
    failures = []
    start = time.time()

    @settings(max_examples=args.count, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @hyp_seed(args.seed)
    @given(cfgs(args.fork, max_sections=args.max_sections))
    def run(text):
        counts["run"] += 1
        n = counts["run"]
        outcome = check_cfg(build, text, seed=args.seed * 100003 + n, init=args.init)
        if outcome.empty:
            counts["nothing dumped"] += 1
            return
        if outcome.nonfinite:
            counts["inf/nan in both first"] += 1
            return
        if outcome.darknet_error:
            counts["darknet failed"] += 1
        elif outcome.ok:
            counts["ok"] += 1
            kinds.update(set(section_kinds(text)))
        else:
            counts["mismatch"] += 1
        if not outcome.ok:
            keep.mkdir(parents=True, exist_ok=True)
            name = keep / f"{args.fork}-{args.seed}-{n:05d}.txt"
            name.write_text(outcome.explain(), encoding="utf-8")
            line = (outcome.darknet_error or outcome.report.summary()).splitlines()[0]
            failures.append(line)
            print(f"[{n}] {name}: {line}", flush=True)
        if n % 100 == 0:
            print(f"... {n} cfgs, {dict(counts)}, {time.time() - start:.0f} s", flush=True)

    run()
    print(f"{args.fork} seed {args.seed}: {counts['run']} cfgs in {time.time() - start:.0f} s: "
          f"{counts['ok']} match, {counts['mismatch']} mismatch, "
          f"{counts['darknet failed']} Darknet failures, {counts['inf/nan in both first']} undecidable "
          f"(inf/nan in both before the first difference), {counts['nothing dumped']} with no output")
    print("section types compared (cfgs that matched):",
          ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    return 1 if failures else 0


def _build(args):
    if args.build:
        from darknet_py.darknet.build import DarknetBuild
        return DarknetBuild.load(args.build)
    from darknet_py.darknet.build import build_darknet
    return build_darknet(fork=args.fork)


if __name__ == "__main__":
    sys.exit(main())
