"""``bench perf --data``: the sequences per second the data path delivers, beside what the methods consume.

Delivered: a dataset's training batches as the training loop takes them (:func:`bench.spec.splits.raw_batches`:
uint8 frames, or float32 where the data is float, in the training process; converted to [0, 1] on the
device), iterated epoch after epoch for ``seconds`` (worker start-up included: it recurs every epoch), in
:data:`REPEATS` repeats whose median is the figure (with their range: a shared machine is noisy),
at the batch size given, with each loader setting: the default of a CUDA run (:mod:`bench.spec.batching`:
cached frames and arrays gathered in the training process; Moving MNIST rendered on the GPU) and
0..N worker processes. Page-locked copies and the copy to the GPU are not part of it (they need a GPU).
For file datasets, the first use decodes the frames into the frame cache
(:mod:`bench.datafiles.frame_cache`): its rate is measured too (frames/s, every core), on the
synthetic files rebuilt each time; a user's own data (``--data-dir``) is measured as it is, its cache
never deleted.

On the CPU the host allocator keeps freed memory in the process, as ``bench run`` does there
(:mod:`bench.core.host_allocator`): each batch is a fresh buffer of megabytes, and without it glibc maps
and unmaps one per batch (on the 2-core VM these figures were taken on, a fresh page costs up to 14 us:
Human3.6M 3,500 -> 20,000 sequences/s with the setting).

Needed: :mod:`bench.cost.data_need` (FLOPs and a stated sustained GPU throughput). The ratio is
delivered / the need of the method that needs most samples/s (the cheapest per sample); the target is
at least 3 x. "Processes for 3x" is a linear estimate from the best rate measured per process, for a
machine with more cores (it ignores what the processes share: memory bandwidth, the training
process's side of each hand-over).
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from bench.core.platform import synchronize
from bench.cost.data_need import samples_needed
from bench.datafiles.frame_cache import cache_prefix
from bench.spec.batching import LoaderSettings
from bench.spec.dataset import DataConfig, DatasetSpec
from bench.spec.splits import raw_batches

TARGET = 3.0
REPEATS = 3


@dataclass
class Delivery:
    """Sequences per second of one loader setting."""

    setting: str
    processes: int  # processes making batches (the training process counts when workers = 0)
    repeats: list[float]  # sequences/s of each repeat; the median is the figure
    note: str = ""

    @property
    def sequences_per_s(self) -> float | None:
        return float(statistics.median(self.repeats)) if self.repeats else None

    def shown(self) -> str:
        if not self.repeats:
            return self.note
        return f"{self.sequences_per_s:,.0f} ({min(self.repeats):,.0f}-{max(self.repeats):,.0f})"


@dataclass
class DataSpeed:
    """One dataset's measurements: the settings' rates, the cache build, the methods' needs."""

    dataset: str
    source: str
    deliveries: list[Delivery] = field(default_factory=list)
    cache_build: dict[str, Any] | None = None
    needs: dict[str, float] = field(default_factory=dict)  # method label -> samples/s


def delivery_rates(splits: Any, batch_size: int, seconds: float, device: torch.device | None = None) -> list[float]:
    """:func:`delivery_rate` :data:`REPEATS` times over a third of ``seconds`` each (the machine's noise shows)."""
    return [delivery_rate(splits, batch_size, seconds / REPEATS, device) for _ in range(REPEATS)]


def delivery_rate(splits: Any, batch_size: int, seconds: float, device: torch.device | None = None) -> float:
    """Training sequences per second ``splits`` delivers (module docstring), over at least ``seconds``."""
    start, n, epoch = time.perf_counter(), 0, 1
    while True:
        for x, _ in raw_batches(splits, "train", batch_size, epoch):
            n += len(x)
            if time.perf_counter() - start >= seconds:
                break
        if time.perf_counter() - start >= seconds:
            break
        epoch += 1
    if device is not None:
        synchronize(device)
    return n / (time.perf_counter() - start)


def with_loader(splits: Any, loader: LoaderSettings) -> Any:
    """A copy of ``splits`` whose batches are made as ``loader`` says (its ``loader`` attribute)."""
    out = copy.copy(splits)
    out.loader = loader
    if hasattr(out, "gen"):  # the standard Moving MNIST: its generated splits inside
        out.gen = with_loader(out.gen, loader)
    return out


def build_frame_cache(splits: Any, fresh: bool) -> dict[str, Any] | None:
    """Build the frame cache of ``splits`` as a run does (every core; deleting an old one first when ``fresh``),
    timed; None when the dataset has none (generated, arrays)."""
    store = getattr(splits, "store", None)
    source = getattr(store, "source", None)
    if source is None or not hasattr(store, "prepare"):
        return None
    store.loader = LoaderSettings(build_workers=None)
    if fresh:
        prefix = cache_prefix(source)
        for old in prefix.parent.glob(f"{prefix.name}-*.npy"):
            old.unlink()
    start = time.perf_counter()
    store.prepare()
    seconds = time.perf_counter() - start
    processes = store.loader.for_build()
    return {"frames": source.count, "seconds": seconds, "frames_per_s": source.count / seconds,
            "processes": max(processes, 1), "rebuilt": fresh}


