"""Registry of methods and datasets: register by name, list with wildcards, resolve CLI keys.

Methods
-------
A method is a :class:`MethodSpec`. The usual way to make one is the :func:`register_method`
decorator on its model builder::

    @register_method("mynet", citation="Doe et al., 2024", hparams={"*": {"hid": 64, "lr": 1e-3}})
    def build_mynet(data: DatasetSpec, hid: int) -> nn.Module:
        ...  # a module mapping (B, T, C, H, W) -> (B, T', C, H, W)

The builder receives the *model* hyperparameters only; the training hyperparameters
(:data:`TRAIN_KEYS`: epochs, batch size, optimiser, learning rate, schedule...) are consumed by the
runner. Both live in one flat dict so that ``--set key=value`` and ``method:key=value`` address any
of them with one syntax.

A CLI method key is ``name[:variant][:key=value...]``, e.g. ``tau``, ``tau:no-ddr``,
``plasm:mask-sm:r0=0.9``. Hyperparameters resolve, later winning::

    TRAIN_DEFAULTS < spec.hparams["*"] < spec.hparams[dataset] < spec.tiny (tests/--tiny only)
                   < spec.variants[variant] < key=value overrides

Every hyperparameter has a declared type and range (``params={"hid": Int(min=1)}``, see
:mod:`bench.hparams`); every resolved value is checked against it, so a bad ``--set`` fails in one
line before anything is built.

Third-party packages register through the entry-point groups ``bench.methods`` and
``bench.datasets``: the entry point may name a module (importing it registers), a
:class:`MethodSpec`/:class:`DatasetSpec` object, or a zero-argument callable returning one. The
tables are :class:`bench.generic_registry.Registry` objects: a plug-in cannot take a name another
module registered (``tau``) unless it passes ``replace=True``, and a plug-in that fails to import
(even with ``SystemExit``) is recorded, never fatal.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from importlib import import_module, metadata
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn

from bench.errors import BenchError
from bench.generic_registry import Registry, suggest
from bench.hparams import (TRAIN_DEFAULTS, TRAIN_KEYS, TRAIN_PARAMS, HParam, check_all, infer, parse_assignment,
                           split_top_level)

METHOD_GROUP = "bench.methods"
DATASET_GROUP = "bench.datasets"

__all__ = ["TRAIN_DEFAULTS", "TRAIN_KEYS", "TRAIN_PARAMS", "HParam", "parse_assignment", "DataConfig", "DatasetSpec",
           "MethodSpec", "MethodKey", "register_method", "register_dataset", "add_method", "add_dataset",
           "get_method", "get_dataset", "list_methods", "list_datasets", "parse_method_key", "create_model",
           "METHODS", "DATASETS", "plugin_errors", "model_hparams"]


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig:
    """What a dataset loader needs to build its splits.

    ``sizes`` maps split name (train/val/test) to a number of sequences; a missing key means the
    dataset's standard size. ``seed`` seeds the *training stream*; the validation and test sets
    are fixed by ``data_seed`` so that runs with different seeds are scored on the same sequences.
    """

    data_dir: str | None = None
    seed: int = 0
    data_seed: int = 0
    sizes: Mapping[str, int] = field(default_factory=dict)
    rank: int = 0
    world_size: int = 1
    pred_len: int | None = None  # evaluation horizon when it exceeds the dataset's out_frames (--pred-len)


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its geometry, protocol and loader.

    ``load(spec, config) -> Splits`` builds the train/val/test splits (see :mod:`bench.data`).
    ``metric_scale`` maps metric name to the factor the papers display it with (TaxiBJ MSE x100).
    """

    name: str
    in_frames: int
    out_frames: int
    channels: int
    height: int
    width: int
    load: Callable[["DatasetSpec", DataConfig], Any]
    description: str = ""
    citation: str = ""
    sizes: Mapping[str, int] = field(default_factory=dict)
    quick_sizes: Mapping[str, int] = field(default_factory=dict)
    metrics: tuple[str, ...] = ("mse", "mae", "ssim", "psnr")
    metric_scale: Mapping[str, float] = field(default_factory=dict)
    #: the longest evaluation horizon (``--pred-len``) the data provides; None: any (generated data)
    max_pred_len: int | None = None
    display_name: str = ""  # how reports name it, e.g. "Moving MNIST"; defaults to ``name``

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    @property
    def title(self) -> str:
        return self.display_name or self.name

    def check_pred_len(self, pred_len: int | None) -> int:
        """The evaluation horizon for ``--pred-len`` (None: the dataset's own), or a one-line BenchError."""
        if pred_len is None:
            return self.out_frames
        if pred_len < 1:
            raise BenchError(f"--pred-len must be at least 1 (got {pred_len})")
        if self.max_pred_len is not None and pred_len > self.max_pred_len:
            raise BenchError(f"--pred-len {pred_len} exceeds the {self.max_pred_len} target frames dataset "
                             f"{self.name!r} provides; use --pred-len <= {self.max_pred_len}")
        return pred_len

    def with_frames(self, in_frames: int | None = None, out_frames: int | None = None) -> "DatasetSpec":
        from dataclasses import replace

        return replace(
            self,
            in_frames=self.in_frames if in_frames is None else in_frames,
            out_frames=self.out_frames if out_frames is None else out_frames,
        )


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------


