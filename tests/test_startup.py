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
print("torch._dynamo" in sys.modules, "torch" in sys.modules, rc)
"""


def _imports(*argv: str) -> "tuple[bool, bool, int]":
    """(torch._dynamo imported, torch imported, exit status) of ``darknet-py ARGV``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=True).stdout.split()
    return out[-3] == "True", out[-2] == "True", int(out[-1])


def _imports_torch(*argv: str) -> "tuple[bool, int]":
    dynamo, torch, rc = _imports(*argv)
    return torch, rc


def test_help_and_check_errors_do_not_import_torch(tmp_path):
    assert _imports_torch("--help") == (False, 0)
    assert _imports_torch("check", "--help") == (False, 0)
    assert _imports_torch("detector", "--help") == (False, 0)
    assert _imports_torch("check", str(tmp_path / "missing.cfg")) == (False, 2)
    (tmp_path / "bad.cfg").write_text("[net]\nwidth=8\n[convolutional\n")
    assert _imports_torch("check", str(tmp_path / "bad.cfg")) == (False, 2)


def test_check_of_a_cfg_still_builds_it():
    # the network is built on the meta device: torch is needed and imported then, but
    # not torch._dynamo (~3 s more), which random init on the meta device would pull in
    # (torch._refs); the same with a weights file whose size is checked
    assert _imports("check", str(ROOT / "cfg" / "yolov3-tiny.cfg")) == (False, True, 0)


def test_check_with_weights_does_not_import_dynamo(tmp_path):
    from darknet_py.cfg import read_cfg
    from darknet_py.layers.base import uninitialised
    from darknet_py.model import Darknet
    cfg = ROOT / "cfg" / "yolov3-tiny.cfg"
    with uninitialised():  # the file's floats do not matter, only its size
        Darknet(read_cfg(cfg), warn_unused=False).save_weights(tmp_path / "t.weights")
    assert _imports("check", str(cfg), str(tmp_path / "t.weights")) == (False, True, 0)


def test_cli_default_tolerance_is_compares():
    from darknet_py.cli.compare import DEFAULT_TOLERANCE, FLOOR_FACTOR
    from darknet_py.compare import DEFAULT_TOLERANCE as REAL, FLOOR_FACTOR as REAL_FLOOR
    assert DEFAULT_TOLERANCE == REAL
    assert FLOOR_FACTOR == REAL_FLOOR


def test_cli_export_formats_are_exports():
    from darknet_py.cli.export import FORMATS
    from darknet_py.export import FORMATS as REAL
    assert FORMATS == REAL
