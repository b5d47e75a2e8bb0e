"""Numbers as the report prints them: fixed-decimal text, mean and sample standard deviation.

Floats are always printed with a fixed number of decimals (so the same results give the same
bytes); ``-0.00`` is printed ``0.00``; a missing or non-finite value is :data:`NA`.
"""

from __future__ import annotations

import math
from typing import Sequence

#: Text of an unavailable cell.
NA = "–"


def fmt(value: float | None, decimals: int) -> str:
    if value is None or not math.isfinite(value):
        return NA
    text = f"{value:.{decimals}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return text


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1) of the finite values; std None below two values."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None, None
    mean = math.fsum(vals) / len(vals)
    if len(vals) < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (len(vals) - 1))


def fmt_mean_std(mean: float | None, std: float | None, decimals: int) -> str:
    if mean is None:
        return NA
    return fmt(mean, decimals) if std is None else f"{fmt(mean, decimals)} ± {fmt(std, decimals)}"


def g12(value: float | None) -> str:
    """A float for the CSV (12 significant digits), empty when missing."""
    return "" if value is None else f"{float(value):.12g}"


def gs(x: float) -> str:
    return f"{x:g}"