def mse_loss(pred: torch.Tensor, target: torch.Tensor, hp: Mapping[str, Any]) -> torch.Tensor:
    """Default training loss: per-pixel mean squared error."""
    return torch.nn.functional.mse_loss(pred, target)


def default_train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, hp: Mapping[str, Any],
                       progress: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Default training forward: ``pred = model(x)``, scored against ``y``.

    Returns ``(pred, target)``; recurrent methods override this to predict every next frame of
    ``cat(x, y)`` with scheduled sampling (``progress`` is the fraction of training done, in [0, 1]).
    """
    return model(x), y


def default_predict(model: nn.Module, x: torch.Tensor, hp: Mapping[str, Any]) -> torch.Tensor:
    """Default evaluation forward: the model's native output ``model(x)``."""
    return model(x)


def default_flops_inputs(data: DatasetSpec) -> tuple[torch.Tensor, ...]:
    """One sample of shape (1, T, C, H, W): the convention the papers count FLOPs with."""
    return (torch.zeros(1, data.in_frames, *data.frame_shape),)


@dataclass(frozen=True)
class MethodSpec:
    """Everything the harness needs to train and evaluate one method.

    Attributes:
        name: registry name (lower case, no ``:``).
        build: ``build(data: DatasetSpec, **model_hparams) -> nn.Module`` mapping
            (B, T, C, H, W) to (B, T', C, H, W).
        citation: the paper, as it should appear in a report.
        hparams: dataset name -> hyperparameters (model and training keys together);
            ``"*"`` holds the fallback for every dataset.
        variants: named ablations: variant name -> hyperparameter overrides.
        tiny: overrides giving a seconds-fast model for tests and ``--tiny`` smoke runs.
        loss: ``loss(pred, target, hp) -> scalar``; default per-pixel MSE.
        train_step: ``train_step(model, x, y, hp, progress) -> (pred, target)``.
        predict: ``predict(model, x, hp) -> (B, T', C, H, W)`` at evaluation time.
        pretrain: optional first stage, ``pretrain(model, ctx: PretrainContext) -> dict`` (a record
            stored in the result); it runs before the main training loop.
        flops_inputs: inputs fvcore traces to count FLOPs.
        recurrent: True if ``predict`` rolls out natively to any horizon (``hp["pred_len"]``).
        params: type and range of each hyperparameter (:mod:`bench.hparams`), declared once here;
            a key not declared is checked against the type of its default value.
    """

    name: str
    build: Callable[..., nn.Module]
    citation: str = ""
    hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tiny: Mapping[str, Any] = field(default_factory=dict)
    loss: Callable[[torch.Tensor, torch.Tensor, Mapping[str, Any]], torch.Tensor] = mse_loss
    train_step: Callable[..., tuple[torch.Tensor, torch.Tensor]] = default_train_step
    predict: Callable[..., torch.Tensor] = default_predict
    pretrain: Callable[..., dict] | None = None
    flops_inputs: Callable[[DatasetSpec], tuple[torch.Tensor, ...]] = default_flops_inputs
    recurrent: bool = False
    description: str = ""
    params: Mapping[str, HParam] = field(default_factory=dict)

    def declarations(self) -> dict[str, HParam]:
        """Every hyperparameter's declaration: the training keys', then inferred from defaults, then ``params``."""
        decl: dict[str, HParam] = dict(TRAIN_PARAMS)
        for source in (*self.hparams.values(), self.tiny, *self.variants.values()):
            for key, value in source.items():
                if key not in decl and key not in self.params and infer(value) is not None:
                    decl[key] = infer(value)
        decl.update(self.params)
        return decl

    def resolve_hparams(self, dataset: str, variant: str | None = None,
                        overrides: Mapping[str, Any] | None = None, tiny: bool = False) -> dict[str, Any]:
        """The full, validated hyperparameter dict for ``dataset`` (see the module docstring for precedence).

        Every value is checked against its declaration (:meth:`declarations`); a bad value is a
        one-line BenchError naming the key, the value and what is expected.
        """
        hp: dict[str, Any] = dict(TRAIN_DEFAULTS)
        hp.update(self.hparams.get("*", {}))
        hp.update(self.hparams.get(dataset, {}))
        if tiny:
            hp.update(self.tiny)
        if variant:
            if variant not in self.variants:
                raise BenchError(
                    f"method {self.name!r} has no variant {variant!r}{suggest(variant, list(self.variants))}; "
                    f"its variants are: {', '.join(sorted(self.variants)) or '(none)'}"
                )
            hp.update(self.variants[variant])
        for key, value in (overrides or {}).items():
            if key not in hp:
                raise BenchError(
                    f"method {self.name!r} has no hyperparameter {key!r}{suggest(key, list(hp))}; "
                    f"run `bench list --hparams {self.name}` to see them"
                )
            hp[key] = value
        return check_all(hp, self.declarations(), self.name)

    def create_model(self, data: DatasetSpec, hp: Mapping[str, Any]) -> nn.Module:
        """Build the model from the model keys of ``hp`` (the training keys are left out)."""
        return self.build(data, **model_hparams(hp))


