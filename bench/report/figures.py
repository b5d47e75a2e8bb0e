"""The figures of a comparability group: what each one shows, gathered from the runs.

The drawing itself is in :mod:`bench.report.plots`; here the data of one group become figures:
learning curves (validation MSE per epoch), metrics per predicted frame (the "metric vs. predicted
frame" figure), test MSE against FLOPs, and qualitative grids of the test sequences the user chose
(``--samples``, indices into the sequences each run stored in ``predictions.npz``). A
``predictions.npz`` that cannot be read, or lacks a chosen sequence, is a problem line, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.metrics.display import header, scale_text
from bench.report import plots
from bench.report.context import Context
from bench.report.efficiency import costs_of
from bench.report.groups import Group
from bench.report.runs import run_dir
from bench.report.values import mean_std
from bench.store.record import RunResult


@dataclass
class Figures:
    """The figures of one group: (caption, path relative to the report) and notes for the text."""

    links: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fig_path(ctx: Context, name: str) -> tuple[Path, str]:
    rel = f"figures/{name}.png"
    return ctx.out_dir / rel, rel


def _axis_label(name: str, factor: float) -> str:
    scale = scale_text(factor)
    return name + (f" ({scale})" if scale else "")


def curves_figure(ctx: Context, group: Group):
    """The learning-curve figure of a group (validation MSE per epoch, one line per row)."""
    key = "mse" if any("mse" in h.val for r in group.runs for h in r.history) else "mse_clipped"
    f = ctx.scale(group.dataset).get(key, 1.0)
    series: dict[str, list[list[tuple[int, float]]]] = {}
    for r in group.rows:
        for run in r.runs:
            curve = [(h.epoch, float(h.val[key]) * f) for h in run.history if key in h.val]
            if curve:
                series.setdefault(r.display, []).append(curve)
    if not series:
        return None
    name = "validation MSE" + (" (clipped)" if key == "mse_clipped" else "")
    return plots.learning_curves(series, f"Validation MSE per epoch — {group.short_title()}", _axis_label(name, f),
                                 ctx.mse_line)


def per_frame_figure(ctx: Context, group: Group):
    """Test metrics per predicted frame, one panel per metric, one line per row: (figure, coinciding pairs)."""
    scale = ctx.scale(group.dataset)
    panels = []
    for m in group.per_frame_metrics():
        series = {r.display: [list(enumerate((v * scale.get(m, 1.0) for v in curve), start=1))
                              for curve in r.per_frame(m)] for r in group.rows if r.per_frame(m)}
        if series:
            panels.append((header(m, scale.get(m, 1.0)), series))
    if not panels:
        return None, {}
    return plots.per_frame_curves(panels, f"Test metrics per predicted frame — {group.short_title()}")


def _load_predictions(ctx: Context, run: RunResult) -> dict[str, np.ndarray] | None:
    folder = run_dir(run)
    path = (folder / "predictions.npz") if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in ("inputs", "truth", "pred")}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one problem line
        ctx.problems.append(f"{path}: cannot be read ({type(exc).__name__}); delete it or re-run that run with --force")
        return None
    if any(a.ndim != 5 or len(a) == 0 for a in arrays.values()) or arrays["pred"].shape != arrays["truth"].shape:
        ctx.problems.append(f"{path}: arrays are not (K, T, C, H, W) with matching truth/pred; delete it or re-run "
                            "that run with --force")
        return None
    return arrays


def samples_figure(ctx: Context, group: Group, index: int = 0):
    """The qualitative grid of stored test sequence ``index`` (the lowest seed of each row that has it)."""
    base: dict[str, Any] | None = None
    preds = {}
    missing = []
    for r in group.rows:
        for run in r.runs:
            arrays = _load_predictions(ctx, run)
            if arrays is None:
                continue
            if index >= len(arrays["truth"]):
                missing.append(f"{r.display} ({len(arrays['truth'])} stored)")
                break
            if base is None:
                base = arrays
            if arrays["truth"].shape[1:] != base["truth"].shape[1:] or not np.array_equal(arrays["truth"][index],
                                                                                          base["truth"][index]):
                ctx.problems.append(f"{run_dir(run)}/predictions.npz: its test sequence {index} differs from the "
                                    f"other methods' in {group.tag}; left out of the qualitative figure")
                break
            preds[r.display] = arrays["pred"][index]
            break
    if missing:
        ctx.problems.append(f"--samples {index}: test sequence {index} is not stored for "
                            f"{', '.join(missing)} in {group.tag}; choose a smaller index")
    if base is None or not preds:
        return None
    return plots.qualitative_grid(base["inputs"][index], base["truth"][index], preds,
                                  f"Test sequence {index} — {group.short_title()}")


def scatter_figure(ctx: Context, group: Group):
    """Test MSE against FLOPs; runs with only a clipped MSE (schema 1) are drawn without paper points."""
    key = "mse" if "mse" in group.present() else "mse_clipped"
    f = ctx.scale(group.dataset).get(key, 1.0)
    points = []
    for r in group.rows:
        flops = costs_of(ctx, group, r).flops_g
        mse, std = mean_std(r.metric(key))
        if flops is not None and mse is not None and flops > 0:
            points.append((r.display, flops, mse * f, False, None if std is None else std * f))
    if not points:
        return None
    if not group.tiny and key == "mse":  # the published cost of the methods in this table: every distinct point, all its sources
        labels = {r.label for r in group.rows}
        found: dict[tuple[str, float, float], list[str]] = {}
        for e in ctx.published.find(group.dataset, group.pred_len):
            if e.method in labels and "flops_g" in e.text:
                v, _ = e.shown("mse", ctx.scale(group.dataset))
                if v is not None:
                    found.setdefault((e.method, round(float(e.text["flops_g"]), 1), round(v, 1)), []).append(e.source)
        for (method, flops, v), sources in sorted(found.items()):
            points.append((f"{method} ({'; '.join(sources)})", flops, v, True))
    ylabel = _axis_label("test MSE" + (" (clipped)" if key != "mse" else ""), f)
    return plots.mse_flops_scatter(points, f"MSE vs FLOPs — {group.short_title()}", ylabel)


def render_figures(ctx: Context, group: Group) -> Figures:
    """Draw every figure of ``group`` into ``ctx.figures`` (path -> PNG bytes; the report writes them)."""
    out = Figures()
    stem = f"{group.dataset}_{group.key.gid}"

    def save(fig, name: str, caption: str) -> None:  # drawn now, written with the report (bench.report.outputs)
        path, rel = _fig_path(ctx, name)
        ctx.figures[path] = plots.png_bytes(fig)
        out.links.append((caption, rel))

    fig = curves_figure(ctx, group)
    if fig is not None:
        save(fig, f"curves_{stem}", "Validation MSE per epoch")
    fig, pairs = per_frame_figure(ctx, group)
    if fig is not None:
        save(fig, f"per_frame_{stem}", "Test metrics per predicted frame")
        for panel, found in pairs.items():
            if found:
                out.notes.append(f"In the per-frame figure ({panel}) these curves coincide and hide each other: "
                                 + "; ".join(f"{a} and {b}" for a, b in found) + ".")
    fig = scatter_figure(ctx, group)
    if fig is not None:
        save(fig, f"mse_flops_{stem}", "Test MSE vs FLOPs")
    for index in ctx.options.samples:
        fig = samples_figure(ctx, group, index)
        if fig is not None:
            save(fig, f"samples_{stem}_seq{index}",
                 f"Qualitative results, test sequence {index} (inputs, truth, predictions, |error|)")
    return out


__all__ = ["Figures", "curves_figure", "per_frame_figure", "samples_figure", "scatter_figure", "render_figures"]
