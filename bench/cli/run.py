"""``bench run``: validate a sweep before anything trains, run it with progress bars, summarise it.

Ctrl-C ends the sweep with one line saying what is on disk (:func:`interrupted_message`); so do SIGTERM
and the pre-timeout signal, at the next step boundary (:mod:`bench.run.stop`), with exit code 128 + the
signal's number.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from bench.cli import selection as sel
from bench.cli.common import as_dir, check_results_dir, console, fail, warn_plugin_problems
from bench.errors import BenchError
from bench.run.options import RunOptions


def run(
    methods: Optional[str] = sel.METHODS,
    datasets: Optional[str] = sel.DATASETS,
    plan: Optional[str] = sel.PLAN,
    seeds: Optional[str] = sel.SEEDS,
    epochs: Optional[int] = sel.EPOCHS,
    batch_size: Optional[int] = sel.BATCH_SIZE,
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N"),
    quick: bool = sel.QUICK,
    tiny: bool = sel.TINY,
    sizes: Optional[str] = sel.SIZES,
    set_: Optional[list[str]] = sel.SET,
    pred_len: Optional[int] = sel.PRED_LEN,
    results_: str = sel.RESULTS,
    data_dir: Optional[str] = sel.DATA_DIR,
    data_seed: Optional[int] = sel.DATA_SEED,
    force: bool = typer.Option(False, "--force", help="Re-run and replace existing results"),
    precision: Optional[str] = sel.PRECISION,
    channels_last: bool = typer.Option(False, "--channels-last", help="Channels-last memory format (GPU convolutions)"),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the training step"),
    workers: Optional[int] = typer.Option(
        None, "--workers", help="Data-loading worker processes (0: in the training process). Default: 0 on the "
        "CPU; on CUDA automatic (cached frames are gathered in the training process, decoding and generation use "
        "every core). Never changes a batch or the run spec"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or per-epoch lines"),
) -> None:
    """Train and evaluate methods on datasets; one result directory per run.

    Examples:

      bench run --methods simvp --datasets mmnist --quick

      bench run --methods tau,tau:no-ddr,simvp --datasets mmnist --epochs 200 --seeds 0,1,2

      bench run --methods plasm:r0=0.9 --set lr=0.005 --device cuda

      bench run --plan tau-table6 --device cuda          (a paper table's runs: see `bench plan`)

      torchrun --nproc_per_node=4 -m bench run --methods tau --precision bf16

    Each configuration (run spec: method, every hyperparameter, data settings, --tiny/--quick,
    precision) has its own directory, so different settings never share a result. An existing
    complete result is kept (skipped) unless --force; with --force it stays in place until the new
    run is complete. An interrupted run resumes from its last epoch checkpoint; SIGTERM and SIGUSR2
    (a scheduler's stop and pre-timeout signals) stop it cleanly at the next step. Tuple values:
    --set incep_ker=3,5,7 or simvp:incep_ker=(3,5,7).
    """
    from bench.core.platform import resolve_device
    from bench.run.prepared import check_channels_last
    from bench.spec.checks import check_workers

    selection = sel.Selection(methods=methods, datasets=datasets, plan=plan, seeds=seeds, epochs=epochs,
                              batch_size=batch_size, quick=quick, tiny=tiny, sizes=sizes, sets=set_,
                              pred_len=pred_len, data_dir=data_dir, data_seed=data_seed, precision=precision)
    try:
        results = as_dir(results_, "--results")
        runs = sel.resolve_selection(selection).runs
        if channels_last:
            for spec, data in {spec.label: (spec, data) for spec, data in runs}.values():
                check_channels_last(spec, data)
        dev = resolve_device(device)
        try:
            check_results_dir(results)
        except BenchError:
            if force or not all_kept(results, runs):  # a finished sweep is "kept" on a read-only results directory
                raise
        if workers is not None:
            check_workers(workers)
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    warn_plugin_problems()

    opts = RunOptions(results=results, device=str(dev), force=force, data_dir=data_dir, channels_last=channels_last,
                      compile=compile_, workers=workers)
    outcomes = execute_sweep(runs, opts, quiet, any(spec.quick for spec, _ in runs))
    if outcomes is not None:
        print_outcomes(outcomes, results)


def all_kept(results: Path, runs) -> bool:
    """Whether every run of the sweep has a complete, settled result under ``results`` (nothing to write)."""
    from bench import store
    from bench.run.runner import finished_and_settled

    return results.is_dir() and all(finished_and_settled(store.run_dir(results, spec)) for spec, _ in runs)


def execute_sweep(runs, opts: RunOptions, quiet: bool, quick: bool = False):
    """Run a validated sweep under ``opts`` with a progress bar per run (or one line per epoch when not a
    terminal); None on ranks > 0 under torchrun."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from bench.run.distributed import env_rank
    from bench.run.stop import RunStopped
    from bench.run.sweep import run_sweep

    quiet = quiet or env_rank() != 0  # under torchrun only rank 0 talks
    progress = None if quiet else Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True, refresh_per_second=4)
    log = (lambda s: None) if quiet else (lambda s: (progress.console if progress else console).print(s, markup=False))
    opts = replace(opts, log=log, progress=progress)
    if quick and not quiet:
        log("--quick: a smoke test of the paper-size configuration (at most 2 epochs, small splits), not a "
            "benchmark; its numbers are labelled quick and never compared with published ones")
    done: list = []
    try:
        if progress is not None:
            with progress:
                outcomes = run_sweep(runs, opts, done)
        else:
            outcomes = run_sweep(runs, opts, done)
    except KeyboardInterrupt:
        raise fail(interrupted_message(runs, done, opts.results, opts.force), 130)
    except RunStopped as stopped:  # SIGTERM or the pre-timeout signal (bench.run.stop)
        message = interrupted_message(runs, done, opts.results, opts.force).removeprefix("interrupted")
        raise fail(f"{stopped.describe()}{message}", 128 + stopped.signum)
    return None if env_rank() != 0 else outcomes


def interrupted_message(runs, done, results: Path, force: bool) -> str:
    """What a Ctrl-C left on disk, in one line: ``done`` are the outcomes of the runs that ended, the next
    run was interrupted. A run interrupted after it finished (its result written, its commit not yet
    done or half done) is the new result from now on: the next ``bench run`` completes the commit, with
    or without --force, and ``bench report`` counts it already."""
    from bench import store

    where = ""
    if len(done) < len(runs):
        spec = runs[len(done)][0]
        final = store.run_dir(results, spec)
        if store.has_complete_result(store.partial_dir(final)) or store.replaced_dir(final).is_dir():
            where = f"{spec.label} on {spec.dataset} seed {spec.seed}"
    if not force:
        finished = (f"the run of {where} had finished: the next `bench run` commits its result (`bench report` "
                    f"counts it already); " if where else "")
        return (f"interrupted: {finished}committed results are intact and no file is half-written; run the same "
                f"command again to resume from the last completed epoch")
    replaced = sum(o.status == "complete" for o in done)
    changed = []
    if replaced:
        changed.append(f"{replaced} forced re-run(s) finished and replaced the previous results")
    if where:
        changed.append(f"the re-run of {where} had finished{' too' if replaced else ''}: its new result replaces "
                       f"the previous one (the next `bench run` completes the swap, with or without --force; "
                       f"`bench report` counts it already)")
    if not changed:
        changed.append("the previous results are intact")
    elif len(runs) - len(done) - bool(where) > 0:
        changed.append("the previous results of the runs not re-run yet are intact")
    return (f"interrupted: no file is half-written; {'; '.join(changed)}; run the same command again to start the "
            f"forced re-runs over, or drop --force to keep the results now in place")


def print_outcomes(outcomes, results: Path) -> None:
    """The sweep's summary table; a non-zero exit when a run failed."""
    table = Table(title=f"bench run: {len(outcomes)} run(s) -> {results}")
    for col in ("dataset", "method", "seed", "status", "detail"):
        table.add_column(col, overflow="fold")
    for o in outcomes:
        style = {"failed": "red", "skipped": "yellow"}.get(o.status, "green")
        table.add_row(o.spec.dataset, o.spec.label, str(o.spec.seed), f"[{style}]{o.status}[/{style}]", o.detail)
    console.print(table)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise fail(f"{len(failed)} of {len(outcomes)} run(s) failed (see the table above; records in "
                   f"<run>.partial/result.json)", 1)
