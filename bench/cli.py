"""The ``bench`` command line (typer + rich).

Every user error ends in ONE line on stderr naming the problem and the fix, and a non-zero exit;
everything is validated before any training starts.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from bench.errors import BenchError

app = typer.Typer(
    name="bench",
    help="Benchmark harness for spatiotemporal predictive learning (video prediction).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
# the CLI prints refused registrations itself, one line each (see warn_plugin_problems)
warnings.filterwarnings("ignore", message=r".* refused: the name is already registered", category=UserWarning)


def _mount_subapps() -> None:
    from bench.data_cli import data_app

    app.add_typer(data_app, name="data", help="List, check and download datasets.")


_mount_subapps()


def fail(message: str, code: int = 2) -> "typer.Exit":
    err_console.print(f"error: {message}", markup=False, soft_wrap=True)
    return typer.Exit(code)


def warn_plugin_problems() -> None:
    """One line on stderr per plug-in that failed to load or whose registration was refused."""
    from bench.registry import plugin_errors

    for line in plugin_errors():
        err_console.print(f"warning: {line}", markup=False, soft_wrap=True)


def split_list(text: str | None) -> list[str]:
    """Comma-separated items, ignoring commas inside brackets (``simvp:incep_ker=(3,5),tau``)."""
    from bench.hparams import split_top_level

    return split_top_level(text or "")


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in split_list(text)]
    except ValueError:
        raise BenchError(f"--seeds {text!r} is not a comma-separated list of integers; write e.g. --seeds 0,1,2") from None
    if not seeds or any(s < 0 for s in seeds):
        raise BenchError(f"--seeds {text!r} must list non-negative integers; write e.g. --seeds 0,1")
    return seeds


def parse_sizes(text: str | None) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for part in split_list(text):
        name, _, value = part.partition("=")
        value = value.strip()
        if name.strip() not in ("train", "val", "test") or not (value.isascii() and value.isdigit()) or int(value) < 1:
            raise BenchError(f"--sizes {text!r}: write split=count with splits train, val, test and positive counts, "
                             f"e.g. --sizes train=256,val=64,test=64")
        sizes[name.strip()] = int(value)
    return sizes


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``--set`` options -> {key: value} (``--set incep_ker=3,5,7`` is a tuple; see bench.hparams)."""
    from bench.hparams import parse_set_items

    return parse_set_items(items)


def check_results_dir(path: Path) -> None:
    """The results directory must be a writable directory (created if missing)."""
    check_writable_dir(path, "results directory", "--results DIR")


def check_writable_dir(path: Path, what: str, flag: str) -> None:
    """``path`` must be a directory we can write (created if missing); one-line BenchError otherwise."""
    if path.exists() and not path.is_dir():
        raise BenchError(f"{what} {path} is a file, not a directory; pass {flag} with a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create {what} {path}: {exc.strerror}; pass {flag} with a writable directory") from None
    try:  # a real probe: permission bits do not tell for root or read-only mounts
        import tempfile

        with tempfile.NamedTemporaryFile(dir=path, prefix=".bench-probe-"):
            pass
    except OSError as exc:
        raise BenchError(f"{what} {path} is not writable ({exc.strerror}); fix its permissions or pass {flag} "
                         f"with a writable directory") from None


def resolve_targets(methods: str, datasets: str, sets: dict[str, Any]):
    """Parse and validate ``--methods``/``--datasets`` (and ``--set`` against every method)."""
    from bench.registry import get_dataset, parse_method_key

    keys = [parse_method_key(m) for m in split_list(methods)]
    if not keys:
        raise BenchError("no method given; pass --methods, e.g. --methods simvp (see `bench list`)")
    specs = [get_dataset(d) for d in split_list(datasets)]
    if not specs:
        raise BenchError("no dataset given; pass --datasets, e.g. --datasets mmnist (see `bench list`)")
    for key in keys:  # validate --set keys against every method/dataset before training anything
        for data in specs:
            key.resolve(data.name, sets)
    return keys, specs


def resolve_runs(keys, datasets, seeds: list[int], options) -> list:
    """Every (RunSpec, DatasetSpec) of a sweep, validated and buildable, before anything trains."""
    from bench.run_spec import check_buildable, resolve_run_spec

    runs = []
    for data in datasets:
        for key in keys:
            specs = [resolve_run_spec(key, data, seed, options) for seed in seeds]
            check_buildable(specs[0], data)
            runs += [(spec, data) for spec in specs]
    return runs


