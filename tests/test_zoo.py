"""The official-weights zoo: entries, and downloads against a local HTTP server (no network).

The server (``http.server`` on 127.0.0.1 in a thread) serves a made-up file under a
made-up zoo entry; it honours ``Range`` requests and can cut a response short, so
download, resume, checksum failure, mirror and unreachable host are each exercised.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import darknet_py
from darknet_py import zoo
from darknet_py.cfg import read_cfg
from darknet_py.cli import main
from darknet_py.errors import WeightsError
from darknet_py.model import Darknet
from darknet_py.weights import _layout

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes


# -- the entries ----------------------------------------------------------------------------
def test_required_entries_are_there():
    for name in ["yolov3", "yolov3-spp", "yolov3-tiny", "darknet53.conv.74", "yolov2",
                 "yolov2-tiny", "yolov4", "yolov4-tiny", "yolov4.conv.137",
                 "yolov4-tiny.conv.29"]:
        assert name in zoo.OFFICIAL, name


@pytest.mark.parametrize("name", sorted(zoo.OFFICIAL))
def test_entry_is_complete(name):
    w = zoo.OFFICIAL[name]
    assert w.name == name and w.size > 0 and w.urls
    assert all(u.startswith("https://") and u.endswith("/" + w.filename) for u in w.urls)
    assert w.source, "say where size and checksum come from"
    if w.checksum is None:
        assert "no trusted public checksum" in w.source
    else:
        algorithm, digest = w.checksum
        assert re.fullmatch(r"[0-9a-f]{%d}" % {"sha256": 64, "sha1": 40}[algorithm], digest)
    for path in (w.cfg, w.names):
        if path is not None:
            assert (ROOT / path).is_file(), path
    assert (w.cfg is None) != (w.upstream_cfg is None), "a cfg here, or the fork's to use"
    assert w.fork in ("pjreddie", "alexeyab")


def test_upstream_cfgs_give_the_recorded_sizes(reference):
    """Entries without a cfg here name the fork's: its parameters give the recorded size."""
    for w in zoo.OFFICIAL.values():
        if w.upstream_cfg is not None:
            path = reference / "cfg" / w.fork / Path(w.upstream_cfg).name
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with torch.device("meta"):
                    model = Darknet(read_cfg(path), w.fork, warn_unused=False)
            layout = _layout(model, w.upto)
            assert w.header + 4 * (layout[-1][1] + layout[-1][2]) == w.size, w.name


