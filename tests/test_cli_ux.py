"""The command line as a Darknet user meets it: global options anywhere, --version, plain
help, one-line errors for arguments in the wrong order, unused-key warnings, progress bar,
file modes, and the reference-data skip promised by the README."""
from __future__ import annotations

import argparse
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import darknet_py
from darknet_py import zoo
from darknet_py.cli import build_parser, main
from darknet_py.errors import CfgError, WeightsError

ROOT = Path(__file__).resolve().parent.parent
TINY_CFG = str(ROOT / "cfg" / "yolov3-tiny.cfg")
DATA = str(ROOT / "cfg" / "coco.data")


def _lines(text):
    return [line for line in text.splitlines() if line]


def _one_error(capsys) -> str:
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1, err
    assert err[0].startswith("darknet-py: error: ") and "Traceback" not in err[0]
    return err[0]


@pytest.fixture()
def dog(reference) -> str:
    return str(reference / "images" / "dog.jpg")


# -- global options ----------------------------------------------------------------------
def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"darknet-py {darknet_py.__version__} (torch ")
    assert main(["check", "--version"]) == 0  # anywhere


def test_debug_anywhere(tmp_path, capsys):
    assert main(["check", str(tmp_path / "none.cfg")]) == 2
    assert "none.cfg" in _one_error(capsys)
    for argv in (["--debug", "check", str(tmp_path / "none.cfg")],
                 ["check", str(tmp_path / "none.cfg"), "--debug"]):
        with pytest.raises(CfgError):
            main(argv)


def test_device_anywhere(capsys, pj_cases, tiny_weights):
    case = str(pj_cases / "tiny-official-dog")
    assert main(["compare", case, "--device", "cpu"]) == 0
    assert main(["--device=cpu", "compare", case]) == 0
    capsys.readouterr()
    assert main(["check", TINY_CFG, "--device", "tpu"]) == 2
    assert "expected cpu, cuda or cuda:N" in _one_error(capsys)
    import torch
    if not torch.cuda.is_available():
        assert main(["check", TINY_CFG, "--device", "cuda:0"]) == 2
        assert "no usable CUDA device" in _one_error(capsys)


def _all_parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _all_parsers(child)


def test_help_is_plain_text_for_every_verb():
    texts = [p.format_help() for p in _all_parsers(build_parser())]
    assert len(texts) >= 8
    for text in texts:
        assert "``" not in text and ":class:" not in text and ":func:" not in text, text


# -- mistakes users make -----------------------------------------------------------------
def test_detector_test_without_data(capsys, tiny_weights, dog):
    assert main(["detector", "test", TINY_CFG, str(tiny_weights), dog]) == 2
    line = _one_error(capsys)
    assert "this is a Darknet .cfg file, not a .data file" in line
    assert "detector test DATA CFG WEIGHTS IMAGE" in line


def test_image_where_weights_belong(capsys, dog, tiny_weights):
    assert main(["detect", TINY_CFG, dog, str(tiny_weights)]) == 2
    assert "this is a JPEG image, not a .weights file" in _one_error(capsys)
    # the library says it too (load, check)
    with pytest.raises(WeightsError, match="this is a JPEG image, not a .weights file"):
        darknet_py.load(TINY_CFG, dog)
    assert main(["check", TINY_CFG, dog]) == 2
    assert "JPEG image" in _one_error(capsys)


def test_png_where_the_cfg_belongs(capsys, tmp_path, tiny_weights):
    png = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(png)
    assert main(["detect", str(png), TINY_CFG, str(tiny_weights)]) == 2
    assert "photo.png: this is a PNG image, not a .cfg file" in _one_error(capsys)
    with pytest.raises(CfgError, match="PNG image, not a .cfg file"):
        darknet_py.load(png)


def test_misspelt_official_name(capsys, dog):
    assert main(["detect", TINY_CFG, "yolov3-tiy", dog]) == 2
    assert "did you mean yolov3-tiny?" in _one_error(capsys)
    assert main(["weights", "fetch", "yolo4"]) == 2
    assert "did you mean yolov4?" in _one_error(capsys)


