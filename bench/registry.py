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

Third-party packages register through the entry-point groups ``bench.methods`` and
``bench.datasets``: the entry point may name a module (importing it registers), a
:class:`MethodSpec`/:class:`DatasetSpec` object, or a zero-argument callable returning one.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
from dataclasses import dataclass, field
from importlib import import_module, metadata
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn

from bench.errors import BenchError

METHOD_GROUP = "bench.methods"
DATASET_GROUP = "bench.datasets"

#: Training hyperparameters every method has; the runner consumes these, the builder never sees them.
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 100,
    "batch_size": 16,
    "lr": 1e-3,
    "optimizer": "adam",  # adam | adamw | sgd
    "weight_decay": 0.0,
    "schedule": "onecycle",  # onecycle | cosine | none
    "clip_grad": 0.0,  # max grad-norm; 0 disables clipping
}
TRAIN_KEYS = frozenset(TRAIN_DEFAULTS)


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

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

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

    def resolve_hparams(self, dataset: str, variant: str | None = None,
                        overrides: Mapping[str, Any] | None = None, tiny: bool = False) -> dict[str, Any]:
        """The full hyperparameter dict for ``dataset`` (see the module docstring for precedence)."""
        hp: dict[str, Any] = dict(TRAIN_DEFAULTS)
        hp.update(self.hparams.get("*", {}))
        hp.update(self.hparams.get(dataset, {}))
        if tiny:
            hp.update(self.tiny)
        if variant:
            if variant not in self.variants:
                raise BenchError(
                    f"method {self.name!r} has no variant {variant!r}{_suggest(variant, self.variants)}; "
                    f"its variants are: {', '.join(sorted(self.variants)) or '(none)'}"
                )
            hp.update(self.variants[variant])
        for key, value in (overrides or {}).items():
            if key not in hp:
                raise BenchError(
                    f"method {self.name!r} has no hyperparameter {key!r}{_suggest(key, hp)}; "
                    f"run `bench list --hparams {self.name}` to see them"
                )
            hp[key] = value
        return hp

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
        """Canonical text of the key, e.g. ``plasm:mask-sm:r0=0.9``."""
        parts = [self.spec.name]
        if self.variant:
            parts.append(self.variant)
        parts += [f"{k}={_format_value(v)}" for k, v in sorted(self.overrides.items())]
        return ":".join(parts)

    def resolve(self, dataset: str, extra: Mapping[str, Any] | None = None, tiny: bool = False) -> dict[str, Any]:
        overrides = dict(self.overrides)
        overrides.update(extra or {})
        return self.spec.resolve_hparams(dataset, self.variant, overrides, tiny=tiny)


# --------------------------------------------------------------------------------------------
# The two tables
# --------------------------------------------------------------------------------------------

_METHODS: dict[str, MethodSpec] = {}
_DATASETS: dict[str, DatasetSpec] = {}
_BUILTINS_LOADED = False
_PLUGINS_LOADED = False
_PLUGIN_ERRORS: list[str] = []


def add_method(spec: MethodSpec) -> MethodSpec:
    """Register a :class:`MethodSpec` (re-registering the same name replaces it)."""
    if ":" in spec.name or "," in spec.name or spec.name != spec.name.strip():
        raise ValueError(f"method name {spec.name!r} may not contain ':' or ','")
    _METHODS[spec.name] = spec
    return spec


def add_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Register a :class:`DatasetSpec` (re-registering the same name replaces it)."""
    _DATASETS[spec.name] = spec
    return spec


def register_method(name: str, **fields: Any) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register the decorated builder as method ``name`` (other fields as in MethodSpec)."""

    def decorate(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        add_method(MethodSpec(name=name, build=build, **fields))
        return build

    return decorate


def register_dataset(name: str, **fields: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register the decorated loader as dataset ``name`` (other fields as in DatasetSpec)."""

    def decorate(load: Callable[..., Any]) -> Callable[..., Any]:
        add_dataset(DatasetSpec(name=name, load=load, **fields))
        return load

    return decorate


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        for module in ("bench.baselines", "bench.methods", "bench.datasets"):
            import_module(module)


def _load_plugins() -> None:
    """Import every entry point in the ``bench.methods`` / ``bench.datasets`` groups, once."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for group, add in ((METHOD_GROUP, add_method), (DATASET_GROUP, add_dataset)):
        for ep in metadata.entry_points(group=group):
            try:
                obj = ep.load()
                if callable(obj) and not isinstance(obj, (MethodSpec, DatasetSpec)) and not hasattr(obj, "__path__"):
                    obj = obj()
                if isinstance(obj, (MethodSpec, DatasetSpec)):
                    add(obj)
            except Exception as exc:  # a broken plugin must not break the harness
                _PLUGIN_ERRORS.append(f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}")


def _ensure_loaded() -> None:
    _load_builtins()
    _load_plugins()


def plugin_errors() -> list[str]:
    _ensure_loaded()
    return list(_PLUGIN_ERRORS)


def list_methods(pattern: str = "*", variants: bool = False) -> list[str]:
    """Registered method names matching a shell-style wildcard; with ``variants``, ``name:variant`` too."""
    _ensure_loaded()
    names: list[str] = []
    for name in sorted(_METHODS):
        names.append(name)
        if variants:
            names += [f"{name}:{v}" for v in sorted(_METHODS[name].variants)]
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered dataset names matching a shell-style wildcard."""
    _ensure_loaded()
    return [n for n in sorted(_DATASETS) if fnmatch.fnmatchcase(n, pattern)]


def get_method(name: str) -> MethodSpec:
    _ensure_loaded()
    try:
        return _METHODS[name]
    except KeyError:
        raise BenchError(
            f"unknown method {name!r}{_suggest(name, _METHODS)}; run `bench list` to see the registered methods"
        ) from None


def get_dataset(name: str) -> DatasetSpec:
    _ensure_loaded()
    try:
        return _DATASETS[name]
    except KeyError:
        raise BenchError(
            f"unknown dataset {name!r}{_suggest(name, _DATASETS)}; run `bench list` to see the registered datasets"
        ) from None


def parse_method_key(text: str) -> MethodKey:
    """Parse ``name[:variant][:key=value...]`` into a :class:`MethodKey`, validating every part."""
    parts = [p.strip() for p in text.strip().split(":")]
    if not parts[0]:
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
    spec.resolve_hparams("*", variant, overrides)  # validates variant and keys
    return MethodKey(spec=spec, variant=variant, overrides=overrides)


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` -> (key, value); the value is a Python literal when it parses as one, else text."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise BenchError(f"cannot read {text!r} as key=value; write e.g. lr=0.001")
    raw = raw.strip()
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = {"true": True, "false": False, "none": None}.get(raw.lower(), raw)
    return key, value


def create_model(key: str, data: DatasetSpec | str, tiny: bool = False, **overrides: Any) -> nn.Module:
    """Build the model for a method key on a dataset (timm's ``create_model`` counterpart)."""
    mkey = parse_method_key(key)
    data = get_dataset(data) if isinstance(data, str) else data
    hp = mkey.resolve(data.name, overrides, tiny=tiny)
    return mkey.spec.create_model(data, hp)


def iter_method_keys() -> Iterator[str]:
    """Every registered method and every one of its variants, as CLI keys."""
    yield from list_methods(variants=True)


def _suggest(name: str, choices: Mapping[str, Any] | list[str]) -> str:
    close = difflib.get_close_matches(str(name), list(choices), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _format_value(value: Any) -> str:
    return repr(value) if isinstance(value, str) and ("," in value or ":" in value) else str(value)
