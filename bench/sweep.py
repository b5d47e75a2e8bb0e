"""A sweep: every resolved run spec in turn; one failing run never sinks the others.

A run that fails (NaN/Inf loss or predictions, out of memory, an exception in a method's code, an
unusable checkpoint) is recorded as a ``failed`` :class:`~bench.result_record.RunResult` in its
work directory (``seed<k>.partial/result.json``), never over a committed result, and the sweep goes
on. Writing that record can fail too (a full disk, a name too long for the file system): the sweep
still goes on and the outcome says so in one line. A KeyboardInterrupt stops the sweep at once;
committed results are never touched by an unfinished run (see :mod:`bench.results`).
"""

from __future__ import annotations

import traceback
from datetime import datetime, timezone
from typing import Sequence

from bench import results as store
from bench.checkpoint import LAST, checkpoint_epoch
from bench.distributed import env_rank
from bench.errors import BenchError
from bench.registry import DatasetSpec
from bench.result_record import SCHEMA, Environment, MethodInfo, RunResult, Timing, write_json_text
from bench.run_spec import RunSpec
from bench.runner import Outcome, RunOptions, run_one


def failure_reason(error: BaseException) -> str:
    """One line saying what went wrong and, where known, what to do."""
    if isinstance(error, BenchError):
        return str(error)
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if "out of memory" in text.lower():
        return f"out of memory: {first}; lower the batch size (--batch-size)"
    return f"{type(error).__name__}: {first}".strip().rstrip(":")


def record_failure(spec: RunSpec, opts: RunOptions, error: BaseException) -> str:
    """Write the ``failed`` record of ``spec``; returns the one-line reason (never raises)."""
    reason = failure_reason(error)
    try:
        work = store.partial_dir(store.run_dir(opts.results, spec))
        last_good = 0
        if (work / LAST).exists():
            try:
                last_good = checkpoint_epoch(work / LAST)
            except BenchError:
                pass
        env = store.environment(opts.device)
        record = RunResult(
            schema=SCHEMA, status="failed", spec=spec, spec_hash=spec.hash,
            method=MethodInfo(spec.method, spec.method_spec().citation, spec.method_spec().recurrent),
            environment=Environment(**{k: v for k, v in env.items() if k in Environment.__dataclass_fields__}),
            timing=Timing(finished=datetime.now(timezone.utc).isoformat(timespec="seconds")),
            error=reason, last_good_epoch=last_good,
            traceback="".join(traceback.format_exception(error))[-4000:])
        work.mkdir(parents=True, exist_ok=True)
        store.atomic_write_text(work / store.RESULT_FILE, write_json_text(record))
    except Exception as exc:  # noqa: BLE001 - the record is a courtesy; the sweep must go on
        detail = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        return f"{reason} (and its failure record could not be written: {detail})"
    return reason


def run_sweep(runs: Sequence[tuple[RunSpec, DatasetSpec]], opts: RunOptions) -> list[Outcome]:
    """Run every (spec, dataset) in order; failures are recorded and the sweep goes on."""
    outcomes: list[Outcome] = []
    for spec, data in runs:
        try:
            outcomes.append(run_one(spec, data, opts))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - isolation: record, report, go on
            if env_rank() != 0:
                raise  # under torchrun a failing rank ends the job; rank 0 records it
            reason = record_failure(spec, opts, exc)
            opts.log(f"FAILED {spec.label} on {spec.dataset} seed {spec.seed}: {reason}")
            outcomes.append(Outcome(spec, "failed", reason, path=store.run_dir(opts.results, spec)))
    return outcomes
