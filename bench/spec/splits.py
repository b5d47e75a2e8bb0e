"""Train/validation/test splits behind one small interface.

A dataset loader returns a :class:`Splits`: ``batches(split, batch_size, epoch)`` yields
``(x, y)`` float tensors of shapes (B, T, C, H, W) and (B, T', C, H, W) with values in [0, 1].
The training split is reshuffled (or regenerated) per epoch from the run seed; validation and test
are fixed. With ``world_size > 1`` each rank sees a disjoint shard of every split (DDP).

A splits object may also offer ``raw_batches`` (same arguments, same batches) yielding the frames as
they are stored, uint8 in [0, 255] where the data is 8-bit: the training and evaluation loops take
those (:func:`raw_batches`) and convert them on the device (:func:`to_unit_float`), so a batch
crosses processes, page-locked memory and the bus at a quarter of the bytes, and the host does not
spend its cores on the conversion.

:class:`ArraySplits` serves datasets held as arrays (uint8 or float); generated datasets (Moving
MNIST) implement the same methods. How the batches are produced (worker processes, pinned memory)
is :mod:`bench.spec.batching`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Protocol

import numpy as np
import torch

from bench.errors import BenchError
from bench.spec.batching import LoaderSettings, load_batches
from bench.spec.hparams import MAX_SPLIT_SIZE, shorten

SPLITS = ("train", "val", "test")
_SIZES_EXAMPLE = "--sizes train=256,val=64,test=64"


def check_sizes(sizes: Mapping[str, Any]) -> dict[str, int]:
    """Split sizes (``--sizes``, ``DataConfig.sizes``): splits among train, val, test, each a number of
    sequences from 1 to :data:`~bench.spec.hparams.MAX_SPLIT_SIZE`; a one-line BenchError otherwise."""
    out: dict[str, int] = {}
    for split, n in sizes.items():
        shown = shorten(n)
        if split not in SPLITS:
            raise BenchError(f"--sizes {split}={shown}: {split!r} is not a split; the splits are {', '.join(SPLITS)} "
                             f"(e.g. {_SIZES_EXAMPLE})")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise BenchError(f"--sizes {split}={shorten(n)} is invalid: give a positive number of sequences, e.g. "
                             f"{_SIZES_EXAMPLE}")
        if n > MAX_SPLIT_SIZE:
            raise BenchError(f"--sizes {split}={shown} is above the limit of {MAX_SPLIT_SIZE:,} sequences per split; "
                             f"give a smaller count")
        out[split] = n
    return out


class Splits(Protocol):
    """What the runner needs from a dataset."""

    info: Mapping[str, Any]  # recorded in every result, e.g. {"digit_source": "sklearn-digits-8x8"}

    def size(self, split: str) -> int: ...

    def batches(self, split: str, batch_size: int, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def shard_range(n: int, rank: int, world_size: int) -> range:
    """Indices ``rank, rank + world, ...`` of ``n`` items: a disjoint, near-equal shard per rank."""
    return range(rank, n, world_size)


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The training order of epoch ``epoch``: fixed by (seed, epoch) alone."""
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)


def to_unit_float(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] -> float32 in [0, 1], on the tensor's device; float input is passed through as float32.

    Every device gives the CPU's values, k / 255 correctly rounded: on CUDA, torch divides by a scalar
    as a multiplication by its rounded reciprocal, which differs in the last bit for 126 of the 256
    levels, so there the conversion is a lookup in the CPU's table (:func:`unit_table`)."""
    t = torch.as_tensor(a)
    if t.dtype == torch.uint8:
        if t.device.type == "cpu":
            return t.to(torch.float32).div_(255.0)
        return unit_table(t.device)[t.to(torch.int32)]
    return t.to(torch.float32)


_UNIT_TABLES: dict[torch.device, torch.Tensor] = {}


def unit_table(device: torch.device) -> torch.Tensor:
    """The 256 values k / 255 as float32, computed on the CPU, held on ``device``."""
    if device not in _UNIT_TABLES:
        _UNIT_TABLES[device] = torch.arange(256, dtype=torch.float32).div_(255.0).to(device)
    return _UNIT_TABLES[device]


def raw_batches(splits: Splits, split: str, batch_size: int,
                epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of ``split`` as stored (uint8 where the splits offer ``raw_batches``), else as floats;
    :func:`to_unit_float` turns either into the float batches of ``splits.batches``."""
    raw = getattr(splits, "raw_batches", None)
    return raw(split, batch_size, epoch) if raw is not None else splits.batches(split, batch_size, epoch)


@dataclass
class ArraySplits:
    """Splits over in-memory arrays: ``arrays[split] = (x, y)`` with a leading sample axis.

    Arrays may be uint8 (scaled to [0, 1]) or float already in [0, 1].
    """

    arrays: Mapping[str, tuple[np.ndarray, np.ndarray]]
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    info: dict[str, Any] = field(default_factory=dict)
    loader: LoaderSettings = field(default_factory=LoaderSettings)

    def size(self, split: str) -> int:
        return len(self._indices(split, 0))

    def _indices(self, split: str, epoch: int) -> np.ndarray:
        if split not in self.arrays:
            raise BenchError(f"this dataset has no {split!r} split; choose one of {sorted(self.arrays)}")
        n = len(self.arrays[split][0])
        order = epoch_permutation(n, self.seed, epoch) if split == "train" else np.arange(n)
        return order[list(shard_range(n, self.rank, self.world_size))]

    def raw_batches(self, split: str, batch_size: int, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches as stored (uint8 or float32), made as :attr:`loader` says."""
        idx = self._indices(split, epoch)
        plan = [(split, idx[start:start + batch_size]) for start in range(0, len(idx), batch_size)]
        return load_batches(self._fetch, plan, self.loader.for_gather(), self.loader.pin_memory)

    def _fetch(self, item: tuple[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        split, sel = item
        x, y = self.arrays[split]
        return torch.from_numpy(np.ascontiguousarray(x[sel])), torch.from_numpy(np.ascontiguousarray(y[sel]))

    def batches(self, split: str, batch_size: int, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.raw_batches(split, batch_size, epoch):
            yield to_unit_float(x), to_unit_float(y)
