"""Build and run ``tests/harness/harness.c`` against a real Darknet (test helper).

The Darknets are the bridge's cached CPU builds of ``../shared/darknet-src``
(:func:`darknet_py.darknet.build.build_darknet`, the same builds as the
``darknet_pjreddie``/``darknet_alexeyab`` fixtures). Tests that need one skip with the reason
when it (or a C compiler) is missing -- or fail, under ``DARKNET_PY_REQUIRE_DARKNET=1``
(``.ci/run``): :func:`unavailable`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List

import numpy as np

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "harness" / "harness.c"
_BUILT: Dict[str, Path] = {}


def unavailable(why: str) -> None:
    """Skip the calling test because ``why``; a failure where Darknet is required (CI)."""
    import pytest
    if os.environ.get("DARKNET_PY_REQUIRE_DARKNET") == "1":
        pytest.fail(f"DARKNET_PY_REQUIRE_DARKNET=1 but {why}")
    pytest.skip(why)


def build_folder(fork: str) -> "Path | str":
    """The folder of ``fork``'s cached CPU build (built on first use), or why there is none."""
    if shutil.which("make") is None or (shutil.which("gcc") or shutil.which("cc")) is None:
        return f"no C toolchain to build {fork}'s Darknet"
    from darknet_py.darknet.build import build_darknet, default_source
    from darknet_py.errors import DarknetError
    try:
        return Path(build_darknet(default_source(fork), fork=fork).folder)
    except DarknetError as exc:
        return f"no {fork} Darknet build: {exc}"


def build_harness(fork: str) -> "Path | str":
    """Path of the compiled harness for ``fork``, or a string saying why there is none."""
    if fork in _BUILT:
        return _BUILT[fork]
    build = build_folder(fork)
    if isinstance(build, str):
        return build
    cc = shutil.which("gcc") or shutil.which("cc")
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
