"""Golden tests: SimVP, TAU, ConvLSTM and PredRNN against the authors' reference implementations.

``tools/make_reference_fixtures.py`` ran the reference code (OpenSTL c74deb5; A4Bio/SimVP 4dcd445 for
SimVP's original encoder/decoder) at small configurations of the published architectures and stored
its weights, inputs, outputs and losses (``tests/fixtures/reference``). Here the reference weights
are loaded into our models (the name map is in ``reference_helpers``) and every stored number must
be reproduced in float64: outputs, losses, and the losses of three Adam steps on the same batches
(for the recurrent models: the reference's test-time rollout and its training step with the
scheduled-sampling masks it drew). Full-size parameter counts and the distribution of the
initialisation are compared too.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from reference_helpers import (
    CONVLSTM_UNUSED,
    build_ours,
    load_fixture,
    load_reference,
    param_count,
    reference_names_to_ours,
)

from bench.blocks.recurrent import patchify, scheduled_sampling_step, unpatchify
from bench.methods.tau import differential_divergence, drop_path_rates, tau_loss
from bench.spec.registry import get_method

#: float64 on both sides: the agreement is at rounding level (the measured maxima are ~1e-16).
ATOL = 1e-9
RTOL_LOSS = 1e-9


def max_diff(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape, (tuple(ours.shape), tuple(ref.shape))
    return (ours.double() - ref.double()).abs().max().item()


def assert_close(ours: torch.Tensor, ref: torch.Tensor, atol: float = ATOL) -> None:
    diff = max_diff(ours, ref)
    assert diff <= atol, f"max |ours - reference| = {diff:.3g} > {atol:g}"


def assert_losses(ours: list[float], ref: list[float], rtol: float = RTOL_LOSS) -> None:
    assert len(ours) == len(ref)
    for step, (a, b) in enumerate(zip(ours, ref)):
        assert math.isclose(a, b, rel_tol=rtol, abs_tol=1e-15), f"loss {step}: ours {a!r} vs reference {b!r}"


def adam_losses(model, batches, step_loss, lr, seeds=None) -> list[float]:
    """Adam steps on ``batches``; ``step_loss(x, y, k)`` is the training loss of batch k."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for k, (x, y) in enumerate(batches):
        if seeds is not None:
            torch.manual_seed(seeds[k])
        opt.zero_grad()
        loss = step_loss(x.double(), y.double(), k)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def golden(name: str):
    """Our model with the reference's weights loaded, plus the fixture and our hyperparameters."""
    fx = load_fixture(name)
    model, hp, data = build_ours(name, fx["config"])
    unused = load_reference(name, model, fx["state_dict"])
    return fx, model, hp, data, unused


# --------------------------------------------------------------------------------------------
# SimVP (original release: A4Bio/SimVP; its Inception-UNet equals OpenSTL's MidIncepNet)
# --------------------------------------------------------------------------------------------


def test_simvp_output_loss_and_adam_steps_match_reference():
    fx, model, hp, _, unused = golden("simvp")
    assert unused == []
    spec = get_method("simvp")
    with torch.no_grad():
        assert_close(model(fx["x"].double()), fx["output"])
    loss = spec.loss(model(fx["x"].double()), fx["y"].double(), hp)
    assert_losses([loss.item()], [fx["loss"]])
    losses = adam_losses(model, fx["adam"]["batches"], lambda x, y, k: spec.loss(model(x), y, hp), fx["adam"]["lr"])
    assert_losses(losses, fx["adam"]["losses"])


# --------------------------------------------------------------------------------------------
# TAU (SimVP's original frame around OpenSTL's TAU module; OpenSTL's TAU loss)
# --------------------------------------------------------------------------------------------


