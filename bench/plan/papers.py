"""The papers' tables as plans, derived from the published numbers (never a hand-written list).

Every table the report renders (TAU Tables 2-6, PLA-SM Tables II-XI) has transcribed entries, one per
(row, dataset, horizon) (``bench/data/published.json``, read by :mod:`bench.report.published`); an
entry whose method is ours carries its registry key (``tau:no-ddr``, ``plasm:r0=0.9``). The plan of a
table is, for each (dataset, horizon) the table prints, the registry keys of its rows there, in the
table's order. Rows of other papers' methods (no registry key) have nothing to run. The caller passes
the entries in (the report layer reads them; this layer may not import it).

Choices (documented here because the papers are silent on them):
- Name: the paper in lower case without punctuation, ``-table`` and the table's number in Arabic
  numerals: ``tau-table6``, ``plasm-table7`` (PLA-SM Table VII); :func:`plan_key` also accepts
  ``plasm-tableVII``.
- Dataset: the registered dataset whose published numbers these are. Where a registered dataset is
  an alias of the published name (``mmnist_std`` -> ``mmnist``: MNIST digits and the fixed test file,
  the protocol of the papers' Moving MNIST tables), the alias is the one the plan runs; the generated
  ``mmnist`` is this harness's offline stand-in and reproduces no table.
- Seeds: 0, 1 and 2 (the papers print one number per cell and state no seed count; three seeds give
  the spread that says whether a difference to the printed number means anything).
- Epochs and batch size: each method's paper configuration for the dataset (left unset here).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from bench.errors import BenchError
from bench.plan.model import DEFAULT_SEEDS, Plan, PlanGroup

_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


def roman_to_int(text: str) -> int | None:
    """``"VII"`` -> 7 (None when ``text`` is not a Roman numeral)."""
    if not text or any(c not in _ROMAN for c in text.upper()):
        return None
    values = [_ROMAN[c] for c in text.upper()]
    return sum(-v if i + 1 < len(values) and v < values[i + 1] else v for i, v in enumerate(values))


def table_number(table: str) -> str:
    """A table's number in Arabic numerals (``"VII"`` -> ``"7"``, ``"6"`` -> ``"6"``)."""
    if table.isdigit():
        return table
    number = roman_to_int(table)
    return str(number) if number is not None else table.lower()


def plan_key(paper: str, table: str) -> str:
    """The plan name of a paper's table: ``tau-table6``, ``plasm-table7``."""
    return f"{re.sub(r'[^a-z0-9]', '', paper.lower())}-table{table_number(table)}"


def normalise_name(name: str) -> str:
    """``PLASM-TableVII`` -> ``plasm-table7`` (so Roman and Arabic numerals name one plan)."""
    text = name.strip().lower()
    head, sep, table = text.rpartition("-table")
    return f"{head}-table{table_number(table.upper())}" if sep else text


def paper_plans(entries: Iterable[Any], aliases: Mapping[str, str]) -> dict[str, Plan]:
    """The plan of every table in ``entries`` (published entries: ``paper``, ``table``, ``caption``,
    ``dataset``, ``pred_len``, ``method``, ``ours``), keyed by plan name, in the papers' order.

    ``aliases`` maps a registered dataset to the published dataset name its numbers are stored under."""
    tables: dict[tuple[str, str], dict[str, Any]] = {}
    for e in entries:
        table = tables.setdefault((e.paper, e.table), {"caption": e.caption, "cells": {}})
        if not e.ours:
            continue
        cell = table["cells"].setdefault((registry_dataset(e.dataset, aliases), e.pred_len), [])
        if e.method not in cell:
            cell.append(e.method)
    plans = {}
    for (paper, table), info in tables.items():
        name = plan_key(paper, table)
        if name in plans:
            raise BenchError(f"two published tables map to the plan name {name!r}; restore bench/data/published.json")
        groups = tuple(PlanGroup((dataset,), tuple(methods), pred_len)
                       for (dataset, pred_len), methods in info["cells"].items())
        if groups:
            plans[name] = Plan(name=name, title=f"{paper} Table {table}: {info['caption']}".rstrip(": "),
                               source=f"{paper} Table {table} (published numbers, bench/data/published.json)",
                               groups=groups, seeds=DEFAULT_SEEDS)
    return plans


def registry_dataset(published: str, aliases: Mapping[str, str]) -> str:
    """The registered dataset that runs a published dataset's table (its alias if one exists)."""
    return next((ours for ours, theirs in sorted(aliases.items()) if theirs == published), published)
