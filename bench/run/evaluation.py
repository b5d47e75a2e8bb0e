"""Scoring a split: the model's rollout against the targets under the scoring protocol of :mod:`bench.metrics`.

:func:`evaluate` refuses non-finite predictions rather than clip them into a finite score, reduces
the metrics exactly across processes, and keeps the first sequences (inputs, truth, clipped
prediction, as uint8) for the qualitative figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from bench.errors import BenchError, NonFiniteLossError
from bench.metrics.state import MetricState
from bench.run.prefetch import prefetch
from bench.spec.choices import autocast
from bench.spec.method import MethodSpec, rollout
from bench.spec.splits import Splits, raw_batches


@dataclass
class Evaluation:
    """Metrics of one split: means over all frames, means per predicted frame, kept sequences."""

    metrics: dict[str, float]
    per_frame: dict[str, list[float]]
    kept: dict[str, np.ndarray]


@dataclass(frozen=True)
class Scorer:
    """A model to score and how: its method (for the rollout), hyperparameters, device, horizon, batch."""

    method: MethodSpec
    model: nn.Module
    hp: Mapping[str, Any]
    device: torch.device
    horizon: int  # predicted frames scored (--pred-len; the dataset's own by default)
    batch_size: int
    precision: str = "fp32"


def evaluate(scorer: Scorer, splits: Splits, split: str, keep: int = 0, reduce: bool = True) -> Evaluation:
    """Score ``scorer.model`` on ``split`` under the scoring protocol (raw MSE/MAE, clipped SSIM/PSNR).

    A non-finite prediction raises NonFiniteLossError (the run fails; clipping would hide it).
    Metrics accumulate on the device and are reduced exactly across processes (unless ``reduce`` is
    False); the first ``keep`` sequences are kept for the qualitative figure.
    """
    spec, model, hp, device, horizon = scorer.method, scorer.model, scorer.hp, scorer.device, scorer.horizon
    model.eval()
    state = MetricState(device=device, horizon=horizon)
    kept: dict[str, list[torch.Tensor]] = {"inputs": [], "truth": [], "pred": []}
    n_kept = 0
    distributed = reduce and torch.distributed.is_available() and torch.distributed.is_initialized()
    nonfinite = torch.zeros((), dtype=torch.float64, device=device)  # every rank learns of any rank's NaN
    with torch.no_grad():
        for x, y in prefetch(raw_batches(splits, split, scorer.batch_size), device):
            if y.shape[1] < horizon:
                raise BenchError(f"--pred-len {horizon} exceeds the {y.shape[1]} target frames this dataset "
                                 f"provides; use --pred-len <= {y.shape[1]} or a dataset with longer targets")
            y = y[:, :horizon]
            with autocast(device, scorer.precision):
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
