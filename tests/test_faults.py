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

from bench import results as store

RUN = [sys.executable, "-m", "bench", "run", "--methods", "simvp", "--datasets", "mmnist", "--tiny", "--quiet",
       "--epochs", "4", "--batch-size", "4", "--sizes", "train=24,val=4,test=4"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def result(root: Path, label: str = "simvp") -> dict:
    return json.loads((root / "mmnist" / label / "seed0" / "result.json").read_text())


def comparable(r: dict) -> tuple:
    history = [{k: v for k, v in h.items() if "seconds" not in k} for h in r["history"]]
    return history, r["test"], r["best_epoch"]


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    straight = subprocess.run([*RUN, "--results", str(tmp_path / "straight")], env=ENV, capture_output=True,
                              text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    run_dir = tmp_path / "killed" / "mmnist" / "simvp" / "seed0"
    rng = random.Random(7)
    proc = subprocess.Popen([*RUN, "--results", str(tmp_path / "killed")], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (run_dir / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.3))  # a random point inside a later epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "result.json").exists(), "the run finished before it could be killed"
    history_rows = (run_dir / "history.csv").read_text().strip().splitlines()
    assert 2 <= len(history_rows) <= 4  # header + 1..3 finished epochs: whole lines only
    resumed = subprocess.run([*RUN, "--results", str(tmp_path / "killed")], env=ENV, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert comparable(result(tmp_path / "killed")) == comparable(result(tmp_path / "straight"))
    assert not (run_dir / "last.pt").exists()


WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from bench import results as store
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
    runs, problems = store.load_results(tmp_path)
    assert runs == [] and problems == []


def test_run_lock_is_exclusive(tmp_path):
    a, b = store.RunLock(tmp_path), store.RunLock(tmp_path)
    assert a.acquire()
    assert not b.acquire()
    a.release()
    assert b.acquire()
    b.release()


def test_two_concurrent_writers_lose_nothing(tmp_path):
    base = [sys.executable, "-m", "bench", "run", "--datasets", "mmnist", "--tiny", "--quiet", "--epochs", "2",
            "--batch-size", "4", "--sizes", "train=8,val=4,test=4", "--results", str(tmp_path)]
    procs = [subprocess.Popen([*base, "--methods", order], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for order in ("simvp,tau", "tau,simvp")]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    runs, problems = store.load_results(tmp_path)
    assert problems == []
    assert sorted(r["key"]["label"] for r in runs) == ["simvp", "tau"]
    assert all(r["status"] == "complete" and len(r["history"]) == 2 for r in runs)
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("content", [b"", b"garbage, not a checkpoint", b"PK\x03\x04truncated zip"])
def test_corrupt_checkpoint_is_a_one_line_failure(tmp_path, content):
    run_dir = tmp_path / "mmnist" / "simvp" / "seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "last.pt").write_bytes(content)
    res = subprocess.run([*RUN, "--epochs", "1", "--results", str(tmp_path)], env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 1
    failed = result(tmp_path)
    assert failed["status"] == "failed" and "corrupt or not a bench checkpoint" in failed["error"]
    assert "delete it" in failed["error"] and "\n" not in failed["error"]
