"""How metrics are displayed: labels, decimals and direction (the one table the report reads).

The quality metrics themselves (their definitions and :data:`bench.metrics.functional.HIGHER_IS_BETTER`) live
in :mod:`bench.metrics.functional`; this module adds what a table needs to show them, plus the cost columns of
the efficiency tables (``flops_g``, ``train_s``, ``fps``, ``params_m``), which are not metrics of
predicted frames. The direction of a quality metric is always read from
:data:`bench.metrics.functional.HIGHER_IS_BETTER`; only the cost columns (and metrics ``bench.metrics.functional`` does not
know) are directed here.
"""

from __future__ import annotations

from bench.metrics.functional import HIGHER_IS_BETTER

#: Quality metrics shown in comparison tables, in column order.
TABLE_METRICS: tuple[str, ...] = ("mse", "mae", "ssim", "ssim_legacy", "psnr")

#: The clipped variant of a published-protocol metric (``bench.metrics.functional``: scored after clipping the
#: predictions to [0, 1]); shown only in its own columns, never beside paper values.
CLIPPED: dict[str, str] = {"mse": "mse_clipped", "mae": "mae_clipped"}

#: A column that holds only published SSIM whose code convention is unknown (no metric of ours).
SSIM_UNKNOWN = "ssim_unknown"

LABELS: dict[str, str] = {
    "mse": "MSE", "mae": "MAE", "ssim": "SSIM", "ssim_legacy": "SSIM (legacy)", "psnr": "PSNR",
    "mse_clipped": "MSE (clipped)", "mae_clipped": "MAE (clipped)", SSIM_UNKNOWN: "SSIM (paper, code unknown)",
    "mse_pixel": "MSE/pixel", "mae_pixel": "MAE/pixel", "flops_g": "FLOPs (G)", "train_s": "Train (s/epoch)",
    "fps": "Test (fps)", "params_m": "#Params (M)",
}

#: Decimals a table prints (the papers' precision or finer).
DECIMALS: dict[str, int] = {
    "mse": 2, "mae": 2, "ssim": 4, "ssim_legacy": 4, "psnr": 2, "mse_pixel": 6, "mae_pixel": 6,
    "mse_clipped": 2, "mae_clipped": 2, SSIM_UNKNOWN: 4,
    "flops_g": 3, "train_s": 2, "fps": 1, "params_m": 3,
}

#: Direction of the cost columns (not frame-quality metrics, so not in bench.metrics.functional).
COST_HIGHER_IS_BETTER: dict[str, bool] = {"flops_g": False, "train_s": False, "fps": True, "params_m": False,
                                          SSIM_UNKNOWN: True}


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (bench.metrics.functional for quality metrics)."""
    if metric in HIGHER_IS_BETTER:
        return bool(HIGHER_IS_BETTER[metric])
    return COST_HIGHER_IS_BETTER.get(metric, False)


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
