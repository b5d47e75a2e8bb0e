"""The run specification: everything that changes a run's numbers, as one frozen record with a hash.

A :class:`RunSpec` holds the method (name, variant, key overrides), every resolved
hyperparameter (the paper configuration, the variant, ``--set``, ``--epochs``, ``--batch-size``,
``--quick``'s caps), the dataset, the split sizes, ``--tiny``/``--quick``, the data seed, the
evaluation horizon and the numeric precision, plus the seed. :attr:`RunSpec.hash` is a stable short
hash of all of it except the seed (and of :data:`SPEC_VERSION`): runs with the same hash are the
same experiment and differ only by seed.

The hash names the run's directory (``results/<dataset>/<label>/<hash>/seed<k>``, see
:mod:`bench.store.layout`), so a tiny, quick, 2-epoch or ``--set lr=...`` result is never served for
another configuration, and an interrupted run resumes only into the same configuration; the
checkpoint carries the spec too and the runner refuses one that differs. ``bench report`` groups
and labels runs by the same record.

Where the method's code comes from (``code``, :mod:`bench.spec.code`: the registering module,
the builder's qualified name, a digest of its source file) is recorded in every spec. It is hashed
only when the code is not the built-in code (``in_tree`` False: a plug-in's own method, a plug-in
that overrode a built-in name with ``replace=True``, a builder swapped by a plug-in), and then only
its origin (registering module and builder), not the digest: so the hashes of built-in runs are
the ones they had before the field existed, a plug-in's run of ``tau`` never shares the genuine
``tau``'s hash, and editing a method's code (built-in or plug-in) does not move its results.

What is NOT in the spec (it does not change what the numbers mean): the device, the data
directory's path, channels-last, ``torch.compile``, the number of processes, the fps batch. What
the data directory holds does count (``data_source``): the SHA-256 of the files the dataset reads
(:mod:`bench.datafiles.identity`), or the bundled scikit-learn digits Moving MNIST falls back to.

:func:`resolve_run_spec` builds the spec from a method key, a dataset and the command's options,
validating every value (:mod:`bench.spec.hparams`), and :func:`check_buildable` builds the model on the
``meta`` device, so a configuration that cannot be built fails in one line before any training.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from bench.core.jsonio import canonical_text, plain
from bench.core.schema import Record, read_record
from bench.errors import BenchError
from bench.spec.checks import check_precision, check_seed, check_sizes, check_train_option
from bench.spec.hparams import same_value
from bench.spec.registry import DataConfig, DatasetSpec, MethodKey, MethodSpec, get_method, method_code, method_label

#: Bump when the meaning of a field changes: every hash changes with it.
SPEC_VERSION = 1
QUICK_EPOCHS = 2


def _tuples(obj: Any) -> Any:
    """JSON lists back to tuples (hyperparameter values are tuples in the registry)."""
    if isinstance(obj, list):
        return tuple(_tuples(v) for v in obj)
    if isinstance(obj, dict):
        return {k: _tuples(v) for k, v in obj.items()}
    return obj


class RunSpecRecord(Record):
    """The JSON form of a :class:`RunSpec` (``result.json``'s ``spec``): each field typed, no other key."""

    dataset: str
    method: str
    variant: str | None
    overrides: dict[str, Any]
    seed: int
    hparams: dict[str, Any]
    sizes: dict[str, int]
    tiny: bool
    quick: bool
    data_seed: int
    pred_len: int
    precision: str
    sets: dict[str, Any] = {}
    data_source: dict[str, Any] = {}
    code: dict[str, Any] = {}

    def to_spec(self) -> "RunSpec":
        """The spec, with JSON lists back to tuples in the hyperparameter values."""
        return RunSpec(dataset=self.dataset, method=self.method, variant=self.variant,
                       overrides=_tuples(dict(self.overrides)), seed=self.seed, hparams=_tuples(dict(self.hparams)),
                       sizes=dict(self.sizes), tiny=self.tiny, quick=self.quick, data_seed=self.data_seed,
                       pred_len=self.pred_len, precision=self.precision, sets=_tuples(dict(self.sets)),
                       data_source=dict(self.data_source), code=dict(self.code))


@dataclass(frozen=True)
class RunSpec:
    """Everything that changes a run's numbers (see the module docstring)."""

    dataset: str
    method: str
    variant: str | None
    overrides: Mapping[str, Any]
    seed: int
    hparams: Mapping[str, Any]
    sizes: Mapping[str, int]
    tiny: bool
    quick: bool
    data_seed: int
    pred_len: int
    precision: str
    sets: Mapping[str, Any] = field(default_factory=dict)  # the --set part of ``hparams`` (shown, not hashed)
    data_source: Mapping[str, Any] = field(default_factory=dict)  # DatasetSpec.source_identity (hashed)
    code: Mapping[str, Any] = field(default_factory=dict)  # bench.spec.code.code_origin (hashed if not built in)

    @property
    def label(self) -> str:
        """The canonical method key, e.g. ``plasm:mask-sm:r0=0.9``."""
        return method_label(self.method, self.variant, self.overrides)

    @property
    def epochs(self) -> int:
        return int(self.hparams["epochs"])

    @property
    def batch_size(self) -> int:
        return int(self.hparams["batch_size"])

    def identity(self) -> dict[str, Any]:
        """The hashed fields: everything but the seed and the display-only ``sets``; the code's origin
        only when it is not the built-in code (see the module docstring)."""
        fields = {"version": SPEC_VERSION, "dataset": self.dataset, "label": self.label,
                  "hparams": self.hparams, "sizes": self.sizes, "tiny": self.tiny, "quick": self.quick,
                  "data_seed": self.data_seed, "pred_len": self.pred_len, "precision": self.precision,
                  "data_source": self.data_source}
        if self.code and not self.code.get("in_tree"):
            fields["code"] = {k: self.code.get(k) for k in ("registered_by", "builder")}
        return plain(fields)

    @property
    def hash(self) -> str:
        return hashlib.sha1(canonical_text(self.identity()).encode()).hexdigest()[:10]

    def to_json(self) -> dict[str, Any]:
        return plain({"dataset": self.dataset, "method": self.method, "variant": self.variant,
                      "overrides": self.overrides, "seed": self.seed, "hparams": self.hparams,
                      "sizes": self.sizes, "tiny": self.tiny, "quick": self.quick, "data_seed": self.data_seed,
                      "pred_len": self.pred_len, "precision": self.precision, "sets": self.sets,
                      "data_source": self.data_source, "code": self.code})

    @classmethod
    def from_json(cls, data: Any) -> "RunSpec":
        """The inverse of :meth:`to_json`; :class:`bench.core.schema.SchemaError` naming a field that does not fit."""
        return read_record(RunSpecRecord, data).to_spec()

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """As a field of a pydantic record: a RunSpec as it is, or its JSON form read as a
        :class:`RunSpecRecord` (errors name ``spec.<field>``); written as :meth:`to_json`."""
        def read(value: Any, validate: core_schema.ValidatorFunctionWrapHandler) -> RunSpec:
            return value if isinstance(value, RunSpec) else validate(value).to_spec()

        return core_schema.no_info_wrap_validator_function(
            read, handler.generate_schema(RunSpecRecord),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda spec: spec.to_json()))

    def method_spec(self) -> MethodSpec:
        return get_method(self.method)


