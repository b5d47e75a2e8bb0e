"""Report plots (matplotlib, no pyplot, PNG): curves, MSE vs FLOPs, qualitative grids.

Every builder returns a :class:`matplotlib.figure.Figure` made without pyplot (no global state, no
GUI backend), so tests can inspect it; :func:`save_png` writes it with fixed size and dpi and
without the "Software" metadata entry, then releases it.

Readability rules:
- Curves (:func:`learning_curves`, :func:`per_frame_curves`): one line per method, the mean over
  seeds with the seeds' min-max range shaded; every method has its own colour, marker and line
  style, and later lines are drawn thinner with smaller markers, so a line lying on another stays
  visible. Series that coincide (closer than :data:`COINCIDE_FRACTION` of the axis range at every
  point) are named in a note inside the figure (and returned, for the report text).
- :func:`mse_flops_scatter`: labels are placed one by one at the first of several offsets around
  their point where they overlap no label, no point and stay inside the figure; a label that fits
  nowhere near its point is moved further out and joined to it by a thin line.
- :func:`qualitative_grid`: inputs, ground truth, then per method its prediction and absolute
  error, as TAU Figure 5, as one mosaic image, with a colour bar for the error scale (and one for
  the values when frames are drawn with a colour map).
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

REFERENCE_LINE_GID = "reference-line"
COINCIDE_GID = "coincide-note"
DPI = 100
COINCIDE_FRACTION = 0.005
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_STYLES = ("-", "--", "-.", ":")


def color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def style(i: int) -> dict:
    """Colour, marker and line style of the ``i``-th series (thinner and smaller as ``i`` grows)."""
    return {"color": color(i), "marker": _MARKERS[i % len(_MARKERS)], "linestyle": _STYLES[i % len(_STYLES)],
            "linewidth": max(0.8, 2.2 - 0.3 * i), "markersize": max(2.5, 6.5 - 0.8 * i)}


def wrap(title: str, width: int = 90) -> str:
    return "\n".join(textwrap.wrap(title, width)) or title


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG bytes (fixed dpi, no Software metadata); the figure is freed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()
    return buf.getvalue()


def save_png(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG (:func:`png_bytes`) and free it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(fig))
    return path


def _summary(curves: Sequence[Sequence[tuple[int, float]]]) -> tuple[np.ndarray, ...] | None:
    """(x, mean, min, max) over seeds of a list of per-seed (x, value) curves."""
    per_x: dict[int, list[float]] = {}
    for curve in curves:
        for x, value in curve:
            if value is not None and np.isfinite(value):
                per_x.setdefault(int(x), []).append(float(value))
    if not per_x:
        return None
    xs = np.array(sorted(per_x))
    return (xs, np.array([np.mean(per_x[x]) for x in xs]), np.array([np.min(per_x[x]) for x in xs]),
            np.array([np.max(per_x[x]) for x in xs]))


def coinciding(means: Mapping[str, tuple[np.ndarray, np.ndarray]], span: float) -> list[tuple[str, str]]:
    """Pairs of series whose means differ by at most COINCIDE_FRACTION of ``span`` at every common x."""
    names = sorted(means)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (xa, ya), (xb, yb) = means[a], means[b]
            if len(xa) != len(xb) or not np.array_equal(xa, xb):
                continue
            if np.max(np.abs(ya - yb)) <= COINCIDE_FRACTION * max(span, 1e-12):
                out.append((a, b))
    return out


def _draw_series(ax, series: Mapping[str, Sequence[Sequence[tuple[int, float]]]]) -> list[tuple[str, str]]:
    means = {}
    for i, name in enumerate(sorted(series)):
        s = _summary(series[name])
        if s is None:
            continue
        xs, mean, lo, hi = s
        ax.plot(xs, mean, label=name, **style(i), zorder=3 + i)
        if np.any(hi > lo):
            ax.fill_between(xs, lo, hi, color=color(i), alpha=0.12, linewidth=0)
        means[name] = (xs, mean)
    values = np.concatenate([m for _, m in means.values()]) if means else np.zeros(1)
    return coinciding(means, float(values.max() - values.min()))


def _note_coinciding(ax, pairs: Sequence[tuple[str, str]]) -> None:
    """Name coinciding series in a line just above the plot area (outside the data, left-aligned)."""
    if pairs:
        text = "coinciding: " + "; ".join(f"{a} = {b}" for a, b in pairs)
        note = ax.text(0.0, 1.015, wrap(text, 70), transform=ax.transAxes, fontsize=6.5, va="bottom", ha="left",
                       color="0.25")
        note.set_gid(COINCIDE_GID)


def learning_curves(series: Mapping[str, Sequence[Sequence[tuple[int, float]]]], title: str,
                    ylabel: str = "validation MSE", reference: float | None = None) -> Figure:
    """One line per method: ``series[method]`` is a list (one per seed) of (epoch, value) pairs."""
    fig = Figure(figsize=(7.0, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    pairs = _draw_series(ax, series)
    if reference is not None:
        line = ax.axhline(reference, color="red", linestyle=":", linewidth=1.5, label=f"MSE {reference:g}")
        line.set_gid(REFERENCE_LINE_GID)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(wrap(title), fontsize=9, pad=14 if pairs else 6)
    _note_coinciding(ax, pairs)
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def per_frame_curves(panels: Sequence[tuple[str, Mapping[str, Sequence[Sequence[tuple[int, float]]]]]],
                     title: str) -> tuple[Figure, dict[str, list[tuple[str, str]]]]:
    """One panel per metric (``(ylabel, series)``), x = predicted frame t' = 1..T'; returns the
    figure and, per panel, the coinciding pairs."""
    n = len(panels)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(5.0 * cols, 3.4 * rows + 0.5))
    found: dict[str, list[tuple[str, str]]] = {}
    for k, (ylabel, series) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1)
        pairs = _draw_series(ax, series)
        _note_coinciding(ax, pairs)
        found[ylabel] = pairs
        ax.set_xlabel("predicted frame t'")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        if k == 0 and ax.lines:
            ax.legend(fontsize=7, loc="best")
    fig.suptitle(wrap(title, int(14 * 5.0 * cols)), fontsize=9)
    fig.tight_layout()
    return fig, found


def method_lines(fig: Figure, panel: int = 0) -> list[str]:
    """Labels of the method lines of a curves figure (reference line excluded)."""
    ax = fig.axes[panel]
    return [ln.get_label() for ln in ax.lines if ln.get_gid() != REFERENCE_LINE_GID]


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


_OFFSETS = [(6, 6), (6, -14), (-6, 6), (-6, -14), (0, 12), (0, -20), (10, -4), (-10, -4)]


def place_labels(fig: Figure, ax, points: Sequence[tuple[float, float]], labels: Sequence[str],
                 styles: Sequence[dict]) -> list:
    """Annotate ``points`` with ``labels`` so that no two labels overlap each other, a point or the
    legend (see the module docstring)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox

    renderer = FigureCanvasAgg(fig).get_renderer()
    legend = ax.get_legend()
    taken = [legend.get_window_extent(renderer)] if legend is not None else []
    for x, y in points:  # the markers themselves
        px, py = ax.transData.transform((x, y))
        taken.append(Bbox([[px - 5, py - 5], [px + 5, py + 5]]))
    frame = fig.bbox
    placed = []
    for (x, y), text, st in zip(points, labels, styles):
        best = None
        for radius in (1.0, 2.2, 3.6, 5.0):
            for dx, dy in _OFFSETS:
                off = (dx * radius, dy * radius)
                ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=off,
                                  ha="left" if dx >= 0 else "right", **st)
                box = ann.get_window_extent(renderer).expanded(1.05, 1.15)
                inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
                if inside and not any(_overlaps(box, t) for t in taken):
                    best = (ann, box, radius)
                    break
                ann.remove()
            if best is not None:
                break
        if best is None:  # nowhere free: the far position, with a leader line
            ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=(30, 30), ha="left",
                              arrowprops={"arrowstyle": "-", "color": "0.5", "linewidth": 0.5}, **st)
            best = (ann, ann.get_window_extent(renderer), 5.0)
        ann, box, radius = best
        if radius > 1.0 and ann.arrow_patch is None:
            ann.remove()
            ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=ann.xyann, ha=ann.get_ha(),
                              arrowprops={"arrowstyle": "-", "color": "0.6", "linewidth": 0.5}, **st)
        taken.append(box)
        placed.append(ann)
    return placed


