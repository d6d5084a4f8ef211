"""Every code block of README.md, run as written.

Blocks run in a temporary folder laid out like the repository root (``cfg/`` linked in), with
this interpreter's ``bin/`` first on PATH (so ``python`` and ``darknet-py`` are the ones under
test) and ``$DARKNET_PY_REFERENCE`` pointing at the reference data. An HTML comment right above
a block changes how it is run: ``<!-- readme-test: cuda -->`` runs it only where CUDA is
available, ``<!-- readme-test: skip REASON -->`` only checks its shell syntax (and says why).

The two install-and-run commands: the ``## Tests`` block is what ``.ci/run`` runs verbatim in a
fresh clone (checked here to be that block); the ``## Quick start`` block runs here after its
install steps (the same ones), and verbatim in a fresh clone and venv under ``-m slow``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, NamedTuple, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
INSTALL = re.compile(r"python3 -m venv \.venv && \. \.venv/bin/activate && "
                     r"pip install -e '\.\[([a-z,]+)\]' && ")


class Block(NamedTuple):
    index: int
    heading: str
    lang: str
    body: str
    mark: Optional[str]


def blocks() -> List[Block]:
    text = README.read_text(encoding="utf-8")
    found = []
    pattern = re.compile(r"(?:<!-- readme-test: (?P<mark>[^>]*?) -->\n)?^```(?P<lang>[^\n]*)\n"
                         r"(?P<body>.*?)^```$", re.S | re.M)
    for i, m in enumerate(pattern.finditer(text)):
        headings = re.findall(r"^## (.+)$", text[:m.start()], flags=re.M)
        found.append(Block(i, headings[-1] if headings else "", m.group("lang").strip(),
                           m.group("body"), m.group("mark")))
    return found


BLOCKS = [b for b in blocks() if b.lang != "text"]


def test_every_block_says_its_language():
    assert all(b.lang in ("sh", "python", "text") for b in blocks()), \
        [(b.heading, b.lang) for b in blocks()]
    assert len(BLOCKS) >= 6


@pytest.fixture()
def workdir(tmp_path, reference, tiny_weights, monkeypatch):
    """A folder laid out like the repository root, and the environment of a user who
    followed the Tests block (package installed, reference data where the README says)."""
    (tmp_path / "cfg").symlink_to(ROOT / "cfg")
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT)
    env["DARKNET_PY_REFERENCE"] = str(reference)
    return tmp_path, env


def _run(cmd, cwd, env) -> subprocess.CompletedProcess:
    run = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"{cmd}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    return run


def _quick_start_rest(block: Block) -> str:
    match = INSTALL.match(block.body.strip())
    assert match, "the Quick start installs like the Tests block"
    extras = match.group(1).split(",")
    setup = (ROOT / "setup.cfg").read_text()
    assert all(re.search(rf"^{e} =", setup, flags=re.M) for e in extras), extras
    return block.body.strip()[match.end():]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.index}-{b.heading}-{b.lang}" for b in BLOCKS])
def test_block_runs(block, workdir):
    cwd, env = workdir
    body = block.body
    # blocks that may not run here are at least valid shell / Python
    if block.lang == "sh":
        _run(["bash", "-n", "-c", body], cwd, env)
    else:
        compile(body, f"README block {block.index}", "exec")
    if block.mark and block.mark.startswith("skip"):
        reason = block.mark[len("skip"):].strip()
        assert reason, "say why the block is not run"
        pytest.skip(f"README marks it: {reason}")
    if block.mark == "cuda":
        import torch
        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA device")
    assert block.mark is None or block.mark == "cuda", block.mark
    if block.heading == "Tests":
        # .ci/run extracts this very block and runs it in a fresh clone
        ci = (ROOT / ".ci" / "run").read_text()
        awk = re.search(r"cmd=\$\(awk '([^']+)' README\.md\)", ci).group(1)
        extracted = subprocess.run(["awk", awk, str(README)], capture_output=True, text=True)
        assert extracted.stdout.strip() == body.strip() and "pytest" in body
        assert len(body.strip().splitlines()) == 1
        return
    if block.heading == "Quick start":
        run = _run(["bash", "-euo", "pipefail", "-c", _quick_start_rest(block)], cwd, env)
        # what the README says this prints and writes
        for line in ("tie: 46%", "tie: 30%", "tie: 20%", "person: 23%"):
            assert line in run.stdout.splitlines(), run.stdout
        assert (cwd / "predictions.jpg").is_file()
        return
    if block.lang == "sh":
        _run(["bash", "-euo", "pipefail", "-c", body], cwd, env)
    else:
        _run([sys.executable, "-c", body], cwd, env)


@pytest.mark.slow
def test_quick_start_verbatim_in_a_fresh_clone_and_venv(tmp_path, reference):
    """The Quick start exactly as written: fresh clone, fresh venv, pip install (network)."""
    if shutil.which("git") is None:
        pytest.skip("no git")
    quick = next(b for b in BLOCKS if b.heading == "Quick start")
    clone = tmp_path / "darknet_py"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = _run(["bash", "-euo", "pipefail", "-c", quick.body], clone, env)
    assert "tie: 46%" in run.stdout.splitlines()
