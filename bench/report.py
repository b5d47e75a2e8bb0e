"""The report: comparison, ablation, sweep and efficiency tables and figures from stored runs.

Entry point: :func:`write_report` (``bench report``). Nothing is re-run: the report reads
``result.json`` and ``predictions.npz`` of every run and the ``bench audit`` records
(:mod:`bench.results` defines the layout), and writes ``report.md`` (always), ``report.csv`` and
``report.tex`` on request, and PNG figures under ``figures/``.

Rules (the choices made where the task leaves room):

- Comparability. Runs are only ever ranked against runs with the same *comparability key*:
  dataset, frames in -> out (``pred_len``), frame geometry, training budget (epochs), tiny vs
  paper-size model, split sizes, the data source (``dataset.info`` without path-like keys, e.g.
  ``digit_source``), the data seed (which fixes the validation/test sets) and the metric
  convention text. Each key is one table, tagged ``<dataset>[k]`` and headed by all of its values;
  when a dataset has several, the heading says in which fields they differ.
- Rows. A row is one method label (``tau:no-ddr``) with one hyperparameter configuration; if the
  same label was run with different hyperparameters in one group (``--set``), the rows are kept
  apart and suffixed with the differing keys. Cells are mean +- sample standard deviation (n - 1)
  over the seeds; ``n`` is the number of seeds; one seed shows the mean alone.
- Ranking. Within one table and one column, **bold** is the best and underlined the second best
  of *our* rows, comparing the values as displayed; ties share a rank (competition ranking: a tie
  for the best leaves no second); a column with fewer than two values is not ranked. Published rows (italic, "paper") are never ranked: they sit under our
  rows for reference only. In efficiency tables, train time and fps are ranked only when every row
  was measured on the same device.
- Display scale. Metrics are shown as the papers print them (``published.json``
  ``display_scale``): TaxiBJ MSE x100 (TAU Table 3, PLA-SM IV-D), Human3.6M MSE /10 and MAE /100
  (PLA-SM IV-D); others unscaled. CSV holds the raw values too.
- Published SSIM. The papers' SSIM used scikit-image<=0.19's convention (float images,
  data_range=2); it is shown in the "SSIM (legacy)" column, which our metrics compute that way.
- Paper rows in a comparison table are the published *comparison* rows (TAU Tables 2-5, PLA-SM
  Tables II-IV) of the methods in the table; a label without any (``tau:no-ddr``) gets its rows
  from the other tables (ablations, sweeps). Every transcribed table of the datasets present is
  listed in full in the appendix.
- Efficiency (PLA-SM Table V layout): FLOPs, params and fps come from the ``bench audit`` record
  of (dataset, label, tiny) when there is one and the runs used no ``--set`` overrides, else from
  the runs' own measurements (mean over seeds); train seconds per epoch and MSE always come from
  the runs. Audit fields read: dataset, label, method, tiny, params, flops, flops_skipped, fps,
  fps_batch, device, device_name (and reference.{params, flops, source} when present).
- Determinism: the same results directory gives byte-identical markdown/CSV/TeX: everything is
  sorted, floats have fixed formats, and no time or absolute output path is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from bench import results as store
from bench.errors import BenchError
from bench.published import Published, PublishedEntry, load_published

# --------------------------------------------------------------------------------------------
# Metrics: names, arrows, decimals
# --------------------------------------------------------------------------------------------

METRICS = ("mse", "mae", "ssim", "ssim_legacy", "psnr")
METRIC_LABELS = {"mse": "MSE", "mae": "MAE", "ssim": "SSIM", "ssim_legacy": "SSIM (legacy)", "psnr": "PSNR",
                 "mse_pixel": "MSE/pixel", "mae_pixel": "MAE/pixel", "flops_g": "FLOPs (G)",
                 "train_s": "Train (s/epoch)", "fps": "Test (fps)", "params_m": "#Params (M)"}
_HIGHER = {"ssim": True, "ssim_legacy": True, "psnr": True, "fps": True, "mse": False, "mae": False,
           "mse_pixel": False, "mae_pixel": False, "flops_g": False, "train_s": False, "params_m": False}
DECIMALS = {"mse": 2, "mae": 2, "ssim": 4, "ssim_legacy": 4, "psnr": 2, "mse_pixel": 6, "mae_pixel": 6,
            "flops_g": 3, "train_s": 2, "fps": 1, "params_m": 3}
#: published "ssim" values go in this column (same convention)
PAPER_SSIM_COLUMN = "ssim_legacy"
#: metric columns of ablation and sweep tables, per dataset (as the papers' ablation tables)
ABLATION_METRICS = {"kth": ("ssim", "ssim_legacy", "psnr"), "kitti_caltech": ("ssim", "ssim_legacy", "psnr")}
DEFAULT_ABLATION_METRICS = ("mse", "mae", "ssim", "ssim_legacy")
DATASET_NAMES = {"mmnist": "Moving MNIST", "taxibj": "TaxiBJ", "human36m": "Human3.6M", "kth": "KTH",
                 "kitti_caltech": "KITTI -> Caltech Pedestrian"}
NA = "–"


@lru_cache(maxsize=1)
def _metrics_directions() -> Any:
    try:
        from bench.metrics import HIGHER_IS_BETTER  # noqa: PLC0415 (optional: our table is the fallback)
    except Exception:
        return None
    return HIGHER_IS_BETTER


def higher_is_better(metric: str) -> bool:
    """Direction of a metric: ``bench.metrics.HIGHER_IS_BETTER`` where it says, else our table."""
    known = _metrics_directions()
    if isinstance(known, Mapping) and metric in known:
        return bool(known[metric])
    if isinstance(known, (set, frozenset, list, tuple)) and metric in METRICS:
        return metric in known
    return _HIGHER.get(metric, False)


def arrow(metric: str) -> str:
    return "↑" if higher_is_better(metric) else "↓"


def header(metric: str) -> str:
    return f"{METRIC_LABELS.get(metric, metric)}{arrow(metric)}"


def fmt(value: float | None, decimals: int) -> str:
    if value is None or not math.isfinite(value):
        return NA
    text = f"{value:.{decimals}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return text


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
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


def rank_values(values: Sequence[float | None], higher: bool, decimals: int) -> list[int | None]:
    """Competition ranks (1 + number of strictly better values, compared as displayed) when they are
    1 (best) or 2 (second best), else None. Ties share a rank, so a tie for the best leaves no
    second; fewer than two values, or all equal, are not ranked."""
    shown = [None if v is None or not math.isfinite(v) else round(v, decimals) for v in values]
    present = [v for v in shown if v is not None]
    if len(present) < 2 or len(set(present)) == 1:  # nothing to tell apart
        return [None] * len(values)
    ranks: list[int | None] = []
    for v in shown:
        rank = None if v is None else 1 + sum((o > v) if higher else (o < v) for o in present)
        ranks.append(rank if rank in (1, 2) else None)
    return ranks


# --------------------------------------------------------------------------------------------
# Table model and renderers
# --------------------------------------------------------------------------------------------


@dataclass
class Cell:
    text: str
    rank: int | None = None
    metric: str | None = None
    mean: float | None = None  # displayed scale
    std: float | None = None
    n: int | None = None
    scale: float | None = 1.0  # displayed = raw x scale (None: unknown unit)


@dataclass
class Row:
    cells: list[Cell]
    kind: str = "ours"  # ours | paper
    method: str = ""
    source: str = "ours"


@dataclass
class Table:
    tid: str
    title: str
    columns: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    dataset: str = ""
    group: str = ""
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, relative path)
    details: list[tuple[str, str]] = field(default_factory=list)  # (summary, preformatted text), markdown only


def rank_table(table: Table, columns: Iterable[int], only: Callable[[Row], bool] | None = None) -> None:
    """Rank our rows of ``table`` in each of ``columns`` (cells carrying a metric and a mean)."""
    rows = [r for r in table.rows if r.kind == "ours" and (only is None or only(r))]
    for c in columns:
        cells = [r.cells[c] for r in rows]
        metrics = {cell.metric for cell in cells if cell.metric}
        if len(metrics) != 1:
            continue
        metric = metrics.pop()
        ranks = rank_values([cell.mean for cell in cells], higher_is_better(metric), DECIMALS.get(metric, 3))
        for cell, rk in zip(cells, ranks):
            cell.rank = rk


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_") \
        .replace("<", "&lt;").replace(">", "&gt;")


def _md_cell(cell: Cell) -> str:
    text = _md_escape(cell.text)
    if cell.rank == 1:
        return f"**{text}**"
    if cell.rank == 2:
        return f"<u>{text}</u>"
    return text


def numeric_columns(table: Table) -> list[bool]:
    """Columns holding numbers (right-aligned): any cell with a metric, or the seed count."""
    return [i > 0 and (table.columns[i] == "n" or any(len(r.cells) > i and r.cells[i].metric for r in table.rows))
            for i in range(len(table.columns))]


def render_md_table(table: Table) -> list[str]:
    align = ["---:" if num else "---" for num in numeric_columns(table)]
    lines = ["| " + " | ".join(_md_escape(c) for c in table.columns) + " |", "|" + "|".join(align) + "|"]
    for row in table.rows:
        cells = [_md_cell(c) for c in row.cells]
        if row.kind == "paper":
            cells[0] = f"*{cells[0]}*"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


_TEX_MAP = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "↓": r"$\downarrow$",
            "↑": r"$\uparrow$", "→": r"$\rightarrow$", "×": r"$\times$", "†": r"$^\dagger$", "–": "--", "—": "---",
            "·": r"$\cdot$", "<": r"\textless{}", ">": r"\textgreater{}", "*": r"$^*$", "−": "$-$",
            "≤": r"$\leq$", "…": r"\dots{}"}


def _plain(note: str) -> str:
    """A markdown note as plain text (for TeX)."""
    return note.replace("**", "").replace("<u>", "").replace("</u>", "").replace("\\*", "*").replace("`", "")


def tex_escape(text: str) -> str:
    return "".join(_TEX_MAP.get(ch, ch) for ch in text)


def render_tex_table(table: Table) -> list[str]:
    lines = [r"\begin{table}[t]", r"\centering", r"\footnotesize",
             rf"\caption{{{tex_escape(table.title)}}}", rf"\label{{tab:{table.tid}}}",
             r"\begin{tabular}{" + "".join("r" if n else "l" for n in numeric_columns(table)) + "}", r"\toprule",
             " & ".join(tex_escape(c) for c in table.columns) + r" \\", r"\midrule"]
    previous = "ours"
    for row in table.rows:
        if row.kind != previous:
            lines.append(r"\midrule")
            previous = row.kind
        cells = []
        for i, cell in enumerate(row.cells):
            text = tex_escape(cell.text)
            if cell.rank == 1:
                text = rf"\textbf{{{text}}}"
            elif cell.rank == 2:
                text = rf"\underline{{{text}}}"
            if i == 0 and row.kind == "paper":
                text = rf"\textit{{{text}}}"
            cells.append(text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        lines.append(r"\par\smallskip\parbox{\linewidth}{\scriptsize " +
                     r" \\ ".join(tex_escape(_plain(n)) for n in table.notes) + "}")
    lines.append(r"\end{table}")
    return lines


CSV_FIELDS = ("table", "dataset", "group", "row_kind", "method", "source", "column", "metric", "n",
              "display_mean", "display_std", "display_scale", "raw_mean", "raw_std", "text", "rank")


def csv_records(table: Table) -> Iterable[dict[str, Any]]:
    for row in table.rows:
        for col, cell in zip(table.columns[1:], row.cells[1:]):
            if cell.metric is None or cell.mean is None:
                continue
            scale = cell.scale
            raw_mean = None if scale in (None, 0) else cell.mean / scale
            raw_std = None if scale in (None, 0) or cell.std is None else cell.std / scale
            yield {"table": table.tid, "dataset": table.dataset, "group": table.group, "row_kind": row.kind,
                   "method": row.method, "source": row.source, "column": col, "metric": cell.metric,
                   "n": "" if cell.n is None else cell.n, "display_mean": _g(cell.mean),
                   "display_std": _g(cell.std), "display_scale": "unknown" if scale is None else _g(scale),
                   "raw_mean": _g(raw_mean), "raw_std": _g(raw_std), "text": cell.text,
                   "rank": "" if cell.rank is None else cell.rank}


def _g(value: float | None) -> str:
    return "" if value is None else f"{float(value):.12g}"


# --------------------------------------------------------------------------------------------
# Reading runs
# --------------------------------------------------------------------------------------------


def _get(d: Any, *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(d, Mapping) or p not in d:
            return default
        d = d[p]
    return d


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))


def _num_key(v: Any) -> tuple:
    """Sort key that orders numbers numerically and anything else after them as text."""
    if isinstance(v, bool):
        return (1, str(v))
    if isinstance(v, (int, float)):
        return (0, float(v), "")
    return (1, str(v))


def pred_len(run: Mapping[str, Any]) -> int | None:
    return _get(run, "config", "pred_len", default=_get(run, "dataset", "out_frames"))


_PATHLIKE = ("path", "dir", "file", "files", "root")
_DUPLICATED_INFO = ("sizes", "data_seed")  # also in the key as the run's own config


def _info(run: Mapping[str, Any]) -> dict[str, Any]:
    info = _get(run, "dataset", "info", default={}) or {}
    if not isinstance(info, Mapping):
        return {"info": str(info)}
    return {str(k): v for k, v in info.items()
            if not str(k).lower().endswith(_PATHLIKE) and str(k) not in _DUPLICATED_INFO}


def data_source(run: Mapping[str, Any]) -> str:
    """The data source shown in headings: ``digit_source`` (or any ``*source*`` keys) of ``dataset.info``."""
    info = _info(run)
    if "digit_source" in info:
        return f"digits: {info['digit_source']}"
    items = [(k, v) for k, v in sorted(info.items()) if "source" in k.lower()]
    if not items:
        return "data source unrecorded"
    return ", ".join(f"{k}: {v if not isinstance(v, (dict, list)) else _canon(v)}" for k, v in items)


def data_info_id(run: Mapping[str, Any]) -> str:
    """A short id of everything else in ``dataset.info`` (generator, pools...): shown when it differs."""
    rest = {k: v for k, v in _info(run).items() if "source" not in k.lower()}
    return "data info " + hashlib.sha1(_canon(rest).encode()).hexdigest()[:6]


def device_of(run: Mapping[str, Any]) -> str:
    return str(_get(run, "environment", "device_name") or _get(run, "config", "device") or "unrecorded")


def convention_of(run: Mapping[str, Any]) -> str:
    return str(run.get("metric_convention") or "")


#: key fields shown in a heading only when they differ between groups of one dataset
HIDDEN_FIELDS = ("data info", "metric convention")


@dataclass
class GroupKey:
    dataset: str
    fields: dict[str, str]  # name -> value, in heading order
    sort: tuple

    @property
    def gid(self) -> str:
        return hashlib.sha1(_canon([self.dataset, self.fields]).encode()).hexdigest()[:8]


def group_key(run: Mapping[str, Any]) -> GroupKey:
    ds = run["key"]["dataset"]
    cfg = run.get("config") or {}
    dinfo = run.get("dataset") or {}
    plen = pred_len(run)
    sizes = cfg.get("sizes") or {}
    sizes_text = "/".join(str(sizes.get(s, "?")) for s in ("train", "val", "test"))
    epochs = cfg.get("epochs", _get(cfg, "hparams", "epochs"))
    conv = convention_of(run)
    fields = {
        "frames": f"{dinfo.get('in_frames', '?')}→{plen if plen is not None else '?'}",
        "frame": f"{dinfo.get('channels', '?')}×{dinfo.get('height', '?')}×{dinfo.get('width', '?')}",
        "budget": f"{epochs} epoch{'s' if epochs != 1 else ''}" if epochs is not None else "budget unrecorded",
        "model": "tiny models" if cfg.get("tiny") else "paper-size models",
        "sizes": f"train/val/test {sizes_text}",
        "data": data_source(run),
        "data seed": f"data seed {cfg.get('data_seed', '?')}",
        "data info": data_info_id(run),
        "metric convention": f"metric convention {hashlib.sha1(conv.encode()).hexdigest()[:6]}" if conv
        else "metric convention unrecorded",
    }
    sort = (ds, _num_key(plen), bool(cfg.get("tiny")), _num_key(epochs),
            tuple(_num_key(sizes.get(s)) for s in ("train", "val", "test")), fields["data"],
            _num_key(cfg.get("data_seed")), fields["data info"], conv)
    return GroupKey(ds, fields, sort)


@dataclass
class RowRuns:
    """One row of a comparison table: a label with one hyperparameter configuration."""

    label: str
    hp: str
    runs: list[dict[str, Any]]
    display: str = ""

    @property
    def method(self) -> str:
        return str(self.runs[0]["key"].get("method", self.label.split(":")[0]))

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.runs[0]["key"].get("overrides") or {})

    @property
    def variant(self) -> str | None:
        return self.runs[0]["key"].get("variant")

    @property
    def uses_sets(self) -> bool:
        return any(_get(r, "config", "sets") for r in self.runs)

    def metric(self, metric: str) -> list[float]:
        return [float(r["test"][metric]) for r in self.runs if metric in (r.get("test") or {})]

    def efficiency(self, name: str) -> list[float]:
        out = []
        for r in self.runs:
            v = _get(r, "efficiency", name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out.append(float(v))
        return out

    def devices(self) -> list[str]:
        return sorted({device_of(r) for r in self.runs})


@dataclass
class Group:
    key: GroupKey
    runs: list[dict[str, Any]]
    tag: str = ""
    rows: list[RowRuns] = field(default_factory=list)
    shown_hidden: tuple[str, ...] = ()  # hidden fields that differ from another group of the dataset

    @property
    def dataset(self) -> str:
        return self.key.dataset

    @property
    def pred_len(self) -> int | None:
        return pred_len(self.runs[0])

    @property
    def tiny(self) -> bool:
        return bool(_get(self.runs[0], "config", "tiny"))

    def title(self) -> str:
        return f"{self.tag}: " + " · ".join(v for k, v in self.key.fields.items()
                                              if k not in HIDDEN_FIELDS or k in self.shown_hidden)

    def short_title(self) -> str:
        f = self.key.fields
        return f"{self.tag} · {f['frames']} · {f['budget']} · {f['model']} · {f['data']}"

    @property
    def metrics(self) -> list[str]:
        present = {m for r in self.runs for m in (r.get("test") or {})}
        return [m for m in METRICS if m in present]


def build_rows(runs: list[dict[str, Any]]) -> list[RowRuns]:
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        by.setdefault((r["key"]["label"], _canon(_get(r, "config", "hparams", default={}))), []).append(r)
    rows = [RowRuns(label, hp, sorted(rs, key=lambda r: r["key"]["seed"])) for (label, hp), rs in sorted(by.items())]
    labels: dict[str, list[RowRuns]] = {}
    for row in rows:
        labels.setdefault(row.label, []).append(row)
    for label, same in labels.items():
        if len(same) == 1:
            same[0].display = label
            continue
        hps = [json.loads(r.hp) for r in same]
        keys = sorted({k for hp in hps for k in hp if any(h.get(k) != hps[0].get(k) for h in hps)})
        for row, hp in zip(same, hps):
            row.display = f"{label} [" + ", ".join(f"{k}={_canon(hp.get(k))}" for k in keys) + "]"
    return rows


def make_groups(runs: list[dict[str, Any]]) -> list[Group]:
    by: dict[str, tuple[GroupKey, list[dict[str, Any]]]] = {}
    for r in runs:
        gk = group_key(r)
        by.setdefault(_canon([gk.dataset, gk.fields]), (gk, []))[1].append(r)
    groups = sorted((Group(gk, rs) for gk, rs in by.values()), key=lambda g: g.key.sort)
    counters: dict[str, int] = {}
    for g in groups:
        counters[g.dataset] = counters.get(g.dataset, 0) + 1
        g.tag = f"{g.dataset}[{counters[g.dataset]}]"
        g.rows = build_rows(g.runs)
    for g in groups:
        same = [o for o in groups if o.dataset == g.dataset]
        g.shown_hidden = tuple(n for n in HIDDEN_FIELDS if n in differing_fields(same))
    return groups


def differing_fields(groups: Sequence[Group]) -> list[str]:
    if len(groups) < 2:
        return []
    names = list(groups[0].key.fields)
    return [n for n in names if len({g.key.fields.get(n) for g in groups}) > 1]


# --------------------------------------------------------------------------------------------
# Context shared by the sections
# --------------------------------------------------------------------------------------------


@dataclass
class Context:
    results_dir: Path
    out_dir: Path
    published: Published
    groups: list[Group]
    audits: dict[tuple[str, str, bool], dict[str, Any]]
    problems: list[str]
    mse_line: float | None
    figures: list[Path] = field(default_factory=list)

    def scale(self, dataset: str) -> dict[str, float]:
        return self.published.display_scale(dataset)


def scale_note(ctx: Context, dataset: str) -> str:
    sc = ctx.scale(dataset)
    if not sc:
        return "Display scale: values in our per-frame convention, unscaled (as the papers print them)."
    parts = [f"{METRIC_LABELS[m]} {'×' + _gs(f) if f >= 1 else '/' + _gs(1 / f)}" for m, f in sorted(sc.items())]
    source = ctx.published.display_scale_sources.get(dataset, "")
    return f"Display scale as the papers print {dataset}: " + ", ".join(parts) + (f" ({source})." if source else ".")


def _gs(x: float) -> str:
    return f"{x:g}"


def ssim_note(ctx: Context) -> str:
    return (f"{ctx.published.ssim_convention} Published SSIM is therefore shown in our \"SSIM (legacy)\" column, "
            "which uses that convention; compare it with that column, not with \"SSIM\".")


def comparability_notes(group: Group, has_paper: bool) -> list[str]:
    notes = []
    if group.tiny:
        notes.append("Tiny smoke-test models: not comparable with published numbers.")
    quick = any(_get(r, "config", "quick") for r in group.runs)
    if quick:
        notes.append("Quick runs (reduced epochs and split sizes): not comparable with published numbers.")
    sources = {_get(r, "dataset", "info", "digit_source") for r in group.runs} - {None}
    if group.dataset == "mmnist" and sources and sources != {"mnist-idx"}:
        notes.append(f"Digits from {', '.join(sorted(map(str, sources)))}, not MNIST: not comparable with "
                     "published Moving MNIST numbers.")
    if not has_paper:
        notes.append("No published numbers for these methods on this dataset and horizon.")
    return notes


def convention_text(group: Group) -> tuple[str, str]:
    """(summary, text) of the metric convention the group's runs recorded."""
    texts = sorted({convention_of(r) for r in group.runs} - {""})
    ident = group.key.fields["metric convention"].replace("metric convention ", "id ")
    if texts:
        return f"Metric convention ({ident}, as recorded in the runs)", "\n\n".join(texts)
    try:
        from bench.metrics import METRIC_CONVENTION  # noqa: PLC0415

        return "Metric convention (not recorded in these runs; today's bench.metrics)", str(METRIC_CONVENTION)
    except Exception:
        return "Metric convention", "not recorded in these runs"


