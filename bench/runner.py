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
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from bench import results as store
from bench.data import Splits
from bench.efficiency import count_flops, count_params, measure_fps, synchronize
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


def evaluate(spec: MethodSpec, model: nn.Module, splits: Splits, split: str, hp: Mapping[str, Any],
             device: torch.device, horizon: int, batch_size: int, keep: int = 0) -> tuple[dict[str, float], dict]:
    """Metrics of ``model`` on ``split`` (and the first ``keep`` sequences' inputs/truth/predictions)."""
    model.eval()
    state = MetricState(device=device)
    kept: dict[str, list[np.ndarray]] = {"inputs": [], "truth": [], "pred": []}
    n_kept = 0
    with torch.no_grad():
        for x, y in splits.batches(split, batch_size):
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)[:, :horizon]
            pred = rollout(spec, model, x, hp, y.shape[1]).clamp_(0.0, 1.0)
            state.update(pred, y)
            if n_kept < keep:
                take = min(keep - n_kept, len(x))
                for name, t in (("inputs", x), ("truth", y), ("pred", pred)):
                    kept[name].append((t[:take].float().cpu().numpy() * 255).round().astype(np.uint8))
                n_kept += take
    state.all_reduce()
    model.train()
    stored = {k: np.concatenate(v) for k, v in kept.items() if v}
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


