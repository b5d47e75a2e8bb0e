"""Train, select on validation, test, and record one run (method x dataset x seed).

Protocol:
1. Hyperparameters resolve from the method's paper configuration for the dataset, its variant and
   overrides (``bench.registry``); ``--epochs``/``--batch-size`` override the paper's values.
2. The seed fixes initialisation and the training stream; validation and test sets are fixed by
   the data seed. On CPU, runs repeat exactly (deterministic algorithms are switched on).
3. An optional pretraining stage (``MethodSpec.pretrain``) runs first; the optimiser is then built
   over the parameters that still require gradients.
4. Every epoch: train with the method's optimiser and schedule (the learning-rate schedule steps per
   iteration), then evaluate on the VALIDATION split. The checkpoint with the lowest validation MSE
   is kept. The test set is touched once, at the end, with that checkpoint.
5. The training loss is checked at every step; a NaN/Inf stops the run with the step named.
6. A checkpoint of the whole training state is written atomically after every epoch, so a killed
   run resumes where it stopped (``last.pt``), and deleted when the run completes.
"""

from __future__ import annotations

import copy
import math
import queue
import random
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from bench import results as store
from bench.data import Splits
from bench.efficiency import count_flops, count_params, measure_fps, synchronize
from bench.distributed import DistInfo, barrier, env_world_size, init_from_env, wrap_for_training
from bench.errors import BenchError, NonFiniteLossError
from bench.metrics import METRIC_CONVENTION, MetricState
from bench.pretrain import PretrainContext
from bench.registry import DataConfig, DatasetSpec, MethodKey, MethodSpec

NUM_STORED_PREDICTIONS = 4  # test sequences whose predictions are stored for qualitative figures
QUICK_EPOCHS = 2


@dataclass
class RunOptions:
    """Options shared by every run of a sweep (the CLI fills these)."""

    results: Path = Path("results")
    epochs: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    quick: bool = False
    tiny: bool = False
    sizes: Mapping[str, int] = field(default_factory=dict)
    data_dir: str | None = None
    data_seed: int = 0
    sets: Mapping[str, Any] = field(default_factory=dict)
    pred_len: int | None = None
    force: bool = False
    fps_batch: int = 16
    efficiency: bool = True
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; gradient scaling for fp16)
    channels_last: bool = False
    compile: bool = False
    log: Callable[[str], None] = print
    progress: Any = None  # a rich.progress.Progress, or None for no bars


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


def check_finite(loss: torch.Tensor, step: int, epoch: int | None = None) -> None:
    if not torch.isfinite(loss).all():
        where = f"epoch {epoch}, step {step}" if epoch is not None else f"step {step}"
        raise NonFiniteLossError(
            f"training loss became {loss.detach().float().cpu().flatten()[0].item()} at {where}; "
            f"lower the learning rate (lr=...) or enable clipping (clip_grad=1.0)"
        )


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
    """Produce batches in a background thread (and pin them for the GPU) while the device computes."""
    if depth <= 0:
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


def evaluate(spec: MethodSpec, model: nn.Module, splits: Splits, split: str, hp: Mapping[str, Any],
             device: torch.device, horizon: int, batch_size: int, keep: int = 0,
             precision: str = "fp32", reduce: bool = True) -> tuple[dict[str, float], dict]:
    """Metrics of ``model`` on ``split`` (and the first ``keep`` sequences' inputs/truth/predictions).

    Metrics accumulate on the device (no per-batch host round trip) and are reduced exactly
    across processes.
    """
    model.eval()
    state = MetricState(device=device)
    kept: dict[str, list[torch.Tensor]] = {"inputs": [], "truth": [], "pred": []}
    n_kept = 0
    with torch.no_grad():
        for x, y in prefetch(splits.batches(split, batch_size), device):
            if y.shape[1] < horizon:
                raise BenchError(f"--pred-len {horizon} exceeds the {y.shape[1]} target frames this dataset "
                                 f"provides; use --pred-len <= {y.shape[1]} or a dataset with longer targets")
            y = y[:, :horizon]
            with autocast(device, precision):
                pred = rollout(spec, model, x, hp, horizon)
            pred = pred.float().clamp_(0.0, 1.0)
            state.update(pred, y)
            if n_kept < keep:
                take = min(keep - n_kept, len(x))
                for name, t in (("inputs", x), ("truth", y), ("pred", pred)):
                    kept[name].append(t[:take].detach())
                n_kept += take
    if reduce:
        state.all_reduce()
    model.train()
    stored = {k: (torch.cat(v).float().cpu().numpy() * 255).round().astype(np.uint8) for k, v in kept.items() if v}
    return state.compute(), stored


