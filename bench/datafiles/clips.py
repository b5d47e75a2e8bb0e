"""Splits of clip-indexed datasets: which clips each split holds, and batches read from the frame store.

A dataset of clips (a few frames each, from longer recordings) is split by :func:`select_clips`
(sizes from the run, a seeded choice per split: :data:`SPLIT_SALT`); :class:`ClipSplits` serves
batches of uint8 frames from a frame store: :class:`CachedFrames` (the frames decoded once into the
memory-mapped cache of :mod:`bench.datafiles.frame_cache`, on first use), or :class:`FrameStore`
(decoded in memory as they are used, where the cache cannot be written); :func:`frame_file_splits`
builds one from a list of frame image files. Batches are made through torch's DataLoader
(:mod:`bench.spec.batching`): which clips form a batch is fixed by the seed, never by the workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from bench.datafiles.frame_cache import FrameSource, MappedFrames, cached_frames
from bench.errors import BenchError
from bench.spec.batching import LoaderSettings, load_batches
from bench.spec.splits import epoch_permutation, shard_range, to_unit_float


def read_rows(dataset: Any, rows: np.ndarray) -> np.ndarray:
    """``dataset[rows]`` for sorted unique ``rows``, read as contiguous runs (fast for h5py)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return np.empty((0, *dataset.shape[1:]), dtype=dataset.dtype)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    parts = [dataset[int(run[0]):int(run[-1]) + 1] for run in np.split(rows, breaks)]
    return np.concatenate(parts) if len(parts) > 1 else np.asarray(parts[0])


