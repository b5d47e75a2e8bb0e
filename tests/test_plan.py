"""Plans (the papers' tables, TOML files), `bench run --plan`, `bench plan` (states, GPU-hours) and `bench status`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bench import store
from bench.cli.app import app
from bench.errors import BenchError
from bench.plan.model import load_plan_file
from bench.plan.papers import normalise_name, paper_plans, registry_dataset
from bench.report.published import PUBLISHED_ALIASES, PUBLISHED_PATH, load_published

runner = CliRunner()
TINY_PLAN = """
title = "a tiny plan"
seeds = [0, 1]
epochs = 1
batch_size = 4
tiny = true
sizes = { train = 8, val = 4, test = 4 }
methods = ["simvp"]
datasets = ["mmnist"]
"""


def bench(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_every_table_has_a_plan_of_its_registry_keys():
    """Each table's plan holds, per (dataset, horizon), exactly the registry keys its published rows name,
    read here straight from the JSON file (not through the report's loader)."""
    doc = json.loads(PUBLISHED_PATH.read_text())
    expected: dict[str, dict[tuple[str, int], set[str]]] = {}
    for e in doc["entries"]:
        table = expected.setdefault(f"{e['paper']}|{e['table']}", {})
        if e.get("ours"):
            table.setdefault((e["dataset"], e["pred_len"]), set()).add(e["method"])
    plans = paper_plans(load_published().entries, PUBLISHED_ALIASES)
    assert len(plans) == len(expected) == 15  # TAU Tables 2-6, PLA-SM Tables II-XI
    for key, cells in expected.items():
        paper, table = key.split("|")
        plan = plans[normalise_name(f"{paper.replace('-', '')}-table{table}")]
        got = {(g.datasets[0], g.pred_len): set(g.methods) for g in plan.groups}
        assert got == {(registry_dataset(d, PUBLISHED_ALIASES), p): m for (d, p), m in cells.items()}, key
        assert plan.seeds == (0, 1, 2) and plan.epochs is None and plan.batch_size is None
    six = plans["tau-table6"]
    assert six.datasets == ("mmnist_std", "taxibj")  # the papers' Moving MNIST protocol, not the generated stand-in
    assert set(six.methods) >= {"tau", "tau:no-sa", "tau:no-da", "tau:no-ddr", "tau:conv", "simvp"}
    assert normalise_name("PLASM-TableVII") == "plasm-table7" and "plasm-table7" in plans


@pytest.mark.parametrize("text, message", [
    ("methods = ['tau']\ndatasets = ['mmnist']\nseed = [0]", "unknown key 'seed'"),
    ("methods = ['tau']\ndatasets = ['mmnist']\nseeds = [0, 0]", "lists a seed twice"),
    ("methods = ['tau']\ndatasets = ['mmnist']\nepochs = 'ten'", "epochs must be an integer"),
    ("methods = ['tau']", "datasets must be a non-empty list"),
    ("title = 'x'", "lists no runs"),
    ("methods = ['tau'\n", "not valid TOML"),
    ("[[runs]]\nmethods = ['tau']\ndatasets = ['kth']\npred_len = 0", "pred_len must be a positive integer"),
])
def test_a_bad_plan_file_is_one_line(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(BenchError, match=message) as err:
        load_plan_file(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_plan_file_reads_groups_sets_and_tuples(tmp_path):
    path = tmp_path / "ablation.toml"
    path.write_text("methods = ['simvp']\ndatasets = ['mmnist']\n[set]\nincep_ker = [3, 5]\n"
                    "[[runs]]\ndatasets = ['kth']\nmethods = ['tau', 'tau']\npred_len = 40\n")
    plan = load_plan_file(path)
    assert plan.name == "ablation" and plan.seeds == (0, 1, 2) and plan.sets == {"incep_ker": (3, 5)}
    assert [(g.datasets, g.methods, g.pred_len) for g in plan.groups] == [
        (("mmnist",), ("simvp",), None), (("kth",), ("tau",), 40)]


def test_run_plan_plan_states_and_estimate(tmp_path, monkeypatch):
    """`bench run --plan FILE` runs the plan; `bench plan FILE` then shows its states and an estimate equal to
    the stated arithmetic over the audit's FLOP count; `bench status` reads the same store."""
    from bench.cost.measure import count_flops
    from bench.spec.registry import get_dataset, get_method

    monkeypatch.chdir(tmp_path)
    plan_file = tmp_path / "tiny.toml"
    plan_file.write_text(TINY_PLAN)
    res = bench("run", "--plan", plan_file, "--seeds", "0", "--results", tmp_path / "r", "--quiet")
    assert res.exit_code == 0, res.output
    shown = bench("plan", plan_file, "--results", tmp_path / "r", "--tflops", "2")
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "2 run(s): 1 complete, 0 running, 0 failed, 1 missing" in text  # --seeds 0 ran one of the plan's two
    assert "ASSUMED 2 TFLOP/s sustained (from --tflops)" in text
    method, data = get_method("simvp"), get_dataset("mmnist")
    hp = method.resolve_hparams("mmnist", tiny=True)
    flops = count_flops(method.create_model(data, hp), method.flops_inputs(data))[0]
    work = 3 * flops * 8 * 1 + flops * (4 * 1 + 4)  # 3F x train x epochs + F x (val x epochs + test)
    per_run = work / 2e12 / 3600
    assert f"estimated GPU-hours: {2 * per_run:.4g} in all, {per_run:.4g} not complete yet" in text
    status = bench("status", "--plan", plan_file, "--results", tmp_path / "r")
    assert status.exit_code == 0, status.output
    assert "1 complete, 0 running, 1 pending, 0 failed" in " ".join(status.output.split())


def test_status_reads_progress_failures_locks_and_manifests(tmp_path):
    """Every state from the store: a run training (its lock held) with epoch k of n, val MSE, s/epoch and
    time left from history.csv; an interrupted one (pending); a failure with its reason; a run only a
    manifest names (pending, with its job)."""
    from bench.cluster.manifest import write_manifest
    from bench.run.failure import record_failure
    from bench.spec.registry import get_dataset, parse_method_key
    from bench.spec.run_spec import SpecOptions, resolve_run_spec

    root = tmp_path / "r"
    specs = [resolve_run_spec(parse_method_key("simvp"), get_dataset("mmnist"), seed, SpecOptions(tiny=True, epochs=10))
             for seed in range(4)]
    finals = [store.run_dir(root, s) for s in specs]
    for spec, final in zip(specs[:2], finals):
        work = store.partial_dir(final)
        work.mkdir(parents=True)
        store.atomic_write_json(work / store.SPEC_FILE, spec.to_json())
        store.write_history_csv(work / store.HISTORY_FILE, [
            {"epoch": e, "train_loss": 0.1, "seconds": 20.0, "eval_seconds": 10.0, "val_mse": 50.0 - e}
            for e in (1, 2, 3)])
    record_failure(specs[2], store.partial_dir(finals[2]), "cpu", BenchError("training loss became nan at step 3"))
    write_manifest(root / "_jobs" / "manifests" / "m.json", {
        "created": "2026-01-01T00:00:00+00:00", "executor": "slurm",
        "elements": [{"index": 0, "job_id": "77_0", "run_dir": str(finals[3].resolve()), "spec_hash": specs[3].hash,
                      "label": "simvp", "dataset": "mmnist", "seed": 3, "epochs": 10},
                     {"index": 1, "job_id": "77_1", "run_dir": str(tmp_path / "elsewhere" / "seed0"),  # not in root
                      "spec_hash": specs[3].hash, "label": "simvp", "dataset": "mmnist", "seed": 0, "epochs": 10}]})
    from bench.cluster.manifest import jobs_by_run, read_manifests
    from bench.cluster.status import manifest_runs, merge_runs, status_rows, store_runs
    from bench.plan.state import describe_progress

    lock = store.RunLock(store.lock_path(finals[0]))
    assert lock.acquire()
    try:
        elements = jobs_by_run(read_manifests(root / "_jobs")[0])
        rows = status_rows(merge_runs(store_runs(root), manifest_runs(elements, root)), elements)
        res = bench("status", "--results", root)
    finally:
        lock.release()
    by_seed = {r.run.seed: r for r in rows}
    assert sorted(by_seed) == [0, 1, 2, 3]
    assert by_seed[0].state.state == "running"
    assert describe_progress(by_seed[0].state.progress) == "epoch 3/10, val MSE 47, 30 s/epoch, 4 min left"
    assert (by_seed[1].state.state, by_seed[1].state.detail) == ("missing", "interrupted: resumes after epoch 3")
    assert by_seed[2].state.state == "failed" and by_seed[2].state.detail == "training loss became nan at step 3"
    assert (by_seed[3].state.state, by_seed[3].job_id, by_seed[3].job_state) == ("missing", "77_0", "unknown")
    assert res.exit_code == 0, res.output
    assert "0 complete, 1 running, 2 pending, 1 failed" in " ".join(res.output.split())


def test_lock_probe_never_creates_a_lock_and_sees_a_holder(tmp_path):
    path = tmp_path / "seed0.lock"
    assert not store.lock_is_held(path) and not path.exists()
    lock = store.RunLock(path)
    assert lock.acquire()
    assert store.lock_is_held(path)
    lock.release()
    assert not store.lock_is_held(path)


def test_a_run_starting_during_a_probe_does_not_skip(tmp_path):
    """RunLock.acquire waits out a probe's momentary shared lock instead of reporting the run as taken."""
    import fcntl
    import os
    import threading

    path = tmp_path / "seed0.lock"
    path.touch()
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # a probe (bench status) holding it for a moment
    threading.Timer(0.06, lambda: (fcntl.flock(fd, fcntl.LOCK_UN), os.close(fd))).start()
    lock = store.RunLock(path)
    assert lock.acquire()
    lock.release()


def test_parse_sacct_expands_pending_array_ranges():
    from bench.cluster.status import parse_sacct

    states = parse_sacct("4242_0|RUNNING\n4242_[1-3,5%2]|PENDING\n4243|CANCELLED by 1000\n")
    assert states == {"4242_0": "RUNNING", "4242_1": "PENDING", "4242_2": "PENDING", "4242_3": "PENDING",
                      "4242_5": "PENDING", "4243": "CANCELLED"}


def test_without_the_slurm_extra_submit_says_how_to_install_it_and_status_works(tmp_path, monkeypatch):
    """submitit missing (as without `pip install -e '.[slurm]'`): `bench submit` is one line naming the extra, before
    anything is resolved or written; `bench status` and `bench plan` need no submitit."""
    import sys

    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` raises ImportError
    res = bench("submit", "--methods", "simvp", "--tiny", "--time-limit", "60", "--dry-run", "--results", tmp_path / "r")
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert "bench submit needs submitit: install the slurm extra with pip install -e '.[slurm]'" in res.output
    assert not (tmp_path / "r").exists()
    assert bench("status", "--results", tmp_path / "r").exit_code == 0
    assert bench("plan").exit_code == 0
