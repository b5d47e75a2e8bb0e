"""Issue 11: the last tracebacks a user could hit are one-line errors with a non-zero exit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


sys.path.insert(0, str(Path(__file__).parent))
from dataset_files import write_taxibj  # noqa: E402  (the real-format fixture writer)


def assert_one_line_error(res, *phrases):
    out = res.output.strip()
    assert res.exit_code == 2, out
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert len(out.splitlines()) == 1 and out.startswith("error:"), out
    for phrase in phrases:
        assert phrase in out, out


def test_data_check_on_an_empty_split(bench, tmp_path):
    write_taxibj(tmp_path, n_test=0)
    res = bench("data", "check", "taxibj", "--data-dir", tmp_path)
    assert res.exit_code == 2 and (res.exception is None or isinstance(res.exception, SystemExit)), res.exception
    assert "X_test with at least one clip" in res.output and "no sequences" in res.output


def test_download_to_an_unwritable_data_dir(bench):
    res = bench("data", "download", "mmnist_std", "--data-dir", "/proc/1/bench-data")
    assert_one_line_error(res, "/proc/1/bench-data", "--data-dir")


@pytest.mark.parametrize("url", ["not a url", "ftp:/nohost/x", "http//missing-colon", "http://"])
def test_download_with_a_malformed_base_url(bench, tmp_path, url):
    res = bench("data", "download", "mmnist_std", "--data-dir", tmp_path, "--base-url", url)
    assert_one_line_error(res, "--base-url")
    res = bench("data", "download", "mmnist_std", "--data-dir", tmp_path, env={"BENCH_DOWNLOAD_BASE": url})
    assert_one_line_error(res, "--base-url")


def test_report_to_an_unwritable_place(bench, tmp_path):
    res = bench("report", "--results", tmp_path, "--out", "/proc/1/report")
    assert_one_line_error(res, "report directory /proc/1/report", "--out")
    (tmp_path / "afile").write_text("x")
    res = bench("report", "--results", tmp_path, "--out", tmp_path / "afile")
    assert_one_line_error(res, "is a file")


@pytest.mark.parametrize("damage", ["garbage", "wrong-fields"])
def test_a_corrupt_pretraining_cache_is_named_with_the_fix(bench, tmp_path, damage):
    import torch

    from run_helpers import failed_result

    args = ["run", "--methods", "plasm", "--datasets", "mmnist", "--tiny", "--quick", "--quiet", "--epochs", 1,
            "--batch-size", 4, "--sizes", "train=8,val=4,test=4", "--results", tmp_path]
    assert bench(*args).exit_code == 0
    (cache,) = (tmp_path / "_cache").rglob("plasm-pretrain-*.pt")
    if damage == "garbage":
        cache.write_bytes(b"not a checkpoint")
    else:
        torch.save({"encoder": {"weight": torch.zeros(1)}, "decoder": {}, "epoch_loss": [], "seconds": 0.0}, cache)
    res = bench(*args, "--force")
    assert res.exit_code == 1
    error = failed_result(tmp_path, "plasm").error
    assert str(cache) in error and "delete it" in error and "\n" not in error


@pytest.mark.parametrize("method", ["e3dlstm", "crevnet"])
def test_channels_last_on_3d_convolutions_is_refused_before_training(bench, tmp_path, method):
    """--channels-last cannot lay out rank-5 weights: one line before any run starts (it was a failed
    run after the model was built)."""
    res = bench("run", "-m", method, "--tiny", "--quick", "--channels-last", "-r", tmp_path / "r")
    assert_one_line_error(res, "--channels-last", method, "3-D convolutions")
    assert not (tmp_path / "r").exists()
