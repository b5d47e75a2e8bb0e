"""The ``bench`` command line (typer + rich).

Every user error ends in ONE line on stderr naming the problem and the fix, and a non-zero exit;
everything is validated before any training starts.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from bench.cli.common import (as_dir, check_results_dir, check_writable_dir, console, err_console, fail, parse_seeds,
                              parse_sets, parse_sizes, resolve_runs, resolve_targets, split_list,
                              warn_plugin_problems)
from bench.errors import BenchError

__all__ = ["app", "main", "parse_sets", "split_list", "resolve_runs", "resolve_targets", "check_results_dir"]

app = typer.Typer(
    name="bench",
    help="Benchmark harness for spatiotemporal predictive learning (video prediction).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# the CLI prints refused registrations itself, one line each (see warn_plugin_problems)
warnings.filterwarnings("ignore", message=r".* refused: the name is already registered", category=UserWarning)


def _mount_subapps() -> None:
    from bench.cli.efficiency import audit, perf
    from bench.cli.data import data_app

    app.add_typer(data_app, name="data", help="List, check and download datasets.")
    app.command()(audit)
    app.command()(perf)



@app.command()
def run(
    methods: str = typer.Option(..., "--methods", "-m", help="Comma-separated method keys: name[:variant][:key=value], e.g. tau,tau:no-ddr"),
    datasets: str = typer.Option("mmnist", "--datasets", "-d", help="Comma-separated dataset names"),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds, e.g. 0,1,2"),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="Epochs (default: the paper's; 2 with --quick)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Batch size (default: the paper's)"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N"),
    quick: bool = typer.Option(False, "--quick", help="Smoke test of the paper-size model (at most 2 epochs, small splits); not a benchmark"),
    tiny: bool = typer.Option(False, "--tiny", help="The small configuration: paper recipes at small widths, learns in minutes on a CPU (results labelled tiny, never ranked with paper-size ones)"),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="Sequences per split, e.g. train=256,val=64,test=64"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override hyperparameters for every method: key=value (repeatable)"),
    pred_len: Optional[int] = typer.Option(None, "--pred-len", help="Frames to predict at evaluation (recursive rollout beyond the native length)"),
    results_: str = typer.Option("results", "--results", "-r", help="Results directory"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Data directory (default: $BENCH_DATA)"),
    data_seed: int = typer.Option(0, "--data-seed", help="Seed of the fixed validation/test sets"),
    force: bool = typer.Option(False, "--force", help="Re-run and replace existing results"),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or fp16 (autocast; gradient scaling for fp16)"),
    channels_last: bool = typer.Option(False, "--channels-last", help="Channels-last memory format (GPU convolutions)"),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the training step"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or per-epoch lines"),
) -> None:
    """Train and evaluate methods on datasets; one result directory per run.

    Examples:

      bench run --methods simvp --datasets mmnist --quick

      bench run --methods tau,tau:no-ddr,simvp --datasets mmnist --epochs 200 --seeds 0,1,2

      bench run --methods plasm:r0=0.9 --set lr=0.005 --device cuda

      torchrun --nproc_per_node=4 -m bench run --methods tau --precision bf16

    Each configuration (run spec: method, every hyperparameter, data settings, --tiny/--quick,
    precision) has its own directory, so different settings never share a result. An existing
    complete result is kept (skipped) unless --force; with --force it stays in place until the new
    run is complete. An interrupted run resumes from its last epoch checkpoint. Tuple values:
    --set incep_ker=3,5,7 or simvp:incep_ker=(3,5,7).
    """
    from bench.spec.run_spec import SpecOptions
    from bench.core.platform import resolve_device

    try:
        results = as_dir(results_, "--results")
        sets = parse_sets(set_)
        seed_list = parse_seeds(seeds)
        size_map = parse_sizes(sizes)
        if epochs is not None and epochs < 1:
            raise BenchError(f"--epochs must be at least 1 (got {epochs})")
        if batch_size is not None and batch_size < 1:
            raise BenchError(f"--batch-size must be at least 1 (got {batch_size})")
        keys, specs = resolve_targets(methods, datasets, sets)
        options = SpecOptions(epochs=epochs, batch_size=batch_size, quick=quick, tiny=tiny, sizes=size_map,
                              data_seed=data_seed, sets=sets, pred_len=pred_len, precision=precision,
                              data_dir=data_dir)
        runs = resolve_runs(keys, specs, seed_list, options)
        dev = resolve_device(device)
        check_results_dir(results)
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    warn_plugin_problems()

    outcomes = execute_sweep(runs, results, str(dev), force, data_dir, quiet, channels_last, compile_, quick)
    if outcomes is not None:
        print_outcomes(outcomes, results)


def execute_sweep(runs, results: Path, device: str, force: bool, data_dir: str | None, quiet: bool,
                  channels_last: bool = False, compile_: bool = False, quick: bool = False):
    """Run a validated sweep with a progress bar per run (or one line per epoch when not a terminal);
    None on ranks > 0 under torchrun."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from bench.run.distributed import env_rank
    from bench.run.options import RunOptions
    from bench.run.sweep import run_sweep

    quiet = quiet or env_rank() != 0  # under torchrun only rank 0 talks
    progress = None if quiet else Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True, refresh_per_second=4)
    log = (lambda s: None) if quiet else (lambda s: (progress.console if progress else console).print(s, markup=False))
    opts = RunOptions(results=results, device=device, force=force, data_dir=data_dir, log=log, progress=progress,
                      channels_last=channels_last, compile=compile_)
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
        raise fail(interrupted_message(runs, done, results, force), 130)
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


