"""One job = one run: the callable submitit pickles, runs on the node, and requeues at a time-out.

:class:`RunJob` holds plain data only (the method key, the dataset name, the seed, the spec options,
how to run, and the spec hash seen at submission). In the job it re-resolves the run spec with the
code and data of the node and refuses in one line if the hash differs (the code, the data files or
an option changed since submission: the run would land in another directory than the one the
manifest names), then calls bench's own :func:`bench.run.run_one`. The job never carries ``--force``:
that was done at submission (:mod:`bench.cluster.launch`); a requeued job that wiped its work
directory would start over at every requeue and never finish.

Time-outs and preemption (submitit's mechanics, ``submitit/core/job_environment.py``): submitit
installs its handlers before calling the job, the pre-timeout signal (SIGUSR2) running
``checkpoint_and_try_requeue`` at once, wherever the job is. While the run's epoch loop executes,
:func:`bench.run.stop.stop_on_signals` replaces them: the signal only sets a flag, the run stops at the
next step boundary (:class:`~bench.run.stop.RunStopped`: ``last.pt`` holds the last completed epoch,
nothing is half-written, the lock is released, submitit's handlers are back), and then the job calls
submitit's own handler, now at a safe point: it pickles :meth:`RunJob.checkpoint` (the same job: the
state is in ``last.pt``) and requeues (``scontrol requeue``; locally exit code 144, which the local
controller restarts), and the requeued job resumes from ``last.pt``. Outside the epoch loop submitit's
handler acts at once (nothing of value is in memory there). Time-outs are requeued at most
``--max-requeues`` times (submitit's ``max_num_timeout``; preemptions are not counted): past it
submitit raises ``UncompletedJobError`` and the job records the run as failed, naming the option to
raise; a later ``bench submit`` resumes it. SIGTERM (``scancel``, a preemption, Slurm's kill at the
limit) stops the run the same way and ends the job; Slurm requeues a preempted job itself. A run that
fails on its own (NaN, an exception, out of memory) is recorded by the runner and ends the job as
failed, never requeued.

Several GPUs per run: one task per GPU on one node (``--ntasks-per-node = --gpus-per-node``), every
task calling this job; the torch variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``) come from submitit's ``TorchDistributedEnvironment`` with ``CUDA_VISIBLE_DEVICES``
left alone (each task sees the job's GPUs, bench's DDP path uses ``cuda:LOCAL_RANK``). Only rank 0
requeues; the ranks stop at the same step (:class:`~bench.run.stop.StopCheck`).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import store
from bench.errors import BenchError
from bench.run.failure import record_failure
from bench.run.options import RunOptions
from bench.run.runner import run_one
from bench.run.stop import RunStopped, preempt_signal
from bench.spec.run_spec import RunSpec, SpecOptions


class JobFailed(RuntimeError):
    """The run of a job failed (recorded in the results store): the scheduler shows the job FAILED."""


@dataclass(frozen=True)
class JobSettings:
    """How a job runs its run (nothing here changes the numbers)."""

    results: str
    device: str = "auto"
    data_dir: str | None = None
    channels_last: bool = False
    compile: bool = False
    efficiency: bool = True
    max_requeues: int = 10
    time_limit_min: float | None = None


@dataclass(frozen=True)
class RunJob:
    """One run as a submitit job (see the module docstring); plain data only."""

    key: str  # the method key, canonical (the run spec's label)
    dataset: str
    seed: int
    options: SpecOptions
    settings: JobSettings
    spec_hash: str

    def __call__(self) -> dict[str, Any]:
        rank = _export_torch_environment()
        spec, data = self.resolve()
        try:
            outcome = run_one(spec, data, self.run_options())
        except RunStopped as stopped:
            return self._after_stop(stopped, spec)
        if outcome.status == "failed":
            raise JobFailed(f"{spec.label} on {spec.dataset} seed {spec.seed}: {outcome.detail}")
        return {"status": outcome.status, "detail": outcome.detail, "rank": rank,
                "run_dir": str(store.run_dir(Path(self.settings.results), spec))}

    def checkpoint(self, *args: Any, **kwargs: Any):
        """What submitit requeues: this same job (the run's state is in ``last.pt``, not in the pickle)."""
        from submitit.core.utils import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)

    def resolve(self):
        """The run spec, resolved on this node; refused in one line if it is not the one submitted."""
        from bench.spec.registry import get_dataset, parse_method_key
        from bench.spec.run_spec import resolve_run_spec

        data = get_dataset(self.dataset)
        spec = resolve_run_spec(parse_method_key(self.key), data, self.seed, self.options)
        if spec.hash != self.spec_hash:
            raise BenchError(f"{spec.label} on {spec.dataset} seed {spec.seed}: its run spec resolves to hash "
                             f"{spec.hash} in the job but was {self.spec_hash} at submission (the code, the data files "
                             f"or an option changed since); nothing was run: submit it again with `bench submit`")
        return spec, data

    def run_options(self) -> RunOptions:
        s = self.settings
        return RunOptions(results=Path(s.results), device=s.device, force=False, data_dir=s.data_dir,
                          channels_last=s.channels_last, compile=s.compile, efficiency=s.efficiency,
                          log=lambda text: print(text, flush=True))

    def _after_stop(self, stopped: RunStopped, spec: RunSpec) -> dict[str, Any]:
        """A stop signal ended the run at a step boundary: requeue (the pre-timeout signal) or end the job."""
        print(f"{stopped.describe()}; last.pt holds the last completed epoch", flush=True)
        handler = signal.getsignal(stopped.signum)  # submitit's, back in place
        if stopped.signum != preempt_signal() or not callable(handler):
            raise JobFailed(f"{stopped.describe()}: the run resumes from last.pt when the job is requeued or "
                            f"submitted again")
        from submitit.core.utils import UncompletedJobError

        try:
            handler(stopped.signum, None)  # rank 0: checkpoint, requeue and exit; other ranks: return
        except UncompletedJobError:
            reason = (f"timed out {self.settings.max_requeues + 1} time(s) (--time-limit "
                      f"{self.settings.time_limit_min:g} min, requeued {self.settings.max_requeues} time(s), the "
                      f"bound): raise --max-requeues or --time-limit and `bench submit` it again; it resumes from "
                      f"last.pt (epoch {stopped.last_epoch})")
            self._record(spec, BenchError(reason))
            raise JobFailed(f"{spec.label} on {spec.dataset} seed {spec.seed}: {reason}") from None
        return {"status": "stopped", "detail": stopped.describe(), "rank": _env_rank()}

    def _record(self, spec: RunSpec, error: BaseException) -> None:
        """The failure record, under the run's lock (a process that holds it now has the run: nothing written)."""
        final = store.run_dir(Path(self.settings.results), spec)
        lock = store.RunLock(store.lock_path(final))
        try:
            if lock.acquire():
                record_failure(spec, store.partial_dir(final), self.settings.device, error)
        finally:
            lock.release()


def _export_torch_environment() -> int:
    """Set torch's process-group variables from submitit's job environment when the job has several tasks
    (one per GPU); returns this task's rank."""
    from submitit import JobEnvironment
    from submitit.helpers import TorchDistributedEnvironment

    if JobEnvironment().num_tasks > 1:
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    return _env_rank()


def _env_rank() -> int:
    from bench.run.distributed import env_rank

    return env_rank()
