"""Multi-process training with ``torchrun``: process-group set-up and the DDP training wrapper.

``torchrun --nproc_per_node=N -m bench run ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; the runner
then initialises a process group (NCCL on GPU, gloo on CPU), shards every split across ranks
(:func:`bench.spec.splits.shard_range`), trains a :class:`torch.nn.parallel.DistributedDataParallel`
model, reduces metrics exactly (sums and counts, :class:`bench.metrics.state.MetricState`), and only
rank 0 writes results.

Batch-size and learning-rate rule (recorded in every result): ``batch_size`` is the GLOBAL batch;
each rank processes ``batch_size / world_size`` sequences per step and DDP averages gradients, so
one step of N processes equals one step of one process on the whole batch, and the learning rate
is used as configured (no scaling).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.distributed as dist
from torch import nn

from bench.errors import BenchError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_rank() -> int:
    """This process's rank under torchrun (0 when launched alone)."""
    return int(os.environ.get("RANK", "0"))


def env_world_size() -> int:
    """Number of processes under torchrun (1 when launched alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment (no-op for one process).

    Returns the rank layout and the device this rank uses (``cuda:LOCAL_RANK`` on GPU).
    """
    world = env_world_size()
    if world <= 1:
        return DistInfo(), device
    rank, local = env_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise BenchError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s); "
                             f"use --nproc_per_node <= the number of GPUs")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local), device


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class TrainStepModule(nn.Module):
    """Puts a method's ``train_step`` behind ``forward`` so DDP sees (and syncs) every training forward.

    Works for any method, including recurrent ones whose train_step unrolls the model many times.
    """

    def __init__(self, model: nn.Module, train_step: Callable[..., tuple[torch.Tensor, torch.Tensor]],
                 hp: Mapping[str, Any]):
        super().__init__()
        self.model = model
        self._train_step = train_step
        self._hp = hp

    def forward(self, x: torch.Tensor, y: torch.Tensor, progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        return self._train_step(self.model, x, y, self._hp, progress)


def wrap_for_training(model: nn.Module, train_step: Callable, hp: Mapping[str, Any], info: DistInfo,
                      device: torch.device) -> nn.Module:
    """The module the training loop calls as ``step_module(x, y, progress) -> (pred, target)``."""
    step = TrainStepModule(model, train_step, hp)
    if not info.enabled:
        return step
    # Parameters a method never uses while training (PLA-SM's pretraining-only SM module, frozen
    # encoders) would otherwise stall DDP's reducer.
    return nn.parallel.DistributedDataParallel(
        step, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
