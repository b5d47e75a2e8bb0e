"""Running the jobs: one Slurm job array (submitit's ``SlurmExecutor``), or local processes (``LocalExecutor``).

Both take the same :class:`~bench.cluster.job.RunJob` objects and the same requeue bound (submitit's
``max_num_timeout``), so the local executor exercises the whole time-out -> requeue -> resume path
of the cluster without Slurm.

Slurm: one ``sbatch`` for all runs (``#SBATCH --array=0-<n-1>%<--max-parallel>``; a single run is a
plain job), then the command returns; ``--dry-run`` prints the batch script :func:`sbatch_script`
renders with submitit's own ``_make_sbatch_string``, the function ``SlurmExecutor`` submits with (a
test compares the two).

Local: submitit's local jobs are subprocesses with no throttle of their own, so :func:`run_local`
starts at most one job per slot (``--gpus-per-run`` GPUs each, pinned with ``CUDA_VISIBLE_DEVICES``:
a 4-GPU workstation runs 4 one-GPU runs side by side; on a CPU, ``--max-parallel`` slots) and waits
for them all, starting the next run as a slot frees.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

from bench.cluster.job import JobFailed, RunJob
from bench.cluster.options import ClusterOptions, local_parameters, local_slots, slurm_parameters

POLL_S = 0.5
NO_EXIT_HINT = ("when its time limit came after a stop signal (give a longer --signal-delay: the step in progress, "
                "the requeue and the exit must fit in it)")
TRACE_RULE = "-" * 22  # around the traceback in submitit's FailedJobError (submitit/core/core.py)


def log_folder(opts: ClusterOptions) -> Path:
    """Where submitit keeps each job's pickles and logs (``%j`` is the job id)."""
    return (opts.jobs / "logs" / "%j").resolve()


def sbatch_script(opts: ClusterOptions, count: int) -> str:
    """The batch script ``bench submit`` hands to ``sbatch`` for ``count`` runs (what ``--dry-run`` prints)."""
    from submitit.slurm.slurm import _convert_mem, _make_sbatch_string

    params = slurm_parameters(opts)
    if "mem" in params:
        params["mem"] = _convert_mem(params["mem"])
    folder = log_folder(opts)
    command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
    return _make_sbatch_string(command=command, folder=folder, map_count=count if count > 1 else None, **params)


def submit_slurm(jobs: list[RunJob], opts: ClusterOptions) -> list[str]:
    """Submit ``jobs`` as one array; returns the job ids (``<array>_<i>``), in order."""
    from submitit import SlurmExecutor

    executor = SlurmExecutor(folder=log_folder(opts), max_num_timeout=opts.requeues)
    executor.update_parameters(**slurm_parameters(opts))
    return [job.job_id for job in executor.submit_array(jobs)]


def run_local(jobs: list[RunJob], opts: ClusterOptions, started: Callable[[int, str, tuple[int, ...]], None],
              ended: Callable[[int, str, str], None]) -> dict[int, str]:
    """Run ``jobs`` here, at most one per slot at a time; ``started(index, job_id, gpus)`` and
    ``ended(index, status, detail)`` report progress. Returns index -> final status (``complete``,
    ``skipped``, ``failed``)."""
    from submitit import LocalExecutor

    slots = local_slots(opts)
    waiting = list(enumerate(jobs))
    running: dict[int, tuple[int, Any]] = {}
    statuses: dict[int, str] = {}
    while waiting or running:
        for slot, gpus in enumerate(slots):
            if slot in running or not waiting:
                continue
            index, job = waiting.pop(0)
            executor = LocalExecutor(folder=log_folder(opts), max_num_timeout=opts.requeues)
            executor.update_parameters(**local_parameters(opts, gpus))
            submitted = executor.submit(job)
            running[slot] = (index, submitted)
            started(index, str(submitted.job_id), gpus)
        for slot, (index, submitted) in list(running.items()):
            if submitted.done():
                status, detail = job_outcome(submitted)
                statuses[index] = status
                ended(index, status, detail)
                del running[slot]
        if running:
            time.sleep(POLL_S)
    return statuses


def job_outcome(job: Any) -> tuple[str, str]:
    """(status, one line) of an ended submitit job: the run's outcome, or why the job failed."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    try:
        result = job.results()[0]
    except FailedJobError as exc:  # the job raised: its traceback says why
        return "failed", failure_line(str(exc)) or type(exc).__name__
    except UncompletedJobError:  # no result at all
        return "failed", (f"the job ended without a result: it was killed, or it had not exited {NO_EXIT_HINT}; its "
                          f"log: {job.paths.stderr}")
    return str(result.get("status", "complete")), str(result.get("detail", ""))


def failure_line(text: str) -> str:
    """Why a job failed, in one line: the exception line that ends the traceback submitit's ``FailedJobError``
    quotes between two dashed lines (without the class name of :class:`~bench.cluster.job.JobFailed`), else the
    message's last line."""
    parts = text.split(TRACE_RULE)
    body = parts[1] if len(parts) >= 3 else text
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if not lines:
        return ""
    prefix = f"{JobFailed.__module__}.{JobFailed.__name__}: "
    return lines[-1].removeprefix(prefix)
