"""The failure record of a run: one line saying what went wrong, written where it never hurts.

A run that raises (NaN/Inf loss or predictions, out of memory, an exception in a method's code, an
unusable checkpoint or cache) gets a ``failed`` :class:`~bench.store.record.RunResult` in its work
directory (``seed<k>.partial/result.json``), written while the run's lock is held, never over a
committed result and never over a complete record waiting to be committed. Writing the record can
fail too (a full disk, a name too long for the file system): the reason then says so, in one line,
and nothing is raised.
"""

from __future__ import annotations

import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench import store
from bench.run.checkpoint import LAST, checkpoint_epoch
from bench.errors import BenchError
from bench.store.record import SCHEMA, Environment, MethodInfo, RunResult, Timing, read_result, write_json_text
from bench.spec.run_spec import RunSpec


def failure_reason(error: BaseException) -> str:
    """One line saying what went wrong and, where known, what to do."""
    if isinstance(error, BenchError):
        return str(error)
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if "out of memory" in text.lower():
        return f"out of memory: {first}; lower the batch size (--batch-size)"
    return f"{type(error).__name__}: {first}".strip().rstrip(":")


def record_failure(spec: RunSpec, work: Path, device: str, error: BaseException) -> str:
    """Write the ``failed`` record of ``spec`` into ``work``; returns the one-line reason (never raises)."""
    reason = failure_reason(error)
    try:
        target = work / store.RESULT_FILE
        if target.exists() and _is_complete(target):
            return f"{reason} (its complete result in {work} waits to be committed; run the command again)"
        last_good = 0
        if (work / LAST).exists():
            try:
                last_good = checkpoint_epoch(work / LAST)
            except BenchError:
                pass
        env = store.environment(device)
        method = spec.method_spec()
        record = RunResult(
            schema=SCHEMA, status="failed", spec=spec, spec_hash=spec.hash,
            method=MethodInfo(name=spec.method, citation=method.citation, recurrent=method.recurrent),
            environment=Environment.of(env),
            timing=Timing(finished=datetime.now(timezone.utc).isoformat(timespec="seconds")),
            error=reason, last_good_epoch=last_good,
            traceback="".join(traceback.format_exception(error))[-4000:])
        work.mkdir(parents=True, exist_ok=True)
        store.atomic_write_text(target, write_json_text(record))
    except Exception as exc:  # noqa: BLE001 - the record is a courtesy; the sweep must go on
        detail = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        return f"{reason} (and its failure record could not be written: {detail})"
    return reason


def _is_complete(path: Path) -> bool:
    try:
        return read_result(path).complete
    except BenchError:
        return False
