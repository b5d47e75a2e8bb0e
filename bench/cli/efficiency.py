"""``bench audit`` and ``bench perf``: efficiency figures without training (mounted by :mod:`bench.cli.app`)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from bench.cli.common import check_results_dir, console, fail, resolve_targets, split_list
from bench.errors import BenchError


def audit(
    methods: str = typer.Option(..., "--methods", "-m", help="Comma-separated method keys"),
    datasets: str = typer.Option("mmnist", "--datasets", "-d", help="Comma-separated dataset names"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N"),
    fps_batch: int = typer.Option(16, "--fps-batch", help="Fixed batch for the fps measurement"),
    tiny: bool = typer.Option(False, "--tiny", help="Audit the small (--tiny) model sizes"),
    results: Path = typer.Option(Path("results"), "--results", "-r", help="Where to store the audit records"),
) -> None:
    """Params, fvcore FLOPs (and skipped operators) and test fps, without training; stored for the report.

    Example: bench audit --methods simvp,tau,convlstm,predrnn,plasm,plasm:released --datasets mmnist
    """
    from bench import store
    from bench.cost.audit import all_published_costs, audit_one
    from bench.core.platform import resolve_device

    from bench.spec.checks import check_count

    try:
        check_count("--fps-batch", fps_batch)
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
    audited = {k.label for k in keys}
    console.print("references: " + "; ".join(sorted({f"{c.key}: {c.source}" for c in all_published_costs()
                                                     if c.key in audited})), markup=False, soft_wrap=True)


MODEL_METHODS, MODEL_DATASETS = "simvp,tau,convlstm,predrnn,plasm", "mmnist"
#: --data: the methods whose needs are compared (the PredRNN extensions, PredRNN++, PredRNN-V2, MIM and E3D-LSTM,
#: cost more per sample than PredRNN, so they never need the most samples/s; --methods adds them)
DATA_METHODS = "simvp,tau,plasm,plasm:released,phydnet,mau,crevnet,convlstm,predrnn"
DATA_DATASETS = "mmnist,taxibj,kth,human36m,kitti_caltech"


def perf(
    methods: Optional[str] = typer.Option(None, "--methods", "-m", help=f"Comma-separated method keys (default "
                                          f"{MODEL_METHODS}; with --data {DATA_METHODS})"),
    datasets: Optional[str] = typer.Option(None, "--datasets", "-d", help=f"Comma-separated dataset names (default "
                                           f"{MODEL_DATASETS}; with --data {DATA_DATASETS})"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Batch of the timed train steps (default "
                                             "4; with --data the batch delivered, default 16)"),
    iters: int = typer.Option(3, "--iters", help="Timed train steps (after one warm-up step)"),
    metric_frames: int = typer.Option(1000, "--metric-frames", help="Frames for the SSIM throughput comparison"),
    tiny: bool = typer.Option(False, "--tiny", help="The small (--tiny) model sizes"),
    skip_metrics: bool = typer.Option(False, "--skip-metrics", help="Skip the SSIM throughput comparison"),
    precisions: str = typer.Option("fp32", "--precisions", help="Comma-separated precisions to time, e.g. fp32,bf16"),
    results: Path = typer.Option(Path("results"), "--results", "-r", help="Where to store the figures"),
    data: bool = typer.Option(False, "--data", help="Measure the data path instead: sequences/s delivered per "
                              "dataset and loader setting, beside the samples/s each method needs on a reference GPU"),
    workers: Optional[str] = typer.Option(None, "--workers", help="With --data: worker counts to measure, e.g. 0,1,2 "
                                          "(default 0..the number of cores)"),
    seconds: float = typer.Option(3.0, "--seconds", help="With --data: seconds per loader setting"),
    sustained_tflops: float = typer.Option(330.0, "--sustained-tflops", help="With --data: the reference GPU's "
                                           "sustained TFLOP/s (default: H100 SXM bf16, a third of its 989 peak)"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="With --data: measure your dataset files here "
                                           "instead of synthetic ones"),
    fixtures: Optional[Path] = typer.Option(None, "--fixtures", help="With --data: where the synthetic files are "
                                            "written once (default $BENCH_CACHE/perf-data-v1)"),
) -> None:
    """Benchmark (not a test): train samples/s and eval sequences/s per method at its real configuration,
    peak memory, and SSIM throughput (ours vs scikit-image on the same frames). With --data: what the data
    path delivers (sequences/s per dataset, 0..N worker processes) against what each method needs."""
    from bench.cost.perf import PerfSettings, perf_report

    from bench.core.platform import resolve_device
    from bench.spec.checks import check_count, check_precision, check_train_option

    if data:
        return perf_data(methods or DATA_METHODS, datasets or DATA_DATASETS,
                         16 if batch_size is None else batch_size, device,
                         (workers, seconds, sustained_tflops, data_dir, fixtures), results)
    methods, datasets = methods or MODEL_METHODS, datasets or MODEL_DATASETS
    batch_size = 4 if batch_size is None else batch_size
    try:
        check_train_option("--batch-size", "batch_size", batch_size)
        check_count("--iters", iters)
        check_count("--metric-frames", metric_frames)
        precision_list = [check_precision(p, "--precisions") for p in split_list(precisions)]
        if not precision_list:
            raise BenchError("--precisions is empty; give e.g. --precisions fp32,bf16")
        keys, specs = resolve_targets(methods, datasets, {})
        dev = resolve_device(device)
        check_results_dir(results)
        settings = PerfSettings(device=dev, batch_size=batch_size, iters=iters, tiny=tiny,
                                precisions=tuple(precision_list), metric_frames=None if skip_metrics else metric_frames)
        perf_report(keys, specs, settings, results, console)
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)


def perf_data(methods: str, datasets: str, batch_size: int, device: str, data_options: tuple, results: Path) -> None:
    """``bench perf --data`` (:mod:`bench.cost.data_speed`): validate, write the synthetic files once, measure."""
    from bench.core.platform import resolve_device
    from bench.cost.data_fixtures import default_root
    from bench.cost.data_speed import DataSpeedSettings, data_perf_report, fixture_sources
    from bench.datafiles import SOURCES, data_root
    from bench.spec.checks import check_train_option, check_workers

    workers, seconds, sustained, data_dir, fixtures = data_options
    log = lambda text: console.print(text, markup=False, soft_wrap=True)  # noqa: E731
    try:
        check_train_option("--batch-size", "batch_size", batch_size)
        counts = split_list(workers) if workers else [str(w) for w in range((os.cpu_count() or 1) + 1)]
        if not all(c.isdigit() for c in counts):
            raise BenchError(f"--workers {workers!r} is invalid: give worker counts such as 0,1,2")
        counts = [check_workers(int(c)) for c in counts]
        for flag, value in (("--seconds", seconds), ("--sustained-tflops", sustained)):
            if not math.isfinite(value) or value <= 0:
                raise BenchError(f"{flag} must be a positive number (got {value:g}); e.g. {flag} 3")
        keys, specs = resolve_targets(methods, datasets, {})
        dev = resolve_device(device)
        check_results_dir(results)
        if data_dir is not None:
            root = str(data_root(data_dir))
            sources = {s.name: f"your files under {root}" for s in specs
                       if s.name in SOURCES and SOURCES.get(s.name).present(Path(root))[0] != "generated"}
        else:
            root = str(fixtures or default_root())
            sources = fixture_sources([s.name for s in specs], Path(root), log)
        settings = DataSpeedSettings(batch_size=batch_size, seconds=seconds, workers=tuple(counts), device=dev,
                                     sustained_tflops=sustained, sources=sources, rebuild_caches=data_dir is None,
                                     log=log)
        data_perf_report(keys, specs, settings, root, results)
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
