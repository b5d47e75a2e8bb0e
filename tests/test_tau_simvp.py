"""Tests of SimVP (bench.baselines.simvp) and TAU (bench.methods.tau): the DDR loss, the ablation
variants, output horizons, and the full-size Moving MNIST efficiency against the published figures."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bench.blocks.simvp_frame import SpatialEncoder, check_geometry, select_skip
from bench.cost.measure import count_flops, count_params
from bench.errors import BenchError
from bench.methods.tau import (
    ConvBlock,
    DynamicalAttention,
    StaticalAttention,
    TAUBlock,
    TemporalAttentionUnit,
    differential_divergence,
    tau_loss,
)
from bench.spec.registry import get_method
from toy_data import tiny_model, toy_dataset


# --------------------------------------------------------------------------------------------
# Differential divergence regularisation
# --------------------------------------------------------------------------------------------


def ddr_terms_by_loops(pred: torch.Tensor, target: torch.Tensor, tau: float) -> list[list[float]]:
    """Eq. 3-5 written out element by element in float64: for each sequence, every KL term
    p log(p / q) of its T'-1 differences -- each written as the authors' code writes it,
    p * log(p / (q + 1e-12) + 1e-12)."""
    eps = 1e-12
    pred, target = pred.double(), target.double()
    b_size, t_size = pred.shape[:2]
    terms: list[list[float]] = []
    for b in range(b_size):
        seq: list[float] = []
        for i in range(t_size - 1):
            dp = [float(v) for v in (pred[b, i + 1] - pred[b, i]).flatten()]
            dq = [float(v) for v in (target[b, i + 1] - target[b, i]).flatten()]
            zp = sum(math.exp(v / tau) for v in dp)
            zq = sum(math.exp(v / tau) for v in dq)
            for vp, vq in zip(dp, dq):
                p = math.exp(vp / tau) / zp
                q = math.exp(vq / tau) / zq
                seq.append(p * math.log(p / (q + eps) + eps))
        terms.append(seq)
    return terms


def ddr_by_loops(pred: torch.Tensor, target: torch.Tensor, tau: float) -> torch.Tensor:
    """L_reg of Eq. 5 per sequence: the sum of its KL terms."""
    return torch.tensor([sum(seq) for seq in ddr_terms_by_loops(pred, target, tau)], dtype=torch.float64)


def ddr_reference_mean_by_loops(pred: torch.Tensor, target: torch.Tensor, tau: float) -> float:
    """The authors' normalisation: the arithmetic mean of all B*(T'-1)*C*H*W KL terms."""
    terms = [t for seq in ddr_terms_by_loops(pred, target, tau) for t in seq]
    assert len(terms) == pred.shape[0] * (pred.shape[1] - 1) * pred[0, 0].numel()
    return sum(terms) / len(terms)


def test_ddr_matches_direct_computation():
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(2, 4, 2, 3, 3, generator=g)
    target = torch.rand(2, 4, 2, 3, 3, generator=g)
    for tau in (0.1, 1.0):
        got = differential_divergence(pred.double(), target.double(), tau)
        want = ddr_by_loops(pred, target, tau)
        assert got.shape == (2,)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    # float32 path agrees too
    torch.testing.assert_close(differential_divergence(pred, target, 0.1).double(),
                               ddr_by_loops(pred, target, 0.1), rtol=1e-4, atol=1e-6)


def test_ddr_direction_is_prediction_first():
    g = torch.Generator().manual_seed(2)
    pred = torch.rand(1, 3, 1, 4, 4, generator=g)
    target = torch.rand(1, 3, 1, 4, 4, generator=g) ** 3
    forward = differential_divergence(pred.double(), target.double(), 0.1)
    backward = differential_divergence(target.double(), pred.double(), 0.1)
    torch.testing.assert_close(forward, ddr_by_loops(pred, target, 0.1))
    assert not torch.allclose(forward, backward)  # KL is asymmetric: the order matters


def test_ddr_zero_iff_equal_and_positive_otherwise():
    g = torch.Generator().manual_seed(3)
    target = torch.rand(3, 5, 1, 8, 8, generator=g)
    # equal inputs: only the reference's eps guard remains, -(C*H*W - 1) * 1e-12 per difference
    same = differential_divergence(target.double(), target.double(), 0.1)
    torch.testing.assert_close(same, torch.full((3,), -4 * 63 * 1e-12, dtype=torch.float64), rtol=1e-3, atol=0)
    assert abs(tau_loss(target, target.clone(), {"ddr_weight": 0.1, "ddr_tau": 0.1}).item()) < 1e-12
    pred = target + 0.05 * torch.randn(3, 5, 1, 8, 8, generator=g)
    assert bool((differential_divergence(pred, target, 0.1) > 0).all())
    # shifting every frame by the same constant leaves the forward differences unchanged
    torch.testing.assert_close(differential_divergence(target + 0.3, target, 0.1), torch.zeros(3),
                               rtol=0, atol=1e-6)
    # fewer than two frames: no forward differences
    assert torch.equal(differential_divergence(pred[:, :1], target[:, :1], 0.1), torch.zeros(3))


def test_tau_loss_is_mse_plus_weighted_reference_normalised_ddr():
    """loss = MSE + alpha * (mean of the B*(T'-1)*C*H*W KL terms), the authors' code's scaling of Eq. 6."""
    g = torch.Generator().manual_seed(4)
    pred = torch.rand(2, 4, 1, 6, 6, generator=g)
    target = torch.rand(2, 4, 1, 6, 6, generator=g)
    hp = {"ddr_weight": 0.1, "ddr_tau": 0.1}
    mse = sum((float(a) - float(b)) ** 2 for a, b in zip(pred.flatten(), target.flatten())) / pred.numel()
    want = mse + 0.1 * ddr_reference_mean_by_loops(pred, target, 0.1)
    assert math.isclose(tau_loss(pred.double(), target.double(), hp).item(), want, rel_tol=1e-12)
    torch.testing.assert_close(tau_loss(pred, target, hp).double(), torch.tensor(want, dtype=torch.float64),
                               rtol=1e-5, atol=1e-7)
    assert get_method("tau").loss is tau_loss
    # the regulariser has gradients towards the target's temporal differences
    p = pred.clone().requires_grad_(True)
    differential_divergence(p, target, 0.1).sum().backward()
    assert p.grad is not None and p.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------
# Variants (TAU Table 6)
# --------------------------------------------------------------------------------------------


def _kinds(model):
    return {type(m) for m in model.modules()}


def test_tau_variants_build_and_differ_where_they_should():
    data = toy_dataset(4, 4, 1, 16, 16, name="mmnist")
    spec = get_method("tau")
    assert set(spec.variants) == {"no-sa", "no-da", "no-ddr", "conv"}
    _, full, hp_full = tiny_model("tau", data)
    models = {v: tiny_model("tau", data, v)[1:] for v in spec.variants}
    n_full = count_params(full)

    kinds = _kinds(full)
    assert {TAUBlock, TemporalAttentionUnit, StaticalAttention, DynamicalAttention} <= kinds

    no_sa = models["no-sa"][0]
    assert StaticalAttention not in _kinds(no_sa) and DynamicalAttention in _kinds(no_sa)
    assert not any(".sa." in name for name, _ in no_sa.named_parameters())
    assert count_params(no_sa) < n_full

    no_da = models["no-da"][0]
    assert DynamicalAttention not in _kinds(no_da) and StaticalAttention in _kinds(no_da)
    assert not any(".da." in name for name, _ in no_da.named_parameters())
    assert count_params(no_da) < n_full

    conv = models["conv"][0]
    assert not ({TAUBlock, TemporalAttentionUnit, StaticalAttention, DynamicalAttention} & _kinds(conv))
    assert ConvBlock in _kinds(conv)
    n_blocks = sum(isinstance(m, TAUBlock) for m in full.modules())
    assert sum(isinstance(m, ConvBlock) for m in conv.modules()) == n_blocks == hp_full["N_T"]

    # no-ddr: the same network (same seed -> same weights), a different loss
    no_ddr, hp_no_ddr = models["no-ddr"]
    assert hp_no_ddr["ddr_weight"] == 0.0 and hp_full["ddr_weight"] == 0.1
    sd_full, sd_no_ddr = full.state_dict(), no_ddr.state_dict()
    assert sd_full.keys() == sd_no_ddr.keys()
    assert all(torch.equal(sd_full[k], sd_no_ddr[k]) for k in sd_full)
    x = torch.rand(2, 4, 1, 16, 16)
    y = torch.rand(2, 4, 1, 16, 16)
    with torch.no_grad():
        pred = full(x)
    loss_full = spec.loss(pred, y, hp_full)
    loss_no_ddr = spec.loss(pred, y, hp_no_ddr)
    torch.testing.assert_close(loss_no_ddr, F.mse_loss(pred, y))
    assert loss_full.item() > loss_no_ddr.item()

    # every variant runs forward and backward
    for name, (model, _) in models.items():
        out = model(x)
        assert out.shape == (2, 4, 1, 16, 16), name
        out.mean().backward()


def test_unknown_attention_or_translator_is_a_bench_error():
    data = toy_dataset(4, 4, 1, 16, 16, name="mmnist")
    with pytest.raises(BenchError):
        tiny_model("tau", data, attention="none")
    with pytest.raises(BenchError):
        tiny_model("tau", data, translator="lstm")
    with pytest.raises(BenchError):
        tiny_model("tau", data, ddr_tau=0.0)


# --------------------------------------------------------------------------------------------
# Shapes, horizons, geometry
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["simvp", "tau"])
@pytest.mark.parametrize("out_frames", [4, 2, 7])
def test_output_shapes_for_any_horizon(method, out_frames):
    data = toy_dataset(4, out_frames, 2, 16, 16, name="mmnist")
    _, model, _ = tiny_model(method, data)
    x = torch.rand(3, 4, 2, 16, 16)
    out = model(x)
    assert out.shape == (3, out_frames, 2, 16, 16)
    assert torch.isfinite(out).all()


def test_full_size_latent_geometry():
    enc = SpatialEncoder(1, 64, 4)
    latent, skip = enc(torch.zeros(2, 1, 64, 64))
    assert latent.shape == (2, 64, 16, 16) and skip.shape == (2, 64, 64, 64)
    with pytest.raises(BenchError):
        check_geometry(toy_dataset(10, 10, 1, 30, 30, name="mmnist"), 4)


def test_skip_selection_for_other_horizons():
    skip = torch.arange(2 * 3, dtype=torch.float32).reshape(6, 1, 1, 1).expand(6, 2, 2, 2).contiguous()
    assert torch.equal(select_skip(skip, 2, 3, 3), skip)
    out = select_skip(skip, 2, 3, 5)
    assert out.shape == (10, 2, 2, 2)
    # every output frame of sequence b gets the last observed frame (index 3b + 2) of that sequence
    assert torch.equal(out[:, 0, 0, 0], torch.tensor([2.0] * 5 + [5.0] * 5))


# --------------------------------------------------------------------------------------------
# Full-size efficiency vs the published figures (OpenSTL model zoo; TAU paper Table 6)
# --------------------------------------------------------------------------------------------


def _full(method: str, variant: str | None = None):
    data = toy_dataset(10, 10, 1, 64, 64, name="mmnist")
    spec = get_method(method)
    hp = spec.resolve_hparams("mmnist", variant)
    return spec, spec.create_model(data, hp), data


@pytest.mark.parametrize(
    "method,variant,params,flops",
    [
        ("simvp", None, 58.0e6, 19.43e9),  # OpenSTL 58.0M / 19.4G; TAU Table 6: 19.43G
        ("tau", None, 44.7e6, 15.96e9),  # OpenSTL 44.7M / 16.0G; TAU Table 6: 15.96G
        ("tau", "no-sa", None, 15.30e9),  # TAU Table 6, "Ours w/o SA"
    ],
)
def test_full_size_efficiency_matches_published(method, variant, params, flops):
    spec, model, data = _full(method, variant)
    if params is not None:
        assert abs(count_params(model) / params - 1) < 0.02
    total, _ = count_flops(model, spec.flops_inputs(data))
    assert abs(total / flops - 1) < 0.02
