"""Golden tests: CrevNet against the authors' Moving MNIST code (rrxi/CrevNet c527888) and OpenSTL v0.3.0.

``tools/reference_crevnet.py`` ran the authors' ``model_mnist.py`` functions: ``plot`` (the test loop
with its warm-up) and ``train`` three times with the script's TWO Adam optimisers, in float64, with
seeded weights and BatchNorm running statistics; and OpenSTL v0.3.0's ``CrevNet_Model`` on 2-channel
16 x 24 frames with its fixed [4, 5, 3] autoencoder. The seeded values are loaded into our model;
our training step (the registry's ``train_step`` and ``loss``) and the harness's ONE optimiser
(``bench.spec.choices.make_optimizer``) must reproduce every number.
"""

from __future__ import annotations

import math

import torch
from reference_crevnet import load_into_ours, our_name
from reference_helpers import dataset, load_fixture

from bench.spec.registry import get_method
from bench.spec.choices import make_optimizer

ATOL = 1e-10
RTOL = 1e-12


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-15)


def ours(part: dict, t_in: int, t_out: int):
    cfg = part["config"]
    spec = get_method("crevnet")
    data = dataset(t_in, t_out, cfg["C"], cfg["H"], cfg["W"])
    hp = spec.resolve_hparams(data.name, overrides={"n_blocks": tuple(cfg["n_blocks"]),
                                                    "predictor_layers": cfg["layers"]})
    model = spec.create_model(data, hp).double()
    load_into_ours(model, part["weights"])
    return spec, model, hp


def training_loss(spec, model, seq: torch.Tensor, t_in: int, hp) -> torch.Tensor:
    seq = seq.double()
    return spec.loss(*spec.train_step(model, seq[:, :t_in], seq[:, t_in:], hp, 0.0), hp)


def rollout(model, seq: torch.Tensor, t_in: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(seq[:, :t_in].double())


def ours_tensors(model) -> dict[str, torch.Tensor]:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def reference_view(tensors: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """Our tensor (or the rows of a fused gate conv: three blocks) that holds the reference tensor ``name``."""
    target, part = our_name(name)
    t = tensors[target].detach()
    return t if part is None else t[part * t.shape[0] // 3:(part + 1) * t.shape[0] // 3]


def assert_buffers(model, buffers: dict[str, torch.Tensor]) -> None:
    tensors = ours_tensors(model)
    for name, ref in buffers.items():
        mine = reference_view(tensors, name)
        if ref.is_floating_point():
            diff = (mine - ref).abs().max().item()
            assert diff <= ATOL, f"{name}: max |ours - reference| = {diff:.3g}"
        else:
            assert torch.equal(mine, ref), f"{name}: {mine} != {ref}"


def test_crevnet_matches_the_authors_test_loop_training_and_two_optimisers():
    part = load_fixture("crevnet")["authors"]
    cfg = part["config"]
    t_in, t_out = cfg["n_past"] + 2, cfg["n_future"]
    spec, model, hp = ours(part, t_in, t_out)
    diff = (rollout(model, part["seq"], t_in) - part["test_output"]).abs().max().item()
    assert diff <= ATOL, f"test loop (with warm-up): max |ours - authors| = {diff:.3g}"

    adam = part["adam"]
    model.train()
    opt = make_optimizer(list(model.parameters()), {**hp, "lr": adam["lr"]})  # ONE Adam, as the harness builds it
    losses = []
    for seq in adam["batches"]:
        opt.zero_grad()
        loss = training_loss(spec, model, seq, t_in, hp)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(close(a, b) for a, b in zip(losses, adam["losses"])), (losses, adam["losses"])
    assert_buffers(model, adam["buffers"])  # BatchNorm running statistics after 3 x (encode + decode) updates
    tensors = ours_tensors(model)
    for name, (total, squares) in adam["moments"].items():  # every parameter after the three steps
        mine = reference_view(tensors, name)
        assert math.isclose(float(mine.sum()), total, rel_tol=1e-10, abs_tol=1e-12), name
        assert math.isclose(float((mine ** 2).sum()), squares, rel_tol=1e-10), name
    diff = (rollout(model, part["seq"], t_in) - part["test_output_trained"]).abs().max().item()
    assert diff <= ATOL, f"test loop after training (updated running statistics): max |diff| = {diff:.3g}"


def test_crevnet_matches_openstl_on_two_channel_non_square_frames():
    part = load_fixture("crevnet")["openstl"]
    cfg = part["config"]
    spec, model, hp = ours(part, cfg["pre"], cfg["aft"])
    out = rollout(model, part["seq"], cfg["pre"])
    diff = (out[:, :, :1] - part["test_output_channel0"]).abs().max().item()
    assert diff <= ATOL, f"test rollout (channel 0, one context stack): max |ours - OpenSTL| = {diff:.3g}"
    model.train()
    assert close(training_loss(spec, model, part["seq"], cfg["pre"], hp).item(), part["train_loss"])
    assert_buffers(model, part["buffers"])


def test_crevnet_parameter_count_is_the_references():
    spec = get_method("crevnet")
    with torch.device("meta"):
        model = spec.create_model(dataset(10, 10, 1, 64, 64, "mmnist"), spec.resolve_hparams("mmnist"))
    assert sum(p.numel() for p in model.parameters()) == 4_997_444  # OpenSTL v0.3.0's CrevNet_Model, counted


def test_crevnet_cost_explanation_is_fvcores_training_mode_count_times_16():
    """OpenSTL traced CrevNet in training mode, where fvcore counts BatchNorm at 5 FLOPs per element
    (bench traces in evaluation mode: 2); explain_cost's per-sequence figure must be that count."""
    import warnings

    from fvcore.nn import FlopCountAnalysis

    from bench.baselines.crevnet import batchnorm_elements, crevnet_flops_inputs, explain_cost
    from bench.cost.measure import count_flops
    from bench.spec.method import CostQuestion, PublishedCost
    from bench.spec.registry import parse_method_key

    key = parse_method_key("crevnet:n_blocks=(1,1):predictor_layers=1")
    data = dataset(4, 2, 1, 16, 16)
    hp = key.resolve(data.name)
    model = key.spec.create_model(data, hp)
    inputs = crevnet_flops_inputs(data)
    evaluated = count_flops(model, inputs)[0]
    model.train()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, inputs)
        analysis.unsupported_ops_warnings(False)
        trained = int(analysis.total())
    assert trained == evaluated + 3 * batchnorm_elements(model, inputs) > evaluated
    published = PublishedCost("crevnet", data.name, 5e6, 16 * trained, "a count over a batch of 16")
    lines = explain_cost(CostQuestion(key, data, hp, {"params": 1, "flops": evaluated}, published,
                                      lambda m, i: count_flops(m, i)[0]))
    assert f"16 x {trained / 1e9:.3f}G = {16 * trained / 1e9:.2f}G (+0.00%)" in lines[1], lines


def test_crevnet_refuses_geometries_it_cannot_encode():
    import pytest

    from bench.errors import BenchError

    spec = get_method("crevnet")
    hp = spec.resolve_hparams("golden", tiny=True)  # two stages: frames divisible by 4, 3-frame stacks
    with pytest.raises(BenchError, match="divisible by 4"):
        spec.create_model(dataset(4, 4, 1, 16, 18), hp)
    with pytest.raises(BenchError, match="at least 3"):
        spec.create_model(dataset(2, 4, 1, 16, 16), hp)
