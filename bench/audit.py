"""The efficiency audit: params, fvcore FLOPs (and skipped operators) and test fps, no training.

Reference figures are the published cost of each configuration, so ``bench audit`` can say how
far ours are from them. They come from the OpenSTL model zoo (Tan et al., "OpenSTL: A
Comprehensive Benchmark of Spatio-Temporal Predictive Learning", NeurIPS 2023 Datasets and
Benchmarks, Moving MNIST table), which counts fvcore FLOPs of one sample as we do; TAU's own Table 6
agrees (SimVP 19.43G, TAU 15.96G, PredRNN 115.94G). PLA-SM's come from its Table V.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import torch

from bench import results as store
from bench.registry import DatasetSpec, MethodKey
from bench.runner import measure_efficiency, resolve_device, seed_everything

#: (method label, dataset) -> (params or None where unpublished, FLOPs, source)
REFERENCE_COST: dict[tuple[str, str], tuple[float | None, float, str]] = {
    ("simvp", "mmnist"): (58.0e6, 19.4e9, "OpenSTL model zoo (SimVP IncepU, MMNIST); TAU Table 6: 19.43G"),
    ("tau", "mmnist"): (44.7e6, 16.0e9, "OpenSTL model zoo (TAU, MMNIST); TAU Table 6: 15.96G"),
    ("convlstm", "mmnist"): (15.0e6, 56.8e9, "OpenSTL model zoo (ConvLSTM, MMNIST)"),
    ("predrnn", "mmnist"): (23.8e6, 116.0e9, "OpenSTL model zoo (PredRNN, MMNIST); TAU Table 6: 115.94G"),
    ("plasm", "mmnist"): (19.3e6, 9.6e9, "PLA-SM Table V"),
    ("tau:no-sa", "mmnist"): (None, 15.30e9, "TAU Table 6 (FLOPs only)"),
    ("tau:no-da", "mmnist"): (None, 15.96e9, "TAU Table 6 (FLOPs only)"),
    ("tau:no-ddr", "mmnist"): (None, 15.96e9, "TAU Table 6 (FLOPs only)"),
    ("tau:conv", "mmnist"): (None, 6.11e9, "TAU Table 6 (FLOPs only)"),
}


def audit_one(key: MethodKey, data: DatasetSpec, device: str = "auto", tiny: bool = False,
              fps_batch: int = 16, seed: int = 0) -> dict[str, Any]:
    """Build the model at its configuration for ``data`` and measure params, FLOPs and fps."""
    dev = resolve_device(device)
    seed_everything(seed, dev)
    hp = key.resolve(data.name, tiny=tiny)
    model = key.spec.create_model(data, hp).to(dev)
    example = torch.rand(fps_batch, data.in_frames, *data.frame_shape, generator=torch.Generator().manual_seed(seed))

    class _OneBatch:  # the audit needs no dataset files: a fixed random batch stands in
        def batches(self, split: str, batch_size: int, epoch: int = 0):
            yield example, None

    figures = measure_efficiency(key.spec, model, data, hp, _OneBatch(), dev, fps_batch=fps_batch)
    record = {
        "dataset": data.name, "label": key.label, "method": key.spec.name, "tiny": tiny,
        **figures,
        "device": str(dev), "device_name": store.describe_device(dev),
        "environment": store.environment(dev),
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    ref = REFERENCE_COST.get((key.label, data.name))
    if ref and not tiny:
        record["reference"] = {"params": ref[0], "flops": ref[1], "source": ref[2],
                               "params_diff": figures["params"] / ref[0] - 1 if ref[0] else None,
                               "flops_diff": figures["flops"] / ref[1] - 1}
    return record
