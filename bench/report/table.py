"""The table model every section builds and every renderer reads, and ranking within a table.

A :class:`Table` is a list of :class:`Row` (``kind`` "ours" or "paper") of :class:`Cell`; a cell
that carries a ``metric`` and a ``mean`` (the displayed value: a mean over seeds, or a median for
timings) takes part in ranking and in the CSV.

Ranking rule (stated in every report, :data:`RANK_RULE`). Within one column, among our rows only
(paper rows are never ranked), a row's rank is 1 + the number of rows that are better *beyond the
noise*. Row A is better than row B beyond the noise when both carry a spread and the spreads, as
displayed, do not overlap (mean ± sample std over seeds; min-max for timings) with A on the better
side. When either row has no spread (one seed, one timing) the displayed values are compared as
they are: that rank is *unqualified*. Deterministic values (FLOPs, parameters) have no noise and
are compared as displayed. Rank 1 is shown bold, rank 2 underlined; a rank shared with another row
(a tie within the noise, or equal as displayed) is marked ``≈``. A row that lies within the noise
of a better-ranked row (it is beaten beyond the noise by one row but not by another ranked above
it) gets no mark but ``≈``: its place is ambiguous. When every row ties for the best, nobody is
bold and all are marked ``≈``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from bench.metrics.display import decimals, higher_is_better

RANK_RULE = ("Ranks compare our rows of one table and column only: a row's rank is 1 + the number of rows better "
             "than it beyond the noise, i.e. whose mean ± sample std over seeds (median and min–max for timings), "
             "as displayed, does not overlap its own; **bold** is rank 1, <u>underlined</u> rank 2, and ≈ marks a "
             "rank shared with another row (tied within the noise) or a row within the noise of a better-ranked one "
             "(no mark then). Rows of one seed have no spread: their ranks compare the displayed values and are "
             "unqualified.")
TIE_MARK = "≈"


@dataclass
class Cell:
    text: str
    rank: int | None = None
    metric: str | None = None
    mean: float | None = None  # displayed scale (a median for timings)
    std: float | None = None
    n: int | None = None
    scale: float | None = 1.0  # displayed = raw x scale (None: unknown unit)
    spread: tuple[float, float] | None = None  # displayed interval used to rank (mean ± std, min-max)
    noise: str = "seeds"  # seeds | timing | exact (no noise: FLOPs, params)
    tied: bool = False
    basis: str = ""  # how the rank was decided: "noise", "unqualified", "exact"
    per_seed: tuple[tuple[int, float], ...] = ()  # (seed, raw value)
    group: Any = None  # the comparability group the value belongs to (CSV comparability fields)
    entry: Any = None  # the PublishedEntry a paper value comes from


@dataclass
class Row:
    cells: list[Cell]
    kind: str = "ours"  # ours | paper
    method: str = ""  # registry label (ours) or the paper's method name
    source: str = "ours"
    spec_hash: str = ""


@dataclass
class Table:
    tid: str
    title: str
    columns: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    dataset: str = ""
    group: str = ""
    section: str = ""
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, relative path)
    details: list[tuple[str, str]] = field(default_factory=list)  # (summary, preformatted text), markdown only
    groups: list[Any] = field(default_factory=list)  # the comparability groups of the table

    def unqualified(self) -> bool:
        """Whether some rank of the table was decided without a spread (one seed or one timing)."""
        return any(c.basis == "unqualified" and c.rank is not None for r in self.rows for c in r.cells)


def _interval(cell: Cell, dec: int) -> tuple[float, float] | None:
    if cell.spread is None:
        return None
    return round(cell.spread[0], dec), round(cell.spread[1], dec)


def rank_cells(cells: Sequence[Cell], higher: bool, dec: int) -> None:
    """Set ``rank``, ``tied`` and ``basis`` of ``cells`` (one column of our rows) by :data:`RANK_RULE`."""
    present = [c for c in cells if c.mean is not None and math.isfinite(c.mean)]
    for c in cells:
        c.rank, c.tied, c.basis = None, False, ""
    if len(present) < 2:
        return
    shown = {id(c): round(c.mean, dec) for c in present}
    spans = {id(c): _interval(c, dec) for c in present}

    def better(a: Cell, b: Cell) -> bool:
        ia, ib = spans[id(a)], spans[id(b)]
        if ia is not None and ib is not None:
            return ia[0] > ib[1] if higher else ia[1] < ib[0]
        return shown[id(a)] > shown[id(b)] if higher else shown[id(a)] < shown[id(b)]

    ranks = {id(c): 1 + sum(better(o, c) for o in present if o is not c) for c in present}
    if len(set(ranks.values())) == 1:  # everyone ties for the best: nothing to tell apart
        for c in present:
            c.tied = True
            c.basis = _basis(c, present)
        return
    for c in present:
        rank = ranks[id(c)]
        ambiguous = any(ranks[id(o)] < rank and not better(o, c) for o in present)
        c.tied = ambiguous or sum(r == rank for r in ranks.values()) > 1
        c.rank = rank if rank in (1, 2) and not ambiguous else None
        c.basis = _basis(c, present)


def _basis(cell: Cell, present: Sequence[Cell]) -> str:
    if cell.noise == "exact":
        return "exact"
    if cell.spread is None or any(o.spread is None for o in present if o.noise != "exact"):
        return "unqualified"
    return "noise"


def rank_table(table: Table, columns: Iterable[int], only: Callable[[Row], bool] | None = None) -> None:
    """Rank our rows of ``table`` in each of ``columns`` (cells carrying a metric and a mean)."""
    rows = [r for r in table.rows if r.kind == "ours" and (only is None or only(r))]
    for c in columns:
        cells = [r.cells[c] for r in rows]
        metrics = {cell.metric for cell in cells if cell.metric}
        if len(metrics) != 1:
            continue
        metric = metrics.pop()
        rank_cells([cell if cell.metric else Cell(cell.text) for cell in cells], higher_is_better(metric),
                   decimals(metric))


def numeric_columns(table: Table) -> list[bool]:
    """Columns holding numbers (right-aligned): any cell with a metric, or the seed count."""
    return [i > 0 and (table.columns[i] == "n" or any(len(r.cells) > i and r.cells[i].metric for r in table.rows))
            for i in range(len(table.columns))]
