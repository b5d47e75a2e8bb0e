"""Grouping runs: comparability groups (one table each) and rows (one run specification each).

A :class:`Group` holds the runs whose numbers may be ranked against each other: the same dataset,
frames in -> out (the spec's evaluation horizon), frame geometry, epochs, tiny vs paper-size,
quick, split sizes, data source, data seed, precision, other data info and scoring convention.
Its :class:`RowRuns` are the runs of one run specification (:attr:`bench.spec.run_spec.RunSpec.hash`:
method, variant, every resolved hyperparameter...), sorted by seed; a row is labelled with the
spec's label (``tau:no-ddr``), suffixed with the hyperparameters that differ when one label has
several specifications in a group (``simvp [lr=0.001]``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from bench.metrics.display import CLIPPED, TABLE_METRICS
from bench.report.runs import (canon, convention_of, data_info_id, data_source, device_of, num_key, protocol_of,
                               short_hash, split_sizes)
from bench.store.record import RunResult

#: key fields shown in a heading only when they differ between groups of one dataset
HIDDEN_FIELDS = ("quick", "precision", "data info", "metric convention")
SPLITS = ("train", "val", "test")


@dataclass
class GroupKey:
    dataset: str
    fields: dict[str, str]  # name -> value, in heading order
    sort: tuple

    @property
    def gid(self) -> str:
        return hashlib.sha1(canon([self.dataset, self.fields]).encode()).hexdigest()[:8]


def group_key(run: RunResult) -> GroupKey:
    spec = run.spec
    ds = run.dataset
    sizes = split_sizes(run)
    conv = convention_of(run)
    protocol = protocol_of(run)
    epochs = spec.epochs
    fields = {
        "frames": f"{ds.in_frames if ds else '?'}→{spec.pred_len}",
        "frame": f"{ds.channels}×{ds.height}×{ds.width}" if ds else "frame unrecorded",
        "budget": f"{epochs} epoch{'s' if epochs != 1 else ''}",
        "model": "tiny models" if spec.tiny else "paper-size models",
        "sizes": "train/val/test " + "/".join(str(sizes.get(s, "?")) for s in SPLITS),
        "data": data_source(run),
        "data seed": f"data seed {spec.data_seed}",
        "quick": "quick runs" if spec.quick else "full runs",
        "precision": f"precision {spec.precision}",
        "data info": data_info_id(run),
        "metric convention": f"scoring {protocol} {short_hash(conv)}" if conv else f"scoring {protocol}",
    }
    sort = (spec.dataset, spec.pred_len, spec.tiny, spec.quick, epochs, tuple(num_key(sizes.get(s)) for s in SPLITS),
            fields["data"], spec.data_seed, spec.precision, fields["data info"], protocol, conv)
    return GroupKey(spec.dataset, fields, sort)


@dataclass
class RowRuns:
    """One row: the runs (seeds) of one run specification."""

    label: str
    spec_hash: str
    runs: list[RunResult]
    display: str = ""

    @property
    def spec(self):
        return self.runs[0].spec

    @property
    def method(self) -> str:
        return self.spec.method

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.spec.overrides)

    @property
    def variant(self) -> str | None:
        return self.spec.variant

    @property
    def uses_sets(self) -> bool:
        return any(r.spec.sets for r in self.runs)

    @property
    def seeds(self) -> list[int]:
        return [r.spec.seed for r in self.runs]

    def values(self, metric: str) -> list[tuple[int, float]]:
        """(seed, test value) of every run that has ``metric``."""
        return [(r.spec.seed, float(r.test[metric])) for r in self.runs if r.test and metric in r.test]

    def metric(self, metric: str) -> list[float]:
        return [v for _, v in self.values(metric)]

    def per_frame(self, metric: str) -> list[list[float]]:
        """Per-frame test values (frame 1..T') of every run that recorded them."""
        return [list(r.test_per_frame[metric]) for r in self.runs
                if r.test_per_frame and metric in r.test_per_frame]

    def cost(self, name: str) -> list[float]:
        """One efficiency figure (``params``, ``flops``, ``fps``...) of every run that recorded it."""
        out = []
        for r in self.runs:
            value = getattr(r.efficiency, name, None) if r.efficiency is not None else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                out.append(float(value))
        return out

    def fps_values(self) -> list[float]:
        """Every timed fps repeat of every seed."""
        return [float(v) for r in self.runs if r.efficiency is not None for v in r.efficiency.fps_repeats]

    def epoch_seconds(self) -> list[float]:
        """Training seconds of every epoch of every seed."""
        return [float(h.seconds) for r in self.runs for h in r.history]

    def loads(self) -> list[float]:
        return [r.efficiency.load_average for r in self.runs
                if r.efficiency is not None and r.efficiency.load_average is not None]

    def devices(self) -> list[str]:
        return sorted({device_of(r) for r in self.runs})


@dataclass
class Group:
    key: GroupKey
    runs: list[RunResult]
    tag: str = ""
    rows: list[RowRuns] = field(default_factory=list)
    shown_hidden: tuple[str, ...] = ()  # hidden fields that differ from another group of the dataset

    @property
    def dataset(self) -> str:
        return self.key.dataset

    @property
    def pred_len(self) -> int:
        return self.runs[0].spec.pred_len

    @property
    def tiny(self) -> bool:
        return self.runs[0].spec.tiny

    @property
    def quick(self) -> bool:
        return self.runs[0].spec.quick

    @property
    def first(self) -> RunResult:
        return self.runs[0]

    def title(self) -> str:
        return f"{self.tag}: " + " · ".join(v for k, v in self.key.fields.items()
                                              if k not in HIDDEN_FIELDS or k in self.shown_hidden)

    def short_title(self) -> str:
        f = self.key.fields
        return f"{self.tag} · {f['frames']} · {f['budget']} · {f['model']} · {f['data']}"

    def present(self) -> set[str]:
        return {m for r in self.runs for m in (r.test or {})}

    @property
    def metrics(self) -> list[str]:
        """Published-protocol quality metrics recorded by the group's runs, in column order."""
        present = self.present()
        return [m for m in TABLE_METRICS if m in present]

    def clipped_only(self) -> list[str]:
        """Clipped variants recorded by a run that has no published-protocol value (schema-1 runs)."""
        return [c for m, c in CLIPPED.items()
                if any(r.test and c in r.test and m not in r.test for r in self.runs)]

    def per_frame_metrics(self) -> list[str]:
        present = {m for r in self.runs for m in (r.test_per_frame or {})}
        return [m for m in ("mse", "mae", "ssim", "psnr") if m in present]


def build_rows(runs: list[RunResult]) -> list[RowRuns]:
    by: dict[tuple[str, str], list[RunResult]] = {}
    for r in runs:
        by.setdefault((r.label, r.spec.hash), []).append(r)
    rows = [RowRuns(label, h, sorted(rs, key=lambda r: r.spec.seed)) for (label, h), rs in sorted(by.items())]
    labels: dict[str, list[RowRuns]] = {}
    for row in rows:
        labels.setdefault(row.label, []).append(row)
    for label, same in labels.items():
        if len(same) == 1:
            same[0].display = label
            continue
        hps = [dict(r.spec.hparams) for r in same]
        keys = sorted({k for hp in hps for k in hp if any(h.get(k) != hps[0].get(k) for h in hps)})
        for row, hp in zip(same, hps):
            what = ", ".join(f"{k}={canon(hp.get(k))}" for k in keys) or f"spec {row.spec_hash}"
            row.display = f"{label} [{what}]"
    return rows


def make_groups(runs: list[RunResult]) -> list[Group]:
    by: dict[str, tuple[GroupKey, list[RunResult]]] = {}
    for r in runs:
        gk = group_key(r)
        by.setdefault(canon([gk.dataset, gk.fields]), (gk, []))[1].append(r)
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
