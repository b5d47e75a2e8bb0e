"""The efficiency audit: params, fvcore FLOPs (and skipped operators) and test fps, no training.

Reference figures are the published cost of each method key, declared by the method itself
(``MethodSpec.published_costs``: the OpenSTL model zoo, which counts fvcore FLOPs of one sample as
we do, TAU's Table 6, PLA-SM's Table V), so ``bench audit`` can say how far ours are from them.
Where a reference exists, the method's ``explain_cost`` hook says where the difference comes from
(:func:`explain_difference`): dead weights of the reference, a count over the training forward or
over a batch, a layout choice. Methods measure these where they can, with the audit's own counter
(:func:`count_flops_of`); e.g. PLA-SM switches each layout choice to the released one and reports
the change. fvcore counts a transposed convolution at its true multiply-add count
(C_in*C_out*k^2 per input site), so none of a gap is a counting artefact.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import torch

from bench import store
from bench.cost.measure import count_flops
from bench.core.host_allocator import keep_freed_memory_on, setting_for
from bench.spec.method import CostQuestion, PublishedCost
from bench.spec.registry import DatasetSpec, MethodKey, get_method, list_methods
from bench.core.platform import resolve_device, seed_everything
from bench.cost.measure import Measured, measure_efficiency

def audit_one(key: MethodKey, data: DatasetSpec, device: str = "auto", tiny: bool = False,
              fps_batch: int = 16, seed: int = 0) -> dict[str, Any]:
    """Build the model at its configuration for ``data`` and measure params, FLOPs and fps."""
    dev = resolve_device(device)
    keep_freed_memory_on(dev)  # as bench run does on CPU, so that audited CPU fps match training runs
    seed_everything(seed, dev)
    hp = key.resolve(data.name, tiny=tiny)
    model = key.spec.create_model(data, hp).to(dev)
    example = torch.rand(fps_batch, data.in_frames, *data.frame_shape, generator=torch.Generator().manual_seed(seed))

    class _OneBatch:  # the audit needs no dataset files: a fixed random batch stands in
        def batches(self, split: str, batch_size: int, epoch: int = 0):
            yield example, None

    figures = measure_efficiency(Measured(key.spec, model, data, hp), _OneBatch(), dev, fps_batch=fps_batch).model_dump()
    record = {
        "dataset": data.name, "label": key.label, "method": key.spec.name, "tiny": tiny,
        **figures,
        "device": str(dev), "device_name": store.describe_device(dev),
        "environment": store.environment(dev),
        "host_allocator": setting_for(dev),
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    ref = published_cost(key, data)
    if ref and not tiny:
        record["reference"] = {"params": ref.params, "flops": ref.flops, "source": ref.source,
                               "params_diff": figures["params"] / ref.params - 1 if ref.params else None,
                               "flops_diff": figures["flops"] / ref.flops - 1,
                               "explanation": explain_difference(key, data, hp, figures, ref)}
    return record


def published_cost(key: MethodKey, data: DatasetSpec) -> PublishedCost | None:
    """The published cost of exactly this method key on ``data`` (the method spec's ``published_costs``)."""
    return next((c for c in key.spec.published_costs if c.key == key.label and c.dataset == data.name), None)


def all_published_costs() -> list[PublishedCost]:
    """Every registered method's published costs (the audit's references)."""
    return [c for name in list_methods() for c in get_method(name).published_costs]


def count_flops_of(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """FLOPs as the audit counts them (fvcore, one sample): what a method's ``explain_cost`` measures with."""
    with torch.random.fork_rng(devices=[]):
        return count_flops(model, inputs)[0]


def explain_difference(key: MethodKey, data: DatasetSpec, hp: dict[str, Any], figures: dict[str, Any],
                       ref: PublishedCost) -> list[str]:
    """Lines saying where the difference to the published cost comes from: the method's own
    ``explain_cost`` hook (empty where the method states none)."""
    if key.spec.explain_cost is None:
        return []
    return list(key.spec.explain_cost(CostQuestion(key, data, hp, figures, ref, count_flops_of)))
