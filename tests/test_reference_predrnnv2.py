"""Golden tests: PredRNN-V2 against OpenSTL's model and method (c74deb5) and the authors' trainer
(thuml/predrnn-pytorch 49d3b0f), in float64 (``tools/reference_predrnnpp_v2.py`` wrote the fixture).

With OpenSTL's departures neutralised (masks replayed, no time-reversed pass): the test-time
rollout (layer norm off and on), one training step mid-schedule and its two terms (MSE, decoupling
loss), three Adam steps with the reverse-scheduled-sampling masks the reference drew. Against the
authors: the time-reversed second pass (``reverse_input``), and the reverse-scheduled-sampling
schedule read off the reference's own function, mapped onto the ``progress`` clock. Then the cost.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from reference_helpers import build_ours, load_fixture, param_count, reference_names_to_ours

from bench.baselines.predrnnv2 import adapter_flops, decoupled_step
from bench.blocks.recurrent import (REFERENCE_ITERATIONS, recurrent_flops_inputs, rss_probabilities,
                                       time_reversed_passes)
from bench.cost.measure import count_flops
from bench.spec.method import training_loss
from bench.spec.registry import get_method

TOL = 1e-10  # float64 on both sides; the measured maxima are ~1e-16


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)


def loss64(spec, out, hp) -> torch.Tensor:
    """:func:`bench.spec.method.training_loss` in float64 (the trainer's version casts to float32)."""
    pred, target, extra = out
    assert torch.equal(training_loss(spec, out, hp), spec.loss(pred.float(), target.float(), hp) + extra.float())
    return spec.loss(pred, target, hp) + extra


def golden(part: str = "plain", **extra):
    """Our model with the reference's weights (PredRNN's name map plus the shared adapter)."""
    fx = load_fixture("predrnnv2")
    entry = fx[part]
    model, hp, data = build_ours("predrnnv2", fx["config"], layer_norm=(part == "layer_norm"),
                                 decouple_beta=fx["config"]["decouple_beta"], **extra)
    names = [n for n in entry["state_dict"] if n != "adapter.weight"]
    mapping, unused = reference_names_to_ours("predrnn", names)
    assert unused == []
    state = {ours: entry["state_dict"][ref].double() for ref, ours in mapping.items()}
    state["adapter.weight"] = entry["state_dict"]["adapter.weight"].double()
    model.load_state_dict(state, strict=True)
    return fx, entry, model, hp, data


@pytest.mark.parametrize("part", ["plain", "layer_norm"])
def test_test_time_rollout_matches_reference(part):
    _, entry, model, hp, _ = golden(part)
    calls = []
    model.adapter.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        pred = get_method("predrnnv2").predict(model, entry["x"].double(), hp)
    assert (pred - entry["test_output"]).abs().max().item() <= TOL
    assert calls == []  # the decoupling term is a training quantity: no adapter at test time


def test_training_step_its_decoupling_term_and_adam_steps_match_reference():
    fx, entry, model, hp, _ = golden()
    spec = get_method("predrnnv2")
    beta = hp["decouple_beta"]
    assert beta == fx["config"]["decouple_beta"] == 0.1
    x, y, mask = entry["x"].double(), entry["y"].double(), entry["train_mask"]
    context = fx["config"]["pre"] - 1
    assert mask.shape[1] == fx["config"]["pre"] + fx["config"]["aft"] - 2  # every step after the first
    for part in (mask[:, :context], mask[:, context:]):  # context and future steps both mix truth and predictions
        assert 0 < part.sum() < part.numel()
    out = decoupled_step(model, x, y, mask, beta)
    assert close(F.mse_loss(out[0], out[1]).item(), entry["train_mse"])
    assert close(out[2].item() / beta, entry["train_decoupling"])  # the decoupling term alone (mean |cos|)
    assert close(loss64(spec, out, hp).item(), entry["train_loss"])
    adam = entry["adam"]
    opt = torch.optim.Adam(model.parameters(), lr=adam["lr"])
    losses = []
    for (bx, by), m in zip(adam["batches"], adam["masks"]):
        opt.zero_grad()
        loss = loss64(spec, decoupled_step(model, bx.double(), by.double(), m, beta), hp)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(close(a, b) for a, b in zip(losses, adam["losses"])), (losses, adam["losses"])


def test_time_reversed_second_pass_matches_the_authors_trainer():
    """The authors' trainer: an Adam step on the sequence, then one on its time reversal, same mask."""
    _, entry, model, hp, _ = golden()
    assert hp["reverse_input"] is True  # the default follows the authors
    spec = get_method("predrnnv2")
    assert spec.train_passes is time_reversed_passes
    rev = entry["reverse_input"]
    opt = torch.optim.Adam(model.parameters(), lr=rev["lr"])
    losses = []
    for (x, y), mask in zip(rev["batches"], rev["masks"]):
        passes = spec.train_passes(x.double(), y.double(), hp)
        assert len(passes) == 2
        for px, py in passes:
            opt.zero_grad()
            loss = loss64(spec, decoupled_step(model, px, py, mask, hp["decouple_beta"]), hp)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert all(close(a, b) for a, b in zip(losses, rev["pass_losses"])), (losses, rev["pass_losses"])


@pytest.mark.parametrize("dataset", ["mmnist", "kth"])
def test_reverse_schedule_is_the_authors_on_the_progress_clock(dataset):
    """r_eta and eta of the reference's reserve_schedule_sampling_exp at the authors' constants, at
    iteration i of their 80,000 = ours at progress i / 80,000 with our default fractions."""
    probe = load_fixture("predrnnv2")["rss"][dataset]
    hp = get_method("predrnnv2").resolve_hparams(dataset)
    s, e, a = hp["rss_start"], hp["rss_end"], hp["rss_alpha"]
    assert [round(v * REFERENCE_ITERATIONS) for v in (s, e, a)] == probe["constants"]
    for itr, r_eta, eta in zip(probe["iters"], probe["r_eta"], probe["eta"]):
        ours = rss_probabilities(itr / REFERENCE_ITERATIONS, s, e, a)
        assert ours == pytest.approx((r_eta, eta), abs=1e-12), itr


def test_params_equal_reference_and_flops_leave_out_its_test_time_adapter():
    fx = load_fixture("predrnnv2")
    full = fx["mmnist"]
    assert full["unused"] == 0
    assert param_count("predrnnv2", full["config"]) == full["total"] == 23_855_104
    _, hp, data = build_ours("predrnnv2", fx["config"])
    torch.manual_seed(0)
    model = get_method("predrnnv2").create_model(data, hp)
    ours = count_flops(model, recurrent_flops_inputs(data))[0]
    # the reference's count (of its training forward, as OpenSTL counts) includes the decoupling adapter
    assert ours == fx["small_flops"] - adapter_flops(hp, data)
