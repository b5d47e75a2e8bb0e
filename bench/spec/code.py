"""Where a method's code comes from: recorded in every run spec, hashed when it is not the built-in code.

A plug-in can register a method of its own, override a built-in one with ``replace=True``, or (with
Python's escape hatches) swap the builder of a registered spec. Whatever it does, a run must not be
taken for a run of the genuine built-in method. :func:`code_origin` records, for the method a run
resolves to:

* ``registered_by``: the module that registered the name (or ``plug-in NAME (VALUE)`` for an entry
  point that is a spec object);
* ``builder``: the builder's ``module:qualified name``, and ``builder_file_sha256`` a digest (16 hex
  digits) of the source file its code was compiled from (cached by path, size and mtime);
* ``in_tree``: True when the code is the built-in code: the registering module is a module of this
  distribution (``bench`` or one of its packages, loaded from the package's own directory) and the
  builder's code was compiled from that module's own file.

:meth:`bench.spec.run_spec.RunSpec.identity` hashes ``registered_by`` and ``builder`` only when
``in_tree`` is False, so the hashes of built-in runs are those they always had, and a run whose code
comes from anywhere else has a hash of its own. The digest is recorded, not hashed: editing the
code of a method does not move its results (for built-in and plug-in methods alike); where it came
from does.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any, Callable

#: The packages of this distribution (see pyproject.toml): code loaded from their directories is built in.
PACKAGES = ("bench", "bench.methods", "bench.baselines", "bench.datasets")

_DIGESTS: dict[tuple[str, int, int], str] = {}


def code_origin(build: Callable[..., Any], registered_by: str) -> dict[str, Any]:
    """The record described in the module docstring for a method built by ``build``."""
    target = build
    while isinstance(target, functools.partial):
        target = target.func
    module = str(getattr(target, "__module__", None) or "?")
    name = str(getattr(target, "__qualname__", None) or type(target).__qualname__)
    file = code_file(target)
    registrar = sys.modules.get(registered_by)
    registrar_file = getattr(registrar, "__file__", None)
    in_tree = bool(file and registrar_file and is_in_tree(registered_by) and _same_file(file, registrar_file))
    return {"registered_by": registered_by, "builder": f"{module}:{name}",
            "builder_file_sha256": file_digest(file) if file else None, "in_tree": in_tree}


def code_file(obj: Any) -> str | None:
    """The source file ``obj``'s code was compiled from (a function's own ``co_filename``), or None."""
    code = getattr(obj, "__code__", None)
    if code is not None:
        return code.co_filename
    try:
        return inspect.getsourcefile(obj) or inspect.getfile(obj)
    except (TypeError, OSError):
        call = getattr(type(obj), "__call__", None)  # a callable object: where its class's __call__ lives
        return getattr(getattr(call, "__code__", None), "co_filename", None)


def file_digest(path: str) -> str | None:
    """sha256 (16 hex digits) of a file's bytes, cached by (path, size, mtime); None if unreadable."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        try:
            _DIGESTS[key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        except OSError:
            return None
    return _DIGESTS[key]


def is_in_tree(module: str) -> bool:
    """True when ``module`` is a module of this distribution, loaded from its package's directory."""
    if module != "bench" and not module.startswith("bench."):
        return False
    file = getattr(sys.modules.get(module), "__file__", None)
    if not file:
        return False
    for package in PACKAGES:
        if module != package and not module.startswith(package + "."):
            continue
        try:
            paths = importlib.import_module(package).__path__
        except ImportError:
            continue
        if any(_under(file, root) for root in paths):
            return True
    return False


def _under(file: str, root: str) -> bool:
    try:
        return Path(file).resolve().is_relative_to(Path(root).resolve())
    except OSError:
        return False


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
