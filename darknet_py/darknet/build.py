"""Build a real (CPU) Darknet from its sources, once, into a cache folder.

:func:`build_darknet` unpacks a Darknet source tarball (or copies a source
tree, e.g. your own fork), detects which fork it is (pjreddie's or
AlexeyAB's, from ``include/darknet.h``), and runs its own ``make`` with the
flags the reference data of ``shared/reference`` was made with:

* pjreddie: ``make GPU=0 CUDNN=0 OPENCV=0 OPENMP=0``
* AlexeyAB: ``make GPU=0 CUDNN=0 OPENCV=0 OPENMP=0 AVX=0 LIBSO=1``

(``gpu=True`` sets ``GPU=1``). The build goes to
``$DARKNET_PY_CACHE/darknet/<fork>-<sha256 of the source>[-gpu]``
(default cache ``~/.cache/darknet_py``) and is reused by the next call with
the same source. It is built in a temporary folder and renamed into place
under a lock file, so concurrent processes never see half a build. The
compiler's output goes to ``build.log`` there; a failed build is one
:class:`~darknet_py.errors.BridgeError` line naming the log.

:func:`from_existing` wraps a Darknet you built yourself (``libdarknet.so`` or
``.a`` plus its ``include/`` folder). Every build folder holds a
``build.json``; :meth:`DarknetBuild.load` reads it back, so the folder is
all other commands need (``darknet-py darknet dump BUILD ...``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from ..errors import BridgeError
from ..io import atomic_write

PathLike = Union[str, "os.PathLike[str]"]

FORKS = ("pjreddie", "alexeyab")

#: make flags per fork: the ones ``shared/darknet-src/README.md`` gives (the reference data's build)
MAKE_FLAGS = {
    "pjreddie": ["GPU=0", "CUDNN=0", "OPENCV=0", "OPENMP=0"],
    "alexeyab": ["GPU=0", "CUDNN=0", "OPENCV=0", "OPENMP=0", "AVX=0", "LIBSO=1"],
}

#: the tarballs shipped in ``shared/darknet-src`` (the default source of each fork)
TARBALLS = {
    "pjreddie": "darknet-pjreddie-f6afaab.tar.gz",
    "alexeyab": "darknet-alexeyab-59596d7.tar.gz",
}

_BUILD_TIMEOUT_S = 1800
_SKIP_DIRS = {".git", "obj", "backup", "results", "__pycache__"}
_BUILT = {"darknet", "libdarknet.so", "libdarknet.a", "uselib", "build.log", "build.json"}


@dataclass(frozen=True)
class DarknetBuild:
    """A built Darknet: where its library, header and executable are."""

    folder: Path          #: the build folder (holds build.json; harness binaries are cached here)
    fork: str             #: "pjreddie" or "alexeyab"
    lib: Path             #: libdarknet.a (preferred, as the reference harness) or libdarknet.so
    include: Path         #: the folder with the fork's own darknet.h
    exe: Optional[Path]   #: ./darknet, when the build has one
    src_hash: str         #: sha256 of the source (tarball bytes or tree contents)
    gpu: bool = False

    def to_json(self) -> dict:
        data = asdict(self)
        for key in ("folder", "lib", "include", "exe"):
            value = data[key]
            if value is None or key == "folder":
                data[key] = None if value is None else str(value)
                continue
            path = Path(value)
            try:  # relative inside the folder, so a cache folder can move
                data[key] = str(path.relative_to(self.folder))
            except ValueError:
                data[key] = str(path)
        data.pop("folder")
        return data

    @classmethod
    def load(cls, folder: PathLike) -> "DarknetBuild":
        """The build in ``folder`` (as printed by ``darknet-py darknet build``)."""
        root = Path(folder).resolve()
        meta = root / "build.json"
        if not meta.is_file():
            raise BridgeError("not a darknet_py Darknet build folder (no build.json); make one "
                              "with `darknet-py darknet build SRC` or `--lib L --include DIR`",
                              file=folder)
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
            exe = data.get("exe")
            return cls(root, data["fork"], root / data["lib"], root / data["include"],
                       None if not exe else root / exe, data["src_hash"], bool(data.get("gpu")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BridgeError(f"unreadable build.json: {exc}", file=meta) from None


def resolve_build(build: "DarknetBuild | PathLike") -> DarknetBuild:
    """A :class:`DarknetBuild` or the folder of one."""
    return build if isinstance(build, DarknetBuild) else DarknetBuild.load(build)


# -- where things are --------------------------------------------------------------------
def cache_root(cache: Optional[PathLike] = None) -> Path:
    """``cache`` or ``$DARKNET_PY_CACHE``/darknet (default ``~/.cache/darknet_py/darknet``)."""
    if cache is not None:
        return Path(cache)
    base = os.environ.get("DARKNET_PY_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "darknet_py")
    return Path(base) / "darknet"


def source_root() -> Path:
    """``$DARKNET_PY_DARKNET_SRC``, else ``../shared/darknet-src`` beside the project root."""
    env = os.environ.get("DARKNET_PY_DARKNET_SRC")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "darknet-src"


def default_source(fork: str) -> Path:
    path = source_root() / TARBALLS[fork]
    if not path.is_file():
        raise BridgeError(f"the {fork} Darknet source tarball is not there; pass the source "
                          f"(tarball or tree) or set DARKNET_PY_DARKNET_SRC", file=path)
    return path


# -- the source: hash and fork -----------------------------------------------------------
def _is_tarball(path: Path) -> bool:
    return path.is_file() and tarfile.is_tarfile(path)


def _tree_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if name in _BUILT or name.endswith((".o", ".so", ".a")):
                continue
            yield Path(dirpath) / name


def source_hash(src: Path) -> str:
    """sha256 of a tarball's bytes, or of a tree's relative paths and contents."""
    h = hashlib.sha256()
    if src.is_file():
        with open(src, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    for path in _tree_files(src):
        h.update(str(path.relative_to(src)).encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def fork_of_header(text: str) -> Optional[str]:
    """Which fork a ``darknet.h`` belongs to (AlexeyAB's has ``struct network_state``), or None.

    >>> fork_of_header("typedef struct network_state { float *truth; } network_state; struct layer{")
    'alexeyab'
    >>> fork_of_header("struct layer{ ... }; typedef struct network{ int n; } network;"), fork_of_header("int x;")
    ('pjreddie', None)
    """
    if "struct layer" not in text or "network" not in text:
        return None
    return "alexeyab" if "struct network_state" in text else "pjreddie"


def _tarball_header(src: Path) -> Optional[str]:
    with tarfile.open(src) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if member.isfile() and parts[-2:] == ("include", "darknet.h") and len(parts) <= 3:
                handle = tar.extractfile(member)
                return None if handle is None else handle.read().decode("utf-8", "replace")
    return None


def detect_fork(src: PathLike) -> str:
    """The fork of a source tarball or tree, from its ``include/darknet.h``."""
    path = Path(src)
    try:
        if _is_tarball(path):
            text = _tarball_header(path)
        else:
            header = path / "include" / "darknet.h"
            text = header.read_text(encoding="utf-8", errors="replace") if header.is_file() else None
    except (OSError, tarfile.TarError) as exc:
        raise BridgeError(f"cannot read the Darknet source: {exc}", file=src) from None
    fork = fork_of_header(text) if text else None
    if fork is None:
        raise BridgeError("not a Darknet source (no include/darknet.h with Darknet's layer and "
                          "network structs); give a Darknet tarball or source tree", file=src)
    return fork


def _unpack(src: Path, dest: Path) -> None:
    """Tarball (one top folder, stripped) or tree -> ``dest``; nothing outside ``dest``."""
    if src.is_dir():
        shutil.copytree(src, dest, dirs_exist_ok=True,
                        ignore=lambda d, names: [n for n in names if n in _SKIP_DIRS])
        return
    with tarfile.open(src) as tar:
        members = tar.getmembers()
        tops = {Path(m.name).parts[0] for m in members if Path(m.name).parts}
        strip = len(tops) == 1 and any(len(Path(m.name).parts) > 1 for m in members)
        for m in members:
            parts = Path(m.name).parts[1:] if strip else Path(m.name).parts
            if not parts or m.issym() or m.islnk() or not (m.isfile() or m.isdir()):
                continue
            if os.path.isabs(m.name) or ".." in parts:
                raise BridgeError(f"unsafe path in tarball: {m.name}", file=src)
            target = dest.joinpath(*parts)
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            handle = tar.extractfile(m)
            if handle is None:
                continue
            with open(target, "wb") as out:
                shutil.copyfileobj(handle, out)
            os.chmod(target, 0o755 if m.mode & 0o111 else 0o644)


# -- tools -------------------------------------------------------------------------------
def _require_tools(fork: str) -> None:
    """make and the compilers the fork's Makefile calls (gcc; AlexeyAB's LIBSO=1 also g++)."""
    missing = [t for t in ("make", "gcc") + (("g++",) if fork == "alexeyab" else ())
               if shutil.which(t) is None]
    if missing:
        raise BridgeError(f"no C compiler to build Darknet: {', '.join(missing)} not found on PATH "
                          f"(install gcc, g++ and make, e.g. `apt-get install build-essential`)")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if needed), held for the ``with`` body."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no concurrent-build protection
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _find(folder: Path, fork: str) -> DarknetBuild:
    a, so = folder / "libdarknet.a", folder / "libdarknet.so"
    lib = a if a.is_file() else so
    exe = folder / "darknet"
    return DarknetBuild(folder, fork, lib, folder / "include", exe if exe.is_file() else None, "")


def build_darknet(src: Optional[PathLike] = None, fork: Optional[str] = None, gpu: bool = False,
                  cache: Optional[PathLike] = None, *, jobs: int = 2,
                  log: bool = False) -> DarknetBuild:
    """Build (or reuse) a Darknet from ``src`` (tarball or tree; None: ``fork``'s tarball).

    ``fork`` is detected from the source when not given (and checked when given).
    ``log=True`` prints one progress line to stderr when a build actually runs.
    """
    if fork is not None and fork not in FORKS:
        raise BridgeError(f"unknown fork {fork!r}: expected one of {', '.join(FORKS)}")
    path = Path(src) if src is not None else default_source(fork or "pjreddie")
    if not path.exists():
        raise BridgeError("no such Darknet source (tarball or folder)", file=path)
    found = detect_fork(path)
    if fork is not None and fork != found:
        raise BridgeError(f"the source is {found}'s Darknet, not {fork}'s (drop --fork to use "
                          f"the detected one)", file=path)
    fork = found
    digest = source_hash(path)
    key = f"{fork}-{digest[:16]}" + ("-gpu" if gpu else "")
    root = cache_root(cache)
    final = root / key
    with file_lock(root / f".{key}.lock"):
        if (final / "build.json").is_file():
            return DarknetBuild.load(final)
        _require_tools(fork)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
        try:
            _unpack(path, tmp)
            if not (tmp / "Makefile").is_file():
                raise BridgeError("not a Darknet source: no Makefile", file=path)
            for sub in ("obj", "backup", "results"):
                (tmp / sub).mkdir(exist_ok=True)
            flags = list(MAKE_FLAGS[fork])
            if gpu:
                flags[0] = "GPU=1"
            command = ["make", f"-j{max(1, jobs)}"] + flags
            if log:
                print(f"darknet-py: building {fork}'s Darknet ({' '.join(command)}) in {final}",
                      file=sys.stderr)
            start = time.monotonic()
            logfile = tmp / "build.log"
            with open(logfile, "wb") as out:
                out.write(f"$ {' '.join(command)}\n".encode())
                out.flush()
                try:
                    rc = subprocess.run(command, cwd=tmp, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, timeout=_BUILD_TIMEOUT_S).returncode
                except subprocess.TimeoutExpired:
                    rc = "timeout"
            built = _find(tmp, fork)
            if rc != 0 or not built.lib.is_file():
                kept = root / f"{key}-failed.log"
                shutil.copyfile(logfile, kept)
                why = (f"timed out after {_BUILD_TIMEOUT_S} s" if rc == "timeout"
                       else f"exit status {rc}" if rc != 0 else "no libdarknet produced")
                raise BridgeError(f"building Darknet failed ({why}); see the build log {kept}",
                                  file=path)
            result = DarknetBuild(final, fork, final / built.lib.name, final / "include",
                                  None if built.exe is None else final / "darknet", digest, gpu)
            meta = result.to_json()
            meta["source"] = str(path.resolve())
            meta["make"] = command
            meta["build_seconds"] = round(time.monotonic() - start, 1)
            atomic_write(tmp / "build.json", (json.dumps(meta, indent=1) + "\n").encode())
            if final.exists():  # left without build.json by hand: not a build, replace it
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return DarknetBuild.load(final)


def from_existing(lib: PathLike, include: PathLike, *, fork: Optional[str] = None,
                  cache: Optional[PathLike] = None) -> DarknetBuild:
    """Use a Darknet you built yourself: its ``libdarknet.so``/``.a`` and its ``include/`` folder.

    Returns a build whose folder (in the cache, keyed by the library's and
    header's contents) holds a ``build.json`` pointing at them.
    """
    lib_p, inc_p = Path(lib).resolve(), Path(include).resolve()
    if inc_p.is_file() and inc_p.name == "darknet.h":
        inc_p = inc_p.parent
    if not lib_p.is_file():
        raise BridgeError("no such Darknet library (give libdarknet.so or libdarknet.a)", file=lib)
    header = inc_p / "darknet.h"
    if not header.is_file():
        raise BridgeError("no darknet.h in this include folder", file=include)
    found = fork_of_header(header.read_text(encoding="utf-8", errors="replace"))
    if found is None:
        raise BridgeError("not Darknet's darknet.h (no layer/network structs)", file=header)
    if fork is not None and fork != found:
        raise BridgeError(f"this darknet.h is {found}'s, not {fork}'s", file=header)
    h = hashlib.sha256()
    for p in (lib_p, header):
        h.update(str(p).encode() + b"\0" + p.read_bytes())
    digest = h.hexdigest()
    folder = cache_root(cache) / f"existing-{found}-{digest[:16]}"
    exe = lib_p.parent / "darknet"
    result = DarknetBuild(folder, found, lib_p, inc_p, exe if exe.is_file() else None, digest)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "build.json", (json.dumps(result.to_json(), indent=1) + "\n").encode())
    return result


__all__ = ["DarknetBuild", "FORKS", "MAKE_FLAGS", "build_darknet", "cache_root", "default_source",
           "detect_fork", "file_lock", "fork_of_header", "from_existing", "resolve_build",
           "source_hash"]
