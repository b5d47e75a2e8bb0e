"""The mechanics of one run: devices, seeding, optimiser and schedule, the epoch loop, evaluation.

:func:`train_epoch` runs one epoch of a method's training step (autocast, gradient scaling,
clipping, the per-iteration schedule) and checks the loss for NaN/Inf; :func:`evaluate` scores a
split under the scoring protocol of :mod:`bench.metrics.functional` (it refuses non-finite predictions rather
than clip them into a finite score) and keeps the first sequences for the qualitative figure;
:func:`rollout` extends a feed-forward model recursively to a longer horizon (TAU Sec. 4.4).
:func:`prefetch` produces batches in a background thread while the device computes.
"""

from __future__ import annotations

import math
import queue
import random
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from bench.spec.splits import Splits
from bench.run.distributed import DistInfo
from bench.cost.measure import synchronize
from bench.errors import BenchError, NonFiniteLossError
from bench.metrics.state import MetricState
from bench.spec.method import training_loss
from bench.spec.registry import MethodSpec


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; an unavailable device is a BenchError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BenchError(f"device {name!r} requested but no CUDA GPU is available here; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BenchError(f"device {name!r} does not exist: {torch.cuda.device_count()} GPU(s) here; use cuda:0..")
    elif device.type != "cpu":
        raise BenchError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def seed_everything(seed: int, device: torch.device) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)


def make_optimizer(params: list[nn.Parameter], hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    name = str(hp["optimizer"]).lower()
    lr, wd = float(hp["lr"]), float(hp["weight_decay"])
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=0.9)
    raise BenchError(f"unknown optimizer {hp['optimizer']!r}; use adam, adamw or sgd (set with optimizer=...)")


def make_scheduler(optimizer: torch.optim.Optimizer, hp: Mapping[str, Any], total_steps: int):
    name = str(hp["schedule"]).lower()
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=float(hp["lr"]), total_steps=max(total_steps, 1))
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    if name in ("none", "constant"):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    raise BenchError(f"unknown schedule {hp['schedule']!r}; use onecycle, cosine or none (set with schedule=...)")


def rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The torch random state (CPU, and the CUDA device's) to replay in a later pass."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def set_rng_state(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


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


def rollout(spec: MethodSpec, model: nn.Module, x: torch.Tensor, hp: Mapping[str, Any], horizon: int) -> torch.Tensor:
    """Predict ``horizon`` future frames from ``x``.

    Recurrent methods roll out natively (``hp['pred_len']``). Feed-forward methods whose native
    output is shorter predict recursively (TAU section 4.4): each prediction is appended and the
    last ``T`` frames are fed back in as the next input.
    """
    if spec.recurrent:
        return spec.predict(model, x, {**hp, "pred_len": horizon})
    preds: list[torch.Tensor] = []
    window, produced = x, 0
    while produced < horizon:
        out = spec.predict(model, window, hp)
        preds.append(out)
        produced += out.shape[1]
        window = torch.cat([window, out], dim=1)[:, -x.shape[1]:]
    return torch.cat(preds, dim=1)[:, :horizon]


def prefetch(batches: Iterator[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
             depth: int = 2) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Produce batches in a background thread (and pin them for the GPU) while the device computes.

    On the CPU the batches are made inline: a producer thread would compete with the compute
    threads for the same cores (measured: tiny TAU 28 -> 20 samples/s on 2 cores with a thread).
    """
    if depth <= 0 or device.type == "cpu":
        yield from ((x.to(device), y.to(device)) for x, y in batches)
        return
    pin = device.type == "cuda"
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for x, y in batches:
                if stop.is_set():
                    return
                q.put((x.pin_memory(), y.pin_memory()) if pin else (x, y))
            q.put(done)
        except BaseException as exc:  # re-raised in the consumer
            q.put(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            x, y = item
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def autocast(device: torch.device, precision: str):
    """Autocast context for ``precision`` (fp32: none)."""
    if precision == "fp32":
        return nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        raise BenchError(f"unknown precision {precision!r}; use fp32, bf16 or fp16")
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class Evaluation:
    """Metrics of one split: means over all frames, means per predicted frame, kept sequences."""

    metrics: dict[str, float]
    per_frame: dict[str, list[float]]
    kept: dict[str, np.ndarray]


def evaluate(spec: MethodSpec, model: nn.Module, splits: Splits, split: str, hp: Mapping[str, Any],
             device: torch.device, horizon: int, batch_size: int, keep: int = 0,
             precision: str = "fp32", reduce: bool = True) -> Evaluation:
    """Score ``model`` on ``split`` under the scoring protocol (raw MSE/MAE, clipped SSIM/PSNR).

    A non-finite prediction raises NonFiniteLossError (the run fails; clipping would hide it).
    Metrics accumulate on the device and are reduced exactly across processes.
    """
    model.eval()
    state = MetricState(device=device, horizon=horizon)
    kept: dict[str, list[torch.Tensor]] = {"inputs": [], "truth": [], "pred": []}
    n_kept = 0
    distributed = reduce and torch.distributed.is_available() and torch.distributed.is_initialized()
    nonfinite = torch.zeros((), dtype=torch.float64, device=device)  # every rank learns of any rank's NaN
    with torch.no_grad():
        for x, y in prefetch(splits.batches(split, batch_size), device):
            if y.shape[1] < horizon:
                raise BenchError(f"--pred-len {horizon} exceeds the {y.shape[1]} target frames this dataset "
                                 f"provides; use --pred-len <= {y.shape[1]} or a dataset with longer targets")
            y = y[:, :horizon]
            with autocast(device, precision):
                pred = rollout(spec, model, x, hp, horizon)
            pred = pred.float()
            nonfinite += (~torch.isfinite(pred)).any()  # stays on the device: one host sync per evaluation
            state.update(pred, y)
            if n_kept < keep:
                take = min(keep - n_kept, len(x))
                for name, t in (("inputs", x), ("truth", y), ("pred", pred.clamp(0.0, 1.0))):
                    kept[name].append(t[:take].detach())
                n_kept += take
    if distributed:
        torch.distributed.all_reduce(nonfinite, op=torch.distributed.ReduceOp.MAX)
    if nonfinite.item():  # never scored: clipping would have turned +Inf into a finite number
        raise _nonfinite_predictions(split)
    if reduce:
        state.all_reduce()
    model.train()
    stored = {k: (torch.cat(v).float().cpu().numpy() * 255).round().astype(np.uint8) for k, v in kept.items() if v}
    return Evaluation(state.compute(), state.compute_per_frame(), stored)


def _nonfinite_predictions(split: str) -> NonFiniteLossError:
    return NonFiniteLossError(f"the model predicts non-finite values (NaN/Inf) on the {split} split (its weights "
                              f"diverged); lower the learning rate (lr=...) or enable clipping (clip_grad=1.0)")


@dataclass
class EpochStats:
    train_loss: float
    samples: int
    seconds: float


def train_epoch(spec: MethodSpec, step_module: nn.Module, splits: Splits, epoch: int, total_epochs: int,
                steps_per_epoch: int, rank_batch: int, hp: Mapping[str, Any], optimizer, scheduler, scaler,
                params: list[nn.Parameter], device: torch.device, info: DistInfo, precision: str = "fp32",
                channels_last: bool = False, on_step: Callable[[float], None] | None = None) -> EpochStats:
    """One epoch of the method's training step; NonFiniteLossError names the first bad step.

    The epoch's ``train_loss`` is the mean over the samples it saw: each step's loss (a mean over
    its batch) weighted by the samples in that batch, summed over the steps of every rank and
    divided by the number of samples, so a partial last batch counts for what it holds.

    ``on_step(loss)`` is called after every optimiser step (the progress bar); on the GPU the loss
    is only synchronised for the NaN check every 50 steps, and the step found is still exact.
    """
    t0 = time.perf_counter()
    losses = torch.zeros(steps_per_epoch, device=device, dtype=torch.float64)
    counts = torch.zeros(steps_per_epoch, device=device, dtype=torch.float64)  # samples in each step's batch
    n_samples, checked, step = 0, 0, 0
    clip = float(hp.get("clip_grad") or 0.0)
    check_every = 1 if device.type == "cpu" else 50
    for step, (x, y) in enumerate(prefetch(splits.batches("train", rank_batch, epoch), device), start=1):
        if step > steps_per_epoch:
            break
        progress = ((epoch - 1) * steps_per_epoch + step - 1) / max(total_epochs * steps_per_epoch, 1)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        # one optimiser step per pass (usually one; the method's train_passes may add e.g. a
        # time-reversed pass), every pass with the same random draws; the iteration's loss is their mean
        passes = spec.train_passes(x, y, hp) if spec.train_passes is not None else [(x, y)]
        rng = rng_state(device) if len(passes) > 1 else None
        counts[step - 1] = len(x)
        for k, (px, py) in enumerate(passes):
            if k:
                set_rng_state(rng, device)
            with autocast(device, precision):
                loss = training_loss(spec, step_module(px, py, progress), hp)
            losses[step - 1] += loss.detach().double() / len(passes)
            if k == len(passes) - 1 and step - checked >= check_every:
                bad = first_bad_step(losses, checked, step, info)
                if bad is not None:
                    check_finite(losses[bad], bad + 1, epoch)
                checked = step
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, clip)
            scaler.step(optimizer)
            scaler.update()
        scheduler.step()
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
