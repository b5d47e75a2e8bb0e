"""Issue 20: what the spatial-masking pretraining loop really does, and what its cache key covers.

PLA-SM (Li et al., "Pair-wise Layer Attention with Spatial Masking for Video Prediction") III-F/G
and IV-B: every input frame is reconstructed from a copy with floor(r0 H W) pixel locations masked,
each frame independently, freshly drawn at every step of every epoch. The tests capture the
(frames, mask) pairs the real loop hands to the pretraining network (a forward pre-hook on
:class:`~bench.blocks.masked_pretrain.MaskedAutoencoder`) rather than calling the mask function.

The cache key (:func:`bench.blocks.masked_pretrain.pretrain_key`) must change with every hyperparameter the
stage reads and with no other: the list is not written by hand, it is the set of keys the stage
reads from ``ctx.hp`` while it builds and trains the pretraining network (recorded on a real run).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Iterator

import numpy as np
import pytest
import torch

import bench.blocks.masked_pretrain as masked_pretrain
from bench.baselines.simvp import SIMVP_SM
from bench.spec.splits import ArraySplits
from bench.spec.hparams import HParam
from bench.blocks.masked_pretrain import MaskedAutoencoder, pretrain_key, sm_pretrain
from bench.methods.plasm import PLASM_SM
from bench.spec.pretrain import PretrainContext
from bench.spec.registry import get_method
from toy_data import toy_dataset

T_IN, T_OUT, C, H, W = 3, 2, 1, 16, 16
DATA = toy_dataset(T_IN, T_OUT, C, H, W)
N_TRAIN, BATCH, EPOCHS = 8, 4, 3
RECIPES = {"plasm": (PLASM_SM, None), "simvp": (SIMVP_SM, "sm")}


def toy_splits() -> ArraySplits:
    rng = np.random.default_rng(0)
    return ArraySplits({s: (rng.integers(0, 256, (N_TRAIN, T_IN, C, H, W), dtype=np.uint8),
                            rng.integers(0, 256, (N_TRAIN, T_OUT, C, H, W), dtype=np.uint8))
                        for s in ("train", "val", "test")}, seed=0)


def stage_hp(method: str, **overrides: Any) -> dict[str, Any]:
    _, variant = RECIPES[method]
    return get_method(method).resolve_hparams(DATA.name, variant, {"batch_size": BATCH, **overrides}, tiny=True)


def context(hp: Mapping[str, Any], splits: ArraySplits | None = None) -> PretrainContext:
    return PretrainContext(data=DATA, splits=splits or toy_splits(), hp=hp, device=torch.device("cpu"), seed=0,
                           log=lambda text: None)


def model_of(method: str, hp: Mapping[str, Any]) -> torch.nn.Module:
    torch.manual_seed(0)
    return get_method(method).create_model(DATA, dict(hp))


# ------------------------------------------------------------------------------------ the masks


def masks_drawn(method: str, r0: float) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], ArraySplits]:
    """(frames, mask) of every forward pass of the pretraining network during a real stage."""
    hp = stage_hp(method, r0=r0, pretrain_epochs=EPOCHS)
    splits = toy_splits()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def capture(module, args):
        if isinstance(module, MaskedAutoencoder):
            seen.append((args[0].detach().clone(), args[1].detach().clone()))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(capture)
    try:
        recipe, _ = RECIPES[method]
        sm_pretrain(recipe, model_of(method, hp), context(hp, splits))
    finally:
        handle.remove()
    return seen, splits


@pytest.mark.parametrize("method", sorted(RECIPES))
@pytest.mark.parametrize("r0", [0.75, 0.96])
def test_every_frame_of_every_step_of_every_epoch_gets_its_own_exact_mask(method, r0):
    seen, splits = masks_drawn(method, r0)
    steps = math.ceil(N_TRAIN / BATCH)
    assert len(seen) == EPOCHS * steps  # every step of every epoch reconstructs masked frames
    k = math.floor(r0 * H * W + 1e-9)
    expected_inputs = [x for epoch in range(EPOCHS) for x, _ in splits.batches("train", BATCH, epoch)]
    flat = []
    for (frames, mask), x in zip(seen, expected_inputs, strict=True):
        # the network reconstructs this step's input frames, frame i belonging to sequence i // T
        assert torch.equal(frames, x.reshape(-1, C, H, W))
        assert mask.shape == (BATCH * T_IN, 1, H, W) and set(mask.unique().tolist()) <= {0.0, 1.0}
        per_frame = (mask == 0).flatten(1).sum(1)
        assert per_frame.tolist() == [k] * len(per_frame), "each frame masks exactly floor(r0 H W) pixels"
        flat.append(mask.flatten(1))
    masks = torch.cat(flat)  # (epochs * steps * B * T, H * W)
    assert len({tuple(m.tolist()) for m in masks}) == len(masks), "a mask was drawn twice"
    # frames of one sequence are masked independently: the masked sets of two frames overlap by
    # k^2 / (H W) pixels on average (hypergeometric), not by k as one shared mask would
    masked = (masks == 0).reshape(-1, T_IN, H * W).float()
    overlaps = [float((masked[:, i] * masked[:, j]).sum(1).mean()) for i in range(T_IN) for j in range(i + 1, T_IN)]
    independent = k * k / (H * W)
    spread = math.sqrt(independent * (1 - k / (H * W)) * (H * W - k) / (H * W - 1))  # one pair's std
    for overlap in overlaps:
        assert abs(overlap - independent) < 6 * spread / math.sqrt(masked.shape[0]) + 1e-9, (overlap, independent)


# ------------------------------------------------------------------------------------ the cache key


class Recording(Mapping):
    """A read-only hyperparameter mapping that records every key read from it."""

    def __init__(self, values: Mapping[str, Any]):
        self.values, self.read = dict(values), set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def keys_the_stage_reads(method: str, monkeypatch) -> set[str]:
    """The hyperparameters the pretraining stage reads while it builds and trains the network whose
    product is cached (the key function itself stubbed out, the post-load hook left out: it runs
    on a reused product too, so the product does not depend on what it reads)."""
    recipe, _ = RECIPES[method]
    hp = stage_hp(method, pretrain_epochs=1)
    model = model_of(method, hp)
    recording = Recording(hp)
    monkeypatch.setattr(masked_pretrain, "pretrain_key", lambda *args, **kwargs: "stub")
    sm_pretrain(dataclasses.replace(recipe, after_load=None), model, context(recording))
    return {k for k in recording.read if k in hp} - {"pretrain"}  # pretrain only says whether the stage runs


def another_value(decl: HParam, value: Any) -> Any:
    """A valid value of ``decl`` other than ``value``."""
    if decl.kind == "bool":
        return not value
    if decl.kind == "choice":
        return next(c for c in decl.choices if c != value)
    if decl.kind == "int":
        return value + 1
    if decl.kind == "float":
        return value / 2 if value else 0.5
    if decl.kind == "tuple":
        return (*value, value[-1])
    return f"{value}-other"


@pytest.mark.parametrize("method", sorted(RECIPES))
def test_the_cache_key_changes_with_every_hyperparameter_the_stage_reads_and_no_other(method, monkeypatch):
    recipe, _ = RECIPES[method]
    read = keys_the_stage_reads(method, monkeypatch)
    monkeypatch.undo()
    hp = stage_hp(method)
    declared = get_method(method).declarations()
    assert {"r0", "r", "sm", "pretrain_epochs", "pretrain_lr", "batch_size"} <= read  # the recording works
    base = pretrain_key(recipe, DATA, hp, 0, {})
    missed = [k for k in sorted(read) if pretrain_key(recipe, DATA, {**hp, k: another_value(declared[k], hp[k])}, 0,
                                                       {}) == base]
    assert missed == [], f"the {method} pretraining reads {missed} but its cache key ignores them"
    unread = sorted(set(hp) - read - {"pretrain"})
    assert unread, "some hyperparameters (the translator's, the main stage's) are not read by pretraining"
    shared = [k for k in unread if pretrain_key(recipe, DATA, {**hp, k: another_value(declared[k], hp[k])}, 0,
                                                {}) != base]
    assert shared == [], f"{shared} do not change pretraining but split its cache (variants would not share it)"
