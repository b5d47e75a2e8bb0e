"""The data directory and one-line file errors.

Data directory: ``--data-dir`` or ``$BENCH_DATA`` (:func:`data_root`; one the user names must exist);
each dataset lives in its own sub-folder there (``DATA/taxibj/``, ``DATA/kth/``...), see the dataset
modules. Every problem with a user's file ends in ONE :class:`~bench.errors.BenchError` line naming
the file, what was expected, what was found and how to fix it (:func:`missing`, :func:`bad_file`),
never a traceback from numpy, h5py or PIL.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable


from bench.errors import BenchError


DATA_ENV = "BENCH_DATA"


def data_root(config_dir: str | None, must_exist: bool = True) -> Path | None:
    """The data directory: ``--data-dir``, else ``$BENCH_DATA``, else None.

    A directory the user names (either way) must be a readable directory: a typo, ``/proc/foo``
    or ``/dev/null`` is a one-line BenchError, never silently "no data" (Moving MNIST would fall
    back to its bundled digits). ``must_exist=False``: only for a destination the caller creates
    (``bench data download``). An empty ``$BENCH_DATA`` counts as unset, an empty ``--data-dir``
    is an error.
    """
    if config_dir is not None:
        if not config_dir.strip():
            raise BenchError("--data-dir is empty; pass the data directory, e.g. --data-dir ~/data")
        given, origin = config_dir, "--data-dir"
    elif os.environ.get(DATA_ENV, "").strip():
        given, origin = os.environ[DATA_ENV], f"${DATA_ENV}"
    else:
        return None
    root = Path(given).expanduser()
    if must_exist:
        if not root.is_dir():
            what = "is not a directory" if root.exists() else "does not exist"
            fix = ("pass --data-dir with the directory that holds the datasets" if origin == "--data-dir" else
                   f"set {DATA_ENV} to the directory that holds the datasets, or unset it")
            raise BenchError(f"data directory {root} ({origin}) {what}; {fix} (`bench data list` shows what "
                             f"goes where)")
        try:
            with os.scandir(root):
                pass
        except OSError as exc:
            raise BenchError(f"cannot read data directory {root} ({origin}): {exc.strerror or exc}; fix its "
                             f"permissions or pass another --data-dir") from None
    return root


def require_root(config_dir: str | None, dataset: str, layout: str) -> Path:
    root = data_root(config_dir)
    if root is None:
        raise BenchError(f"dataset {dataset!r} reads files from the data directory, but none is set; "
                         f"pass --data-dir DIR or set BENCH_DATA=DIR, with {layout}")
    return root


def first_existing(candidates: Iterable[Path]) -> Path | None:
    for p in candidates:
        if p.exists():
            return p
    return None


def missing(path: Path | str, what: str, fix: str) -> BenchError:
    return BenchError(f"{path} is missing: expected {what}; {fix}")


def bad_file(path: Path | str, expected: str, found: str, fix: str) -> BenchError:
    return BenchError(f"{path}: expected {expected}, found {found}; {fix}")


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
