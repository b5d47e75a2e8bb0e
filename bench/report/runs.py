"""Reading the stored runs and audits, and the few facts the report takes from one run.

Runs are read only through the typed record :class:`bench.store.record.RunResult`
(:func:`bench.store.record.load_results`); a file that does not validate is a problem line naming
the file and the field that is wrong. ``bench audit`` records are read through
:class:`AuditRecord` the same way. Nothing here renders: :func:`load_inputs` returns the complete
runs, the failed attempts, the problems and the audits by (dataset, label, tiny); the accessors
read one run's data source, device, sizes and scoring convention.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from bench import store
from bench.core.jsonio import canonical_text
from bench.core.schema import Record, SchemaError, read_record
from bench.errors import BenchError
from bench.store.record import RunResult, load_results


class AuditReference(Record):
    model_config = ConfigDict(extra="ignore")

    params: float | None = None
    flops: float | None = None
    source: str = ""
    params_diff: float | None = None
    flops_diff: float | None = None
    explanation: list[str] = []


class AuditRecord(Record):
    """The fields of a ``bench audit`` record the report reads. The record holds more (the environment,
    the time it was measured, the host allocator, ...) for the people who read it: those keys are
    ignored here, deliberately (unlike ``result.json``, the audit record is not a schema of its own)."""

    model_config = ConfigDict(extra="ignore")

    dataset: str
    label: str
    method: str = ""
    tiny: bool = False
    params: int | None = None
    flops: int | None = None
    flops_skipped: dict[str, int] = {}
    fps: float | None = None
    fps_repeats: list[float] = []
    fps_batch: int | None = None
    load_average: float | None = None
    device: str | None = None
    device_name: str | None = None
    reference: AuditReference | None = None

    @property
    def device_text(self) -> str:
        return self.device_name or self.device or "unrecorded"

    @property
    def fps_values(self) -> list[float]:
        return list(self.fps_repeats) or ([self.fps] if self.fps is not None else [])


@dataclass
class Inputs:
    complete: list[RunResult]
    failed: list[RunResult]
    problems: list[str]
    audits: dict[tuple[str, str, bool], AuditRecord]


def canon(obj: Any) -> str:
    """Sorted, compact JSON text of ``obj`` (:func:`bench.core.jsonio.canonical_text`): shown, and hashed into ids."""
    return canonical_text(obj)


def num_key(v: Any) -> tuple:
    """Sort key that orders numbers numerically and anything else after them as text."""
    if isinstance(v, bool):
        return (1, str(v))
    if isinstance(v, (int, float)):
        return (0, float(v), "")
    return (1, str(v))


def short_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:6]


_PATHLIKE = ("path", "dir", "file", "files", "root")
_DUPLICATED_INFO = ("sizes", "data_seed")  # also in the spec


def _info(run: RunResult) -> dict[str, Any]:
    info = run.dataset.info if run.dataset is not None else {}
    return {str(k): v for k, v in info.items()
            if not str(k).lower().endswith(_PATHLIKE) and str(k) not in _DUPLICATED_INFO}


def digit_source(run: RunResult) -> str | None:
    value = _info(run).get("digit_source")
    return None if value is None else str(value)


def data_source(run: RunResult) -> str:
    """The data source shown in headings (and a group key: runs on different data are never one group):
    ``digit_source`` (or any ``*source*`` keys) of ``dataset.info``, then what the spec's ``data_source``
    adds, e.g. the content digest of the files the run read (:mod:`bench.datafiles.identity`)."""
    info = _info(run)
    if "digit_source" in info:
        text = f"digits: {info['digit_source']}"
    else:
        items = [(k, v) for k, v in sorted(info.items()) if "source" in k.lower()]
        text = (", ".join(f"{k}: {v if not isinstance(v, (dict, list)) else canon(v)}" for k, v in items)
                if items else "data source unrecorded")
    identity = spec_data_identity(run)
    return f"{text}, {identity}" if identity else text


def spec_data_identity(run: RunResult) -> str:
    """The spec's ``data_source`` beyond the digit source: ``data sha256 <12 hex>`` for a content digest,
    ``key value`` for anything else (e.g. ``digit_file_bytes`` of results from before digests)."""
    source = dict(run.spec.data_source)
    if info_digits := _info(run).get("digit_source"):
        if source.get("digit_source") == info_digits:
            source.pop("digit_source")
    parts = []
    if "sha256" in source:
        parts.append(f"data sha256 {str(source.pop('sha256'))[:12]}")
    source.pop("files", None)  # the number of files the digest covers: part of the digest already
    parts += [f"{k} {v if not isinstance(v, (dict, list)) else canon(v)}" for k, v in sorted(source.items())]
    return ", ".join(parts)


def data_info_id(run: RunResult) -> str:
    """A short id of everything else in ``dataset.info`` (generator, pools...): shown when it differs."""
    rest = {k: v for k, v in _info(run).items() if "source" not in k.lower()}
    return "data info " + short_hash(canon(rest))


def device_of(run: RunResult) -> str:
    name = run.environment.device_name or (run.settings.device if run.settings is not None else None)
    return str(name or "unrecorded")


def convention_of(run: RunResult) -> str:
    return run.scoring.text if run.scoring is not None else ""


def protocol_of(run: RunResult) -> str:
    """``published`` (raw MSE/MAE, as the papers' code) or ``clipped`` (schema-1 runs)."""
    return run.scoring.protocol if run.scoring is not None else "unrecorded"


def split_sizes(run: RunResult) -> dict[str, int]:
    """The split sizes actually used (the requested ones where the record has no others)."""
    if run.dataset is not None and run.dataset.sizes:
        return dict(run.dataset.sizes)
    return dict(run.spec.sizes)


def run_dir(run: RunResult) -> Path | None:
    return None if run.path is None else Path(run.path).parent


def _read_audits(results_dir: Path) -> tuple[dict[tuple[str, str, bool], AuditRecord], list[str]]:
    audits: dict[tuple[str, str, bool], AuditRecord] = {}
    problems: list[str] = []
    for path in sorted((results_dir / "audit").glob("*/*.json")):
        try:
            record = read_record(AuditRecord, store.read_json(path))
        except SchemaError as exc:
            problems.append(f"{path}: {exc}; delete it and re-run `bench audit`")
            continue
        except BenchError as exc:
            problems.append(str(exc))
            continue
        audits[(record.dataset, record.label, record.tiny)] = record
    return audits, problems


def load_inputs(results_dir: Path) -> Inputs:
    """Complete runs, failed attempts, problems and audits; BenchError if there are no runs."""
    results_dir = Path(results_dir)
    hint = "run `bench run ...` first"
    if not results_dir.is_dir():
        raise BenchError(f"results directory {results_dir}/ does not exist: {hint} (or pass --results DIR)")
    runs, problems = load_results(results_dir)
    if not runs:
        if problems:
            raise BenchError(f"no readable results in {results_dir}/: {len(problems)} result file(s) are broken, "
                             f"e.g. {problems[0]}")
        raise BenchError(f"no results in {results_dir}/: {hint}")
    audits, audit_problems = _read_audits(results_dir)
    return Inputs([r for r in runs if r.complete], [r for r in runs if not r.complete],
                  list(problems) + audit_problems, audits)