# --------------------------------------------------------------------------------------------
# Section builders
# --------------------------------------------------------------------------------------------


def _paper_cells(entry: PublishedEntry, metrics: Sequence[str], scale: Mapping[str, float]) -> list[Cell]:
    cells = []
    for m in metrics:
        src = "ssim" if m == PAPER_SSIM_COLUMN else (None if m == "ssim" else m)
        value, text = entry.shown(src, scale) if src else (None, None)
        factor = entry.scale.get(src, 1.0) if src else 1.0
        cells.append(Cell(text or NA, metric=m if value is not None else None, mean=value,
                          scale=None if factor is None else scale.get(m, 1.0)))
    return cells


def _paper_label(entry: PublishedEntry) -> str:
    return f"{entry.method} — paper ({entry.source})"


def _has_dagger(entries: Iterable[PublishedEntry], metrics: Sequence[str]) -> bool:
    return any(e.scale.get(m, 1.0) is None and m in e.text for e in entries for m in metrics)


def _ours_cells(row: RowRuns, metrics: Sequence[str], scale: Mapping[str, float]) -> list[Cell]:
    cells = []
    for m in metrics:
        f = scale.get(m, 1.0)
        mean, std = mean_std(row.metric(m))
        dm = None if mean is None else mean * f
        ds = None if std is None else std * f
        cells.append(Cell(fmt_mean_std(dm, ds, DECIMALS.get(m, 3)), metric=m, mean=dm, std=ds,
                          n=len(row.metric(m)), scale=f))
    return cells


