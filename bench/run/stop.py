"""Stopping a run cleanly when a scheduler asks: SIGTERM and the pre-timeout signal end a run at a step boundary.

Schedulers end a job with a signal. Slurm sends SIGTERM at the time limit, on preemption and on
``scancel`` (and SIGKILL after ``KillWait``, 30 s by default); with ``sbatch --signal=USR2@S`` (what
submitit writes, ``S`` = its ``signal_delay_s``) it sends SIGUSR2 ``S`` seconds before the limit;
``torchrun`` forwards SIGTERM to its workers. The default action of both signals kills the process
wherever it is: in the middle of an optimiser step or of a collective.

While a run's epoch loop executes (:func:`bench.run.runner.execute_run` wraps it in
:func:`stop_on_signals`) these signals only set a flag (the handler does nothing else: no I/O, no
exception at an arbitrary point). The loop (:mod:`bench.run.loop`) asks :class:`StopCheck` after every
optimiser step and after every epoch's checkpoint, and raises :class:`RunStopped` there. ``last.pt``
is written after every completed epoch (:mod:`bench.run.checkpoint`; it holds the optimiser, schedule
and RNG state at the epoch boundary, not inside an epoch), so a stop loses at most the epoch in
progress, and the next ``bench run`` of the same command resumes from ``last.pt`` exactly.
:class:`RunStopped` is no failure: the runner records nothing, releases the run lock and lets it
through (it derives from ``BaseException``, as ``KeyboardInterrupt`` does, so no ``except Exception``
turns it into a failure record). Outside the epoch loop (preparing the data and model, a pretraining
stage, the test, the commit) the handlers in place before apply: a signal's default action ends the
process, and submitit's handler requeues a job at once. Nothing is lost there that the next run does
not redo (every file is written atomically, and an interrupted commit is repaired), except the
progress of a pretraining stage in progress.

Under DDP every rank must stop at the same step, or the others wait forever in the next collective:
the ranks agree by a max all-reduce of the flag every :attr:`StopCheck.every` steps (every step on
the CPU, every 50 on the GPU, the cadence of the non-finite-loss check in :mod:`bench.run.epoch`) and
at every epoch end; a single process reads the flag after every step (no synchronisation).

The pre-timeout signal is SIGUSR2 unless ``SUBMITIT_PREEMPT_SIGNAL`` names another one (submitit's
setting, e.g. ``USR1``): NCCL uses SIGUSR1 itself, which is why submitit moved to SIGUSR2.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import torch

from bench.run.distributed import DistInfo

PREEMPT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"
GPU_CHECK_EVERY = 50  # steps between the ranks' agreement on the GPU (one small all-reduce)


class RunStopped(BaseException):
    """A run ended early because a stop signal came: nothing was half-written, ``last.pt`` holds
    ``last_epoch`` (0: no epoch had finished), and running the same command again resumes it."""

    def __init__(self, signum: int, last_epoch: int | None, where: str = ""):
        self.signum, self.last_epoch, self.where = signum, last_epoch, where
        super().__init__(self.describe())

    @property
    def signal_name(self) -> str:
        return signal_name(self.signum)

    def describe(self) -> str:
        after = "" if self.last_epoch is None else (
            f" after epoch {self.last_epoch}" if self.last_epoch else " before its first epoch ended")
        return f"stopped by {self.signal_name}{f': {self.where}' if self.where else ''}{after}"


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def preempt_signal() -> int:
    """The pre-timeout signal (SIGUSR2, or the one ``$SUBMITIT_PREEMPT_SIGNAL`` names)."""
    name = os.environ.get(PREEMPT_SIGNAL_ENV, "USR2")
    return int(getattr(signal, f"SIG{name}", signal.SIGUSR2))


def stop_signals() -> tuple[int, ...]:
    return tuple(dict.fromkeys((int(signal.SIGTERM), preempt_signal())))


class _State:
    signum: int | None = None
    depth: int = 0


def _request(signum: int, frame: Any) -> None:  # the handler: set the flag, nothing else
    if _State.signum is None:
        _State.signum = signum


def requested() -> int | None:
    """The first stop signal received under :func:`stop_on_signals` (None: none)."""
    return _State.signum


@contextmanager
def stop_on_signals(signals: tuple[int, ...] | None = None) -> Iterator[dict[int, Any]]:
    """While inside, :func:`stop_signals` (SIGTERM and the pre-timeout signal) set the stop flag instead of
    killing the process; yields the handlers that were installed before (restored on exit). Nested
    uses share one flag; outside the main thread (where Python cannot set handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield {}
        return
    if _State.depth == 0:
        _State.signum = None
    _State.depth += 1
    previous: dict[int, Any] = {}
    try:
        for signum in signals or stop_signals():
            previous[signum] = signal.signal(signum, _request)
        yield previous
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _State.depth -= 1


class StopCheck:
    """Where the epoch loop asks whether to stop (see the module docstring): after every optimiser step
    (:meth:`after_step`) and after every epoch's checkpoint (:meth:`after_epoch`)."""

    def __init__(self, info: DistInfo, device: torch.device, where: str = ""):
        self.info, self.device, self.where = info, device, where
        self.every = 1 if device.type == "cpu" else GPU_CHECK_EVERY
        self.steps = 0

    def after_step(self, epoch: int) -> None:
        """Called after each optimiser step of ``epoch``; the epoch in progress is abandoned."""
        self.steps += 1
        if self.info.enabled and self.steps % self.every:
            return
        self._stop_if_requested(epoch - 1)

    def after_epoch(self, epoch: int) -> None:
        """Called once ``epoch`` is checkpointed (with 0, or the resumed epoch, before the first one)."""
        self._stop_if_requested(epoch)

    def _stop_if_requested(self, last_epoch: int) -> None:
        signum = self._agreed()
        if signum:
            raise RunStopped(signum, last_epoch, self.where)

    def _agreed(self) -> int:
        """The stop signal, the same on every rank (0: go on)."""
        local = requested() or 0
        if not self.info.enabled:
            return local
        import torch.distributed as dist

        flag = torch.tensor([local], dtype=torch.int64, device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())