def test_tau_output_matches_reference_in_eval_and_train_mode():
    fx, model, hp, _, _ = golden("tau")
    model.eval()  # BatchNorm with the (perturbed) running statistics, no stochastic depth
    with torch.no_grad():
        assert_close(model(fx["x"].double()), fx["output_eval"])
    model.train()  # batch statistics, and the reference's drop-path masks under the same seed
    torch.manual_seed(fx["train_seed"])
    with torch.no_grad():
        assert_close(model(fx["x"].double()), fx["train_output"])


def test_tau_drop_path_rates_are_the_references():
    fx, model, _, _, _ = golden("tau")
    cfg = fx["config"]
    assert drop_path_rates(cfg["N_T"], cfg["drop_path"]) == fx["drop_path_rates"]
    blocks = [m for m in model.modules() if hasattr(m, "drop_path")]
    assert [b.drop_path for b in blocks] == fx["drop_path_rates"]


def test_tau_loss_and_adam_steps_match_reference():
    fx, model, hp, _, _ = golden("tau")
    spec = get_method("tau")
    assert spec.loss is tau_loss and hp["ddr_weight"] == fx["config"]["alpha"]
    pred, y = fx["train_output"], fx["y"].double()
    assert_losses([F.mse_loss(pred, y).item()], [fx["mse"]])
    # the regulariser alone (ddr_weight 1, MSE removed): the reference's mean over B*(T'-1)*C*H*W
    ddr = tau_loss(pred, y, {"ddr_weight": 1.0, "ddr_tau": 0.1}) - F.mse_loss(pred, y)
    assert_losses([ddr.item()], [fx["ddr"]])
    assert_losses([spec.loss(pred, y, hp).item()], [fx["loss"]])
    # the normalisation at the Moving MNIST horizon T' = 10 (the issue's 0.9 factor lived here)
    fixed = fx["ddr_fixed"]
    p, t = fixed["pred"].double(), fixed["target"].double()
    ddr10 = tau_loss(p, t, {"ddr_weight": 1.0, "ddr_tau": 0.1}) - F.mse_loss(p, t)
    assert_losses([ddr10.item()], [fixed["value"]])
    # the full training step: seeded forward (drop-path masks), loss, three Adam steps
    torch.manual_seed(fx["train_seed"])
    assert_losses([spec.loss(model(fx["x"].double()), y, hp).item()], [fx["loss"]])
    adam = fx["adam"]
    losses = adam_losses(model, adam["batches"], lambda x, yy, k: spec.loss(model(x), yy, hp), adam["lr"],
                         adam["seeds"])
    assert_losses(losses, adam["losses"])


def test_ddr_is_the_per_element_mean_the_reference_takes():
    """The DDR term is sum over the T'-1 differences of Eq. 5, divided by (T'-1)*C*H*W (not T'*C*H*W)."""
    fixed = load_fixture("tau")["ddr_fixed"]
    p, t = fixed["pred"].double(), fixed["target"].double()
    per_sequence = differential_divergence(p, t, 0.1)
    assert math.isclose(per_sequence.mean().item() / (9 * 16 * 16), fixed["value"], rel_tol=1e-9)


# --------------------------------------------------------------------------------------------
# Full-size parameter counts and initialisation (SimVP, TAU)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["simvp", "tau"])
def test_full_size_parameter_count_equals_reference(name):
    full = load_fixture(name)["mmnist"]
    assert param_count(name, full["config"]) == full["params"]


def _stat_mismatches(name: str) -> list[str]:
    init = load_fixture(name)["init"]
    model, _, _ = build_ours(name, init["config"])
    ours = dict(model.named_parameters())
    mapping, _ = reference_names_to_ours(name, list(init["stats"]))
    bad = []
    for ref_name, (n, mean, std, lo, hi) in init["stats"].items():
        v = ours[mapping[ref_name]].detach().double().flatten()
        assert v.numel() == n, ref_name
        if n == 1:  # one draw says nothing about a distribution
            continue
        if lo == hi:  # a constant initialisation (norm affines, zero biases, layer scales)
            if not bool((v == lo).all()):
                bad.append(f"{ref_name}: reference constant {lo}, ours not")
            continue
        tol = 0.02 + 4.0 / math.sqrt(n)
        if abs(v.std().item() / std - 1) > tol or abs(v.mean().item() - mean) > 5 * std / math.sqrt(n):
            bad.append(f"{ref_name}: std {v.std().item():.4g} / mean {v.mean().item():.3g} vs reference "
                       f"{std:.4g} / {mean:.3g}")
    return bad


