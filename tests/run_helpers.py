"""Running ``bench`` in tests (in-process, or in a process of its own) and finding the results a test run wrote
(the layout is bench.store.layout's; tests never hard-code it)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner

from bench import store
from bench.cli.app import app
from bench.spec.registry import get_dataset, parse_method_key
from bench.spec.run_spec import RunSpec, SpecOptions, resolve_run_spec
from bench.store.record import RunResult, read_result

#: a tiny, fast ``bench run`` on generated Moving MNIST
TINY = ["--datasets", "mmnist", "--tiny", "--quiet", "--sizes", "train=8,val=4,test=4", "--batch-size", "4"]


def bench(*args, env: dict[str, str] | None = None):
    """``bench ARGS`` in-process through typer's CliRunner (arguments stringified); the result has ``exit_code``,
    ``output``, ``stdout``, ``stderr``. The terminal is 250 columns wide, so that a one-line error is never
    wrapped. (conftest's ``bench`` fixture is this function.)"""
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250", **(env or {})})


def spec_of(key: str = "simvp", seed: int = 0, **options) -> RunSpec:
    """The run spec of ``key`` on generated Moving MNIST with ``SpecOptions(**options)``."""
    return resolve_run_spec(parse_method_key(key), get_dataset("mmnist"), seed, SpecOptions(**options))


@contextmanager
def efficiency_measured():
    """Within the block, runs measure their efficiency (FLOPs, fps) as users' runs do: for a fixture of
    module or session scope, which the ``efficiency`` marker of a test does not reach (tests/conftest.py)."""
    import pytest

    from bench.cost.measure import measure_efficiency
    from bench.run import finish

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(finish, "measure_efficiency", measure_efficiency)
        yield


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
