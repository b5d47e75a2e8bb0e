"""A run ready to train: device and processes, the seeded data splits, the model, the pretraining stage.

:func:`prepare_run` builds a :class:`PreparedRun` from a run spec; the epoch loop
(:mod:`bench.run.loop`) and the test (:mod:`bench.run.finish`) read everything from it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.core.host_allocator import keep_freed_memory_on
from bench.core.memory import PeakMeter, PhasePeak
from bench.core.platform import resolve_device, seed_everything
from bench.errors import BenchError
from bench.run.distributed import DistInfo, barrier, init_from_env
from bench.run.epoch import check_finite
from bench.run.evaluation import Scorer
from bench.run.options import RunOptions
from bench.spec.batching import LoaderSettings
from bench.spec.dataset import DataConfig, DatasetSpec
from bench.spec.method import MethodSpec
from bench.spec.pretrain import PretrainContext
from bench.spec.run_spec import RunSpec
from bench.spec.splits import Splits


@dataclass
class PreparedRun:
    """A run ready to train: its device and process layout, data, model and pretraining record."""

    spec: RunSpec
    data: DatasetSpec
    work: Path
    opts: RunOptions
    info: DistInfo
    device: torch.device
    splits: Any
    sizes: dict[str, int]
    model: nn.Module
    rank_batch: int
    pretrain_record: dict | None
    started: str
    wall_start: float
    meter: PeakMeter | None = None  # the peak memory of each phase (bench.core.memory)
    setup_peak: PhasePeak | None = None  # of loading the data, building the model, pretraining (counted as training)

    @property
    def method(self) -> MethodSpec:
        return self.spec.method_spec()

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser iterations per epoch on every rank (the smallest shard decides: drops < world_size sequences)."""
        return math.ceil((self.sizes["train"] // self.info.world_size) / self.rank_batch)

    @property
    def scorer(self) -> Scorer:
        """How this run scores a split: its model's rollout to the evaluation horizon, at its batch per process."""
        return Scorer(self.method, self.model, dict(self.spec.hparams), self.device, self.spec.pred_len,
                      self.rank_batch, self.spec.precision)

    @property
    def where(self) -> str:
        return f"{self.spec.label} on {self.spec.dataset} seed {self.spec.seed}"

    def log(self, text: str) -> None:
        if self.info.is_main:
            self.opts.log(text)


def prepare_run(spec: RunSpec, data: DatasetSpec, work: Path, opts: RunOptions) -> PreparedRun:
    """Device and processes, the seeded data splits, the model, and the pretraining stage if any."""
    info, device = init_from_env(resolve_device(opts.device))
    if spec.batch_size % info.world_size:
        raise BenchError(f"batch size {spec.batch_size} is not divisible by the {info.world_size} processes; "
                         f"pass --batch-size as a multiple of --nproc_per_node")
    barrier(info)
    meter = PeakMeter(device)
    with meter.phase() as setup_peak:
        run = _prepare(spec, data, work, opts, info, device)
    run.meter, run.setup_peak = meter, setup_peak
    return run


def _prepare(spec: RunSpec, data: DatasetSpec, work: Path, opts: RunOptions, info: DistInfo,
             device: torch.device) -> PreparedRun:
    seed_everything(spec.seed, device)
    splits = data.load(data, data_config(spec, opts, info, device))
    sizes = {s: global_size(splits, s, info, device) for s in ("train", "val", "test")}
    method = spec.method_spec()
    model = method.create_model(data, spec.hparams).to(device)
    keep_freed_memory_on(device)  # CPU: 2x faster training steps (measured; see bench.core.host_allocator)
    run = PreparedRun(spec, data, work, opts, info, device, splits, sizes, model, spec.batch_size // info.world_size,
                      None, datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter())
    if method.pretrain is not None:
        ctx = PretrainContext(data=data, splits=splits, hp={**spec.hparams, "batch_size": run.rank_batch},
                              device=device, seed=spec.seed,
                              cache_dir=Path(opts.results) / "_cache" / data.name if info.world_size == 1 else None,
                              log=run.log, check_finite=check_finite,
                              extra={"sizes": dict(spec.sizes), "data_seed": spec.data_seed,
                                     "data_source": dict(spec.data_source), "world_size": info.world_size})
        run.pretrain_record = method.pretrain(model, ctx)
        seed_everything(spec.seed, device)  # the training stage starts from the same RNG state, cached stage or not
    if opts.channels_last:
        check_channels_last(spec, data, model)
        run.model = model.to(memory_format=torch.channels_last)
    return run


def data_config(spec: RunSpec, opts: RunOptions, info: DistInfo, device: torch.device | None = None) -> DataConfig:
    """What the loader needs: the spec's data settings, and how the batches are made (never which, so none of
    it is in the spec): on CUDA, worker processes (``--workers``, else automatic: :mod:`bench.spec.batching`),
    pinned memory and Moving MNIST rendered on the GPU; on the CPU, batches made in the training process
    unless ``--workers`` says otherwise (worker processes would compete with its threads for the cores).
    A frame cache is decoded by ``--workers`` processes, else by every core (before training starts)."""
    cuda = device is not None and device.type == "cuda"
    workers = opts.workers if opts.workers is not None else (None if cuda else 0)
    return DataConfig(data_dir=opts.data_dir, seed=spec.seed, data_seed=spec.data_seed, sizes=dict(spec.sizes),
                      rank=info.rank, world_size=info.world_size, pred_len=spec.hparams.get("pred_len"),
                      loader=LoaderSettings(workers=workers, pin_memory=cuda, build_workers=opts.workers),
                      device=str(device) if cuda else None,
                      log=opts.log if info.is_main else _silent)


def _silent(text: str) -> None:
    """The data notes of ranks > 0 (rank 0 says them)."""


def global_size(splits: Splits, split: str, info: DistInfo, device: torch.device) -> int:
    """Size of a split over all ranks."""
    n = torch.tensor([splits.size(split)], dtype=torch.float64, device=device)
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(n)
    return int(n.item())


def check_channels_last(spec: RunSpec, data: DatasetSpec, model: nn.Module | None = None) -> None:
    """``--channels-last`` lays out 4-D tensors (2-D convolutions); a model with rank-5 weights (3-D
    convolutions: E3D-LSTM, CrevNet) cannot take it: a one-line BenchError before any training
    (the model is built on the ``meta`` device when not given)."""
    if model is None:
        with torch.device("meta"):
            model = spec.method_spec().create_model(data, spec.hparams)
    ranks = {t.dim() for t in [*model.parameters(), *model.buffers()]}
    if max(ranks, default=0) > 4:
        raise BenchError(f"--channels-last applies to 2-D convolutions, but {spec.label} has rank-{max(ranks)} "
                         f"weights (3-D convolutions); drop --channels-last for it")

