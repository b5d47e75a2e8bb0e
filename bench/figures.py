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
  and absolute error, as TAU Figure 5. At most ``max_cols`` frames per row (evenly spaced when the
  sequence is longer, each column titled with its frame number). One channel is shown grey, three
  as RGB, any other count as channel 0 with a colour map (TaxiBJ inflow). The error is the
  absolute difference averaged over channels, on one colour scale shared by all methods
  (0 to the largest error in the figure).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

REFERENCE_LINE_GID = "reference-line"
DPI = 100
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


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
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
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
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if ours or paper:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _frame_indices(length: int, max_cols: int) -> list[int]:
    if length <= max_cols:
        return list(range(length))
    return sorted({int(round(x)) for x in np.linspace(0, length - 1, max_cols)})


def _show(ax, frame: np.ndarray) -> None:
    """Draw one (C, H, W) uint8 frame."""
    c = frame.shape[0]
    if c == 3:
        ax.imshow(np.transpose(frame, (1, 2, 0)), interpolation="nearest")
    elif c == 1:
        ax.imshow(frame[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(frame[0], cmap="viridis", vmin=0, vmax=255, interpolation="nearest")


def qualitative_grid(inputs: np.ndarray, truth: np.ndarray, preds: Mapping[str, np.ndarray], title: str,
                     max_cols: int = 10) -> Figure:
    """Rows: inputs, ground truth, then per method its prediction and |error| (arrays (T, C, H, W) uint8)."""
    names = sorted(preds)
    in_idx = _frame_indices(inputs.shape[0], max_cols)
    out_idx = _frame_indices(truth.shape[0], max_cols)
    ncols = max(len(in_idx), len(out_idx))
    nrows = 2 + 2 * len(names)
    h, w = truth.shape[-2:]
    cell = 1.0
    fig = Figure(figsize=(1.6 + ncols * cell * max(w / h, 0.5), 0.6 + nrows * cell))
    errors = {n: np.abs(preds[n].astype(np.float32) - truth.astype(np.float32)).mean(axis=1) for n in names}
    vmax = max([1.0] + [float(e.max()) for e in errors.values()])
    rows: list[tuple[str, list[int], object]] = [("input", in_idx, inputs), ("ground truth", out_idx, truth)]
    for n in names:
        rows.append((n, out_idx, preds[n]))
        rows.append((f"|error| {n}", out_idx, errors[n]))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for r, (label, idx, arr) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c >= len(idx):
                ax.axis("off")
                continue
            t = idx[c]
            if label.startswith("|error|"):
                ax.imshow(arr[t], cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
            else:
                _show(ax, arr[t])
            if r in (0, 1):
                ax.set_title(f"t={t + 1}" if r == 0 else f"t'={t + 1}", fontsize=6, pad=2)
            if c == 0:
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(f"{title}\n|error| = |prediction - truth| averaged over channels, colour scale 0-{vmax:.0f} "
                 f"(of 255)", fontsize=8)
    fig.subplots_adjust(left=0.2, right=0.99, bottom=0.01, top=1 - 0.9 / (0.6 + nrows * cell), wspace=0.05,
                        hspace=0.25)
    return fig
