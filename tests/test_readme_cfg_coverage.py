"""README's per-cfg corpus table (tools/coverage.py, markers ``coverage:start/end``) is current.

The "builds", "parity" and "decoded" columns and the summary's counts of them are recomputed
here (models built on the meta device: no memory for parameters). The "weights" column needs
the Darknet builds (tools/coverage.py --pjreddie/--alexeyab); tests/test_weights_size_darknet.py
checks it against them.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import coverage as cfg_coverage  # noqa: E402

COLUMNS = ("builds", "parity", "decoded")


def _readme_rows():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert cfg_coverage.START in text and cfg_coverage.END in text, \
        "README.md lost its per-cfg coverage markers"
    block = text.split(cfg_coverage.START, 1)[1].split(cfg_coverage.END, 1)[0].strip()
    summary, _, table = block.partition("\n\n")
    lines = table.splitlines()
    keys = [k.strip() for k in lines[0].strip("|").split("|")]
    rows = [dict(zip(keys, (c.strip() for c in line.strip().strip("|").split("|"))))
            for line in lines[2:]]
    return summary, rows


def test_readme_cfg_table_is_current(reference, tmp_path):
    summary, rows = _readme_rows()
    manifest = json.loads((reference / "cfg" / "manifest.json").read_text())
    entries = sorted(manifest["cfgs"], key=lambda e: (e["repo"], e["file"].lower()))
    assert [(r["fork"], r["cfg"]) for r in rows] == [(e["repo"], Path(e["file"]).name)
                                                      for e in entries], \
        "README's per-cfg table lists other cfgs: run tools/coverage.py --readme README.md"
    cases = cfg_coverage.reference_cases()
    stale = []
    for entry, want in zip(entries, rows):
        got = cfg_coverage.row(entry["repo"], reference / "cfg" / entry["repo"] / entry["file"],
                               None, cases, False, 0.0, tmp_path)
        for key in COLUMNS:
            # the error text is cut to the table's width: compare the start
            if got[key][:60] != want[key][:60]:
                stale.append(f"{entry['repo']}/{entry['file']} {key}: README {want[key]!r}, "
                             f"now {got[key]!r}")
    assert not stale, ("README's per-cfg table is stale (run tools/coverage.py --readme "
                       "README.md):\n" + "\n".join(stale[:20]))
    built = sum(r["builds"] == "yes" for r in rows)
    parity = sum(bool(r["parity"]) for r in rows)
    decoded = sum(r["decoded"] == "yes" for r in rows)
    assert re.match(rf"{len(rows)} cfgs: {built} build, \d+ forward, \d+ with the weights size "
                    rf"the fork's Darknet reads, {parity} parity-tested, {decoded} decoded\.",
                    summary), summary