@pytest.mark.parametrize("name", sorted(n for n, w in zoo.OFFICIAL.items() if w.cfg))
def test_size_is_header_plus_the_cfgs_parameters(name):
    """Each recorded size equals what the shipped cfg needs: header + 4 bytes per float of
    layers 0..upto-1 (the cfg built on the meta device: nothing allocated)."""
    w = zoo.OFFICIAL[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.device("meta"):
            model = Darknet(read_cfg(w.cfg_path()), w.fork, warn_unused=False)
    layout = _layout(model, w.upto)
    # the v2-era files were written as version 0.1 (32-bit 'seen'): their entries say so
    assert w.header == (16 if "16-byte header" in w.source else 20)
    assert w.header + 4 * (layout[-1][1] + layout[-1][2]) == w.size


def test_suggest_and_resolve():
    assert zoo.suggest("yolov4tiny") == "yolov4-tiny"
    assert zoo.suggest("yolov3.weights") == "yolov3"
    with pytest.raises(WeightsError, match="did you mean yolov3-tiny"):
        zoo.resolve("yolov3-tiy")
    assert zoo.resolve("some/missing.weights") == "some/missing.weights"  # a path: left alone
    assert zoo.default_upto("darknet53.conv.74") == 74
    assert zoo.default_upto("yolov3") is None


def test_weights_list_cli(capsys):
    assert main(["weights", "list", "--sources"]) == 0
    out = capsys.readouterr().out
    for w in zoo.OFFICIAL.values():
        assert w.name in out and w.urls[0] in out and f"{w.size:,}" in out


# -- downloads against a local server -----------------------------------------------------
class Server:
    """Serves ``files`` (path -> bytes); records requests; ``cut`` path -> bytes to send
    before dropping the connection (once)."""

    def __init__(self) -> None:
        self.files = {}
        self.cut = {}
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match:
                    start = int(match.group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                limit = server.cut.pop(self.path, None)
                self.wfile.write(body[start:] if limit is None else body[start:start + limit])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture()
def entry(server, monkeypatch, tmp_path):
    """A zoo entry 'testnet' served by ``server`` at /files/testnet.weights; cache in tmp."""
    spec = zoo.OfficialWeights(
        "testnet", "testnet.weights", len(PAYLOAD), (server.url + "/files/testnet.weights",),
        sha256=hashlib.sha256(PAYLOAD).hexdigest(), source="test")
    server.files["/files/testnet.weights"] = PAYLOAD
    monkeypatch.setitem(zoo.OFFICIAL, "testnet", spec)
    monkeypatch.setenv("DARKNET_PY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DARKNET_PY_MIRROR", raising=False)
    return spec


def test_download_verifies_and_lands_with_the_umask(entry, server, tmp_path):
    old = os.umask(0o027)
    try:
        path = zoo.fetch("testnet", log=lambda m: None)
    finally:
        os.umask(old)
    assert path == tmp_path / "cache" / "testnet.weights"
    assert path.read_bytes() == PAYLOAD
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert not path.with_name("testnet.weights.part").exists()
    assert server.requests == [("/files/testnet.weights", None)]
    # cached: no second request, and resolve() hands out the same path
    assert zoo.resolve("testnet") == os.fspath(path)
    assert len(server.requests) == 1


def test_interrupted_download_resumes_with_range(entry, server):
    server.cut["/files/testnet.weights"] = 300_000
    with pytest.raises(WeightsError) as info:
        zoo.fetch("testnet", log=lambda m: None)
    message = str(info.value)
    assert "\n" not in message
    assert f"{entry.urls[0]}: connection closed at byte 300000 of {entry.size}" in message
    part = zoo.cache_dir() / "testnet.weights.part"
    assert part.stat().st_size == 300_000
    path = zoo.fetch("testnet", log=lambda m: None)
    assert server.requests[-1] == ("/files/testnet.weights", "bytes=300000-")
    assert path.read_bytes() == PAYLOAD and not part.exists()


def test_checksum_failure_keeps_nothing(entry, server):
    bad = bytearray(PAYLOAD)
    bad[1000] ^= 1
    server.files["/files/testnet.weights"] = bytes(bad)
    with pytest.raises(WeightsError) as info:
        zoo.fetch("testnet", log=lambda m: None)
    message = str(info.value)
    assert f"sha256 {hashlib.sha256(bytes(bad)).hexdigest()} != {entry.sha256}" in message
    assert "place it by hand" in message
    assert [p for p in zoo.cache_dir().iterdir() if not p.name.startswith(".")] == []


def test_a_changed_cached_file_is_fetched_again(entry, server):
    path = zoo.fetch("testnet", log=lambda m: None)
    path.write_bytes(b"x" * len(PAYLOAD))  # same size, other bytes, new mtime
    os.utime(path, ns=(1, 1))
    logged = []
    assert zoo.fetch("testnet", log=logged.append).read_bytes() == PAYLOAD
    assert any("ignoring" in m for m in logged) and len(server.requests) == 2


def test_mirror_url(entry, server, monkeypatch):
    server.files["/mirror/testnet.weights"] = PAYLOAD
    monkeypatch.setenv("DARKNET_PY_MIRROR", server.url + "/mirror/")
    assert zoo.fetch("testnet", log=lambda m: None).read_bytes() == PAYLOAD
    assert server.requests == [("/mirror/testnet.weights", None)]


def test_mirror_folder(entry, server, monkeypatch, tmp_path):
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "testnet.weights").write_bytes(PAYLOAD)
    monkeypatch.setenv("DARKNET_PY_MIRROR", str(folder))
    assert zoo.fetch("testnet", log=lambda m: None).read_bytes() == PAYLOAD
    assert server.requests == []


def test_unreachable_host_is_one_line_with_url_reason_and_what_to_do(entry, monkeypatch):
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/files/testnet.weights"
    monkeypatch.setitem(zoo.OFFICIAL, "testnet",
                        zoo.OfficialWeights("testnet", "testnet.weights", len(PAYLOAD), (url,),
                                            sha256=entry.sha256, source="test"))
    with pytest.raises(WeightsError) as info:
        zoo.fetch("testnet", log=lambda m: None)
    message = str(info.value)
    target = zoo.cache_dir() / "testnet.weights"
    assert "\n" not in message
    assert f"{url}: Connection refused" in message
    assert f"download {url} to {target}" in message and "DARKNET_PY_MIRROR" in message


def test_http_error_reason(entry, server):
    del server.files["/files/testnet.weights"]
    with pytest.raises(WeightsError, match="HTTP 404 Not Found"):
        zoo.fetch("testnet", log=lambda m: None)


def test_cli_fetch_prints_the_path(entry, capsys):
    assert main(["weights", "fetch", "testnet"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(zoo.cache_dir() / "testnet.weights")


def test_every_weights_argument_takes_a_name(tiny_weights, monkeypatch, capsys, pj_cases):
    """load(), Darknet.load_weights, check and compare --weights accept 'yolov3-tiny'."""
    monkeypatch.setattr(zoo, "fetch", lambda name, **kw: Path(tiny_weights))
    cfg = ROOT / "cfg" / "yolov3-tiny.cfg"
    model = darknet_py.load(cfg, "yolov3-tiny")
    assert model.seen > 0
    model.load_weights("yolov3-tiny")
    assert main(["check", str(cfg), "yolov3-tiny"]) == 0
    assert "size fits" in capsys.readouterr().out
    case = pj_cases / "tiny-official-dog"
    assert main(["compare", str(case), "--weights", "yolov3-tiny"]) == 0
    with pytest.raises(WeightsError, match="did you mean yolov3-tiny"):
        darknet_py.load(cfg, "yolov3-tiy")
    assert main(["check", str(cfg), "yolov3tiny"]) == 2
    assert "did you mean yolov3-tiny?" in capsys.readouterr().err
