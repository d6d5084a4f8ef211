"""Shared fixtures: where the Darknet reference data and the official weights are.

Reference data (outputs of the real Darknet C code) is read in place from
``$DARKNET_PY_REFERENCE`` (default ``../shared/reference`` from the project
root). Where it is not a folder, tests that need it skip and say why (the
header of the pytest run names the folder too) -- unless
``DARKNET_PY_REQUIRE_REFERENCE=1`` (``.ci/run`` sets it), which makes a missing
folder an error.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_ENV = "DARKNET_PY_REFERENCE"


def reference_root() -> Path:
    return Path(os.environ.get(_ENV) or ROOT.parent / "shared" / "reference").resolve()


def pytest_configure(config):
    if os.environ.get("DARKNET_PY_REQUIRE_REFERENCE") and not reference_root().is_dir():
        raise pytest.UsageError(f"{_ENV}={os.environ.get(_ENV, '')} is not a folder "
                                f"(DARKNET_PY_REQUIRE_REFERENCE is set)")


def pytest_report_header(config):
    root = reference_root()
    state = "found" if root.is_dir() else "NOT FOUND: the parity tests skip"
    return f"Darknet reference data: {root} ({state}; set {_ENV})"


@pytest.fixture(scope="session")
def reference() -> Path:
    root = reference_root()
    if not root.is_dir():
        pytest.skip(f"Darknet reference data not found at {root} (set {_ENV})")
    return root


@pytest.fixture(scope="session")
def pj_cases(reference) -> Path:
    return reference / "darknet"


@pytest.fixture(scope="session")
def ab_cases(reference) -> Path:
    return reference / "darknet-alexeyab"


@pytest.fixture(scope="session")
def tiny_weights() -> Path:
    """The official yolov3-tiny.weights, fetched once (sha256-checked) into the cache."""
    from darknet_py import zoo
    try:
        return zoo.fetch("yolov3-tiny")
    except Exception as exc:  # no network and no cache
        if os.environ.get("DARKNET_PY_REQUIRE_WEIGHTS"):
            raise
        pytest.skip(f"official yolov3-tiny weights unavailable: {exc}")


# -- real Darknet builds (darknet_py.darknet), one per fork per session -----------------------
_REQUIRE_DARKNET = "DARKNET_PY_REQUIRE_DARKNET"


def _darknet_build(fork: str):
    """Build (or reuse from the cache) ``fork``'s Darknet from ``shared/darknet-src``.

    Skips with the reason when there is no C toolchain or no source tarball, unless
    ``DARKNET_PY_REQUIRE_DARKNET=1`` (``.ci/run``), which turns that into a failure.
    A build that fails is always a failure.
    """
    import shutil

    from darknet_py.darknet.build import build_darknet, default_source
    from darknet_py.errors import BridgeError

    def unavailable(why: str):
        if os.environ.get(_REQUIRE_DARKNET) == "1":
            pytest.fail(f"{_REQUIRE_DARKNET}=1 but {why}")
        pytest.skip(why)

    tools = ("make", "gcc", "cc") + (("g++",) if fork == "alexeyab" else ())
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        unavailable(f"no C toolchain to build {fork}'s Darknet ({', '.join(missing)} not on PATH)")
    try:
        src = default_source(fork)
    except BridgeError as exc:
        unavailable(str(exc))
    return build_darknet(src, fork=fork)


@pytest.fixture(scope="session")
def darknet_pjreddie():
    """pjreddie's Darknet (f6afaab), built CPU-only as the reference data was (a DarknetBuild)."""
    return _darknet_build("pjreddie")


@pytest.fixture(scope="session")
def darknet_alexeyab():
    """AlexeyAB's Darknet (59596d7), built CPU-only as the reference data was (a DarknetBuild)."""
    return _darknet_build("alexeyab")