@app.command()
def run(
    methods: str = typer.Option(..., "--methods", "-m", help="Comma-separated method keys: name[:variant][:key=value], e.g. tau,tau:no-ddr"),
    datasets: str = typer.Option("mmnist", "--datasets", "-d", help="Comma-separated dataset names"),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds, e.g. 0,1,2"),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="Epochs (default: the paper's; 2 with --quick)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Batch size (default: the paper's)"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N"),
    quick: bool = typer.Option(False, "--quick", help="Smoke test of the paper-size model (at most 2 epochs, small splits); not a benchmark"),
    tiny: bool = typer.Option(False, "--tiny", help="Smoke-test model sizes (results flagged, never ranked with real ones)"),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="Sequences per split, e.g. train=256,val=64,test=64"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override hyperparameters for every method: key=value (repeatable)"),
    pred_len: Optional[int] = typer.Option(None, "--pred-len", help="Frames to predict at evaluation (recursive rollout beyond the native length)"),
    results: Path = typer.Option(Path("results"), "--results", "-r", help="Results directory"),
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from bench.run_spec import SpecOptions
    from bench.runner import RunOptions, resolve_device
    from bench.sweep import run_sweep

    try:
        sets = parse_sets(set_)
        seed_list = parse_seeds(seeds)
        size_map = parse_sizes(sizes)
        if epochs is not None and epochs < 1:
            raise BenchError(f"--epochs must be at least 1 (got {epochs})")
        if batch_size is not None and batch_size < 1:
            raise BenchError(f"--batch-size must be at least 1 (got {batch_size})")
        if pred_len is not None and pred_len < 1:
            raise BenchError(f"--pred-len must be at least 1 (got {pred_len})")
        if data_seed < 0:
            raise BenchError(f"--data-seed must be a non-negative integer (got {data_seed})")
        if precision not in ("fp32", "bf16", "fp16"):
            raise BenchError(f"--precision {precision!r}: choose fp32, bf16 or fp16")
        keys, specs = resolve_targets(methods, datasets, sets)
        options = SpecOptions(epochs=epochs, batch_size=batch_size, quick=quick, tiny=tiny, sizes=size_map,
                              data_seed=data_seed, sets=sets, pred_len=pred_len, precision=precision)
        runs = resolve_runs(keys, specs, seed_list, options)
        dev = resolve_device(device)
        check_results_dir(results)
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    warn_plugin_problems()

    from bench.distributed import env_rank

    quiet = quiet or env_rank() != 0  # under torchrun only rank 0 talks
    progress = None if quiet else Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)
    log = (lambda s: None) if quiet else (lambda s: (progress.console if progress else console).print(s, markup=False))
    opts = RunOptions(results=results, device=str(dev), force=force, data_dir=data_dir, log=log, progress=progress,
                      channels_last=channels_last, compile=compile_)
    if quick and not quiet:
        log("--quick: a smoke test of the paper-size configuration (at most 2 epochs, small splits), not a "
            "benchmark; its numbers are labelled quick and never compared with published ones")
    try:
        if progress is not None:
            with progress:
                outcomes = run_sweep(runs, opts)
        else:
            outcomes = run_sweep(runs, opts)
    except KeyboardInterrupt:
        raise fail("interrupted: committed results are intact and no file is half-written; run the same "
                   "command again to resume from the last completed epoch", 130)

    if env_rank() != 0:
        return
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


