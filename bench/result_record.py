"""The result record: the one typed definition of ``result.json``, for writers and readers alike.

:class:`RunResult` is what the runner writes for a complete run and the sweep writes for a failed
one, what ``bench report`` reads, and what tests build. Every file is read through
:func:`read_result`, which checks every field's type (:mod:`bench.typed_json`) and the rules a
complete or failed run obeys; a file that does not validate becomes one problem line naming the
field that is wrong. Schema 1 files (written before the run spec existed) are read by
:func:`migrate_v1`: their ``mse``/``mae`` were scored on clipped predictions, so they become
``mse_clipped``/``mae_clipped`` and the published-protocol columns stay empty for them.

Layout of the fields (schema 2)::

    schema, status ("complete" | "failed"), spec (bench.run_spec.RunSpec), spec_hash,
    method {name, citation, recurrent}, dataset {name, in_frames, out_frames, channels, height,
    width, info, sizes}, environment {bench, python, platform, torch, ..., git, device_name},
    settings {device, channels_last, compile, world_size, batch_rule, selection, host_allocator,
    schedule},
    scoring {protocol, text}, history [{epoch, train_loss, lr, seconds, eval_seconds,
    train_samples, val {metric: value}}], best_epoch, test {metric: value},
    test_per_frame {metric: [value at predicted frame 1..T']}, efficiency {params, flops, fps,
    fps_repeats, load_average, ...}, pretrain, timing {started, finished, wall_seconds},
    error, last_good_epoch, traceback (failed runs)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bench.errors import BenchError
from bench.results import RESULT_FILE
from bench.run_spec import SPEC_VERSION, RunSpec, canonical
from bench.typed_json import SchemaError, from_json, to_json

SCHEMA = 2


@dataclass(frozen=True)
class MethodInfo:
    name: str
    citation: str = ""
    recurrent: bool = False


@dataclass(frozen=True)
class DatasetInfo:
    """The dataset's geometry, what its loader recorded (``info``: digit source, files...) and the
    split sizes actually used."""

    name: str
    in_frames: int
    out_frames: int
    channels: int
    height: int
    width: int
    info: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Environment:
    bench: str | None = None
    python: str | None = None
    platform: str | None = None
    torch: str | None = None
    numpy: str | None = None
    fvcore: str | None = None
    scikit_image: str | None = None
    cuda: str | None = None
    git: str | None = None
    git_dirty: bool | None = None
    device: str | None = None
    device_name: str | None = None


@dataclass(frozen=True)
class RunSettings:
    """How the run was executed: settings that do not change what the numbers mean."""

    device: str
    channels_last: bool = False
    compile: bool = False
    world_size: int = 1
    batch_rule: str = ""
    selection: str = "best validation MSE"
    host_allocator: str = ""  # CPU runs: bench.host_allocator's setting ("" for GPU runs and older results)
    schedule: dict[str, Any] = field(default_factory=dict)  # MethodSpec.schedule: its schedules on this run's clock


@dataclass(frozen=True)
class Scoring:
    protocol: str  # "published" (raw MSE/MAE, clipped SSIM/PSNR) or "clipped" (schema-1 runs)
    text: str  # bench.metrics.METRIC_CONVENTION as the run used it


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    lr: float
    seconds: float
    eval_seconds: float
    train_samples: int
    val: dict[str, float]


@dataclass(frozen=True)
class Efficiency:
    params: int | None = None
    trainable_params: int | None = None
    flops: int | None = None
    flops_skipped: dict[str, int] = field(default_factory=dict)
    flops_convention: str = ""
    fps: float | None = None  # median of fps_repeats
    fps_repeats: list[float] = field(default_factory=list)  # test sequences/s of each timed repeat
    fps_batch: int | None = None
    load_average: float | None = None  # 1-minute load average of the machine when fps was timed
    train_seconds_per_epoch: float | None = None  # median over epochs (each is history[i].seconds)
    train_samples_per_second: float | None = None


@dataclass(frozen=True)
class Timing:
    started: str | None = None
    finished: str | None = None
    wall_seconds: float | None = None


@dataclass(frozen=True)
class RunResult:
    """One run's record (see the module docstring)."""

    schema: int
    status: Literal["complete", "failed"]
    spec: RunSpec
    spec_hash: str
    method: MethodInfo
    environment: Environment
    timing: Timing
    dataset: DatasetInfo | None = None
    settings: RunSettings | None = None
    scoring: Scoring | None = None
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
    test: dict[str, float] | None = None
    test_per_frame: dict[str, list[float]] | None = None
    efficiency: Efficiency | None = None
    pretrain: dict[str, Any] | None = None
    error: str | None = None
    last_good_epoch: int | None = None
    traceback: str | None = None
    spec_version: int = SPEC_VERSION  # the run-spec rules its hash was made with
    path: str | None = None  # where it was read from (not stored)

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def check(self) -> "RunResult":
        """The rules beyond types; SchemaError naming the field otherwise."""
        if self.schema not in (1, SCHEMA):
            newer = " (written by a newer bench: upgrade bench to read it)" if self.schema > SCHEMA else ""
            raise SchemaError("schema", f"is {self.schema}, expected {SCHEMA}{newer}")
        if self.schema == SCHEMA and self.spec_version == SPEC_VERSION and self.spec_hash != self.spec.hash:
            raise SchemaError("spec_hash", f"is {self.spec_hash!r} but the spec hashes to {self.spec.hash!r} "
                                           "(the spec or the hash was edited)")
        if self.status == "complete":
            for name in ("dataset", "test", "best_epoch"):
                if getattr(self, name) is None:
                    raise SchemaError(name, "is missing, but a complete run has it")
            if not self.test:
                raise SchemaError("test", "is empty, but a complete run has test metrics")
        elif not self.error:
            raise SchemaError("error", "is missing, but a failed run names its error")
        return self

    def to_json(self) -> dict[str, Any]:
        data = {name: to_json(getattr(self, name)) for name in self.__dataclass_fields__ if name != "path"}
        data["spec"] = self.spec.to_json()
        return data


