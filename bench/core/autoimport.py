"""Import every module of a package so that its ``register_*`` decorators run."""

from __future__ import annotations

import pkgutil
from importlib import import_module
from typing import Iterable


def import_submodules(package: str, path: Iterable[str]) -> None:
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if not info.name.startswith("_"):
            import_module(f"{package}.{info.name}")
