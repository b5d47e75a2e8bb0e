"""What the cluster tests share: a throwaway plug-in with a slow step, the ``bench`` command with it, the
task processes of a local job, and fake Slurm executables.

The plug-in registers method ``sleepy`` (a two-layer convolution over the stacked frames; every
training forward sleeps ``$BENCH_TEST_STEP_SLEEP`` seconds, 0 when unset) and dataset ``noise`` (random
8x8 frames, 2 -> 2, 4 training sequences, fixed by the data seed). With the sleep, an epoch lasts a
known minimum whatever the machine, so a job's time limit falls inside training; without it the same
run takes a fraction of a second (the reference runs).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from plugin_helpers import make_plugin
from run_helpers import BENCH_UNMEASURED

PLUGIN = '''
    """Test plug-in: a method whose training step sleeps, and a dataset of random frames."""
    import os
    import time

    import numpy as np
    import torch
    from torch import nn

    from bench.spec.registry import register_dataset, register_method
    from bench.spec.splits import ArraySplits


    class Sleepy(nn.Module):
        def __init__(self, t_in, t_out, channels, width, poison):
            super().__init__()
            self.t_out, self.poison = t_out, poison
            self.net = nn.Sequential(nn.Conv2d(t_in * channels, width, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(width, t_out * channels, 3, padding=1))

        def forward(self, x):
            if self.training:
                time.sleep(float(os.environ.get("BENCH_TEST_STEP_SLEEP", "0")))
            b, t, c, h, w = x.shape
            y = torch.sigmoid(self.net(x.reshape(b, t * c, h, w))).reshape(b, self.t_out, c, h, w)
            return y * float("nan") if self.poison else y


    @register_method("sleepy", citation="A test plug-in", hparams={"*": {"width": 4, "poison": 0, "epochs": 4,
                                                                                  "batch_size": 2}})
    def build_sleepy(data, width, poison):
        return Sleepy(data.in_frames, data.out_frames, data.channels, width, poison)


    @register_dataset("noise", in_frames=2, out_frames=2, channels=1, height=8, width=8,
                      sizes={"train": 4, "val": 2, "test": 2}, description="random frames (a test plug-in)")
    def load_noise(spec, config):
        sizes = {**dict(spec.sizes), **dict(config.sizes)}
        rng = np.random.default_rng(config.data_seed)
        arrays = {split: (rng.random((n, 2, 1, 8, 8), dtype=np.float32), rng.random((n, 2, 1, 8, 8), dtype=np.float32))
                  for split, n in sizes.items()}
        return ArraySplits(arrays, seed=config.seed, rank=config.rank, world_size=config.world_size)
'''

SLEEPY = ["--methods", "sleepy", "--datasets", "noise", "--device", "cpu"]


def sleepy_site(tmp_path: Path) -> Path:
    return make_plugin(tmp_path, "sleepy", PLUGIN)


def bench_env(site: Path, sleep: float = 0.0, path_dir: Path | None = None) -> dict[str, str]:
    """The environment of a ``bench`` subprocess with the plug-in installed (and fake Slurm tools first on PATH)."""
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "BENCH_TEST_STEP_SLEEP": str(sleep)}
    if path_dir is not None:
        env["PATH"] = f"{path_dir}{os.pathsep}{env['PATH']}"
    return env


def bench(args: list, env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*BENCH_UNMEASURED, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def start_bench(args: list, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([*BENCH_UNMEASURED, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=cwd)


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None, poll: float = 0.05):
    """Poll ``predicate()`` until it returns something truthy (its value), the process ends, or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended first: {proc.returncode}\n{proc.stdout.read()}\n{proc.stderr.read()}")
        time.sleep(poll)
    raise AssertionError("timed out waiting")


def epochs_done(work: Path) -> int:
    """Epochs recorded in ``work/history.csv`` (0 without one)."""
    path = work / "history.csv"
    try:
        return max(0, len(path.read_text().strip().splitlines()) - 1)
    except OSError:
        return 0


def task_pids(controller_pid: int) -> dict[int, int]:
    """Rank -> pid of the tasks of a local submitit job (the rank read from each task's environment)."""
    ranks = {}
    for pid in children(controller_pid):
        try:
            env = dict(item.split("=", 1) for item in (Path("/proc") / str(pid) / "environ").read_text().split("\0")
                       if "=" in item)
        except OSError:
            continue
        if "SUBMITIT_LOCAL_GLOBALID" in env:
            ranks[int(env["SUBMITIT_LOCAL_GLOBALID"])] = pid
    return ranks


def signal_tasks(controller_pid: int, signum: int = signal.SIGUSR2, ranks: tuple[int, ...] | None = None) -> list[int]:
    """Send ``signum`` to the tasks (of ``ranks``; all by default) of a local submitit job, as its controller does
    at the time limit."""
    tasks = task_pids(controller_pid)
    chosen = [pid for rank, pid in sorted(tasks.items()) if ranks is None or rank in ranks]
    for pid in chosen:
        os.kill(pid, signum)
    return chosen


FAKE_SBATCH = """#!/bin/sh
# fake sbatch: keep the batch script, answer as Slurm does (or refuse, with $FAKE_SBATCH_FAIL)
if [ -n "$FAKE_SBATCH_FAIL" ]; then echo "sbatch: error: Batch job submission failed: Invalid account" >&2; exit 1; fi
n=$(ls "{log}" 2>/dev/null | wc -l)
cp "$1" "{log}/sbatch_$n.sh"
echo "Submitted batch job 4242"
"""
FAKE_SACCT = """#!/bin/sh
# fake sacct: element 0 runs, the rest of array 4242 is pending
printf '4242_0|RUNNING\\n4242_[1-9%%2]|PENDING\\n'
"""


def fake_slurm(folder: Path) -> Path:
    """A directory of fake ``srun``, ``sbatch`` (copies each script into ``folder/submitted``) and ``sacct``."""
    bin_dir, log = folder / "bin", folder / "submitted"
    bin_dir.mkdir(parents=True)
    log.mkdir()
    for name, text in (("srun", "#!/bin/sh\nexit 0\n"), ("sbatch", FAKE_SBATCH.format(log=log)),
                       ("sacct", FAKE_SACCT)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(0o755)
    return bin_dir
