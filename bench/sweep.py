"""A sweep: every (dataset, method key, seed) run in turn; one failing run never sinks the others.

A run that fails (NaN/Inf loss, out of memory, an exception in a method's code) is recorded as a
``failed`` result.json with its reason and the last good epoch, and the sweep goes on. A
KeyboardInterrupt stops the sweep at once (completed results and epoch checkpoints are intact).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from bench import results as store
from bench.distributed import env_rank
from bench.errors import BenchError
from bench.registry import DatasetSpec, MethodKey
from bench.runner import RunOptions, load_checkpoint, run_one


@dataclass
class RunOutcome:
    dataset: str
    label: str
    seed: int
    status: str  # complete | skipped | failed
    detail: str
    result: dict[str, Any] | None = None


def record_failure(key: MethodKey, data: DatasetSpec, seed: int, opts: RunOptions, error: BaseException) -> str:
    """Write a ``failed`` result.json naming the error and the last good epoch; return the reason."""
    out_dir = store.run_dir(opts.results, data.name, key.label, seed)
    last_good = 0
    last = out_dir / "last.pt"
    if last.exists():
        try:
            last_good = int(load_checkpoint(last)["epoch"])
        except BenchError:
            pass
    if isinstance(error, BenchError):
        reason = str(error)
    elif "out of memory" in str(error).lower():
        reason = f"out of memory: {str(error).splitlines()[0]}; lower the batch size (--batch-size)"
    else:
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".strip()
    store.atomic_write_json(out_dir / store.RESULT_FILE, {
        "schema": store.SCHEMA, "status": "failed",
        "key": {"dataset": data.name, "method": key.spec.name, "variant": key.variant,
                "overrides": dict(key.overrides), "label": key.label, "seed": seed},
        "error": reason, "last_good_epoch": last_good,
        "traceback": "".join(traceback.format_exception(error))[-4000:],
        "environment": store.environment(opts.device),
        "timing": {"failed": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    })
    return reason


def run_sweep(keys: Sequence[MethodKey], datasets: Sequence[DatasetSpec], seeds: Sequence[int],
              opts: RunOptions) -> list[RunOutcome]:
    outcomes: list[RunOutcome] = []
    for data in datasets:
        for key in keys:
            for seed in seeds:
                try:
                    result = run_one(key, data, seed, opts)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # isolation: record, report, go on
                    if env_rank() != 0:
                        raise  # under torchrun a failing rank ends the job; rank 0 records it
                    reason = record_failure(key, data, seed, opts, exc)
                    opts.log(f"FAILED {key.label} on {data.name} seed {seed}: {reason}")
                    outcomes.append(RunOutcome(data.name, key.label, seed, "failed", reason))
                    continue
                status = result["status"]
                detail = result.get("reason", "") if status == "skipped" else (
                    f"test MSE {result['test']['mse']:.3f}, best epoch {result['best_epoch']}")
                outcomes.append(RunOutcome(data.name, key.label, seed, status, detail, result))
    return outcomes
