"""Report figures (matplotlib, Agg, PNG): learning curves, MSE vs FLOPs, qualitative grids.

Every builder returns a :class:`matplotlib.figure.Figure` made without pyplot (no global state, no
GUI backend), so tests can inspect it; :func:`save_png` writes it with fixed size and dpi and
without the "Software" metadata entry, then releases it.

- :func:`learning_curves`: validation MSE per epoch, one line per method (the mean over seeds,
  with the seeds' min-max range shaded), as TAU Figure 8; an optional dotted red horizontal
  reference line (TAU uses MSE 35.0).
- :func:`mse_flops_scatter`: test MSE against fvcore FLOPs (log axis), ours filled, published
  hollow grey.
- :func:`qualitative_grid`: rows input frames, ground truth, then for each method its prediction
  and absolute error, as TAU Figure 5, drawn as one mosaic image. At most ``max_cols`` frames per
  row (evenly spaced when the sequence is longer); input frame numbers (t) above the first row,
  output frame numbers (t') under the last. One channel is shown grey, three
  as RGB, any other count as channel 0 with a colour map (TaxiBJ inflow). The error is the
  absolute difference averaged over channels, on one colour scale shared by all methods
  (0 to the largest error in the figure).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

REFERENCE_LINE_GID = "reference-line"
DPI = 100
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def wrap(title: str, width: int = 90) -> str:
    return "\n".join(textwrap.wrap(title, width)) or title


def save_png(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG (fixed dpi, no Software metadata) and free it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()
    return path


def learning_curves(series: Mapping[str, Sequence[Sequence[tuple[int, float]]]], title: str,
                    ylabel: str = "validation MSE", reference: float | None = None) -> Figure:
    """One line per method: ``series[method]`` is a list (one per seed) of (epoch, value) pairs."""
    fig = Figure(figsize=(7.0, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    for i, name in enumerate(sorted(series)):
        per_epoch: dict[int, list[float]] = {}
        for seed_curve in series[name]:
            for epoch, value in seed_curve:
                if value is not None and np.isfinite(value):
                    per_epoch.setdefault(int(epoch), []).append(float(value))
        if not per_epoch:
            continue
        epochs = np.array(sorted(per_epoch))
        mean = np.array([np.mean(per_epoch[e]) for e in epochs])
        lo = np.array([np.min(per_epoch[e]) for e in epochs])
        hi = np.array([np.max(per_epoch[e]) for e in epochs])
        ax.plot(epochs, mean, color=color(i), marker="o" if len(epochs) < 12 else None, markersize=3,
                linewidth=1.6, label=name)
        if np.any(hi > lo):
            ax.fill_between(epochs, lo, hi, color=color(i), alpha=0.15, linewidth=0)
    if reference is not None:
        line = ax.axhline(reference, color="red", linestyle=":", linewidth=1.5, label=f"MSE {reference:g}")
        line.set_gid(REFERENCE_LINE_GID)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(wrap(title), fontsize=9)
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def method_lines(fig: Figure) -> list[str]:
    """Labels of the method lines of a :func:`learning_curves` figure (reference line excluded)."""
    ax = fig.axes[0]
    return [ln.get_label() for ln in ax.lines if ln.get_gid() != REFERENCE_LINE_GID]


def mse_flops_scatter(points: Sequence[tuple[str, float, float, bool]], title: str,
                      ylabel: str = "test MSE") -> Figure:
    """``points``: (label, GFLOPs, MSE, is_paper). Ours filled and coloured, papers hollow grey."""
    fig = Figure(figsize=(7.0, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    ours = sorted(p for p in points if not p[3])
    for i, (label, flops, mse, _) in enumerate(ours):
        ax.scatter([flops], [mse], color=color(i), s=40, zorder=3, label=label)
        ax.annotate(label, (flops, mse), textcoords="offset points", xytext=(4, 4), fontsize=7)
    paper = sorted(p for p in points if p[3])
    if paper:
        ax.scatter([p[1] for p in paper], [p[2] for p in paper], facecolors="none", edgecolors="0.5", s=36,
                   zorder=2, label="published")
        for label, flops, mse, _ in paper:
            ax.annotate(label, (flops, mse), textcoords="offset points", xytext=(4, -9), fontsize=6, color="0.4")
    flops_all = [p[1] for p in points if p[1] > 0]
    if flops_all and max(flops_all) / min(flops_all) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("FLOPs (G, fvcore, one sample)")
    ax.set_ylabel(ylabel)
    ax.set_title(wrap(title), fontsize=9)
    ax.grid(True, alpha=0.3)
    if ours or paper:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _frame_indices(length: int, max_cols: int) -> list[int]:
    if length <= max_cols:
        return list(range(length))
    return sorted({int(round(x)) for x in np.linspace(0, length - 1, max_cols)})


def _rgb(frame: np.ndarray) -> np.ndarray:
    """One (C, H, W) uint8 frame as (H, W, 3) floats in [0, 1]."""
    from matplotlib import colormaps

    c = frame.shape[0]
    if c == 3:
        return np.transpose(frame, (1, 2, 0)).astype(np.float32) / 255.0
    if c == 1:
        return np.repeat(frame[0][..., None].astype(np.float32) / 255.0, 3, axis=2)
    return colormaps["viridis"](frame[0].astype(np.float32) / 255.0)[..., :3].astype(np.float32)


def qualitative_grid(inputs: np.ndarray, truth: np.ndarray, preds: Mapping[str, np.ndarray], title: str,
                     max_cols: int = 10) -> Figure:
    """Rows: inputs, ground truth, then per method its prediction and |error| (arrays (T, C, H, W) uint8).

    The tiles are assembled into one mosaic image drawn with a single ``imshow`` (fast for many
    frames and methods); small frames are enlarged by an integer factor, large ones drawn 1:1.
    """
    from matplotlib import colormaps

    names = sorted(preds)
    in_idx = _frame_indices(inputs.shape[0], max_cols)
    out_idx = _frame_indices(truth.shape[0], max_cols)
    ncols = max(len(in_idx), len(out_idx))
    h, w = truth.shape[-2:]
    errors = {n: np.abs(preds[n].astype(np.float32) - truth.astype(np.float32)).mean(axis=1) for n in names}
    vmax = max([1.0] + [float(e.max()) for e in errors.values()])
    magma = colormaps["magma"]
    rows: list[tuple[str, list[np.ndarray]]] = [("input", [_rgb(inputs[t]) for t in in_idx]),
                                                ("ground truth", [_rgb(truth[t]) for t in out_idx])]
    for n in names:
        rows.append((n, [_rgb(preds[n][t]) for t in out_idx]))
        rows.append((f"|error| {n}", [magma(errors[n][t] / vmax)[..., :3] for t in out_idx]))
    pad = 2
    mosaic = np.ones((len(rows) * (h + pad) - pad, ncols * (w + pad) - pad, 3), dtype=np.float32)
    for r, (_, tiles) in enumerate(rows):
        for c, tile in enumerate(tiles):
            mosaic[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = tile
    zoom = max(1, min(64 // max(h, 1), 1600 // max(mosaic.shape[1], 1)))
    label_in = 0.3 + 0.07 * max(len(n) for n, _ in rows)
    top_in = 0.85
    img_w, img_h = mosaic.shape[1] * zoom / DPI, mosaic.shape[0] * zoom / DPI
    bottom_in = 0.25
    fig_w, fig_h = max(label_in + img_w + 0.1, 6.0), top_in + img_h + bottom_in
    fig = Figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((label_in / fig_w, bottom_in / fig_h, img_w / fig_w, img_h / fig_h))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    for r, (label, _) in enumerate(rows):
        ax.text(-pad * 2, r * (h + pad) + h / 2, label, ha="right", va="center", fontsize=7)
    for c, t in enumerate(in_idx):
        ax.text(c * (w + pad) + w / 2, -pad, f"t={t + 1}", ha="center", va="bottom", fontsize=6)
    for c, t in enumerate(out_idx):  # output frame numbers under the last row
        ax.text(c * (w + pad) + w / 2, mosaic.shape[0] + pad, f"t'={t + 1}", ha="center", va="top", fontsize=6)
    note = f"|error| = |prediction - truth| averaged over channels, colour scale 0-{vmax:.0f} (of 255)"
    fig.suptitle(wrap(title, int(fig_w * 13)) + "\n" + wrap(note, int(fig_w * 13)), fontsize=8, y=1 - 0.05 / fig_h,
                 va="top")
    return fig
