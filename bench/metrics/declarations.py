"""Every frame-quality metric, declared once: what it is called, how it is scored, shown and read back.

One :class:`Metric` per key, in report order. Everything per metric elsewhere is derived from
:data:`METRICS`: the keys and their order (:data:`bench.metrics.functional.METRIC_KEYS`), which are
scored on clipped predictions (``CLIPPED_KEYS``), the direction (``HIGHER_IS_BETTER``), the printed
conventions (``METRIC_CONVENTION``, stored in every result), the table labels and decimals
(:mod:`bench.metrics.display`), the clipped columns and their display scale
(:mod:`bench.report.context`), and the names of schema-1 results (:data:`V1_RENAMES`, read by
:func:`bench.store.record.migrate_v1`).

The scoring protocol (MSE and MAE on raw predictions, the rest on predictions clipped to [0, 1],
as the SimVP/TAU/OpenSTL metric code does; the papers, TAU Sec. 4 "Measurement" and PLA-SM Sec.
IV-A "Evaluation Metrics", only name the metrics) is explained in :mod:`bench.metrics.functional`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Name of the scoring protocol of ``mse``/``mae`` (recorded in every result).
SCORING_PROTOCOL: str = "published"

#: Upper bound on the per-frame PSNR (reached when a frame's MSE is 0).
PSNR_MAX_DB: float = 100.0


@dataclass(frozen=True)
class Metric:
    """One metric of predicted frames.

    ``key``: its name in results. ``label``/``decimals``: its table header and printed precision.
    ``higher_is_better``: its direction. ``clipped``: scored on predictions clipped to [0, 1] (else on
    the raw predictions). ``convention``: its entry of :data:`METRIC_CONVENTION`, as wrapped lines.
    ``legacy``: its name in schema-1 results, if they had it. ``variant_of``: the published-protocol
    metric it is the clipped variant of: it is shown in its own columns beside that one (never in
    them) and at that metric's display scale.
    """

    key: str
    label: str
    higher_is_better: bool
    decimals: int
    clipped: bool
    convention: tuple[str, ...]
    legacy: str | None = None
    variant_of: str | None = None

    @property
    def scale_key(self) -> str:
        """The metric whose display scale (published.json's ``display_scale``) this one is shown at."""
        return self.variant_of or self.key


METRICS: tuple[Metric, ...] = (
    Metric("mse", "MSE", False, 2, False, (
        "squared error SUMMED over the C*H*W values of a frame, raw predictions (the papers'",
        "convention; Moving MNIST 64x64x1 frames give values around 20-30).")),
    Metric("mae", "MAE", False, 2, False, (
        "absolute error SUMMED over the C*H*W values of a frame, raw predictions.",)),
    Metric("mse_pixel", "MSE/pixel", False, 6, False, (
        "squared error averaged over the C*H*W values of a frame (= mse / (C*H*W)).",)),
    Metric("mae_pixel", "MAE/pixel", False, 6, False, (
        "absolute error averaged over the C*H*W values of a frame (= mae / (C*H*W)).",)),
    Metric("psnr", "PSNR", True, 2, True, (
        "10*log10(1 / per-pixel MSE) in dB per frame (data range 1, float arithmetic, clipped",
        f"predictions), then averaged; a frame with zero error is capped at {PSNR_MAX_DB:g} dB."), legacy="psnr"),
    Metric("ssim", "SSIM", True, 4, True, (
        "scikit-image's structural_similarity(true, pred, data_range=1) with its defaults:",
        "7x7 uniform window, sample covariance (N-1, N=49), K1=0.01, K2=0.03, mean of the",
        "SSIM map over the interior after cropping 3 pixels per side; for C>1 the mean over",
        "channels (channel_axis); clipped predictions. This is the reference SSIM."), legacy="ssim"),
    Metric("ssim_legacy", "SSIM (legacy)", True, 4, True, (
        "the same with data_range=2: what scikit-image <= 0.19 silently used for float",
        "images (dtype range -1..1), i.e. what the SimVP/OpenSTL-family published tables",
        "report. Compare their SSIM with ssim_legacy, not with ssim."), legacy="ssim_legacy"),
    Metric("mse_clipped", "MSE (clipped)", False, 2, True, (
        "the \"clipped\" variant of mse: predictions clipped to [0, 1] first. Never compared",
        "with mse or with published MSE."), legacy="mse", variant_of="mse"),
    Metric("mae_clipped", "MAE (clipped)", False, 2, True, (
        "the clipped variant of mae.",), legacy="mae", variant_of="mae"),
)

#: Metric by key.
BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}

#: Schema-1 metric name -> today's name (schema 1 scored MSE/MAE on clipped predictions).
V1_RENAMES: dict[str, str] = {m.legacy: m.key for m in METRICS if m.legacy is not None}

_KEY_WIDTH = 13  # the column of the explanations in METRIC_CONVENTION


def convention_text() -> str:
    """The exact conventions, as printed by the README and every report and stored in every result."""
    lines = [
        "Metric conventions (true frames have values in [0, 1]; every metric is computed per frame and then",
        "averaged over all predicted frames of all test sequences; scoring protocol "
        f"\"{SCORING_PROTOCOL}\": as the",
        "SimVP/TAU/OpenSTL code, MSE and MAE score the RAW predictions, the other metrics score predictions",
        "clipped to [0, 1]; non-finite predictions fail the run):",
    ]
    for m in METRICS:
        first, *rest = m.convention
        lines.append(f"  {m.key:<{_KEY_WIDTH}}{first}")
        lines += [" " * (_KEY_WIDTH + 2) + line for line in rest]
    higher = ", ".join(m.key for m in METRICS if m.higher_is_better)
    lines.append(f"Higher is better for {higher}; lower is better for the others.")
    return "\n".join(lines)


__all__ = ["BY_KEY", "METRICS", "Metric", "PSNR_MAX_DB", "SCORING_PROTOCOL", "V1_RENAMES", "convention_text"]