def mse_flops_scatter(points: Sequence[tuple], title: str, ylabel: str = "test MSE") -> Figure:
    """``points``: (label, GFLOPs, MSE, is_paper[, std over seeds]). Ours filled and coloured with the
    seeds' ± std as an error bar, papers hollow grey."""
    fig = Figure(figsize=(7.0, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    ours = sorted(p for p in points if not p[3])
    paper = sorted(p for p in points if p[3])
    for i, (label, flops, mse, _, *err) in enumerate(ours):
        ax.scatter([flops], [mse], color=color(i), marker=_MARKERS[i % len(_MARKERS)], s=40, zorder=3, label=label)
        if err and err[0]:
            ax.errorbar([flops], [mse], yerr=[err[0]], color=color(i), capsize=3, linewidth=1, zorder=2)
    if paper:
        ax.scatter([p[1] for p in paper], [p[2] for p in paper], facecolors="none", edgecolors="0.5", s=36,
                   zorder=2, label="published")
    flops_all = [p[1] for p in points if p[1] > 0]
    if flops_all and max(flops_all) / min(flops_all) > 20:
        ax.set_xscale("log")
    ax.margins(0.15)
    ax.set_xlabel("FLOPs (G, fvcore, one sample)")
    ax.set_ylabel(ylabel)
    ax.set_title(wrap(title), fontsize=9)
    ax.grid(True, alpha=0.3)
    if ours or paper:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    styles = [{"fontsize": 7}] * len(ours) + [{"fontsize": 6, "color": "0.35"}] * len(paper)
    place_labels(fig, ax, [(p[1], p[2]) for p in ours + paper], [p[0] for p in ours + paper], styles)
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

    The tiles are one mosaic image drawn with a single ``imshow``; small frames are enlarged by an
    integer factor. The error is the absolute difference averaged over channels, on one colour scale
    shared by all methods (0 to the largest error in the figure), shown by the colour bar.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

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
    top_in, bottom_in, bar_in = 0.85, 0.25, 0.9
    colour_values = truth.shape[1] not in (1, 3)
    img_w, img_h = mosaic.shape[1] * zoom / DPI, mosaic.shape[0] * zoom / DPI
    fig_w = max(label_in + img_w + bar_in * (2 if colour_values else 1) + 0.1, 6.0)
    fig_h = top_in + img_h + bottom_in
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
    bar_h = min(img_h, 2.5) / fig_h
    x0 = (label_in + img_w + 0.15) / fig_w
    cax = fig.add_axes((x0, bottom_in / fig_h, 0.15 / fig_w, bar_h))
    cbar = fig.colorbar(ScalarMappable(norm=Normalize(0, vmax), cmap=magma), cax=cax)
    cbar.set_label("|error| (grey levels of 255)", fontsize=6)
    cbar.ax.tick_params(labelsize=6)
    if colour_values:
        vax = fig.add_axes((x0 + bar_in / fig_w, bottom_in / fig_h, 0.15 / fig_w, bar_h))
        vbar = fig.colorbar(ScalarMappable(norm=Normalize(0, 255), cmap=colormaps["viridis"]), cax=vax)
        vbar.set_label("value, channel 0 (of 255)", fontsize=6)
        vbar.ax.tick_params(labelsize=6)
    note = f"|error| = |prediction - truth| averaged over channels, colour scale 0-{vmax:.0f} (of 255)"
    fig.suptitle(wrap(title, int(fig_w * 13)) + "\n" + wrap(note, int(fig_w * 13)), fontsize=8, y=1 - 0.05 / fig_h,
                 va="top")
    return fig
