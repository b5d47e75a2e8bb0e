"""``bench submit``'s steps: sort the runs, carry out ``--force``, build the jobs, write the manifest.

Before anything is submitted (:func:`triage`), every run's state is read from the results store:
complete runs are dropped (a job would only print "kept"), runs being trained now (their lock is
held) are dropped, and a committed result this version cannot read is refused unless ``--force``.

``--force`` is carried out HERE, at submission, never inside a job (:func:`force_at_submission`): under
each run's lock an interrupted ``--force`` swap is repaired (:func:`bench.store.recover_run`), the
previous result is moved aside to ``<jobs>/replaced/<submission>/<dataset>/<label>/<hash>/seed<k>``
(never deleted: delete it once the new one is in) and the work directory is removed, so that the
job starts the run afresh as a plain run. A requeued job re-runs the same pickle; carrying ``force``
into it would wipe the work directory at every requeue, and the run would never finish. Between
submission and the new result, the previous one is not in the store (``bench report`` does not count
it): the price of a re-run that waits in a queue.

Every job is a :class:`~bench.cluster.job.RunJob`; :mod:`bench.cluster.executors` submits them to Slurm
(one array) or runs them here (``--executor local``).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import store
from bench.cluster.job import JobSettings, RunJob
from bench.cluster.manifest import element
from bench.cluster.options import ClusterOptions
from bench.errors import BenchError
from bench.plan.state import run_state
from bench.spec.run_spec import SpecOptions


@dataclass
class Triage:
    """The runs of a selection, sorted by what ``bench submit`` does with them."""

    submit: list = field(default_factory=list)  # (RunSpec, DatasetSpec)
    complete: list = field(default_factory=list)
    running: list = field(default_factory=list)


def triage(runs: list, results: Path, force: bool) -> Triage:
    """Complete runs are dropped (unless ``force``), running ones always; an unusable committed result is
    a one-line error without ``force``."""
    out = Triage()
    for spec, data in runs:
        final = store.run_dir(results, spec)
        state = run_state(final, spec.epochs)
        if state.state == "running":
            out.running.append((spec, data))
        elif state.state == "complete" and not force:
            out.complete.append((spec, data))
        elif state.state == "failed" and store.committed_state(final) not in ("missing", "complete") and not force:
            raise BenchError(f"{spec.label} on {spec.dataset} seed {spec.seed}: {state.detail}")
        else:
            out.submit.append((spec, data))
    return out


def force_at_submission(runs: list, results: Path, aside: Path) -> list[dict[str, str]]:
    """``--force`` for ``runs``: previous results moved under ``aside``, work directories removed (under
    each run's lock); returns {"run_dir", "moved_to"} per result moved."""
    locks, moved = [], []
    try:
        for spec, _ in runs:  # every lock first: nothing changes unless all runs can be forced
            final = store.run_dir(results, spec)
            lock = store.RunLock(store.lock_path(final))
            if not lock.acquire():
                raise BenchError(f"{spec.label} on {spec.dataset} seed {spec.seed} started training meanwhile (its "
                                 f"lock is held); nothing was changed or submitted: wait for it, or stop it, then "
                                 f"submit again")
            locks.append((lock, final))
        for _, final in locks:
            store.recover_run(final)
            if os.path.lexists(final):
                target = aside / final.relative_to(results)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(final), str(target))
                moved.append({"run_dir": str(final), "moved_to": str(target)})
            store.remove_dir(store.partial_dir(final))
    finally:
        for lock, _ in locks:
            lock.release()
    return moved


def make_jobs(runs: list, options_of: dict[str, SpecOptions], settings: JobSettings) -> list[RunJob]:
    """One picklable job per run; ``options_of`` maps a spec hash to the SpecOptions it was resolved with."""
    return [RunJob(key=spec.label, dataset=spec.dataset, seed=spec.seed, options=options_of[spec.hash],
                   settings=settings, spec_hash=spec.hash) for spec, _ in runs]


def manifest_doc(runs: list, results: Path, opts: ClusterOptions, extra: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a submission (job ids filled in as jobs are submitted)."""
    return {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "executor": opts.executor,
            "command": " ".join(sys.argv), "results": str(results.resolve()), "jobs": str(opts.jobs.resolve()),
            "time_limit_min": opts.time_limit_min, "max_requeues": opts.requeues, "gpus_per_run": opts.gpus,
            "tasks_per_run": opts.tasks, "signal_delay_s": opts.signal_delay_s, **extra,
            "elements": [element(i, spec, store.run_dir(results, spec).resolve())
                         for i, (spec, _) in enumerate(runs)]}
