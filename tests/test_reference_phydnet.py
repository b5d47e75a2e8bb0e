"""Golden tests: PhyDNet against the authors' code (vincent-leguen/PhyDNet 23a992d) and OpenSTL's.

``tools/reference_maupd.py`` ran the authors' modules at reduced widths (their own classes), their
test-time loop and their ``train_on_batch`` (moment cast neutralised, see that script) in float64,
and OpenSTL's ``PhyDNet_Model`` at a 2-channel, patch-2 geometry. The seeded weights are loaded
into our model here and every stored number must be reproduced: outputs to 1e-10, losses to
float64 rounding (1e-12 relative), with teacher forcing on and off, and three Adam steps.
"""

from __future__ import annotations

import math

import torch
from reference_helpers import dataset, load_fixture
from reference_maupd import load_seeded, rename

from bench.baselines.phydnet import TF_STOP, moment_loss, phydnet_loss, teacher_forcing_mask
from bench.blocks.recurrent import scheduled_sampling_step, ss_eta
from bench.spec.registry import get_method

ATOL = 1e-10
RTOL = 1e-12


def close(a: float, b: float, rtol: float = RTOL) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-15)


def golden(part: str):
    """Our PhyDNet at the fixture's configuration with the reference's seeded weights (float64)."""
    fx = load_fixture("phydnet")[part]
    cfg = fx["config"]
    data = dataset(cfg["pre"], cfg["aft"], cfg["C"], cfg["H"], cfg["W"])
    spec = get_method("phydnet")
    hp = spec.resolve_hparams(data.name, overrides={"enc_width": cfg["enc_width"], "patch_size": cfg["patch_size"],
                                                    "convlstm_hidden": tuple(cfg["hidden"])})
    model = spec.create_model(data, hp).double()
    names = {n: rename(n, "phydnet") for n, *_ in fx["weights"]["tensors"]}
    assert sorted(names.values()) == sorted(n for n, _ in model.named_parameters()), "weights not covered one to one"
    load_seeded(model, fx["weights"], names)
    return fx, model, spec, hp


def train_loss(model, x, y, forced: bool) -> torch.Tensor:
    mask = torch.full((x.shape[0], y.shape[1] - 1), float(forced))
    pred, target = scheduled_sampling_step(model, x.double(), y.double(), mask)
    return phydnet_loss(pred, target, {}) + moment_loss(model.phycell.conv1.weight)


def adam_losses(model, adam) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=adam["lr"])
    out = []
    for (x, y), forced in zip(adam["batches"], adam["forced"]):
        opt.zero_grad()
        loss = train_loss(model, x, y, forced)
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out


def test_phydnet_outputs_losses_and_adam_steps_match_the_authors():
    fx, model, spec, hp = golden("authors")
    with torch.no_grad():
        diff = (model(fx["x"].double()) - fx["test_output"]).abs().max().item()
    assert diff <= ATOL, f"test-time rollout: max |ours - authors| = {diff:.3g}"
    assert close(moment_loss(model.phycell.conv1.weight).item(), fx["moment_loss"])
    for forced, key in ((True, "loss_forced"), (False, "loss_free")):
        assert close(train_loss(model, fx["x"], fx["y"], forced).item(), fx[key]), key
    # the registered train step: ratio 1 at progress 0 (coin always true), 0 from tf_stop on
    for progress, key in ((0.0, "loss_forced"), (1.0, "loss_free")):
        pred, target, extra = spec.train_step(model, fx["x"].double(), fx["y"].double(), hp, progress)
        assert close((spec.loss(pred, target, hp) + extra).item(), fx[key]), key
    # the authors' own float32 moment cast moves the loss by ~1e-9 relative, nothing else does
    assert not close(fx["loss_forced"], fx["loss_float32_moments"])
    assert close(fx["loss_forced"], fx["loss_float32_moments"], rtol=1e-7)
    losses = adam_losses(model, fx["adam"])
    assert all(close(a, b) for a, b in zip(losses, fx["adam"]["losses"])), (losses, fx["adam"]["losses"])


def test_phydnet_matches_openstl_at_patch_2_with_two_channels():
    fx, model, _, _ = golden("openstl")
    with torch.no_grad():
        diff = (model(fx["x"].double()) - fx["test_output"]).abs().max().item()
    assert diff <= ATOL, f"max |ours - OpenSTL| = {diff:.3g}"
    assert close(train_loss(model, fx["x"], fx["y"], True).item(), fx["loss_forced"])
    losses = adam_losses(model, fx["adam"])
    assert all(close(a, b) for a, b in zip(losses, fx["adam"]["losses"])), (losses, fx["adam"]["losses"])


def test_phydnet_parameter_count_and_teacher_forcing_schedule():
    spec = get_method("phydnet")
    data = dataset(10, 10, 1, 64, 64, "mmnist")
    with torch.device("meta"):
        model = spec.create_model(data, spec.resolve_hparams("mmnist"))
    assert sum(p.numel() for p in model.parameters()) == load_fixture("phydnet")["authors"]["mmnist_params"]
    # the authors' ratio max(0, 1 - 0.003 * epoch) over their 2001 epochs, on the progress clock
    assert spec.resolve_hparams("mmnist")["tf_stop"] == TF_STOP
    for epoch in (0, 1, 100, 333, 334, 1000, 2000):
        assert abs(ss_eta(epoch / 2001, TF_STOP) - max(0.0, 1 - 0.003 * epoch)) < 1e-12
    # one coin per batch: every decoder step of every sequence is forced, or none is
    outcomes = set()
    for seed in range(16):
        torch.manual_seed(seed)
        mask = teacher_forcing_mask(4, 9, ss_eta(TF_STOP / 2, TF_STOP), "cpu")
        assert mask.shape == (4, 9) and bool((mask == mask[0, 0]).all())
        outcomes.add(mask[0, 0].item())
    assert outcomes == {0.0, 1.0}


def test_the_training_loop_adds_the_moment_loss():
    """bench's epoch loop (bench.run.epoch.train_epoch) optimises the whole objective, moment term included."""
    from test_masked_pretrain import DATA, splits

    from bench.run.distributed import DistInfo, wrap_for_training
    from bench.run.epoch import Trainer, train_epoch
    from bench.spec.choices import make_scheduler

    spec = get_method("phydnet")
    hp = spec.resolve_hparams(DATA.name, overrides={"batch_size": 4, "lr": 1e-12, "schedule": "none"}, tiny=True)
    torch.manual_seed(0)
    model = spec.create_model(DATA, hp)
    data = splits()
    x, y = next(iter(data.batches("train", 4, 1)))
    with torch.no_grad():  # progress 0: teacher-forcing ratio 1, whatever the coin
        pred, target, extra = spec.train_step(model, x, y, hp, 0.0)
        expected = (spec.loss(pred, target, hp) + extra).item()
    opt = torch.optim.SGD(model.parameters(), lr=1e-12)
    trainer = Trainer(method=spec, step_module=wrap_for_training(model, spec.train_step, hp, DistInfo(),
                                                                 torch.device("cpu")),
                      optimizer=opt, scheduler=make_scheduler(opt, hp, 1),
                      scaler=torch.amp.GradScaler("cpu", enabled=False), params=list(model.parameters()), hp=hp,
                      device=torch.device("cpu"), info=DistInfo(), steps_per_epoch=1, rank_batch=4, total_epochs=1)
    stats = train_epoch(trainer, data, 1)
    assert extra.item() > 0.5 and math.isclose(stats.train_loss, expected, rel_tol=1e-6)
