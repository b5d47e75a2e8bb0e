"""Golden tests: PredRNN++ against OpenSTL's fixed causal LSTM (c74deb5) and, for the ``openstl-v02``
variant, OpenSTL v0.2.0's cell (41831fa), in float64 (``tools/reference_predrnnpp_v2.py`` wrote the
fixture): the test-time rollout, one training step with the scheduled-sampling mask the reference
drew, three Adam steps, the parameter count (the reference's minus its never-called ``conv_o``)
and the fvcore FLOPs.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from reference_helpers import build_ours, load_fixture, param_count

from bench.baselines.predrnnpp import GHU_INIT, dead_conv_o_params
from bench.blocks.recurrent import recurrent_flops_inputs, scheduled_sampling_step
from bench.cost.measure import count_flops
from bench.spec.registry import get_method

TOL = 1e-10  # float64 on both sides; the measured maxima are ~1e-16
#: Reference (OpenSTL PredRNNpp_Model) name -> ours; ``conv_o`` is defined there and never called.
NAME_MAP = [
    (r"^cell_list\.(\d+)\.conv_(x|h|c|m|c2m|om)\.0\.weight$", r"cells.\1.conv_\2.weight"),
    (r"^cell_list\.(\d+)\.conv_last\.weight$", r"cells.\1.conv_fuse.weight"),
    (r"^gradient_highway\.z_concat\.0\.weight$", "ghu.conv_z.weight"),
    (r"^gradient_highway\.x_concat\.0\.weight$", "ghu.conv_x.weight"),
    (r"^conv_last\.weight$", "readout.weight"),
]
UNUSED = r"^cell_list\.\d+\.conv_o\.0\.weight$"
VERSIONS = {"head": {}, "v020": {"c_gate_input": "m"}}  # our hyperparameters for each reference cell


def to_ours(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    mapped, unused = {}, []
    for name, value in state.items():
        if re.match(UNUSED, name):
            unused.append(name)
            continue
        new = next((re.sub(p, r, name) for p, r in NAME_MAP if re.match(p, name)), None)
        assert new is not None, f"reference parameter {name!r} has no counterpart"
        mapped[new] = value.double()
    return mapped, unused


def golden(version: str):
    fx = load_fixture("predrnnpp")
    model, hp, data = build_ours("predrnnpp", fx["config"], **VERSIONS[version])
    state, unused = to_ours(fx["state_dict"])
    model.load_state_dict(state, strict=True)
    return fx, fx[version], model, hp, data, unused


def max_diff(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape, (tuple(ours.shape), tuple(ref.shape))
    return (ours.double() - ref.double()).abs().max().item()


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)


@pytest.mark.parametrize("version", ["head", "v020"])
def test_test_time_rollout_matches_reference(version):
    fx, entry, model, hp, _, unused = golden(version)
    assert len(unused) == len(fx["config"]["num_hidden"])  # only the never-called conv_o of every cell
    with torch.no_grad():
        pred = get_method("predrnnpp").predict(model, fx["x"].double(), hp)
    assert max_diff(pred, entry["test_output"]) <= TOL
    # the two cells really differ on these weights (so each test pins its own cell)
    other = fx["v020" if version == "head" else "head"]["test_output"]
    assert max_diff(pred, other) > 1e-5


@pytest.mark.parametrize("version", ["head", "v020"])
def test_training_step_and_adam_steps_match_reference(version):
    fx, entry, model, hp, _, _ = golden(version)
    spec = get_method("predrnnpp")

    def step_loss(x, y, mask):
        pred, target = scheduled_sampling_step(model, x.double(), y.double(), mask)
        return spec.loss(pred, target, hp)

    mask = entry["train_mask"]
    assert 0 < mask.sum() < mask.numel()
    assert close(step_loss(fx["x"], fx["y"], mask).item(), entry["train_loss"])
    adam = entry["adam"]
    opt = torch.optim.Adam(model.parameters(), lr=adam["lr"])
    losses = []
    for (x, y), m in zip(adam["batches"], adam["masks"]):
        opt.zero_grad()
        loss = step_loss(x, y, m)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(close(a, b) for a, b in zip(losses, adam["losses"])), (losses, adam["losses"])


def test_params_are_reference_minus_its_dead_conv_o_and_flops_agree():
    fx = load_fixture("predrnnpp")
    full = fx["mmnist"]
    cfg = full["config"]
    assert (full["total"], full["unused"]) == (38_584_320, 3_276_800)  # published 38.6M counts the dead weights
    assert full["unused_names"] == [f"cell_list.{k}.conv_o.0.weight" for k in range(len(cfg["num_hidden"]))]
    dead = len(cfg["num_hidden"]) * dead_conv_o_params(cfg["num_hidden"][0], cfg["filter_size"])
    assert dead == full["unused"]  # what bench audit's explanation adds back
    assert param_count("predrnnpp", cfg) == full["total"] - full["unused"] == 35_307_520
    # FLOPs count what runs: equal to the reference's fvcore count (small configuration; the full
    # size, 171,735,777,280 in the fixture, is what `bench audit` reports)
    model, data = fresh_model(fx["config"])
    assert count_flops(model, recurrent_flops_inputs(data))[0] == fx["small_flops"]


def fresh_model(cfg, **extra):
    """Our model at a fixture configuration as the builder initialises it (float32)."""
    _, hp, data = build_ours("predrnnpp", cfg, **extra)
    torch.manual_seed(0)
    return get_method("predrnnpp").create_model(data, hp), data


def test_ghu_initialisation_is_the_references():
    """Uniform in +-0.001, as the reference's (whose stored GHU weights are scaled by ghu_scale)."""
    fx = load_fixture("predrnnpp")
    model, _ = fresh_model(fx["config"])
    for ours, ref in (("conv_z", "z_concat"), ("conv_x", "x_concat")):
        theirs = fx["state_dict"][f"gradient_highway.{ref}.0.weight"] / fx["ghu_scale"]
        for w in (getattr(model.ghu, ours).weight, theirs):
            assert w.abs().max() <= GHU_INIT * (1 + 1e-6)
            assert w.std().item() == pytest.approx(GHU_INIT / math.sqrt(3), rel=0.1)