def comparison_table(ctx: Context, group: Group, differing: Sequence[str]) -> Table:
    scale = ctx.scale(group.dataset)
    labels = [r.label for r in group.rows]
    paper: list[PublishedEntry] = []
    for label in sorted(set(labels)):
        found = ctx.published.find(group.dataset, group.pred_len, label, kind="comparison")
        if not found:
            found = [e for e in ctx.published.find(group.dataset, group.pred_len, label)
                     if e.kind != "efficiency" or any(m in e.text for m in METRICS)]
        paper += found
    metrics = list(group.metrics)
    if any("ssim" in e.text for e in paper) and PAPER_SSIM_COLUMN not in metrics:
        metrics.insert(min(len(metrics), 3), PAPER_SSIM_COLUMN)
    columns = ["Method", "n"] + [header(m) for m in metrics] + ["Device"]
    rows = []
    for r in group.rows:
        rows.append(Row([Cell(r.display), Cell(str(len(r.runs)))] + _ours_cells(r, metrics, scale)
                        + [Cell("; ".join(r.devices()))], "ours", r.display, "ours"))
    for e in sorted(paper, key=lambda e: (e.method, e.paper, e.table)):
        cells = _paper_cells(e, metrics, scale)
        if not any(c.mean is not None for c in cells):
            continue
        rows.append(Row([Cell(_paper_label(e)), Cell("paper")] + cells + [Cell(e.device or NA)], "paper",
                        e.method, e.source))
    table = Table(f"cmp-{group.dataset}-{group.key.gid}", group.title(), columns, rows,
                  dataset=group.dataset, group=group.tag)
    rank_table(table, range(2, 2 + len(metrics)))
    notes = ["n: seeds. Cells: mean ± sample standard deviation (n−1) over seeds; one seed shows its value alone.",
             "**Bold**: best, <u>underlined</u>: second best among our rows of this table only (values as "
             "displayed; ties share a rank, a tie for the best leaves no second). Rows marked \"paper\" (italic) "
             "are transcribed from the publications and are never ranked.",
             scale_note(ctx, group.dataset)]
    if any(r.kind == "paper" for r in rows):
        notes.append(ssim_note(ctx))
        notes.append("\\* in a paper cell: obtained by running the code provided by the authors (PLA-SM IV-D)."
                     if any(e.starred for e in paper) else "")
        if _has_dagger(paper, ("mse",)):
            notes.append("† printed without a stated unit or scale (PLA-SM Table III, Caltech MSE): shown as "
                         "printed, not converted to our convention.")
    if differing:
        notes.append(f"Other {group.dataset} tables differ from this one in: {', '.join(differing)}; runs of "
                     "different tables are never ranked against each other.")
    notes += comparability_notes(group, any(r.kind == "paper" for r in rows))
    summary, text = convention_text(group)
    notes.append(f"{summary}: its full text is in report.md under this table. Arrows: "
                 + ", ".join(header(m) for m in metrics) + ".")
    table.details = [(summary, text)]
    table.notes = [n for n in notes if n]
    return table


