"""Published numbers of the TAU and PLA-SM papers, for showing beside reproduced ones.

The numbers live in ``bench/data/published.json``, transcribed from the papers' text
(``/work/shared/papers/tau.md`` Tables 2-6, ``pla-sm.md`` Tables II-XI). One entry per
(table, row, dataset/horizon), each carrying its source (paper + table), the dataset and horizon
(``pred_len``; KTH has 20 and 40), the method (our registry key such as ``simvp``, ``tau:no-ddr``,
``plasm:mask-sm`` or ``plasm:r0=0.9`` where the method is ours, else the paper's name such as
``PhyDNet``), the printed values *as text* (so their printed precision survives) and the scale.

Scale: ``printed = (our per-frame metric) x scale[metric]``. A metric missing from ``scale`` is
printed as is (factor 1); ``None`` means the paper prints it without stating a unit (PLA-SM Table
III, Caltech MSE), so it cannot be converted and is shown as printed only.

Choices where the papers are silent (documented here and in the JSON):
- PLA-SM Tables VI-XI do not state the KTH horizon; their full-model row equals Table IV's
  10 -> 20 numbers, so those columns are recorded as ``pred_len`` 20.
- TAU Table 6 has one Flops(G) column; it is Moving MNIST's cost (SimVP 19.43G), so ``flops_g`` is
  attached to the Moving MNIST entries.
- Method names of other papers are normalised where the papers spell one method differently
  (E3d-LSTM/E3DLSTM -> E3D-LSTM, Crevnet -> CrevNet, STMFA Net -> STMFANet); ``row`` keeps the
  printed spelling.
- Conventions of the code behind each number (``ssim_convention`` on every entry with an SSIM,
  ``psnr_convention`` on every entry with a PSNR, ``convention_basis`` naming the evidence). SSIM:
  ``legacy`` (float frames, scikit-image <= 0.19's implicit data range 2: SimVP, TAU/OpenSTL,
  PLA-SM, PhyDNet and MAU releases) goes in our "SSIM (legacy)" column; ``uint8`` (uint8 frames,
  data range 255: the PredRNN-family releases, for the numbers those papers report themselves)
  goes in our plain "SSIM" column; ``unknown`` (cited numbers whose code cannot be identified, a
  release holding both codes such as MIM's, re-runs whose code is not stated) is compared with
  neither. PSNR: ``float`` (as ours), ``uint8`` (8-bit frames, no wrap), ``uint8-wrap`` (SimVP's
  ``API/metrics.py`` and copies such as PLA-SM's subtract uint8 frames in uint8 arithmetic, so the
  error wraps modulo 256) and ``unknown``. A re-run by PLA-SM "with the authors' code" (starred)
  keeps a tag only where both candidate codes agree.
- Where two tables print different values for one cell (SimVP Moving MNIST MAE: 68.9 in TAU
  Table 2 and PLA-SM Table VII, 69.9 in PLA-SM Table II), both are kept;
  :meth:`Published.disagreements` finds them so the report shows both sources.
- PLA-SM variants map to the registry as in ``bench.methods.plasm``: Table VI rows 1-5 are
  ``plasm:base``, ``plasm:mask``, ``plasm:mask-sm``, ``plasm:pla``, ``plasm``; Table X rows 1-4 are
  ``plasm:no-convnext-no-pla``, ``plasm:no-convnext``, ``plasm:base``, ``plasm:pla``; sweeps are
  ``plasm:r0=<v>`` (VIII), ``plasm:mask-sm:r=<v>`` (IX) and ``plasm:heads=<n>`` (XI).
  TAU Table 6: ``tau:conv`` (Conv Baseline), ``tau:no-sa``, ``tau:no-da``, ``tau:no-ddr``, ``tau``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from bench.errors import BenchError

PUBLISHED_PATH = Path(__file__).resolve().parent.parent / "data" / "published.json"
SCHEMA = 2
KINDS = ("comparison", "ablation", "pretraining", "sweep", "efficiency")
SSIM_CONVENTIONS = ("legacy", "uint8", "unknown")
PSNR_CONVENTIONS = ("float", "uint8", "uint8-wrap", "unknown")


@dataclass(frozen=True)
class PublishedEntry:
    """One printed row of one paper table, restricted to one dataset and horizon."""

    paper: str
    table: str
    kind: str
    dataset: str
    pred_len: int
    method: str
    ours: bool
    row: str
    text: Mapping[str, str]
    scale: Mapping[str, float | None] = field(default_factory=dict)
    starred: tuple[str, ...] = ()
    sweep: Mapping[str, Any] | None = None
    venue: str | None = None
    note: str | None = None
    caption: str = ""
    device: str | None = None
    remarks: tuple[str, ...] = ()  # transcription remarks (horizon, FLOPs column)
    ssim_convention: str | None = None  # legacy | uint8 | unknown (entries with an SSIM)
    psnr_convention: str | None = None  # float | uint8 | uint8-wrap | unknown (entries with a PSNR)
    convention_basis: str = ""  # the code the conventions were read from

    @property
    def source(self) -> str:
        return f"{self.paper} Table {self.table}"

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(sorted(self.text))

    def value(self, metric: str) -> float | None:
        """The printed number (in the paper's display scale), or None when the cell is unavailable."""
        text = self.text.get(metric)
        return None if text is None else float(text)

    def raw(self, metric: str) -> float | None:
        """The value in our per-frame convention (printed / scale); None if unknown or unavailable."""
        value = self.value(metric)
        if value is None:
            return None
        factor = self.scale.get(metric, 1.0)
        return None if factor is None else value / factor

    def shown(self, metric: str, display_scale: Mapping[str, float]) -> tuple[float | None, str | None]:
        """(value, text) to show in a table whose metric is displayed ``x display_scale[metric]``.

        When the entry's scale equals the display scale the printed text is kept verbatim (the
        paper's precision); otherwise the number is converted. A cell of unstated unit is returned
        as printed, its text marked with a dagger. ``*`` marks the paper's starred cells.
        """
        text = self.text.get(metric)
        if text is None:
            return None, None
        star = "*" if metric in self.starred else ""
        mine = self.scale.get(metric, 1.0)
        target = display_scale.get(metric, 1.0)
        if mine is None:
            return float(text), f"{text}†{star}"
        if math.isclose(mine, target):
            return float(text), text + star
        value = float(text) / mine * target
        return value, f"{value:.4g}{star}"


@dataclass(frozen=True)
class Disagreement:
    """Two or more printed values of one cell (method, dataset, horizon, metric) in different tables."""

    method: str
    dataset: str
    pred_len: int
    metric: str
    values: tuple[tuple[str, tuple[str, ...]], ...]  # (printed text in the display scale, sources)


@dataclass(frozen=True)
class Published:
    entries: tuple[PublishedEntry, ...]
    display_scales: Mapping[str, Mapping[str, float]]
    display_scale_sources: Mapping[str, str]
    ssim_conventions: Mapping[str, str]
    psnr_conventions: Mapping[str, str]
    papers: Mapping[str, str]

    def display_scale(self, dataset: str) -> dict[str, float]:
        """Metric -> factor the papers display ``dataset`` with (TaxiBJ MSE x100, Human3.6M MSE /10, MAE /100)."""
        return dict(self.display_scales.get(PUBLISHED_ALIASES.get(dataset, dataset), {}))

    def find(self, dataset: str | None = None, pred_len: int | None = None, method: str | None = None,
             kind: str | tuple[str, ...] | None = None, paper: str | None = None) -> list[PublishedEntry]:
        kinds = (kind,) if isinstance(kind, str) else kind
        dataset = PUBLISHED_ALIASES.get(dataset, dataset) if dataset is not None else None
        return [e for e in self.entries
                if (dataset is None or e.dataset == dataset) and (pred_len is None or e.pred_len == pred_len)
                and (method is None or e.method == method) and (kinds is None or e.kind in kinds)
                and (paper is None or e.paper == paper)]

    def disagreements(self, dataset: str, pred_len: int | None, methods: Iterable[str]) -> list[Disagreement]:
        """Cells of ``methods`` printed with different values by different tables (compared at the
        coarser printed precision, in our per-frame convention; cells of unstated unit are skipped)."""
        out = []
        for method in sorted(set(methods)):
            entries = self.find(dataset, pred_len, method)
            for metric in sorted({m for e in entries for m in e.text}):
                cells = [(e, e.raw(metric)) for e in entries if e.raw(metric) is not None]
                if len(cells) < 2:
                    continue
                decimals = min(_decimals(e.text[metric]) for e, _ in cells)
                # compare in the display scale of the coarsest entry (the printed numbers)
                ref = next(e for e, _ in cells if _decimals(e.text[metric]) == decimals)
                factor = ref.scale.get(metric, 1.0) or 1.0
                groups: dict[str, list[str]] = {}
                for e, raw in cells:
                    groups.setdefault(f"{raw * factor:.{decimals}f}", []).append(e.source)
                if len(groups) > 1:
                    values = tuple((text, tuple(dict.fromkeys(srcs))) for text, srcs in sorted(groups.items()))
                    out.append(Disagreement(method, PUBLISHED_ALIASES.get(dataset, dataset), pred_len or 0,
                                            metric, values))
        return out

    def tables(self) -> list[tuple[str, str, str]]:
        """(paper, table, caption) of every transcribed table, in paper order."""
        seen: dict[tuple[str, str], str] = {}
        for e in self.entries:
            seen.setdefault((e.paper, e.table), e.caption)
        return [(p, t, c) for (p, t), c in seen.items()]


def _entry(raw: Mapping[str, Any], index: int, path: Path) -> PublishedEntry:
    def bad(what: str) -> BenchError:
        return BenchError(f"{path}: entry {index} {what}; restore the file from the repository")

    for key in ("paper", "table", "kind", "dataset", "method", "row"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise bad(f"has no text field {key!r}")
    if raw["kind"] not in KINDS:
        raise bad(f"has unknown kind {raw['kind']!r}")
    if not isinstance(raw.get("pred_len"), int):
        raise bad("has no integer pred_len")
    values = raw.get("values")
    if not isinstance(values, dict) or not values:
        raise bad("has no values")
    for metric, text in values.items():
        try:
            ok = isinstance(text, str) and math.isfinite(float(text))
        except ValueError:
            ok = False
        if not ok:
            raise bad(f"value {metric}={text!r} is not a number written as text")
    scale = raw.get("scale", {})
    if not isinstance(scale, dict) or any(v is not None and not isinstance(v, (int, float)) for v in scale.values()):
        raise bad("has a malformed scale")
    for metric, field_name, allowed in (("ssim", "ssim_convention", SSIM_CONVENTIONS),
                                        ("psnr", "psnr_convention", PSNR_CONVENTIONS)):
        if metric in values and raw.get(field_name) not in allowed:
            raise bad(f"has {field_name}={raw.get(field_name)!r} (expected one of {', '.join(allowed)})")
    return PublishedEntry(
        paper=raw["paper"], table=raw["table"], kind=raw["kind"], dataset=raw["dataset"],
        pred_len=raw["pred_len"], method=raw["method"], ours=bool(raw.get("ours")), row=raw["row"],
        text=dict(values), scale={k: (None if v is None else float(v)) for k, v in scale.items()},
        starred=tuple(raw.get("starred", ())), sweep=raw.get("sweep"), venue=raw.get("venue"),
        note=raw.get("note"), caption=raw.get("caption", ""), device=raw.get("device"),
        remarks=tuple(str(raw[k]) for k in ("horizon_note", "flops_note") if raw.get(k)),
        ssim_convention=raw.get("ssim_convention"), psnr_convention=raw.get("psnr_convention"),
        convention_basis=str(raw.get("convention_basis", "")),
    )


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


#: our dataset name -> the dataset name its published numbers are stored under. ``mmnist_std`` (MNIST
#: digits, the standard fixed test file) is the protocol the papers' Moving MNIST tables use.
PUBLISHED_ALIASES: dict[str, str] = {"mmnist_std": "mmnist"}


def load_published(path: Path | str | None = None) -> Published:
    """Load and check ``published.json`` (the packaged copy unless ``path`` is given)."""
    path = Path(path) if path is not None else PUBLISHED_PATH
    if path == PUBLISHED_PATH:
        return _load_default()
    return _load(path)


@lru_cache(maxsize=1)
def _load_default() -> Published:
    return _load(PUBLISHED_PATH)


def _load(path: Path) -> Published:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"published numbers file {path} is missing; restore it from the repository") from None
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); restore it from the repository") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("entries"), list):
        raise BenchError(f"{path} is not a published-numbers file (schema {SCHEMA} with 'entries'); restore it from "
                         "the repository")
    entries = tuple(_entry(e, i, path) for i, e in enumerate(doc["entries"]))
    return Published(
        entries=entries,
        display_scales={d: {m: float(f) for m, f in s.items()} for d, s in doc.get("display_scale", {}).items()},
        display_scale_sources=dict(doc.get("display_scale_source", {})),
        ssim_conventions=dict(doc.get("ssim_conventions", {})),
        psnr_conventions=dict(doc.get("psnr_conventions", {})),
        papers=dict(doc.get("papers", {})),
    )
