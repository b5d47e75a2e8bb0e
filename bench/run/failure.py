"""The failure record of a run: one line saying what went wrong, written where it never hurts.

A run that raises (NaN/Inf loss or predictions, out of memory, an exception in a method's code, an
unusable checkpoint or cache) gets a ``failed`` :class:`~bench.store.record.RunResult` in its work
directory (``seed<k>.partial/result.json``), written while the run's lock is held, never over a
committed result and never over a complete record waiting to be committed. Writing the record can
fail too (a full disk, a name too long for the file system): the reason then says so, in one line,
and nothing is raised.

Running out of memory (:func:`bench.core.memory.is_out_of_memory`: the CPU allocator, CUDA, a killed
data-loader worker) is told in one line naming the device, the allocation that failed and the batch
size to lower: ``out of memory on the CPU (an allocation of 1.50 GiB failed) at --batch-size 16; lower
it, e.g. --batch-size 8``. Like every failure it is recorded and not retried (a smaller batch is
another configuration, with its own run spec and result; the user chooses it).
"""

from __future__ import annotations

import re
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench import store
from bench.core.memory import is_out_of_memory
from bench.run.checkpoint import LAST, checkpoint_epoch
from bench.errors import BenchError
from bench.store.record import SCHEMA, Environment, MethodInfo, RunResult, Timing, read_result, write_json_text
from bench.spec.run_spec import RunSpec


def failure_reason(error: BaseException, batch_size: int | None = None) -> str:
    """One line saying what went wrong and, where known, what to do (out of memory: the batch size to
    lower, ``batch_size`` being the run's)."""
    if isinstance(error, BenchError):
        return str(error)
    if is_out_of_memory(error):
        return out_of_memory_reason(error, batch_size)
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}".strip().rstrip(":")


_UNITS = {"": 1, "B": 1, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "KB": 10**3, "MB": 10**6,
          "GB": 10**9, "TB": 10**12}


def failed_allocation(text: str) -> int | None:
    """The bytes of the allocation an out-of-memory message names (torch's CPU allocator: "you tried to
    allocate N bytes"; CUDA: "Tried to allocate 1.50 GiB"), or None."""
    found = re.search(r"tried to allocate ([0-9]+(?:\.[0-9]+)?) ?([KMGT]i?B|B|bytes)?", text, re.IGNORECASE)
    if found is None:
        return None
    unit = (found.group(2) or "").upper().replace("BYTES", "B")
    return int(float(found.group(1)) * _UNITS.get(unit, 1))


def out_of_memory_reason(error: BaseException, batch_size: int | None) -> str:
    """``out of memory on <where> (<the allocation that failed>) at --batch-size B; lower it, e.g. ...``."""
    text = " ".join(str(error).split())
    gpu = "cuda" in text.lower() or type(error).__name__ == "OutOfMemoryError"
    where = "the GPU" if gpu else "the CPU"
    size = failed_allocation(text)
    if size is not None:
        detail = f" (an allocation of {size / 2**30:.2f} GiB failed)"
    elif "killed by signal" in text.lower():
        detail = " (a data-loader worker was killed by the kernel)"
    else:
        detail = f" ({type(error).__name__})"
    if batch_size is None:
        return f"out of memory on {where}{detail}; lower the batch size (--batch-size)"
    if batch_size <= 1:
        return (f"out of memory on {where}{detail} at --batch-size 1; this configuration does not fit this machine: "
                f"use one with more memory (README, Memory)")
    return (f"out of memory on {where}{detail} at --batch-size {batch_size}; lower it, e.g. --batch-size "
            f"{batch_size // 2} (README, Memory: what a paper-size run needs)")


def record_failure(spec: RunSpec, work: Path, device: str, error: BaseException) -> str:
    """Write the ``failed`` record of ``spec`` into ``work``; returns the one-line reason (never raises)."""
    reason = failure_reason(error, spec.batch_size)
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
