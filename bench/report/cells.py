"""Building the cells of our rows: a metric over seeds, a timing with its spread, an exact cost."""

from __future__ import annotations

import statistics
from typing import Any, Sequence

from bench.metrics.display import decimals
from bench.report.table import Cell
from bench.report.values import NA, fmt, fmt_mean_std, mean_std


def seeds_cell(values: Sequence[tuple[int, float]], metric: str, scale: float = 1.0, group: Any = None) -> Cell:
    """Mean ± sample std over seeds (one seed: the value alone), in the displayed scale."""
    mean, std = mean_std([v for _, v in values])
    dm = None if mean is None else mean * scale
    ds = None if std is None else std * scale
    spread = None if dm is None or ds is None else (dm - ds, dm + ds)
    return Cell(fmt_mean_std(dm, ds, decimals(metric)), metric=metric if dm is not None else None, mean=dm, std=ds,
                n=len(values), scale=scale, spread=spread, noise="seeds", per_seed=tuple(values), group=group)


def timing_cell(values: Sequence[float], metric: str, n: int | None = None, group: Any = None) -> Cell:
    """Median (min–max) of repeated timings; one timing shows its value alone (no spread)."""
    vals = sorted(float(v) for v in values)
    if not vals:
        return Cell(NA, group=group)
    med = float(statistics.median(vals))
    d = decimals(metric)
    if len(vals) == 1:
        return Cell(fmt(med, d), metric=metric, mean=med, n=n, noise="timing", group=group)
    return Cell(f"{fmt(med, d)} ({fmt(vals[0], d)}–{fmt(vals[-1], d)})", metric=metric, mean=med, n=n,
                spread=(vals[0], vals[-1]), noise="timing", group=group)


def exact_cell(value: float | None, metric: str, scale: float = 1.0, group: Any = None) -> Cell:
    """A deterministic figure (FLOPs, parameters): no noise, compared as displayed."""
    if value is None:
        return Cell(NA, group=group)
    return Cell(fmt(value, decimals(metric)), metric=metric, mean=value, scale=scale, noise="exact", group=group)
