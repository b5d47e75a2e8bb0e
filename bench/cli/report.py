"""``bench report``: tables and figures from stored runs into a report directory (nothing is re-run)."""

from __future__ import annotations

from typing import Optional

import typer

from bench.cli.common import as_dir, check_writable_dir, console, err_console, fail, split_list
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
    from bench.report import ReportOptions, write_report

    try:
        try:
            indices = tuple(int(s) for s in split_list(samples))
        except ValueError:
            raise BenchError(f"--samples {samples!r} is not a comma-separated list of integers; write e.g. "
                             f"--samples 0,2") from None
        options = ReportOptions(tuple(split_list(format_)), mse_line, not no_figures, indices, per_frame,
                                clipped).check()
        results = as_dir(results_, "--results")
        if not results.is_dir():
            what = "is a file, not a directory" if results.exists() else "does not exist"
            raise BenchError(f"results directory {results} {what}: run `bench run ...` first, or pass --results DIR")
        out = as_dir(out_, "--out") if out_ is not None else results / "report"
        check_writable_dir(out, "report directory", "--out DIR")
        skipped: list[str] = []
        written = write_report(results, out, options, skipped)
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    for path in written:
        console.print(str(path), markup=False)
    for line in skipped:  # on the terminal whatever the formats (only report.md has a place for them)
        err_console.print(f"skipped: {line}", markup=False, soft_wrap=True)
