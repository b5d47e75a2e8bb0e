"""Schedules on the run's clock (reverse scheduled sampling, time-reversed passes) and their record.

The schedule VALUES are checked against the reference in ``test_reference_predrnnv2.py``; here: the
mask the schedule draws, the inputs the cells then read, the training loop's handling of several
passes per iteration, and ``settings.schedule`` in ``result.json``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from bench.baselines.predrnnv2 import decoupled_step
from bench.blocks.recurrent import patchify, reverse_ss_mask, sample_reverse_mask, time_reversed_passes
from bench.spec.splits import ArraySplits
from bench.run.distributed import DistInfo, TrainStepModule
from bench.spec.registry import get_dataset, get_method, parse_method_key
from toy_data import toy_dataset
from bench.spec.run_spec import SpecOptions, resolve_run_spec
from bench.run.options import RunOptions
from bench.run.runner import run_one
from bench.run.epoch import Trainer, train_epoch
from bench.spec.choices import make_optimizer, make_scheduler
from run_helpers import complete_result

DATA = toy_dataset(3, 3, 1, 8, 8)


def tiny(name: str, **over):
    spec = get_method(name)
    hp = spec.resolve_hparams("tiny", tiny=True, overrides={"patch_size": 2, **over})
    torch.manual_seed(0)
    return spec, hp, spec.create_model(DATA, hp)


def test_reverse_mask_covers_context_then_future_steps():
    """Context steps 1..T_in-1 follow r_eta, future steps follow eta; one coin per (sequence, step)."""
    assert sample_reverse_mask(4, 3, 4, 1.0, 0.0, "cpu").tolist() == [[1, 1, 0, 0, 0]] * 4
    assert sample_reverse_mask(4, 3, 4, 0.0, 1.0, "cpu").tolist() == [[0, 0, 1, 1, 1]] * 4
    torch.manual_seed(3)
    a = sample_reverse_mask(64, 3, 4, 0.3, 0.6, "cpu")
    torch.manual_seed(3)
    coins = torch.rand(64, 5)
    assert torch.equal(a, (coins < torch.tensor([0.3, 0.3, 0.6, 0.6, 0.6])).float())  # always drawn, seeded


def test_predrnnv2_training_inputs_follow_the_reverse_schedule():
    """After rss_end the context steps read the true frames and the future steps the predictions."""
    spec, hp, model = tiny("predrnnv2")
    x, y = torch.rand(2, 3, 1, 8, 8), torch.rand(2, 3, 1, 8, 8)
    seen = []
    model.cells[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    pred, target, extra = spec.train_step(model, x, y, hp, hp["rss_end"] + 0.01)
    assert torch.equal(target, torch.cat([x, y], 1)[:, 1:]) and extra.ndim == 0 and extra.item() > 0
    truth, own = patchify(torch.cat([x, y], 1), 2), patchify(pred.detach(), 2)
    assert len(seen) == 5
    for t in range(3):
        assert torch.equal(seen[t], truth[:, t])
    for t in range(3, 5):
        assert torch.allclose(seen[t], own[:, t - 1], atol=1e-6)
    # at progress 0 (r_eta = eta = 0.5), with this seed, some context step reads a prediction
    torch.manual_seed(1)
    mask = reverse_ss_mask(x, y, hp, 0.0)
    assert mask[:, :2].min() == 0 and mask.shape == (2, 4)


def test_time_reversed_passes():
    x, y = torch.rand(2, 3, 1, 4, 4), torch.rand(2, 2, 1, 4, 4)
    assert time_reversed_passes(x, y, {"reverse_input": False}) == [(x, y)]
    (x0, y0), (xr, yr) = time_reversed_passes(x, y, {"reverse_input": True})
    assert x0 is x and y0 is y
    assert torch.equal(torch.cat([xr, yr], 1), torch.cat([x, y], 1).flip(1)) and xr.shape == x.shape


def test_training_loop_takes_one_step_per_pass_with_the_same_mask():
    """Two optimiser steps per iteration, the reversed pass second and with the first pass's mask;
    the learning-rate schedule and ``progress`` advance once per iteration; the loss is the mean."""
    spec, hp, model = tiny("predrnnv2", batch_size=2)
    records = []

    def recording_step(model, x, y, hp, progress):
        mask = reverse_ss_mask(x, y, hp, progress)
        out = decoupled_step(model, x, y, mask, float(hp["decouple_beta"]))
        records.append({"x": x, "y": y, "mask": mask, "progress": progress,
                        "loss": float((torch.nn.functional.mse_loss(out[0], out[1]) + out[2]).detach())})
        return out

    spec = replace(spec, train_step=recording_step)
    rng = np.random.default_rng(0)
    seqs = rng.random((4, 6, 1, 8, 8), dtype=np.float32)
    splits = ArraySplits({"train": (seqs[:, :3], seqs[:, 3:])})
    params = list(model.parameters())
    optimizer = make_optimizer(params, {**hp, "lr": 1e-3})
    steps = []
    optimizer.register_step_post_hook(lambda opt, args, kwargs: steps.append(1))
    scheduler = make_scheduler(optimizer, {**hp, "schedule": "onecycle"}, 2 * 2)
    trainer = Trainer(method=spec, step_module=TrainStepModule(model, recording_step, hp), optimizer=optimizer,
                      scheduler=scheduler, scaler=torch.amp.GradScaler("cpu", enabled=False), params=params, hp=hp,
                      device=torch.device("cpu"), info=DistInfo(), steps_per_epoch=2, rank_batch=2, total_epochs=2)
    stats = train_epoch(trainer, splits, 1)
    assert len(records) == 4 and len(steps) == 4 and scheduler.last_epoch == 2
    for first, second in (records[0:2], records[2:4]):
        assert torch.equal(first["mask"], second["mask"]) and first["progress"] == second["progress"]
        assert torch.equal(torch.cat([second["x"], second["y"]], 1), torch.cat([first["x"], first["y"]], 1).flip(1))
    assert [r["progress"] for r in records[::2]] == [0.0, 0.25]
    assert not torch.equal(records[0]["mask"], records[2]["mask"])  # a fresh draw per iteration
    mean = np.mean([(records[0]["loss"] + records[1]["loss"]) / 2, (records[2]["loss"] + records[3]["loss"]) / 2])
    assert stats.train_loss == pytest.approx(mean, rel=1e-6) and stats.samples == 4


def test_result_records_the_schedule_on_the_runs_clock(tmp_path):
    """The runner writes the method's schedule on this run's clock into result.json (settings.schedule)."""
    data = get_dataset("mmnist").with_frames(4, 4)  # real sequences, shorter for speed
    opts = SpecOptions(epochs=1, batch_size=2, quick=True, tiny=True, sizes={"train": 4, "val": 2, "test": 2})
    spec = resolve_run_spec(parse_method_key("predrnnv2"), data, 0, opts)
    outcome = run_one(spec, data, RunOptions(results=tmp_path, efficiency=False, log=lambda s: None))
    assert outcome.status == "complete", outcome.detail
    schedule = complete_result(tmp_path, "predrnnv2").settings.schedule
    assert schedule["iterations"] == 2  # 1 epoch x 2 batches: the whole schedule, compressed
    rss = schedule["reverse_scheduled_sampling"]
    assert (rss["rss_start"], rss["rss_end"], rss["rss_alpha"]) == (0.3125, 0.625, 0.03125)
    assert (rss["start_iteration"], rss["end_iteration"]) == (1, 2)  # ceil(0.3125 * 2), ceil(0.625 * 2)
    assert rss["reference_iterations"] == {"r_sampling_step_1": 25000, "r_sampling_step_2": 50000,
                                           "r_exp_alpha": 2500, "max_iterations": 80000}
    assert schedule["passes"] == ["sequence", "time-reversed sequence (same mask)"]
    assert "scheduled_sampling" not in schedule