def _flops_of(ctx: Context, group: Group, row: RowRuns) -> tuple[float | None, float | None, float | None, str, str]:
    """(GFLOPs, M params, fps, fps device, source) of a row: audit record first, else the runs."""
    audit = ctx.audits.get((group.dataset, row.label, group.tiny))
    if audit is not None and not row.uses_sets:
        flops = audit.get("flops")
        params = audit.get("params")
        fps = audit.get("fps")
        return (None if flops is None else flops / 1e9, None if params is None else params / 1e6, fps,
                str(audit.get("device_name") or audit.get("device") or "unrecorded"), "audit")
    flops, _ = mean_std(row.efficiency("flops"))
    params, _ = mean_std(row.efficiency("params"))
    fps, _ = mean_std(row.efficiency("fps"))
    return (None if flops is None else flops / 1e9, None if params is None else params / 1e6, fps,
            "; ".join(row.devices()), "runs")


def block_columns(dataset: str, metrics_present: Sequence[str]) -> list[str]:
    wanted = ABLATION_METRICS.get(dataset, DEFAULT_ABLATION_METRICS)
    return [m for m in wanted if m in metrics_present or m == PAPER_SSIM_COLUMN]


def variant_table(ctx: Context, title: str, tid: str, row_ids: list[tuple[Any, str]],
                  lookup: Callable[[Group, Any], RowRuns | None], groups: list[Group],
                  paper_rows: list[tuple[str, Callable[[Group], PublishedEntry | None]]],
                  first_column: str) -> Table:
    """Rows (ours then papers) against blocks of columns, one block per comparability group."""
    columns = [first_column]
    blocks: list[tuple[Group, list[str]]] = []
    for g in groups:
        ms = block_columns(g.dataset, g.metrics)
        blocks.append((g, ms))
        columns += [f"{g.tag} {header(m)}" for m in ms] + [f"{g.tag} FLOPs (G)"]
    rows: list[Row] = []
    for rid, text in row_ids:
        cells = [Cell(text)]
        for g, ms in blocks:
            rr = lookup(g, rid)
            if rr is None:
                cells += [Cell(NA) for _ in ms] + [Cell(NA)]
                continue
            cells += _ours_cells(rr, ms, ctx.scale(g.dataset))
            flops = _flops_of(ctx, g, rr)[0]
            cells.append(Cell(fmt(flops, DECIMALS["flops_g"]), metric="flops_g" if flops is not None else None,
                              mean=flops, n=len(rr.runs), scale=1e-9))
        rows.append(Row(cells, "ours", text, "ours"))
    for text, get in paper_rows:
        cells = [Cell(text)]
        any_value = False
        src = ""
        for g, ms in blocks:
            e = get(g)
            if e is None:
                cells += [Cell(NA) for _ in ms] + [Cell(NA)]
                continue
            src = e.source
            pc = _paper_cells(e, ms, ctx.scale(g.dataset))
            fl = e.text.get("flops_g")
            pc.append(Cell(fl or NA, metric="flops_g" if fl else None, mean=float(fl) if fl else None, scale=1e-9))
            any_value = any_value or any(c.mean is not None for c in pc)
            cells += pc
        if any_value:
            rows.append(Row(cells, "paper", text, src))
    table = Table(tid, title, columns, rows, dataset=",".join(sorted({g.dataset for g in groups})),
                  group=",".join(g.tag for g in groups))
    rank_table(table, [i for i, c in enumerate(columns) if i > 0 and not c.endswith("FLOPs (G)")])  # costs unranked
    return table


