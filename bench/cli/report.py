"""``bench report``: tables and figures from stored runs into a report directory (nothing is re-run)."""

from __future__ import annotations

import math
from typing import Optional

import typer

from bench.cli.common import as_dir, check_writable_dir, console, fail, split_list
from bench.errors import BenchError


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
