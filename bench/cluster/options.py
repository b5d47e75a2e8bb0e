"""How ``bench submit`` asks for resources: :class:`ClusterOptions`, checked in one line each, and the
Slurm / local executor parameters they become (submitit's names: ``submitit.slurm.slurm._make_sbatch_string``
and ``submitit.local.local.LocalExecutor``).

One run = one job (one element of a job array on Slurm) on ONE node: ``--gpus-per-run G`` asks for G
GPUs and G tasks (one process per GPU, bench's DDP path); the job runs for at most ``--time-limit``
minutes, gets the pre-timeout signal (SIGUSR2) ``--signal-delay`` seconds before that, stops at the
next step and is requeued, at most ``--max-requeues`` times for time-outs (preemptions are not
counted: submitit's ``max_num_timeout``).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError

EXECUTORS = ("slurm", "local")
DEFAULT_MAX_REQUEUES = {"slurm": 10, "local": 5}
LOCAL_MAX_REQUEUES = 5  # submitit's local controller starts a job at most 6 times (Controller.run max_retry)
LOCAL_NO_LIMIT_MIN = 365 * 24 * 60.0  # the local executor always has a limit: a year stands for none
DEFAULT_SIGNAL_DELAY_S = 120  # as DINOv2 and ConvNeXt submit (submitit's default is 90)
#: sbatch options bench writes itself (from its own flags): giving them with --sbatch would contradict them
OWN_SBATCH = {"array": "one element per run", "time": "--time-limit", "signal": "--signal-delay",
              "gpus-per-node": "--gpus-per-run", "ntasks-per-node": "--gpus-per-run", "nodes": "one node per run",
              "output": "the jobs folder", "error": "the jobs folder", "partition": "--partition",
              "account": "--account", "qos": "--qos", "constraint": "--constraint", "cpus-per-task": "--cpus-per-task",
              "mem": "--mem-gb", "job-name": "--job-name"}


@dataclass
class ClusterOptions:
    """Where and how the jobs run (nothing here changes a run's numbers)."""

    executor: str = "slurm"
    jobs: Path = Path("results/_jobs")
    time_limit_min: float | None = None
    gpus_per_run: int | None = None  # None: 1 on Slurm; locally 1 where CUDA is, else 0
    tasks_per_run: int | None = None  # None: one per GPU (1 without GPUs)
    cpus_per_task: int | None = None
    mem_gb: int | None = None
    max_parallel: int | None = None
    max_requeues: int | None = None
    signal_delay_s: int = DEFAULT_SIGNAL_DELAY_S
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    sbatch: dict[str, Any] = field(default_factory=dict)
    setup: list[str] = field(default_factory=list)
    job_name: str = "bench"

    @property
    def requeues(self) -> int:
        return DEFAULT_MAX_REQUEUES[self.executor] if self.max_requeues is None else self.max_requeues

    @property
    def gpus(self) -> int:
        if self.gpus_per_run is not None:
            return self.gpus_per_run
        if self.executor == "slurm":
            return 1
        import torch

        return 1 if torch.cuda.is_available() else 0

    @property
    def tasks(self) -> int:
        return self.tasks_per_run if self.tasks_per_run is not None else max(1, self.gpus)


def parse_sbatch(items: list[str] | None) -> dict[str, Any]:
    """``--sbatch key=value`` (or a bare ``key`` for a flag) -> {key: value}; bench's own options refused."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, eq, value = item.strip().lstrip("-").partition("=")
        key = key.strip()
        if not key or (eq and not value.strip()):
            raise BenchError(f"--sbatch {item!r}: write an sbatch option as key=value (e.g. --sbatch mail-type=END) "
                             f"or a bare flag (e.g. --sbatch exclusive)")
        if key.replace("_", "-") in OWN_SBATCH:
            raise BenchError(f"--sbatch {key}: bench sets it itself ({OWN_SBATCH[key.replace('_', '-')]}); use that "
                             f"instead")
        out[key.replace("-", "_")] = value.strip() if eq else True
    return out


def check_options(opts: ClusterOptions, dry_run: bool) -> None:
    """Every option, checked before anything is submitted (one line each)."""
    if opts.executor not in EXECUTORS:
        raise BenchError(f"--executor {opts.executor!r}: choose slurm or local")
    if opts.executor == "slurm" and not dry_run and shutil.which("srun") is None:
        raise BenchError("no Slurm here (`srun` is not on PATH): submit from the cluster's login node, add --dry-run "
                         "to see the batch script, or pass --executor local to run the jobs on this machine")
    limit = opts.time_limit_min
    if opts.executor == "slurm":
        if limit is None:
            raise BenchError("--time-limit MINUTES is needed on Slurm: the limit of one job (at most your partition's; "
                             "a longer run is requeued at the limit and resumes), e.g. --time-limit 1440")
        if limit != int(limit) or limit < 1:
            raise BenchError(f"--time-limit {limit:g}: Slurm takes whole minutes (at least 1)")
    if limit is not None and (not math.isfinite(limit) or limit <= 0):
        raise BenchError(f"--time-limit {limit:g}: give a positive number of minutes")
    if opts.signal_delay_s < 1 or (limit is not None and opts.signal_delay_s >= limit * 60):
        raise BenchError(f"--signal-delay {opts.signal_delay_s}: the pre-timeout signal must come at least 1 s "
                         f"and less than the time limit before it ends")
    for flag, value, low in (("--gpus-per-run", opts.gpus_per_run, 0), ("--tasks-per-run", opts.tasks_per_run, 1),
                             ("--cpus-per-task", opts.cpus_per_task, 1), ("--mem-gb", opts.mem_gb, 1),
                             ("--max-parallel", opts.max_parallel, 1), ("--max-requeues", opts.max_requeues, 0)):
        if value is not None and value < low:
            raise BenchError(f"{flag} must be at least {low} (got {value})")
    if opts.gpus and opts.tasks != opts.gpus:
        raise BenchError(f"--tasks-per-run {opts.tasks} with --gpus-per-run {opts.gpus}: a run uses one process per "
                         f"GPU; drop --tasks-per-run")
    if opts.executor == "local" and opts.requeues > LOCAL_MAX_REQUEUES:
        raise BenchError(f"--max-requeues {opts.requeues}: the local executor restarts a job at most "
                         f"{LOCAL_MAX_REQUEUES} times; give at most {LOCAL_MAX_REQUEUES} (or a longer --time-limit)")
    if opts.executor == "local" and (opts.sbatch or opts.partition or opts.account or opts.qos or opts.constraint):
        raise BenchError("--partition/--account/--qos/--constraint/--sbatch are Slurm options; drop them with "
                         "--executor local")


def slurm_parameters(opts: ClusterOptions) -> dict[str, Any]:
    """``SlurmExecutor.update_parameters`` keywords (submitit's sbatch names) for ``opts``."""
    params: dict[str, Any] = {"job_name": opts.job_name, "time": int(opts.time_limit_min), "nodes": 1,
                              "ntasks_per_node": opts.tasks, "signal_delay_s": opts.signal_delay_s}
    if opts.gpus:
        params["gpus_per_node"] = opts.gpus
    for name in ("partition", "account", "qos", "constraint"):
        if getattr(opts, name):
            params[name] = getattr(opts, name)
    if opts.cpus_per_task:
        params["cpus_per_task"] = opts.cpus_per_task
    if opts.mem_gb:
        params["mem"] = opts.mem_gb  # GB: submitit writes --mem=<n>GB
    if opts.max_parallel:
        params["array_parallelism"] = opts.max_parallel
    if opts.setup:
        params["setup"] = list(opts.setup)
    if opts.sbatch:
        params["additional_parameters"] = dict(opts.sbatch)
    return params


def local_parameters(opts: ClusterOptions, gpus: tuple[int, ...]) -> dict[str, Any]:
    """``LocalExecutor.update_parameters`` keywords for one job pinned to ``gpus``."""
    limit = opts.time_limit_min if opts.time_limit_min is not None else LOCAL_NO_LIMIT_MIN
    params: dict[str, Any] = {"timeout_min": limit, "signal_delay_s": opts.signal_delay_s,
                              "tasks_per_node": opts.tasks, "gpus_per_node": len(gpus)}
    if gpus:
        params["visible_gpus"] = gpus
    if opts.setup:
        params["setup"] = list(opts.setup)
    return params


def local_slots(opts: ClusterOptions) -> list[tuple[int, ...]]:
    """The GPUs of each job slot on this machine (one slot per ``--gpus-per-run`` GPUs; ``--max-parallel``
    slots of no GPU on a CPU machine)."""
    import torch

    if opts.gpus == 0:
        return [()] * (opts.max_parallel or 1)
    count = torch.cuda.device_count()
    if count < opts.gpus:
        raise BenchError(f"--gpus-per-run {opts.gpus} but this machine has {count} GPU(s); give at most {count}, or "
                         f"--gpus-per-run 0 for the CPU")
    slots = [tuple(range(i * opts.gpus, (i + 1) * opts.gpus)) for i in range(count // opts.gpus)]
    return slots[:opts.max_parallel] if opts.max_parallel else slots