def ablation_tables(ctx: Context) -> list[Table]:
    families: dict[str, set[str]] = {}
    for g in ctx.groups:
        for r in g.rows:
            if not r.overrides:
                families.setdefault(r.method, set()).add(r.display)
    tables = []
    for method in sorted(families):
        displays = families[method]
        if not any(":" in d.split(" [")[0] for d in displays) or len(displays) < 2:
            continue
        ordered = sorted(displays, key=lambda d: (d.split(" [")[0] != method, d))
        groups = [g for g in ctx.groups if sum(r.display in displays and not r.overrides for r in g.rows) >= 1
                  and any(":" in r.label and not r.overrides and r.method == method for r in g.rows)]
        if not groups:
            continue

        def lookup(g: Group, rid: str) -> RowRuns | None:
            return next((r for r in g.rows if r.display == rid and not r.overrides and r.method == method), None)

        paper_entries = list(dict.fromkeys(
            (e.paper, e.table, e.row, e.method) for e in ctx.published.entries
            if e.kind == "ablation" and (e.method == method or e.method.startswith(method + ":"))
            and "=" not in e.method))  # in the papers' order
        paper_rows = []
        for paper, tab, rowname, m in paper_entries:
            def get(g: Group, paper=paper, tab=tab, rowname=rowname) -> PublishedEntry | None:
                found = [e for e in ctx.published.find(g.dataset, g.pred_len, paper=paper)
                         if e.table == tab and e.row == rowname]
                return found[0] if found else None
            paper_rows.append((f"{m} — paper ({paper} Table {tab}: {rowname})", get))
        table = variant_table(ctx, f"{method}: variants", f"abl-{method}", [(d, d) for d in ordered], lookup,
                              groups, paper_rows, "Variant")
        table.notes = _block_notes(ctx, groups, "variants (rows) of one method against comparability groups "
                                                "(column blocks), in the layout of TAU Table 6 / PLA-SM Table VI")
        tables.append(table)
    return tables


def _roman(t: str) -> int:
    values = {"I": 1, "V": 5, "X": 10}
    if t.isdigit():
        return int(t)
    total = 0
    for i, ch in enumerate(t):
        v = values.get(ch, 0)
        total += -v if i + 1 < len(t) and values.get(t[i + 1], 0) > v else v
    return total


def _block_notes(ctx: Context, groups: Sequence[Group], what: str) -> list[str]:
    notes = [f"Rows: {what}. Each column block is one comparability group (see its table above); ranks are "
             "per column, among our rows only; paper rows (italic) are never ranked.",
             "Blocks: " + "; ".join(f"{g.title()}" for g in groups) + ".",
             "FLOPs (G): fvcore, one sample (from `bench audit` when recorded, else the runs).",
             "Paper SSIM is in the SSIM (legacy) column. " + ctx.published.ssim_convention]
    for ds in sorted({g.dataset for g in groups}):
        notes.append(scale_note(ctx, ds))
    if any(g.tiny for g in groups):
        notes.append("Blocks of tiny smoke-test models are not comparable with published numbers.")
    return notes


def sweep_tables(ctx: Context) -> list[Table]:
    families: dict[tuple[str, str | None, str], None] = {}
    for g in ctx.groups:
        for r in g.rows:
            if len(r.overrides) == 1:
                families[(r.method, r.variant, next(iter(r.overrides)))] = None
    tables = []
    for method, variant, param in sorted(families, key=lambda t: (t[0], t[1] or "", t[2])):
        base = method + (f":{variant}" if variant else "")

        def member(r: RowRuns) -> Any:
            if r.method != method or r.variant != variant:
                return None
            if not r.overrides:
                value = _get(r.runs[0], "config", "hparams", param)
                return ("default", value) if value is not None else None
            if list(r.overrides) == [param]:
                return ("set", r.overrides[param])
            return None

        row_ids: dict[tuple, str] = {}
        groups = [g for g in ctx.groups if any((member(r) or ("",))[0] == "set" for r in g.rows)]
        for g in groups:
            for r in g.rows:
                m = member(r)
                if m is None:
                    continue
                kind, value = m
                rid = (_num_key(value), kind, r.display)
                row_ids[rid] = f"{param} = {value}" + (f" (default: {r.display})" if kind == "default" else
                                                       f" ({r.display})")
        values = {rid[0] for rid in row_ids}
        if len(values) < 2:
            continue

        def lookup(g: Group, rid: tuple) -> RowRuns | None:
            return next((r for r in g.rows if r.display == rid[2] and member(r) is not None), None)

        pubs = [e for e in ctx.published.entries if e.kind == "sweep" and e.sweep
                and e.sweep.get("base") == base and e.sweep.get("param") == param]
        pvalues = sorted({(_num_key(e.sweep["value"]), e.sweep["value"], e.paper, e.table) for e in pubs})
        paper_rows = []
        for _, value, paper, tab in pvalues:
            def get(g: Group, value=value, paper=paper, tab=tab) -> PublishedEntry | None:
                found = [e for e in pubs if e.dataset == g.dataset and e.pred_len == g.pred_len
                         and e.sweep["value"] == value and e.paper == paper and e.table == tab]
                return found[0] if found else None
            paper_rows.append((f"{param} = {value} — paper ({paper} Table {tab})", get))
        ordered = sorted(row_ids.items())
        table = variant_table(ctx, f"{base}: sweep of {param}", f"sweep-{base}-{param}".replace(":", "+"),
                              [(rid, text) for rid, text in ordered], lookup, groups, paper_rows, param)
        table.notes = _block_notes(ctx, groups, f"values of `{param}` for `{base}` (recognised from the run keys' "
                                                f"overrides; the default row is the run without override), in the "
                                                f"layout of PLA-SM Tables VIII, IX, XI")
        tables.append(table)
    return tables


