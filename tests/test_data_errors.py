"""Issue 20: bad data inputs are one-line errors at the CLI, before any training, and downloads are bounded.

- A data directory the user names (``--data-dir`` or ``$BENCH_DATA``) must exist: a typo,
  ``/proc/foo`` or ``/dev/null`` made Moving MNIST train on its bundled digits.
- ``bench data download`` stops at the file's expected size (or its stated cap) and deletes the
  partial file: a mirror that streams forever filled the disk.
- ``bench data check`` printed ``values in [nan, nan]`` as "ok" before its error.
- An MNIST file with fewer than 12 images gave a raw ``RuntimeError`` from torch.
"""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import sys
from pathlib import Path

import numpy as np
import pytest
from local_http import LocalServer

from bench.datasets import mmnist_real
from bench.datafiles import SOURCES, CheckReport, check_loader
from bench.spec.splits import ArraySplits
from bench.spec.registry import get_dataset
from run_helpers import failed_result
from toy_data import idx_bytes as toy_idx_bytes

sys.path.insert(0, str(Path(__file__).parent))
from dataset_files import write_taxibj  # noqa: E402  (the real-format fixture writer)

TINY = ["--methods", "simvp", "--tiny", "--quiet", "--epochs", "1", "--sizes", "train=4,val=2,test=2",
        "--batch-size", "2"]


def one_line_error(res, *phrases) -> str:
    out = res.output.strip()
    assert res.exit_code == 2, out
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert len(out.splitlines()) == 1 and out.startswith("error:") and "Traceback" not in out, out
    for phrase in phrases:
        assert phrase in out, out
    return out


# ------------------------------------------------------------------------------ the data directory


@pytest.mark.parametrize("where", ["typo", "/proc/foo", "/dev/null", "a file", "env typo", "empty"])
def test_a_data_directory_that_is_not_there_is_refused_before_training(bench, tmp_path, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "notes.txt").write_text("not a directory")
    given = {"typo": str(tmp_path / "dtaa"), "/proc/foo": "/proc/foo", "/dev/null": "/dev/null",
             "a file": str(tmp_path / "notes.txt"), "env typo": None, "empty": ""}[where]
    env = {"BENCH_DATA": str(tmp_path / "dtaa")} if where == "env typo" else {}
    flag = [] if given is None else ["--data-dir", given]
    phrases = (["$BENCH_DATA", str(tmp_path / "dtaa")] if where == "env typo" else
               ["--data-dir is empty"] if where == "empty" else ["--data-dir", given])
    for args in (["run", *TINY, *flag, "--results", tmp_path / "r"],
                 ["run", *TINY, "--datasets", "taxibj", *flag, "--results", tmp_path / "r"],
                 ["data", "check", "mmnist", *flag], ["data", "list", *flag]):
        one_line_error(bench(*args, env=env), *phrases)
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("result.json"))


def test_an_unset_or_empty_bench_data_still_means_no_data_directory(bench, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = bench("data", "list", env={"BENCH_DATA": " "})
    assert res.exit_code == 0 and "data directory: not set" in res.output, res.output


# ------------------------------------------------------------------------------ MNIST idx files


def idx_bytes(n: int, rows: int = 28, cols: int = 28, magic: int = 2051) -> bytes:
    return toy_idx_bytes(np.random.default_rng(n).integers(0, 256, (n, rows, cols), dtype=np.uint8), magic)


def corrupt_gzip(raw: bytes) -> bytes:
    """A gzip file whose deflate stream is damaged right after its header (zlib.error, not an OSError)."""
    data = bytearray(gzip.compress(raw))
    data[12:40] = bytes(b ^ 0x5A for b in data[12:40])
    return bytes(data)


BAD_IDX = {  # file name, bytes, phrase of the one-line error
    "11 images": ("train-images-idx3-ubyte", idx_bytes(11), "holds 11 images; Moving MNIST needs at least 12"),
    "5 images, gzipped": ("train-images-idx3-ubyte.gz", gzip.compress(idx_bytes(5)), "holds 5 images"),
    "no image": ("train-images-idx3-ubyte", idx_bytes(0), "holds 0 images"),
    "wrong magic": ("train-images-idx3-ubyte", idx_bytes(20, magic=2049), "bad magic number"),
    "truncated": ("train-images-idx3-ubyte", idx_bytes(20)[:-100], "truncated or corrupt"),
    "12x12 digits": ("train-images-idx3-ubyte", idx_bytes(20, 12, 12), "20 images of 12x12 pixels"),
    "not gzip": ("train-images-idx3-ubyte.gz", b"this is not gzip data", "cannot read MNIST file"),
    "corrupt gzip": ("train-images-idx3-ubyte.gz", corrupt_gzip(idx_bytes(20)), "cannot read MNIST file"),
    "empty": ("train-images-idx3-ubyte", b"", "bad magic number"),
}


@pytest.mark.parametrize("case", sorted(BAD_IDX))
def test_an_odd_mnist_file_is_one_line_before_training(bench, tmp_path, case):
    name, raw, phrase = BAD_IDX[case]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / name).write_bytes(raw)
    res = bench("run", *TINY, "--data-dir", tmp_path / "data", "--results", tmp_path / "r")
    out = one_line_error(res, phrase, name, "bench data download mmnist")
    assert "RuntimeError" not in out and not (tmp_path / "r" / "mmnist").exists()
    res = bench("data", "check", "mmnist", "--data-dir", tmp_path / "data")
    assert res.exit_code == 2 and phrase in res.output and "RuntimeError" not in res.output, res.output


