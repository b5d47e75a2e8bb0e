"""One generic name -> object registry: it serves methods, datasets and data sources.

A :class:`Registry` refuses a name that another module already registered (a plug-in cannot
shadow ``tau``): the refusal is a one-line warning naming both sources, kept in
:attr:`Registry.warnings` and shown by the CLI, and the first registration stays. A module may
re-register its own names (a reload), and a plug-in that means to replace a name says so with
``replace=True``. Looking up an unknown name raises a one-line BenchError with the nearest names
and, when a plug-in that failed to load was meant to provide it, why it failed.
"""

from __future__ import annotations

import difflib
import fnmatch
import warnings
from typing import Callable, Generic, Iterator, TypeVar

from bench.errors import BenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named objects of one kind (``kind`` is used in messages, e.g. ``method``)."""

    def __init__(self, kind: str, list_hint: str, ensure_loaded: Callable[[], None] = lambda: None):
        self.kind = kind
        self.list_hint = list_hint
        self._ensure_loaded = ensure_loaded
        self._items: dict[str, T] = {}
        self._sources: dict[str, str] = {}
        self.warnings: list[str] = []
        self.failed_plugins: dict[str, str] = {}  # name a plug-in was to provide -> why it failed to load

    def add(self, name: str, item: T, source: str, replace: bool = False) -> T:
        """Register ``item`` as ``name`` from module ``source``; returns what ``name`` now holds."""
        held = self._sources.get(name)
        if held is not None and held != source and not replace:
            message = (f"{self.kind} {name!r} from {source} refused: the name is already registered by {held}; "
                       f"rename it, or register it with replace=True to override {held}")
            if message not in self.warnings:
                self.warnings.append(message)
                warnings.warn(message, stacklevel=3)
            return self._items[name]
        self._items[name] = item
        self._sources[name] = source
        return item

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
        """Forget ``name`` (tests and interactive sessions)."""
        self._items.pop(name, None)
        self._sources.pop(name, None)


def suggest(name: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest of ``choices``, or nothing."""
    close = difflib.get_close_matches(str(name), list(choices), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
