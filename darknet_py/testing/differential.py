"""One differential check: a cfg text through the real Darknet (the bridge) and through darknet_py.

:func:`check_cfg` writes the cfg, has the Darknet build dump a forward case of it
(seeded random weights and a seeded U(0,1) input, :func:`darknet_py.darknet.dump.dump_case`)
and compares every layer under the noise-floor rule (:func:`darknet_py.compare.compare_case`).
Used by ``tests/test_diff_darknet.py`` (CI) and ``benchmarks/diff_long.py`` (the long run).
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from ..compare import CompareReport, compare_case

#: ``dump(build, cfg, *, mode, out_dir, seed)`` -> case folder; the bridge's dump_case by default
Dump = Callable[..., object]


@dataclass
class Outcome:
    text: str
    report: Optional[CompareReport]
    #: set when Darknet itself failed on the cfg (crash, refusal): the bridge's one-line message
    darknet_error: str = ""

    @property
    def ok(self) -> bool:
        return self.report is not None and self.report.ok

    def explain(self) -> str:
        head = self.darknet_error or (self.report.summary() if self.report else "")
        table = "\n".join(self.report.lines()) if self.report else ""
        return f"{head}\n--- cfg ---\n{self.text}\n--- layers ---\n{table}"


def section_kinds(text: str) -> List[str]:
    """Section names of a cfg text, [net] excluded, in order."""
    return [k for k in re.findall(r"^\[([^\]]+)\]", text, re.M) if k not in ("net", "network")]


def _default_dump() -> Dump:
    from ..darknet.dump import dump_case
    return dump_case


def check_cfg(build, text: str, seed: int = 1, workdir: "Path | str | None" = None,
              dump: Optional[Dump] = None, keep: bool = False) -> Outcome:
    """Dump ``text`` with Darknet ``build`` (forward mode, random init and input from ``seed``)
    and compare darknet_py with it layer by layer."""
    from ..errors import DarknetError
    dump = dump or _default_dump()
    root = Path(tempfile.mkdtemp(prefix="dpy-diff-", dir=workdir))
    try:
        cfg = root / "net.cfg"
        cfg.write_text(text, encoding="utf-8")
        out = root / "case"
        try:
            dump(build, cfg, mode="forward", out_dir=out, seed=seed)
        except DarknetError as exc:
            return Outcome(text, None, str(exc))
        return Outcome(text, compare_case(out))
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
