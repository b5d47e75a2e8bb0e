"""Registry of methods and datasets: register by name, list with wildcards, resolve CLI keys.

Methods
-------
A method is a :class:`MethodSpec`. The usual way to make one is the :func:`register_method`
decorator on its model builder::

    @register_method("mynet", citation="Doe et al., 2024",
                     hparams={"*": {"hid": 64, "lr": 1e-3}, "taxibj": {"lr": 5e-4}})
    def build_mynet(data: DatasetSpec, hid: int) -> nn.Module:
        ...  # a module mapping (B, T, C, H, W) -> (B, T', C, H, W)

The builder receives the *model* hyperparameters only; the training hyperparameters
(:data:`TRAIN_KEYS`: epochs, batch size, optimiser, learning rate, schedule...) are consumed by the
runner. Both live in one flat dict so that ``--set key=value`` and ``method:key=value`` address any
of them with one syntax. ``"*"`` is the base configuration; a dataset's entry holds only what that
dataset changes (:mod:`bench.spec.config`), and the builder takes no defaults of its own.

A CLI method key is ``name[:variant][:key=value...]``, e.g. ``tau``, ``tau:no-ddr``,
``plasm:mask-sm:r0=0.9``. Hyperparameters resolve, later winning::

    TRAIN_DEFAULTS < spec.hparams["*"] < spec.hparams[dataset] < spec.tiny (tests/--tiny only)
                   < spec.variants[variant] < key=value overrides

Every hyperparameter has a declared type and range (``params={"hid": Int(min=1)}``, see
:mod:`bench.spec.hparams`); every resolved value is checked against it, so a bad ``--set`` fails in one
line before anything is built.

Third-party packages register through the entry-point groups ``bench.methods`` and
``bench.datasets``: the entry point may name a module (importing it registers), a
:class:`MethodSpec`/:class:`DatasetSpec` object, or a zero-argument callable returning one. The
tables are :class:`bench.core.registry.Registry` objects: a plug-in cannot take a name another
module registered (``tau``) unless it passes ``replace=True``, nor remove it; a registered spec is
deep-frozen (its hyperparameter tables, variants and tiny configuration are read-only mappings);
and a plug-in that fails to import (even with ``SystemExit`` or ``KeyboardInterrupt``) is
recorded, never fatal. Every run records where its method's code comes from
(:func:`method_code`, :mod:`bench.spec.code`), and a method whose code is not the built-in code
gets its own spec hash.

A ``KeyboardInterrupt`` raised while a plug-in is imported is the plug-in's own (recorded as a
broken plug-in) unless the user pressed Ctrl-C: while plug-ins load, a SIGINT handler notes a real
interrupt (main thread only; elsewhere every KeyboardInterrupt counts as the plug-in's), and a real
one still ends the command.
"""

from __future__ import annotations

import fnmatch
import signal
import sys
import threading
from dataclasses import dataclass
from importlib import import_module, metadata
from typing import Any, Callable, Iterator, Mapping

from torch import nn

from bench.spec.dataset import DataConfig, DatasetSpec
from bench.errors import BenchError
from bench.core.registry import Registry
from bench.spec.hparams import TRAIN_DEFAULTS, TRAIN_KEYS, TRAIN_PARAMS, HParam, parse_assignment, split_top_level
from bench.spec.method import MethodSpec, format_value, method_label, model_hparams

METHOD_GROUP = "bench.methods"
DATASET_GROUP = "bench.datasets"

__all__ = ["TRAIN_DEFAULTS", "TRAIN_KEYS", "TRAIN_PARAMS", "HParam", "parse_assignment", "DataConfig", "DatasetSpec",
           "MethodSpec", "MethodKey", "register_method", "register_dataset", "add_method", "add_dataset",
           "get_method", "get_dataset", "list_methods", "list_datasets", "parse_method_key", "create_model",
           "METHODS", "DATASETS", "plugin_errors", "model_hparams", "method_label", "format_value", "method_code"]


@dataclass(frozen=True)
class MethodKey:
    """A parsed CLI method key ``name[:variant][:key=value...]``."""

    spec: MethodSpec
    variant: str | None
    overrides: Mapping[str, Any]

    @property
    def label(self) -> str:
        """Canonical text of the key, e.g. ``plasm:mask-sm:r0=0.9`` or ``simvp:incep_ker=(3,5)``."""
        return method_label(self.spec.name, self.variant, self.overrides)

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


METHODS: Registry[MethodSpec] = Registry("method", "run `bench list` to see the registered methods", _ensure_loaded,
                                         freeze=True)