def efficiency_table(ctx: Context, group: Group) -> Table:
    scale = ctx.scale(group.dataset)
    columns = ["Method", header("flops_g"), header("train_s"), header("fps"), header("params_m"),
               f"{header('mse')}", "n", "Train device", "FLOPs/params/fps from (device)"]
    rows = []
    train_devices, fps_devices = set(), set()
    for r in group.rows:
        flops, params, fps, fps_dev, source = _flops_of(ctx, group, r)
        train, train_std = mean_std(r.efficiency("train_seconds_per_epoch"))
        mse, mse_std = mean_std(r.metric("mse"))
        f = scale.get("mse", 1.0)
        tdev = "; ".join(r.devices())
        train_devices.add(tdev)
        fps_devices.add(fps_dev)
        rows.append(Row([
            Cell(r.display),
            Cell(fmt(flops, DECIMALS["flops_g"]), metric="flops_g" if flops is not None else None, mean=flops,
                 scale=1e-9),
            Cell(fmt_mean_std(train, train_std, DECIMALS["train_s"]), metric="train_s" if train is not None else None,
                 mean=train, std=train_std, n=len(r.efficiency("train_seconds_per_epoch"))),
            Cell(fmt(fps, DECIMALS["fps"]), metric="fps" if fps is not None else None, mean=fps),
            Cell(fmt(params, DECIMALS["params_m"]), metric="params_m" if params is not None else None, mean=params,
                 scale=1e-6),
            Cell(fmt_mean_std(None if mse is None else mse * f, None if mse_std is None else mse_std * f,
                              DECIMALS["mse"]), metric="mse" if mse is not None else None,
                 mean=None if mse is None else mse * f, std=None if mse_std is None else mse_std * f,
                 n=len(r.metric("mse")), scale=f),
            Cell(str(len(r.runs))), Cell(tdev), Cell(f"{source} ({fps_dev})"),
        ], "ours", r.display, "ours"))
    paper = []
    for label in sorted({r.label for r in group.rows}):
        for e in ctx.published.find(group.dataset, group.pred_len, label):
            if "flops_g" in e.text or "fps" in e.text:
                paper.append(e)
    for e in sorted(paper, key=lambda e: (e.method, e.paper, _roman(e.table))):
        cells = [Cell(_paper_label(e))]
        for m in ("flops_g", "train_s", "fps", "params_m"):
            t = e.text.get(m)
            cells.append(Cell(t or NA, metric=m if t else None, mean=float(t) if t else None,
                              scale={"flops_g": 1e-9, "params_m": 1e-6}.get(m, 1.0)))
        v, t = e.shown("mse", scale)
        cells += [Cell(t or NA, metric="mse" if v is not None else None, mean=v, scale=scale.get("mse", 1.0)),
                  Cell("paper"), Cell(e.device or NA), Cell(e.source)]
        rows.append(Row(cells, "paper", e.method, e.source))
    table = Table(f"eff-{group.dataset}-{group.key.gid}", f"Efficiency, {group.title()}", columns, rows,
                  dataset=group.dataset, group=group.tag)
    ranked = [1, 4, 5]
    if len(train_devices) == 1:
        ranked.append(2)
    if len(fps_devices) == 1:
        ranked.append(3)
    rank_table(table, ranked)
    notes = ["Layout of PLA-SM Table V. FLOPs: fvcore, one sample (multiply-add = one FLOP); Train: mean seconds "
             "per training epoch over the seeds (this run's split sizes and device); Test (fps): test sequences "
             "per second at a fixed batch after warm-up; MSE: as in the comparison table.",
             "Train time and fps are ranked only when every row was measured on the same device"
             + ("." if len(train_devices) == 1 and len(fps_devices) == 1 else
                " (not the case here for " + " and ".join(
                    n for n, devs in (("train time", train_devices), ("fps", fps_devices)) if len(devs) > 1) + ")."),
             scale_note(ctx, group.dataset)]
    if paper:
        notes.append("Paper rows: PLA-SM Table V measured on one RTX 3090 (training time per epoch of the full "
                     "10,000-sequence set, fps averaged over 10,000 test samples); TAU Table 6 gives FLOPs only.")
    if group.tiny:
        notes.append("Tiny smoke-test models: costs are not comparable with published numbers.")
    table.notes = notes
    return table


def _pct(value: float | None) -> str:
    return NA if value is None else f"{value:+.1%}"


def audit_table(ctx: Context) -> Table | None:
    if not ctx.audits:
        return None
    columns = ["Dataset", "Method", "Model", "#Params (M)", "FLOPs (G)", "Skipped ops", "Test (fps)", "fps batch",
               "Device", "Reference (params / FLOPs)", "Diff (params / FLOPs)"]
    rows = []
    for (ds, label, tiny), a in sorted(ctx.audits.items()):
        ref = a.get("reference") or {}
        params, flops = a.get("params"), a.get("flops")
        skipped = a.get("flops_skipped") or {}
        rows.append(Row([
            Cell(ds), Cell(label), Cell("tiny" if tiny else "paper-size"),
            Cell(fmt(None if params is None else params / 1e6, 3), metric="params_m" if params is not None else None,
                 mean=None if params is None else params / 1e6, scale=1e-6),
            Cell(fmt(None if flops is None else flops / 1e9, 3), metric="flops_g" if flops is not None else None,
                 mean=None if flops is None else flops / 1e9, scale=1e-9),
            Cell(", ".join(f"{k} ×{v}" for k, v in sorted(skipped.items())) or "none"),
            Cell(fmt(a.get("fps"), 1), metric="fps" if a.get("fps") is not None else None, mean=a.get("fps")),
            Cell(str(a.get("fps_batch", NA))),
            Cell(str(a.get("device_name") or a.get("device") or "unrecorded")),
            Cell(f"{fmt(ref['params'] / 1e6, 1) + ' M' if ref.get('params') else NA} / "
                 f"{fmt(ref['flops'] / 1e9, 2)} G ({ref.get('source', '')})" if ref.get("flops") else NA),
            Cell(f"{_pct(ref.get('params_diff'))} / {_pct(ref.get('flops_diff'))}" if ref.get("flops") else NA),
        ], "ours", label, "audit"))
    return Table("audit", "Cost audit (`bench audit`, no training)", columns, rows,
                 notes=["Skipped ops: operators fvcore could not count (their FLOPs are missing from the total).",
                        "fps depends on the device and batch: compare only rows of one device."])


