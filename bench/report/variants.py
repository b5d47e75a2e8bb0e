"""Ablation and sweep tables: rows are variants or hyperparameter values of one method, column
blocks are comparability groups (TAU Table 6 / PLA-SM Tables VI-XI layouts).

Paper rows of an ablation table are the published ``ablation`` rows of the method's variants and,
where the papers ablate a pretraining (PLA-SM Table VII: SimVP with and without SM pretraining,
``simvp`` and ``simvp:sm``), the ``pretraining`` rows of the family when they hold such a pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from bench.metrics.display import header
from bench.report.published import PublishedEntry
from bench.report.cells import exact_cell, seeds_cell
from bench.report.context import Context
from bench.report.efficiency import costs_of
from bench.report.groups import Group, RowRuns
from bench.report.notes import block_notes, ranking_notes
from bench.report.paper_rows import convention_notes, disagreement_notes, paper_cells, ssim_columns_needed
from bench.report.runs import num_key
from bench.report.table import Cell, Row, Table, rank_table
from bench.report.values import NA

#: metric columns of ablation and sweep tables, per dataset (as the papers' ablation tables)
#: (``ssim_unknown``: a printed SSIM of unidentified code, shown only where a paper row has one)
ABLATION_METRICS = {"kth": ("ssim", "ssim_legacy", "ssim_unknown", "psnr"),
                    "kitti_caltech": ("ssim", "ssim_legacy", "ssim_unknown", "psnr")}
DEFAULT_ABLATION_METRICS = ("mse", "mae", "ssim", "ssim_legacy", "ssim_unknown")


def block_columns(dataset: str, metrics_present: Sequence[str], paper: Sequence[PublishedEntry] = ()) -> list[str]:
    wanted = ABLATION_METRICS.get(dataset, DEFAULT_ABLATION_METRICS)
    needed = set(ssim_columns_needed(paper)) | {m for e in paper for m in e.text}
    return [m for m in wanted if m in metrics_present or m in needed]


@dataclass(frozen=True)
class VariantRows:
    """The rows of a variant or sweep table: ours (an id and its text each; ``lookup`` finds the row's
    runs in a group) and the papers' (a text and a function finding its published entry in a group)."""

    first_column: str
    ours: list[tuple[Any, str]]
    lookup: Callable[[Group, Any], RowRuns | None]
    papers: list[tuple[str, Callable[[Group], PublishedEntry | None]]]

    def has(self, g: Group, row: RowRuns) -> bool:
        """Whether ``row`` of ``g`` is one of the table's rows."""
        return any(self.lookup(g, rid) is row for rid, _ in self.ours)


def variant_table(ctx: Context, title: str, tid: str, rows: VariantRows, groups: list[Group]) -> Table:
    """Rows (ours then papers) against blocks of columns, one block per comparability group."""
    blocks: list[tuple[Group, list[str]]] = []
    columns = [rows.first_column]
    for g in groups:
        entries = [e for _, find in rows.papers if (e := find(g)) is not None]
        ms = block_columns(g.dataset, g.metrics, entries)
        blocks.append((g, ms))
        sc = ctx.scale(g.dataset)
        columns += [f"{g.tag} {header(m, sc.get(m, 1.0))}" for m in ms] + [f"{g.tag} FLOPs (G)"]
    table = Table(tid, title, columns, _our_rows(ctx, rows, blocks) + _paper_rows(ctx, rows, blocks),
                  dataset=",".join(sorted({g.dataset for g in groups})), group=",".join(g.tag for g in groups),
                  groups=list(groups))
    rank_table(table, [i for i, c in enumerate(columns) if i > 0 and not c.endswith("FLOPs (G)")])  # costs unranked
    shown = [c.entry for r in table.rows if r.kind == "paper" for c in r.cells if c.entry is not None]
    table.notes = ranking_notes(table) + convention_notes(ctx.published, list({id(e): e for e in shown}.values()))
    for g in groups:
        shown_labels = {r.label for r in g.rows if rows.has(g, r)}
        table.notes += disagreement_notes(ctx.published, g.dataset, g.pred_len, shown_labels)
    table.notes = list(dict.fromkeys(table.notes))  # a note several blocks give, once
    return table


def _our_rows(ctx: Context, rows: VariantRows, blocks: list[tuple[Group, list[str]]]) -> list[Row]:
    out: list[Row] = []
    for rid, text in rows.ours:
        cells = [Cell(text)]
        label, spec_hash = "", ""
        for g, ms in blocks:
            rr = rows.lookup(g, rid)
            if rr is None:
                cells += [Cell(NA) for _ in ms] + [Cell(NA)]
                continue
            label, spec_hash = rr.label, rr.spec_hash
            sc = ctx.scale(g.dataset)
            cells += [seeds_cell(rr.values(m), m, sc.get(m, 1.0), g) for m in ms]
            cells.append(exact_cell(costs_of(ctx, g, rr).flops_g, "flops_g", 1e-9, g))
        out.append(Row(cells, "ours", label, "ours", spec_hash))
    return out


def _paper_rows(ctx: Context, rows: VariantRows, blocks: list[tuple[Group, list[str]]]) -> list[Row]:
    out: list[Row] = []
    for text, find in rows.papers:
        cells = [Cell(text)]
        any_value = False
        src, method = "", ""
        for g, ms in blocks:
            e = find(g)
            if e is None:
                cells += [Cell(NA) for _ in ms] + [Cell(NA)]
                continue
            src, method = e.source, e.method
            pc = paper_cells(e, ms, ctx.scale(g.dataset))
            fl = e.text.get("flops_g")
            pc.append(Cell(fl or NA, metric="flops_g" if fl else None, mean=float(fl) if fl else None, scale=1e-9,
                           entry=e))
            any_value = any_value or any(c.mean is not None for c in pc)
            cells += pc
        if any_value:
            out.append(Row(cells, "paper", method, src))
    return out


