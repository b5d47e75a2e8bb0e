"""Train/validation/test splits behind one small interface.

A dataset loader returns a :class:`Splits`: ``batches(split, batch_size, epoch)`` yields
``(x, y)`` float tensors of shapes (B, T, C, H, W) and (B, T', C, H, W) with values in [0, 1].
The training split is reshuffled (or regenerated) per epoch from the run seed; validation and test
are fixed. With ``world_size > 1`` each rank sees a disjoint shard of every split (DDP).

:class:`ArraySplits` serves datasets held as arrays (uint8 or float); generated datasets (Moving
MNIST) implement the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Protocol

import numpy as np
import torch

from bench.errors import BenchError
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
    """uint8 in [0, 255] -> float32 in [0, 1]; float input is passed through as float32."""
    t = torch.as_tensor(a)
    if t.dtype == torch.uint8:
        return t.to(torch.float32).div_(255.0)
    return t.to(torch.float32)


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

    def size(self, split: str) -> int:
        return len(self._indices(split, 0))

    def _indices(self, split: str, epoch: int) -> np.ndarray:
        if split not in self.arrays:
            raise BenchError(f"this dataset has no {split!r} split; choose one of {sorted(self.arrays)}")
        n = len(self.arrays[split][0])
        order = epoch_permutation(n, self.seed, epoch) if split == "train" else np.arange(n)
        return order[list(shard_range(n, self.rank, self.world_size))]

    def batches(self, split: str, batch_size: int, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.arrays[split]
        idx = self._indices(split, epoch)
        for start in range(0, len(idx), batch_size):
            sel = np.sort(idx[start:start + batch_size]) if split != "train" else idx[start:start + batch_size]
            yield to_unit_float(np.ascontiguousarray(x[sel])), to_unit_float(np.ascontiguousarray(y[sel]))