@pytest.mark.parametrize("name", ["simvp", "tau"])
def test_initialisation_distribution_matches_reference(name):
    assert _stat_mismatches(name) == []


# --------------------------------------------------------------------------------------------
# ConvLSTM and PredRNN (OpenSTL models; OpenSTL's test-time mask and training_step)
# --------------------------------------------------------------------------------------------


def _recurrent(name: str, part: str):
    fx = load_fixture(name)
    model, hp, data = build_ours(name, fx["config"], layer_norm=(part == "layer_norm"))
    unused = load_reference(name, model, fx[part]["state_dict"])
    return fx, fx[part], model, hp, data, unused


@pytest.mark.parametrize("part", ["plain", "layer_norm"])
@pytest.mark.parametrize("name", ["convlstm", "predrnn"])
def test_recurrent_test_time_rollout_matches_reference(name, part):
    fx, entry, model, hp, data, unused = _recurrent(name, part)
    assert bool(unused) == (name == "convlstm")  # only ConvLSTM's never-called convolutions are left out
    x = entry["x"].double()
    t_in, t_out, p = data.in_frames, data.out_frames, model.patch_size
    with torch.no_grad():
        raw = model.rollout(patchify(x, p), t_in - 1 + t_out, t_in)[:, t_in - 1:]
        assert_close(unpatchify(raw, p), entry["test_output"])  # the reference returns raw frames
        pred = get_method(name).predict(model, x, hp)  # raw, as the reference returns them
        assert_close(pred, entry["test_output"])


@pytest.mark.parametrize("name", ["convlstm", "predrnn"])
def test_recurrent_training_step_and_adam_match_reference(name):
    fx, entry, model, hp, _, _ = _recurrent(name, "plain")
    spec = get_method(name)

    def step_loss(x, y, mask):
        pred, target = scheduled_sampling_step(model, x, y, mask)
        return spec.loss(pred, target, hp)

    mask = entry["train_mask"]
    assert 0 < mask.sum() < mask.numel()  # the fixture's mask mixes true frames and predictions
    loss = step_loss(entry["x"].double(), entry["y"].double(), mask)
    assert_losses([loss.item()], [entry["train_loss"]])
    adam = entry["adam"]
    losses = adam_losses(model, adam["batches"], lambda x, y, k: step_loss(x, y, adam["masks"][k]), adam["lr"])
    assert_losses(losses, adam["losses"])


def test_convlstm_live_params_are_reference_total_minus_unused():
    """The published 15.0M counts weights the reference defines but never uses (convlstm docstring)."""
    counts = load_fixture("convlstm")["mmnist"]
    assert (counts["total"], counts["unused"]) == (15_083_520, 3_407_872)
    ours = param_count("convlstm", counts["config"])
    assert ours == counts["total"] - counts["unused"] == 11_675_648
    # the weights the reference's backward leaves without gradient are exactly the ones our name map
    # drops: conv_o and conv_last of every cell
    mapping, unused = reference_names_to_ours("convlstm", counts["unused_names"])
    assert mapping == {} and unused == counts["unused_names"]
    assert all(re.match(CONVLSTM_UNUSED, n) for n in unused) and len(unused) == 2 * len(counts["config"]["num_hidden"])


def test_predrnn_params_equal_reference_total():
    counts = load_fixture("predrnn")["mmnist"]
    assert counts["unused"] == 0
    assert param_count("predrnn", counts["config"]) == counts["total"] == 23_838_720