def write_json_text(result: RunResult) -> str:
    """The file text of ``result`` (sorted keys, stable for diffs)."""
    return json.dumps(canonical(result.to_json()), indent=2, sort_keys=True, allow_nan=False) + "\n"


def parse_result(data: Any, where: str = "result.json") -> RunResult:
    """Validate parsed JSON as a :class:`RunResult`; BenchError naming ``where`` and the field."""
    try:
        if isinstance(data, dict) and data.get("schema") == 1:
            data = migrate_v1(data)
        result = from_json(RunResult, data)
        return result.check()
    except SchemaError as exc:
        raise BenchError(f"{where}: {exc}; the file was edited or is from another tool: fix that field, or delete "
                         f"the file and re-run that run") from None


def read_result(path: Path) -> RunResult:
    """Read and validate one result file (one-line BenchError for unreadable or invalid files)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BenchError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BenchError(f"{path} is not UTF-8 text; delete it and re-run that run") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); delete it and re-run "
                         f"that run") from None
    result = replace(parse_result(data, str(path)), path=str(path))
    _check_location(result, path)
    return result


def _check_location(result: RunResult, path: Path) -> None:
    """A result is only trusted in the directory of its own configuration and seed (a copied or moved
    file would otherwise be served for another configuration, or count a seed twice)."""
    seed_dir = path.parent.name
    expected = (f"seed{result.spec.seed}", f"seed{result.spec.seed}.partial")
    wrong = seed_dir not in expected
    if result.schema == SCHEMA and result.spec_version == SPEC_VERSION:
        wrong = wrong or path.parent.parent.name != result.spec_hash
    if wrong:
        raise BenchError(f"{path} holds the result of {result.label} seed {result.spec.seed} (spec "
                         f"{result.spec_hash or 'of schema 1'}), which belongs in another directory (it was copied or "
                         f"moved); move it back or delete it")


# ----------------------------------------------------------------------------------- schema 1


_V1_RENAMES = {"mse": "mse_clipped", "mae": "mae_clipped", "psnr": "psnr", "ssim": "ssim", "ssim_legacy": "ssim_legacy"}


def _v1_metrics(values: Any) -> Any:
    if not isinstance(values, dict):
        return values
    return {new: values[old] for old, new in _V1_RENAMES.items() if old in values}


def migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 record in schema-2 form (its MSE/MAE were scored on clipped predictions)."""
    key = data.get("key") if isinstance(data.get("key"), dict) else {}
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    ds = data.get("dataset") if isinstance(data.get("dataset"), dict) else {}
    spec = {"dataset": key.get("dataset"), "method": key.get("method"), "variant": key.get("variant"),
            "overrides": key.get("overrides") or {}, "seed": key.get("seed"),
            "hparams": config.get("hparams") or {}, "sizes": config.get("sizes") or {},
            "tiny": bool(config.get("tiny", False)), "quick": bool(config.get("quick", False)),
            "data_seed": config.get("data_seed", 0), "pred_len": config.get("pred_len", ds.get("out_frames", 0)),
            "precision": config.get("precision", "fp32"), "sets": config.get("sets") or {}}
    out: dict[str, Any] = {"schema": 1, "status": data.get("status"), "spec": spec, "spec_hash": "",
                           "method": data.get("method") or {"name": key.get("method")},
                           "environment": _v1_environment(data.get("environment")),
                           "timing": {k: v for k, v in (data.get("timing") or {}).items()
                                      if k in ("started", "finished", "wall_seconds")}}
    if ds:
        out["dataset"] = {**{k: ds.get(k) for k in ("name", "in_frames", "out_frames", "channels", "height", "width")},
                          "info": ds.get("info") or {}, "sizes": config.get("sizes") or {}}
    if config:
        out["settings"] = {"device": config.get("device", "unrecorded"),
                           "channels_last": bool(config.get("channels_last", False)),
                           "compile": bool(config.get("compile", False)),
                           "world_size": config.get("world_size", 1), "batch_rule": config.get("batch_rule", ""),
                           "selection": config.get("selection", "best validation MSE")}
    if data.get("metric_convention"):
        out["scoring"] = {"protocol": "clipped", "text": data["metric_convention"]}
    history = data.get("history") if isinstance(data.get("history"), list) else []
    out["history"] = [{**{k: v for k, v in row.items() if not k.startswith("val_")},
                       "val": _v1_metrics({k[4:]: v for k, v in row.items() if k.startswith("val_")})}
                      if isinstance(row, dict) else row for row in history]
    for name in ("best_epoch", "pretrain", "error", "last_good_epoch", "traceback"):
        if name in data:
            out[name] = data[name]
    if "test" in data:
        out["test"] = _v1_metrics(data["test"])
    eff = data.get("efficiency")
    if isinstance(eff, dict):
        out["efficiency"] = {k: v for k, v in eff.items() if k in Efficiency.__dataclass_fields__}
        if isinstance(eff.get("fps"), (int, float)):
            out["efficiency"]["fps_repeats"] = [eff["fps"]]
    return out


