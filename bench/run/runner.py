"""Run one spec: train, select on validation, test once, record; nothing a user does loses a result.

Protocol:
1. The run spec (:mod:`bench.spec.run_spec`) fixes everything that changes the numbers; it is resolved
   and validated for every run before the sweep starts. The seed fixes initialisation and the
   training stream; the validation and test sets are fixed by the data seed. On CPU, runs repeat
   exactly (deterministic algorithms are switched on).
2. An optional pretraining stage (``MethodSpec.pretrain``) runs first; the optimiser is then built
   over the parameters that still require gradients.
3. Every epoch: train with the method's optimiser and schedule (stepped per iteration), then
   evaluate on the VALIDATION split. The checkpoint with the lowest validation MSE is kept; the test
   set is touched once, at the end, with that checkpoint.
4. A NaN/Inf training loss, or a non-finite prediction, ends the run as failed with the reason.

Where each part lives (a reader's map of :mod:`bench.run`):
- :func:`run_one` (here): the run's directories and lock; skip a finished result, ``--force``, commit.
- :func:`execute_run` (here): the sequence above, in a work directory (``seed<k>.partial``), in three
  steps: :func:`bench.run.prepared.prepare_run` (device, data, model, pretraining),
  :func:`bench.run.loop.train_run` (the epoch loop, best epoch, checkpoints) and
  :func:`bench.run.finish.test_and_record` (test once, efficiency, ``result.json``).
- :mod:`bench.run.epoch`: one epoch of training; :mod:`bench.run.evaluation`: scoring a split;
  :mod:`bench.run.checkpoint`: saving, loading and the resume checks; :mod:`bench.run.failure`: the
  failure record; :mod:`bench.run.distributed`: torchrun; :mod:`bench.run.sweep`: many runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench import store
from bench.core.platform import resolve_device
from bench.errors import BenchError
from bench.run.distributed import DistInfo, broadcast_object, env_world_size, init_from_env
from bench.run.failure import record_failure
from bench.run.finish import test_and_record
from bench.run.loop import train_run
from bench.run.options import Outcome, RunOptions
from bench.run.prepared import prepare_run
from bench.run.stop import stop_on_signals
from bench.spec.dataset import DatasetSpec
from bench.spec.run_spec import RunSpec
from bench.store.record import RunResult

__all__ = ["RunOptions", "Outcome", "run_one", "execute_run"]


def run_one(spec: RunSpec, data: DatasetSpec, opts: RunOptions) -> Outcome:
    """Run ``spec`` unless its result exists; returns the outcome (a failure is recorded, not raised).

    The run trains in ``seed<k>.partial`` and is committed whole (:func:`bench.store.commit.commit_run`).
    An existing complete result is kept unless ``opts.force``; with ``--force`` it stays in place
    until the new run is complete. An interrupted run resumes from its last epoch. A run another
    process is training (its lock is held) is skipped. Everything that decides or writes happens
    under the run's lock. Under ``torchrun`` all ranks share one run, rank 0 decides and writes, and
    a failure ends the job (rank 0 records it). A stop signal (:mod:`bench.run.stop`) ends the run with
    :class:`~bench.run.stop.RunStopped`, which is no failure: nothing is recorded and it is raised on.
    """
    final = store.run_dir(opts.results, spec)
    work = store.partial_dir(final)
    where = f"{spec.label} on {spec.dataset} seed {spec.seed}"
    distributed = env_world_size() > 1
    info = init_from_env(resolve_device(opts.device))[0] if distributed else DistInfo()
    lock = store.RunLock(store.lock_path(final))
    try:
        decision: tuple[str, str] = ("run", "")
        if info.is_main:
            try:
                decision = _decide(final, work, lock, opts.force)
            except BenchError as exc:  # every rank must learn of it (they wait in the broadcast)
                decision = ("refuse", str(exc))
        action, detail = broadcast_object(decision, info)
        if action == "skip":
            opts.log(f"{where}: {detail}")
            return Outcome(spec, "skipped", detail, path=final)
        if action == "refuse":
            raise BenchError(detail)
        if info.is_main:  # what `bench status` reads while the run trains
            store.atomic_write_json(work / store.SPEC_FILE, spec.to_json())
        result = execute_run(spec, data, work, opts)
        if not info.is_main:
            return Outcome(spec, "complete", "rank > 0")
        store.commit_run(work, final)
        return Outcome(spec, "complete", _summary(result), result, final)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - isolation: record, report, go on
        if distributed:
            raise  # a failing rank ends the torchrun job
        reason = record_failure(spec, work, opts.device, exc)
        opts.log(f"FAILED {where}: {reason}")
        return Outcome(spec, "failed", reason, path=final)
    finally:
        lock.release()


def _decide(final: Path, work: Path, lock: store.RunLock, force: bool) -> tuple[str, str]:
    """("skip", why), ("refuse", one-line error) or ("run", "") with ``work`` ready, decided under the run's lock.

    One exception: a complete result with nothing to recover beside it is kept before the lock is
    taken (reading it writes nothing), so a finished run on a read-only results directory is "kept",
    not "failed"."""
    if not force and finished_and_settled(final):
        return "skip", f"result exists at {final}, kept (use --force to re-run)"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        if not lock.acquire():
            return "skip", "another process holds its run lock"
    except OSError as exc:
        raise BenchError(f"cannot write under {final.parent} ({exc.strerror}); ask its owner for write access or "
                         f"pass --results with a directory of your own") from None
    return _decide_locked(final, work, force)


def finished_and_settled(final: Path) -> bool:
    """``final`` holds a complete result and no interrupted commit waits beside it (reads only)."""
    if store.committed_state(final) != "complete" or os.path.lexists(store.replaced_dir(final)):
        return False
    return not store.has_complete_result(store.partial_dir(final))  # a finished run waiting to be committed replaces it


def _decide_locked(final: Path, work: Path, force: bool) -> tuple[str, str]:
    store.recover_run(final)
    state = store.committed_state(final)
    if state == "complete" and not force:
        return "skip", f"result exists at {final}, kept (use --force to re-run)"
    if state not in ("missing", "complete") and not force:
        return "refuse", (f"{final} holds a result this version cannot read ({state}); move it away, or re-run with "
                          f"--force to replace it")
    try:
        _prepare_work_dir(work, force)
    except OSError as exc:
        raise BenchError(f"cannot write {work} ({exc.strerror}); ask the owner of {final.parent} for write access "
                         f"or pass --results with a directory of your own") from None
    return "run", ""


def _prepare_work_dir(work: Path, force: bool) -> None:
    """``seed<k>.partial``: fresh with ``--force``, else kept so that an interrupted run resumes."""
    if force:
        store.remove_dir(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / store.RESULT_FILE).unlink(missing_ok=True)  # a failure record of an earlier attempt


def _summary(result: RunResult) -> str:
    return f"test MSE {result.test['mse']:.3f}, best epoch {result.best_epoch}"


def execute_run(spec: RunSpec, data: DatasetSpec, work: Path, opts: RunOptions) -> RunResult | None:
    """Train, select, test and record ``spec`` in ``work``; returns the result (None on ranks > 0)."""
    run = prepare_run(spec, data, work, opts)
    with stop_on_signals():  # SIGTERM / the pre-timeout signal stop the epoch loop at a step (bench.run.stop)
        progress = train_run(run)
    return test_and_record(run, progress)


