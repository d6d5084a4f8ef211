"""``darknet-py detector test`` and ``darknet-py detect``."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from darknet_py import zoo
from darknet_py.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOG_CLASSES = ["dog", "car", "truck", "car", "bicycle"]


@pytest.fixture()
def setup(pj_cases, reference, tiny_weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return {"cfg": str(pj_cases / "tiny-official-dog" / "yolov3-tiny.cfg"),
            "data": str(ROOT / "cfg" / "coco.data"), "weights": str(tiny_weights),
            "dog": str(reference / "images" / "dog.jpg"), "images": reference / "images"}


def _lines(text: str):
    return [line for line in text.splitlines() if line]


def test_detector_test_prints_like_darknet_and_writes_outputs(setup, capsys, tmp_path):
    s = setup
    rc = main(["detector", "test", s["data"], s["cfg"], s["weights"], s["dog"],
               "--json", "dets.json"])
    out = _lines(capsys.readouterr().out)
    assert rc == 0
    assert re.fullmatch(re.escape(s["dog"]) + r": Predicted in \d+\.\d{6} seconds\.", out[0])
    assert [line.split(":")[0] for line in out[1:]] == DOG_CLASSES
    assert all(re.fullmatch(r"[a-z ]+: \d+%", line) for line in out[1:])
    with Image.open(tmp_path / "predictions.jpg") as im:
        assert im.size == (768, 576)
    records = json.loads((tmp_path / "dets.json").read_text())
    assert [r["name"] for r in records] == DOG_CLASSES
    assert set(records[0]) == {"image", "class_id", "name", "prob", "objectness",
                               "x", "y", "w", "h"}
    assert records[0]["image"] == s["dog"] and records[0]["class_id"] == 16
    assert f"{records[0]['prob'] * 100:.0f}" == out[1].split(": ")[1].rstrip("%")


def test_options_thresh_nms_out(setup, capsys, tmp_path):
    s = setup
    rc = main(["detector", "test", s["data"], s["cfg"], s["weights"], s["dog"],
               "-thresh", "0.25", "-hier", "0.3", "-nms", "0", "-out", "mine"])
    out = _lines(capsys.readouterr().out)
    assert rc == 0 and (tmp_path / "mine.jpg").is_file()
    assert not (tmp_path / "predictions.jpg").exists()
    assert len(out) - 1 > len(DOG_CLASSES)  # lower threshold, no NMS


def test_folder_list_and_batch(setup, capsys, tmp_path):
    s = setup
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("dog.jpg", "eagle.jpg"):
        (folder / name).symlink_to(s["images"] / name)
    (folder / "notes.md").write_text("not an image, not picked up")
    (tmp_path / "list.txt").write_text(f"{s['images'] / 'person.jpg'}\n\nimgs/dog.jpg\n")
    rc = main(["detector", "test", s["data"], s["cfg"], s["weights"], str(folder),
               "list.txt", "--batch", "3", "--json", "all.json"])
    out = capsys.readouterr().out
    assert rc == 0
    predicted = re.findall(r"^(.*): Predicted in", out, flags=re.M)
    assert [Path(p).name for p in predicted] == ["dog.jpg", "eagle.jpg", "person.jpg", "dog.jpg"]
    written = sorted(p.name for p in tmp_path.glob("predictions_*.jpg"))
    assert written == ["predictions_dog.jpg", "predictions_dog_2.jpg", "predictions_eagle.jpg",
                       "predictions_person.jpg"]
    names = {r["name"] for r in json.loads((tmp_path / "all.json").read_text())}
    assert {"dog", "bird", "person", "horse"} <= names


def test_bad_images_are_one_line_errors_and_the_rest_still_runs(setup, capsys, tmp_path):
    s = setup
    data = Path(s["dog"]).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:2000])
    (tmp_path / "junk.png").write_text("hello")
    Image.new("RGB", (10000, 20)).save(tmp_path / "strip.png")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(tmp_path / "dot.png")
    rc = main(["detector", "test", s["data"], s["cfg"], s["weights"], "missing.jpg", "cut.jpg",
               "junk.png", "strip.png", "dot.png", s["dog"], "--no-image"])
    captured = capsys.readouterr()
    assert rc == 2
    errors = _lines(captured.err)
    assert len(errors) == 4
    for name, line in zip(["missing.jpg", "cut.jpg", "junk.png", "strip.png"], errors):
        assert line.startswith("darknet-py: error: ") and name in line
        assert "Traceback" not in line
    predicted = re.findall(r"^(.*): Predicted in", captured.out, flags=re.M)
    assert predicted == ["dot.png", s["dog"]]
    assert not list(tmp_path.glob("predictions*"))


def test_missing_names_file_is_one_line(setup, capsys, tmp_path):
    s = setup
    (tmp_path / "x.data").write_text("classes=80\nnames=nowhere.names\n")
    rc = main(["detector", "test", "x.data", s["cfg"], s["weights"], s["dog"]])
    err = capsys.readouterr().err
    assert rc == 2 and len(_lines(err)) == 1 and "nowhere.names" in err


def test_missing_weights_and_cfg(setup, capsys):
    s = setup
    assert main(["detector", "test", s["data"], s["cfg"], "none.weights", s["dog"]]) == 2
    err = capsys.readouterr().err
    assert len(_lines(err)) == 1 and "none.weights" in err
    assert main(["detect", "none.cfg", s["weights"], s["dog"]]) == 2
    err = capsys.readouterr().err
    assert len(_lines(err)) == 1 and "none.cfg" in err


def test_detect_shortcut_and_official_weights_name(setup, capsys, monkeypatch, tmp_path):
    """``detect CFG yolov3-tiny IMAGE``: COCO names (no ./cfg/coco.data here), weights by name."""
    s = setup
    fetched = []

    def fake_fetch(name, **kwargs):
        fetched.append(name)
        return Path(s["weights"])

    monkeypatch.setattr(zoo, "fetch", fake_fetch)
    rc = main(["detect", s["cfg"], "yolov3-tiny", s["dog"], "-out", "quick"])
    out = _lines(capsys.readouterr().out)
    assert rc == 0 and fetched == ["yolov3-tiny"]
    assert [line.split(":")[0] for line in out[1:]] == DOG_CLASSES
    assert (tmp_path / "quick.jpg").is_file()
    # with ./cfg/coco.data present, `detect` reads it, as Darknet does
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "coco.data").write_text("names = cfg/my.names\n")
    (tmp_path / "cfg" / "my.names").write_text("".join(f"c{i}\n" for i in range(80)))
    assert main(["detect", s["cfg"], s["weights"], s["dog"], "--no-image"]) == 0
    assert _lines(capsys.readouterr().out)[1] == "c16: " + out[1].split(": ")[1]


def test_paths_from_stdin_like_darknets_prompt(setup, capsys, monkeypatch):
    import io
    s = setup
    monkeypatch.setattr("sys.stdin", io.StringIO(s["dog"] + "\n"))
    assert main(["detector", "test", s["data"], s["cfg"], s["weights"], "-", "--no-image"]) == 0
    assert _lines(capsys.readouterr().out)[0].startswith(s["dog"] + ": Predicted in")
    # `-` with nothing on stdin is an error, not a silent success
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["detector", "test", s["data"], s["cfg"], s["weights"], "-", "--no-image"]) == 2
    err = capsys.readouterr().err
    assert len(_lines(err)) == 1 and "no image paths on standard input" in err
    # no IMAGE and stdin not a terminal: nothing waits; the error says what to pass
    monkeypatch.setattr("sys.stdin", io.StringIO(s["dog"] + "\n"))
    assert main(["detector", "test", s["data"], s["cfg"], s["weights"], "--no-image"]) == 2
    err = capsys.readouterr().err
    assert len(_lines(err)) == 1 and "no IMAGE given" in err and "- to read paths" in err


def test_help_lists_the_verbs(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "detector" in out and "detect" in out
    with pytest.raises(SystemExit):
        main(["detector", "test", "--help"])
    assert "-thresh" in capsys.readouterr().out


def test_samples_module(capsys):
    pytest.importorskip("matplotlib")
    from darknet_py import samples
    path = samples.sample_path()
    assert path.name == "grace_hopper.jpg" and path.is_file()
    assert samples.main([]) == 0
    assert capsys.readouterr().out.strip() == str(path)


def test_samples_without_matplotlib(monkeypatch, capsys):
    import sys
    from darknet_py import samples
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert samples.main([]) == 2
    assert "matplotlib" in capsys.readouterr().err


def test_samples_finds_matplotlibs_file(monkeypatch, tmp_path, capsys):
    """The lookup through matplotlib.cbook.get_sample_data, with a stand-in matplotlib."""
    import sys
    import types
    from darknet_py import samples
    (tmp_path / "grace_hopper.jpg").write_bytes(b"jpeg")
    cbook = types.SimpleNamespace(get_sample_data=lambda name, asfileobj: tmp_path / name)
    fake = types.ModuleType("matplotlib")
    fake.cbook = cbook
    monkeypatch.setitem(sys.modules, "matplotlib", fake)
    monkeypatch.setitem(sys.modules, "matplotlib.cbook", cbook)
    monkeypatch.setitem(sys.modules, "skimage", None)
    assert samples.sample_path() == tmp_path / "grace_hopper.jpg"
    assert samples.main(["grace_hopper.jpg"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "grace_hopper.jpg")
    assert samples.main(["nothing.png"]) == 2
    assert "nothing.png" in capsys.readouterr().err


def test_too_few_names_names_the_data_file(setup, capsys, tmp_path):
    s = setup
    (tmp_path / "few.names").write_text("a\nb\n")
    (tmp_path / "few.data").write_text("names = few.names\n")
    assert main(["detector", "test", "few.data", s["cfg"], s["weights"], s["dog"]]) == 2
    err = capsys.readouterr().err
    assert len(_lines(err)) == 1 and "few.data" in err and "2 class names" in err
