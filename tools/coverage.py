"""Coverage of the reference cfg corpus: the README table, generated.

For every cfg in ``../shared/reference/cfg/manifest.json`` (both forks), read in
its fork's dialect:

* **builds**: ``darknet_py.load(cfg, dialect=fork)``, or the first words of its error;
* **forward**: one forward pass at the [net] size with the default random init
  (``--no-forward`` skips it; cfgs over ``--max-bflops`` are listed as skipped);
* **weights**: the .weights size the model reads (20-byte header + 4 bytes a float)
  equals the size of the file the fork's own ``save_weights`` writes right after
  ``parse_network_cfg`` (``tools/darknet_weights_size.c``, compiled against
  ``--pjreddie BUILD`` / ``--alexeyab BUILD``; what ``load_weights`` reads, since
  both are the same per-layer loop): ``=``, ``!= (N)`` or ``?`` without a build;
* **parity**: the cfg (or the cfg a reference case was derived from) has a
  reference case made by real Darknet, or a test here runs it against a real
  Darknet build (:data:`TESTED`);
* **decoded**: it has detection heads and every one decodes.

    python tools/coverage.py --pjreddie BUILD --alexeyab BUILD --readme README.md

rewrites the table between ``<!-- coverage:start -->`` and ``<!-- coverage:end -->``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(os.environ.get("DARKNET_PY_REFERENCE") or ROOT.parent / "shared" / "reference")
HERE = Path(__file__).resolve().parent

#: cfgs a test of this project runs against a real Darknet build (fork, file) -> test
TESTED = {
    ("alexeyab", "yolov3-tiny.cfg"): "tests/test_detect_alexeyab.py",
    ("alexeyab", "yolov4-tiny.cfg"): "tests/test_detect_alexeyab.py",
    ("alexeyab", "yolov4.cfg"): "tests/test_detect_alexeyab.py (slow)",
    ("alexeyab", "Gaussian_yolov3_BDD.cfg"): "tests/test_detect_alexeyab.py (256x256)",
    ("pjreddie", "yolov1-tiny.cfg"): "tests/test_detect_alexeyab.py (AlexeyAB's build)",
    ("alexeyab", "tiny-yolo_xnor.cfg"): "tests/test_xnor_darknet.py (96x96)",
    ("alexeyab", "yolov3-tiny_xnor.cfg"): "tests/test_xnor_darknet.py (64x64)",
    ("alexeyab", "xyolo.test.cfg"): "tests/test_xnor_darknet.py (64x64)",
    ("alexeyab", "darknet53_448_xnor.cfg"): "tests/test_xnor_darknet.py (64x64, slow)",
    ("pjreddie", "rnn.cfg"): "tests/test_recurrent_darknet.py",
    ("pjreddie", "gru.cfg"): "tests/test_recurrent_darknet.py",
    ("pjreddie", "yolo9000.cfg"): "tests/test_tree_darknet.py (96x96, slow)",
    ("pjreddie", "darknet9000.cfg"): "tests/test_tree_darknet.py (64x64)",
    ("alexeyab", "yolo9000.cfg"): "tests/test_tree_darknet.py (96x96, slow)",
}

START, END = "<!-- coverage:start -->", "<!-- coverage:end -->"

#: the corpus cfgs name Darknet's data files relative to its folder (``tree=data/9k.tree``):
#: both darknet_py (``$DARKNET_PY_DATA``, unless set) and Darknet (run where ``data/`` is
#: this folder) read them from the reference's data folder
DATA = REFERENCE / "data"


@contextlib.contextmanager
def _data_env():
    """``$DARKNET_PY_DATA`` = :data:`DATA` while building, unless it is set already."""
    if os.environ.get("DARKNET_PY_DATA") or not DATA.is_dir():
        yield
        return
    os.environ["DARKNET_PY_DATA"] = str(DATA)
    try:
        yield
    finally:
        os.environ.pop("DARKNET_PY_DATA", None)


def reference_cases() -> Dict[tuple, str]:
    """(fork, cfg file) -> case name, for every reference case made by real Darknet."""
    found = {}
    for folder, fork in (("darknet", "pjreddie"), ("darknet-alexeyab", "alexeyab")):
        for case in sorted((REFERENCE / folder).glob("*/case.json")):
            info = json.loads(case.read_text())
            for name in (info.get("cfg_derived_from"), info.get("cfg")):
                if name:
                    found.setdefault((fork, Path(name).name), case.parent.name)
    return found


def compile_size_tool(build: Path, fork: str, out: Path) -> Path:
    src = HERE / "darknet_weights_size.c"
    if fork == "alexeyab":
        cmd = ["cc", "-DDPY_ALEXEYAB", "-I", str(build / "include"), str(src),
               str(build / "libdarknet.so"), f"-Wl,-rpath,{build}", "-o", str(out)]
    else:
        cmd = ["cc", "-I", str(build / "include"), str(src), str(build / "libdarknet.a"),
               "-lm", "-lpthread", "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def darknet_size(tool: Optional[Path], cfg: Path, tmp: Path) -> "Optional[int | str]":
    """The byte count, None without a build, or why Darknet could not parse the cfg."""
    if tool is None:
        return None
    if DATA.is_dir() and not (tmp / "data").exists():
        (tmp / "data").symlink_to(DATA, target_is_directory=True)
    try:
        done = subprocess.run([str(tool), str(cfg), str(tmp / "w.weights")], capture_output=True,
                              text=True, timeout=600, cwd=tmp)
    except subprocess.TimeoutExpired:
        return "Darknet timed out"
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines and lines[-1].isdigit():
        return int(lines[-1])
    why = [line for line in done.stderr.splitlines() if "Assertion" in line or "rror" in line]
    text = why[-1].split(": ", 2)[-1] if why else f"exit {done.returncode}"
    return "Darknet fails: " + text[:80].replace("`", "'").replace("|", "/")


def row(fork: str, cfg: Path, tool: Optional[Path], cases: Dict[tuple, str], forward: bool,
        max_bflops: float, tmp: Path) -> Dict[str, str]:
    import torch

    import darknet_py
    from darknet_py.errors import DarknetError
    out = {"fork": fork, "cfg": cfg.name}
    parity = cases.get((fork, cfg.name)) or TESTED.get((fork, cfg.name))
    out["parity"] = "yes" if parity else ""
    try:
        with warnings.catch_warnings(), _data_env():
            warnings.simplefilter("ignore")
            if forward:
                model = darknet_py.load(cfg, dialect=fork)
            else:  # shapes and weight counts only: no memory for the parameters
                with torch.device("meta"):
                    model = darknet_py.load(cfg, dialect=fork)
    except DarknetError as exc:
        where = f"line {exc.line}: " if exc.line else ""
        what = f"{exc.key}: " if exc.key else ""
        out.update(builds=f"no ({where}{what}{exc.message[:90]})", forward="", weights="",
                   decoded="")
        return out
    out["builds"] = "yes"
    ours = 20 + 4 * sum(layer.weight_count() for layer in model.layers)
    theirs = darknet_size(tool, cfg, tmp)
    if theirs is None or isinstance(theirs, str):
        out["weights"] = theirs or "?"
    else:
        out["weights"] = "=" if theirs == ours else f"!= ({theirs})"
    heads = [model.layers[i] for i in model.heads]
    out["decoded"] = ("yes" if heads and all(h.decodes for h in heads)
                      else ("no" if heads else ""))
    if not forward:
        out["forward"] = ""
    elif model.bflops() > max_bflops:
        out["forward"] = f"skipped ({model.bflops():.0f} BFLOPs)"
    else:
        start = time.perf_counter()
        try:
            with torch.no_grad():
                model(torch.rand(1, *model.input_shape))
            out["forward"] = f"yes ({time.perf_counter() - start:.1f} s)"
        except Exception as exc:  # noqa: BLE001 - reported in the table
            out["forward"] = f"no: {type(exc).__name__}"
    return out


def table(rows: List[Dict[str, str]]) -> str:
    keys = ("fork", "cfg", "builds", "forward", "weights", "parity", "decoded")
    if not any(r.get("forward") for r in rows):  # --no-forward: tests/test_core_corpus*.py
        keys = tuple(k for k in keys if k != "forward")
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(r.get(k, "") for k in keys) + " |" for r in rows]
    built = sum(r["builds"] == "yes" for r in rows)
    ran = sum(r["forward"].startswith("yes") for r in rows)
    same = sum(r["weights"] == "=" for r in rows)
    summary = (f"{len(rows)} cfgs: {built} build, {ran} forward, {same} with the weights size "
               f"the fork's Darknet reads, {sum(bool(r['parity']) for r in rows)} parity-tested, "
               f"{sum(r['decoded'] == 'yes' for r in rows)} decoded.")
    return summary + "\n\n" + "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pjreddie", type=Path, help="pjreddie Darknet build folder")
    p.add_argument("--alexeyab", type=Path, help="AlexeyAB Darknet build folder")
    p.add_argument("--no-forward", action="store_true")
    p.add_argument("--max-bflops", type=float, default=200.0)
    p.add_argument("--readme", type=Path, help="rewrite the table in this README")
    p.add_argument("--only", help="only cfgs whose file name contains this")
    args = p.parse_args(argv)
    manifest = json.loads((REFERENCE / "cfg" / "manifest.json").read_text())
    cases = reference_cases()
    rows = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        tools = {fork: (compile_size_tool(build, fork, tmp / f"ws_{fork}") if build else None)
                 for fork, build in (("pjreddie", args.pjreddie), ("alexeyab", args.alexeyab))}
        for entry in sorted(manifest["cfgs"], key=lambda e: (e["repo"], e["file"].lower())):
            if args.only and args.only not in entry["file"]:
                continue
            cfg = REFERENCE / "cfg" / entry["repo"] / entry["file"]
            r = row(entry["repo"], cfg, tools[entry["repo"]], cases, not args.no_forward,
                    args.max_bflops, tmp)
            print(" | ".join(r.values()), file=sys.stderr, flush=True)
            rows.append(r)
    text = table(rows)
    if args.readme:
        readme = args.readme.read_text()
        if START not in readme or END not in readme:
            raise SystemExit(f"{args.readme}: no {START} ... {END} markers")
        head, rest = readme.split(START, 1)
        _, tail = rest.split(END, 1)
        args.readme.write_text(head + START + "\n" + text + "\n" + END + tail)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
