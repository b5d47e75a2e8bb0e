"""Published entries as table cells: the paper rows shown under ours (never ranked).

Each printed SSIM goes in the column of the convention of the code that produced it
(``PublishedEntry.ssim_convention``, see :mod:`bench.report.published`): ``legacy`` in "SSIM (legacy)",
``uint8`` in the plain "SSIM" column, ``unknown`` in a column of its own that holds no value of
ours. A printed PSNR is shown in the PSNR column, marked ‡ when its code wraps in uint8
arithmetic and § when its code cannot be established (both: not comparable with ours). Paper values
never go in the clipped columns.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from bench.metrics.display import SSIM_UNKNOWN
from bench.report.published import Published, PublishedEntry
from bench.report.table import Cell
from bench.report.values import NA

#: our SSIM column for each published SSIM convention
SSIM_COLUMN = {"legacy": "ssim_legacy", "uint8": "ssim", "unknown": SSIM_UNKNOWN}
#: marks of published PSNR whose code is not comparable with ours
PSNR_MARKS = {"uint8-wrap": "‡", "unknown": "§"}
#: published metrics shown in the column of the same name
PAPER_METRICS = ("mse", "mae", "psnr", "flops_g", "train_s", "fps", "params_m")


def source_metric(entry: PublishedEntry, column: str) -> str | None:
    """The published metric shown in our ``column`` for ``entry`` (None: nothing of it goes there)."""
    if column in SSIM_COLUMN.values():
        return "ssim" if SSIM_COLUMN.get(entry.ssim_convention or "unknown") == column else None
    if column in PAPER_METRICS:
        return column
    return None  # clipped and per-pixel columns: the papers print none


def paper_cell(entry: PublishedEntry, column: str, scale: Mapping[str, float]) -> Cell:
    src = source_metric(entry, column)
    value, text = entry.shown(src, scale) if src else (None, None)
    if text is not None and src == "psnr":
        text += PSNR_MARKS.get(entry.psnr_convention or "unknown", "")
    factor = entry.scale.get(src, 1.0) if src else 1.0
    return Cell(text or NA, metric=column if value is not None else None, mean=value,
                scale=None if factor is None else scale.get(column, 1.0), entry=entry)


def paper_cells(entry: PublishedEntry, metrics: Sequence[str], scale: Mapping[str, float]) -> list[Cell]:
    return [paper_cell(entry, m, scale) for m in metrics]


def paper_label(entry: PublishedEntry) -> str:
    return f"{entry.method} — paper ({entry.source})"


def ssim_columns_needed(entries: Iterable[PublishedEntry]) -> list[str]:
    """Our SSIM columns the published SSIM of ``entries`` go to."""
    return sorted({SSIM_COLUMN[e.ssim_convention or "unknown"] for e in entries if "ssim" in e.text})


def has_dagger(entries: Iterable[PublishedEntry], metrics: Sequence[str]) -> bool:
    """Whether any of ``metrics`` of ``entries`` is printed without a stated unit."""
    return any(e.scale.get(m, 1.0) is None and m in e.text for e in entries for m in metrics)


def convention_notes(published: Published, entries: Sequence[PublishedEntry]) -> list[str]:
    """Notes on the SSIM and PSNR code conventions of the paper rows shown."""
    notes = []
    ssim = sorted({e.ssim_convention or "unknown" for e in entries if "ssim" in e.text})
    if ssim:
        where = {"legacy": "\"SSIM (legacy)\"", "uint8": "\"SSIM\"", "unknown": "\"SSIM (paper, code unknown)\""}
        notes.append("Published SSIM is shown in the column of the convention of the code that produced it: "
                     + "; ".join(f"{where[c]}: {published.ssim_conventions.get(c, c).rstrip('.')}" for c in ssim) + ".")
    psnr = sorted({e.psnr_convention or "unknown" for e in entries if "psnr" in e.text})
    if psnr:
        parts = []
        for c in psnr:
            rows = sorted({e.method for e in entries if "psnr" in e.text and (e.psnr_convention or "unknown") == c})
            mark = PSNR_MARKS.get(c, "")
            parts.append(f"{mark + ' ' if mark else ''}{c} ({', '.join(rows)}): "
                         f"{published.psnr_conventions.get(c, c).rstrip('.')}")
        notes.append("Published PSNR by the code behind it: " + "; ".join(parts) + ".")
    return notes


def disagreement_notes(published: Published, dataset: str, pred_len: int | None, methods: Iterable[str]) -> list[str]:
    """One note per cell that two tables print with different values (both sources shown)."""
    notes = []
    for d in published.disagreements(dataset, pred_len, methods):
        values = " vs ".join(f"{text} ({', '.join(srcs)})" for text, srcs in d.values)
        notes.append(f"The papers print two values for {d.method} {d.metric.upper()} on {d.dataset} (→{d.pred_len}): "
                     f"{values}; both sources are listed, neither is preferred.")
    return notes


def roman(t: str) -> int:
    """A table number (arabic or roman) as an integer, for paper order."""
    values = {"I": 1, "V": 5, "X": 10}
    if t.isdigit():
        return int(t)
    total = 0
    for i, ch in enumerate(t):
        v = values.get(ch, 0)
        total += -v if i + 1 < len(t) and values.get(t[i + 1], 0) > v else v
    return total
