"""DDP equivalence on CPU: torchrun with 2 gloo processes == 1 process, same data and seed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from run_helpers import BENCH_UNMEASURED, complete_result

ARGS = ["run", "--methods", "simvp", "--datasets", "mmnist", "--tiny", "--quick", "--quiet", "--epochs", "2",
        "--batch-size", "4", "--sizes", "train=8,val=6,test=6"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(cmd, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path):
    launch([*BENCH_UNMEASURED, *ARGS, "--results", str(tmp_path / "one")], tmp_path)
    launch([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
            BENCH_UNMEASURED[1], *ARGS, "--results", str(tmp_path / "two")], tmp_path)
    one = complete_result(tmp_path / "one")
    two = complete_result(tmp_path / "two")
    assert two.settings.world_size == 2 and one.settings.world_size == 1
    assert two.spec.hash == one.spec.hash  # the process count does not change what the numbers mean
    assert two.dataset.sizes == one.dataset.sizes == {"train": 8, "val": 6, "test": 6}
    for name, value in one.test.items():
        assert two.test[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    for h1, h2 in zip(one.history, two.history, strict=True):
        assert h2.train_loss == pytest.approx(h1.train_loss, rel=1e-4)
        assert h2.val["mse"] == pytest.approx(h1.val["mse"], rel=1e-4)
        assert h2.train_samples == h1.train_samples == 8
    # one committed result and no work directory left: only rank 0 wrote
    (config,) = (tmp_path / "two/mmnist/simvp").iterdir()
    assert sorted(p.name for p in config.iterdir() if not p.name.endswith(".lock")) == ["seed0"]
    assert not list((tmp_path / "two").rglob("*.tmp"))
