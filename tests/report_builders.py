"""Synthetic result sets for the report tests, written through the typed result definition.

:func:`make_result` builds a :class:`bench.store.record.RunResult` (with a real
:class:`bench.spec.run_spec.RunSpec`) and :func:`write_result` stores it where the runner would
(``bench.store.layout.run_dir``), with :func:`bench.store.record.write_json_text`, plus a
``predictions.npz``; so every synthetic file is exactly what the runner writes and the report
reads it through the same definition.
"""

from __future__ import annotations

import ast
import json
import statistics
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bench import store
from bench.store.record import (SCHEMA, DatasetInfo, Efficiency, Environment, EpochRecord, MethodInfo, RunResult,
                                 RunSettings, Scoring, Timing, write_json_text)
from bench.spec.run_spec import RunSpec

SIZES = {"train": 8, "val": 4, "test": 4}


def metrics(mse: float, mae: float | None = None, ssim: float = 0.9, psnr: float = 30.0,
            clipped: float | None = None) -> dict[str, float]:
    """A schema-2 ``test`` dict; ``clipped`` is the clipped MSE (default: the MSE itself)."""
    mae = 3 * mse if mae is None else mae
    c = mse if clipped is None else clipped
    return {"mse": mse, "mae": mae, "mse_clipped": c, "mae_clipped": mae * c / mse if mse else mae,
            "mse_pixel": mse / 256, "mae_pixel": mae / 256, "psnr": psnr, "ssim": ssim, "ssim_legacy": ssim + 0.01}


def ramp(value: float, frames: int) -> list[float]:
    """Per-frame values rising through the horizon whose mean is ``value``."""
    return [value * (1 + 0.2 * (t - (frames + 1) / 2) / frames) for t in range(1, frames + 1)]


def spec_of(label: str, seed: int, *, dataset: str = "mmnist", epochs: int = 2, tiny: bool = False,
            quick: bool = False, pred_len: int = 10, hparams: dict | None = None, sets: dict | None = None,
            data_seed: int = 0, sizes: dict | None = None, precision: str = "fp32") -> RunSpec:
    parts = label.split(":")
    variant = next((p for p in parts[1:] if "=" not in p), None)
    overrides = {p.split("=")[0]: ast.literal_eval(p.split("=")[1]) for p in parts[1:] if "=" in p}
    hp = {"epochs": epochs, "batch_size": 16, "lr": 0.01, **(hparams or {}), **overrides, **(sets or {})}
    return RunSpec(dataset=dataset, method=parts[0], variant=variant, overrides=overrides, seed=seed, hparams=hp,
                   sizes=dict(sizes or SIZES), tiny=tiny, quick=quick, data_seed=data_seed, pred_len=pred_len,
                   precision=precision, sets=dict(sets or {}))


