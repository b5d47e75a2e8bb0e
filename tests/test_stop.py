"""A scheduler's stop signals end `bench run` cleanly: SIGTERM and SIGUSR2 stop the run at a step boundary
with last.pt holding the last completed epoch, nothing half-written, and a second `bench run` resumes it
to the same history as an uninterrupted run. (No submitit needed.)"""

from __future__ import annotations

import signal

import pytest

from bench.run.checkpoint import checkpoint_epoch
from cluster_helpers import SLEEPY, bench, bench_env, epochs_done, sleepy_site, start_bench, wait_for
from run_helpers import comparable, complete_result, only, run_dirs, work_dirs

EPOCHS = ["--epochs", 6]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR2])
def test_a_stop_signal_ends_bench_run_at_a_step_and_it_resumes(tmp_path, signum):
    site = sleepy_site(tmp_path)
    root = tmp_path / "r"
    straight = (start_bench(["run", *SLEEPY, *EPOCHS, "--results", tmp_path / "straight", "--quiet"], bench_env(site),
                            tmp_path) if signum == signal.SIGTERM else None)  # the reference, alongside
    proc = start_bench(["run", *SLEEPY, *EPOCHS, "--results", root, "--quiet"], bench_env(site, sleep=0.3), tmp_path)
    work = wait_for(lambda: next(iter(work_dirs(root, "sleepy", "noise")), None), 120, proc)
    wait_for(lambda: epochs_done(work) >= 2, 120, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    done = epochs_done(work)
    assert proc.returncode == 128 + signum, err
    assert f"stopped by {signal.Signals(signum).name}: sleepy on noise seed 0 after epoch {done}" in " ".join(err.split())
    assert done < 6 and checkpoint_epoch(work / "last.pt") == done  # last.pt holds the last completed epoch
    assert not (work / "result.json").exists() and not run_dirs(root, "sleepy", "noise")
    assert not list(root.rglob("*.tmp"))
    if straight is None:
        return
    resumed = bench(["run", *SLEEPY, *EPOCHS, "--results", root], bench_env(site), tmp_path)
    assert straight.wait(timeout=120) == 0 and resumed.returncode == 0, straight.stderr.read() + resumed.stderr
    assert f"resuming after epoch {done}" in resumed.stdout
    assert comparable(complete_result(root, "sleepy", "noise")) == \
        comparable(complete_result(tmp_path / "straight", "sleepy", "noise"))
    assert only(run_dirs(root, "sleepy", "noise")) and not work.exists()
