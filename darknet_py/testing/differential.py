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
    #: set when the first mismatch comes after a layer where Darknet and darknet_py both
    #: produced inf/nan (Darknet is built with -Ofast, finite-math-only, so what its max,
    #: comparisons and sums do with them is undefined), or at a layer that is ill-conditioned
    #: in float32 itself (e.g. maxpool windows wholly in the padding give -FLT_MAX, and what
    #: follows overflows): that cfg proves nothing either way
    nonfinite: str = ""
    #: set when Darknet dumped no layer output at all (e.g. a lone [dropout], which aliases
    #: its input): nothing to compare, neither a match nor a mismatch
    empty: str = ""

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


def random_weights(text: str, fork: str, path: Path, seed: int) -> Path:
    """Write seeded random ``.weights`` for cfg ``text`` with darknet_py's writer.

    Every stored tensor is drawn: conv-like weights ~ U(-1,1)*sqrt(2/fan_in), biases
    ~ U(-0.2,0.2), BN scales and rolling variances ~ U(0.5,1.5), rolling means ~ U(-0.5,0.5).
    Darknet then reads the file with its own ``load_weights``, so a layout darknet_py gets
    wrong shows up as different outputs.
    """
    import warnings

    import torch

    from ..cfg import parse_cfg
    from ..model import Darknet
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg(text), dialect=fork)
    gen = torch.Generator().manual_seed(seed)
    named = dict(model.named_parameters())
    named.update(dict(model.named_buffers()))
    with torch.no_grad():
        for name, t in named.items():
            if not t.is_floating_point():
                continue
            u = torch.rand(t.shape, generator=gen, dtype=torch.float64)
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("rolling_variance", "scales"):
                v = 0.5 + u
            elif leaf == "rolling_mean":
                v = u - 0.5
            elif t.dim() > 1:
                v = (2 * u - 1) * (2.0 / max(1, t[0].numel())) ** 0.5
            else:
                v = (2 * u - 1) * 0.2
            t.copy_(v.to(t.dtype))
    model.save_weights(path)
    return path


def check_cfg(build, text: str, seed: int = 1, workdir: "Path | str | None" = None,
              dump: Optional[Dump] = None, keep: bool = False, init: str = "auto",
              fork: Optional[str] = None) -> Outcome:
    """Dump ``text`` with Darknet ``build`` (forward mode, input from ``seed``) and compare
    darknet_py with it layer by layer.

    ``init="darknet_py"`` (``"auto"``, the default, unless the cfg has a section whose weights
    that fork cannot load, :data:`~darknet_py.testing.cfgs.CANNOT_LOAD_WEIGHTS`): seeded random
    weights written by darknet_py
    (:func:`random_weights`) and loaded by Darknet. ``init="darknet"``: the harness's own
    seeded random init, which runs one train-mode forward to set BN statistics -- Darknet's
    training path crashes on several section types that infer fine ([batchnorm] in pjreddie,
    [detection], [cost]...), and leaves loss layers' l.output stale, so it is not the default.
    """
    from ..errors import DarknetError
    dump = dump or _default_dump()
    fork = fork or getattr(build, "fork", None) or str(build)
    if init == "auto":
        from .cfgs import CANNOT_LOAD_WEIGHTS
        stuck = CANNOT_LOAD_WEIGHTS.get(fork, set()) & set(section_kinds(text))
        init = "darknet" if stuck else "darknet_py"
    root = Path(tempfile.mkdtemp(prefix="dpy-diff-", dir=workdir))
    try:
        cfg = root / "net.cfg"
        cfg.write_text(text, encoding="utf-8")
        out = root / "case"
        weights = None
        if init == "darknet_py":
            weights = random_weights(text, fork, root / "random.weights", seed)
        elif init != "darknet":
            raise ValueError(f"init must be 'darknet_py' or 'darknet', not {init!r}")
        try:
            dump(build, cfg, weights, mode="forward", out_dir=out, seed=seed, input_seed=seed + 1)
        except DarknetError as exc:
            return Outcome(text, None, str(exc))
        if not any(out.glob("layer_*.npy")):
            return Outcome(text, None, empty="Darknet dumped no layer output")
        layers = None
        if init == "darknet":
            # the harness's calibration forward (train mode, with truth) leaves [cost]'s
            # l.output holding that pass's loss, which inference never clears: not compared
            layers = [i for i, kind in enumerate(section_kinds(text)) if kind != "cost"]
        report = compare_case(out, weights=weights, layers=layers)
        bad = report.first_bad
        if bad is not None and "ill-conditioned" in bad.note:
            return Outcome(text, report, nonfinite=f"layer {bad.index} ({bad.kind}): darknet_py's "
                           f"own float32 is {bad.floor:.1e} from its float64 (overflow)")
        if bad is not None:
            import numpy as np
            for row in report.rows:
                if row.index >= bad.index:
                    break
                if not np.isfinite(np.load(out / f"layer_{row.index:03d}.npy")).all():
                    return Outcome(text, report, nonfinite=f"layer {row.index} ({row.kind}) "
                                   f"is inf/nan in both before the mismatch at {bad.index}")
        return Outcome(text, report)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
