"""Compile and run ``harness.c`` (the project's own C program) against a Darknet build.

The harness is compiled on demand with ``cc`` (or ``$CC``) against the fork's own
``include/darknet.h`` and linked with its library (``-DDPY_ALEXEYAB`` for
AlexeyAB's fork), once per build: the binary is cached in the build folder,
keyed by the harness source and the compile command. Each run is a subprocess
with a timeout; a crash (segfault, abort), a refusal (Darknet's ``exit``) or a
timeout becomes one :class:`~darknet_py.errors.BridgeError` line naming the
cfg, what happened and the log.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

from ..errors import BridgeError
from .build import DarknetBuild, cache_root, file_lock

SOURCE = Path(__file__).with_name("harness.c")
DEFAULT_TIMEOUT_S = 600


def compiler() -> str:
    """``$CC``, else ``cc``, else ``gcc``: the C compiler the harness is built with."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    raise BridgeError("no C compiler to build darknet_py's Darknet harness: neither $CC, cc nor "
                      "gcc found on PATH (install gcc, e.g. `apt-get install build-essential`)")


def compile_command(build: DarknetBuild, cc: str, out: Path) -> List[str]:
    lib = Path(build.lib)
    cmd = [cc, "-O2", "-I", str(build.include)]
    if build.fork == "alexeyab":
        cmd.append("-DDPY_ALEXEYAB")
    if build.gpu:
        cmd += ["-DGPU", "-I/usr/local/cuda/include"]
    cmd += [str(SOURCE), str(lib)]
    if lib.suffix != ".a":
        cmd.append(f"-Wl,-rpath,{lib.parent}")
    cmd += ["-lm", "-pthread"]
    if build.gpu:
        cmd += ["-L/usr/local/cuda/lib64", "-lcuda", "-lcudart", "-lcublas", "-lcurand", "-lstdc++"]
    elif build.fork == "alexeyab":
        cmd.append("-lstdc++")
    return cmd + ["-o", str(out)]


def harness_binary(build: DarknetBuild) -> Path:
    """The compiled harness for ``build`` (compiled now if not cached)."""
    cc = compiler()
    probe = compile_command(build, cc, Path("OUT"))
    key = hashlib.sha256(SOURCE.read_bytes() + "\0".join(probe).encode()
                         + build.src_hash.encode()).hexdigest()[:16]
    folder = Path(build.folder)
    target = folder / f"dpy_harness-{key}"
    if target.is_file():
        return target
    with file_lock(folder / ".harness.lock"):
        if target.is_file():
            return target
        fd, tmp = tempfile.mkstemp(prefix=".tmp-harness-", dir=folder)
        os.close(fd)
        log = folder / f"dpy_harness-{key}.log"
        cmd = compile_command(build, cc, Path(tmp))
        with open(log, "wb") as out:
            out.write(("$ " + " ".join(cmd) + "\n").encode())
            out.flush()
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, timeout=600).returncode
        if rc != 0:
            os.unlink(tmp)
            raise BridgeError(f"compiling the Darknet harness against this build failed "
                              f"(exit status {rc}); see {log}", file=build.folder)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    return target


_NOISE = re.compile(r"^(\d+/\d+: |backtrace \(|Darknet error location|.*Assertion .* failed)")


def _last_line(text: str) -> str:
    """Darknet's last meaningful stderr line (its error() message, not the backtrace/assert)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    said = next((ln for ln in reversed(lines) if not _NOISE.match(ln)), "")
    said = re.sub(r": Success$", "", said)  # perror() after a message with errno 0
    unknown = [ln.split("Type not recognized: ", 1)[1] for ln in lines if "Type not recognized: " in ln]
    if unknown:
        said = f"section type not recognized: {', '.join(unknown)}; then: {said}"
    return said[:300]


def run(build: DarknetBuild, args: Sequence[str], *, what: str, cwd: Path,
        timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """Run the harness with ``args`` in ``cwd``; returns its stderr. ``what`` (the cfg or image)
    names the culprit in errors. Output goes to ``cwd/harness.log``."""
    binary = harness_binary(build)
    log = Path(cwd) / "harness.log"
    with open(log, "wb") as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.run([str(binary), *map(str, args)], cwd=cwd, stdout=out, stderr=err,
                                  stdin=subprocess.DEVNULL, timeout=timeout)
            rc: Optional[int] = proc.returncode
        except subprocess.TimeoutExpired:
            rc = None
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
        out.write(b"\n--- stderr ---\n" + stderr.encode())
    if rc == 0:
        return stderr
    kept = _keep_log(log)
    if rc is None:
        raise BridgeError(f"Darknet did not finish within {timeout:g} s and was stopped (it hangs "
                          f"on this, or needs a longer timeout); Darknet's output is in {kept}",
                          file=what)
    last = _last_line(stderr)
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        if name == "SIGABRT" and last:  # Darknet's error(): message, then assert/abort
            raise BridgeError(f"Darknet stopped on an error ({name}): {last}; Darknet's output is "
                              f"in {kept}", file=what)
        raise BridgeError(f"Darknet crashed ({name}): this {build.fork} Darknet cannot run it; "
                          f"check the cfg against that fork (layer references, options); Darknet's "
                          f"output is in {kept}", file=what)
    said = f": {last}" if last else ""
    raise BridgeError(f"Darknet stopped on an error (exit status {rc}){said}; Darknet's output is "
                      f"in {kept}", file=what)


def _keep_log(log: Path) -> Path:
    """Copy a failed run's log to the cache (the run's own folder is thrown away)."""
    folder = cache_root() / "logs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        kept = folder / f"harness-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        shutil.copyfile(log, kept)
        return kept
    except OSError:
        return log


__all__ = ["DEFAULT_TIMEOUT_S", "SOURCE", "compiler", "harness_binary", "run"]
