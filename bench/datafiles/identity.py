"""The identity of the data a run reads: a SHA-256 digest of the bytes of its files, cached.

Why: a run's directory is named by its spec's hash (:mod:`bench.spec.run_spec`), and a complete result
there is served as "kept". If the spec named the data only by a file's byte size, a run on
Fashion-MNIST (the same size as MNIST) would be served the MNIST result. So every file-backed
dataset's ``source_identity`` (:class:`bench.spec.dataset.DatasetSpec`) returns a content digest
of the files its loader reads, and that digest is part of the spec's hash, of ``result.json``'s
spec and of the report's grouping.

Identity (:func:`files_identity`):

- one file: ``{"sha256": <digest of its bytes>}``, what ``sha256sum FILE`` prints;
- several files: ``{"sha256": <digest of the manifest>, "files": n}``; the manifest is the text
  ``sha256sum`` writes, one line ``"<sha256>  <name>\\n"`` per file sorted by name, where ``name``
  is the file's name in the dataset's own layout (e.g. ``boxing/person01_boxing_d1/image_0001.png``
  under ``DATA/kth``), so moving or renaming the data directory keeps the identity, and renaming,
  adding or removing a file the loader reads changes it.

Cost: digesting reads every byte (SHA-256 runs at about 1.5 GB/s on one core with the SHA
extensions), and a spec is resolved for every run of a sweep; so each file's digest is cached,
keyed by ``(absolute path, size, mtime_ns, ctime_ns, inode)``: a file that was rewritten,
replaced or touched (any of these changes) is read again, an unchanged one costs one ``stat``.
``ctime`` cannot be set by a user, so restoring a file's ``mtime`` after editing it does not fool
the cache. A file changed less than :data:`RACY_NS` before it was digested is not cached: a
same-size rewrite within one timestamp tick (coarse on some file systems) would otherwise look
unchanged (git's "racy clean" rule).

The cache is one JSON file per dataset directory, ``<cache>/digests-v1/<sha1 of its absolute
path>.json``, under ``$BENCH_CACHE``, else ``$XDG_CACHE_HOME/bench``, else ``~/.cache/bench``;
it is written atomically (temporary file, then rename: concurrent runs never see half a file;
the last writer wins, which costs at most a recomputation). A cache that cannot be read (absent,
not a regular file, too large, not ours) or written (read-only home) is ignored: the digests are
then recomputed, never guessed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

from bench.core.jsonio import canonical_text
from bench.errors import BenchError

CACHE_ENV = "BENCH_CACHE"
CACHE_FORMAT = "bench-digests-1"
RACY_NS = 2_000_000_000  # 2 s: the coarsest common timestamp resolution (FAT); see the module docstring
MAX_CACHE_BYTES = 256 << 20  # a cache file larger than this is not ours: ignored
_HEX = re.compile(r"[0-9a-f]{64}")


def cache_root() -> Path:
    """``$BENCH_CACHE``, else ``$XDG_CACHE_HOME/bench``, else ``~/.cache/bench``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "bench"
    return Path.home() / ".cache" / "bench"


def sha256_of_file(path: Path) -> str:
    """The SHA-256 of ``path``'s bytes (no cache); a read error is one BenchError naming the file."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise BenchError(f"cannot read {path} ({exc.strerror or exc}); check its permissions or replace it") from None


def _signature(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _cache_file(base: Path) -> Path:
    return cache_root() / "digests-v1" / (hashlib.sha1(os.path.abspath(base).encode()).hexdigest()[:20] + ".json")


def _valid_entry(value: Any) -> bool:
    return (type(value) is list and len(value) == 5 and type(value[4]) is str and len(value[4]) == 64
            and _HEX.fullmatch(value[4]) is not None)


def _read_cache(path: Path) -> dict[str, Any]:
    """The cached entries ``{absolute path: [size, mtime_ns, ctime_ns, inode, sha256]}`` (each checked with
    :func:`_valid_entry` when used); {} when the file is unusable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block us
    except OSError:
        return {}
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_CACHE_BYTES:
            return {}
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            data = json.loads(fh.read())
    except (OSError, ValueError, RecursionError):
        return {}
    finally:
        if fd >= 0:
            os.close(fd)
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("files"), dict):
        return {}
    return data["files"]


def _write_cache(path: Path, base: Path, entries: Mapping[str, list]) -> None:
    """Replace the cache file atomically; any failure leaves the old one (or none) and is ignored."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".digests-", suffix=".tmp",
                                         delete=False, encoding="utf-8") as fh:
            tmp = fh.name
            fh.write(canonical_text({"format": CACHE_FORMAT, "base": os.path.abspath(base), "files": dict(entries)}))
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def file_digests(base: Path, files: Mapping[str, Path]) -> dict[str, str]:
    """``{name: sha256}`` of ``files`` (name -> path), through the cache of directory ``base``."""
    cache_path = _cache_file(base)
    cached = _read_cache(cache_path)
    out: dict[str, str] = {}
    asked: set[str] = set()
    changed = False
    for name, path in files.items():
        key = os.path.abspath(path)
        asked.add(key)
        try:
            before = os.stat(key)
        except OSError as exc:
            raise BenchError(f"cannot read {path} ({exc.strerror or exc}); check that it exists and is readable") from None
        if not stat.S_ISREG(before.st_mode):
            raise BenchError(f"{path} is not a regular file; the data files must be plain files (replace it)")
        sig = _signature(before)
        hit = cached.get(key)
        if hit is not None and _valid_entry(hit) and hit[:4] == sig:
            out[name] = hit[4]
            continue
        now = time.time_ns()
        digest = sha256_of_file(path)
        try:
            after = os.stat(key)
        except OSError as exc:
            raise BenchError(f"{path} disappeared while it was read ({exc.strerror or exc}); run the command "
                             f"again once the data is in place") from None
        out[name] = digest
        if _signature(after) == sig and now - max(sig[1], sig[2]) >= RACY_NS:  # unchanged while read, not racy
            cached[key] = sig + [digest]
            changed = True
        elif key in cached:
            del cached[key]
            changed = True
    if changed:  # entries of files that are gone are dropped (a stat each, only when writing)
        _write_cache(cache_path, base, {k: v for k, v in cached.items() if k in asked or os.path.exists(k)})
    return out


def files_identity(base: Path, files: Mapping[str, Path]) -> dict[str, Any]:
    """The identity of a dataset's files (see the module docstring); ``files`` maps name -> path."""
    if not files:
        raise BenchError(f"internal: no data files to identify under {base}")
    digests = file_digests(base, files)
    if len(digests) == 1:
        return {"sha256": next(iter(digests.values()))}
    manifest = "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))
    return {"sha256": hashlib.sha256(manifest.encode("utf-8")).hexdigest(), "files": len(digests)}
