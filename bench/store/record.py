"""The result record: the one typed definition of ``result.json``, for writers and readers alike.

:class:`RunResult` is what the runner writes for a complete run and the sweep writes for a failed
one, what ``bench report`` reads, and what tests build. Its parts are frozen pydantic records
(:class:`bench.core.schema.Record`: an integer is never a bool, a float is finite, ``status`` is one
of two words, ...), checked when built and when read. Every file is read through
:func:`read_result`, which checks every field's type and the rules a complete or failed run obeys;
a file that does not validate becomes one problem line naming the field that is wrong (``bench
report`` lists it under "Skipped files"; ``bench run`` never serves it as the run's result).

A key the record does not declare is such an error too, not a dropped key: the file is refused. A
key this bench does not know may change what the numbers mean (a field of a newer bench) or be a
misspelt hand edit (``tset``, the test metrics the editor meant to change); reading the rest would
show numbers whose meaning is not known, and the key would be lost at the next write. The line
names the key, and a newer bench or removing the key reads the file again.

Schema 1 files (written before the run spec existed) are read by :func:`migrate_v1`, which picks
the fields schema 1 had (anything else in them is left behind, as ever): their ``mse``/``mae`` were
scored on clipped predictions, so they become ``mse_clipped``/``mae_clipped``
(:data:`bench.metrics.declarations.V1_RENAMES`) and the published-protocol columns stay empty for them.

A result counts once, and only where its own spec puts it: :func:`read_result` reads only regular
files of bounded size (:mod:`bench.core.safe_read`) and checks every directory name from the dataset
down (:func:`expected_location`: dataset, label, recorded spec hash, seed; schema 1 had no hash
directory), below the results root when it is known; :func:`load_results` looks everywhere under
the root (:mod:`bench.store.scan`), so that a copy (``simvp.bak/``, ``mmnist_old/``) is listed as
skipped, and counts one result per run as :func:`bench.store.commit.recover_run` would leave it.

Layout of the fields (schema 2)::

    schema, status ("complete" | "failed"), spec (bench.spec.run_spec.RunSpec), spec_hash,
    method {name, citation, recurrent}, dataset {name, in_frames, out_frames, channels, height,
    width, info, sizes}, environment {bench, python, platform, torch, ..., git, device_name},
    settings {device, channels_last, compile, world_size, batch_rule, selection, host_allocator,
    schedule},
    scoring {protocol, text}, history [{epoch, train_loss, lr, seconds, eval_seconds,
    train_samples, val {metric: value}}], best_epoch, test {metric: value},
    test_per_frame {metric: [value at predicted frame 1..T']}, efficiency {params, flops, fps,
    fps_repeats, load_average, ...}, pretrain, memory {train_rss, eval_rss, measure_rss,
    train_gpu, eval_gpu, measure_gpu, rss_scope} (written only when measured: records of older runs
    read and write back without it), timing {started, finished, wall_seconds},
    error, last_good_epoch, traceback (failed runs)
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import PrivateAttr

from bench.core.jsonio import file_text
from bench.core.safe_read import read_json_file
from bench.core.schema import Record, SchemaError, read_record
from bench.errors import BenchError
from bench.metrics.declarations import V1_RENAMES
from bench.spec.run_spec import SPEC_VERSION, RunSpec
from bench.store.layout import label_to_dirname
from bench.store.scan import find_result_files

SCHEMA = 2


class MethodInfo(Record):
    name: str
    citation: str = ""
    recurrent: bool = False


class DatasetInfo(Record):
    """The dataset's geometry, what its loader recorded (``info``: digit source, files...) and the
    split sizes actually used."""

    name: str
    in_frames: int
    out_frames: int
    channels: int
    height: int
    width: int
    info: dict[str, Any] = {}
    sizes: dict[str, int] = {}


class Environment(Record):
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

    @classmethod
    def of(cls, probe: dict[str, Any]) -> "Environment":
        """The fields of ``bench.store.provenance.environment``'s probe this record keeps."""
        return cls(**{k: v for k, v in probe.items() if k in cls.model_fields})


class RunSettings(Record):
    """How the run was executed: settings that do not change what the numbers mean."""

    device: str
    channels_last: bool = False
    compile: bool = False
    world_size: int = 1
    batch_rule: str = ""
    selection: str = "best validation MSE"
    host_allocator: str = ""  # CPU runs: bench.core.host_allocator's setting ("" for GPU runs and older results)
    schedule: dict[str, Any] = {}  # MethodSpec.schedule: its schedules on this run's clock


