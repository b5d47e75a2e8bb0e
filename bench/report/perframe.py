"""Per-frame tables (``bench report --per-frame``): each test metric at each predicted frame t'.

One table per comparability group and metric; rows are our run specifications (mean ± std over
seeds at that frame), columns are predicted frames. Up to :data:`MAX_FRAME_COLUMNS` frames every
frame is a column; a longer horizon (KTH 10 -> 40) shows evenly spaced frames including the first
and the last, and the note says which. Per-frame cells are not ranked (one comparison per frame
would mostly rank noise); the figure of the same numbers is always drawn.
"""

from __future__ import annotations

import numpy as np

from bench.metrics.display import header
from bench.report.cells import seeds_cell
from bench.report.context import Context
from bench.report.groups import Group
from bench.report.notes import scale_note
from bench.report.table import Cell, Row, Table
from bench.report.values import NA

MAX_FRAME_COLUMNS = 20


def frame_columns(length: int) -> list[int]:
    """0-based frame indices shown for a horizon of ``length`` frames."""
    if length <= MAX_FRAME_COLUMNS:
        return list(range(length))
    return sorted({int(round(x)) for x in np.linspace(0, length - 1, MAX_FRAME_COLUMNS)})


def per_frame_tables(ctx: Context, group: Group) -> list[Table]:
    tables = []
    scale = ctx.scale(group.dataset)
    for m in group.per_frame_metrics():
        length = max((len(c) for r in group.rows for c in r.per_frame(m)), default=0)
        if length == 0:
            continue
        frames = frame_columns(length)
        f = scale.get(m, 1.0)
        columns = ["Method", "n"] + [f"t'={t + 1}" for t in frames]
        rows = []
        for r in group.rows:
            by_seed = [(run.spec.seed, run.test_per_frame[m]) for run in r.runs
                       if run.test_per_frame and m in run.test_per_frame]
            cells = [seeds_cell([(s, float(c[t])) for s, c in by_seed if t < len(c)], m, f, group)
                     if by_seed else Cell(NA) for t in frames]
            rows.append(Row([Cell(r.display), Cell(str(len(by_seed)))] + cells, "ours", r.label, "ours",
                            r.spec_hash))
        shown = "every predicted frame" if len(frames) == length else \
            f"{len(frames)} evenly spaced of the {length} predicted frames (t'={', '.join(str(t + 1) for t in frames)})"
        table = Table(f"frames-{group.dataset}-{group.key.gid}-{m}", f"Per-frame {header(m, f)}, {group.title()}",
                      columns, rows, dataset=group.dataset, group=group.tag, section="per-frame", groups=[group])
        table.notes = [f"Test {header(m, f)} at each predicted frame t' (frame 1 follows the last input), mean ± "
                       f"sample std over seeds; columns: {shown}. Not ranked.", scale_note(ctx, group.dataset)]
        tables.append(table)
    return tables