@app.command()
def demo(
    results_: str = typer.Option("results/demo", "--results", "-r", help="Results directory of the demo"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or per-epoch lines"),
) -> None:
    """The first five minutes: three methods at the small (--tiny) configuration on offline Moving MNIST,
    then the report (about 4 minutes on 2 CPU cores). Not a benchmark: the numbers are labelled tiny.
    """
    from bench.cli.demo import DEMO, NEXT_STEP
    from bench.report import write_report
    from bench.spec.run_spec import SpecOptions
    from bench.core.platform import resolve_device

    try:
        results = as_dir(results_, "--results")
        keys, specs = resolve_targets(DEMO.methods, DEMO.dataset, {})
        runs = resolve_runs(keys, specs, [0], SpecOptions(tiny=True, sizes=parse_sizes(DEMO.sizes),
                                                          epochs=DEMO.epochs, batch_size=DEMO.batch_size))
        check_results_dir(results)
        device = str(resolve_device("auto"))
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    console.print(f"demo: {DEMO.run_command(str(results))}, then bench report --results {results}", markup=False,
                  soft_wrap=True)
    outcomes = execute_sweep(runs, results, device, False, None, quiet)
    print_outcomes(outcomes, results)
    try:
        written = write_report(results, results / "report", ("md",))
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    figures = sorted(p for p in written if p.suffix == ".png")
    console.print(f"Report: {results / 'report' / 'report.md'} ({len(figures)} figures in "
                  f"{results / 'report' / 'figures'}). Next: {NEXT_STEP}", markup=False, soft_wrap=True)


@app.command("list")
def list_(
    pattern: str = typer.Argument("*", help="Wildcard over method names, e.g. 'tau*'"),
    hparams: Optional[str] = typer.Option(None, "--hparams", help="Show the resolved hyperparameters of a method key"),
    dataset: str = typer.Option("mmnist", "--dataset", help="Dataset for --hparams"),
    tiny: bool = typer.Option(False, "--tiny", help="With --hparams: the small (--tiny) configuration's values"),
) -> None:
    """List registered methods (with variants) and datasets."""
    from bench.spec.registry import get_dataset, get_method, list_datasets, list_methods, parse_method_key

    try:
        if hparams:
            key = parse_method_key(hparams)
            get_dataset(dataset)
            hp = key.resolve(dataset, tiny=tiny)
            declared = key.spec.declarations()
            table = Table(title=f"{key.label} on {dataset}" + (" (--tiny)" if tiny else ""))
            table.add_column("hyperparameter")
            table.add_column("value")
            table.add_column("valid values", overflow="fold")
            for k in sorted(hp):
                decl = declared.get(k)
                table.add_row(k, repr(hp[k]), (decl.describe() + (f" ({decl.doc})" if decl.doc else "")) if decl else "")
            console.print(table)
            return
        table = Table(title="methods")
        for col in ("method", "variants", "citation"):
            table.add_column(col, overflow="fold")
        for name in list_methods(pattern):
            spec = get_method(name)
            table.add_row(name, ", ".join(sorted(spec.variants)) or "-", spec.citation)
        console.print(table)
        dtable = Table(title="datasets")
        for col in ("dataset", "frames", "shape (C,H,W)", "description"):
            dtable.add_column(col, overflow="fold")
        for name in list_datasets():
            d = get_dataset(name)
            dtable.add_row(name, f"{d.in_frames} -> {d.out_frames}", str(d.frame_shape), d.description)
        console.print(dtable)
        warn_plugin_problems()
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)