@app.command("list")
def list_(
    pattern: str = typer.Argument("*", help="Wildcard over method names, e.g. 'tau*'"),
    hparams: Optional[str] = typer.Option(None, "--hparams", help="Show the resolved hyperparameters of a method key"),
    dataset: str = typer.Option("mmnist", "--dataset", help="Dataset for --hparams"),
) -> None:
    """List registered methods (with variants) and datasets."""
    from bench.registry import get_dataset, get_method, list_datasets, list_methods, parse_method_key

    try:
        if hparams:
            key = parse_method_key(hparams)
            get_dataset(dataset)
            hp = key.resolve(dataset)
            declared = key.spec.declarations()
            table = Table(title=f"{key.label} on {dataset}")
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
def audit(
    methods: str = typer.Option(..., "--methods", "-m", help="Comma-separated method keys"),
    datasets: str = typer.Option("mmnist", "--datasets", "-d", help="Comma-separated dataset names"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N"),
    fps_batch: int = typer.Option(16, "--fps-batch", help="Fixed batch for the fps measurement"),
    tiny: bool = typer.Option(False, "--tiny", help="Audit the smoke-test model sizes"),
    results: Path = typer.Option(Path("results"), "--results", "-r", help="Where to store the audit records"),
) -> None:
    """Params, fvcore FLOPs (and skipped operators) and test fps, without training; stored for the report.

    Example: bench audit --methods simvp,tau,convlstm,predrnn,plasm,plasm:released --datasets mmnist
    """
    from bench import results as store
    from bench.audit import REFERENCE_COST, audit_one
    from bench.runner import resolve_device

    try:
        if fps_batch < 1:
            raise BenchError(f"--fps-batch must be at least 1 (got {fps_batch})")
        keys, specs = resolve_targets(methods, datasets, {})
        dev = resolve_device(device)
        check_results_dir(results)
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    table = Table(title=f"efficiency audit on {dev} (FLOPs: fvcore, one sample; fps: batch {fps_batch})")
    width = max(len(k.label) for k in keys)
    for col in ("dataset", "method", "params (M)", "ref (M)", "diff", "FLOPs (G)", "ref (G)", "diff", "fps"):
        table.add_column(col, no_wrap=True, min_width=width if col == "method" else None,
                         justify="left" if col in ("dataset", "method") else "right")
    skipped_lines, explained = [], []
    for data in specs:
        for key in keys:
            try:
                rec = audit_one(key, data, str(dev), tiny=tiny, fps_batch=fps_batch)
            except BenchError as exc:
                raise fail(str(exc), exc.exit_code)
            store.atomic_write_json(store.audit_path(results, data.name, key.label + (":tiny" if tiny else "")), rec)
            ref = rec.get("reference") or {}
            pct = lambda v: f"{v:+.1%}" if v is not None else "-"
            table.add_row(
                data.name, key.label, f"{rec['params'] / 1e6:.2f}",
                f"{ref['params'] / 1e6:.1f}" if ref.get("params") else "-", pct(ref.get("params_diff")),
                f"{rec['flops'] / 1e9:.2f}", f"{ref['flops'] / 1e9:.2f}" if ref else "-", pct(ref.get("flops_diff")),
                f"{rec['fps']:.1f}")
            skipped_lines.append(f"{data.name} {key.label}: " + (", ".join(rec["flops_skipped"]) or "none"))
            for line in ref.get("explanation") or []:
                explained.append(f"{data.name} {key.label}: {line}")
    # piped output (logs, CI) has no terminal width: never truncate the figures to 80 columns there
    (console if console.is_terminal else Console(highlight=False, width=max(console.width, 120))).print(table)
    if explained:
        console.print("where the differences to the reference come from (measured):", markup=False)
        for line in explained:
            console.print(f"  {line}", markup=False, soft_wrap=True)
    console.print("operators fvcore skipped (not counted in FLOPs):", markup=False)
    for line in skipped_lines:
        console.print(f"  {line}", markup=False)
    console.print("references: " + "; ".join(sorted({f"{m}: {src}" for (m, _), (_, _, src) in REFERENCE_COST.items()})),
                  markup=False, soft_wrap=True)


@app.command()
def report(
    results: Path = typer.Option(Path("results"), "--results", "-r", help="Results directory to read"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default: RESULTS/report)"),
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
    try:
        check_writable_dir(out or results / "report", "report directory", "--out DIR")
        written = write_report(results, out or results / "report", formats, mse_line, figures=not no_figures,
                               samples=indices, per_frame=per_frame, clipped=clipped)
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    for path in written:
        console.print(str(path), markup=False)


@app.command()
def perf(
    methods: str = typer.Option("simvp,tau,convlstm,predrnn,plasm", "--methods", "-m", help="Comma-separated method keys"),
    datasets: str = typer.Option("mmnist", "--datasets", "-d", help="Comma-separated dataset names"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N"),
    batch_size: int = typer.Option(4, "--batch-size", "-b", help="Batch of the timed train steps"),
    iters: int = typer.Option(3, "--iters", help="Timed train steps (after one warm-up step)"),
    metric_frames: int = typer.Option(1000, "--metric-frames", help="Frames for the SSIM throughput comparison"),
    tiny: bool = typer.Option(False, "--tiny", help="Smoke-test model sizes"),
    skip_metrics: bool = typer.Option(False, "--skip-metrics", help="Skip the SSIM throughput comparison"),
    precisions: str = typer.Option("fp32", "--precisions", help="Comma-separated precisions to time, e.g. fp32,bf16"),
    results: Path = typer.Option(Path("results"), "--results", "-r", help="Where to store the figures"),
) -> None:
    """Benchmark (not a test): train samples/s and eval sequences/s per method at its real configuration,
    peak memory, and SSIM throughput (ours vs scikit-image on the same frames)."""
    from bench.perf import perf_report

    try:
        if batch_size < 1 or iters < 1 or metric_frames < 1:
            raise BenchError("--batch-size, --iters and --metric-frames must be at least 1")
        keys, specs = resolve_targets(methods, datasets, {})
        from bench.runner import resolve_device

        dev = resolve_device(device)
        check_results_dir(results)
        precision_list = split_list(precisions)
        if not precision_list or any(p not in ("fp32", "bf16", "fp16") for p in precision_list):
            raise BenchError(f"--precisions {precisions!r}: choose from fp32, bf16, fp16 (comma-separated)")
        perf_report(keys, specs, dev, batch_size, iters, None if skip_metrics else metric_frames, tiny, results, console,
                    precisions=precision_list)
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BenchError as exc:  # anything not caught in a command
        err_console.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
