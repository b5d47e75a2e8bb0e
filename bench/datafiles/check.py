"""``bench data list``/``check``: the catalogue of data sources and the checks of what a user has.

A dataset module registers a :class:`DataSource` (its files, how to check them, how to get them) in
:data:`SOURCES`; :func:`check_loader` loads a few batches through the dataset's own loader and
reports their shapes and value ranges (non-finite values are an error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from bench.core.registry import Registry
from bench.errors import BenchError
from bench.datafiles.download import RemoteFile


@dataclass
class CheckReport:
    """What `bench data check` prints: facts, warnings (counts differ from the paper's) and errors."""

    lines: list[tuple[str, str]] = field(default_factory=list)  # (level, text), level in ok|warn|error

    def ok(self, text: str) -> None:
        self.lines.append(("ok", text))

    def warn(self, text: str) -> None:
        self.lines.append(("warn", text))

    def error(self, text: str) -> None:
        self.lines.append(("error", text))

    @property
    def failed(self) -> bool:
        return any(level == "error" for level, _ in self.lines)


@dataclass(frozen=True)
class DataSource:
    """How a registered dataset is laid out on disk and obtained (for `bench data list/check/download`).

    ``present(root)`` -> (status, where): status is ``present``, ``partial``, ``missing`` or
    ``generated``. ``check(root, report)`` fills a :class:`CheckReport` (shapes, ranges, counts).
    """

    dataset: str
    layout: str
    how_to_get: str
    present: Callable[[Path | None], tuple[str, str]]
    check: Callable[[Path | None, CheckReport], None]
    remote: tuple[RemoteFile, ...] = ()


SOURCES: Registry[DataSource] = Registry("data source", "run `bench data list` to see the datasets and their sources")


def register_source(source: DataSource, replace: bool = False) -> DataSource:
    """Describe where a registered dataset's files go (the name is the dataset's; see :class:`Registry`)."""
    return SOURCES.add(source.dataset, source, str(getattr(source.check, "__module__", "?")), replace)


def expect_counts(report: CheckReport, found: Mapping[str, int], expected: Mapping[str, int], note: str = "",
                  unit: str = "sequences") -> None:
    """Compare counts with the papers' full sizes: a difference is a warning (fixtures, subsets)."""
    for key, want in expected.items():
        got = found.get(key)
        if got is None:
            continue
        if got == want:
            report.ok(f"{key}: {got} {unit} (as the papers)")
        else:
            report.warn(f"{key}: {got} {unit}, the papers' full set has {want}{note}")


def check_loader(spec: Any, root: Path | None, report: CheckReport, config_extra: Mapping[str, Any] | None = None) -> Any:
    """Build the splits as a run would and read the first batch of each split (shapes, ranges); a frame cache
    is built as a run builds it (every core)."""
    from bench.spec.batching import LoaderSettings
    from bench.spec.registry import DataConfig

    try:
        splits = spec.load(spec, DataConfig(data_dir=str(root) if root is not None else None,
                                            loader=LoaderSettings(build_workers=None), **dict(config_extra or {})))
    except BenchError as exc:
        report.error(str(exc))
        return None
    for split in ("train", "val", "test"):
        try:
            n = splits.size(split)
            first = next(iter(splits.batches(split, 4)), None)
        except BenchError as exc:
            report.error(str(exc))
            continue
        if first is None:
            report.error(f"{split}: no sequences (the split is empty); add its files or check the layout")
            continue
        x, y = first
        want_x = (spec.in_frames, *spec.frame_shape)
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        shape_ok = tuple(x.shape[1:]) == want_x and tuple(y.shape[2:]) == spec.frame_shape and y.shape[1] >= spec.out_frames
        if not (torch.isfinite(x).all() and torch.isfinite(y).all()):  # min/max of NaN would print [nan, nan]
            report.error(f"{split}: the first batch holds NaN or infinite values; the files are corrupt, replace them")
        elif not shape_ok:
            report.error(f"{split}: input {tuple(x.shape[1:])} / target {tuple(y.shape[1:])}, expected input {want_x} "
                         f"and target ({spec.out_frames}, {', '.join(map(str, spec.frame_shape))})")
        elif lo < 0.0 or hi > 1.0:
            report.error(f"{split}: values in [{lo:.3f}, {hi:.3f}], expected [0, 1]")
        else:
            report.ok(f"{split}: {n} sequences, input {tuple(x.shape[1:])} -> target {tuple(y.shape[1:])}, "
                      f"first batch in [{lo:.3f}, {hi:.3f}]")
    return splits