def _capture_rng() -> dict[str, Any]:
    """RNG states as tensors and plain values, so checkpoints load with ``weights_only=True``."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _restore_rng(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); a corrupt file is a one-line BenchError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, ...
        raise BenchError(f"checkpoint {path} is corrupt or not a bench checkpoint ({type(exc).__name__}); "
                         f"delete it to start the run afresh") from None


def _first_bad_step(losses: torch.Tensor, start: int, stop: int, info: DistInfo) -> int | None:
    """Index of the first non-finite loss in ``losses[start:stop]`` on any rank (one host sync)."""
    window = losses[start:stop]
    bad = (~torch.isfinite(window)).to(torch.float64)
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    if not bool(bad.any().item()):
        return None
    return start + int(torch.nonzero(bad)[0].item())


def run_one(key: MethodKey, data: DatasetSpec, seed: int, opts: RunOptions) -> dict[str, Any]:
    """Train, select, test and record one run; returns the stored result dict.

    An existing complete result is returned untouched (``status`` ``skipped`` in the return value)
    unless ``opts.force``; an interrupted run resumes from its last epoch checkpoint. A run that
    another process is training right now (its run lock is held) is skipped. Under ``torchrun`` the
    run is data-parallel (:mod:`bench.distributed`) and only rank 0 writes.
    """
    if env_world_size() > 1:  # one torchrun job per key: its ranks share the run
        return _run_one_unlocked(key, data, seed, opts)
    lock = store.RunLock(store.run_dir(opts.results, data.name, key.label, seed))
    if not lock.acquire():
        opts.log(f"{key.label} on {data.name} seed {seed}: another process is running it, skipped")
        return {"status": "skipped", "reason": "another process holds its run lock"}
    try:
        return _run_one_unlocked(key, data, seed, opts)
    finally:
        lock.release()


def _run_one_unlocked(key: MethodKey, data: DatasetSpec, seed: int, opts: RunOptions) -> dict[str, Any]:
    info, device = init_from_env(resolve_device(opts.device))
    main = info.is_main
    log = opts.log if main else (lambda s: None)
    spec = key.spec
    hp = key.resolve(data.name, opts.sets, tiny=opts.tiny)
    if opts.epochs is not None:
        hp["epochs"] = opts.epochs
    elif opts.quick:
        hp["epochs"] = min(int(hp["epochs"]), QUICK_EPOCHS)
    if opts.quick:  # stage budgets too (e.g. PLA-SM's 50 pretraining epochs)
        for name in [k for k in hp if k.endswith("_epochs") and isinstance(hp[k], int)]:
            hp[name] = min(hp[name], QUICK_EPOCHS)
    if opts.batch_size is not None:
        hp["batch_size"] = opts.batch_size
    if int(hp["epochs"]) < 1 or int(hp["batch_size"]) < 1:
        raise BenchError(f"epochs and batch size must be positive (got {hp['epochs']}, {hp['batch_size']})")
    batch_size = int(hp["batch_size"])  # the GLOBAL batch
    if batch_size % info.world_size:
        raise BenchError(f"batch size {batch_size} is not divisible by the {info.world_size} processes; "
                         f"pass --batch-size as a multiple of --nproc_per_node")
    rank_batch = batch_size // info.world_size
    horizon = opts.pred_len or data.out_frames
    if opts.pred_len:
        hp["pred_len"] = opts.pred_len
    sizes = {**(data.quick_sizes if opts.quick else {}), **dict(opts.sizes)}

    out_dir = store.run_dir(opts.results, data.name, key.label, seed)
    result_path, last_path, best_path = out_dir / store.RESULT_FILE, out_dir / "last.pt", out_dir / "best.pt"
    if result_path.exists() and not opts.force:
        existing = store.read_json(result_path)
        if existing.get("status") == "complete":
            log(f"{key.label} on {data.name} seed {seed}: result exists at {out_dir}, skipped (use --force to re-run)")
            if main:
                last_path.unlink(missing_ok=True)  # left by a kill between the result and its clean-up
            return {**existing, "status": "skipped", "reason": "existing result kept (use --force to re-run)"}
    if opts.force and main:
        for stale in (last_path, result_path, best_path):
            stale.unlink(missing_ok=True)
    barrier(info)

    seed_everything(seed, device)
    config = DataConfig(data_dir=opts.data_dir, seed=seed, data_seed=opts.data_seed, sizes=sizes,
                        rank=info.rank, world_size=info.world_size, pred_len=opts.pred_len)
    splits = data.load(data, config)
    sizes_total = {s: _global_size(splits, s, info, device) for s in ("train", "val", "test")}
    model = spec.create_model(data, hp).to(device)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    wall_start = time.perf_counter()

    pretrain_record = None
    if spec.pretrain is not None:
        log(f"{key.label} on {data.name} seed {seed}: pretraining stage")
        ctx = PretrainContext(data=data, splits=splits, hp={**hp, "batch_size": rank_batch}, device=device, seed=seed,
                              cache_dir=Path(opts.results) / "_cache" / data.name if info.world_size == 1 else None,
                              log=log, check_finite=check_finite,
                              extra={"sizes": sizes, "data_seed": opts.data_seed, "world_size": info.world_size})
        pretrain_record = spec.pretrain(model, ctx)
        seed_everything(seed, device)  # the training stage starts from the same RNG state, cached stage or not
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, hp)
    # every rank takes the same number of steps: the smallest shard decides (drops < world_size sequences)
    steps_per_epoch = math.ceil((sizes_total["train"] // info.world_size) / rank_batch)
    total_epochs = int(hp["epochs"])
    scheduler = make_scheduler(optimizer, hp, total_epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=opts.precision == "fp16")

    history: list[dict[str, Any]] = []
    best = {"mse": math.inf, "epoch": 0}
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch = 1
    if last_path.exists():
        ckpt = load_checkpoint(last_path)
        if ckpt.get("hp") != store.to_jsonable(hp):
            raise BenchError(f"the checkpoint {last_path} was made with other hyperparameters (epochs, batch size "
                             f"or --set); re-run with the same options to resume, or with --force to start afresh")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
        history, best = ckpt["history"], ckpt["best"]
        start_epoch = int(ckpt["epoch"]) + 1
        _restore_rng(ckpt["rng"])
        if best_path.exists():
            best_state = load_checkpoint(best_path)
        log(f"{key.label} on {data.name} seed {seed}: resuming after epoch {ckpt['epoch']}")

    step_module = wrap_for_training(model, spec.train_step, hp, info, device)
    if opts.compile:
        step_module = torch.compile(step_module)
    clip = float(hp.get("clip_grad") or 0.0)
    check_every = 1 if device.type == "cpu" else 50  # host syncs for the NaN check; the step found is exact
    task = None
    if opts.progress is not None and main:
        task = opts.progress.add_task(f"{key.label} {data.name} s{seed}", total=total_epochs * steps_per_epoch,
                                      completed=(start_epoch - 1) * steps_per_epoch)
    model.train()
    for epoch in range(start_epoch, total_epochs + 1):
        t0 = time.perf_counter()
        losses = torch.zeros(steps_per_epoch, device=device, dtype=torch.float64)
        n_samples = 0
        checked = 0
        batches = splits.batches("train", rank_batch, epoch)
        for step, (x, y) in enumerate(prefetch(batches, device), start=1):
            if step > steps_per_epoch:
                break
            progress = ((epoch - 1) * steps_per_epoch + step - 1) / max(total_epochs * steps_per_epoch, 1)
            if opts.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, opts.precision):
                pred, target = step_module(x, y, progress)
                loss = spec.loss(pred.float(), target.float(), hp)
            losses[step - 1] = loss.detach().double()
            if step - checked >= check_every:
                bad = _first_bad_step(losses, checked, step, info)
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
            if task is not None:
                opts.progress.update(task, advance=1)
        n_steps = min(step, steps_per_epoch)
        bad = _first_bad_step(losses, checked, n_steps, info)
        if bad is not None:
            check_finite(losses[bad], bad + 1, epoch)
        stats = torch.stack([losses[:n_steps].sum() * rank_batch, torch.tensor(float(n_samples), device=device,
                                                                              dtype=torch.float64)])
        if info.enabled:
            import torch.distributed as dist

            dist.all_reduce(stats)
        synchronize(device)
        train_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        val, _ = evaluate(spec, model, splits, "val", hp, device, horizon, rank_batch, precision=opts.precision)
        row = {"epoch": epoch, "train_loss": float(stats[0].item() / max(stats[1].item(), 1.0)),
               **{f"val_{k}": v for k, v in val.items()},
               "lr": float(optimizer.param_groups[0]["lr"]), "seconds": train_seconds,
               "eval_seconds": time.perf_counter() - t1, "train_samples": int(stats[1].item())}
        history.append(row)
        if val["mse"] < best["mse"]:
            best = {"mse": val["mse"], "epoch": epoch}
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            if main:
                store.atomic_torch_save(best_path, best_state)
        if main:
            store.atomic_torch_save(last_path, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "history": history,
                "hp": store.to_jsonable(hp),
                "best": best, "rng": _capture_rng()})
            store.write_history_csv(out_dir / "history.csv", history)
        log(f"{key.label} on {data.name} seed {seed}: epoch {epoch}/{total_epochs} train_loss {row['train_loss']:.5f} "
            f"val_mse {val['mse']:.3f} ({train_seconds:.1f}s)")
    if task is not None:
        opts.progress.remove_task(task)

    if best_state is not None:
        model.load_state_dict(best_state)
    test, stored = evaluate(spec, model, splits, "test", hp, device, horizon, rank_batch,
                            keep=NUM_STORED_PREDICTIONS if info.world_size == 1 else 0, precision=opts.precision)
    if info.enabled and main:  # the stored sequences are the first test sequences, whatever the sharding
        whole = data.load(data, DataConfig(data_dir=opts.data_dir, seed=seed, data_seed=opts.data_seed, sizes=sizes,
                                           pred_len=opts.pred_len))
        _, stored = evaluate(spec, model, _FirstBatch(whole, NUM_STORED_PREDICTIONS), "test", hp, device, horizon,
                             NUM_STORED_PREDICTIONS, keep=NUM_STORED_PREDICTIONS, precision=opts.precision,
                             reduce=False)
    if not main:
        barrier(info)
        return {"status": "complete", "rank": info.rank, "test": test, "best_epoch": best["epoch"]}

    efficiency = measure_efficiency(spec, model, data, hp, splits, device, opts.fps_batch) if opts.efficiency else {}
    train_secs = [h["seconds"] for h in history]
    efficiency["train_seconds_per_epoch"] = float(np.mean(train_secs)) if train_secs else None
    samples = sum(h["train_samples"] for h in history)
    efficiency["train_samples_per_second"] = samples / sum(train_secs) if train_secs and sum(train_secs) > 0 else None

    result = {
        "schema": store.SCHEMA,
        "status": "complete",
        "key": {"dataset": data.name, "method": spec.name, "variant": key.variant,
                "overrides": dict(key.overrides), "label": key.label, "seed": seed},
        "config": {"hparams": hp, "epochs": total_epochs, "batch_size": batch_size, "quick": opts.quick,
                   "tiny": opts.tiny, "sizes": sizes_total,
                   "data_seed": opts.data_seed, "device": str(device), "pred_len": horizon,
                   "sets": dict(opts.sets), "selection": "best validation MSE",
                   "precision": opts.precision, "channels_last": opts.channels_last, "compile": opts.compile,
                   "world_size": info.world_size,
                   "batch_rule": f"global batch {batch_size} = {info.world_size} process(es) x {rank_batch}; "
                                 f"gradients averaged; lr not scaled"},
        "dataset": {"name": data.name, "in_frames": data.in_frames, "out_frames": data.out_frames,
                    "channels": data.channels, "height": data.height, "width": data.width,
                    "info": dict(getattr(splits, "info", {}))},
        "method": {"name": spec.name, "citation": spec.citation, "recurrent": spec.recurrent},
        "environment": store.environment(device),
        "metric_convention": METRIC_CONVENTION,
        "history": history,
        "best_epoch": best["epoch"],
        "test": test,
        "efficiency": efficiency,
        "pretrain": pretrain_record,
        "timing": {"started": started, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "wall_seconds": time.perf_counter() - wall_start},
    }
    if stored:
        store.atomic_save_npz(out_dir / "predictions.npz", **stored)
    store.atomic_write_json(result_path, result)
    last_path.unlink(missing_ok=True)
    barrier(info)
    return result


def _global_size(splits: Splits, split: str, info: DistInfo, device: torch.device) -> int:
    """Size of a split over all ranks."""
    n = torch.tensor([splits.size(split)], dtype=torch.float64, device=device)
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(n)
    return int(n.item())


class _FirstBatch:
    """The first ``n`` sequences of a split, as one batch."""

    def __init__(self, splits: Splits, n: int):
        self.splits, self.n = splits, n

    def batches(self, split: str, batch_size: int, epoch: int = 0):
        yield next(iter(self.splits.batches(split, self.n, epoch)))


def measure_efficiency(spec: MethodSpec, model: nn.Module, data: DatasetSpec, hp: Mapping[str, Any],
                       splits: Splits, device: torch.device, fps_batch: int = 16) -> dict[str, Any]:
    """Params, fvcore FLOPs (one sample) and test fps on the first test batch (fixed size, warm-up, synchronised)."""
    flops, skipped = count_flops(copy.deepcopy(model).cpu(), spec.flops_inputs(data))
    example, _ = next(iter(splits.batches("test", fps_batch)))
    if len(example) < fps_batch:  # tiny test sets: repeat to the fixed batch
        example = example.repeat(math.ceil(fps_batch / len(example)), 1, 1, 1, 1)[:fps_batch]
    example = example.to(device)
    model.eval()
    fps = measure_fps(lambda x: rollout(spec, model, x, hp, data.out_frames), example)
    model.train()
    return {"params": count_params(model), "trainable_params": count_params(model, trainable_only=True),
            "flops": flops, "flops_skipped": skipped, "fps": fps, "fps_batch": int(example.shape[0]),
            "flops_convention": "fvcore, one sample, multiply-add counted as one FLOP"}
