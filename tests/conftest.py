"""Suite-wide settings and the fixtures the test files share.

Settings: one intra-op thread, a private digest cache, registry messages kept with their test, and
efficiency measurement only where a test checks it.

- The tests use tiny models, for which thread start-up and contention cost far more than the
  arithmetic (a tiny forward pass ran ~200x slower with 2 threads on a loaded 2-core machine).
- Data identities are cached under ``$BENCH_CACHE`` (:mod:`bench.datafiles.identity`); the suite
  points it at a temporary directory so that it never writes to the user's ``~/.cache``.
- Every run measures its efficiency when it finishes (fvcore FLOPs and timed fps,
  :func:`bench.cost.measure.measure_efficiency`), which costs more than a tiny run's training.
  Runs in a test record empty efficiency figures instead, unless the test is marked
  ``@pytest.mark.efficiency`` (those that check the figures are). Runs in a subprocess
  (``python -m bench``) are not reached by this and measure as users' runs do.

Fixtures: ``bench`` (the CLI in-process) and ``trained_run`` (one small trained run, shared
read-only). Toy geometries, tiny models and idx files are functions in ``toy_data.py`` (test modules
build them at import time); finding a run's files is in ``run_helpers.py``, synthetic results in
``report_builders.py``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch

torch.set_num_threads(1)

# The shared run: `bench run --methods simvp` with these arguments (two epochs, so that a best epoch is chosen).
TRAINED_RUN_ARGS = ("--methods", "simvp", "--datasets", "mmnist", "--tiny", "--quick", "--quiet", "--epochs", "2",
                    "--sizes", "train=8,val=4,test=4")


@pytest.fixture(autouse=True, scope="session")
def _private_digest_cache(tmp_path_factory):
    previous = os.environ.get("BENCH_CACHE")
    os.environ["BENCH_CACHE"] = str(tmp_path_factory.mktemp("bench-cache"))
    yield
    if previous is None:
        os.environ.pop("BENCH_CACHE", None)
    else:
        os.environ["BENCH_CACHE"] = previous


@pytest.fixture(autouse=True)
def _registry_messages_stay_with_their_test():
    """The registries' warnings (a refused registration, a broken plug-in) live for the process, as they
    should in one CLI command; in the suite's one process they would leak into later tests' stderr."""
    from bench.spec import registry

    tables = (registry.METHODS, registry.DATASETS)
    saved = [(list(t.warnings), dict(t.failed_plugins)) for t in tables]
    errors = list(registry._PLUGIN_ERRORS)
    yield
    for table, (warned, failed) in zip(tables, saved):
        table.warnings[:] = warned
        table.failed_plugins.clear()
        table.failed_plugins.update(failed)
    registry._PLUGIN_ERRORS[:] = errors


def _unmeasured(*args, **kwargs):
    from bench.store.record import Efficiency

    return Efficiency()


@pytest.fixture(autouse=True, scope="session")
def _no_efficiency_measurement():
    """Runs in this process record empty efficiency figures (fixtures of any scope included)..."""
    from bench.run import finish

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(finish, "measure_efficiency", _unmeasured)
        yield


@pytest.fixture(autouse=True)
def _efficiency_where_checked(request, monkeypatch):
    """... but those of a test marked ``efficiency`` measure it (see the module docstring)."""
    if request.node.get_closest_marker("efficiency") is not None:
        from bench.cost.measure import measure_efficiency
        from bench.run import finish

        monkeypatch.setattr(finish, "measure_efficiency", measure_efficiency)


@pytest.fixture(scope="session")
def bench() -> Callable:
    """``bench(*args, env=None)``: the CLI in-process (:func:`run_helpers.bench`)."""
    from run_helpers import bench as invoke

    return invoke


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every entry under ``root`` and the bytes of its files."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """The results directory of one small trained run (:data:`TRAINED_RUN_ARGS`), efficiency measured.

    Shared by every test that only reads a result: never write into it (a test that reruns, forces
    or edits copies it first, :func:`copy_of_trained_run`)."""
    from run_helpers import bench as bench_cli
    from run_helpers import efficiency_measured

    root = tmp_path_factory.mktemp("trained-run")
    with efficiency_measured():  # measured, whichever test asks first
        res = bench_cli("run", *TRAINED_RUN_ARGS, "--results", root)
    assert res.exit_code == 0, res.output + str(res.exception)
    before = _tree(root)
    yield root
    assert _tree(root) == before, "a test changed the shared trained run: give it copy_of_trained_run instead"


@pytest.fixture()
def copy_of_trained_run(trained_run, tmp_path) -> Path:
    """A private copy of :func:`trained_run`'s results directory, for a test that changes it."""
    return Path(shutil.copytree(trained_run, tmp_path / "results"))
