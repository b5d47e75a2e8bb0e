"""Issue 21: a metric is declared once (bench.metrics.declarations) and every per-metric table derives from it.

The derived tables must be the ones the code held before they were derived (the literals below were
printed by that code), and the conventions text stored in every result must be the one stored by it
(the fixture results of tools/make_store_fixtures.py were written before the change).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.metrics import display
from bench.metrics.declarations import METRICS, V1_RENAMES
from bench.metrics.functional import CLIPPED_KEYS, HIGHER_IS_BETTER, METRIC_CONVENTION, METRIC_KEYS
from bench.report.context import Context, ReportOptions
from bench.report.published import load_published

STORED = Path(__file__).parent / "fixtures" / "store" / "results" / "mmnist" / "simvp" / "3a40d9cb0a" / "seed0"


def test_the_metric_tables_are_the_ones_declared_before():
    assert METRIC_KEYS == ("mse", "mae", "mse_pixel", "mae_pixel", "psnr", "ssim", "ssim_legacy", "mse_clipped",
                           "mae_clipped")
    assert CLIPPED_KEYS == {"mae_clipped", "mse_clipped", "psnr", "ssim", "ssim_legacy"}
    assert list(HIGHER_IS_BETTER.items()) == [(k, k in ("psnr", "ssim", "ssim_legacy")) for k in METRIC_KEYS]
    assert V1_RENAMES == {"mse": "mse_clipped", "mae": "mae_clipped", "psnr": "psnr", "ssim": "ssim",
                          "ssim_legacy": "ssim_legacy"}


def test_the_display_tables_are_the_ones_declared_before():
    assert display.LABELS == {
        "mse": "MSE", "mae": "MAE", "ssim": "SSIM", "ssim_legacy": "SSIM (legacy)", "psnr": "PSNR",
        "mse_clipped": "MSE (clipped)", "mae_clipped": "MAE (clipped)", "ssim_unknown": "SSIM (paper, code unknown)",
        "mse_pixel": "MSE/pixel", "mae_pixel": "MAE/pixel", "flops_g": "FLOPs (G)", "train_s": "Train (s/epoch)",
        "fps": "Test (fps)", "params_m": "#Params (M)"}
    assert display.DECIMALS == {
        "mse": 2, "mae": 2, "ssim": 4, "ssim_legacy": 4, "psnr": 2, "mse_pixel": 6, "mae_pixel": 6,
        "mse_clipped": 2, "mae_clipped": 2, "ssim_unknown": 4, "flops_g": 3, "train_s": 2, "fps": 1, "params_m": 3}
    assert list(display.CLIPPED.items()) == [("mse", "mse_clipped"), ("mae", "mae_clipped")]
    higher = {k for k in display.LABELS if display.higher_is_better(k)}
    assert higher == {"ssim", "ssim_legacy", "psnr", "ssim_unknown", "fps"}
    assert display.header("mse_clipped", 100) == "MSE (clipped)↓ (×100)" and display.header("psnr") == "PSNR↑"


def test_the_conventions_text_is_the_one_every_result_stores():
    stored = json.loads((STORED / "result.json").read_text())["scoring"]["text"]
    assert METRIC_CONVENTION == stored
    for m in METRICS:  # every metric has its line, at the column of the others
        assert f"\n  {m.key:<13}{m.convention[0]}\n" in METRIC_CONVENTION


def test_a_clipped_column_is_shown_at_its_metrics_scale(tmp_path):
    ctx = Context(tmp_path, tmp_path, load_published(), [], {}, [], ReportOptions())
    assert ctx.scale("taxibj") == {"mse": 100, "mse_clipped": 100}
    assert ctx.scale("human36m") == {"mae": 0.01, "mse": 0.1, "mse_clipped": 0.1, "mae_clipped": 0.01}
    assert ctx.scale("mmnist") == {}
