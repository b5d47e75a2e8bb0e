"""How batches are produced: torch's DataLoader over a fixed plan, with worker processes and pinned memory.

A dataset's splits decide WHICH sequences form each batch (the run seed's epoch permutation and the
rank's shard, :mod:`bench.spec.splits`); this module decides only HOW the batches are made. A *plan* is
a list of index arrays, one per batch; :func:`load_batches` hands each to ``fetch`` (in a worker
process when ``workers > 0``) and yields the results in plan order: torch's DataLoader returns the
results of its workers in sampler order, so the batches are the same whatever the worker count
(``tests/test_data_loader.py`` shows it for 0 and 2 workers).

Choices:

- The plan holds whole batches (``batch_size=None``): one ``fetch`` reads a batch in one gather (from
  the decoded-frame cache, :mod:`bench.datafiles.frame_cache`), instead of a Python call and a collate
  per sequence.
- Sharding stays :func:`bench.spec.splits.shard_range` (rank, rank + world, ... of the epoch's order),
  the partition torch's ``DistributedSampler(shuffle=False)`` makes, without its padding: with
  ``drop_last=False`` it repeats sequences to even out the shards, which would count them twice in
  the exactly reduced validation and test metrics, and with ``drop_last=True`` it drops the remainder,
  which would change the training sequences of a torchrun run whose split does not divide by the
  number of processes. The plan is built per rank, so the loader needs no sampler of its own.
- ``workers`` is :class:`LoaderSettings`' choice, never the run spec's: it cannot change a batch.
  ``workers=None`` ("auto") is 0 for batches that are a gather from memory (frames already decoded,
  arrays): measured on 2 cores, one worker process delivered KTH batches several times slower than
  the gather in the main process, because a batch crosses processes through shared memory (two more
  copies and a page fault per 4 KiB); and ``os.cpu_count()`` for work that is mostly computation
  (generating Moving MNIST on the CPU), where processes scale. Decoding a dataset's frames into the
  frame cache happens once, before training, and uses every core unless ``build_workers`` says otherwise.
- ``pin_memory`` (CUDA runs): batches are copied into page-locked memory so that the copy to the GPU
  is asynchronous.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from bench.errors import BenchError

#: batches each worker prepares ahead (torch's prefetch_factor)
PREFETCH_PER_WORKER = 4


@dataclass(frozen=True)
class LoaderSettings:
    """How batches are produced (never which): worker processes (0: in the calling process; None:
    automatic, see the module docstring; the runner asks for it on CUDA) and pinned memory (CUDA runs)."""

    workers: int | None = 0
    pin_memory: bool = False
    build_workers: int | None = 0  # processes decoding the frame cache once; None: every core (runs ask for it)

    def for_gather(self) -> int:
        """Workers for batches gathered from memory: 0 unless set."""
        return 0 if self.workers is None else self.workers

    def for_compute(self) -> int:
        """Workers for batches that are computed (generated): every core unless set."""
        return (os.cpu_count() or 1) if self.workers is None else self.workers

    def for_build(self) -> int:
        """Processes decoding a dataset's frames into the frame cache (nothing else runs meanwhile): every core
        unless set."""
        return (os.cpu_count() or 1) if self.build_workers is None else self.build_workers


class _Failed:
    """A BenchError raised in a worker, carried back whole: torch would re-raise it with the worker's
    traceback in its message, and a user's mistake (a corrupt frame) must stay one line."""

    def __init__(self, exc: BenchError):
        self.type, self.args = type(exc), exc.args

    def raise_it(self) -> None:
        raise self.type(*self.args)


class _Plan(Dataset):
    """Item ``k`` is ``fetch(plan[k])``: a whole batch."""

    def __init__(self, fetch: Callable[[Any], Any], plan: Sequence[Any]):
        self.fetch, self.plan = fetch, plan

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, k: int) -> Any:
        try:
            return self.fetch(self.plan[k])
        except BenchError as exc:
            return _Failed(exc)


def _identity(item: Any) -> Any:
    return item


def load_batches(fetch: Callable[[Any], Any], plan: Sequence[Any], workers: int = 0,
                 pin_memory: bool = False) -> Iterator[Any]:
    """``fetch(item)`` for every item of ``plan``, in plan order, made by ``workers`` processes (0: in
    this process) and pinned when ``pin_memory``. ``fetch`` must be picklable where processes are not
    forked (macOS, Windows): a bound method of an object holding paths and arrays, not open files."""
    if workers <= 0 and not pin_memory:
        for item in plan:
            yield fetch(item)
        return
    loader = DataLoader(_Plan(fetch, plan), batch_size=None, shuffle=False, num_workers=max(0, workers),
                        collate_fn=_identity, pin_memory=pin_memory and torch.cuda.is_available(),
                        prefetch_factor=PREFETCH_PER_WORKER if workers > 0 else None)
    for item in loader:
        if isinstance(item, _Failed):
            item.raise_it()
        yield item
