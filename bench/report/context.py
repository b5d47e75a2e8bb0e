"""What every section reads: the loaded groups, audits, published numbers, options and output places."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError
from bench.metrics.declarations import METRICS
from bench.report.published import Published, load_published
from bench.report.groups import Group, make_groups
from bench.report.runs import AuditRecord, Inputs, load_inputs

FORMATS = ("md", "csv", "tex")


@dataclass(frozen=True)
class ReportOptions:
    """What ``bench report`` renders besides the tables it always renders.

    ``formats``: any of md, csv, tex (only those are written). ``mse_line``: a reference line (display
    scale) on the learning curves. ``figures``: draw the PNGs (they are linked from report.md, so
    only with md). ``samples``: indices of the stored test sequences shown in the qualitative grids.
    ``per_frame_tables``: tabulate the per-frame metrics too (the per-frame figure is always drawn).
    ``clipped``: add the clipped MSE/MAE columns (shown anyway for runs that have no other MSE/MAE).
    """

    formats: tuple[str, ...] = ("md",)
    mse_line: float | None = None
    figures: bool = True
    samples: tuple[int, ...] = (0,)
    per_frame_tables: bool = False
    clipped: bool = False

    def check(self) -> "ReportOptions":
        """These options, or a one-line BenchError naming the option and the fix (the one place of these
        rules: ``bench report`` only parses its options' text)."""
        unknown = sorted(set(self.formats) - set(FORMATS))
        if unknown or not self.formats:
            raise BenchError(f"--format: unknown report format(s) {', '.join(unknown) or '(none)'}; choose from "
                             f"{', '.join(FORMATS)} (comma-separated)")
        bad = [s for s in self.samples if isinstance(s, bool) or not isinstance(s, int) or s < 0]
        if bad or not self.samples:
            raise BenchError(f"--samples {','.join(map(str, self.samples)) or '(none)'}: give test sequence indices "
                             ">= 0, comma-separated, e.g. --samples 0,2")
        if self.mse_line is not None and not (math.isfinite(self.mse_line) and self.mse_line > 0):
            raise BenchError(f"--mse-line {self.mse_line}: give a positive MSE, e.g. --mse-line 35")
        return self


@dataclass
class Context:
    results_dir: Path
    out_dir: Path
    published: Published
    groups: list[Group]
    audits: dict[tuple[str, str, bool], AuditRecord]
    problems: list[str]
    options: ReportOptions = field(default_factory=ReportOptions)
    figures: dict[Path, bytes] = field(default_factory=dict)  # drawn figures, written with the report

    @property
    def mse_line(self) -> float | None:
        return self.options.mse_line

    def scale(self, dataset: str) -> dict[str, float]:
        """Metric -> display factor of ``dataset`` (clipped columns share their metric's factor)."""
        scale = self.published.display_scale(dataset)
        for metric in METRICS:  # a clipped variant is shown at its metric's scale (bench.metrics.declarations)
            if metric.scale_key != metric.key and metric.scale_key in scale:
                scale[metric.key] = scale[metric.scale_key]
        return scale


def build_context(results_dir: Path, out_dir: Path, options: ReportOptions | float | None = None
                  ) -> tuple[Context, Inputs]:
    """Load everything the report needs: (context with the comparability groups, the inputs read).

    ``options`` may be a :class:`ReportOptions` or, for brevity, just the ``mse_line``.
    """
    if not isinstance(options, ReportOptions):
        options = ReportOptions(mse_line=options)
    inputs = load_inputs(Path(results_dir))
    ctx = Context(Path(results_dir), Path(out_dir), load_published(), make_groups(inputs.complete), inputs.audits,
                  inputs.problems, options.check())
    return ctx, inputs


__all__ = ["Context", "ReportOptions", "build_context", "FORMATS"]
