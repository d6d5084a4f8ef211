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