def test_a_truncated_gzip_of_enough_images_fails_its_run_in_one_line(bench, tmp_path):
    """Its header is fine (the cheap check before training passes); the load finds the truncation."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(20))[:-300])
    res = bench("run", *TINY, "--data-dir", tmp_path / "data", "--results", tmp_path / "r")
    assert res.exit_code == 1, res.output
    error = failed_result(tmp_path / "r").error
    assert "\n" not in error and "train-images-idx3-ubyte.gz" in error and "Error" not in error.split(":")[0], error


# ------------------------------------------------------------------------------ bench data check


def test_data_check_names_non_finite_values_instead_of_printing_nan(bench, tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (20, 4, 2, 32, 32))
    x[3, 0, 0, 0, :2] = [np.nan, np.inf]
    write_taxibj(tmp_path, n_train=20, n_test=4, X_train=x)
    res = bench("data", "check", "taxibj", "--data-dir", tmp_path)
    assert res.exit_code == 2, res.output
    assert "[nan" not in res.output.lower() and "nan]" not in res.output.lower(), res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error")]
    assert len(errors) == 2 and "X_train" in errors[0] and "2 non-finite values (NaN or infinity)" in errors[0], errors
    assert not any(line.startswith("ok") and "X_train" in line for line in res.output.splitlines())


def test_the_loader_check_reports_non_finite_batches():
    spec = dataclasses.replace(get_dataset("taxibj"), load=lambda spec, config: ArraySplits(
        {s: (np.full((2, 4, 2, 32, 32), np.nan, np.float32), np.zeros((2, 4, 2, 32, 32), np.float32))
         for s in ("train", "val", "test")}))
    report = CheckReport()
    check_loader(spec, None, report)
    assert [level for level, _ in report.lines] == ["error"] * 3
    assert all("NaN or infinite" in text and "nan" not in text for _, text in report.lines), report.lines


# ------------------------------------------------------------------------------ bench data download


class EndlessServer(LocalServer):
    """An HTTP server on 127.0.0.1 that streams zeros without a Content-Length "forever" (until the client
    stops reading, or ``safety`` bytes, so that a client without a bound fails instead of hanging the
    suite); ``announce`` sends a Content-Length instead. Counts what it sent."""

    def __init__(self, safety: int = 48 << 20, announce: int | None = None):
        self.sent, outer = 0, self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes

            def do_GET(self):  # noqa: N802
                self.send_response(200)
                if announce is not None:
                    self.send_header("Content-Length", str(announce))
                self.end_headers()
                block = bytes(1 << 16)
                try:
                    while outer.sent < safety:
                        self.wfile.write(block)
                        outer.sent += len(block)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        super().__init__(Handler)


def test_a_download_that_streams_forever_stops_at_the_published_size(bench, tmp_path):
    with EndlessServer() as srv:
        res = bench("data", "download", "mmnist", "--data-dir", tmp_path, "--base-url", srv.url)
        sent = srv.sent
    out = res.output.replace("\n", " ")
    assert res.exit_code == 2 and "sent more than the 9912422 bytes of its published size" in out, out
    assert "deleted the partial file" in out
    # the client stopped reading near the size: the server got rid of that plus what loopback socket
    # buffers absorb (autotuned up to several MB a side, more under load), far below its 48 MB bound
    assert sent < (9912422 + (24 << 20)), sent
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no .part, nothing at the destination


def test_a_download_without_published_size_stops_at_its_stated_cap(bench, tmp_path, monkeypatch):
    cap = 3 << 20
    capped = (dataclasses.replace(mmnist_real.TEST_REMOTE, max_bytes=cap),)
    monkeypatch.setitem(SOURCES._items, "mmnist_std", dataclasses.replace(SOURCES.get("mmnist_std"), remote=capped))
    with EndlessServer() as srv:
        res = bench("data", "download", "mmnist_std", "--data-dir", tmp_path, "--base-url", srv.url)
        sent = srv.sent
    out = res.output.replace("\n", " ")
    assert res.exit_code == 2 and f"sent more than the {cap} bytes of the stated cap" in out, out
    assert sent < cap + (8 << 20), sent
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    assert mmnist_real.TEST_REMOTE.limit == 20 * 10000 * 64 * 64 + 4096  # the real file's stated cap


def test_a_download_announcing_too_many_bytes_is_refused_before_writing(bench, tmp_path):
    with EndlessServer(safety=1 << 20, announce=50_000_000) as srv:
        res = bench("data", "download", "mmnist", "--data-dir", tmp_path, "--base-url", srv.url)
    out = res.output.replace("\n", " ")
    assert res.exit_code == 2 and "announces 50000000 bytes, more than the 9912422" in out, out
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
