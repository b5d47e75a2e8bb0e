"""``bench submit`` after validation: carry out ``--force``, submit (or run locally), write the manifest.

If the submission itself fails (``sbatch`` refuses an account, a partition...), the results ``--force``
moved aside are moved back and nothing else changed: one line says why.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rich.table import Table

from bench.cli.common import console, fail
from bench.errors import BenchError


def launch(runs: list, resolved, opts, settings, force: bool) -> None:
    """Submit ``runs`` (validated and triaged) with ``opts``; ``settings``: how each job runs."""
    from bench.cluster.launch import force_at_submission, make_jobs, manifest_doc
    from bench.cluster.manifest import new_manifest_path

    results = Path(settings.results)
    manifest = new_manifest_path(opts.jobs)
    try:
        replaced = force_at_submission(runs, results, opts.jobs / "replaced" / manifest.stem) if force else []
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    jobs = make_jobs(runs, resolved.options, settings)
    doc = manifest_doc(runs, results, opts, {"plan": resolved.plan.name if resolved.plan else None,
                                             "replaced": replaced})
    if opts.executor == "slurm":
        submit_to_slurm(jobs, opts, doc, manifest, replaced)
    else:
        run_here(jobs, opts, doc, manifest)


def submit_to_slurm(jobs: list, opts, doc: dict, manifest: Path, replaced: list[dict]) -> None:
    from bench.cluster.executors import submit_slurm
    from bench.cluster.manifest import write_manifest

    try:
        ids = submit_slurm(jobs, opts)
    except Exception as exc:  # noqa: BLE001 - sbatch's refusal, in one line
        put_back(replaced)
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise fail(f"the submission failed ({type(exc).__name__}: {lines[-1] if lines else ''}); nothing was "
                   f"submitted{' and the moved results are back in place' if replaced else ''}", 1)
    for item, job_id in zip(doc["elements"], ids):
        item["job_id"] = job_id
    write_manifest(manifest, doc)
    say_replaced(replaced, manifest)
    array = ids[0].split("_")[0]
    console.print(f"submitted {len(ids)} run(s) as Slurm job {array}"
                  f"{f' (array elements 0-{len(ids) - 1})' if len(ids) > 1 else ''}; manifest {manifest}",
                  markup=False, soft_wrap=True)
    console.print(f"watch: bench status --results {doc['results']} --jobs {opts.jobs}    report: bench report "
                  f"--results {doc['results']}", markup=False, soft_wrap=True)


def run_here(jobs: list, opts, doc: dict, manifest: Path) -> None:
    """``--executor local``: run the jobs on this machine, one per slot, rewriting the manifest as they start."""
    from bench.cluster.executors import run_local
    from bench.cluster.manifest import write_manifest

    write_manifest(manifest, doc)
    say_replaced(doc["replaced"], manifest)
    items = doc["elements"]
    outcomes: dict[int, tuple[str, str]] = {}

    def started(index: int, job_id: str, gpus: tuple[int, ...]) -> None:
        items[index]["job_id"] = job_id
        write_manifest(manifest, doc)
        where = f"GPUs {','.join(map(str, gpus))}" if gpus else "CPU"
        console.print(f"started {items[index]['label']} on {items[index]['dataset']} seed {items[index]['seed']}: "
                      f"local job {job_id} ({where})", markup=False)

    def ended(index: int, status: str, detail: str) -> None:
        run = f"{items[index]['label']} on {items[index]['dataset']} seed {items[index]['seed']}"
        outcomes[index] = (status, detail.removeprefix(f"{run}: "))
        console.print(f"{status} {run}: {outcomes[index][1]}", markup=False, soft_wrap=True)

    console.print(f"running {len(jobs)} job(s) here (manifest {manifest}); `bench status --results {doc['results']}` "
                  f"shows them", markup=False, soft_wrap=True)
    try:
        run_local(jobs, opts, started, ended)
    except KeyboardInterrupt:
        raise fail("interrupted: the local jobs got Ctrl-C too; no file is half-written; `bench submit` again (same "
                   "options) resumes the unfinished runs from their last epoch", 130)
    table = Table(title=f"bench submit --executor local: {len(jobs)} run(s)")
    for col in ("dataset", "method", "seed", "status", "detail"):
        table.add_column(col, overflow="fold")
    for i, item in enumerate(items):
        status, detail = outcomes.get(i, ("?", ""))
        table.add_row(item["dataset"], item["label"], str(item["seed"]), status, detail)
    console.print(table)
    unfinished = sum(status not in ("complete", "skipped") for status, _ in outcomes.values())
    if unfinished:  # failed, or a job that ended without its run (stopped and not requeued)
        raise fail(f"{unfinished} of {len(jobs)} run(s) failed or did not finish (see the table; logs under "
                   f"{opts.jobs / 'logs'})", 1)


def say_replaced(replaced: list[dict], manifest: Path) -> None:
    if replaced:
        where = Path(replaced[0]["moved_to"]).parents[3]
        console.print(f"--force: {len(replaced)} previous result(s) moved to {where} (delete them once the new "
                      f"results are in; the manifest {manifest} lists them)", markup=False, soft_wrap=True)


def put_back(replaced: list[dict]) -> None:
    """Undo ``--force``'s moves (a submission that failed must change nothing)."""
    for item in replaced:
        if not os.path.lexists(item["run_dir"]):
            shutil.move(item["moved_to"], item["run_dir"])