def run_one(key: MethodKey, data: DatasetSpec, seed: int, opts: RunOptions) -> dict[str, Any]:
    """Train, select, test and record one run; returns the stored result dict.

    An existing complete result is returned untouched (``status`` ``skipped`` in the return value)
    unless ``opts.force``; an interrupted run resumes from its last epoch checkpoint.
    """
    device = resolve_device(opts.device)
    spec = key.spec
    hp = key.resolve(data.name, opts.sets, tiny=opts.tiny)
    if opts.epochs is not None:
        hp["epochs"] = opts.epochs
    elif opts.quick:
        hp["epochs"] = min(int(hp["epochs"]), QUICK_EPOCHS)
    if opts.batch_size is not None:
        hp["batch_size"] = opts.batch_size
    if int(hp["epochs"]) < 1 or int(hp["batch_size"]) < 1:
        raise BenchError(f"epochs and batch size must be positive (got {hp['epochs']}, {hp['batch_size']})")
    horizon = opts.pred_len or data.out_frames
    if opts.pred_len:
        hp["pred_len"] = opts.pred_len
    sizes = {**(data.quick_sizes if opts.quick else {}), **dict(opts.sizes)}

    out_dir = store.run_dir(opts.results, data.name, key.label, seed)
    result_path = out_dir / store.RESULT_FILE
    last_path = out_dir / "last.pt"
    if result_path.exists() and not opts.force:
        existing = store.read_json(result_path)
        if existing.get("status") == "complete":
            opts.log(f"{key.label} on {data.name} seed {seed}: result exists at {out_dir}, skipped (use --force to re-run)")
            return {**existing, "status": "skipped"}
    best_path = out_dir / "best.pt"
    if opts.force:
        for stale in (last_path, result_path, best_path):
            stale.unlink(missing_ok=True)

    seed_everything(seed, device)
    train_data = data
    splits = data.load(data, DataConfig(data_dir=opts.data_dir, seed=seed, data_seed=opts.data_seed, sizes=sizes))
    model = spec.create_model(train_data, hp).to(device)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    wall_start = time.perf_counter()

    pretrain_record = None
    if spec.pretrain is not None:
        opts.log(f"{key.label} on {data.name} seed {seed}: pretraining stage")
        ctx = PretrainContext(data=data, splits=splits, hp=hp, device=device, seed=seed,
                              cache_dir=Path(opts.results) / "_cache" / data.name, log=opts.log,
                              check_finite=check_finite, extra={"sizes": sizes, "data_seed": opts.data_seed})
        pretrain_record = spec.pretrain(model, ctx)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, hp)
    batch_size = int(hp["batch_size"])
    steps_per_epoch = math.ceil(splits.size("train") / batch_size)
    total_epochs = int(hp["epochs"])
    scheduler = make_scheduler(optimizer, hp, total_epochs * steps_per_epoch)

    history: list[dict[str, Any]] = []
    best = {"mse": math.inf, "epoch": 0}
    start_epoch = 1
    if last_path.exists():
        ckpt = load_checkpoint(last_path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        history, best = ckpt["history"], ckpt["best"]
        start_epoch = int(ckpt["epoch"]) + 1
        _restore_rng(ckpt["rng"])
        opts.log(f"{key.label} on {data.name} seed {seed}: resuming after epoch {ckpt['epoch']}")

    clip = float(hp.get("clip_grad") or 0.0)
    task = None
    if opts.progress is not None:
        task = opts.progress.add_task(f"{key.label} {data.name} s{seed}", total=total_epochs * steps_per_epoch,
                                      completed=(start_epoch - 1) * steps_per_epoch)
    model.train()
    for epoch in range(start_epoch, total_epochs + 1):
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        n_samples = 0
        for step, (x, y) in enumerate(splits.batches("train", batch_size, epoch), start=1):
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            progress = ((epoch - 1) * steps_per_epoch + step - 1) / max(total_epochs * steps_per_epoch, 1)
            pred, target = spec.train_step(model, x, y, hp, progress)
            loss = spec.loss(pred, target, hp)
            check_finite(loss, step, epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach().double() * len(x)
            n_samples += len(x)
            if task is not None:
                opts.progress.update(task, advance=1)
        synchronize(device)
        train_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        val, _ = evaluate(spec, model, splits, "val", hp, device, horizon, batch_size)
        row = {"epoch": epoch, "train_loss": float(loss_sum.item() / max(n_samples, 1)),
               **{f"val_{k}": v for k, v in val.items()},
               "lr": float(optimizer.param_groups[0]["lr"]), "seconds": train_seconds,
               "eval_seconds": time.perf_counter() - t1, "train_samples": n_samples}
        history.append(row)
        if val["mse"] < best["mse"]:
            best = {"mse": val["mse"], "epoch": epoch}
            store.atomic_torch_save(best_path, model.state_dict())
        store.atomic_torch_save(last_path, {
            "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "history": history, "best": best, "rng": _capture_rng()})
        store.write_history_csv(out_dir / "history.csv", history)
        opts.log(f"{key.label} on {data.name} seed {seed}: epoch {epoch}/{total_epochs} train_loss {row['train_loss']:.5f} "
                 f"val_mse {val['mse']:.3f} ({train_seconds:.1f}s)")
    if task is not None:
        opts.progress.remove_task(task)

    if best_path.exists():
        model.load_state_dict(load_checkpoint(best_path))
    test, stored = evaluate(spec, model, splits, "test", hp, device, horizon, batch_size, keep=NUM_STORED_PREDICTIONS)

    efficiency = measure_efficiency(spec, model, data, hp, splits, device, opts) if opts.efficiency else {}
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
                   "tiny": opts.tiny, "sizes": {s: splits.size(s) for s in ("train", "val", "test")},
                   "data_seed": opts.data_seed, "device": str(device), "pred_len": horizon,
                   "sets": dict(opts.sets), "selection": "best validation MSE"},
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
    return result


def measure_efficiency(spec: MethodSpec, model: nn.Module, data: DatasetSpec, hp: Mapping[str, Any],
                       splits: Splits | None, device: torch.device, opts: RunOptions | None = None,
                       fps_batch: int = 16) -> dict[str, Any]:
    """Params, fvcore FLOPs (one sample) and test fps (fixed batch, warm-up, synchronised)."""
    fps_batch = opts.fps_batch if opts is not None else fps_batch
    flops_model = copy.deepcopy(model).cpu()
    flops, skipped = count_flops(flops_model, spec.flops_inputs(data))
    del flops_model
    example = torch.rand(fps_batch, data.in_frames, *data.frame_shape, device=device,
                         generator=None) if splits is None else None
    if example is None:
        xs = []
        for x, _ in splits.batches("test", fps_batch):
            xs.append(x)
            break
        example = xs[0].to(device)
        if len(example) < fps_batch:  # tiny test sets: repeat to the fixed batch
            example = example.repeat(math.ceil(fps_batch / len(example)), 1, 1, 1, 1)[:fps_batch]
    model.eval()
    fps = measure_fps(lambda x: rollout(spec, model, x, hp, data.out_frames), example)
    model.train()
    return {"params": count_params(model), "trainable_params": count_params(model, trainable_only=True),
            "flops": flops, "flops_skipped": skipped, "fps": fps, "fps_batch": int(example.shape[0]),
            "flops_convention": "fvcore, one sample, multiply-add counted as one FLOP"}
