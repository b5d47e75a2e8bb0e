"""The appendix: every transcribed paper table of the datasets in the report, as printed."""

from __future__ import annotations

from typing import Sequence

from bench.metrics.display import TABLE_METRICS, header
from bench.report.context import Context
from bench.report.notes import scale_note
from bench.report.paper_rows import PSNR_MARKS, convention_notes, has_dagger, roman
from bench.report.table import Cell, Row, Table
from bench.report.values import NA

_COLUMN_ORDER = list(TABLE_METRICS) + ["flops_g", "train_s", "fps", "params_m"]


def published_appendix(ctx: Context, datasets: Sequence[str]) -> list[Table]:
    tables = []
    for ds in datasets:
        entries = ctx.published.find(ds)
        keys = sorted({(e.paper != "TAU", roman(e.table), e.paper, e.table, e.pred_len) for e in entries})
        for _, _, paper, tab, plen in keys:
            es = [e for e in entries if e.paper == paper and e.table == tab and e.pred_len == plen]
            metrics = sorted({m for e in es for m in e.text}, key=_COLUMN_ORDER.index)
            scale = ctx.scale(ds)
            coded = any(m in ("ssim", "psnr") for m in metrics)
            columns = ["Method (as printed)", "Registry key / name"] + \
                      [(header(m, scale.get(m, 1.0)) if m != "ssim" else "SSIM↑ (as printed)") for m in metrics] + \
                      (["SSIM / PSNR code"] if coded else [])
            rows = []
            for e in es:
                cells = [Cell(e.row + (f" ({e.venue})" if e.venue else "")), Cell(e.method)]
                for m in metrics:
                    v, t = e.shown(m, scale)
                    if t is not None and m == "psnr":
                        t += PSNR_MARKS.get(e.psnr_convention or "unknown", "")
                    cells.append(Cell(t or NA, metric=m if v is not None else None, mean=v,
                                      scale=None if e.scale.get(m, 1.0) is None else scale.get(m, 1.0), entry=e))
                if coded:
                    cells.append(Cell(" / ".join(c or NA for c in (e.ssim_convention, e.psnr_convention))))
                rows.append(Row(cells, "paper", e.method, e.source))
            cap = es[0].caption
            table = Table(f"pub-{ds}-{plen}-{paper}-{tab}", f"{paper} Table {tab} — {ds} (→{plen}): {cap}",
                          columns, rows, dataset=ds, group="published", section="published")
            notes = [scale_note(ctx, ds)] + convention_notes(ctx.published, es)
            if any(e.starred for e in es):
                notes.append("\\*: obtained by running the code provided by the authors (PLA-SM IV-D).")
            if has_dagger(es, metrics):
                notes.append("†: printed without a stated unit or scale.")
            notes += sorted({r for e in es for r in e.remarks})
            table.notes = notes
            tables.append(table)
    return tables