def measure_dataset(data: DatasetSpec, config: DataConfig, settings: "DataSpeedSettings",
                    fresh_cache: bool) -> DataSpeed:
    """Every loader setting's delivery on ``data`` (module docstring)."""
    cuda = settings.device.type == "cuda"
    result = DataSpeed(data.name, settings.source_of(data.name))
    base = data.load(data, config)
    result.cache_build = build_frame_cache(base, fresh_cache)
    generated = hasattr(base, "device") or hasattr(getattr(base, "gen", None), "device")  # renders its sequences
    if generated:
        if cuda:
            on_gpu = data.load(data, replace(config, device=str(settings.device)))
            rates = delivery_rates(on_gpu, settings.batch_size, settings.seconds, settings.device)
            result.deliveries.append(Delivery("default: rendered on the GPU", 1, rates))
        else:
            result.deliveries.append(Delivery("default: rendered on the GPU", 1, [],
                                              "not measured: no CUDA device here"))
    else:
        default = LoaderSettings(workers=None, pin_memory=cuda)
        rates = delivery_rates(with_loader(base, default), settings.batch_size, settings.seconds)
        result.deliveries.append(Delivery(f"default of a CUDA run ({default.for_gather()} workers)",
                                          max(default.for_gather(), 1), rates))
    for w in settings.workers:
        rates = delivery_rates(with_loader(base, LoaderSettings(workers=w, pin_memory=cuda)), settings.batch_size,
                               settings.seconds)
        label = "CPU generator, " if generated else ""
        result.deliveries.append(Delivery(f"{label}{w} worker process{'es' if w != 1 else ''}", max(w, 1), rates))
        settings.log(f"measured: {data.name} {result.deliveries[-1].setting}: {result.deliveries[-1].shown()} "
                     f"sequences/s")
    return result


@dataclass(frozen=True)
class DataSpeedSettings:
    """How ``bench perf --data`` measures: batch, seconds per setting, worker counts, the device a run would
    use, the reference GPU's sustained TFLOP/s, where the data comes from (dataset name -> "synthetic
    (sizes)" or the user's folder) and the log."""

    batch_size: int
    seconds: float
    workers: tuple[int, ...]
    device: torch.device
    sustained_tflops: float
    sources: dict[str, str] = field(default_factory=dict)
    rebuild_caches: bool = False  # the synthetic files' frame caches are rebuilt, to time the build
    log: Callable[[str], None] = print

    def source_of(self, name: str) -> str:
        return self.sources.get(name, "generated")


def verdict(speed: DataSpeed, sustained_tflops: float) -> dict[str, Any]:
    """The fastest need, each setting's ratio to it, and the linear estimate of processes for 3x."""
    if not speed.needs:
        return {"fastest": None}
    label = max(speed.needs, key=speed.needs.get)
    need = speed.needs[label]
    measured = [d for d in speed.deliveries if d.sequences_per_s]
    per_process = max((d.sequences_per_s / d.processes for d in measured), default=None)
    return {"fastest": label, "need": need, "target": TARGET * need,
            "ratios": {d.setting: (d.sequences_per_s / need if d.sequences_per_s else None) for d in speed.deliveries},
            "processes_for_target": math.ceil(TARGET * need / per_process) if per_process else None}


def machine_line() -> str:
    try:
        load = f", load average {os.getloadavg()[0]:.1f}"
    except (OSError, AttributeError):
        load = ""
    return f"{os.cpu_count()} CPU cores{load}"


def needs_for(keys: Sequence[Any], data: DatasetSpec, sustained_tflops: float,
              log: Callable[[str], None]) -> tuple[dict[str, float], dict[str, int]]:
    """Samples/s each method needs on ``data`` and its FLOPs (fvcore, one sample); a method that cannot be
    built for ``data`` is left out with one line."""
    from bench.cost.data_need import method_flops
    from bench.errors import BenchError

    needs, flops = {}, {}
    for key in keys:
        try:
            flops[key.label] = method_flops(key, data)
        except (BenchError, RuntimeError, ValueError) as exc:
            log(f"{data.name} {key.label}: no FLOP count ({type(exc).__name__}: {str(exc).splitlines()[0][:90]})")
            continue
        needs[key.label] = samples_needed(flops[key.label], sustained_tflops)
    return needs, flops


def fixture_sources(names: Sequence[str], root: Path, log: Callable[[str], None]) -> dict[str, str]:
    """Write the synthetic files of the file datasets among ``names`` under ``root`` (once); name -> description."""
    from bench.cost.data_fixtures import SIZES, ensure_fixture

    return {name: f"synthetic {SIZES[name]}" for name in names if ensure_fixture(name, root, log)}


