"""Startup: the CLI's help and check's early errors do not import torch (~1-4 s)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import sys
from darknet_py.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:  # --help
    rc = exc.code
print("torch" in sys.modules, rc)
"""


def _imports_torch(*argv: str) -> "tuple[bool, int]":
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=True).stdout.split()
    return out[-2] == "True", int(out[-1])


def test_help_and_check_errors_do_not_import_torch(tmp_path):
    assert _imports_torch("--help") == (False, 0)
    assert _imports_torch("check", "--help") == (False, 0)
    assert _imports_torch("detector", "--help") == (False, 0)
    assert _imports_torch("check", str(tmp_path / "missing.cfg")) == (False, 2)
    (tmp_path / "bad.cfg").write_text("[net]\nwidth=8\n[convolutional\n")
    assert _imports_torch("check", str(tmp_path / "bad.cfg")) == (False, 2)


def test_check_of_a_cfg_still_builds_it():
    # the network is built on the meta device: torch is needed and imported then
    assert _imports_torch("check", str(ROOT / "cfg" / "yolov3-tiny.cfg")) == (True, 0)


def test_cli_default_tolerance_is_compares():
    from darknet_py.cli.compare import DEFAULT_TOLERANCE, FLOOR_FACTOR
    from darknet_py.compare import DEFAULT_TOLERANCE as REAL, FLOOR_FACTOR as REAL_FLOOR
    assert DEFAULT_TOLERANCE == REAL
    assert FLOOR_FACTOR == REAL_FLOOR


def test_cli_export_formats_are_exports():
    from darknet_py.cli.export import FORMATS
    from darknet_py.export import FORMATS as REAL
    assert FORMATS == REAL
