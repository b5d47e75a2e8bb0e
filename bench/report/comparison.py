"""The comparison table of one comparability group: our rows (mean ± std over seeds) and paper rows."""

from __future__ import annotations

from typing import Sequence

from bench.metrics.display import CLIPPED, SSIM_UNKNOWN, TABLE_METRICS, header
from bench.report.published import PublishedEntry
from bench.report.cells import seeds_cell
from bench.report.context import Context
from bench.report.groups import Group
from bench.report.notes import (clipped_note, comparability_notes, convention_text, ranking_notes, scale_note)
from bench.report.paper_rows import (convention_notes, disagreement_notes, has_dagger, paper_cells, paper_label,
                                     ssim_columns_needed)
from bench.report.table import Cell, Row, Table, rank_table
from bench.report.values import NA

#: column order of comparison tables
COLUMN_ORDER = ("mse", "mae", "ssim", "ssim_legacy", SSIM_UNKNOWN, "psnr", "mse_clipped", "mae_clipped")


def paper_entries(ctx: Context, group: Group) -> list[PublishedEntry]:
    """The published comparison rows of the group's methods (other tables' rows for a label without any)."""
    paper: list[PublishedEntry] = []
    for label in sorted({r.label for r in group.rows}):
        found = ctx.published.find(group.dataset, group.pred_len, label, kind="comparison")
        if not found:
            found = [e for e in ctx.published.find(group.dataset, group.pred_len, label)
                     if e.kind != "efficiency" or any(m in e.text for m in TABLE_METRICS)]
        paper += found
    return paper


def table_columns(ctx: Context, group: Group, paper: Sequence[PublishedEntry]) -> list[str]:
    wanted = set(group.metrics) | set(ssim_columns_needed(paper)) | {m for e in paper for m in e.text
                                                                      if m in ("mse", "mae", "psnr")}
    present = group.present()
    clipped = [c for c in CLIPPED.values() if c in present] if ctx.options.clipped else []
    wanted |= set(clipped) | set(group.clipped_only())
    return [m for m in COLUMN_ORDER if m in wanted]


def spec_details(group: Group) -> tuple[str, str]:
    lines = [f"{r.display}: spec {r.spec_hash}, seeds {', '.join(map(str, r.seeds))}" for r in group.rows]
    return "Run specifications (results/<dataset>/<label>/<spec hash>/seed<k>)", "\n".join(lines)


def comparison_table(ctx: Context, group: Group, differing: Sequence[str]) -> Table:
    scale = ctx.scale(group.dataset)
    paper = [] if group.tiny or group.quick else paper_entries(ctx, group)  # never beside runs not comparable
    metrics = table_columns(ctx, group, paper)
    columns = ["Method", "n"] + [header(m, scale.get(m, 1.0)) for m in metrics] + ["Device"]
    rows = []
    for r in group.rows:
        cells = [Cell(NA) if m == SSIM_UNKNOWN else seeds_cell(r.values(m), m, scale.get(m, 1.0), group)
                 for m in metrics]
        rows.append(Row([Cell(r.display), Cell(str(len(r.runs)))] + cells + [Cell("; ".join(r.devices()))],
                        "ours", r.label, "ours", r.spec_hash))
    shown: list[PublishedEntry] = []
    for e in sorted(paper, key=lambda e: (e.method, e.paper, e.table)):
        cells = paper_cells(e, metrics, scale)
        if not any(c.mean is not None for c in cells):
            continue
        shown.append(e)
        rows.append(Row([Cell(paper_label(e)), Cell("paper")] + cells + [Cell(e.device or NA)], "paper",
                        e.method, e.source))
    table = Table(f"cmp-{group.dataset}-{group.key.gid}", group.title(), columns, rows,
                  dataset=group.dataset, group=group.tag, section="comparison", groups=[group])
    rank_table(table, range(2, 2 + len(metrics)))
    notes = ["n: seeds. Cells: mean ± sample standard deviation (n−1) over seeds; one seed shows its value alone."]
    notes += ranking_notes(table)
    notes += ["Rows marked \"paper\" (italic) are transcribed from the publications and are never ranked.",
              scale_note(ctx, group.dataset)]
    if shown:
        notes += convention_notes(ctx.published, shown)
        if any(e.starred for e in shown):
            notes.append("\\* in a paper cell: obtained by running the code provided by the authors (PLA-SM IV-D).")
        if has_dagger(shown, ("mse",)):
            notes.append("† printed without a stated unit or scale (PLA-SM Table III, Caltech MSE): shown as "
                         "printed, not converted to our convention.")
    if shown:
        notes += disagreement_notes(ctx.published, group.dataset, group.pred_len, {r.label for r in group.rows})
    if any(m in CLIPPED.values() for m in metrics):
        notes.append(clipped_note())
    if differing:
        notes.append(f"Other {group.dataset} tables differ from this one in: {', '.join(differing)}; runs of "
                     "different tables are never ranked against each other.")
    notes += comparability_notes(group, bool(shown))
    summary, text = convention_text(group)
    notes.append(f"{summary}: its full text is in report.md under this table.")
    table.details = [(summary, text), spec_details(group)]
    table.notes = [n for n in notes if n]
    return table
