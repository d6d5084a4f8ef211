"""README's coverage table is the one tools/coverage_table.py generates from what the tests run."""
from __future__ import annotations

from pathlib import Path

from darknet_py.testing.cfgs import kinds
from darknet_py.testing.coverage import (DECODE, FORWARD, REAL, SECTIONS, TRAIN, TRAIN_NOTE,
                                         cell, readme_table, table)

ROOT = Path(__file__).resolve().parent.parent


def test_readme_coverage_table_is_current():
    found = readme_table((ROOT / "README.md").read_text(encoding="utf-8"))
    assert found is not None, "README.md lost its coverage-table markers"
    assert found == table(), "README's coverage table is stale: run python tools/coverage_table.py --write"


def test_real_darknet_is_claimed_only_with_a_test_behind_it():
    tests = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py")}
    for kind in SECTIONS:
        for fork in ("pjreddie", "alexeyab"):
            if cell(kind, fork, "forward") == REAL and (fork, kind) not in FORWARD:
                # the differential test parametrizes over exactly these kinds
                assert kind in kinds(fork)
            if cell(kind, fork, "train").startswith(REAL):
                assert (fork, kind) in TRAIN, (fork, kind)
    assert "test_each_section_type_matches_darknet" in tests["test_diff_darknet.py"]
    for (fork, kind) in TRAIN_NOTE:
        assert kind in SECTIONS, kind
    for (fork, kind), test in [*DECODE.items(), *FORWARD.items(), *TRAIN.items()]:
        path, name = test.split("::")
        assert f"def {name}(" in tests[Path(path).name], test