def published_appendix(ctx: Context, datasets: Sequence[str]) -> list[Table]:
    tables = []
    for ds in datasets:
        entries = ctx.published.find(ds)
        keys = sorted({(e.paper != "TAU", _roman(e.table), e.paper, e.table, e.pred_len) for e in entries})
        for _, _, paper, tab, plen in keys:
            es = [e for e in entries if e.paper == paper and e.table == tab and e.pred_len == plen]
            metrics = sorted({m for e in es for m in e.text},
                             key=lambda m: (list(METRICS) + ["flops_g", "train_s", "fps", "params_m"]).index(m))
            scale = ctx.scale(ds)
            columns = ["Method (as printed)", "Registry key / name"] + \
                      [(header(m) if m != "ssim" else "SSIM↑ (legacy convention)") for m in metrics]
            rows = []
            for e in es:
                cells = [Cell(e.row + (f" ({e.venue})" if e.venue else "")), Cell(e.method)]
                for m in metrics:
                    v, t = e.shown(m, scale)
                    cells.append(Cell(t or NA, metric=m if v is not None else None, mean=v,
                                      scale=None if e.scale.get(m, 1.0) is None else scale.get(m, 1.0)))
                rows.append(Row(cells, "paper", e.method, e.source))
            cap = es[0].caption
            table = Table(f"pub-{ds}-{plen}-{paper}-{tab}", f"{paper} Table {tab} — {ds} (→{plen}): {cap}",
                          columns, rows, dataset=ds, group="published")
            notes = [scale_note(ctx, ds)]
            if any(e.starred for e in es):
                notes.append("\\*: obtained by running the code provided by the authors (PLA-SM IV-D).")
            if _has_dagger(es, metrics):
                notes.append("†: printed without a stated unit or scale.")
            notes += sorted({r for e in es for r in e.remarks})
            table.notes = notes
            tables.append(table)
    return tables


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _fig_path(ctx: Context, name: str) -> tuple[Path, str]:
    rel = f"figures/{name}.png"
    return ctx.out_dir / rel, rel


def curves_figure(ctx: Context, group: Group):
    """The learning-curve figure of a group (validation MSE per epoch, one line per row)."""
    from bench import figures

    f = ctx.scale(group.dataset).get("mse", 1.0)
    series: dict[str, list[list[tuple[int, float]]]] = {}
    for r in group.rows:
        for run in r.runs:
            curve = [(int(h["epoch"]), float(h["val_mse"]) * f) for h in run.get("history") or []
                     if isinstance(h, Mapping) and isinstance(h.get("epoch"), (int, float))
                     and isinstance(h.get("val_mse"), (int, float)) and math.isfinite(h["val_mse"])]
            if curve:
                series.setdefault(r.display, []).append(curve)
    if not series:
        return None
    ylabel = "validation MSE" + (f" (×{f:g})" if f > 1 else f" (/{1 / f:g})" if f < 1 else "")
    return figures.learning_curves(series, f"Validation MSE per epoch — {group.short_title()}", ylabel, ctx.mse_line)


def _load_predictions(ctx: Context, run: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    path = Path(run.get("_dir", "")) / "predictions.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in ("inputs", "truth", "pred")}
    except Exception as exc:
        ctx.problems.append(f"{path}: cannot be read ({type(exc).__name__}); delete it or re-run that run with --force")
        return None
    if any(a.ndim != 5 or len(a) == 0 for a in arrays.values()) or arrays["pred"].shape != arrays["truth"].shape:
        ctx.problems.append(f"{path}: arrays are not (K, T, C, H, W) with matching truth/pred; delete it or re-run "
                            "that run with --force")
        return None
    return arrays


def samples_figure(ctx: Context, group: Group):
    from bench import figures

    base = None
    preds = {}
    for r in group.rows:
        for run in r.runs:  # lowest seed with readable predictions
            arrays = _load_predictions(ctx, run)
            if arrays is None:
                continue
            if base is None:
                base = arrays
            if arrays["truth"].shape[1:] != base["truth"].shape[1:] or not np.array_equal(arrays["truth"][0],
                                                                                          base["truth"][0]):
                ctx.problems.append(f"{run.get('_dir')}/predictions.npz: its first test sequence differs from the "
                                    f"other methods' in {group.tag}; left out of the qualitative figure")
                break
            preds[r.display] = arrays["pred"][0]
            break
    if base is None or not preds:
        return None
    return figures.qualitative_grid(base["inputs"][0], base["truth"][0], preds,
                                    f"First test sequence — {group.short_title()}")


def scatter_figure(ctx: Context, group: Group):
    from bench import figures

    f = ctx.scale(group.dataset).get("mse", 1.0)
    points = []
    for r in group.rows:
        flops = _flops_of(ctx, group, r)[0]
        mse, _ = mean_std(r.metric("mse"))
        if flops is not None and mse is not None and flops > 0:
            points.append((r.display, flops, mse * f, False))
    if not points:
        return None
    if not group.tiny:  # the published cost of the methods in this table, one point each (first source)
        labels = {r.label for r in group.rows}
        seen: set[str] = set()
        for e in ctx.published.find(group.dataset, group.pred_len):
            if e.method in labels and e.method not in seen and "flops_g" in e.text:
                v, _ = e.shown("mse", ctx.scale(group.dataset))
                if v is not None:
                    seen.add(e.method)
                    points.append((f"{e.method} ({e.source})", float(e.text["flops_g"]), v, True))
    ylabel = "test MSE" + (f" (×{f:g})" if f > 1 else f" (/{1 / f:g})" if f < 1 else "")
    return figures.mse_flops_scatter(points, f"MSE vs FLOPs — {group.short_title()}", ylabel)


def render_figures(ctx: Context, group: Group) -> list[tuple[str, str]]:
    from bench import figures

    out = []
    for name, caption, builder in (("curves", "Validation MSE per epoch", curves_figure),
                                   ("mse_flops", "Test MSE vs FLOPs", scatter_figure),
                                   ("samples", "Qualitative results (inputs, truth, predictions, |error|)",
                                    samples_figure)):
        fig = builder(ctx, group)
        if fig is None:
            continue
        path, rel = _fig_path(ctx, f"{name}_{group.dataset}_{group.key.gid}")
        figures.save_png(fig, path)
        ctx.figures.append(path)
        out.append((caption, rel))
    return out


# --------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------


def load_inputs(results_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str],
                                            dict[tuple[str, str, bool], dict[str, Any]]]:
    """(complete runs, failed runs, problems, audits by (dataset, label, tiny)); BenchError if there are none."""
    results_dir = Path(results_dir)
    hint = "run `bench run ...` first"
    if not results_dir.is_dir():
        raise BenchError(f"results directory {results_dir}/ does not exist: {hint} (or pass --results DIR)")
    runs, problems = store.load_results(results_dir)
    if not runs:
        if problems:
            raise BenchError(f"no readable results in {results_dir}/: {len(problems)} result file(s) are broken, "
                             f"e.g. {problems[0]}")
        raise BenchError(f"no results in {results_dir}/: {hint}")
    complete = [r for r in runs if r.get("status") == "complete"]
    failed = [r for r in runs if r.get("status") == "failed"]
    raw_audits, audit_problems = store.load_audits(results_dir)
    problems = list(problems) + list(audit_problems)
    audits: dict[tuple[str, str, bool], dict[str, Any]] = {}
    for a in raw_audits:
        if not (isinstance(a.get("dataset"), str) and isinstance(a.get("label"), str)):
            problems.append(f"an audit record in {results_dir}/audit has no dataset/label; delete it and re-run "
                            "`bench audit`")
            continue
        bad = [k for k in ("params", "flops", "fps") if a.get(k) is not None and
               (not isinstance(a[k], (int, float)) or isinstance(a[k], bool) or not math.isfinite(a[k]))]
        if bad:
            problems.append(f"audit record {a['dataset']}/{a['label']}: {', '.join(bad)} not finite numbers; "
                            "delete it and re-run `bench audit`")
            continue
        audits[(a["dataset"], a["label"], bool(a.get("tiny")))] = a
    return complete, failed, problems, audits


