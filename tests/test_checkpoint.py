"""Checkpoints (``last.pt``, ``best.pt``): a resume only into the same run spec, the typed history back as
it was saved, the best epoch's weights through a crash between the two files."""

from __future__ import annotations

import pytest
import torch

from bench.errors import BenchError
from bench.spec.registry import get_dataset, get_method
from run_helpers import spec_of


def test_resume_refuses_a_checkpoint_of_other_data_settings(tmp_path):
    spec = spec_of(tiny=True, epochs=1)
    method = get_method("simvp")
    from bench.run.checkpoint import Progress, resume, save_last

    state = training_state(method, spec)
    save_last(tmp_path, spec, 1, state, Progress(history=[epoch_record(1)]))
    assert resume(tmp_path, spec, state).next_epoch == 2
    for other in (spec_of(tiny=True, epochs=1, data_seed=1), spec_of(tiny=True, epochs=1, sizes={"val": 2}),
                  spec_of(tiny=True, epochs=1, pred_len=12)):
        with pytest.raises(BenchError, match="another configuration .*differs in"):
            resume(tmp_path, other, state)


def training_state(method, spec, steps: int = 4):
    """A model, optimiser, schedule and scaler for ``spec`` (what last.pt saves)."""
    from bench.run.checkpoint import TrainingState
    from bench.spec.choices import make_optimizer, make_scheduler

    model = method.create_model(get_dataset("mmnist"), spec.hparams)
    opt = make_optimizer(list(model.parameters()), spec.hparams)
    return TrainingState(model, opt, make_scheduler(opt, spec.hparams, steps), torch.amp.GradScaler("cpu", enabled=False))


def epoch_record(epoch: int):
    from bench.store.record import EpochRecord

    return EpochRecord(epoch=epoch, train_loss=0.5, lr=0.01, seconds=1.0, eval_seconds=0.5, train_samples=8,
                       val={"mse": 5.0 - epoch})


def test_best_epoch_weights_survive_a_crash_between_the_two_checkpoint_files(tmp_path):
    from bench.run.checkpoint import BEST, Progress, resume, save_best, save_last

    spec = spec_of(tiny=True, epochs=3)
    state = training_state(get_method("simvp"), spec, 3)
    model = state.model
    first = {k: v.clone() for k, v in model.state_dict().items()}
    save_last(tmp_path, spec, 1, state, Progress(history=[epoch_record(1)], best_mse=5.0, best_epoch=1))
    save_best(tmp_path, 1, first)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    # epoch 2 is better: last.pt is written, then the process dies before best.pt
    save_last(tmp_path, spec, 2, state, Progress(history=[epoch_record(1), epoch_record(2)], best_mse=4.0, best_epoch=2))
    progress = resume(tmp_path, spec, state)
    assert progress.history == [epoch_record(1), epoch_record(2)]  # typed rows, back as they were saved
    assert progress.best_epoch == 2
    assert all(torch.equal(progress.best_state[k], v) for k, v in model.state_dict().items())
    assert torch.load(tmp_path / BEST, weights_only=True)["epoch"] == 1