def make_result(label: str, seed: int, test: dict[str, float], *, dataset: str = "mmnist", epochs: int = 2,
                tiny: bool = False, quick: bool = False, frames: tuple[int, int] = (10, 10),
                shape: tuple[int, int, int] = (1, 16, 16), digit_source: str | None = "mnist-idx",
                hparams: dict | None = None, sets: dict | None = None, per_frame: dict | None = None,
                flops: float = 1e9, params: int = 1_000_000, fps: Sequence[float] = (100.0,),
                epoch_seconds: Sequence[float] | None = None, device_name: str = "cpu (test)",
                load: float | None = 0.5, val_mse: Sequence[float] | None = None, data_seed: int = 0,
                protocol: str = "published") -> RunResult:
    spec = spec_of(label, seed, dataset=dataset, epochs=epochs, tiny=tiny, quick=quick, pred_len=frames[1],
                   hparams=hparams, sets=sets, data_seed=data_seed)
    c, h, w = shape
    val_mse = list(val_mse or [test.get("mse", 1.0) * (1.5 - 0.5 * e / epochs) for e in range(1, epochs + 1)])
    seconds = list(epoch_seconds or [10.0] * epochs)
    history = [EpochRecord(epoch=e, train_loss=0.1, lr=0.01, seconds=seconds[(e - 1) % len(seconds)],
                           eval_seconds=0.1, train_samples=8, val={"mse": v, "mae": v * 2})
               for e, v in enumerate(val_mse, start=1)]
    if per_frame is None:
        per_frame = {m: ramp(v, frames[1]) for m, v in test.items() if m in ("mse", "mae", "ssim", "psnr")}
    fps = [float(v) for v in fps]
    return RunResult(
        schema=SCHEMA, status="complete", spec=spec, spec_hash=spec.hash,
        method=MethodInfo(name=spec.method),
        environment=Environment(python="3.11", device="cpu", device_name=device_name),
        timing=Timing(started="x", finished="y", wall_seconds=1.0),
        dataset=DatasetInfo(name=dataset, in_frames=frames[0], out_frames=frames[1], channels=c, height=h, width=w,
                            info={} if digit_source is None else {"digit_source": digit_source}, sizes=dict(SIZES)),
        settings=RunSettings(device="cpu"),
        scoring=Scoring(protocol=protocol, text=f"test convention ({protocol}): mse summed over the pixels of a frame"),
        history=history, best_epoch=epochs, test=dict(test), test_per_frame=per_frame,
        efficiency=Efficiency(params=params, trainable_params=params, flops=int(flops), fps=statistics.median(fps),
                              fps_repeats=fps, fps_batch=16, load_average=load,
                              train_seconds_per_epoch=statistics.median(seconds)))


def write_result(root: Path, result: RunResult, predictions: bool = True, stored: int = 2) -> Path:
    """Store ``result`` as the runner does (and ``stored`` test sequences of predictions); its directory."""
    out = store.run_dir(root, result.spec)
    if result.status == "failed":
        out = store.partial_dir(out)
    store.atomic_write_text(out / store.RESULT_FILE, write_json_text(result))
    if predictions and result.status == "complete":
        c, h, w = result.dataset.channels, result.dataset.height, result.dataset.width
        t_in, t_out = result.dataset.in_frames, result.spec.pred_len
        rng = np.random.default_rng(result.spec.seed + len(result.label))
        truth_rng = np.random.default_rng(0)
        inputs = truth_rng.integers(0, 255, (stored, t_in, c, h, w), dtype=np.uint8)
        truth = truth_rng.integers(0, 255, (stored, t_out, c, h, w), dtype=np.uint8)
        pred = rng.integers(0, 255, truth.shape, dtype=np.uint8)
        store.atomic_save_npz(out / "predictions.npz", inputs=inputs, truth=truth, pred=pred)
    return out


def fake_run(root: Path, label: str, seed: int, test: dict[str, float], predictions: bool = True,
             **kwargs: Any) -> Path:
    return write_result(root, make_result(label, seed, test, **kwargs), predictions=predictions)


def failed_run(root: Path, label: str, seed: int, error: str, last_good_epoch: int | None = 1, **kwargs: Any) -> Path:
    done = make_result(label, seed, metrics(1.0), **kwargs)
    failed = RunResult(schema=SCHEMA, status="failed", spec=done.spec, spec_hash=done.spec_hash, method=done.method,
                       environment=done.environment, timing=done.timing, error=error,
                       last_good_epoch=last_good_epoch)
    return write_result(root, failed)


def write_audit(root: Path, dataset: str, label: str, **fields: Any) -> Path:
    record = {"dataset": dataset, "label": label, "method": label.split(":")[0], "tiny": False, **fields}
    path = store.audit_path(root, dataset, label)
    store.atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def edit_result(path: Path, field: str, value: Any) -> None:
    """Set ``field`` (dotted path) of a stored result.json to ``value`` by hand (an edited file)."""
    data = json.loads(path.read_text())
    node = data
    *parents, last = field.split(".")
    for p in parents:
        node = node[p]
    node[last] = value
    path.write_text(json.dumps(data))
