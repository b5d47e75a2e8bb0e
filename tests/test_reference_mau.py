"""Golden tests: MAU against the authors' code (ZhengChang467/MAU 9e5461c) and OpenSTL's model.

``tools/reference_maupd.py`` ran the authors' ``RNN`` (test-time rollout: all-zero mask), OpenSTL's
identical ``MAU_Model`` for the training loss (the authors' MSE over every one-step prediction)
under the masks the authors' ``schedule_sampling`` drew, eta threaded through three Adam steps as
the authors' ``MAU_run.py`` threads it, and the authors' eta over 80,000 iterations. The seeded
weights are loaded into our model and every stored number must be reproduced in float64.
"""

from __future__ import annotations

import math

import torch
from reference_helpers import dataset, load_fixture
from reference_maupd import load_seeded, rename

from bench.blocks.recurrent import recurrent_train_step, scheduled_sampling_step, ss_eta
from bench.spec.registry import get_method

ATOL = 1e-10
RTOL = 1e-12


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-15)


def golden():
    fx = load_fixture("mau")
    cfg = fx["config"]
    data = dataset(cfg["pre"], cfg["aft"], cfg["C"], cfg["H"], cfg["W"])
    spec = get_method("mau")
    hp = spec.resolve_hparams(data.name, overrides={k: cfg[k] for k in ("num_layers", "num_hidden", "filter_size",
                                                                       "sr_size")} | {"att_window": cfg["tau"]})
    model = spec.create_model(data, hp).double()
    names = {n: rename(n, "mau") for n, *_ in fx["weights"]["tensors"]}
    assert sorted(v for v in names.values() if v) == sorted(n for n, _ in model.named_parameters())
    assert sorted(n for n, v in names.items() if v is None) == ["conv_last_sr.bias", "conv_last_sr.weight",
                                                                "merge.bias", "merge.weight"]
    load_seeded(model, fx["weights"], names)
    return fx, model, spec, hp


def loss_with_mask(spec, model, seq, pre, mask, hp) -> torch.Tensor:
    pred, target = scheduled_sampling_step(model, seq[:, :pre].double(), seq[:, pre:].double(), mask)
    return spec.loss(pred, target, hp)


def test_mau_outputs_loss_and_adam_steps_match_the_authors():
    fx, model, spec, hp = golden()
    pre = fx["config"]["pre"]
    with torch.no_grad():
        diff = (model(fx["seq"][:, :pre].double()) - fx["test_output"]).abs().max().item()
    assert diff <= ATOL, f"test-time rollout: max |ours - authors| = {diff:.3g}"
    assert close(loss_with_mask(spec, model, fx["seq"], pre, fx["train_mask"], hp).item(), fx["train_loss"])
    adam = fx["adam"]
    opt = torch.optim.Adam(model.parameters(), lr=adam["lr"])
    losses = []
    for seq, mask in zip(adam["batches"], adam["masks"]):
        opt.zero_grad()
        loss = loss_with_mask(spec, model, seq, pre, mask, hp)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(close(a, b) for a, b in zip(losses, adam["losses"])), (losses, adam["losses"])


def test_mau_scheduled_sampling_decays_linearly_as_the_authors():
    """eta after the authors' call at iteration k (of 80,000; stop 50,000) is ours at progress (k+1)/80,000.
    OpenSTL HEAD's MAU never stores eta (0.99998 until 50,000, then 0): it would fail at k = 24,999."""
    spec = get_method("mau")
    hp = spec.resolve_hparams("mmnist")
    assert spec.train_step is recurrent_train_step and hp["ss_stop"] == 50_000 / 80_000
    sched = load_fixture("mau")["eta_schedule"]
    for k, eta in sched["eta"].items():
        assert abs(ss_eta((k + 1) / sched["max_iterations"], hp["ss_stop"]) - max(eta, 0.0)) < 1e-9, k


def test_mau_parameter_count_is_the_references_live_weights():
    spec = get_method("mau")
    with torch.device("meta"):
        model = spec.create_model(dataset(10, 10, 1, 64, 64, "mmnist"), spec.resolve_hparams("mmnist"))
    ref = load_fixture("mau")["mmnist"]
    assert sum(p.numel() for p in model.parameters()) == ref["total"] - ref["unused"] == 4_475_329
