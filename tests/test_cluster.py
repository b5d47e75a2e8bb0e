"""`bench submit` with submitit (the slurm extra): the batch script and the manifest against fake Slurm tools,
--force at submission, and real local jobs through a time-out -> requeue -> resume cycle (one process and two
gloo ranks) and past the requeue bound.

The local jobs run the `sleepy` plug-in (tests/cluster_helpers.py), whose training steps sleep, so that a job's
time limit falls inside its training whatever the machine's speed. Where a test needs the signal at a
chosen epoch it sends SIGUSR2 to the job's tasks itself, exactly as submitit's local controller does at
the time limit (with a time limit under 10 minutes, submitit counts every such signal as a time-out).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench import store
from bench.cli.app import app
from bench.errors import BenchError
from cluster_helpers import (SLEEPY, bench, bench_env, epochs_done, fake_slurm, signal_tasks, sleepy_site, start_bench,
                             task_pids, wait_for)
from run_helpers import comparable, complete_result, failed_result, only, run_dirs, spec_of

submitit = pytest.importorskip("submitit")

runner = CliRunner()
TINY = ["--datasets", "mmnist", "--tiny", "--epochs", "1", "--batch-size", "4", "--sizes", "train=8,val=4,test=4"]
SLURM = ["--time-limit", "90", "--gpus-per-run", "2", "--account", "proj42", "--partition", "gpu", "--max-parallel", "1",
         "--setup", "module load cuda/12.4", "--setup", "source /shared/venv/bin/activate"]


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def manifests(jobs: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((jobs / "manifests").glob("*.json"))]


def submitted_job(jobs: Path, job_id: str):
    from submitit.core.utils import DelayedSubmission

    return DelayedSubmission.load(jobs / "logs" / job_id / f"{job_id}_submitted.pkl").function


def job_logs(jobs: Path, job_id: str, task: int = 0) -> str:
    folder = jobs / "logs" / job_id
    return "".join((folder / f"{job_id}_{task}_log.{kind}").read_text() for kind in ("out", "err"))


@pytest.fixture()
def slurm_path(tmp_path, monkeypatch):
    bin_dir = fake_slurm(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "submitted"


def test_submit_drops_complete_runs_and_writes_the_batch_script(tmp_path, slurm_path):
    """Seed 0 is complete (not submitted), seed 2 failed earlier (submitted again: its job resumes it), seed 1 is
    new; the batch script of the array, the manifest, and `bench status` with the fake sacct."""
    from bench.run.failure import record_failure

    root = tmp_path / "r"
    ran = cli("run", "--methods", "simvp", *TINY, "--seeds", "0", "--results", root, "--quiet")
    assert ran.exit_code == 0, ran.output
    failed = spec_of("simvp", seed=2, tiny=True, epochs=1, batch_size=4, sizes={"train": 8, "val": 4, "test": 4})
    record_failure(failed, store.partial_dir(store.run_dir(root, failed)), "cpu", BenchError("timed out 11 time(s)"))
    args = ["submit", "--methods", "simvp", *TINY, "--seeds", "0,1,2", "--results", root, *SLURM]
    dry = cli(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "1 run(s) complete (not submitted" in dry.output and not list(slurm_path.iterdir())
    sub = cli(*args)
    assert sub.exit_code == 0, sub.output
    (script_file,) = slurm_path.iterdir()  # one sbatch for the whole array
    script = script_file.read_text()
    lines = script.splitlines()
    for flag in ("--array=0-1%1", "--gpus-per-node=2", "--ntasks-per-node=2", "--nodes=1", "--time=90",
                 "--signal=USR2@120", "--account=proj42", "--partition=gpu"):
        assert f"#SBATCH {flag}" in lines, flag
    setup = [lines.index("module load cuda/12.4"), lines.index("source /shared/venv/bin/activate")]
    assert setup == sorted(setup) and setup[-1] < next(i for i, line in enumerate(lines) if line.startswith("srun "))
    assert dry.output[dry.output.index("#!/bin/bash"):].strip() == script.strip()  # --dry-run shows what is submitted
    (manifest,) = manifests(root / "_jobs")
    elements = manifest["elements"]
    assert [(e["seed"], e["job_id"]) for e in elements] == [(1, "4242_0"), (2, "4242_1")]  # seed 0 was complete
    for item in elements:
        job = submitted_job(root / "_jobs", item["job_id"])
        assert (job.seed, job.spec_hash, job.run_options().force) == (item["seed"], item["spec_hash"], False)
        assert item["run_dir"] == str(store.run_dir(root.resolve(), job.resolve()[0]))  # the job resolves the same spec
    changed = dataclasses.replace(job, options=dataclasses.replace(job.options, epochs=2))  # as if the code had changed
    with pytest.raises(BenchError, match=f"was {job.spec_hash} at submission"):
        changed.resolve()
    status = cli("status", "--results", root)
    assert status.exit_code == 0, status.output
    rows = [" ".join(line.replace("│", " ").split()) for line in status.output.splitlines() if "4242_" in line]
    assert any("4242_0 RUNNING" in r for r in rows) and any("4242_1 PENDING" in r for r in rows)  # the fake sacct
    assert "1 complete, 0 running, 1 pending, 1 failed" in " ".join(status.output.split())


def test_force_is_carried_out_at_submission_and_undone_if_sbatch_refuses(tmp_path, slurm_path, monkeypatch):
    root = tmp_path / "r"
    assert cli("run", "--methods", "simvp", *TINY, "--results", root, "--quiet").exit_code == 0
    final = only(run_dirs(root))
    before = (final / store.RESULT_FILE).read_text()
    monkeypatch.setenv("FAKE_SBATCH_FAIL", "1")
    refused = cli("submit", "--methods", "simvp", *TINY, "--results", root, *SLURM, "--force")
    assert refused.exit_code == 1 and "Invalid account" in refused.output and "back in place" in refused.output
    assert (final / store.RESULT_FILE).read_text() == before and not manifests(root / "_jobs")
    monkeypatch.delenv("FAKE_SBATCH_FAIL")
    sub = cli("submit", "--methods", "simvp", *TINY, "--results", root, *SLURM, "--force")
    assert sub.exit_code == 0, sub.output
    (manifest,) = manifests(root / "_jobs")
    ((item,), (moved,)) = manifest["elements"], manifest["replaced"]
    (script,) = slurm_path.iterdir()
    assert item["job_id"] == "4242" and "#SBATCH --array" not in script.read_text()  # one run: a plain job
    assert not final.exists() and moved["run_dir"] == str(final)  # the job starts the run afresh
    assert (Path(moved["moved_to"]) / store.RESULT_FILE).read_text() == before  # never deleted
    assert submitted_job(root / "_jobs", "4242").run_options().force is False


def test_local_executor_pins_each_run_to_its_own_gpus(tmp_path, monkeypatch):
    """--executor local on a 4-GPU machine: one slot per --gpus-per-run GPUs (at most --max-parallel), and the job
    of a slot sees only its GPUs (CUDA_VISIBLE_DEVICES, set by submitit's controller), one task per GPU."""
    import submitit.local.local as local
    import torch
    from submitit import LocalExecutor

    from bench.cluster.options import ClusterOptions, local_parameters, local_slots

    class Controller:  # what start_controller returns, enough for submit()
        pid, poll, send_signal = 4242, (lambda self: 0), (lambda self, signum: None)

    started = []
    monkeypatch.setattr(local, "start_controller", lambda **kw: started.append(kw) or Controller())
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert local_slots(ClusterOptions(executor="local")) == [(0,), (1,), (2,), (3,)]
    assert local_slots(ClusterOptions(executor="local", max_parallel=3)) == [(0,), (1,), (2,)]
    two = ClusterOptions(executor="local", gpus_per_run=2)
    assert local_slots(two) == [(0, 1), (2, 3)]
    for slot in local_slots(two):
        executor = LocalExecutor(folder=tmp_path / "%j")
        executor.update_parameters(**local_parameters(two, slot))
        executor.submit(print)
    assert [(kw["cuda_devices"], kw["tasks_per_node"]) for kw in started] == [("0,1", 2), ("2,3", 2)]
    with pytest.raises(BenchError, match="--gpus-per-run 8 but this machine has 4 GPU"):
        local_slots(ClusterOptions(executor="local", gpus_per_run=8))


def started_element(jobs: Path, label: str = "sleepy") -> dict | None:
    """The manifest element of ``label`` once its local job has started (None before)."""
    items = [e for m in manifests(jobs) for e in m["elements"]] if (jobs / "manifests").is_dir() else []
    return next((e for e in items if e["label"] == label and e["job_id"]), None)


@pytest.mark.slow
def test_local_time_limit_requeues_and_resumes_to_the_uninterrupted_history(tmp_path):
    """A real cycle: the local controller's time limit sends SIGUSR2, the run stops at a step, submitit requeues
    the job and it resumes from last.pt, until done, with the history of an uninterrupted run (run alongside).
    The run needs 26 x 2 steps of 0.25 s, more than the 12 s a job segment trains (--time-limit 18 s, the
    signal 6 s before: the stop, the requeue and the exit fit in 6 s on a loaded machine, 3 s did not), so it is
    stopped at least once whatever the machine, and it never ends if a requeued job starts it afresh (no
    resume, or --force inside the job) or is not requeued."""
    site = sleepy_site(tmp_path)
    root, epochs = tmp_path / "r", ["--epochs", 26]
    straight = start_bench(["run", *SLEEPY, *epochs, "--results", tmp_path / "straight", "--quiet"], bench_env(site),
                           tmp_path)
    sub = bench(["submit", "--executor", "local", *SLEEPY, *epochs, "--results", root, "--time-limit", "0.3",
                 "--signal-delay", "6", "--max-requeues", "5"], bench_env(site, sleep=0.25), tmp_path)
    assert sub.returncode == 0, sub.stdout + sub.stderr
    (manifest,) = manifests(root / "_jobs")
    (item,) = manifest["elements"]
    logs = job_logs(root / "_jobs", item["job_id"])
    assert logs.count("Starting with JobEnvironment") >= 2 and "Requeued job" in logs, logs
    assert re.search(r"stopped by SIGUSR2: sleepy on noise seed 0 after epoch \d+", logs)
    assert re.search(r"resuming after epoch [1-9]", logs)
    assert straight.wait(timeout=300) == 0, straight.stderr.read()
    reference = complete_result(tmp_path / "straight", "sleepy", "noise")
    result = complete_result(root, "sleepy", "noise")
    assert comparable(result) == comparable(reference) and result.timing != reference.timing


@pytest.mark.slow
def test_past_the_requeue_bound_the_run_is_failed_and_resumes_later(tmp_path):
    """A time-out past --max-requeues: the run is recorded failed, naming the option to raise, and a later run
    resumes it. In the same submission a run that fails on its own (NaN) is recorded and not retried."""
    site = sleepy_site(tmp_path)
    root, epochs = tmp_path / "r", ["--epochs", 6]
    reference = start_bench(["run", *SLEEPY, *epochs, "--results", tmp_path / "straight", "--quiet"], bench_env(site),
                            tmp_path)
    proc = start_bench(["submit", "--executor", "local", "--methods", "sleepy,sleepy:poison=1", *SLEEPY[2:], *epochs,
                        "--results", root, "--time-limit", "5", "--signal-delay", "60", "--max-requeues", "0",
                        "--max-parallel", "2"], bench_env(site, sleep=0.5), tmp_path)
    item = wait_for(lambda: started_element(root / "_jobs"), 120, proc)
    work = store.partial_dir(Path(item["run_dir"]))
    wait_for(lambda: epochs_done(work) >= 1, 120, proc)
    assert signal_tasks(int(item["job_id"]))  # the time-limit signal
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, out + err
    assert "failed sleepy on noise seed 0: timed out 1 time(s) (--time-limit 5 min, requeued 0 time(s), the bound): " \
           "raise --max-requeues or --time-limit" in out, out  # the job's reason, not a log path
    record = failed_result(root, "sleepy", "noise")
    done = epochs_done(work)
    assert "--max-requeues" in record.error and "requeued 0 time(s)" in record.error and "\n" not in record.error
    assert record.last_good_epoch == done >= 1
    poisoned = failed_result(root, "sleepy:poison=1", "noise")
    assert "nan" in poisoned.error.lower(), poisoned.error
    poisoned_job = started_element(root / "_jobs", "sleepy:poison=1")["job_id"]
    assert job_logs(root / "_jobs", poisoned_job).count("Starting with JobEnvironment") == 1  # not retried
    status = cli("status", "--results", root)
    assert "0 complete, 0 running, 0 pending, 2 failed" in " ".join(status.output.split())
    resumed = bench(["run", *SLEEPY, *epochs, "--results", root], bench_env(site), tmp_path)
    assert reference.wait(timeout=300) == 0 and resumed.returncode == 0, reference.stderr.read() + resumed.stderr
    assert f"resuming after epoch {done}" in resumed.stdout
    assert comparable(complete_result(root, "sleepy", "noise")) == \
        comparable(complete_result(tmp_path / "straight", "sleepy", "noise"))


@pytest.mark.slow
def test_a_two_rank_gloo_job_survives_a_requeue(tmp_path):
    """Two gloo ranks in one local job, told to stop (rank 1 only), requeued and resumed: the same result as an
    uninterrupted two-rank job (run alongside)."""
    site = sleepy_site(tmp_path)
    ddp = [*SLEEPY, "--epochs", 4, "--tasks-per-run", 2, "--gpus-per-run", 0, "--executor", "local"]
    straight = start_bench(["submit", *ddp, "--results", tmp_path / "straight"], bench_env(site), tmp_path)
    root = tmp_path / "r"
    proc = start_bench(["submit", *ddp, "--results", root, "--time-limit", "5", "--signal-delay", "60"],
                       bench_env(site, sleep=0.5), tmp_path)
    item = wait_for(lambda: started_element(root / "_jobs"), 120, proc)
    work = store.partial_dir(Path(item["run_dir"]))
    wait_for(lambda: epochs_done(work) >= 1, 180, proc)
    # only rank 1 is told (a signal need not reach every rank at once): the ranks agree to stop at one step, and
    # rank 0, which alone requeues, does so
    wait_for(lambda: len(task_pids(int(item["job_id"]))) == 2, 60, proc)
    assert len(signal_tasks(int(item["job_id"]), ranks=(1,))) == 1
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert straight.wait(timeout=300) == 0, straight.stdout.read() + straight.stderr.read()
    result = complete_result(root, "sleepy", "noise")
    assert result.settings.world_size == 2
    assert comparable(result) == comparable(complete_result(tmp_path / "straight", "sleepy", "noise"))
    for task in (0, 1):
        logs = job_logs(root / "_jobs", item["job_id"], task)
        assert logs.count("Starting with JobEnvironment") == 2, logs
    assert re.search(r"resuming after epoch [1-9]", job_logs(root / "_jobs", item["job_id"], 0))