def ablation_tables(ctx: Context) -> list[Table]:
    families: dict[str, set[str]] = {}
    for g in ctx.groups:
        for r in g.rows:
            if not r.overrides:
                families.setdefault(r.method, set()).add(r.display)
    tables = []
    for method in sorted(families):
        displays = families[method]
        if not any(":" in d.split(" [")[0] for d in displays) or len(displays) < 2:
            continue
        ordered = sorted(displays, key=lambda d: (d.split(" [")[0] != method, d))
        groups = [g for g in ctx.groups if sum(r.display in displays and not r.overrides for r in g.rows) >= 1
                  and any(":" in r.label and not r.overrides and r.method == method for r in g.rows)]
        if not groups:
            continue

        def lookup(g: Group, rid: str) -> RowRuns | None:
            return next((r for r in g.rows if r.display == rid and not r.overrides and r.method == method), None)

        family = [e for e in ctx.published.entries
                  if (e.method == method or e.method.startswith(method + ":")) and "=" not in e.method]
        pretraining = [e for e in family if e.kind == "pretraining"]
        pairs = len({e.method for e in pretraining}) >= 2  # with and without pretraining (PLA-SM Table VII)
        paper_entries = list(dict.fromkeys(
            (e.paper, e.table, e.row, e.method) for e in family
            if e.kind == "ablation" or (e.kind == "pretraining" and pairs)))  # in the papers' order
        paper_rows = []
        for paper, tab, rowname, m in paper_entries:
            def find(g: Group, paper=paper, tab=tab, rowname=rowname) -> PublishedEntry | None:
                found = [e for e in ctx.published.find(g.dataset, g.pred_len, paper=paper)
                         if e.table == tab and e.row == rowname]
                return found[0] if found else None
            paper_rows.append((f"{m} — paper ({paper} Table {tab}: {rowname})", find))
        layout = "PLA-SM Table VII (pretraining)" if pairs else "TAU Table 6 / PLA-SM Table VI"
        table = variant_table(ctx, f"{method}: variants", f"abl-{method}",
                              VariantRows("Variant", [(d, d) for d in ordered], lookup, paper_rows), groups)
        table.notes = block_notes(ctx, groups, "variants (rows) of one method against comparability groups "
                                               f"(column blocks), in the layout of {layout}") + table.notes
        table.section = "ablation"
        tables.append(table)
    return tables


def sweep_tables(ctx: Context) -> list[Table]:
    families: dict[tuple[str, str | None, str], None] = {}
    for g in ctx.groups:
        for r in g.rows:
            if len(r.overrides) == 1:
                families[(r.method, r.variant, next(iter(r.overrides)))] = None
    tables = []
    for method, variant, param in sorted(families, key=lambda t: (t[0], t[1] or "", t[2])):
        base = method + (f":{variant}" if variant else "")

        def member(r: RowRuns) -> Any:
            # one hyperparameter swept from the method's configuration: rows run with --set changed other
            # values (or this one without saying so in the key), so they are neither the default nor a member
            if r.method != method or r.variant != variant or r.uses_sets:
                return None
            if not r.overrides:
                value = r.spec.hparams.get(param)
                return ("default", value) if value is not None else None
            if list(r.overrides) == [param]:
                return ("set", r.overrides[param])
            return None

        row_ids: dict[tuple, str] = {}
        groups = [g for g in ctx.groups if any((member(r) or ("",))[0] == "set" for r in g.rows)]
        for g in groups:
            for r in g.rows:
                m = member(r)
                if m is None:
                    continue
                kind, value = m
                rid = (num_key(value), kind, r.display)
                row_ids[rid] = f"{param} = {value}" + (f" (default: {r.display})" if kind == "default" else
                                                       f" ({r.display})")
        values = {rid[0] for rid in row_ids}
        if len(values) < 2:
            continue

        def lookup(g: Group, rid: tuple) -> RowRuns | None:
            return next((r for r in g.rows if r.display == rid[2] and member(r) is not None), None)

        pubs = [e for e in ctx.published.entries if e.kind == "sweep" and e.sweep
                and e.sweep.get("base") == base and e.sweep.get("param") == param]
        pvalues = sorted({(num_key(e.sweep["value"]), e.sweep["value"], e.paper, e.table) for e in pubs})
        paper_rows = []
        for _, value, paper, tab in pvalues:
            def find(g: Group, value=value, paper=paper, tab=tab) -> PublishedEntry | None:
                found = [e for e in pubs if e.dataset == g.dataset and e.pred_len == g.pred_len
                         and e.sweep["value"] == value and e.paper == paper and e.table == tab]
                return found[0] if found else None
            paper_rows.append((f"{param} = {value} — paper ({paper} Table {tab})", find))
        ordered = sorted(row_ids.items())
        table = variant_table(ctx, f"{base}: sweep of {param}", f"sweep-{base}-{param}".replace(":", "+"),
                              VariantRows(param, [(rid, text) for rid, text in ordered], lookup, paper_rows), groups)
        table.notes = block_notes(ctx, groups, f"values of `{param}` for `{base}` (recognised from the run keys' "
                                               f"overrides; the default row is the run without override; runs with --set are left out), in the "
                                               f"layout of PLA-SM Tables VIII, IX, XI") + table.notes
        table.section = "sweep"
        tables.append(table)
    return tables