DATASETS: Registry[DatasetSpec] = Registry("dataset", "run `bench list` to see the registered datasets",
                                           _ensure_loaded, freeze=True)


def add_method(spec: MethodSpec, replace: bool = False) -> MethodSpec:
    """Register a :class:`MethodSpec` (deep-frozen from now on); a name another module registered is
    refused (see :class:`Registry`). The source is the calling module, so a plug-in that reuses an
    in-tree builder is still a different source."""
    return _add_method(spec, replace, _caller_module())


def _add_method(spec: MethodSpec, replace: bool, source: str) -> MethodSpec:
    if not spec.name or any(ch in spec.name for ch in ":,=()[] ") or spec.name != spec.name.strip():
        raise ValueError(f"method name {spec.name!r} may not be empty or contain ':', ',', '=', brackets or spaces")
    return METHODS.add(spec.name, spec, source, replace)


def add_dataset(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Register a :class:`DatasetSpec` (deep-frozen from now on); a name another module registered is
    refused (see :class:`Registry`)."""
    return _add_dataset(spec, replace, _caller_module())


def _add_dataset(spec: DatasetSpec, replace: bool, source: str) -> DatasetSpec:
    return DATASETS.add(spec.name, spec, source, replace)


def method_code(name: str) -> dict[str, Any]:
    """Where the code of registered method ``name`` comes from (:func:`bench.spec.code.code_origin`)."""
    from bench.spec.code import code_origin

    return code_origin(get_method(name).build, METHODS.source(name))


def _caller_module(depth: int = 2) -> str:
    """The module that called our caller (who registers, not where the builder lives)."""
    return str(sys._getframe(depth).f_globals.get("__name__", "?"))


def register_method(name: str, replace: bool = False,
                    **fields: Any) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register the decorated builder as method ``name`` (other fields as in MethodSpec)."""

    def decorate(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _add_method(MethodSpec(name=name, build=build, **fields), replace, _caller_module())
        return build

    return decorate


def register_dataset(name: str, replace: bool = False, **fields: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register the decorated loader as dataset ``name`` (other fields as in DatasetSpec)."""

    def decorate(load: Callable[..., Any]) -> Callable[..., Any]:
        _add_dataset(DatasetSpec(name=name, load=load, **fields), replace, _caller_module())
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

    Whatever a plug-in raises on import (``SystemExit`` and ``KeyboardInterrupt`` included) is
    caught and recorded: a broken plug-in never takes the harness down, and asking for its name
    says why it failed. Only the user's own Ctrl-C (a SIGINT received meanwhile) ends the command.
    """
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    with _sigint_watch() as user_interrupted:
        for group, registry, add in ((METHOD_GROUP, METHODS, _add_method), (DATASET_GROUP, DATASETS, _add_dataset)):
            for ep in metadata.entry_points(group=group):
                try:
                    obj = ep.load()
                    if callable(obj) and not isinstance(obj, (MethodSpec, DatasetSpec)) and not hasattr(obj, "__path__"):
                        obj = obj()
                    if isinstance(obj, (MethodSpec, DatasetSpec)):
                        add(obj, False, f"plug-in {ep.name} ({ep.value})")
                except BaseException as exc:  # noqa: BLE001 - SystemExit too: a broken plug-in must not end the CLI
                    if isinstance(exc, KeyboardInterrupt) and user_interrupted():
                        raise
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    reason = f"plug-in {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}" + (
                        f": {first}" if first else "")
                    _PLUGIN_ERRORS.append(reason)
                    registry.failed_plugins.setdefault(ep.name, reason)


class _sigint_watch:
    """Within the block, note whether a real SIGINT arrived (the previous handler still runs)."""

    def __enter__(self) -> Callable[[], bool]:
        self.seen, self.installed, self.previous = False, False, None
        if threading.current_thread() is threading.main_thread():
            try:
                previous = signal.getsignal(signal.SIGINT)

                def note(signum, frame):  # noqa: ANN001 - a signal handler
                    self.seen = True
                    if callable(previous):
                        previous(signum, frame)
                    elif previous == signal.SIG_DFL:
                        signal.default_int_handler(signum, frame)

                signal.signal(signal.SIGINT, note)
                self.installed, self.previous = True, previous
            except (ValueError, OSError, TypeError):  # no signals here (e.g. an embedded interpreter)
                pass
        return lambda: self.seen

    def __exit__(self, *exc: Any) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous if self.previous is not None else signal.SIG_DFL)


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

    Values are checked against the method's declarations (:mod:`bench.spec.hparams`) here, before
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
            if key in overrides:
                raise BenchError(f"method key {text!r} sets {key} twice; give it once")
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
