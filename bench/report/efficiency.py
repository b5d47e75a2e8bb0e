"""Cost tables: the efficiency table of a group (PLA-SM Table V layout) and the ``bench audit`` table.

Timings are noisy, so they are shown with their spread: train seconds per epoch as the median
(min–max) over every epoch of every seed, test fps as the median (min–max) over every timed repeat
(of every seed, or of the audit), with the device and the machine's 1-minute load average when the
timing was taken. They are ranked only when every row was timed on the same device, and then by
the ranking rule (:mod:`bench.report.table`): only a difference beyond the min–max spread counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.metrics.display import header
from bench.report.cells import exact_cell, seeds_cell, timing_cell
from bench.report.context import Context
from bench.report.groups import Group, RowRuns
from bench.report.notes import ranking_notes, scale_note
from bench.report.paper_rows import paper_label, roman
from bench.report.table import Cell, Row, Table, rank_table
from bench.report.values import NA, fmt, mean_std


@dataclass
class Costs:
    """FLOPs, params and fps of a row, and where they come from."""

    flops_g: float | None
    params_m: float | None
    fps: list[float] = field(default_factory=list)
    device: str = "unrecorded"
    loads: list[float] = field(default_factory=list)
    source: str = "runs"


def costs_of(ctx: Context, group: Group, row: RowRuns) -> Costs:
    """The audit record of (dataset, label, tiny) when there is one and the runs used no ``--set``, else the runs."""
    audit = ctx.audits.get((group.dataset, row.label, group.tiny))
    if audit is not None and not row.uses_sets:
        return Costs(None if audit.flops is None else audit.flops / 1e9,
                     None if audit.params is None else audit.params / 1e6, audit.fps_values, audit.device_text,
                     [] if audit.load_average is None else [audit.load_average], "audit")
    flops, _ = mean_std(row.cost("flops"))
    params, _ = mean_std(row.cost("params"))
    return Costs(None if flops is None else flops / 1e9, None if params is None else params / 1e6,
                 row.fps_values() or row.cost("fps"), "; ".join(row.devices()), row.loads(), "runs")


def load_text(loads: list[float]) -> str:
    if not loads:
        return "load unrecorded"
    lo, hi = min(loads), max(loads)
    return f"load {lo:.2f}" if lo == hi else f"load {lo:.2f}–{hi:.2f}"


def efficiency_table(ctx: Context, group: Group) -> Table:
    scale = ctx.scale(group.dataset)
    key = "mse" if "mse" in group.present() else "mse_clipped"  # schema-1 runs have only the clipped MSE
    f = scale.get(key, 1.0)
    columns = ["Method", header("flops_g"), header("train_s"), header("fps"), header("params_m"), header(key, f), "n",
               "Train device (load)", "FLOPs/params/fps from (device, load)"]
    rows = []
    train_devices, fps_devices = set(), set()
    for r in group.rows:
        c = costs_of(ctx, group, r)
        tdev = "; ".join(r.devices())
        train_devices.add(tdev)
        fps_devices.add(c.device)
        rows.append(Row([
            Cell(r.display), exact_cell(c.flops_g, "flops_g", 1e-9, group),
            timing_cell(r.epoch_seconds(), "train_s", len(r.runs), group),
            timing_cell(c.fps, "fps", len(r.runs), group), exact_cell(c.params_m, "params_m", 1e-6, group),
            seeds_cell(r.values(key), key, f, group), Cell(str(len(r.runs))),
            Cell(f"{tdev}; {load_text(r.loads())}"), Cell(f"{c.source} ({c.device}; {load_text(c.loads)})"),
        ], "ours", r.label, "ours", r.spec_hash))
    paper = []
    for label in sorted({r.label for r in group.rows} if not (group.tiny or group.quick) else ()):
        for e in ctx.published.find(group.dataset, group.pred_len, label):
            if "flops_g" in e.text or "fps" in e.text:
                paper.append(e)
    for e in sorted(paper, key=lambda e: (e.method, e.paper, roman(e.table))):
        cells = [Cell(paper_label(e))]
        for m in ("flops_g", "train_s", "fps", "params_m"):
            t = e.text.get(m)
            cells.append(Cell(t or NA, metric=m if t else None, mean=float(t) if t else None,
                              scale={"flops_g": 1e-9, "params_m": 1e-6}.get(m, 1.0), entry=e))
        v, t = e.shown("mse", scale) if key == "mse" else (None, None)  # no paper value in a clipped column
        cells += [Cell(t or NA, metric="mse" if v is not None else None, mean=v, scale=f, entry=e),
                  Cell("paper"), Cell(e.device or NA), Cell(e.source)]
        rows.append(Row(cells, "paper", e.method, e.source))
    table = Table(f"eff-{group.dataset}-{group.key.gid}", f"Efficiency, {group.title()}", columns, rows,
                  dataset=group.dataset, group=group.tag, section="efficiency", groups=[group])
    ranked = [1, 4, 5]
    if len(train_devices) == 1:
        ranked.append(2)
    if len(fps_devices) == 1:
        ranked.append(3)
    rank_table(table, ranked)
    devices = sorted(train_devices | fps_devices)
    notes = ["Layout of PLA-SM Table V. FLOPs: fvcore, one sample (multiply-add = one FLOP). Train: seconds per "
             "training epoch, median (min–max) over every epoch of every seed (this group's split sizes). Test (fps): "
             "test sequences per second at a fixed batch after one warm-up call, median (min–max) over the timed "
             "repeats. MSE: as in the comparison table.",
             f"Measured on: {'; '.join(devices)}. Load: the machine's 1-minute load average when the timings were "
             "taken; timings under load, or of different devices, are not comparable.",
             "Train time and fps are ranked only when every row was timed on the same device"
             + ("." if len(train_devices) == 1 and len(fps_devices) == 1 else
                " (not the case here for " + " and ".join(
                    n for n, devs in (("train time", train_devices), ("fps", fps_devices)) if len(devs) > 1) + ").")]
    notes += ranking_notes(table) + [scale_note(ctx, group.dataset)]
    if paper:
        notes.append("Paper rows: PLA-SM Table V measured on one RTX 3090 (training time per epoch of the full "
                     "10,000-sequence set, fps averaged over 10,000 test samples); TAU Table 6 gives FLOPs only.")
    if group.tiny:
        notes.append("Tiny models (the small --tiny configuration): costs are not comparable with published numbers.")
    table.notes = notes
    return table


def _pct(value: float | None) -> str:
    return NA if value is None else f"{value:+.1%}"


def audit_table(ctx: Context) -> Table | None:
    if not ctx.audits:
        return None
    columns = ["Dataset", "Method", "Model", "#Params (M)", "FLOPs (G)", "Skipped ops", "Test (fps)", "fps batch",
               "Device (load)", "Reference (params / FLOPs)", "Diff (params / FLOPs)"]
    rows = []
    for (ds, label, tiny), a in sorted(ctx.audits.items()):
        ref = a.reference
        params = None if a.params is None else a.params / 1e6
        flops = None if a.flops is None else a.flops / 1e9
        rows.append(Row([
            Cell(ds), Cell(label), Cell("tiny" if tiny else "paper-size"), exact_cell(params, "params_m", 1e-6),
            exact_cell(flops, "flops_g", 1e-9),
            Cell(", ".join(f"{k} ×{v}" for k, v in sorted(a.flops_skipped.items())) or "none"),
            timing_cell(a.fps_values, "fps"), Cell(NA if a.fps_batch is None else str(a.fps_batch)),
            Cell(f"{a.device_text} ({load_text([] if a.load_average is None else [a.load_average])})"),
            Cell(f"{fmt(ref.params / 1e6, 1) + ' M' if ref.params else NA} / {fmt(ref.flops / 1e9, 2)} G "
                 f"({ref.source})" if ref is not None and ref.flops else NA),
            Cell(f"{_pct(ref.params_diff)} / {_pct(ref.flops_diff)}" if ref is not None and ref.flops else NA),
        ], "ours", label, "audit"))
    return Table("audit", "Cost audit (`bench audit`, no training)", columns, rows, section="audit",
                 notes=["Skipped ops: operators fvcore could not count (their FLOPs are missing from the total).",
                        "Test (fps): median (min–max) over the timed repeats; fps depends on the device, batch and "
                        "load: compare only rows of one device."])