class Scoring(Record):
    protocol: str  # "published" (raw MSE/MAE, clipped SSIM/PSNR) or "clipped" (schema-1 runs)
    text: str  # bench.metrics.functional.METRIC_CONVENTION as the run used it


class EpochRecord(Record):
    epoch: int
    train_loss: float
    lr: float
    seconds: float
    eval_seconds: float
    train_samples: int
    val: dict[str, float]


class Efficiency(Record):
    params: int | None = None
    trainable_params: int | None = None
    flops: int | None = None
    flops_skipped: dict[str, int] = {}
    flops_convention: str = ""
    fps: float | None = None  # median of fps_repeats
    fps_repeats: list[float] = []  # test sequences/s of each timed repeat
    fps_batch: int | None = None
    load_average: float | None = None  # 1-minute load average of the machine when fps was timed
    train_seconds_per_epoch: float | None = None  # median over epochs (each is history[i].seconds)
    train_samples_per_second: float | None = None


class PeakMemory(Record):
    """Peak memory of a run's phases in bytes (:mod:`bench.core.memory`; under torchrun rank 0's): ``train``
    (data, model, pretraining, the epochs and their checkpoints, before a resume too), ``eval`` (validation
    and test passes), ``measure`` (FLOP count, fps). ``*_rss``: resident, each phase's own where
    ``rss_scope`` is "phase" (else the process's so far); ``*_gpu``: CUDA-allocated (None on the CPU)."""

    train_rss: int | None = None
    eval_rss: int | None = None
    measure_rss: int | None = None
    train_gpu: int | None = None
    eval_gpu: int | None = None
    measure_gpu: int | None = None
    rss_scope: Literal["phase", "process"] = "phase"


class Timing(Record):
    started: str | None = None
    finished: str | None = None
    wall_seconds: float | None = None


with warnings.catch_warnings():  # the field ``schema`` shadows pydantic's deprecated BaseModel.schema(): meant
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class RunResult(Record):
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
        history: list[EpochRecord] = []
        best_epoch: int | None = None
        test: dict[str, float] | None = None
        test_per_frame: dict[str, list[float]] | None = None
        efficiency: Efficiency | None = None
        pretrain: dict[str, Any] | None = None
        memory: PeakMemory | None = None  # peak memory of training and evaluation (absent from older records)
        omitted_when_none: ClassVar[tuple[str, ...]] = ("memory",)
        error: str | None = None
        last_good_epoch: int | None = None
        traceback: str | None = None
        spec_version: int = SPEC_VERSION  # the run-spec rules its hash was made with
        _path: str | None = PrivateAttr(default=None)  # where it was read from (not stored)

        @property
        def path(self) -> str | None:
            """The file it was read from (None for a record built in code)."""
            return self._path

        def located(self, path: Path | str) -> "RunResult":
            """This record as read from ``path``."""
            copy = self.model_copy()
            copy._path = str(path)
            return copy

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


def write_json_text(result: RunResult) -> str:
    """The file text of ``result`` (:func:`bench.core.jsonio.file_text`: sorted keys, stable for diffs;
    a metric that is not finite is refused, never written)."""
    return file_text(result, nonfinite="refuse")


def parse_result(data: Any, where: str = "result.json") -> RunResult:
    """Validate parsed JSON as a :class:`RunResult`; BenchError naming ``where`` and the field."""
    try:
        if isinstance(data, dict) and data.get("schema") == 1:
            data = migrate_v1(data)
        return read_record(RunResult, data).check()
    except SchemaError as exc:
        fix = ("remove that key (or read the file with the newer bench that wrote it)" if exc.unknown_key else
               "the file was edited or is from another tool: fix that field")
        raise BenchError(f"{where}: {exc}; {fix}, or delete the file and re-run that run") from None


def read_result(path: Path, root: Path | None = None) -> RunResult:
    """Read and validate one result file (one-line BenchError for unreadable or invalid files, and for
    a file not where its spec puts it: below ``root`` when given, else by the directories above it)."""
    path = Path(path)
    data = read_json_file(path, fix="delete it and re-run that run")  # regular files only, bounded
    result = parse_result(data, str(path)).located(path)
    _check_location(result, path, root)
    return result