def build_context(results_dir: Path, out_dir: Path, mse_line: float | None = None
                  ) -> tuple[Context, list[dict[str, Any]], list[dict[str, Any]]]:
    """Load everything the report needs: (context with the comparability groups, complete runs, failed runs)."""
    complete, failed, problems, audits = load_inputs(Path(results_dir))
    ctx = Context(Path(results_dir), Path(out_dir), load_published(), make_groups(complete), audits, problems,
                  mse_line)
    return ctx, complete, failed


def write_report(results_dir: Path, out_dir: Path, formats: Sequence[str] = ("md",),
                 mse_line: float | None = None, figures: bool = True) -> list[Path]:
    """Render the report of ``results_dir`` into ``out_dir``; returns the files written.

    ``formats``: any of ``md`` (always written), ``csv``, ``tex``. ``mse_line`` draws a
    horizontal reference line (display scale) on every learning-curve figure. ``figures=False``
    skips the PNGs (and their links): the tables alone, quickly.
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    unknown = sorted(set(formats) - {"md", "csv", "tex"})
    if unknown:
        raise BenchError(f"unknown report format(s) {', '.join(unknown)}; choose from md, csv, tex")
    ctx, complete, failed = build_context(results_dir, out_dir, mse_line)
    out_dir.mkdir(parents=True, exist_ok=True)

    by_dataset: dict[str, list[Group]] = {}
    for g in ctx.groups:
        by_dataset.setdefault(g.dataset, []).append(g)
    comparison: list[Table] = []
    for ds in sorted(by_dataset):
        groups = by_dataset[ds]
        for g in groups:
            others = [o for o in groups if o is not g]
            diff = [n for n in differing_fields(groups) if any(o.key.fields[n] != g.key.fields[n] for o in others)]
            t = comparison_table(ctx, g, diff)
            t.figures = render_figures(ctx, g) if figures else []
            comparison.append(t)
    ablations = ablation_tables(ctx)
    sweeps = sweep_tables(ctx)
    efficiency = [efficiency_table(ctx, g) for g in ctx.groups]
    audit = audit_table(ctx)
    appendix = published_appendix(ctx, sorted(by_dataset))

    md = render_markdown(ctx, complete, failed, by_dataset, comparison, ablations, sweeps, efficiency, audit, appendix)
    written = [out_dir / "report.md"]
    store.atomic_write_text(written[0], md)
    all_tables = comparison + ablations + sweeps + efficiency + ([audit] if audit else []) + appendix
    if "csv" in formats:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for t in all_tables:
            for rec in csv_records(t):
                writer.writerow(rec)
        store.atomic_write_text(out_dir / "report.csv", buf.getvalue())
        written.append(out_dir / "report.csv")
    if "tex" in formats:
        lines = ["% bench report tables; needs \\usepackage{booktabs}", ""]
        for t in all_tables:
            lines += render_tex_table(t) + [""]
        store.atomic_write_text(out_dir / "report.tex", "\n".join(lines))
        written.append(out_dir / "report.tex")
    return written + sorted(ctx.figures)


def render_markdown(ctx: Context, complete, failed, by_dataset, comparison, ablations, sweeps, efficiency, audit,
                    appendix) -> str:
    out: list[str] = ["# Benchmark report", ""]
    labels = sorted({r["key"]["label"] for r in complete})
    out += [f"Results directory: `{ctx.results_dir}`. {len(complete)} complete run(s) of {len(labels)} method "
            f"configuration(s) on {len(by_dataset)} dataset(s) in {len(ctx.groups)} comparability group(s); "
            f"{len(failed)} failed run(s); {len(ctx.problems)} file(s) skipped.", "",
            "How to read the tables: runs are grouped by everything that makes numbers comparable (dataset, "
            "horizon, frame size, epochs, tiny vs paper-size model, split sizes, data source, data seed, metric "
            "convention); each group is one table and ranks (**bold** best, <u>underlined</u> second) never cross "
            "tables. Published numbers appear as italic \"paper\" rows beside ours and are never ranked.", ""]
    if ctx.problems:
        out += ["## Skipped files", "",
                "These files could not be trusted and were left out of every table and figure:", ""]
        out += [f"- {_md_escape(p)}" for p in sorted(set(ctx.problems))] + [""]
    if failed:
        out += ["## Failed runs", "", "| Dataset | Method | Seed | Last good epoch | Error |", "|---|---|---:|---:|---|"]
        for r in failed:
            k = r["key"]
            out.append(f"| {_md_escape(k['dataset'])} | {_md_escape(k['label'])} | {k['seed']} | "
                       f"{r.get('last_good_epoch', NA)} | {_md_escape(str(r.get('error', 'unrecorded')))} |")
        out.append("")
    out += ["## Comparison", ""]
    for ds in sorted(by_dataset):
        out += [f"### {DATASET_NAMES.get(ds, ds)} (`{ds}`)", ""]
        if len(by_dataset[ds]) > 1:
            out += [f"{len(by_dataset[ds])} groups of runs that are not comparable with each other (they differ in: "
                    f"{', '.join(differing_fields(by_dataset[ds]))}); each has its own table.", ""]
        for t in [t for t in comparison if t.dataset == ds]:
            out += _md_table_block(t, "####")
    if ablations:
        out += ["## Ablations", ""]
        for t in ablations:
            out += _md_table_block(t, "###")
    if sweeps:
        out += ["## Hyperparameter sweeps", ""]
        for t in sweeps:
            out += _md_table_block(t, "###")
    out += ["## Efficiency", ""]
    for t in efficiency:
        out += _md_table_block(t, "###")
    if audit:
        out += _md_table_block(audit, "###")
    out += ["## Published numbers", "",
            "Every transcribed table of the datasets above (bench/data/published.json; TAU Tables 2-6 and PLA-SM "
            "Tables II-XI), as printed. Registry keys name the methods this harness implements.", ""]
    for t in appendix:
        out += _md_table_block(t, "###")
    return "\n".join(out).rstrip("\n") + "\n"


def _md_table_block(table: Table, level: str) -> list[str]:
    lines = [f"{level} {_md_escape(table.title)}", ""] + render_md_table(table) + [""]
    for note in table.notes:
        lines.append(f"- {note}")
    if table.notes:
        lines.append("")
    for summary, text in table.details:
        lines += ["<details>", f"<summary>{_md_escape(summary)}</summary>", "", "```text", text.rstrip("\n"), "```",
                  "", "</details>", ""]
    for caption, rel in table.figures:
        lines += [f"![{caption}]({rel})", ""]
    return lines
