"""What a method would consume on a reference GPU: training samples per second, from its FLOPs.

need = sustained FLOP/s / training FLOPs per sample, where

- FLOPs per sample: the audit's count (:func:`bench.cost.measure.count_flops`: fvcore, one sample of
  the method's ``flops_inputs``, one multiply-add counted as one FLOP, as the papers' tables do), so
  one training sample costs 6 x that count in real floating-point operations: 2 per multiply-add, and
  the backward pass about twice the forward (the usual 3 x forward for training);
- the reference GPU: an NVIDIA H100 SXM, whose dense bf16 tensor-core peak is 989.4 TFLOP/s (NVIDIA's
  H100 datasheet), sustained at a third of its peak (:data:`SUSTAINED_FRACTION`; convolutional video
  models with small channel counts and recurrent ones stay well below peak), 330 TFLOP/s. ``bench perf
  --data --sustained-tflops X`` states another.

This is an estimate of the consumption side (no GPU needs to be present); what the data path delivers
is measured (:mod:`bench.cost.data_speed`).

FLOP counts of big recurrent models take minutes to trace (PredRNN++ on KTH: about 100 s), so counts are
cached in ``<cache>/flops-v1.json`` (``$BENCH_CACHE``, else ``~/.cache/bench``), keyed by the method key,
the dataset's geometry, the resolved hyperparameters, the digest of the method's builder file and the
torch and fvcore versions; delete the file to count again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
from typing import Any

import torch

from bench.core.atomic import atomic_write_json
from bench.core.jsonio import canonical_text
from bench.cost.measure import count_flops
from bench.datafiles.identity import cache_root
from bench.spec.registry import DatasetSpec, MethodKey, method_code

PEAK_TFLOPS = 989.4  # NVIDIA H100 SXM5, dense bf16 tensor-core peak
SUSTAINED_FRACTION = 1 / 3
SUSTAINED_TFLOPS = round(PEAK_TFLOPS * SUSTAINED_FRACTION)  # 330
FLOPS_PER_COUNTED = 6  # fvcore counts a multiply-add as one: x2 for FLOPs, x3 for forward + backward
REFERENCE = (f"NVIDIA H100 SXM, bf16 dense peak {PEAK_TFLOPS:g} TFLOP/s, sustained a third of it; a training "
             f"sample costs {FLOPS_PER_COUNTED} x its fvcore count (2 FLOPs a multiply-add, forward + backward = 3 x "
             f"forward)")
CACHE_FILE = "flops-v1.json"


def samples_needed(flops: int, sustained_tflops: float = SUSTAINED_TFLOPS) -> float:
    """Training samples per second the reference GPU consumes for a method of ``flops`` (fvcore, one sample)."""
    return sustained_tflops * 1e12 / (FLOPS_PER_COUNTED * flops)


def _version(package: str) -> str:
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return "?"


def _key(key: MethodKey, data: DatasetSpec, hp: dict[str, Any]) -> str:
    text = canonical_text({"label": key.label, "dataset": data.name, "frames": [data.in_frames, data.out_frames],
                           "shape": list(data.frame_shape), "hparams": hp,
                           "code": method_code(key.spec.name).get("builder_file_sha256"),
                           "torch": torch.__version__, "fvcore": _version("fvcore")})
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _read_cache() -> dict[str, int]:
    try:
        data = json.loads((cache_root() / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, int)} if isinstance(data, dict) else {}


def method_flops(key: MethodKey, data: DatasetSpec) -> int:
    """The audit's FLOP count of ``key`` on ``data`` (fvcore, one sample, paper size), through the cache."""
    hp = key.resolve(data.name)
    cache_key = _key(key, data, hp)
    cached = _read_cache()
    if cache_key in cached:
        return cached[cache_key]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = key.spec.create_model(data, hp)
        flops = count_flops(model, key.spec.flops_inputs(data))[0]
    cached = {**_read_cache(), cache_key: int(flops)}
    try:
        atomic_write_json(cache_root() / CACHE_FILE, cached)
    except OSError:
        pass  # a read-only cache costs a recount next time, nothing else
    return int(flops)
