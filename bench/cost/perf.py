"""``bench perf``: throughput figures of each method at its real configuration (a benchmark, not a test).

Train samples/s is one full training iteration (the method's own train_step and loss, forward,
backward, optimiser step; one per pass where the method trains a batch in several passes) on a
fixed random batch, timed over ``iters`` steps after one warm-up step with the device synchronised.
Eval sequences/s is the test-time forward (rollout to T') on the same batch.

Peak memory (:mod:`bench.core.memory`), per method, of training (building the model and its
optimiser, the warm-up and timed steps) and of evaluation (the test-time forwards, with the model and
its optimiser state still resident, as in a run): the peak resident memory of the process during
each (CPU; each phase's own peak where the kernel's high-water mark can be reset, which it can on
Linux, so that methods measured earlier do not count) and the CUDA allocator's peak of allocated
bytes (GPU). On the CPU a figure includes the process itself (Python, torch: about 0.3 GB).
"""

from __future__ import annotations

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
from bench.core.memory import PeakMeter, gib, rss_scope
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


class _Timed:
    """One method at its configuration on a fixed random batch: the model, its optimiser and scaler."""

    def __init__(self, key: MethodKey, data: DatasetSpec, settings: PerfSettings, precision: str):
        self.key, self.data, self.settings, self.precision = key, data, settings, precision
        device, batch_size = settings.device, settings.batch_size
        self.hp = key.resolve(data.name, tiny=settings.tiny)
        self.model = key.spec.create_model(data, self.hp).to(device)
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(batch_size, data.in_frames, *data.frame_shape, generator=g).to(device)
        self.y = torch.rand(batch_size, data.out_frames, *data.frame_shape, generator=g).to(device)
        self.opt = make_optimizer([p for p in self.model.parameters() if p.requires_grad], self.hp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def step(self) -> None:
        """One training iteration: one optimiser step per pass (see bench.run.epoch.train_epoch)."""
        spec, hp, device = self.key.spec, self.hp, self.settings.device
        passes = spec.train_passes(self.x, self.y, hp) if spec.train_passes is not None else [(self.x, self.y)]
        for px, py in passes:
            with autocast(device, self.precision):
                loss = training_loss(spec, spec.train_step(self.model, px, py, hp, 0.5), hp)
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()

    def train_samples_per_s(self) -> float:
        """One warm-up step, then ``iters`` timed steps with the device synchronised."""
        device, iters = self.settings.device, self.settings.iters
        self.model.train()
        self.step()
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            self.step()
        synchronize(device)
        return iters * self.settings.batch_size / (time.perf_counter() - t0)

    def eval_sequences_per_s(self) -> float:
        def infer(inp: torch.Tensor) -> torch.Tensor:
            with autocast(self.settings.device, self.precision):
                return rollout(self.key.spec, self.model, inp, self.hp, self.data.out_frames)

        self.model.eval()
        return measure_fps(infer, self.x, warmup=1, iters=self.settings.iters)


def train_throughput(key: MethodKey, data: DatasetSpec, settings: PerfSettings,
                     precision: str = "fp32") -> dict[str, Any]:
    """One method's train samples/s, eval sequences/s and peak memory at ``precision`` (module docstring)."""
    device = settings.device
    keep_freed_memory_on(device)  # as bench run does on CPU (bench.core.host_allocator), so that figures match training
    seed_everything(0, device)
    meter = PeakMeter(device)
    with meter.phase() as train_peak:
        timed = _Timed(key, data, settings, precision)
        train_sps = timed.train_samples_per_s()
    with meter.phase() as eval_peak:
        eval_sps = timed.eval_sequences_per_s()
    return {"dataset": data.name, "label": key.label, "precision": precision, "batch_size": settings.batch_size,
            "iters": settings.iters, "train_samples_per_s": train_sps, "eval_sequences_per_s": eval_sps,
            "train_peak_rss": train_peak.rss, "eval_peak_rss": eval_peak.rss, "train_peak_gpu": train_peak.gpu,
            "eval_peak_gpu": eval_peak.gpu, "rss_scope": rss_scope()}


def memory_cell(row: dict[str, Any], phase: str) -> str:
    """A row's peak memory of ``phase`` (train, eval) in GiB: resident (CPU), or GPU-allocated and resident."""
    rss = gib(row[f"{phase}_peak_rss"])
    gpu = row[f"{phase}_peak_gpu"]
    return rss if gpu is None else f"{gib(gpu)} GPU, {rss} RSS"


def perf_report(keys: Sequence[MethodKey], datasets: Sequence[DatasetSpec], settings: PerfSettings, results: Path,
                console: Console) -> dict[str, Any]:
    """Every method on every dataset at every precision of ``settings``: a table, and a record under
    ``results/perf/`` (with the SSIM throughput comparison unless ``settings.metric_frames`` is None)."""
    device, metric_frames = settings.device, settings.metric_frames
    rows = []
    table = Table(title=f"bench perf on {store.describe_device(device)} (batch {settings.batch_size}, "
                        f"{settings.iters} timed steps)")
    for col in ("dataset", "method", "precision", "train samples/s", "vs fp32", "eval seq/s", "train peak (GiB)",
                "eval peak (GiB)"):
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
                         f"{row['eval_sequences_per_s']:.2f}", memory_cell(row, "train"), memory_cell(row, "eval"))
                table.add_row(*cells)
                console.print("measured: " + " | ".join(cells), markup=False)  # progress: long runs on CPU
    # piped output (logs) has no terminal width: never squeeze the figures into 80 columns there
    (console if console.is_terminal else Console(highlight=False, width=max(console.width, 140))).print(table)
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
