"""``bench perf``: throughput figures of each method at its real configuration (a benchmark, not a test).

Train samples/s is one full training iteration (the method's own train_step and loss, forward,
backward, optimiser step; one per pass where the method trains a batch in several passes) on a
fixed random batch, timed over ``iters`` steps after one warm-up step with the device synchronised.
Eval sequences/s is the test-time forward (rollout to T') on the same batch. Peak memory is the CUDA allocator's peak on GPU (reset per method), and on CPU the process's peak RSS
so far (cumulative over the methods measured before, so only its growth is informative).
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch
from rich.console import Console
from rich.table import Table

from bench import store
from bench.cost.measure import measure_fps, synchronize
from bench.core.host_allocator import keep_freed_memory_on, setting_for
from bench.spec.method import training_loss
from bench.spec.registry import DatasetSpec, MethodKey
from bench.core.platform import seed_everything
from bench.spec.choices import autocast, make_optimizer
from bench.spec.method import rollout


@dataclass(frozen=True)
class PerfSettings:
    """How ``bench perf`` measures: the device, the batch and number of timed steps, the model sizes
    (``--tiny``), the precisions to time, and the frames of the SSIM comparison (None: skipped)."""

    device: torch.device
    batch_size: int = 4
    iters: int = 3
    tiny: bool = False
    precisions: tuple[str, ...] = ("fp32",)
    metric_frames: int | None = None


def train_throughput(key: MethodKey, data: DatasetSpec, settings: PerfSettings,
                     precision: str = "fp32") -> dict[str, Any]:
    """One method's train samples/s, eval sequences/s and peak memory at ``precision`` (module docstring)."""
    device, batch_size, iters = settings.device, settings.batch_size, settings.iters
    keep_freed_memory_on(device)  # as bench run does on CPU (bench.core.host_allocator), so that figures match training
    seed_everything(0, device)
    hp = key.resolve(data.name, tiny=settings.tiny)
    model = key.spec.create_model(data, hp).to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, data.in_frames, *data.frame_shape, generator=g).to(device)
    y = torch.rand(batch_size, data.out_frames, *data.frame_shape, generator=g).to(device)
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], hp)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:  # one training iteration: one optimiser step per pass (see bench.run.epoch.train_epoch)
        passes = key.spec.train_passes(x, y, hp) if key.spec.train_passes is not None else [(x, y)]
        for px, py in passes:
            with autocast(device, precision):
                loss = training_loss(key.spec, key.spec.train_step(model, px, py, hp, 0.5), hp)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    def infer(inp: torch.Tensor) -> torch.Tensor:
        with autocast(device, precision):
            return rollout(key.spec, model, inp, hp, data.out_frames)

    model.train()
    step()
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    synchronize(device)
    train_sps = iters * batch_size / (time.perf_counter() - t0)
    model.eval()
    eval_sps = measure_fps(infer, x, warmup=1, iters=iters)
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"dataset": data.name, "label": key.label, "precision": precision, "batch_size": batch_size, "iters": iters,
            "train_samples_per_s": train_sps, "eval_sequences_per_s": eval_sps,
            "peak_memory_bytes": int(peak), "peak_memory_kind": "cuda allocator" if device.type == "cuda" else "process peak RSS so far"}


def perf_report(keys: Sequence[MethodKey], datasets: Sequence[DatasetSpec], settings: PerfSettings, results: Path,
                console: Console) -> dict[str, Any]:
    """Every method on every dataset at every precision of ``settings``: a table, and a record under
    ``results/perf/`` (with the SSIM throughput comparison unless ``settings.metric_frames`` is None)."""
    device, metric_frames = settings.device, settings.metric_frames
    rows = []
    table = Table(title=f"bench perf on {store.describe_device(device)} (batch {settings.batch_size}, "
                        f"{settings.iters} timed steps)")
    for col in ("dataset", "method", "precision", "train samples/s", "vs fp32", "eval seq/s", "peak memory (MiB)"):
        table.add_column(col)
    for data in datasets:
        for key in keys:
            base = None
            for precision in settings.precisions:
                row = train_throughput(key, data, settings, precision)
                rows.append(row)
                if precision == "fp32":
                    base = row["train_samples_per_s"]
                ratio = f"{row['train_samples_per_s'] / base:.2f}x" if base and precision != "fp32" else "-"
                cells = (data.name, key.label, precision, f"{row['train_samples_per_s']:.3f}", ratio,
                         f"{row['eval_sequences_per_s']:.2f}",
                         f"{row['peak_memory_bytes'] / 2**20:.0f} ({row['peak_memory_kind']})")
                table.add_row(*cells)
                console.print("measured: " + " | ".join(cells), markup=False)  # progress: long runs on CPU
    console.print(table)
    record: dict[str, Any] = {"device": str(device), "device_name": store.describe_device(device), "tiny": settings.tiny,
                              "environment": store.environment(device), "methods": rows,
                              "host_allocator": setting_for(device),
                              "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if metric_frames:
        from bench.cost.metric_speed import ssim_speed

        speed = ssim_speed(n_frames=metric_frames, device=str(device))
        record["ssim_speed"] = speed
        console.print(f"SSIM throughput on {metric_frames} 64x64 frames: " + ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in speed.items()), markup=False)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    store.atomic_write_json(Path(results) / "perf" / f"perf-{device.type}-{stamp}.json", record)
    return record