def test_unused_key_is_one_warning_line_and_explains_the_weights_error(
        tmp_path, capsys, tiny_weights, dog):
    text = Path(TINY_CFG).read_text()
    first = text.index("filters")
    typo = tmp_path / "typo.cfg"
    typo.write_text(text[:first] + "fliters" + text[first + len("filters"):])
    line_no = text[:first].count("\n") + 1
    assert main(["detect", str(typo), str(tiny_weights), dog, "--no-image"]) == 2
    err = _lines(capsys.readouterr().err)
    note = f"{typo}:{line_no} [convolutional] fliters (did you mean filters?)"
    assert err[0] == f"darknet-py: warning: unused cfg key: {note}"
    assert len(err) == 2 and err[1].startswith("darknet-py: error: ")
    assert "keys Darknet ignores, which may explain it: " + note in err[1]


def test_written_files_follow_the_umask(tmp_path, tiny_weights):
    model = darknet_py.load(TINY_CFG, tiny_weights)
    old = os.umask(0o022)
    try:
        model.save_weights(tmp_path / "a.weights")
        os.umask(0o077)
        model.save_weights(tmp_path / "b.weights")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.weights").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.weights").stat().st_mode) == 0o600


# -- progress ------------------------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_only(tmp_path, capsys, monkeypatch, tiny_weights, reference):
    images = [str(reference / "images" / n) for n in ("dog.jpg", "eagle.jpg")]
    monkeypatch.chdir(tmp_path)
    assert main(["detect", TINY_CFG, str(tiny_weights), *images, "--no-image"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # not a terminal: no bar
    plain_out = captured.out
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["detect", TINY_CFG, str(tiny_weights), *images, "--no-image"]) == 0
    out = capsys.readouterr().out
    assert "2/2" in terminal.getvalue()
    # the printed lines are the same, with no bar in them (timings aside)
    strip = [line.split(": Predicted")[0] for line in _lines(out)]
    assert strip == [line.split(": Predicted")[0] for line in _lines(plain_out)]
    assert "\r" not in out


# -- the README's promise about missing reference data ------------------------------------
def test_missing_reference_data_skips_with_the_reason(tmp_path):
    env = dict(os.environ, DARKNET_PY_REFERENCE=str(tmp_path / "nonexistent"),
               PYTHONPATH=str(ROOT))
    env.pop("DARKNET_PY_REQUIRE_REFERENCE", None)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          "tests/test_core_compare.py"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Darknet reference data not found at" in run.stdout and "nonexistent" in run.stdout
    env["DARKNET_PY_REQUIRE_REFERENCE"] = "1"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_core_compare.py"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "is not a folder" in run.stdout + run.stderr


def test_zoo_names_resolve_through_detect(monkeypatch, tiny_weights, capsys, dog, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(zoo, "fetch", lambda name, **kw: Path(tiny_weights))
    assert main(["detector", "test", DATA, TINY_CFG, "yolov3-tiny", dog, "--no-image"]) == 0


def test_no_image_at_a_terminal_prompts_like_darknet(monkeypatch, capsys, tiny_weights, dog,
                                                      tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", _Terminal(dog + "\n"))
    assert main(["detect", TINY_CFG, str(tiny_weights), "--no-image"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Enter Image Path: " + dog + ": Predicted in")
    assert out.rstrip().endswith("Enter Image Path:")  # asks again; end of input ends it


def test_a_verb_with_its_own_device_default_keeps_it(monkeypatch):
    """A verb declaring --device (e.g. training: 'auto') keeps its default unless the user
    gives --device, wherever on the line."""
    import darknet_py.cli as cli
    seen = []
    original = cli.build_parser

    def with_verb():
        parser = original()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.add_parser("probe")
        p.add_argument("--device", default="auto")
        p.set_defaults(func=lambda args: seen.append(args.device))
        return parser

    monkeypatch.setattr(cli, "build_parser", with_verb)
    assert main(["probe"]) == 0
    assert main(["probe", "--device", "cpu"]) == 0
    assert main(["--device=cpu", "probe"]) == 0
    assert seen == ["auto", "cpu", "cpu"]