@app.command()
def report(
    results_: str = typer.Option("results", "--results", "-r", help="Results directory to read"),
    out_: Optional[str] = typer.Option(None, "--out", "-o", help="Output directory (default: RESULTS/report)"),
    format_: str = typer.Option("md", "--format",
                                help="Comma-separated formats: md, csv, tex; only these are written (figures come "
                                     "with md)"),
    mse_line: Optional[float] = typer.Option(None, "--mse-line", help="Reference line on the learning curves, e.g. 35"),
    samples: str = typer.Option("0", "--samples",
                                help="Stored test sequences shown in the qualitative figures, e.g. 0,2 (each run "
                                     "stores the first few)"),
    per_frame: bool = typer.Option(False, "--per-frame", help="Also tabulate the metrics per predicted frame"),
    clipped: bool = typer.Option(False, "--clipped",
                                 help="Add MSE/MAE of predictions clipped to [0, 1] as separate columns"),
    no_figures: bool = typer.Option(False, "--no-figures", help="Tables only (no PNGs)"),
) -> None:
    """Render comparison, per-frame, ablation and efficiency tables and figures from stored runs (nothing is re-run)."""
    from bench.report import write_report

    formats = split_list(format_)
    bad = [f for f in formats if f not in ("md", "csv", "tex")]
    if bad or not formats:
        raise fail(f"--format {format_!r}: choose from md, csv, tex (comma-separated)")
    try:
        indices = [int(s) for s in split_list(samples)]
    except ValueError:
        indices = []
    if not indices or any(i < 0 for i in indices):
        raise fail(f"--samples {samples!r}: give test sequence indices >= 0, comma-separated, e.g. --samples 0,2")
    if mse_line is not None and not (math.isfinite(mse_line) and mse_line > 0):
        raise fail(f"--mse-line {mse_line}: give a positive MSE, e.g. --mse-line 35")
    try:
        results = as_dir(results_, "--results")
        if not results.is_dir():
            what = "is a file, not a directory" if results.exists() else "does not exist"
            raise BenchError(f"results directory {results} {what}: run `bench run ...` first, or pass --results DIR")
        out = as_dir(out_, "--out") if out_ is not None else results / "report"
        check_writable_dir(out, "report directory", "--out DIR")
        written = write_report(results, out, formats, mse_line, figures=not no_figures,
                               samples=indices, per_frame=per_frame, clipped=clipped)
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    for path in written:
        console.print(str(path), markup=False)


_mount_subapps()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BenchError as exc:  # anything not caught in a command
        err_console.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
