"""`detector train` makes waiting OpenMP threads sleep (OMP_WAIT_POLICY=PASSIVE) when it
can still matter -- torch not yet imported, the user's own setting untouched -- while
``import darknet_py`` (inference) leaves the process environment alone."""
from __future__ import annotations

import os
import subprocess
import sys

CODE = """
import os, sys
import darknet_py
print(os.environ.get("OMP_WAIT_POLICY", "unset"))
from darknet_py.cli.train import passive_omp_wait
if {torch_first}:
    import torch
passive_omp_wait()
print(os.environ.get("OMP_WAIT_POLICY", "unset"))
"""


def _run(torch_first: bool, env_value: "str | None") -> list:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_value is not None:
        env["OMP_WAIT_POLICY"] = env_value
    out = subprocess.run([sys.executable, "-c", CODE.format(torch_first=torch_first)],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_train_sets_passive_only_before_torch_and_never_over_the_user():
    assert _run(False, None) == ["unset", "PASSIVE"]
    assert _run(True, None) == ["unset", "unset"]
    assert _run(False, "ACTIVE") == ["ACTIVE", "ACTIVE"]
