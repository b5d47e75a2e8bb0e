"""End-to-end CLI behaviour with tiny models and tiny data: results, protocol, errors, interruption."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from bench.core import host_allocator
from bench.spec.registry import get_method
from bench.store.record import read_result as read_record
from run_helpers import comparable, complete_result, failed_result, only, run_dirs, work_dirs

TINY = ["--datasets", "mmnist", "--tiny", "--quick", "--quiet", "--sizes", "train=8,val=4,test=4"]


def read_result(root, label="simvp", seed=0):
    return complete_result(root, label, seed=seed)


@pytest.mark.efficiency
def test_result_records_everything(trained_run):
    """The shared run (simvp, TINY, --epochs 2: conftest.TRAINED_RUN_ARGS) recorded everything."""
    r = read_result(trained_run)
    assert r.complete and r.spec.seed == 0 and r.schema == 2
    assert r.spec.hparams["hid_S"] > 0 and r.spec.epochs == 2 and r.spec.tiny and r.spec.quick
    assert r.spec.sizes == {"train": 8, "val": 4, "test": 4} == r.dataset.sizes
    assert r.dataset.info["digit_source"] == "sklearn-digits"
    env = r.environment
    assert env.torch and env.python and env.device == "cpu"
    assert r.settings.host_allocator == host_allocator.setting_for("cpu") != ""  # CPU runs apply and record it
    assert [h.epoch for h in r.history] == [1, 2]
    for h in r.history:
        assert h.seconds > 0 and math.isfinite(h.train_loss)
        assert {"mse", "mae", "ssim", "psnr", "mse_clipped"} <= set(h.val)
    assert r.best_epoch == min(r.history, key=lambda h: h.val["mse"]).epoch
    assert {"mse", "mae", "ssim", "ssim_legacy", "psnr", "mse_pixel", "mae_pixel", "mse_clipped",
            "mae_clipped"} <= set(r.test)
    assert {k: len(v) for k, v in r.test_per_frame.items()} == {k: 10 for k in r.test}  # frames 1..T'
    assert sum(r.test_per_frame["mse"]) / 10 == pytest.approx(r.test["mse"], rel=1e-9)
    eff = r.efficiency
    assert eff.params > 0 and eff.flops > 0 and eff.fps > 0 and eff.train_seconds_per_epoch > 0
    assert len(eff.fps_repeats) == 3 and min(eff.fps_repeats) <= eff.fps <= max(eff.fps_repeats)
    assert r.scoring.protocol == "published" and "RAW" in r.scoring.text
    run_dir = only(run_dirs(trained_run))
    assert run_dir.parent.name == r.spec.hash == r.spec_hash
    hist = pd.read_csv(run_dir / "history.csv")
    assert list(hist["epoch"]) == [1, 2]
    assert hist["val_mse"].tolist() == pytest.approx([h.val["mse"] for h in r.history], rel=1e-5)
    import numpy as np

    preds = np.load(run_dir / "predictions.npz")
    assert preds["pred"].shape == preds["truth"].shape == (4, 10, 1, 64, 64)
    assert not list(trained_run.rglob("*.tmp")) and not list(trained_run.rglob("last.pt"))
    assert not work_dirs(trained_run)  # committed whole: no work directory left


def test_rerun_skips_unless_forced(bench, copy_of_trained_run):
    before = read_result(copy_of_trained_run)
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", 2, "--results", copy_of_trained_run)
    assert res.exit_code == 0 and "skipped" in res.output
    assert read_result(copy_of_trained_run) == before
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", 2, "--results", copy_of_trained_run, "--force")
    assert res.exit_code == 0
    again = read_result(copy_of_trained_run)
    assert again.timing != before.timing or again.history[0].seconds != before.history[0].seconds
    # determinism on CPU: the same seed repeats exactly
    assert comparable(again) == comparable(before)


@pytest.mark.parametrize("args, message", [
    (["--methods", "nope"], "unknown method 'nope'"),
    (["--methods", "simpv"], "did you mean 'simvp'"),
    (["--methods", "simvp", "--datasets", "nope"], "unknown dataset 'nope'"),
    (["--methods", "tau:nope"], "has no variant 'nope'"),
    (["--methods", "simvp", "--set", "nokey=1"], "has no hyperparameter 'nokey'"),
    (["--methods", "simvp", "--epochs", "-1"], "--epochs must be at least 1"),
    (["--methods", "simvp", "--seeds", "a,b"], "--seeds"),
    (["--methods", "simvp", "--sizes", "train=0"], "--sizes"),
    (["--methods", "simvp", "--device", "cuda:7"], "cuda"),
    (["--methods", "simvp", "--device", "tpu"], "device"),
])
def test_bad_input_is_one_line_and_nonzero(bench, args, message, tmp_path):
    res = bench("run", *args, "--results", tmp_path / "r")
    assert res.exit_code != 0
    err = res.stderr.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r" / "mmnist").exists()  # nothing trained, nothing written


def test_results_path_that_is_a_file(bench, tmp_path):
    (tmp_path / "f").write_text("x")
    res = bench("run", "--methods", "simvp", "--results", tmp_path / "f")
    assert res.exit_code != 0 and "is a file" in res.stderr


def test_read_only_results_directory(bench):
    # /proc/1 is a directory no process may create files in, root included
    res = bench("run", "--methods", "simvp", "--results", "/proc/1")
    assert res.exit_code != 0 and "not writable" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_interrupt_leaves_no_half_file_and_resumes_exactly(bench, tmp_path, monkeypatch):
    spec = get_method("simvp")
    original = spec.loss
    calls = {"n": 0}

    def interrupting_loss(pred, target, hp):
        calls["n"] += 1
        if calls["n"] == 3:  # epoch 2 (2 steps per epoch with batch 4 of 8 sequences)
            raise KeyboardInterrupt
        return original(pred, target, hp)

    args = ["run", "--methods", "simvp", *TINY, "--epochs", 3, "--batch-size", 4]
    object.__setattr__(spec, "loss", interrupting_loss)
    try:
        res = bench(*args, "--results", tmp_path / "a")
    finally:
        object.__setattr__(spec, "loss", original)
    assert res.exit_code == 130 and "interrupted" in res.stderr
    work = only(work_dirs(tmp_path / "a"))
    assert not run_dirs(tmp_path / "a") and (work / "last.pt").exists()
    assert not list((tmp_path / "a").rglob("*.tmp"))
    other = [a if a != 3 else 5 for a in args]  # a different budget is another configuration: a fresh run
    res = bench(*other, "--results", tmp_path / "a")
    assert res.exit_code == 0, res.output
    assert (work / "last.pt").exists()  # the interrupted 3-epoch run is untouched, still resumable
    assert bench(*args, "--results", tmp_path / "a").exit_code == 0
    assert bench(*args, "--results", tmp_path / "b").exit_code == 0
    resumed = [r for r in (read_record(d / "result.json") for d in run_dirs(tmp_path / "a")) if r.spec.epochs == 3]
    straight = read_result(tmp_path / "b")
    assert len(resumed) == 1 and comparable(resumed[0]) == comparable(straight)


def test_nan_loss_fails_that_run_only(bench, tmp_path):
    spec = get_method("simvp")
    original = spec.loss

    def nan_at_step_2(pred, target, hp, calls={"n": 0}):
        calls["n"] += 1
        loss = original(pred, target, hp)
        return loss * float("nan") if calls["n"] == 2 else loss

    object.__setattr__(spec, "loss", nan_at_step_2)
    try:
        res = bench("run", "--methods", "simvp,tau", *TINY, "--epochs", 1, "--batch-size", 4, "--results", tmp_path)
    finally:
        object.__setattr__(spec, "loss", original)
    assert res.exit_code == 1 and "1 of 2 run(s) failed" in res.stderr
    failed = failed_result(tmp_path, "simvp")
    assert failed.status == "failed" and "step 2" in failed.error and failed.last_good_epoch == 0
    assert not run_dirs(tmp_path, "simvp")  # a failure is never committed as a result
    assert read_result(tmp_path, "tau").complete


def test_list_and_help(bench):
    res = bench("list")
    assert res.exit_code == 0 and "simvp" in res.output and "mmnist" in res.output and "no-ddr" in res.output
    res = bench("list", "--hparams", "tau:no-ddr")
    assert res.exit_code == 0 and "ddr" in res.output and "an integer >= 1" in res.output
    full, tiny = bench("list", "--hparams", "simvp"), bench("list", "--hparams", "simvp", "--tiny")
    assert "(3, 5, 7, 11)" in full.output and "(3, 5)" in tiny.output and "(--tiny)" in tiny.output
    res = bench("run", "--help")
    assert res.exit_code == 0 and "--quick" in res.output and "Examples" in res.output


def test_audit_prints_and_stores_figures(bench, tmp_path):
    res = bench("audit", "--methods", "simvp,tau:no-sa", "--tiny", "--fps-batch", "2", "--results", tmp_path)
    assert res.exit_code == 0, res.output
    assert "simvp" in res.output and "tau:no-sa" in res.output
    rec = json.loads((tmp_path / "audit" / "mmnist" / "simvp+tiny.json").read_text())
    assert rec["params"] > 0 and rec["flops"] > 0 and rec["fps"] > 0 and rec["tiny"] is True
    assert rec["host_allocator"] == host_allocator.setting_for("cpu") != ""  # CPU fps measured as runs train
    from bench.cost.measure import count_params
    from bench.spec.registry import create_model

    assert rec["params"] == count_params(create_model("simvp", "mmnist", tiny=True))


def test_perf_prints_throughput_and_precision_ratio(bench, tmp_path):
    res = bench("perf", "--methods", "simvp", "--tiny", "--iters", "1", "--batch-size", "2",
                "--metric-frames", "16", "--precisions", "fp32,bf16", "--results", tmp_path)
    assert res.exit_code == 0, res.output
    assert "bf16" in res.output and "SSIM throughput" in res.output
    (record_path,) = (tmp_path / "perf").glob("perf-cpu-*.json")
    rec = json.loads(record_path.read_text())
    assert [m["precision"] for m in rec["methods"]] == ["fp32", "bf16"]
    assert all(m["train_samples_per_s"] > 0 for m in rec["methods"])
    assert "train peak (GiB)" in res.output and "eval peak (GiB)" in res.output
    for m in rec["methods"]:  # peak memory per method, of training and of evaluation (issue 25)
        assert m["train_peak_rss"] > 50 << 20 and m["eval_peak_rss"] > 50 << 20
        assert m["train_peak_gpu"] is None and m["eval_peak_gpu"] is None
    assert rec["ssim_speed"]
    assert rec["host_allocator"] == host_allocator.setting_for("cpu") != ""