def _v1_environment(env: Any) -> dict[str, Any]:
    if not isinstance(env, dict):
        return {}
    env = {k.replace("-", "_"): v for k, v in env.items()}
    return {k: v for k, v in env.items() if k in Environment.__dataclass_fields__}


# ----------------------------------------------------------------------------------- loading

_SEED_DIR = re.compile(r"seed\d+")
_PARTIAL_DIR = re.compile(r"seed\d+\.partial")


def result_files(root: Path) -> list[Path]:
    """Every result file under ``root``: complete runs (``.../seed<k>/result.json``, schema 2 under a
    spec-hash directory, schema 1 directly under the label) and failed attempts
    (``.../seed<k>.partial/result.json``)."""
    root = Path(root)
    found = []
    for pattern in (f"*/*/*/seed*/{RESULT_FILE}", f"*/*/seed*/{RESULT_FILE}"):
        for path in root.glob(pattern):
            name = path.parent.name
            if path.parts[len(root.parts)] in ("audit", "_cache", "report"):
                continue
            if _SEED_DIR.fullmatch(name) or _PARTIAL_DIR.fullmatch(name):
                found.append(path)
    return sorted(set(found))


def load_results(root: Path) -> tuple[list[RunResult], list[str]]:
    """All results under ``root``: (valid results, one problem line per file that is not valid).

    A failed attempt whose configuration also has a complete result is kept too: the report
    lists it as a failed re-run beside the result it did not replace. A complete result still in
    its work directory (a crash just before the commit) is left out until it is committed.
    """
    results, problems = [], []
    for path in result_files(root):
        try:
            result = read_result(path)
        except BenchError as exc:
            problems.append(str(exc))
            continue
        if _PARTIAL_DIR.fullmatch(path.parent.name) and result.complete:
            continue  # finished but not yet committed: the next `bench run` commits it; counted then
        results.append(result)
    results.sort(key=lambda r: (r.spec.dataset, r.label, r.spec.hash, r.spec.seed, r.status))
    return results, problems
