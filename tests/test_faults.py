"""Fault injection: SIGKILL mid-epoch and mid-write, concurrent writers, corrupt checkpoints."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench import store
from bench.store.record import load_results
from run_helpers import BENCH_UNMEASURED, comparable, complete_result, failed_result, only, work_dirs

ARGS = ["run", "--methods", "simvp", "--datasets", "mmnist", "--tiny", "--quiet", "--epochs", "4", "--batch-size", "4",
        "--sizes", "train=24,val=4,test=4"]
RUN = [*BENCH_UNMEASURED, *ARGS]  # a process of its own: what SIGKILL and concurrency need
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(bench, tmp_path):
    straight = bench(*ARGS, "--results", tmp_path / "straight")  # in this process: nothing kills it
    assert straight.exit_code == 0, straight.output
    rng = random.Random(7)
    proc = subprocess.Popen([*RUN, "--results", str(tmp_path / "killed")], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not list((tmp_path / "killed").rglob("last.pt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.3))  # a random point inside a later epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    run_dir = only(work_dirs(tmp_path / "killed"))
    assert not list((tmp_path / "killed").rglob("result.json")), "the run finished before it could be killed"
    history_rows = (run_dir / "history.csv").read_text().strip().splitlines()
    assert 2 <= len(history_rows) <= 4  # header + 1..3 finished epochs: whole lines only
    resumed = bench(*ARGS, "--results", tmp_path / "killed")
    assert resumed.exit_code == 0, resumed.output
    assert comparable(complete_result(tmp_path / "killed")) == comparable(complete_result(tmp_path / "straight"))
    assert not run_dir.exists() and not list((tmp_path / "killed").rglob("last.pt"))


WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from bench import store
    real_replace = os.replace
    def slow_replace(src, dst):
        print("written", flush=True)
        time.sleep(60)
        real_replace(src, dst)
    os.replace = slow_replace
    store.atomic_write_json(Path(sys.argv[1]), {"new": "x" * 1_000_000})
""")


def test_sigkill_mid_write_never_leaves_a_half_written_file(tmp_path):
    target = tmp_path / "result.json"
    store.atomic_write_json(target, {"old": 1})
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout.readline().strip() == "written"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(target.read_text()) == {"old": 1}
    # the temporary file is never mistaken for a result
    runs, problems = load_results(tmp_path)
    assert runs == [] and problems == []


def test_run_lock_is_exclusive(tmp_path):
    a, b = store.RunLock(tmp_path / "seed0.lock"), store.RunLock(tmp_path / "seed0.lock")
    assert a.acquire()
    assert not b.acquire()
    a.release()
    assert b.acquire()
    b.release()


@pytest.mark.slow
def test_two_concurrent_writers_lose_nothing(tmp_path):
    base = [*BENCH_UNMEASURED, "run", "--datasets", "mmnist", "--tiny", "--quiet", "--epochs", "2",
            "--batch-size", "4", "--sizes", "train=8,val=4,test=4", "--results", str(tmp_path)]
    procs = [subprocess.Popen([*base, "--methods", order], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for order in ("simvp,tau", "tau,simvp")]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    runs, problems = load_results(tmp_path)
    assert problems == []
    assert sorted(r.label for r in runs) == ["simvp", "tau"]
    assert all(r.complete and len(r.history) == 2 for r in runs)
    assert not list(tmp_path.rglob("*.tmp"))


def _work_dir_of(args: list[str], root: Path) -> Path:
    """The work directory the run of ``args`` would use (its spec resolved the way the CLI does)."""
    from bench.cli.common import resolve_runs, resolve_targets
    from bench.spec.run_spec import SpecOptions

    keys, datasets = resolve_targets("simvp", "mmnist", {})
    epochs = int(args[len(args) - 1 - args[::-1].index("--epochs") + 1])  # the last --epochs wins
    options = SpecOptions(epochs=epochs, batch_size=4, tiny=True, sizes={"train": 24, "val": 4, "test": 4})
    ((spec, _),) = resolve_runs(keys, datasets, [0], options)
    return store.partial_dir(store.run_dir(root, spec))


@pytest.mark.parametrize("content, message", [
    (b"", "corrupt or not a bench checkpoint"),
    (b"garbage, not a checkpoint", "corrupt or not a bench checkpoint"),
    (b"PK\x03\x04truncated zip", "corrupt or not a bench checkpoint"),
    ("fields", "lacks"),  # a real torch file that loads but is not a whole training state
])
def test_corrupt_checkpoint_is_a_one_line_failure(bench, tmp_path, content, message):
    import torch

    work = _work_dir_of([*ARGS, "--epochs", "1"], tmp_path)
    work.mkdir(parents=True)
    if content == "fields":
        torch.save({"epoch": "three", "model": {}}, work / "last.pt")
    else:
        (work / "last.pt").write_bytes(content)
    res = bench(*ARGS, "--epochs", "1", "--results", tmp_path)
    assert res.exit_code == 1, res.output
    failed = failed_result(tmp_path)
    assert failed.status == "failed" and message in failed.error
    assert "delete it" in failed.error and "\n" not in failed.error
    assert failed.last_good_epoch == 0
