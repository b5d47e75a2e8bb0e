"""What the results store says about a run: complete, failed, running or missing, and how far it got.

The store is the single source of truth (:mod:`bench.store.layout`): a committed ``seed<k>/`` with a
complete ``result.json`` is complete; a process holding ``seed<k>.lock`` is training it (running); a
``failed`` record in ``seed<k>.partial/`` is a failure (its one-line reason); anything else is
missing (``seed<k>.partial/`` with a ``history.csv`` is an interrupted run that resumes after its last
epoch). A complete record waiting in ``seed<k>.partial/`` to be committed (a kill between the two) is
complete: the next ``bench run`` commits it without training.

Progress comes from ``history.csv`` (rewritten after every epoch) and ``spec.json`` (the run spec,
written when the run starts): epochs done, the last validation MSE and the seconds an epoch takes
(training plus validation, the mean of the last :data:`RECENT_EPOCHS` epochs). Reading needs no
torch: ``bench status`` works on a login node.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from bench import store
from bench.core.safe_read import read_json_file, read_regular_bytes
from bench.errors import BenchError

STATES = ("complete", "failed", "running", "missing")
RECENT_EPOCHS = 5
MAX_HISTORY_BYTES = 64 << 20


@dataclass(frozen=True)
class TrainingProgress:
    """How far a run in progress (or interrupted) got, from its ``history.csv``."""

    epoch: int  # the last completed epoch
    epochs: int | None  # the run's total (None where no spec says)
    val_mse: float | None
    seconds_per_epoch: float | None

    @property
    def seconds_left(self) -> float | None:
        if self.epochs is None or self.seconds_per_epoch is None:
            return None
        return max(self.epochs - self.epoch, 0) * self.seconds_per_epoch


@dataclass(frozen=True)
class RunState:
    state: str  # one of STATES
    detail: str = ""
    progress: TrainingProgress | None = None


def run_state(final: Path, epochs: int | None = None) -> RunState:
    """The state of the run whose committed directory is ``final`` (``epochs``: its total, if known)."""
    committed = store.committed_state(final)
    if committed == "complete":
        return RunState("complete", _summary(final / store.RESULT_FILE))
    work = store.partial_dir(final)
    progress = read_progress(work, epochs)
    if store.lock_is_held(store.lock_path(final)):
        return RunState("running", "", progress)
    if committed != "missing":
        return RunState("failed", f"its committed result cannot be used ({committed}); re-run it with --force",
                        progress)
    record = work / store.RESULT_FILE
    if record.exists():
        try:
            result = store_record(record)
        except BenchError as exc:
            return RunState("failed", str(exc), progress)
        if result.complete:
            return RunState("complete", "finished; the next `bench run` or job commits it", progress)
        return RunState("failed", str(result.error or "failed (no reason recorded)"), progress)
    if progress is not None and progress.epoch > 0:
        return RunState("missing", f"interrupted: resumes after epoch {progress.epoch}", progress)
    return RunState("missing", "", progress)


def store_record(path: Path):
    from bench.store.record import read_result

    return read_result(path)


def _summary(path: Path) -> str:
    try:
        result = store_record(path)
        return f"test MSE {result.test['mse']:.3f}, best epoch {result.best_epoch}"
    except (BenchError, KeyError, TypeError):
        return ""


def read_progress(work: Path, epochs: int | None = None) -> TrainingProgress | None:
    """Progress of the run training (or interrupted) in ``work``; None when no epoch finished."""
    path = work / store.HISTORY_FILE
    if not path.exists():
        return None
    try:
        text = read_regular_bytes(path, MAX_HISTORY_BYTES).decode("utf-8", errors="replace")
    except BenchError:
        return None
    rows = [r for r in csv.DictReader(io.StringIO(text)) if _number(r.get("epoch")) is not None]
    if not rows:
        return None
    last = rows[-1]
    seconds = [(_number(r.get("seconds")) or 0.0) + (_number(r.get("eval_seconds")) or 0.0)
               for r in rows[-RECENT_EPOCHS:]]
    return TrainingProgress(epoch=int(_number(last["epoch"])), epochs=epochs if epochs is not None else spec_epochs(work),
                            val_mse=_number(last.get("val_mse")),
                            seconds_per_epoch=sum(seconds) / len(seconds) if seconds else None)


def spec_epochs(work: Path) -> int | None:
    """The total epochs of the run in ``work`` from its ``spec.json`` (None if absent or unreadable)."""
    try:
        spec = read_json_file(work / store.SPEC_FILE)
        epochs = spec["hparams"]["epochs"]
    except (BenchError, KeyError, TypeError):
        return None
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def describe_progress(progress: TrainingProgress | None) -> str:
    """``epoch 3/10, val MSE 41.2, 95 s/epoch, 11 min left`` (what is known of it)."""
    if progress is None:
        return ""
    parts = [f"epoch {progress.epoch}/{progress.epochs}" if progress.epochs else f"epoch {progress.epoch}"]
    if progress.val_mse is not None:
        parts.append(f"val MSE {progress.val_mse:.4g}")
    if progress.seconds_per_epoch is not None:
        parts.append(f"{progress.seconds_per_epoch:.3g} s/epoch")
    if progress.seconds_left is not None:
        parts.append(f"{format_duration(progress.seconds_left)} left")
    return ", ".join(parts)


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