def expected_location(result: RunResult) -> tuple[str, ...]:
    """The directories a result's own spec puts it in, below the results root: ``(dataset, label
    directory, spec hash, seed<k>)``, or ``(dataset, label directory, seed<k>)`` for schema 1 (the
    layout before the spec hash existed); the hash is the one the file records, whatever the spec
    version it was made with."""
    head = (result.spec.dataset, label_to_dirname(result.label))
    seed = f"seed{result.spec.seed}"
    return head + ((seed,) if result.schema == 1 else (result.spec_hash, seed))


def _check_location(result: RunResult, path: Path, root: Path | None = None) -> None:
    """A result is only trusted in the directory of its own configuration and seed (a copied or moved
    file would otherwise be served for another configuration, or count a seed twice): every directory
    name from the dataset down must be the one its spec gives (the seed directory may carry the
    ``.partial`` or ``.replaced`` suffix of a run being committed)."""
    expected = expected_location(result)
    found = list(path.parent.relative_to(root).parts if root is not None else path.parent.parts[-len(expected):])
    if found and re.fullmatch(r"seed\d+\.(partial|replaced)", found[-1]):
        found[-1] = found[-1].rsplit(".", 1)[0]
    if tuple(found) != expected:
        raise BenchError(f"{path} holds the result of {result.label} seed {result.spec.seed} (spec "
                         f"{result.spec_hash or 'of schema 1'}), which belongs in another directory, "
                         f"{'/'.join(expected)} under the results directory (it was copied or moved); move it "
                         f"back or delete it")


# ----------------------------------------------------------------------------------- schema 1


def _v1_metrics(values: Any) -> Any:
    """Schema-1 metric names as today's (:data:`bench.metrics.declarations.V1_RENAMES`); others are dropped."""
    if not isinstance(values, dict):
        return values
    return {new: values[old] for old, new in V1_RENAMES.items() if old in values}


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
        out["efficiency"] = {k: v for k, v in eff.items() if k in Efficiency.model_fields}
        if isinstance(eff.get("fps"), (int, float)):
            out["efficiency"]["fps_repeats"] = [eff["fps"]]
    return out


def _v1_environment(env: Any) -> dict[str, Any]:
    if not isinstance(env, dict):
        return {}
    env = {k.replace("-", "_"): v for k, v in env.items()}
    return {k: v for k, v in env.items() if k in Environment.model_fields}


# ----------------------------------------------------------------------------------- loading

def result_files(root: Path) -> list[Path]:
    """Every ``result.json`` under ``root``, wherever it lies (:func:`bench.store.scan.find_result_files`)."""
    return find_result_files(root)[0]


def load_results(root: Path) -> tuple[list[RunResult], list[str]]:
    """All results under ``root``: (valid results, one problem line per file that is not valid or not
    where its spec puts it). Reads only; each run counts once.

    A run's slot (its configuration directory and seed) may hold, after an interruption, a committed
    ``seed<k>``, a ``seed<k>.partial`` and a ``seed<k>.replaced``; the one counted is the one
    :func:`bench.store.commit.recover_run` will leave in place at the next ``bench run``: a complete
    result waiting in ``.partial`` (it was finished, a crash came before its commit), else the
    committed one, else the previous result a ``--force`` swap moved aside. A failed attempt in
    ``.partial`` is kept too: the report lists it, beside the result it did not replace if any.
    """
    root = Path(root)
    paths, problems = find_result_files(root)
    slots: dict[tuple[str, int], dict[str, RunResult]] = {}
    for path in paths:
        try:
            result = read_result(path, root)
        except BenchError as exc:
            problems.append(str(exc))
            continue
        kind = path.parent.name.partition(".")[2]  # "", "partial" or "replaced" (checked by read_result)
        slots.setdefault((str(path.parent.parent), result.spec.seed), {})[kind] = result
    results = []
    for slot in slots.values():
        waiting, committed, aside = slot.get("partial"), slot.get(""), slot.get("replaced")
        if waiting is not None and waiting.complete:
            results.append(waiting)
        elif committed is not None:
            results.append(committed)
        elif aside is not None:
            results.append(aside)
        if waiting is not None and not waiting.complete:
            results.append(waiting)
    results.sort(key=lambda r: (r.spec.dataset, r.label, r.spec.hash, r.spec.seed, r.status))
    return results, problems