def model_hparams(hp: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``hp`` that the builder receives (everything but the training keys)."""
    return {k: v for k, v in hp.items() if k not in TRAIN_KEYS and k != "pred_len"}


@dataclass(frozen=True)
class MethodKey:
    """A parsed CLI method key ``name[:variant][:key=value...]``."""

    spec: MethodSpec
    variant: str | None
    overrides: Mapping[str, Any]

    @property
    def label(self) -> str:
        """Canonical text of the key, e.g. ``plasm:mask-sm:r0=0.9`` or ``simvp:incep_ker=(3,5)``."""
        parts = [self.spec.name]
        if self.variant:
            parts.append(self.variant)
        parts += [f"{k}={format_value(v)}" for k, v in sorted(self.overrides.items())]
        return ":".join(parts)

    def resolve(self, dataset: str, extra: Mapping[str, Any] | None = None, tiny: bool = False) -> dict[str, Any]:
        overrides = dict(self.overrides)
        overrides.update(extra or {})
        return self.spec.resolve_hparams(dataset, self.variant, overrides, tiny=tiny)


# --------------------------------------------------------------------------------------------
# The registries
# --------------------------------------------------------------------------------------------

_BUILTINS_LOADED = False
_PLUGINS_LOADED = False
_PLUGIN_ERRORS: list[str] = []


def _ensure_loaded() -> None:
    _load_builtins()
    _load_plugins()


METHODS: Registry[MethodSpec] = Registry("method", "run `bench list` to see the registered methods", _ensure_loaded)
DATASETS: Registry[DatasetSpec] = Registry("dataset", "run `bench list` to see the registered datasets",
                                           _ensure_loaded)


def add_method(spec: MethodSpec, replace: bool = False) -> MethodSpec:
    """Register a :class:`MethodSpec`; a name another module registered is refused (see :class:`Registry`)."""
    if not spec.name or any(ch in spec.name for ch in ":,=()[] ") or spec.name != spec.name.strip():
        raise ValueError(f"method name {spec.name!r} may not be empty or contain ':', ',', '=', brackets or spaces")
    return METHODS.add(spec.name, spec, _source_of(spec.build), replace)


def add_dataset(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Register a :class:`DatasetSpec`; a name another module registered is refused (see :class:`Registry`)."""
    return DATASETS.add(spec.name, spec, _source_of(spec.load), replace)


def _source_of(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__module__", None) or repr(fn))


def register_method(name: str, replace: bool = False,
                    **fields: Any) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register the decorated builder as method ``name`` (other fields as in MethodSpec)."""

    def decorate(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        add_method(MethodSpec(name=name, build=build, **fields), replace=replace)
        return build

    return decorate


def register_dataset(name: str, replace: bool = False, **fields: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register the decorated loader as dataset ``name`` (other fields as in DatasetSpec)."""

    def decorate(load: Callable[..., Any]) -> Callable[..., Any]:
        add_dataset(DatasetSpec(name=name, load=load, **fields), replace=replace)
        return load

    return decorate


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        for module in ("bench.baselines", "bench.methods", "bench.datasets"):
            import_module(module)


def _load_plugins() -> None:
    """Import every entry point in the ``bench.methods`` / ``bench.datasets`` groups, once.

    Whatever a plug-in raises on import (``SystemExit`` included) is caught and recorded: a broken
    plug-in never takes the harness down, and asking for its name says why it failed.
    """
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for group, registry, add in ((METHOD_GROUP, METHODS, add_method), (DATASET_GROUP, DATASETS, add_dataset)):
        for ep in metadata.entry_points(group=group):
            try:
                obj = ep.load()
                if callable(obj) and not isinstance(obj, (MethodSpec, DatasetSpec)) and not hasattr(obj, "__path__"):
                    obj = obj()
                if isinstance(obj, (MethodSpec, DatasetSpec)):
                    add(obj)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - SystemExit too: a broken plug-in must not end the CLI
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                reason = f"plug-in {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}" + (
                    f": {first}" if first else "")
                _PLUGIN_ERRORS.append(reason)
                registry.failed_plugins.setdefault(ep.name, reason)


def plugin_errors() -> list[str]:
    """One line per plug-in that failed to load or whose registration was refused."""
    _ensure_loaded()
    return list(_PLUGIN_ERRORS) + METHODS.warnings + DATASETS.warnings


def list_methods(pattern: str = "*", variants: bool = False) -> list[str]:
    """Registered method names matching a shell-style wildcard; with ``variants``, ``name:variant`` too."""
    names: list[str] = []
    for name in METHODS.names():
        names.append(name)
        if variants:
            names += [f"{name}:{v}" for v in sorted(METHODS.get(name).variants)]
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered dataset names matching a shell-style wildcard."""
    return DATASETS.names(pattern)


def get_method(name: str) -> MethodSpec:
    return METHODS.get(name)


def get_dataset(name: str) -> DatasetSpec:
    return DATASETS.get(name)


def parse_method_key(text: str) -> MethodKey:
    """Parse ``name[:variant][:key=value...]`` into a :class:`MethodKey`, validating every part.

    Values are checked against the method's declarations (:mod:`bench.hparams`) here, before
    anything is built; a tuple value is written in brackets (``simvp:incep_ker=(3,5)``).
    """
    parts = [p.strip() for p in split_top_level(text.strip(), ":")]
    if not parts or not parts[0]:
        raise BenchError(f"empty method name in {text!r}; write e.g. `tau` or `tau:no-ddr`")
    spec = get_method(parts[0])
    variant: str | None = None
    overrides: dict[str, Any] = {}
    for part in parts[1:]:
        if "=" in part:
            key, value = parse_assignment(part)
            overrides[key] = value
        elif variant is None and part:
            variant = part
        else:
            raise BenchError(f"method key {text!r} names more than one variant; write name:variant:key=value")
    hp = spec.resolve_hparams("*", variant, overrides)  # validates variant, keys and values
    overrides = {k: hp[k] for k in overrides}  # normalised (lists -> tuples, ints -> floats where declared)
    return MethodKey(spec=spec, variant=variant, overrides=overrides)


def create_model(key: str, data: DatasetSpec | str, tiny: bool = False, **overrides: Any) -> nn.Module:
    """Build the model for a method key on a dataset (timm's ``create_model`` counterpart)."""
    mkey = parse_method_key(key)
    data = get_dataset(data) if isinstance(data, str) else data
    hp = mkey.resolve(data.name, overrides, tiny=tiny)
    return mkey.spec.create_model(data, hp)


def iter_method_keys() -> Iterator[str]:
    """Every registered method and every one of its variants, as CLI keys."""
    yield from list_methods(variants=True)


def format_value(value: Any) -> str:
    """A hyperparameter value as a method key writes it: ``(3,5)`` for tuples, quoted text with ``,``/``:``."""
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(format_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, str) and any(ch in value for ch in ",:=()[]"):
        return repr(value)
    return str(value)
