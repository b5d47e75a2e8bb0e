"""Parameters, FLOPs (fvcore) and inference throughput of a model.

Conventions (as in the TAU / PLA-SM papers and the OpenSTL model zoo):
- FLOPs are fvcore's count for ONE sample (batch 1) of the method's ``flops_inputs`` (for
  feed-forward methods a (1, T, C, H, W) input). fvcore counts one fused multiply-add as one
  FLOP, so "FLOPs" here are MACs, which is what those tables report.
- Throughput (fps) is test sequences per second at a fixed batch, after warm-up, with the device
  synchronised around each timed region. :func:`fps_repeats` times several repeats so that a
  result carries its spread (the median is the figure; min-max the noise), and :func:`load_average`
  records how busy the machine was.
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from bench.core.platform import synchronize
from bench.spec.dataset import DatasetSpec
from bench.spec.method import MethodSpec, rollout
from bench.store.record import Efficiency


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all of them unless ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[int, dict[str, int]]:
    """fvcore FLOP count of ``model(*inputs)`` and the operators it skipped (name -> occurrences).

    The model is traced in eval mode on the device of its parameters.
    """
    from fvcore.nn import FlopCountAnalysis

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device if any(True for _ in model.parameters()) else torch.device("cpu")
    inputs = tuple(t.to(device) for t in inputs)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analysis = FlopCountAnalysis(model, inputs)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            total = int(analysis.total())
            skipped = dict(Counter(analysis.unsupported_ops()))
    finally:
        model.train(was_training)
    return total, {str(k): int(v) for k, v in sorted(skipped.items())}


def measure_fps(forward: Callable[[torch.Tensor], Any], example: torch.Tensor, warmup: int = 1,
                iters: int = 3, min_seconds: float = 0.0) -> float:
    """Sequences per second of ``forward`` on a fixed batch ``example`` (B sequences).

    Runs ``warmup`` untimed calls, then at least ``iters`` timed calls (and at least
    ``min_seconds``), synchronising the device before and after the timed region.
    """
    device = example.device
    with torch.no_grad():
        for _ in range(warmup):
            forward(example)
        synchronize(device)
        start = time.perf_counter()
        n = 0
        while n < iters or time.perf_counter() - start < min_seconds:
            forward(example)
            n += 1
        synchronize(device)
        elapsed = time.perf_counter() - start
    return n * example.shape[0] / elapsed


def fps_repeats(forward: Callable[[torch.Tensor], Any], example: torch.Tensor, warmup: int = 1,
                repeats: int = 5, min_seconds: float = 0.0) -> list[float]:
    """Sequences per second of each of ``repeats`` timed calls of ``forward`` on ``example``.

    ``warmup`` untimed calls first; each repeat is synchronised before and after and lasts at least
    ``min_seconds`` (calls are repeated within it). Report the median and the min-max spread.
    """
    device = example.device
    out = []
    with torch.no_grad():
        for _ in range(warmup):
            forward(example)
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            n = 0
            while n < 1 or time.perf_counter() - start < min_seconds:
                forward(example)
                n += 1
            synchronize(device)
            out.append(n * example.shape[0] / (time.perf_counter() - start))
    return out


def median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def load_average() -> float | None:
    """The machine's 1-minute load average (None where the platform has none)."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


FPS_REPEATS = 3


@dataclass(frozen=True)
class Measured:
    """A built model to measure: its method, the model, the dataset it was built for and its resolved
    hyperparameters (the rollout reads them)."""

    method: MethodSpec
    model: nn.Module
    data: DatasetSpec
    hp: Mapping[str, Any]


def measure_efficiency(subject: Measured, splits: Any, device: torch.device, fps_batch: int = 16) -> Efficiency:
    """Params, fvcore FLOPs (one sample) and test fps on the first test batch (fixed size, one
    warm-up call, :data:`FPS_REPEATS` synchronised repeats; the median is the figure)."""
    spec, model, data, hp = subject.method, subject.model, subject.data, subject.hp
    flops, skipped = count_flops(copy.deepcopy(model).cpu(), spec.flops_inputs(data))
    example, _ = next(iter(splits.batches("test", fps_batch)))
    if len(example) < fps_batch:  # tiny test sets: repeat to the fixed batch
        example = example.repeat(math.ceil(fps_batch / len(example)), 1, 1, 1, 1)[:fps_batch]
    example = example.to(device)
    model.eval()
    load = load_average()
    repeats = fps_repeats(lambda x: rollout(spec, model, x, hp, data.out_frames), example, repeats=FPS_REPEATS)
    model.train()
    return Efficiency(params=count_params(model), trainable_params=count_params(model, trainable_only=True),
                      flops=flops, flops_skipped=skipped, fps=median(repeats), fps_repeats=repeats,
                      fps_batch=int(example.shape[0]), load_average=load,
                      flops_convention="fvcore, one sample, multiply-add counted as one FLOP")
