"""The epoch loop: train, validate, keep the best epoch, checkpoint; resumes where a run stopped.

Every epoch trains (:func:`bench.run.epoch.train_epoch`), then scores the VALIDATION split; the
checkpoint with the lowest validation MSE is kept (the test set is touched once, at the end, by
:mod:`bench.run.finish`). ``last.pt`` is written after every epoch, before ``best.pt``, so that it
can always restore the best epoch. A stop signal (:mod:`bench.run.stop`) ends the loop after the
optimiser step in progress, or after an epoch's checkpoint, with :class:`~bench.run.stop.RunStopped`:
the epoch in progress is lost, ``last.pt`` holds the one before.

The peak memory of every phase is measured (:mod:`bench.core.memory`) and kept in the progress, and so
in ``last.pt``: training (the run's set-up, each epoch's steps, its checkpoints) and the validation
passes.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from bench.core.memory import PeakMeter
from bench.run.checkpoint import Progress, TrainingState, epoch_row, resume, save_best, save_last
from bench.run.distributed import wrap_for_training
from bench.run.epoch import Trainer, train_epoch
from bench.run.evaluation import evaluate
from bench.run.prepared import PreparedRun
from bench.run.stop import StopCheck
from bench.spec.choices import make_optimizer, make_scheduler
from bench import store
from bench.store.record import EpochRecord


def make_trainer(run: PreparedRun) -> Trainer:
    """The optimiser over the parameters that still require gradients, the schedule over the whole
    run, the gradient scaler (fp16) and the training module (DDP under torchrun, compiled with
    ``--compile``)."""
    spec, hp = run.spec, dict(run.spec.hparams)
    params = [p for p in run.model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, hp)
    step_module = wrap_for_training(run.model, run.method.train_step, hp, run.info, run.device)
    if run.opts.compile:
        step_module = torch.compile(step_module)
    return Trainer(method=run.method, step_module=step_module, optimizer=optimizer,
                   scheduler=make_scheduler(optimizer, hp, spec.epochs * run.steps_per_epoch),
                   scaler=torch.amp.GradScaler(run.device.type, enabled=spec.precision == "fp16"), params=params,
                   hp=hp, device=run.device, info=run.info, steps_per_epoch=run.steps_per_epoch,
                   rank_batch=run.rank_batch, total_epochs=spec.epochs, precision=spec.precision,
                   channels_last=run.opts.channels_last)


def train_run(run: PreparedRun) -> Progress:
    """The epoch loop: train, validate, keep the best epoch, checkpoint (resuming where a run stopped)."""
    spec, model = run.spec, run.model
    trainer = make_trainer(run)
    state = TrainingState(model, trainer.optimizer, trainer.scheduler, trainer.scaler)
    progress = resume(run.work, spec, state)
    if progress is None:
        progress = Progress()
    else:
        run.log(f"{run.where}: resuming after epoch {progress.next_epoch - 1}")
    meter = run.meter or PeakMeter(run.device)
    if run.setup_peak is not None:
        progress.note_peak("train", run.setup_peak)
    total_steps = spec.epochs * trainer.steps_per_epoch
    bar = _ProgressBar(run.opts.progress if run.info.is_main else None, run.where, total_steps,
                       (progress.next_epoch - 1) * trainer.steps_per_epoch)
    stop = StopCheck(run.info, run.device, run.where)
    model.train()
    for epoch in range(progress.next_epoch, spec.epochs + 1):
        def on_step(loss: float, epoch: int = epoch) -> None:
            bar.step(loss)
            stop.after_step(epoch)  # RunStopped: the epoch in progress is abandoned

        with meter.phase() as train_peak:
            stats = train_epoch(trainer, run.splits, epoch, on_step=on_step)
        progress.note_peak("train", train_peak)
        t1 = time.perf_counter()
        with meter.phase() as eval_peak:
            val = evaluate(run.scorer, run.splits, "val").metrics
        progress.note_peak("eval", eval_peak)
        progress.history.append(EpochRecord(epoch=epoch, train_loss=stats.train_loss, val=val,
                                            lr=float(trainer.optimizer.param_groups[0]["lr"]), seconds=stats.seconds,
                                            eval_seconds=time.perf_counter() - t1, train_samples=stats.samples))
        improved = val["mse"] < progress.best_mse
        if improved:
            progress.best_mse, progress.best_epoch = val["mse"], epoch
            progress.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if run.info.is_main:  # last.pt first: it can always restore the best epoch if it is this one
            with meter.phase() as save_peak:
                save_last(run.work, spec, epoch, state, progress)
                if improved:
                    save_best(run.work, epoch, progress.best_state)
            progress.note_peak("train", save_peak)  # in the next last.pt: a resume loses only this epoch's save
            store.write_history_csv(run.work / "history.csv", [_flat(r) for r in progress.history])
        run.log(f"{run.where}: epoch {epoch}/{spec.epochs} train_loss {stats.train_loss:.5f} "
                f"val_mse {val['mse']:.3f} ({stats.seconds:.1f}s)")
        stop.after_epoch(epoch)
    bar.close()
    return progress


def _flat(record: EpochRecord) -> dict[str, Any]:
    """A history row for history.csv: validation metrics as ``val_<metric>`` columns."""
    row = epoch_row(record)
    return {**{k: v for k, v in row.items() if k != "val"}, **{f"val_{k}": v for k, v in row["val"].items()}}


class _ProgressBar:
    """A rich progress task for one run, showing the current loss (no-op without a Progress)."""

    def __init__(self, progress: Any, description: str, total: int, completed: int):
        self.progress = progress
        self.task = None if progress is None else progress.add_task(description, total=total, completed=completed,
                                                                   loss="")

    def step(self, loss: float) -> None:
        if self.task is not None:
            self.progress.update(self.task, advance=1, **({} if math.isnan(loss) else {"loss": f"loss {loss:.4f}"}))

    def close(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
