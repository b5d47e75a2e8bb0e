"""Checkpoints of a run in progress: save after every epoch, resume only into the same run spec.

``last.pt`` holds the whole training state (model, optimiser, schedule, gradient scaler, history,
best epoch, RNG states, the peak memory of the phases so far and the run spec's identity); ``best.pt``
the best validation epoch's number and weights (``{"epoch": int, "model": state_dict}``). ``last.pt`` is written first, so
after a crash between the two files the best epoch is either in ``best.pt`` or is ``last.pt``'s
own epoch, whose weights ``last.pt`` holds; :func:`resume` takes whichever matches. Both are written atomically and load with ``weights_only=True``. A checkpoint
made for another configuration (any field of :meth:`bench.spec.run_spec.RunSpec.identity`: a data
seed, split sizes, horizon or hyperparameter) is refused in one line, and one that lacks a field
or does not load is a one-line BenchError naming the file and saying to delete it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from bench import store
from bench.errors import BenchError
from bench.spec.run_spec import RunSpec
from bench.store.record import EpochRecord

LAST = "last.pt"
BEST = "best.pt"
_REQUIRED = ("epoch", "model", "optimizer", "scheduler", "history", "best", "rng", "spec")


def capture_rng() -> dict[str, Any]:
    """RNG states as tensors and plain values, so checkpoints load with ``weights_only=True``."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); a corrupt file is a one-line BenchError."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, foreign pickle, ...
        raise BenchError(f"checkpoint {path} is corrupt or not a bench checkpoint ({type(exc).__name__}); "
                         f"delete it to start the run afresh") from None
    if not isinstance(data, dict):
        raise BenchError(f"checkpoint {path} does not hold a bench checkpoint; delete it to start the run afresh")
    return data


def checkpoint_epoch(path: Path) -> int:
    """The last completed epoch recorded in ``last.pt`` (BenchError if unreadable or incomplete)."""
    ckpt = load_checkpoint(path)
    epoch = ckpt.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise BenchError(f"checkpoint {path} has no epoch number; delete it to start the run afresh")
    return epoch


@dataclass
class Progress:
    """What the epoch loop carries from epoch to epoch (and what a resume restores); the history is
    typed from the first epoch (:class:`~bench.store.record.EpochRecord`, as ``result.json`` holds it)."""

    history: list[EpochRecord] = field(default_factory=list)
    best_mse: float = float("inf")
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    next_epoch: int = 1
    #: peak memory of the phases so far in bytes: ``train_rss``, ``eval_rss``, ``measure_rss`` and their
    #: ``_gpu`` twins (:class:`~bench.store.record.PeakMemory`; measured by :mod:`bench.core.memory`)
    peaks: dict[str, int] = field(default_factory=dict)

    def note_peak(self, phase: str, peak: Any) -> None:
        """Fold the :class:`bench.core.memory.PhasePeak` of a ``phase`` (train, eval, measure) into :attr:`peaks`."""
        for kind in ("rss", "gpu"):
            value = getattr(peak, kind)
            if value is not None:
                key = f"{phase}_{kind}"
                self.peaks[key] = max(int(value), self.peaks.get(key, 0))


@dataclass(frozen=True)
class TrainingState:
    """What ``last.pt`` holds besides the progress, and a resume restores in place: the model and its
    optimiser, learning-rate schedule and gradient scaler."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler

    def state_dicts(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict()}

    def load(self, ckpt: Mapping[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if "scaler" in ckpt:
            self.scaler.load_state_dict(ckpt["scaler"])


def epoch_row(record: EpochRecord) -> dict[str, Any]:
    """One history entry as plain values (``last.pt`` loads with ``weights_only=True``; history.csv)."""
    return {"epoch": record.epoch, "train_loss": record.train_loss, "val": dict(record.val), "lr": record.lr,
            "seconds": record.seconds, "eval_seconds": record.eval_seconds, "train_samples": record.train_samples}


def save_last(work: Path, spec: RunSpec, epoch: int, state: TrainingState, progress: Progress) -> None:
    store.atomic_torch_save(work / LAST, {
        "epoch": epoch, **state.state_dicts(), "history": [epoch_row(r) for r in progress.history],
        "best": {"mse": progress.best_mse, "epoch": progress.best_epoch}, "rng": capture_rng(),
        "spec": spec.identity(), "peak_memory": dict(progress.peaks)})


def save_best(work: Path, epoch: int, state: dict[str, torch.Tensor]) -> None:
    store.atomic_torch_save(work / BEST, {"epoch": epoch, "model": state})


def resume(work: Path, spec: RunSpec, state: TrainingState) -> Progress | None:
    """Restore ``state`` from ``work/last.pt`` and return the progress (None when there is none).

    Refuses a checkpoint of another configuration, or one that lacks a field, in one line.
    """
    path = work / LAST
    if not path.exists():
        return None
    ckpt = load_checkpoint(path)
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise BenchError(f"checkpoint {path} lacks {', '.join(missing)} (from an older bench or damaged); "
                         f"delete it to start the run afresh")
    if ckpt["spec"] != spec.identity():
        theirs, ours = ckpt["spec"], spec.identity()
        changed = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k)) if isinstance(
            theirs, dict) else ["spec"]
        raise BenchError(f"the checkpoint {path} belongs to another configuration (differs in {', '.join(changed)}); "
                         f"re-run with the same options to resume, or delete it to start afresh")
    try:
        state.load(ckpt)
        restore_rng(ckpt["rng"])
        best = ckpt["best"]
        progress = Progress(history=[EpochRecord(**row) for row in ckpt["history"]], best_mse=float(best["mse"]),
                            best_epoch=int(best["epoch"]), next_epoch=int(ckpt["epoch"]) + 1,
                            peaks={str(k): int(v) for k, v in dict(ckpt.get("peak_memory") or {}).items()})
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise BenchError(f"checkpoint {path} does not fit this model ({type(exc).__name__}: {first}); "
                         f"delete it to start the run afresh") from None
    progress.best_state = _best_state(work, ckpt, progress.best_epoch)
    return progress


def _best_state(work: Path, ckpt: Mapping[str, Any], best_epoch: int) -> dict[str, torch.Tensor] | None:
    """The weights of ``best_epoch``: from ``best.pt`` when it holds that epoch, else from ``last.pt``
    when the best epoch is its own (a crash came between writing the two files)."""
    if best_epoch == 0:
        return None
    if (work / BEST).exists():
        best = load_checkpoint(work / BEST)
        if best.get("epoch") == best_epoch and isinstance(best.get("model"), dict):
            return best["model"]
    if int(ckpt["epoch"]) == best_epoch:
        return {k: v.clone() for k, v in ckpt["model"].items()}
    raise BenchError(f"{work / BEST} does not hold the best epoch {best_epoch} that {work / LAST} names; "
                     f"delete {work} to start the run afresh")
