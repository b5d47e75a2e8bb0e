"""A sweep: every resolved run spec in turn; one failing run never sinks the others.

:func:`bench.run.runner.run_one` turns a run's failure into a ``failed`` record and an outcome
(:mod:`bench.run.failure`), so the sweep goes on; a KeyboardInterrupt stops it at once, and committed
results are never touched by an unfinished run (see :mod:`bench.store.layout`).
"""

from __future__ import annotations

from typing import Sequence

from bench.spec.registry import DatasetSpec
from bench.spec.run_spec import RunSpec
from bench.run.options import Outcome, RunOptions
from bench.run.runner import run_one


def run_sweep(runs: Sequence[tuple[RunSpec, DatasetSpec]], opts: RunOptions,
              done: list[Outcome] | None = None) -> list[Outcome]:
    """Run every (spec, dataset) in order; failures are recorded by the runner and the sweep goes on.

    ``done`` (optional) receives each outcome as it comes, so that after a KeyboardInterrupt the caller
    knows which runs finished (and which run was interrupted: the next one)."""
    done = [] if done is None else done
    for spec, data in runs:
        done.append(run_one(spec, data, opts))
    return done