@dataclass(frozen=True)
class SpecOptions:
    """The command-line options that enter a run spec (one per command; the seed comes per run)."""

    epochs: int | None = None
    batch_size: int | None = None
    quick: bool = False
    tiny: bool = False
    sizes: Mapping[str, int] = field(default_factory=dict)
    data_seed: int = 0
    sets: Mapping[str, Any] = field(default_factory=dict)
    pred_len: int | None = None
    precision: str = "fp32"
    data_dir: str | None = None  # not in the spec: only asked what it holds (DatasetSpec.source_identity)


def resolve_run_spec(key: MethodKey, data: DatasetSpec, seed: int, opts: SpecOptions) -> RunSpec:
    """The spec of one run, with every value validated (one-line BenchError otherwise).

    Precedence of the epochs: ``--epochs`` > ``--quick``'s cap (:data:`QUICK_EPOCHS`, also applied
    to stage budgets such as ``pretrain_epochs``) > the method's configuration.

    Equal configurations get one spec (one hash): a value is canonical (``-0.0`` is ``0.0``, an
    integer given for a float is that float, ``none`` names the choice ``none``), a key override
    equal to what the key resolves to without it (for this dataset, variant, ``--tiny`` and
    ``--quick``) is dropped from the label, and a split size equal to the dataset's standard size
    (``--quick``'s sizes with ``--quick``) is dropped from ``sizes``. Every option is
    checked here against its rule (:func:`check_options`: :mod:`bench.spec.checks`, the horizon by the
    dataset), and the memory of one evaluation batch (:func:`check_batch_memory`), before anything trains.
    """
    check_options(opts, seed)
    horizon = data.check_pred_len(opts.pred_len)
    sets = canonical_values(key.spec, opts.sets)
    given = {name: ("--set", value) for name, value in sets.items()}
    for flag, name, value in (("--epochs", "epochs", opts.epochs), ("--batch-size", "batch_size", opts.batch_size)):
        if value is None:
            continue
        if name in given and given[name][1] != value:
            raise BenchError(f"{name} is set twice: --set {name}={given[name][1]!r} and {flag} {value}; give it once")
        given[name] = (flag, value)
    for name, (flag, value) in given.items():  # set twice: the label would show one value, the run use another
        if name in key.overrides and key.overrides[name] != value:
            raise BenchError(f"{name} is set twice: {key.label} says {name}={key.overrides[name]!r} and {flag} "
                             f"says {value!r}; give it once")
    overrides = {name: value for name, (_, value) in given.items()}
    hp = _resolve(key, data, opts, overrides, horizon)  # validates names, types and ranges
    default = _resolve(MethodKey(key.spec, key.variant, {}), data, opts, {}, horizon)  # the method's own values
    kept = {k: v for k, v in key.overrides.items() if not same_value(default.get(k), hp[k])}
    sizes = {**(dict(data.quick_sizes) if opts.quick else {}), **dict(opts.sizes)}  # checked by check_options
    if not opts.quick:  # the standard size written out is the standard size
        sizes = {split: n for split, n in sizes.items() if n != data.sizes.get(split)}
    check_batch_memory(data, int(hp["batch_size"]), horizon)
    source = dict(data.source_identity(DataConfig(data_dir=opts.data_dir))) if data.source_identity else {}
    return RunSpec(dataset=data.name, method=key.spec.name, variant=key.variant, overrides=kept,
                   seed=seed, hparams=hp, sizes=sizes, tiny=opts.tiny, quick=opts.quick, data_seed=opts.data_seed,
                   pred_len=horizon, precision=opts.precision, sets=sets, data_source=source,
                   code=method_code(key.spec.name))


