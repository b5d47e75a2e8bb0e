"""Finding the results a test run wrote (the layout is bench.store.layout's; tests never hard-code it), and the
command for a run in a process of its own."""

from __future__ import annotations

import sys
from pathlib import Path

from bench import store
from bench.store.record import RunResult, read_result

# `python -m bench` in a process of its own, efficiency measurement switched off (tests/bench_unmeasured.py)
BENCH_UNMEASURED = [sys.executable, str(Path(__file__).with_name("bench_unmeasured.py"))]


def run_dirs(root: Path, label: str = "simvp", dataset: str = "mmnist", seed: int = 0) -> list[Path]:
    """The committed run directories of ``label`` (one per configuration / spec hash)."""
    base = Path(root) / dataset / store.label_to_dirname(label)
    return sorted(p for p in base.glob(f"*/seed{seed}") if p.is_dir())


def work_dirs(root: Path, label: str = "simvp", dataset: str = "mmnist", seed: int = 0) -> list[Path]:
    """The work directories (``seed<k>.partial``) of ``label``: runs in progress or failed."""
    base = Path(root) / dataset / store.label_to_dirname(label)
    return sorted(p for p in base.glob(f"*/seed{seed}.partial") if p.is_dir())


def only(paths: list[Path]) -> Path:
    assert len(paths) == 1, f"expected one directory, found {[str(p) for p in paths]}"
    return paths[0]


def complete_result(root: Path, label: str = "simvp", dataset: str = "mmnist", seed: int = 0) -> RunResult:
    """The one committed result of ``label`` (fails if there are several configurations)."""
    return read_result(only(run_dirs(root, label, dataset, seed)) / store.RESULT_FILE)


def failed_result(root: Path, label: str = "simvp", dataset: str = "mmnist", seed: int = 0) -> RunResult:
    """The one failure record of ``label`` (in its work directory)."""
    return read_result(only(work_dirs(root, label, dataset, seed)) / store.RESULT_FILE)


def comparable(r: RunResult) -> tuple:
    """What two runs of the same spec and seed must share exactly on CPU (timings excluded)."""
    history = [(h.epoch, h.train_loss, h.lr, h.train_samples, h.val) for h in r.history]
    return history, r.test, r.best_epoch, r.test_per_frame
