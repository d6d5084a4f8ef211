"""Build and run ``tests/harness/harness.c`` against a prebuilt Darknet (test helper).

The prebuilt CPU builds are looked up in ``$DARKNET_PY_BUILDS`` or in a ``darknet-builds``
folder next to one of the project's parent folders (``darknet-pjreddie-*`` with
``libdarknet.a`` and ``include/darknet.h``; ``darknet-alexeyab-*`` with ``libdarknet.so``).
Tests that need one skip with the reason when it (or a C compiler) is missing.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "harness" / "harness.c"
_BUILT: Dict[str, Path] = {}


def builds_root() -> Optional[Path]:
    env = os.environ.get("DARKNET_PY_BUILDS")
    if env:
        return Path(env)
    for parent in HERE.parents:
        cand = parent / "darknet-builds"
        if cand.is_dir():
            return cand
    return None


def build_harness(fork: str) -> "Path | str":
    """Path of the compiled harness for ``fork``, or a string saying why there is none."""
    if fork in _BUILT:
        return _BUILT[fork]
    root = builds_root()
    cc = shutil.which("gcc") or shutil.which("cc")
    if root is None or cc is None:
        return "no prebuilt Darknet (set DARKNET_PY_BUILDS) or no C compiler"
    folders = sorted(root.glob(f"darknet-{fork}-*"))
    if not folders:
        return f"no darknet-{fork}-* build in {root}"
    build = folders[0]
    out = Path(tempfile.mkdtemp(prefix=f"dnpy-harness-{fork}-")) / "harness"
    if fork == "pjreddie":
        cmd = [cc, "-O2", "-o", str(out), str(SOURCE), "-I", str(build / "include"),
               str(build / "libdarknet.a"), "-lm", "-lpthread"]
    else:
        cmd = [cc, "-O2", "-DALEXEYAB", "-o", str(out), str(SOURCE), "-I",
               str(build / "include"), "-L", str(build), "-ldarknet",
               f"-Wl,-rpath,{build}", "-lm", "-lpthread"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        return f"harness did not build: {proc.stderr[-500:]}"
    _BUILT[fork] = out
    return out


def run(harness: Path, args: List[str], cwd: Path) -> str:
    proc = subprocess.run([str(harness)] + [str(a) for a in args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)
    if proc.returncode:
        raise RuntimeError(f"harness failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


def write_f32(path: Path, array) -> Path:
    np.ascontiguousarray(np.asarray(array, dtype=np.float32)).tofile(path)
    return path


def read_f32(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype=np.float32)
