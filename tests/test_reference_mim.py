"""Golden tests: MIM against OpenSTL's MIM_Model with the authors' per-sequence state.

The fixture (``tools/reference_mim_e3dlstm.py``) ran OpenSTL (c74deb5) with MIM-S's cell state reset
before every call and not detached (the authors' semantics; ``bench.baselines.mim`` docstring),
with perturbed peepholes and norm affines. Our model loads its weights and must reproduce the
test-time rollout, a training step's loss under the reference's scheduled-sampling mask and three
Adam steps, in float64.
"""

from __future__ import annotations

import re

import pytest
import torch
from reference_helpers import load_fixture
from reference_mim_e3dlstm import (
    MIM_RULES,
    MIM_UNUSED,
    adam_losses,
    assert_close,
    assert_losses,
    build,
    load_renamed,
    rename,
)

from bench.baselines.mim import unused_reference_params
from bench.blocks.recurrent import scheduled_sampling_step
from bench.cost.measure import count_flops
from bench.spec.registry import get_method


@pytest.fixture(scope="module")
def fixture():
    return load_fixture("mim")


def golden(fx, part: str):
    cfg = fx["config"] if part == "plain" else fx["ln_config"]
    model, hp, data = build("mim", cfg, layer_norm=(part == "layer_norm"))
    left_out = load_renamed(model, fx[part]["state_dict"], MIM_RULES, MIM_UNUSED)
    return model, hp, data, left_out


@pytest.mark.parametrize("part", ["plain", "layer_norm"])
def test_mim_test_time_rollout_matches_reference(fixture, part):
    model, hp, data, left_out = golden(fixture, part)
    assert len(left_out) == model.num_layers - 1  # each MIM-N cell's never-called conv_last
    entry = fixture[part]
    spec = get_method("mim")
    x = entry["x"].double()
    with torch.no_grad():
        assert_close(spec.predict(model, x, hp), entry["test_output"])
        # a call on another batch in between changes nothing: the state is per sequence (OpenSTL's carries over)
        spec.predict(model, torch.rand_like(x), hp)
        assert_close(spec.predict(model, x, hp), entry["test_output"])


def test_mim_training_step_and_adam_match_reference(fixture):
    model, hp, _, _ = golden(fixture, "plain")
    spec = get_method("mim")
    entry = fixture["plain"]

    def step_loss(x, y, mask):
        pred, target = scheduled_sampling_step(model, x, y, mask)
        return spec.loss(pred, target, hp)

    mask = entry["train_mask"]
    assert 0 < mask.sum() < mask.numel()  # the mask mixes true frames and predictions
    loss = step_loss(entry["x"].double(), entry["y"].double(), mask)
    assert_losses([loss.item()], [entry["train_loss"]])
    # gradients through MIM-S's state over the whole sequence (OpenSTL detaches it every step;
    # with that detach the reference's Adam losses are these, which ours must not match)
    assert_losses(adam_losses(model, entry["adam"], step_loss), entry["adam"]["losses"])
    assert entry["adam_losses_detached"] != entry["adam"]["losses"]


def test_mim_cost_is_the_references_minus_what_it_never_uses(fixture):
    """Params: the reference's minus MIM-N's never-called 1x1 convs; FLOPs: the reference's fvcore count."""
    census = fixture["mmnist"]
    assert (census["total"], census["no_grad"], census["zero_grad"]) == (38_043_648, 98_304, 0)
    mapping, left_out = rename(census["no_grad_names"], MIM_RULES, MIM_UNUSED)
    assert mapping == {} and all(re.match(MIM_UNUSED, n) for n in left_out)
    with torch.device("meta"):
        model, hp, _ = build("mim", census["config"])
    assert sum(p.numel() for p in model.parameters()) == census["total"] - census["no_grad"] == 37_945_344
    assert unused_reference_params(hp) == census["no_grad"]
    flops = fixture["flops"]
    model, hp, data = build("mim", flops["config"])
    assert count_flops(model.float(), get_method("mim").flops_inputs(data))[0] == flops["total"]
