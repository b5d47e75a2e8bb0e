"""GPU-hours of a run, estimated from the audit's FLOP count: arithmetic over an assumed throughput.

Work of one run (fvcore FLOPs, one multiply-add counted as one FLOP, as :mod:`bench.cost.measure`
counts them for ``bench audit``; ``F`` = the forward FLOPs of one sequence at the run's configuration,
the method's ``flops_inputs``)::

    training   3 F x training sequences per epoch x epochs       (backward ~ 2 forwards)
    validation   F x validation sequences x epochs x R           (R = rollouts to the horizon:
    test         F x test sequences x R                            ceil(pred_len / predicted frames))

GPU-hours = work / (sustained throughput x 3600). The throughput is an ASSUMPTION, printed with
every estimate and set with ``--tflops``. The default, :data:`DEFAULT_TFLOPS` = 3.2 TFLOP/s at this
counting, is what TAU's authors report on one Tesla V100 (TAU, "Temporal Attention Unit", Sec. 4.6
"Computational Cost": "Our model only requires 2.5 minutes per epoch" on Moving MNIST, batch 16,
10,000 training sequences, Table 1) with TAU's forward at 16.0 GFLOPs a sequence (fvcore; TAU Table
6 prints 15.96G, our audit counts 16.05G): 3 x 16.05e9 x 10,000 / 150 s = 3.2e12 FLOP/s. It is a
2017 GPU in fp32; a newer one is faster, recurrent models (many small kernels) are slower per FLOP.

Not counted: a pretraining stage (``MethodSpec.pretrain``, e.g. PLA-SM's spatial masking, unless the
configuration sets ``pretrain`` false) and the efficiency measurement at the end; runs whose training-set size is known only from the data files
(datasets registering no standard ``sizes``) have no estimate. Both are said in the output.

Counting FLOPs builds the model on the CPU and traces it (seconds for the big recurrent models), so
each configuration's count is cached in ``<results>/_cache/flops/`` under a hash of what decides it
(dataset, method, resolved hyperparameters, the method's code origin and digest).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from bench.core.jsonio import canonical_text
from bench.errors import BenchError
from bench.spec.dataset import DatasetSpec
from bench.spec.run_spec import RunSpec

DEFAULT_TFLOPS = 3.2
THROUGHPUT_SOURCE = ("TAU's authors' V100 figure (Sec. 4.6: 2.5 min per Moving MNIST epoch, TAU at 16.0 GFLOPs "
                     "a sequence)")
TRAIN_FACTOR = 3  # forward + backward


@dataclass(frozen=True)
class RunCost:
    """The arithmetic of one run's estimate (see the module docstring)."""

    forward_flops: int  # one sequence
    train_sequences: int | None  # per epoch; None: known only from the data files
    val_sequences: int | None
    test_sequences: int | None
    epochs: int
    rollouts: int
    pretraining: bool  # the run has a pretraining stage (not counted)

    @property
    def flops(self) -> float | None:
        if None in (self.train_sequences, self.val_sequences, self.test_sequences):
            return None
        train = TRAIN_FACTOR * self.forward_flops * self.train_sequences * self.epochs
        evaluation = self.forward_flops * self.rollouts * (self.val_sequences * self.epochs + self.test_sequences)
        return float(train + evaluation)

    def gpu_hours(self, tflops: float) -> float | None:
        flops = self.flops
        return None if flops is None else flops / (tflops * 1e12) / 3600


def run_cost(spec: RunSpec, data: DatasetSpec, cache_dir: Path | None) -> RunCost:
    """The estimate's inputs for ``spec`` (FLOPs counted once per configuration, cached in ``cache_dir``)."""
    sizes = {split: spec.sizes.get(split, data.sizes.get(split)) for split in ("train", "val", "test")}
    return RunCost(forward_flops=forward_flops(spec, data, cache_dir), train_sequences=sizes["train"],
                   val_sequences=sizes["val"], test_sequences=sizes["test"], epochs=spec.epochs,
                   rollouts=max(1, math.ceil(spec.pred_len / data.out_frames)),
                   pretraining=spec.method_spec().pretrain is not None and bool(spec.hparams.get("pretrain", True)))


def forward_flops(spec: RunSpec, data: DatasetSpec, cache_dir: Path | None) -> int:
    """fvcore FLOPs of one sequence's forward at ``spec``'s configuration (the audit's count)."""
    key = hashlib.sha1(canonical_text({"dataset": data.name, "method": spec.method, "hparams": dict(spec.hparams),
                                       "code": dict(spec.code)}).encode()).hexdigest()[:16]
    path = cache_dir / f"{key}.json" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            cached = json.loads(path.read_text())
            if isinstance(cached.get("flops"), int):
                return cached["flops"]
        except (OSError, ValueError, AttributeError):
            pass
    flops = _count(spec, data)
    if path is not None:
        from bench.core.atomic import atomic_write_json

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, {"flops": flops, "dataset": data.name, "label": spec.label})
        except OSError:
            pass  # a cache: a read-only results directory only costs the count next time
    return flops


def _count(spec: RunSpec, data: DatasetSpec) -> int:
    import torch

    from bench.cost.measure import count_flops

    method = spec.method_spec()
    try:
        with torch.random.fork_rng(devices=[]):
            model = method.create_model(data, dict(spec.hparams))
        return count_flops(model, method.flops_inputs(data))[0]
    except BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - a tracer's failure is reported in one line
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise BenchError(f"cannot count the FLOPs of {spec.label} on {data.name} ({type(exc).__name__}: {first})"
                         ) from None
