"""CSV rendering: one record per numeric cell of every table (``report.csv``).

Every record carries the comparability fields of the group its value belongs to (frames, epochs,
tiny, quick, split sizes, data source, data seed, precision, scoring protocol), the run
specification's label and hash, and the per-seed raw values; paper records carry the paper's
method name, source, horizon and the SSIM/PSNR convention of the code behind the number. ``method``
is always one naming: our registry label, or the paper's method name.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Iterable, Sequence

from bench.report.groups import SPLITS, Group
from bench.report.runs import device_of, protocol_of, split_sizes
from bench.report.table import Cell, Row, Table
from bench.report.values import g12

COMPARABILITY_FIELDS = ("in_frames", "pred_len", "frame", "epochs", "tiny", "quick", "train_size", "val_size",
                        "test_size", "data_source", "data_seed", "precision", "scoring_protocol",
                        "metric_convention", "devices")
CSV_FIELDS = ("table", "section", "dataset", "group", "row_kind", "method", "row", "spec_hash", "source", "column",
              "metric", "n", "seeds", "per_seed_raw", "display_mean", "display_std", "display_lo", "display_hi",
              "display_scale", "raw_mean", "raw_std", "text", "rank", "tied", "rank_basis") + COMPARABILITY_FIELDS + \
             ("ssim_convention", "psnr_convention")


def _group_fields(group: Group | None, entry: Any) -> dict[str, Any]:
    if group is None:
        return {"pred_len": entry.pred_len if entry is not None else ""}
    first = group.first
    sizes = split_sizes(first)
    return {"in_frames": first.dataset.in_frames if first.dataset else "", "pred_len": first.spec.pred_len,
            "frame": group.key.fields["frame"], "epochs": first.spec.epochs, "tiny": first.spec.tiny,
            "quick": first.spec.quick, **{f"{s}_size": sizes.get(s, "") for s in SPLITS},
            "data_source": group.key.fields["data"], "data_seed": first.spec.data_seed,
            "precision": first.spec.precision, "scoring_protocol": protocol_of(first),
            "metric_convention": group.key.fields["metric convention"],
            "devices": "; ".join(sorted({device_of(r) for r in group.runs}))}


def _cell_group(table: Table, cell: Cell, row: Row) -> Group | None:
    if row.kind == "paper":
        return None
    if cell.group is not None:
        return cell.group
    return table.groups[0] if len(table.groups) == 1 else None


def csv_records(table: Table) -> Iterable[dict[str, Any]]:
    for row in table.rows:
        for col, cell in zip(table.columns[1:], row.cells[1:]):
            if cell.metric is None or cell.mean is None:
                continue
            scale = cell.scale
            raw_mean = None if scale in (None, 0) else cell.mean / scale
            raw_std = None if scale in (None, 0) or cell.std is None else cell.std / scale
            group = _cell_group(table, cell, row)
            entry = cell.entry
            rec = {k: "" for k in CSV_FIELDS}
            rec.update({
                "table": table.tid, "section": table.section,
                "dataset": group.dataset if group is not None else (entry.dataset if entry is not None
                                                                    else table.dataset),
                "group": group.tag if group is not None else table.group, "row_kind": row.kind,
                "method": row.method, "row": row.cells[0].text, "spec_hash": row.spec_hash, "source": row.source,
                "column": col, "metric": cell.metric, "n": "" if cell.n is None else cell.n,
                "seeds": ";".join(str(s) for s, _ in cell.per_seed),
                "per_seed_raw": ";".join(f"{s}={g12(v)}" for s, v in cell.per_seed),
                "display_mean": g12(cell.mean), "display_std": g12(cell.std),
                "display_lo": g12(cell.spread[0]) if cell.spread else "",
                "display_hi": g12(cell.spread[1]) if cell.spread else "",
                "display_scale": "unknown" if scale is None else g12(scale),
                "raw_mean": g12(raw_mean), "raw_std": g12(raw_std), "text": cell.text,
                "rank": "" if cell.rank is None else cell.rank, "tied": "yes" if cell.tied else "",
                "rank_basis": cell.basis if row.kind == "ours" else "",
                "ssim_convention": (entry.ssim_convention or "") if entry is not None else "",
                "psnr_convention": (entry.psnr_convention or "") if entry is not None else "",
            })
            rec.update(_group_fields(group, entry))
            yield rec


def render_csv(tables: Sequence[Table]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for t in tables:
        for rec in csv_records(t):
            writer.writerow(rec)
    return buf.getvalue()