def data_perf_report(keys: Sequence[Any], datasets: Sequence[DatasetSpec], settings: DataSpeedSettings,
                     data_root: str | None, results: Path) -> list[DataSpeed]:
    """Measure every dataset (module docstring), print the tables and store a record under ``results/perf/``."""
    from datetime import datetime, timezone

    from bench import store
    from bench.core.host_allocator import keep_freed_memory_on, setting_for

    keep_freed_memory_on(settings.device)  # as bench run does on the CPU: each batch's buffer is reused memory
    speeds, flops = [], {}
    for data in datasets:
        config = DataConfig(data_dir=data_root, log=settings.log)
        needs, flops[data.name] = needs_for(keys, data, settings.sustained_tflops, settings.log)
        speed = measure_dataset(data, config, settings, fresh_cache=settings.rebuild_caches)
        speed.needs = needs
        speeds.append(speed)
    print_tables(speeds, flops, settings)
    if setting_for(settings.device):
        settings.log(f"host allocator: {setting_for(settings.device)} (bench/core/host_allocator.py)")
    record = {"device": str(settings.device), "batch_size": settings.batch_size, "seconds": settings.seconds,
              "host_allocator": setting_for(settings.device),
              "machine": machine_line(), "sustained_tflops": settings.sustained_tflops, "flops": flops,
              "datasets": [{**_plain(s), "verdict": verdict(s, settings.sustained_tflops)} for s in speeds],
              "environment": store.environment(settings.device),
              "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    store.atomic_write_json(Path(results) / "perf" / f"perf-data-{stamp}.json", record)
    return speeds


def _plain(speed: DataSpeed) -> dict[str, Any]:
    from dataclasses import asdict

    out = asdict(speed)
    for row, d in zip(out["deliveries"], speed.deliveries):
        row["sequences_per_s"] = d.sequences_per_s  # the median of the repeats
    return out


def print_tables(speeds: Sequence[DataSpeed], flops: dict[str, dict[str, int]], settings: DataSpeedSettings) -> None:
    """The delivered/needed table, the frame-cache builds and each method's need (printed with rich)."""
    from rich.console import Console
    from rich.table import Table

    from bench.cost.data_need import FLOPS_PER_COUNTED, REFERENCE

    console = Console(highlight=False, width=max(Console().width, 150))
    table = Table(title=f"bench perf --data: training sequences/s delivered (batches of {settings.batch_size}, "
                        f"{settings.seconds:g} s each) vs the fastest method's need; {machine_line()}")
    for col in ("dataset", "loader setting", "seq/s (min-max)", "fastest method: need/s", "ratio", f">= {TARGET:g}x",
                "processes for 3x"):
        table.add_column(col, justify="right" if col in ("seq/s (min-max)", "ratio", "processes for 3x") else "left")
    for speed in speeds:
        v = verdict(speed, settings.sustained_tflops)
        for k, d in enumerate(speed.deliveries):
            ratio = v["ratios"].get(d.setting) if v["fastest"] else None
            table.add_row(speed.dataset if k == 0 else "", d.setting,
                          d.shown(),
                          (f"{v['fastest']}: {v['need']:,.0f}" if k == 0 else "") if v["fastest"] else "-",
                          f"{ratio:.2f}x" if ratio else "-", ("yes" if ratio >= TARGET else "no") if ratio else "-",
                          str(v["processes_for_target"] or "-") if k == 0 else "")
    console.print(table)
    console.print("data: " + "; ".join(f"{s.dataset}: {s.source}" for s in speeds), soft_wrap=True, markup=False)
    builds = [s for s in speeds if s.cache_build]
    if builds:
        console.print("frame cache (first use of a dataset decodes every frame once): " + "; ".join(
            f"{s.dataset} {s.cache_build['frames']:,} frames in {s.cache_build['seconds']:.1f} s = "
            f"{s.cache_build['frames_per_s']:,.0f} frames/s with {s.cache_build['processes']} process(es)"
            for s in builds), soft_wrap=True, markup=False)
    labels = list(dict.fromkeys(label for s in speeds for label in s.needs))
    needs = Table(title=f"samples/s each method needs on the reference GPU at {settings.sustained_tflops:g} TFLOP/s "
                        f"sustained ({FLOPS_PER_COUNTED} x fvcore GFLOPs per training sample in brackets)")
    needs.add_column("method")
    for s in speeds:
        needs.add_column(s.dataset, justify="right")
    for label in labels:
        needs.add_row(label, *[f"{s.needs[label]:,.0f} ({FLOPS_PER_COUNTED * flops[s.dataset][label] / 1e9:,.0f})"
                               if label in s.needs else "-" for s in speeds])
    console.print(needs)
    console.print(f"reference: {REFERENCE}; sustained {settings.sustained_tflops:g} TFLOP/s (--sustained-tflops). "
                  f"\"processes for 3x\": a linear estimate from the best rate measured per process.",
                  soft_wrap=True, markup=False)
