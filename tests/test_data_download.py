"""`bench data download` and :func:`bench.datafiles.download` against an HTTP server on 127.0.0.1 only:
resuming, restarting when the server ignores ``Range``, checksums, no network, the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import socket

import numpy as np
import pytest
from local_http import LocalServer
from typer.testing import CliRunner

from bench.cli.data import data_app
from bench.datafiles import SOURCES, RemoteFile, download
from bench.datasets import mmnist_real
from bench.errors import BenchError
from dataset_files import one_line, write_mmnist_std

cli = CliRunner()



class Server(LocalServer):
    """http.server on 127.0.0.1 serving fixture bytes, with Range support (or not), logging requests."""

    def __init__(self, files: dict[str, bytes], honour_range: bool = True):
        self.files, self.honour_range, self.requests = files, honour_range, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.requests.append((self.path, self.headers.get("Range")))
                body = outer.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and outer.honour_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        super().__init__(Handler)


PAYLOAD = np.random.default_rng(5).integers(0, 256, 300_000, dtype=np.uint8).tobytes()


def remote(url, **kw) -> RemoteFile:
    return RemoteFile(url=url, dest="sub/blob.bin", **kw)


def test_download_resumes_from_part_file(tmp_path):
    part = tmp_path / "sub" / "blob.bin.part"
    part.parent.mkdir()
    part.write_bytes(PAYLOAD[:100_000])
    with Server({"blob.bin": PAYLOAD}) as srv:
        out = download(remote(f"{srv.url}/blob.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest(), size=len(PAYLOAD)),
                       tmp_path, log=lambda s: None)
    assert srv.requests == [("/blob.bin", "bytes=100000-")]
    assert out == tmp_path / "sub" / "blob.bin" and out.read_bytes() == PAYLOAD and not part.exists()


def test_download_restarts_when_range_is_ignored_and_base_url_overrides(tmp_path, monkeypatch):
    part = tmp_path / "sub" / "blob.bin.part"
    part.parent.mkdir()
    part.write_bytes(b"stale bytes")
    with Server({"blob.bin": PAYLOAD}, honour_range=False) as srv:
        monkeypatch.setenv("BENCH_DOWNLOAD_BASE", srv.url)
        out = download(remote("https://example.invalid/canonical/blob.bin", md5=hashlib.md5(PAYLOAD).hexdigest()),
                       tmp_path, log=lambda s: None)
    assert out.read_bytes() == PAYLOAD and srv.requests[0][0] == "/blob.bin"


def test_download_checksum_mismatch_leaves_nothing(tmp_path):
    with Server({"blob.bin": PAYLOAD}) as srv:
        with pytest.raises(BenchError, match=r"checksum mismatch .* md5 [0-9a-f]{32}, expected 0{32}; the partial file "
                                             r"was deleted, nothing was written to") as e:
            download(remote(f"{srv.url}/blob.bin", md5="0" * 32), tmp_path, log=lambda s: None)
    one_line(e.value)
    assert not (tmp_path / "sub" / "blob.bin").exists() and not (tmp_path / "sub" / "blob.bin.part").exists()


def test_download_without_network_is_one_line(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(BenchError, match=r"cannot reach 127.0.0.1:\d+ .*no network here\? fetch .* by hand") as e:
        download(remote(f"http://127.0.0.1:{port}/blob.bin"), tmp_path, log=lambda s: None, timeout=5)
    one_line(e.value)


def test_cli_download_mmnist_std_then_check(tmp_path, monkeypatch):
    src = tmp_path / "src"
    idx, npy = write_mmnist_std(src, n_test=5)
    dest = tmp_path / "data"
    with Server({"train-images-idx3-ubyte.gz": idx, "mnist_test_seq.npy": npy}) as srv:
        # the canonical size/MD5 do not match the fixture bytes: rejected, nothing at the final path
        res = cli.invoke(data_app, ["download", "mmnist_std", "--data-dir", str(dest), "--base-url", srv.url])
        assert res.exit_code == 2 and "has 47089 bytes, expected 9912422" in res.output, res.output
        assert "nothing was written to" in res.output
        assert not (dest / "mnist" / "train-images-idx3-ubyte.gz").exists()
        assert not list(dest.rglob("*.part"))
        # with the fixture's checksum and geometry the same command downloads and verifies both files
        monkeypatch.setattr(mmnist_real, "TEST_SHAPE", (20, 5, 64, 64))
        monkeypatch.setattr(mmnist_real, "MNIST_N", 60)
        fixture = (dataclasses.replace(mmnist_real.MNIST_REMOTE, md5=hashlib.md5(idx).hexdigest(), size=len(idx)),
                   mmnist_real.TEST_REMOTE)
        monkeypatch.setitem(SOURCES._items, "mmnist_std", dataclasses.replace(SOURCES.get("mmnist_std"), remote=fixture))
        res = cli.invoke(data_app, ["download", "mmnist_std", "--data-dir", str(dest), "--base-url", srv.url])
        assert res.exit_code == 0, res.output
        assert "mmnist_std: all files present" in res.output
    assert (dest / "mmnist" / "mnist_test_seq.npy").read_bytes() == npy
    assert (dest / "mnist" / "train-images-idx3-ubyte.gz").read_bytes() == idx
    monkeypatch.undo()  # back to the real geometry: the fixture's counts are warnings, not errors
    res = cli.invoke(data_app, ["check", "mmnist_std", "--data-dir", str(dest)], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert "warning" in res.output and "test: 5 sequences, the papers' full set has 10000" in res.output


def test_cli_download_of_a_manual_dataset_explains(tmp_path):
    res = cli.invoke(data_app, ["download", "taxibj", "--data-dir", str(tmp_path)])
    assert res.exit_code == 2 and "taxibj cannot be downloaded automatically" in res.output
    assert len(res.output.strip().splitlines()) <= 3  # one (soft-wrapped) error line
