"""One training epoch: the method's training step with autocast, gradient scaling, clipping and the schedule.

:class:`Trainer` holds what the loop steps (the method, its training module, the optimiser, the
schedule, the gradient scaler) and the run's layout (device, processes, precision, iterations per
epoch); :func:`train_epoch` runs one epoch of it and names the first step whose loss is NaN/Inf.
The epoch's ``train_loss`` is the mean over the samples it saw: each step's loss (a mean over its
batch) weighted by the samples in that batch, summed over the steps of every rank and divided by the
number of samples, so a partial last batch counts for what it holds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from bench.core.platform import rng_state, set_rng_state, synchronize
from bench.errors import NonFiniteLossError
from bench.run.distributed import DistInfo
from bench.run.prefetch import prefetch
from bench.spec.choices import autocast
from bench.spec.method import MethodSpec, training_loss
from bench.spec.splits import Splits, raw_batches


def check_finite(loss: torch.Tensor, step: int, epoch: int | None = None) -> None:
    if not torch.isfinite(loss).all():
        where = f"epoch {epoch}, step {step}" if epoch is not None else f"step {step}"
        raise NonFiniteLossError(
            f"training loss became {loss.detach().float().cpu().flatten()[0].item()} at {where}; "
            f"lower the learning rate (lr=...) or enable clipping (clip_grad=1.0)"
        )


def first_bad_step(losses: torch.Tensor, start: int, stop: int, info: DistInfo) -> int | None:
    """Index of the first non-finite loss in ``losses[start:stop]`` on any rank (one host sync)."""
    bad = (~torch.isfinite(losses[start:stop])).to(torch.float64)
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    if not bool(bad.any().item()):
        return None
    return start + int(torch.nonzero(bad)[0].item())


@dataclass
class EpochStats:
    train_loss: float
    samples: int
    seconds: float


@dataclass
class Trainer:
    """What one run's training loop steps, and how (see the module docstring)."""

    method: MethodSpec
    step_module: nn.Module  # the model's training forward (bench.run.distributed.wrap_for_training)
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    params: list[nn.Parameter]
    hp: Mapping[str, Any]
    device: torch.device
    info: DistInfo
    steps_per_epoch: int
    rank_batch: int
    total_epochs: int
    precision: str = "fp32"
    channels_last: bool = False

    def progress(self, epoch: int, step: int) -> float:
        """Fraction of training done before ``step`` of ``epoch`` (both from 1): the methods' schedule clock."""
        total = max(self.total_epochs * self.steps_per_epoch, 1)
        return ((epoch - 1) * self.steps_per_epoch + step - 1) / total


def train_epoch(trainer: Trainer, splits: Splits, epoch: int,
                on_step: Callable[[float], None] | None = None) -> EpochStats:
    """One epoch of ``trainer`` on ``splits``; NonFiniteLossError names the first bad step.

    ``on_step(loss)`` is called after every optimiser step (the progress bar); on the GPU the loss
    is only synchronised for the NaN check every 50 steps, and the step found is still exact.
    """
    t = trainer
    spec, hp, device, info, steps_per_epoch = t.method, t.hp, t.device, t.info, t.steps_per_epoch
    t0 = time.perf_counter()
    losses = torch.zeros(steps_per_epoch, device=device, dtype=torch.float64)
    counts = torch.zeros(steps_per_epoch, device=device, dtype=torch.float64)  # samples in each step's batch
    n_samples, checked, step = 0, 0, 0
    clip = float(hp.get("clip_grad") or 0.0)
    check_every = 1 if device.type == "cpu" else 50
    for step, (x, y) in enumerate(prefetch(raw_batches(splits, "train", t.rank_batch, epoch), device), start=1):
        if step > steps_per_epoch:
            break
        progress = t.progress(epoch, step)
        if t.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        # one optimiser step per pass (usually one; the method's train_passes may add e.g. a
        # time-reversed pass), every pass with the same random draws; the iteration's loss is their mean
        passes = spec.train_passes(x, y, hp) if spec.train_passes is not None else [(x, y)]
        rng = rng_state(device) if len(passes) > 1 else None
        counts[step - 1] = len(x)
        for k, (px, py) in enumerate(passes):
            if k:
                set_rng_state(rng, device)
            with autocast(device, t.precision):
                loss = training_loss(spec, t.step_module(px, py, progress), hp)
            losses[step - 1] += loss.detach().double() / len(passes)
            if k == len(passes) - 1 and step - checked >= check_every:
                bad = first_bad_step(losses, checked, step, info)
                if bad is not None:
                    check_finite(losses[bad], bad + 1, epoch)
                checked = step
            t.optimizer.zero_grad(set_to_none=True)
            t.scaler.scale(loss).backward()
            if clip > 0:
                t.scaler.unscale_(t.optimizer)
                torch.nn.utils.clip_grad_norm_(t.params, clip)
            t.scaler.step(t.optimizer)
            t.scaler.update()
        t.scheduler.step()
        n_samples += len(x)
        if on_step is not None:
            on_step(float(losses[step - 1]) if check_every == 1 else math.nan)
    n_steps = min(step, steps_per_epoch)
    bad = first_bad_step(losses, checked, n_steps, info)
    if bad is not None:
        check_finite(losses[bad], bad + 1, epoch)
    stats = torch.stack([(losses[:n_steps] * counts[:n_steps]).sum(),
                         torch.tensor(float(n_samples), device=device, dtype=torch.float64)])
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(stats)
    synchronize(device)
    return EpochStats(float(stats[0].item() / max(stats[1].item(), 1.0)), int(stats[1].item()),
                      time.perf_counter() - t0)
