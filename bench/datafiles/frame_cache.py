"""The decoded-frame cache: a dataset's frames decoded once into a uint8 array on disk, memory-mapped after.

Why: KTH and Human3.6M are image files (PNG/JPEG) and KITTI->Caltech frames sit in HDF5 files;
decoding them every epoch costs about 0.4 ms a frame on one core, while a gather from an array that
is already decoded costs a memory copy. So the first use of a dataset decodes every frame it may
read into one ``.npy`` file (uint8, (N, C, H, W)), and later epochs, runs and worker processes read
it through a memory map (the operating system's page cache shares it between processes).

Key: the cache is named by the dataset, the absolute path of its source folder and a key: the
SHA-256 of the source files' content digests in frame order (the data-identity digests of
:mod:`bench.datafiles.identity`, themselves cached by each file's path, size, mtime, ctime and inode,
so an unchanged file costs one ``stat``), the frame geometry and the name of the decoding rule
(``decoder``: a dataset changes it when it decodes differently). When the files change, the key
changes: the old cache of that folder is deleted and the new one built, with one line saying so.

Where: ``<cache>/frames-v1/<dataset>-<folder hash>-<key>.npy`` under ``$BENCH_CACHE``, else
``$XDG_CACHE_HOME/bench``, else ``~/.cache/bench`` (:func:`bench.datafiles.identity.cache_root`).
Clearing: delete ``<cache>/frames-v1`` (it is rebuilt when needed). Size: the frames as uint8, e.g.
about 4.7 GB for all of KTH (290,000 frames of 128 x 128).

Writing: the file is written sequentially (the ``.npy`` header, then the frames in order) into a
temporary file beside it and renamed over it when complete (:func:`bench.core.atomic.atomic_output`),
under an exclusive lock (``fcntl.flock``) so that concurrent runs or torchrun ranks build it once and
the others wait and read it. A half-written cache is never read: a file whose header or size is not
the expected one is rebuilt. When the cache cannot be written (read-only cache folder, full disk),
one line says so and the frames are decoded in memory as they are used (:class:`~bench.datafiles.clips.FrameStore`).
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

from bench.core.atomic import atomic_output
from bench.datafiles.identity import cache_root, file_digests
from bench.errors import BenchError
from bench.spec.batching import load_batches

FOLDER = "frames-v1"
CHUNK = 256  # frames decoded per work item while building


@dataclass(frozen=True)
class FrameSource:
    """Frames a dataset decodes: ``count`` frames of ``shape``, ``read(sorted ids) -> (k, *shape) uint8``;
    ``files`` (name -> path, under ``base``) are the source files in frame order, whose digests key the
    cache; ``decoder`` names the decoding rule."""

    dataset: str
    base: Path
    files: Mapping[str, Path]
    count: int
    shape: tuple[int, ...]
    read: Callable[[np.ndarray], np.ndarray]
    decoder: str


def source_key(source: FrameSource) -> str:
    """The cache key of ``source`` (module docstring): 16 hex digits."""
    digests = file_digests(source.base, source.files)
    h = hashlib.sha256(f"{FOLDER} {source.dataset} {source.decoder} {source.count} {source.shape}\n".encode())
    for name in source.files:
        h.update(f"{digests[name]}  {name}\n".encode())
    return h.hexdigest()[:16]


def cache_prefix(source: FrameSource) -> Path:
    """``<cache>/frames-v1/<dataset>-<folder hash>``: every cache of this folder starts with it."""
    folder = hashlib.sha1(os.path.abspath(source.base).encode()).hexdigest()[:12]
    return cache_root() / FOLDER / f"{source.dataset}-{folder}"


def _valid(path: Path, shape: tuple[int, ...]) -> bool:
    """``path`` is a complete cache of ``shape`` uint8 frames (header and size checked)."""
    from bench.datafiles.formats import npy_header

    try:
        found, dtype, offset = npy_header(path)
        return (found == shape and dtype == np.uint8
                and path.stat().st_size == offset + int(np.prod(shape, dtype=np.int64)))
    except Exception:  # noqa: BLE001 - anything unreadable is simply not a cache
        return False


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created); no-op where ``fcntl`` is absent."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class _Decode:
    """Work item of the build: decode the frames ``ids`` (picklable for worker processes)."""

    def __init__(self, read: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...]):
        self.read, self.shape = read, shape

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        frames = np.ascontiguousarray(self.read(ids), dtype=np.uint8)
        if frames.shape != (len(ids), *self.shape):
            raise BenchError(f"internal: frame reader returned {frames.shape}, expected {(len(ids), *self.shape)}")
        return frames


def build(source: FrameSource, path: Path, workers: int) -> None:
    """Decode every frame of ``source`` into the cache file ``path`` (atomically), ``workers`` processes."""
    shape = (source.count, *source.shape)
    plan = [np.arange(start, min(start + CHUNK, source.count)) for start in range(0, source.count, CHUNK)]
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False, "shape": shape})
        for frames in load_batches(_Decode(source.read, source.shape), plan, workers if len(plan) > 1 else 0):
            fh.write(memoryview(np.asarray(frames)).cast("B"))
        fh.flush()


def cached_frames(source: FrameSource, workers: int, log: Callable[[str], None]) -> Path | None:
    """The path of ``source``'s complete frame cache, built now if needed (module docstring); None when the
    cache cannot be written (one line says so: the caller then decodes in memory)."""
    shape = (source.count, *source.shape)
    prefix = cache_prefix(source)
    path = prefix.with_name(f"{prefix.name}-{source_key(source)}.npy")
    if _valid(path, shape):
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(prefix.with_name(prefix.name + ".lock")):
            if _valid(path, shape):  # another process built it while we waited
                return path
            stale = [p for p in path.parent.glob(f"{prefix.name}-*.npy") if p != path]
            what = (f"its source files changed since it was built; rebuilding: decoding {source.count:,} frames"
                    if stale else f"decoding its {source.count:,} frames once")
            log(f"{source.dataset}: frame cache {path}: {what} with {max(workers, 1)} process(es) "
                f"({source.count * int(np.prod(source.shape)) / 1e9:.2f} GB; later epochs and runs read it "
                f"without decoding)")
            build(source, path, workers)
            for old in stale:
                old.unlink(missing_ok=True)
    except OSError as exc:
        log(f"{source.dataset}: cannot write the frame cache under {path.parent} ({exc.strerror or exc}); "
            f"frames are decoded in memory as they are used (set $BENCH_CACHE to a writable folder with room)")
        return None
    return path


class MappedFrames:
    """Frames read from a complete cache file through a memory map, opened lazily in each process (a worker
    process opens its own: the map itself is never pickled)."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.path, self.frame_shape = path, tuple(shape)
        self._map: np.ndarray | None = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "frame_shape": self.frame_shape, "_map": None}

    def get(self, ids: np.ndarray) -> np.ndarray:
        if self._map is None:
            self._map = np.load(self.path, mmap_mode="r")
        return self._map[np.asarray(ids, dtype=np.int64)]
