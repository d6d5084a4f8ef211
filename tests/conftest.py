"""Shared fixtures: where the Darknet reference data and the official weights are.

Reference data (outputs of the real Darknet C code) is read in place from
``$DARKNET_PY_REFERENCE`` (default ``../shared/reference`` from the project
root). Without it, tests that need it skip with the reason -- unless the
variable is set explicitly (``.ci/run`` does), in which case a missing folder
is an error.
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
    if os.environ.get(_ENV) and not reference_root().is_dir():
        raise pytest.UsageError(f"{_ENV}={os.environ[_ENV]} is not a folder")


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