def pick(n: int, size: int | None, data_seed: int, salt: int) -> np.ndarray:
    """Indices of ``size`` of ``n`` items: all of them, or a sorted subset fixed by ``data_seed``."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([data_seed, salt, 0xDA7A]).choice(n, size=int(size), replace=False))


SPLIT_SALT = {"train": 1, "val": 2, "test": 3}


def eval_out_frames(spec: Any, config: Any) -> int:
    """Target frames of the validation/test clips: ``max(out_frames, pred_len)``.

    ``pred_len`` is read from the :class:`~bench.spec.registry.DataConfig` when it carries one (the
    runner's ``--pred-len``); the KTH 10 -> 40 protocol needs 40 true future frames per test clip.
    """
    pred_len = getattr(config, "pred_len", None)
    return max(int(spec.out_frames), int(pred_len or 0))


class FrameStore:
    """Frames (N, C, H, W) uint8 read on first use by ``reader(sorted_ids) -> (k, C, H, W)`` and kept.

    The cache is one ``np.empty`` array (memory is only committed for frames actually read), so
    loading a dataset is instant and a quick run reads only the frames of the clips it uses.
    """

    def __init__(self, n: int, frame_shape: tuple[int, int, int], reader: Callable[[np.ndarray], np.ndarray]):
        self.n = int(n)
        self.frame_shape = tuple(frame_shape)
        self.reader = reader
        self._cache: np.ndarray | None = None
        self._have = np.zeros(self.n, dtype=bool)

    def get(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if self._cache is None:
            self._cache = np.empty((self.n, *self.frame_shape), dtype=np.uint8)
        need = np.unique(ids[~self._have[ids]])
        if len(need):
            frames = self.reader(need)
            if frames.shape != (len(need), *self.frame_shape):
                raise BenchError(f"internal: frame reader returned {frames.shape}, expected {(len(need), *self.frame_shape)}")
            self._cache[need] = frames
            self._have[need] = True
        return self._cache[ids]


class CachedFrames:
    """The frames of a :class:`~bench.datafiles.frame_cache.FrameSource` through the decoded-frame cache:
    :meth:`prepare` (in the main process, before any worker starts) finds or builds the cache; then every
    process reads it memory-mapped. Where the cache cannot be written, a :class:`FrameStore` decodes instead."""

    def __init__(self, source: FrameSource, loader: LoaderSettings, log: Callable[[str], None]):
        self.source, self.loader, self.log = source, loader, log
        self.frame_shape = tuple(source.shape)
        self._store: MappedFrames | FrameStore | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "log": None}

    def prepare(self) -> None:
        if self._store is None:
            path = cached_frames(self.source, self.loader.for_build(), self.log)
            self._store = (FrameStore(self.source.count, self.frame_shape, self.source.read) if path is None
                           else MappedFrames(path, self.frame_shape))

    def get(self, ids: np.ndarray) -> np.ndarray:
        self.prepare()
        return self._store.get(ids)


class FileFrames:
    """``read(ids)``: the frames of ``files[ids]`` decoded by ``read_frame`` (a module-level function, so
    that worker processes can receive it)."""

    def __init__(self, files: Sequence[Path], read_frame: Callable[[Path], np.ndarray]):
        self.files, self.read_frame = list(files), read_frame

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        return np.stack([self.read_frame(self.files[i]) for i in ids])


@dataclass
class ClipSplits:
    """Splits whose sequences are clips of frame ids into a frame store (:class:`CachedFrames` or
    :class:`FrameStore`: ``get(ids) -> frames``).

    ``clips[split]`` is an int array (n, L) of frame ids; the first ``in_frames`` frames of a clip
    are the input and the rest the target. Same ordering, sharding and conversion as
    :class:`bench.spec.splits.ArraySplits`: train reshuffled per epoch from the run seed, val/test fixed.
    """

    store: Any
    clips: Mapping[str, np.ndarray]
    in_frames: int
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    info: dict[str, Any] = field(default_factory=dict)
    loader: LoaderSettings = field(default_factory=LoaderSettings)

    def _indices(self, split: str, epoch: int) -> np.ndarray:
        if split not in self.clips:
            raise BenchError(f"this dataset has no {split!r} split; choose one of {sorted(self.clips)}")
        n = len(self.clips[split])
        order = epoch_permutation(n, self.seed, epoch) if split == "train" else np.arange(n)
        return order[list(shard_range(n, self.rank, self.world_size))]

    def size(self, split: str) -> int:
        return len(self._indices(split, 0))

    def raw_batches(self, split: str, batch_size: int, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches as uint8 frames, (B, T, C, H, W) and (B, T', C, H, W), made as :attr:`loader` says."""
        idx = self._indices(split, epoch)
        clips = self.clips[split]
        if hasattr(self.store, "prepare"):
            self.store.prepare()  # the cache is found or built here, before any worker starts
        plan = [clips[idx[start:start + batch_size]] for start in range(0, len(idx), batch_size)]
        return load_batches(self._fetch, plan, self.loader.for_gather(), self.loader.pin_memory)

    def _fetch(self, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The frames of clips ``ids`` (B, L): input and target, each read in one gather."""
        t, shape = self.in_frames, self.store.frame_shape
        x, y = ids[:, :t], ids[:, t:]
        return (torch.from_numpy(self.store.get(x.reshape(-1)).reshape(*x.shape, *shape)),
                torch.from_numpy(self.store.get(y.reshape(-1)).reshape(*y.shape, *shape)))

    def batches(self, split: str, batch_size: int, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.raw_batches(split, batch_size, epoch):
            yield to_unit_float(x), to_unit_float(y)


def select_clips(clips: Mapping[str, np.ndarray], sizes: Mapping[str, int], data_seed: int,
                 dataset: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Apply ``sizes`` (a data_seed-fixed subset per split); report available counts and clamps."""
    out: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"available": {k: int(len(v)) for k, v in clips.items()}}
    for split, arr in clips.items():
        if len(arr) == 0:
            raise BenchError(f"dataset {dataset!r} has no {split} sequences in the files found; "
                             f"run `bench data check {dataset}` to see what is there")
        want = sizes.get(split)  # checked with the DataConfig (bench.spec.splits.check_sizes)
        if want is not None and int(want) > len(arr):
            info.setdefault("clamped", {})[split] = {"requested": int(want), "used": int(len(arr))}
        out[split] = arr[pick(len(arr), want, data_seed, SPLIT_SALT[split])]
    return out, info


@dataclass(frozen=True)
class FrameFiles:
    """A dataset's frame image files: ``files`` (frame id -> file, every file under ``base``), decoded by
    ``read_frame`` (a module-level function) under the rule named ``decoder`` (a new name when the rule
    changes: it keys the frame cache)."""

    base: Path
    files: Sequence[Path]
    read_frame: Callable[[Path], np.ndarray]
    decoder: str


def frame_file_splits(spec: Any, config: Any, frames: FrameFiles, clips: Mapping[str, np.ndarray],
                      info: Mapping[str, Any]) -> "ClipSplits":
    """Splits over clips of image files: ``clips[split]`` holds rows of indices into ``frames.files``.

    Applies ``--sizes`` (:func:`select_clips`); the frames are decoded once into the frame cache on first
    use (:class:`CachedFrames`), keyed by the files' digests (named by their paths under ``frames.base``).
    """
    chosen, selected = select_clips(clips, config.sizes, config.data_seed, spec.name)
    cut = len(str(frames.base)) + 1  # names under base (string slicing: 100,000s of files)
    source = FrameSource(spec.name, frames.base, {str(f)[cut:].replace(os.sep, "/"): f for f in frames.files},
                         len(frames.files), spec.frame_shape, FileFrames(frames.files, frames.read_frame),
                         frames.decoder)
    return ClipSplits(CachedFrames(source, config.loader, config.log), chosen, spec.in_frames, seed=config.seed,
                      rank=config.rank, world_size=config.world_size, info={**selected, **info}, loader=config.loader)
