"""A toy dataset, tiny PLA-SM configurations and pretraining contexts for the PLA-SM tests
(``tests/test_plasm.py``, ``tests/test_plasm_training.py``)."""

from __future__ import annotations

import numpy as np
import torch

from bench.spec.splits import ArraySplits
from bench.methods.plasm import PLASM
from bench.spec.pretrain import PretrainContext
from bench.spec.registry import DatasetSpec, get_method


T_IN, T_OUT, C, H, W = 3, 2, 1, 16, 16
DATA = DatasetSpec(name="toy", in_frames=T_IN, out_frames=T_OUT, channels=C, height=H, width=W,
                   load=lambda s, c: None)


def make_splits(n: int = 8, seed: int = 0) -> ArraySplits:
    rng = np.random.default_rng(seed)
    arrays = {
        split: (rng.integers(0, 256, (n, T_IN, C, H, W), dtype=np.uint8),
                rng.integers(0, 256, (n, T_OUT, C, H, W), dtype=np.uint8))
        for split in ("train", "val", "test")
    }
    return ArraySplits(arrays, seed=seed)


def tiny_hp(variant: str | None = None, **overrides) -> dict:
    return get_method("plasm").resolve_hparams(DATA.name, variant, overrides, tiny=True)


def build(hp: dict, seed: int = 0) -> PLASM:
    torch.manual_seed(seed)
    return get_method("plasm").create_model(DATA, hp)


def make_ctx(hp: dict, cache_dir=None, seed: int = 0, steps: list | None = None, **extra) -> PretrainContext:
    record = steps if steps is not None else []
    return PretrainContext(data=DATA, splits=make_splits(), hp=hp, device=torch.device("cpu"), seed=seed,
                           cache_dir=cache_dir, log=lambda text: None,
                           check_finite=lambda loss, step: record.append((float(loss.detach()), step)), extra=dict(extra))


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
