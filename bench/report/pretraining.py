"""PLA-SM Table VII whole: spatial-masking pretraining applied to other methods (PhyDNet, MAU, SimVP,
each without and with SM, and PLA-SM), our runs beside the printed numbers.

The rows are the registry keys of the published Table VII entries (``phydnet``, ``phydnet:sm``,
``mau``, ``mau:sm``, ``simvp``, ``simvp:sm``, ``plasm``) in the paper's order, those with runs in
some comparability group; the column blocks are the groups holding any of them (one per dataset
setting), as in the variant tables of :mod:`bench.report.variants`. The per-method variant tables
show the same runs family by family; this one is the paper's cross-method layout.
"""

from __future__ import annotations

from bench.report.published import PublishedEntry
from bench.report.context import Context
from bench.report.groups import Group, RowRuns
from bench.report.notes import block_notes
from bench.report.table import Table
from bench.report.variants import VariantRows, variant_table

PAPER, TABLE = "PLA-SM", "VII"

#: what the paper's Table VII rows are (methods-next section 4; PLA-SM IV-E)
BASELINE_NOTE = ("The paper's rows without pretraining repeat its Table II (literature values; MAU's TaxiBJ and "
                 "Human3.6M starred, re-run with the authors' code); only its \"+ pretraining\" rows are its own "
                 "runs, with no stated setup for PhyDNet and MAU. Our rows run both arms under one protocol.")


def pretraining_tables(ctx: Context) -> list[Table]:
    """The Table VII layout over every group holding a run of one of its methods (empty: no such run)."""
    entries = [e for e in ctx.published.entries if e.paper == PAPER and e.table == TABLE and e.ours]
    keys = list(dict.fromkeys(e.method for e in entries))  # the paper's row order

    def lookup(g: Group, key: str) -> RowRuns | None:
        return next((r for r in g.rows if r.display == key and not r.overrides), None)

    groups = [g for g in ctx.groups if any(lookup(g, k) is not None for k in keys)]
    if not groups:
        return []
    row_ids = [(k, k) for k in keys if any(lookup(g, k) is not None for g in groups)]
    paper_rows = []
    for name, method in dict.fromkeys((e.row, e.method) for e in entries):
        def find(g: Group, name: str = name) -> PublishedEntry | None:
            found = [e for e in ctx.published.find(g.dataset, g.pred_len, paper=PAPER)
                     if e.table == TABLE and e.row == name]
            return found[0] if found else None
        paper_rows.append((f"{method} — paper ({PAPER} Table {TABLE}: {name})", find))
    table = variant_table(ctx, "PLA-SM Table VII: spatial-masking pretraining applied to other methods",
                          "pretraining-table-vii", VariantRows("Method", row_ids, lookup, paper_rows), groups)
    table.notes = block_notes(ctx, groups, "methods without and with spatial-masking pretraining (rows) against "
                                           "comparability groups (column blocks), in the layout of PLA-SM Table VII") \
        + [BASELINE_NOTE] + table.notes
    table.section = "ablation"
    return [table]