def _resolve(key: MethodKey, data: DatasetSpec, opts: SpecOptions, overrides: Mapping[str, Any],
             horizon: int) -> dict[str, Any]:
    """The resolved hyperparameters of ``key`` with ``overrides``, ``--quick``'s caps and the horizon."""
    hp = key.resolve(data.name, overrides, tiny=opts.tiny)  # validates names, types and ranges
    if opts.quick:  # caps the budgets nobody set explicitly (stage budgets such as pretrain_epochs too)
        explicit = set(overrides) | set(key.overrides)
        for name in [k for k in hp if (k == "epochs" or k.endswith("_epochs")) and k not in explicit
                     and isinstance(hp[k], int) and not isinstance(hp[k], bool)]:
            hp[name] = min(hp[name], QUICK_EPOCHS)
    if horizon != data.out_frames:  # the dataset's own horizon is no override (same numbers, same spec)
        hp["pred_len"] = horizon
    return hp


def canonical_values(method: MethodSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` checked against ``method``'s declarations, in canonical form (keys it does not
    declare are left for :meth:`MethodSpec.resolve_hparams` to refuse)."""
    declared = method.declarations()
    return {k: declared[k].check(k, v, method.name) if k in declared else v for k, v in values.items()}


def check_options(opts: SpecOptions, seed: int) -> None:
    """The run's seed and every option of ``opts`` against its rule (:mod:`bench.spec.checks`; the
    horizon's is the dataset's), each a one-line BenchError naming the option and the fix."""
    check_precision(opts.precision)
    check_seed(seed)
    check_seed(opts.data_seed, "--data-seed")
    check_train_option("--epochs", "epochs", opts.epochs)
    check_train_option("--batch-size", "batch_size", opts.batch_size)
    check_sizes(opts.sizes)


def batch_bytes(data: DatasetSpec, batch_size: int, horizon: int) -> int:
    """Bytes of one batch's inputs, targets and predictions as float32 (training or evaluation):
    ``B x (T + 2 max(T', horizon)) x C x H x W x 4``. A lower bound of what a step holds."""
    frames = data.in_frames + 2 * max(data.out_frames, horizon)
    return batch_size * frames * data.channels * data.height * data.width * 4


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_batch_memory(data: DatasetSpec, batch_size: int, horizon: int) -> None:
    """Refuse, before anything runs, a batch whose tensors alone exceed the memory available (a
    ``--pred-len``/``--batch-size`` that would fail on memory in the middle of a run)."""
    need, free = batch_bytes(data, batch_size, horizon), available_memory()
    if free is not None and need > free:
        raise BenchError(f"one batch of {batch_size} sequences of {data.name} with {max(data.out_frames, horizon)} "
                         f"target frames needs at least {need / 2**30:.1f} GiB (inputs, targets and predictions) "
                         f"but {free / 2**30:.1f} GiB of memory is available; lower --batch-size or --pred-len")


def check_buildable(spec: RunSpec, data: DatasetSpec) -> None:
    """Build the model and run one forward pass before any training, so that a configuration its
    builder or its forward rejects (a width not divisible by its groups, an even kernel that breaks
    the shapes) fails in one line up front. Both run on the ``meta`` device (no memory, no
    arithmetic); a builder that needs real tensors is built on the CPU instead (RNG state saved and
    restored), and a forward whose operators the meta device lacks is skipped."""
    method = spec.method_spec()
    try:
        try:
            with torch.device("meta"):
                model = method.create_model(data, spec.hparams)
        except BenchError:
            raise
        except Exception:  # noqa: BLE001 - e.g. an initialiser that copies data: build for real
            with torch.random.fork_rng(devices=[]):
                model = method.create_model(data, spec.hparams)
        _meta_forward(method, model, data)
    except BenchError as exc:
        raise BenchError(f"{spec.label} on {spec.dataset}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a builder's own error, reported in one line
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise BenchError(f"{spec.label} on {spec.dataset} cannot be built with these hyperparameters "
                         f"({type(exc).__name__}: {first}); check the values with `bench list --hparams {spec.label}`"
                         ) from None


def _meta_forward(method: MethodSpec, model: torch.nn.Module, data: DatasetSpec) -> None:
    """One forward pass of ``model`` on meta inputs shaped like ``method.flops_inputs(data)``."""
    try:
        model = model.to("meta")
        inputs = tuple(t.to("meta") for t in method.flops_inputs(data))
    except Exception:  # noqa: BLE001 - cannot move it to meta: nothing to check cheaply
        return
    try:
        with torch.no_grad():
            model.eval()(*inputs)
    except NotImplementedError:  # an operator without a meta kernel: not a configuration error
        return
