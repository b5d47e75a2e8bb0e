"""``bench status``: per run pending / running (epoch k of n, last validation MSE, s/epoch, time left) /
complete / failed (reason), and the job and its state for submitted runs (:mod:`bench.cluster.status`).

Reads the results store and the manifests only (no GPU, no submitit): it works on a login node, for
runs started by ``bench run`` as well as for submitted ones.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from bench.cli import selection as sel
from bench.cli.common import as_dir, console, err_console, fail
from bench.errors import BenchError

SHOWN = {"missing": "pending"}  # the store's "missing" is a pending run here
STYLE = {"complete": "green", "failed": "red", "running": "cyan", "pending": "yellow"}


def status(
    plan: Optional[str] = typer.Option(None, "--plan", help="Only the runs of this plan (see `bench plan`)"),
    results_: str = sel.RESULTS,
    jobs_: Optional[str] = typer.Option(None, "--jobs", help="Jobs folder of the submissions (default: <results>/_jobs)"),
    seeds: Optional[str] = sel.SEEDS,
    epochs: Optional[int] = sel.EPOCHS,
    batch_size: Optional[int] = sel.BATCH_SIZE,
    tiny: bool = sel.TINY,
    quick: bool = sel.QUICK,
    data_dir: Optional[str] = sel.DATA_DIR,
) -> None:
    """The state of every run: pending, running (epoch k of n, val MSE, s/epoch, time left), complete, failed.

    Examples:

      bench status --results results                    every run the store and the manifests know

      bench status --plan tau-table6 --results results  the runs of TAU Table 6

    The job id and its state (from sacct where available, else unknown) are shown for submitted runs.
    With --plan, the options that changed the plan's runs at submission (--epochs, --seeds, --tiny...)
    select the same runs here.
    """
    from bench.cluster.manifest import jobs_by_run, read_manifests
    from bench.cluster.status import manifest_runs, merge_runs, status_rows, store_runs

    try:
        results = as_dir(results_, "--results")
        jobs = as_dir(jobs_, "--jobs") if jobs_ is not None else results / "_jobs"
        docs, problems = read_manifests(jobs)
        elements = jobs_by_run(docs)
        if plan is not None:
            selection = sel.Selection(plan=plan, seeds=seeds, epochs=epochs, batch_size=batch_size, tiny=tiny,
                                      quick=quick, data_dir=data_dir)
            refs, unknown = plan_refs(selection, results)
        else:
            refs, unknown = merge_runs(store_runs(results), manifest_runs(elements, results)), []
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    for line in problems:
        err_console.print(f"warning: {line}", markup=False, soft_wrap=True)
    print_status(status_rows(refs, elements), unknown, results)


def plan_refs(selection: "sel.Selection", results: Path):
    """The plan's runs (as ``bench plan`` resolves them); runs of datasets without data are counted apart."""
    from bench import store
    from bench.cli.plan import plan_rows
    from bench.cluster.status import RunRef

    rows, _ = plan_rows(sel.load_selected_plan(selection), selection, results)
    refs = [RunRef(store.run_dir(results, r.spec), r.spec.dataset, r.spec.label, r.spec.seed, r.spec.epochs)
            for r in rows if r.state.state != "unknown"]
    return refs, [r for r in rows if r.state.state == "unknown"]


def print_status(rows: list, unknown: list, results: Path) -> None:
    from bench.plan.state import describe_progress

    table = Table(title=f"bench status: {len(rows)} run(s) in {results}")
    for col in ("dataset", "method", "seed", "state", "progress / reason", "job", "job state"):
        table.add_column(col, overflow="fold")
    for row in rows:
        state = SHOWN.get(row.state.state, row.state.state)
        detail = describe_progress(row.state.progress) if row.state.state == "running" else row.state.detail
        table.add_row(row.run.dataset, row.run.label, str(row.run.seed), f"[{STYLE.get(state, 'dim')}]{state}[/]",
                      detail or describe_progress(row.state.progress), row.job_id or "", row.job_state or "")
    console.print(table)
    counts = Counter(SHOWN.get(r.state.state, r.state.state) for r in rows)
    line = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("complete", "running", "pending", "failed"))
    if unknown:
        line += f"; {len(unknown)} run(s) of datasets without data here (state unknown: `bench plan` says which)"
    console.print(line, markup=False)
