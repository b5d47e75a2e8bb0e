"""The papers' cross-method tables in their own layout: each printed row in the paper's order, our runs
beside the printed numbers.

A layout is one published table (:class:`PaperLayout`: paper and table number). Its rows are the
registry keys of the table's entries that have runs in some comparability group, in the paper's row
order, then every printed row of the table (methods this harness does not implement included, so
that the reader sees the whole table); its column blocks are the groups holding a run of any of its
keys on a dataset and horizon the table prints, one per dataset setting, as in the variant tables of :mod:`bench.report.variants`. A row of
ours is the key's run without hyperparameter overrides (the configuration the paper's row names).

Two kinds of layouts are rendered:

* the comparison tables (TAU "Quantitative results" Tables 2-5; PLA-SM "Comparison results"
  Tables II-IV), in the report's section of the papers' tables. The per-group comparison tables
  above them hold the same runs; published rows are shown beside those only where the runs are
  comparable with them (paper-size, full runs), while a layout always shows the printed table, with
  notes saying which blocks are not comparable (tiny models, quick runs), so that the coverage of a
  table by the registry is visible from any run;
* PLA-SM Table VII (spatial-masking pretraining applied to other methods: PhyDNet, MAU, SimVP,
  without and with SM), in the ablations, with the note on what the paper's rows are.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.report.context import Context
from bench.report.groups import Group, RowRuns
from bench.report.notes import block_notes
from bench.report.paper_rows import roman
from bench.report.published import PublishedEntry
from bench.report.table import Table
from bench.report.variants import VariantRows, variant_table

#: what the paper's Table VII rows are (PLA-SM Sec. IV-E)
TABLE_VII_NOTE = ("The paper's rows without pretraining repeat its Table II (literature values; MAU's TaxiBJ and "
                  "Human3.6M starred, re-run with the authors' code); only its \"+ pretraining\" rows are its own "
                  "runs, with no stated setup for PhyDNet and MAU. Our rows run both arms under one protocol.")


@dataclass(frozen=True)
class PaperLayout:
    """One published table rendered in its own layout: which table, and what the rendered one says."""

    paper: str
    table: str
    title: str  # the rendered table's title
    tid: str  # its id (csv, tex)
    rows_are: str  # what the rows are, for the notes
    section: str  # the report section it belongs to
    notes: tuple[str, ...] = ()


TABLE_VII = PaperLayout("PLA-SM", "VII", "PLA-SM Table VII: spatial-masking pretraining applied to other methods",
                        "pretraining-table-vii", "methods without and with spatial-masking pretraining", "ablation",
                        (TABLE_VII_NOTE,))


def layout_table(ctx: Context, layout: PaperLayout) -> Table | None:
    """``layout`` over every group holding a run of one of its methods (None: no such run)."""
    entries = [e for e in ctx.published.entries if e.paper == layout.paper and e.table == layout.table]
    keys = list(dict.fromkeys(e.method for e in entries if e.ours))  # the paper's row order

    def lookup(g: Group, key: str) -> RowRuns | None:
        return next((r for r in g.rows if r.display == key and not r.overrides), None)

    def printed_for(g: Group) -> bool:  # the table has rows at the group's dataset and horizon
        return any(e.table == layout.table for e in ctx.published.find(g.dataset, g.pred_len, paper=layout.paper))

    groups = [g for g in ctx.groups if printed_for(g) and any(lookup(g, k) is not None for k in keys)]
    if not groups:
        return None
    row_ids = [(k, k) for k in keys if any(lookup(g, k) is not None for g in groups)]
    paper_rows = []
    for name, method in dict.fromkeys((e.row, e.method) for e in entries):
        def find(g: Group, name: str = name) -> PublishedEntry | None:
            found = [e for e in ctx.published.find(g.dataset, g.pred_len, paper=layout.paper)
                     if e.table == layout.table and e.row == name]
            return found[0] if found else None
        paper_rows.append((f"{method} — paper ({layout.paper} Table {layout.table}: {name})", find))
    table = variant_table(ctx, layout.title, layout.tid, VariantRows("Method", row_ids, lookup, paper_rows), groups)
    measured = f"{len(row_ids)} of its {len(keys)} implemented methods measured here; " if keys else ""
    printed = len(dict.fromkeys(e.row for e in entries))
    table.notes = (block_notes(ctx, groups, f"{layout.rows_are} (rows) against comparability groups (column "
                                            f"blocks), in the layout of {layout.paper} Table {layout.table}")
                   + [f"Coverage: {measured}the paper prints {printed} rows."] + list(layout.notes) + table.notes)
    table.section = layout.section
    return table


def comparison_layouts(ctx: Context) -> list[PaperLayout]:
    """Every published comparison table, TAU's first, in table order."""
    found = {(e.paper, e.table): e.caption for e in ctx.published.entries if e.kind == "comparison"}
    out = []
    for (paper, tab), caption in sorted(found.items(), key=lambda kv: (kv[0][0] != "TAU", roman(kv[0][1]))):
        title = f"{paper} Table {tab}" + (f": {caption.rstrip('.')}" if caption else "")
        out.append(PaperLayout(paper, tab, title, f"paper-{paper}-{tab}".lower().replace("-sm", "sm"),
                               "the methods of the paper's table", "papers"))
    return out


def paper_tables(ctx: Context) -> list[Table]:
    """The comparison layouts that hold any of our runs."""
    return [t for layout in comparison_layouts(ctx) if (t := layout_table(ctx, layout)) is not None]


def pretraining_tables(ctx: Context) -> list[Table]:
    """PLA-SM Table VII whole (empty: no run of its methods)."""
    table = layout_table(ctx, TABLE_VII)
    return [] if table is None else [table]
