"""Bad inputs to the bridge: one clear error line each, never a hang."""
from __future__ import annotations

import pytest

from darknet_py.cli import main
from darknet_py.darknet import build_darknet, dump_case
from darknet_py.darknet.build import _unpack, default_source
from darknet_py.darknet.harness import compiler
from darknet_py.errors import BridgeError, DataError

CRASH_CFG = """[net]
width=32
height=32
channels=3

[convolutional]
filters=4
size=3
stride=1
pad=1
activation=leaky

[shortcut]
from=-100
activation=linear
"""


def _one_line_error(capsys) -> str:
    """The CLI's error: exactly one `darknet-py: error:` line (a progress line may precede it)."""
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("darknet-py: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_no_compiler(tmp_path, monkeypatch):
    try:
        src = default_source("pjreddie")
    except BridgeError as exc:
        pytest.skip(str(exc))
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(BridgeError, match="no C compiler.*gcc.*build-essential"):
        build_darknet(src, cache=tmp_path / "cache")
    with pytest.raises(BridgeError, match="no C compiler.*harness"):
        compiler()


def test_not_a_darknet_source(tmp_path, capsys):
    tree = tmp_path / "project"
    (tree / "include").mkdir(parents=True)
    (tree / "Makefile").write_text("all:\n\ttrue\n")
    (tree / "include" / "darknet.h").write_text("int darknet_version;\n")
    assert main(["darknet", "build", str(tree)]) == 2
    assert "not a Darknet source" in _one_line_error(capsys)
    with pytest.raises(BridgeError, match="not a Darknet source"):
        build_darknet(tree, cache=tmp_path / "cache")
    with pytest.raises(BridgeError, match="no such Darknet source"):
        build_darknet(tmp_path / "nothing-here", cache=tmp_path / "cache")


def test_a_failing_build_names_its_log(darknet_pjreddie, tmp_path, capsys, monkeypatch):
    tree = tmp_path / "broken-darknet"
    _unpack(default_source("pjreddie"), tree)
    gemm = tree / "src" / "gemm.c"
    gemm.write_text("#error injected by darknet_py's test\n" + gemm.read_text())
    monkeypatch.setenv("DARKNET_PY_CACHE", str(tmp_path / "cache"))
    assert main(["darknet", "build", str(tree)]) == 2
    err = _one_line_error(capsys)
    assert "building Darknet failed" in err and "see the build log" in err
    log = err.rsplit("see the build log ", 1)[1].strip()
    assert "injected by darknet_py" in open(log).read()
    assert not [p for p in (tmp_path / "cache" / "darknet").iterdir() if p.is_dir()]


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_a_cfg_that_crashes_darknet(request, fork, tmp_path, capsys):
    build = request.getfixturevalue(f"darknet_{fork}")
    cfg = tmp_path / "crash.cfg"
    cfg.write_text(CRASH_CFG)
    assert main(["darknet", "dump", str(build.folder), str(cfg), "-o", str(tmp_path / "c")]) == 2
    err = _one_line_error(capsys)
    assert "crash.cfg" in err and "Darknet crashed (SIG" in err and "check the cfg" in err
    assert not (tmp_path / "c").exists()


def test_a_run_over_its_timeout_is_stopped(darknet_pjreddie, pj_cases, tmp_path):
    case = pj_cases / "yolov3-narrow-rand-320"
    with pytest.raises(BridgeError, match="did not finish within 0.05 s"):
        dump_case(darknet_pjreddie, case / "yolov3-narrow-320.cfg", case / "weights.weights",
                  out_dir=tmp_path / "c", timeout=0.05)


def test_bad_inputs(darknet_pjreddie, pj_cases, tmp_path):
    case = pj_cases / "tiny-rand-nonsquare"
    cfg = case / "yolov3-tiny-narrow-416x256.cfg"
    with pytest.raises(DataError, match="input has 12 values"):
        dump_case(darknet_pjreddie, cfg, out_dir=tmp_path / "a", input=__import__("numpy").zeros(12))
    not_image = tmp_path / "fake.jpg"
    not_image.write_text("not a jpeg")
    with pytest.raises(DataError, match="fake.jpg.*stb_image cannot decode"):
        dump_case(darknet_pjreddie, cfg, mode="detect", image=not_image, out_dir=tmp_path / "b")
    with pytest.raises(BridgeError, match="no such cfg"):
        dump_case(darknet_pjreddie, tmp_path / "none.cfg", out_dir=tmp_path / "c")
    with pytest.raises(BridgeError, match="not a darknet_py Darknet build folder"):
        dump_case(tmp_path, cfg, out_dir=tmp_path / "d")


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_a_cfg_darknet_refuses_quotes_darknet(request, fork, tmp_path):
    build = request.getfixturevalue(f"darknet_{fork}")
    cfg = tmp_path / "unknown.cfg"
    cfg.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n\n[foo]\n\n"
                   "[convolutional]\nfilters=4\nsize=3\nactivation=leaky\n")
    with pytest.raises(BridgeError, match=r"unknown.cfg: Darknet stopped on an error .*section type "
                                          r"not recognized: \[foo\]; then: Layer before "
                                          r"convolutional layer must output image\.; Darknet's output"):
        dump_case(build, cfg, out_dir=tmp_path / "c")
