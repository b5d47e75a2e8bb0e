"""One generic name -> object registry: it serves methods, datasets and data sources.

A :class:`Registry` refuses a name that another module already registered (a plug-in cannot
shadow ``tau``): the refusal is a one-line warning naming both sources, kept in
:attr:`Registry.warnings` and shown by the CLI, and the first registration stays. A module may
re-register its own names (a reload), and a plug-in that means to replace a name says so with
``replace=True``. Only the module that registered a name may remove it (:meth:`Registry.remove`;
anyone else is refused the same way), so "remove ``tau``, then register my own" is no way round
``replace=True``. Looking up an unknown name raises a one-line BenchError with the nearest names
and, when a plug-in that failed to load was meant to provide it, why it failed.

What a registry holds is immutable to whoever gets it: a registry made with ``freeze=True``
deep-freezes the mappings and lists of every (dataclass) item it registers (:func:`freeze_fields`:
read-only mappings, tuples), so ``get_method("tau").tiny["hid_S"] = 1`` raises TypeError instead
of changing the built-in method for every later run. (Python cannot stop a plug-in determined to
write through ``object.__setattr__``; what a run records about its method's code,
:mod:`bench.spec.code`, is what keeps such a run apart from the genuine one.)
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import sys
import warnings
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from bench.errors import BenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named objects of one kind (``kind`` is used in messages, e.g. ``method``)."""

    def __init__(self, kind: str, list_hint: str, ensure_loaded: Callable[[], None] = lambda: None,
                 freeze: bool = False):
        self.kind = kind
        self.list_hint = list_hint
        self._ensure_loaded = ensure_loaded
        self._freeze = freeze
        self._items: dict[str, T] = {}
        self._sources: dict[str, str] = {}
        self.warnings: list[str] = []
        self.failed_plugins: dict[str, str] = {}  # name a plug-in was to provide -> why it failed to load

    def add(self, name: str, item: T, source: str, replace: bool = False) -> T:
        """Register ``item`` as ``name`` from module ``source``; returns what ``name`` now holds."""
        held = self._sources.get(name)
        if held is not None and held != source and not replace:
            self._refuse(f"{self.kind} {name!r} from {source} refused: the name is already registered by {held}; "
                         f"rename it, or register it with replace=True to override {held}")
            return self._items[name]
        if self._freeze:
            freeze_fields(item)
        self._items[name] = item
        self._sources[name] = source
        return item

    def _refuse(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            warnings.warn(message, stacklevel=4)

    def source(self, name: str) -> str:
        self._ensure_loaded()
        return self._sources[name]

    def get(self, name: str) -> T:
        self._ensure_loaded()
        try:
            return self._items[name]
        except KeyError:
            pass
        if name in self.failed_plugins:
            raise BenchError(f"{self.kind} {name!r} comes from a plug-in that failed to load: "
                             f"{self.failed_plugins[name]}; fix or uninstall that plug-in")
        raise BenchError(f"unknown {self.kind} {name!r}{suggest(name, list(self._items))}; {self.list_hint}")

    def names(self, pattern: str = "*") -> list[str]:
        self._ensure_loaded()
        return [n for n in sorted(self._items) if fnmatch.fnmatchcase(n, pattern)]

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def remove(self, name: str) -> None:
        """Forget ``name``; only the module that registered it may (anyone else is refused with a
        warning, as :meth:`add` refuses a taken name: use ``replace=True`` to override a name)."""
        caller = str(sys._getframe(1).f_globals.get("__name__", "?"))
        held = self._sources.get(name)
        if held is not None and held != caller:
            self._refuse(f"removing {self.kind} {name!r} from {caller} refused: the name is already registered by "
                         f"{held}, and only it may remove it; register your own name, or use replace=True to "
                         f"override {held}")
            return
        self._items.pop(name, None)
        self._sources.pop(name, None)

    @contextmanager
    def swapped(self, name: str, item: T) -> Iterator[T]:
        """TEST HOOK: ``name`` holds ``item`` inside the ``with`` block (source ``"test hook"``), and
        exactly what it held before (item and source, or nothing) afterwards. Not for plug-ins: a
        plug-in overrides a name with ``replace=True``, and a run records where its code came from."""
        self._ensure_loaded()
        before = (self._items.get(name), self._sources.get(name))
        self._items[name], self._sources[name] = item, "test hook"
        try:
            yield item
        finally:
            if before[1] is None:
                self._items.pop(name, None)
                self._sources.pop(name, None)
            else:
                self._items[name], self._sources[name] = before  # type: ignore[assignment]


def frozen(value: Any) -> Any:
    """``value`` with every mapping read-only and every list a tuple, recursively."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: frozen(v) for k, v in value.items()})
    if type(value) in (list, tuple):
        return tuple(frozen(v) for v in value)
    if type(value) in (set, frozenset):
        return frozenset(frozen(v) for v in value)
    return value


def freeze_fields(item: Any) -> None:
    """Deep-freeze, in place, the mapping and list fields of a (frozen) dataclass instance."""
    if not dataclasses.is_dataclass(item) or isinstance(item, type):
        return
    for f in dataclasses.fields(item):
        value = getattr(item, f.name)
        if isinstance(value, Mapping) or type(value) in (list, tuple, set, frozenset):
            object.__setattr__(item, f.name, frozen(value))


def suggest(name: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest of ``choices``, or nothing."""
    close = difflib.get_close_matches(str(name), list(choices), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
