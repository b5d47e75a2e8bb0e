"""How metrics are displayed: labels, decimals and direction (the one table the report reads).

The quality metrics are declared once, in :mod:`bench.metrics.declarations` (label, decimals,
direction, clipped variant); this module derives the report's lookups from those declarations and
adds the columns of tables that are not metrics of predicted frames: the published SSIM of unknown
code convention (``ssim_unknown``) and the cost columns of the efficiency tables (``flops_g``,
``train_s``, ``fps``, ``params_m``), declared here in the same form.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.metrics.declarations import METRICS


@dataclass(frozen=True)
class Column:
    """A table column that is not a metric of predicted frames: header label, direction, decimals."""

    key: str
    label: str
    higher_is_better: bool
    decimals: int


#: A column that holds only published SSIM whose code convention is unknown (no metric of ours).
SSIM_UNKNOWN = "ssim_unknown"

#: The columns that are not frame metrics (bench.metrics.declarations holds those).
OTHER_COLUMNS: tuple[Column, ...] = (
    Column(SSIM_UNKNOWN, "SSIM (paper, code unknown)", True, 4),
    Column("flops_g", "FLOPs (G)", False, 3),
    Column("train_s", "Train (s/epoch)", False, 2),
    Column("fps", "Test (fps)", True, 1),
    Column("params_m", "#Params (M)", False, 3),
)

#: Quality metrics shown in comparison tables, in column order.
TABLE_METRICS: tuple[str, ...] = ("mse", "mae", "ssim", "ssim_legacy", "psnr")

#: The clipped variant of a published-protocol metric (scored after clipping the predictions to
#: [0, 1]); shown only in its own columns, never beside paper values.
CLIPPED: dict[str, str] = {m.variant_of: m.key for m in METRICS if m.variant_of is not None}

LABELS: dict[str, str] = {c.key: c.label for c in (*METRICS, *OTHER_COLUMNS)}

#: Decimals a table prints (the papers' precision or finer).
DECIMALS: dict[str, int] = {c.key: c.decimals for c in (*METRICS, *OTHER_COLUMNS)}

_HIGHER_IS_BETTER: dict[str, bool] = {c.key: c.higher_is_better for c in (*METRICS, *OTHER_COLUMNS)}


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (lower is better for a column nobody declared)."""
    return _HIGHER_IS_BETTER.get(metric, False)


def label(metric: str) -> str:
    return LABELS.get(metric, metric)


def decimals(metric: str, default: int = 3) -> int:
    return DECIMALS.get(metric, default)


def arrow(metric: str) -> str:
    return "↑" if higher_is_better(metric) else "↓"


def scale_text(factor: float | None) -> str:
    """How a display factor reads in a header: ``×100``, ``/10``; empty for 1 (or unknown)."""
    if factor is None or factor == 1:
        return ""
    return f"×{factor:g}" if factor > 1 else f"/{1 / factor:g}"


def header(metric: str, factor: float | None = 1.0) -> str:
    """Column header: label, direction arrow and display scale, e.g. ``MSE↓`` or ``MSE↓ (×100)``."""
    scale = scale_text(factor)
    return f"{label(metric)}{arrow(metric)}" + (f" ({scale})" if scale else "")
