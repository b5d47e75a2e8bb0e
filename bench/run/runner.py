"""Run one spec: train, select on validation, test once, record; nothing a user does loses a result.

Protocol:
1. The run spec (:mod:`bench.spec.run_spec`) fixes everything that changes the numbers; it is resolved
   and validated for every run before the sweep starts. The seed fixes initialisation and the
   training stream; the validation and test sets are fixed by the data seed. On CPU, runs repeat
   exactly (deterministic algorithms are switched on).
2. An optional pretraining stage (``MethodSpec.pretrain``) runs first; the optimiser is then built
   over the parameters that still require gradients.
3. Every epoch: train with the method's optimiser and schedule (stepped per iteration), then
   evaluate on the VALIDATION split. The checkpoint with the lowest validation MSE is kept; the test
   set is touched once, at the end, with that checkpoint.
4. A NaN/Inf training loss, or a non-finite prediction, ends the run as failed with the reason.

Where each part lives (a reader's map):
- :func:`run_one`: the run's directories and lock; skip a finished result, ``--force``, commit.
- :func:`execute_run`: the sequence above, in a work directory (``seed<k>.partial``), in three steps:
  :func:`prepare_run` (device, data, model, pretraining), :func:`train_run` (the epoch loop, best
  epoch, checkpoints) and :func:`test_and_record` (test once, efficiency, files).
- :mod:`bench.run.training`: the epoch loop (:func:`~bench.run.training.train_epoch`), evaluation and the
  recursive rollout; :mod:`bench.run.checkpoint`: saving, loading and the resume checks.
- :func:`build_result`: the :class:`~bench.store.record.RunResult` written as ``result.json``.
- :func:`measure_efficiency`: params, fvcore FLOPs and test fps with its spread.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from bench.store import layout as store
from bench.run.checkpoint import LAST, Progress, resume, save_best, save_last
from bench.spec.splits import Splits
from bench.run.distributed import DistInfo, barrier, broadcast_object, env_world_size, init_from_env, wrap_for_training
from bench.errors import BenchError
from bench.run.failure import record_failure
from bench.core.host_allocator import keep_freed_memory_on, setting_for
from bench.cost.measure import count_flops, count_params, fps_repeats, load_average, median
from bench.metrics.functional import METRIC_CONVENTION, SCORING_PROTOCOL
from bench.spec.pretrain import PretrainContext
from bench.spec.registry import DataConfig, DatasetSpec, MethodSpec
from bench.store.record import (SCHEMA, DatasetInfo, Efficiency, Environment, EpochRecord, MethodInfo, RunResult,
                                 RunSettings, Scoring, Timing, write_json_text)
from bench.spec.run_spec import RunSpec
from bench.run.training import (Evaluation, autocast, check_finite, evaluate, make_optimizer, make_scheduler,
                            resolve_device, rollout, seed_everything, train_epoch)

__all__ = ["RunOptions", "Outcome", "run_one", "execute_run", "build_result", "measure_efficiency",
           "resolve_device", "seed_everything", "autocast", "make_optimizer", "rollout"]

NUM_STORED_PREDICTIONS = 4  # test sequences whose predictions are stored for qualitative figures
FPS_REPEATS = 3


@dataclass
class RunOptions:
    """How runs execute (nothing here changes the numbers; that is the run spec's job)."""

    results: Path = Path("results")
    device: str = "auto"
    force: bool = False
    data_dir: str | None = None
    fps_batch: int = 16
    efficiency: bool = True
    channels_last: bool = False
    compile: bool = False
    log: Callable[[str], None] = print
    progress: Any = None  # a rich.progress.Progress (with a ``loss`` field), or None for no bars


@dataclass
class Outcome:
    """What became of one run: ``complete``, ``skipped`` (with the reason) or ``failed``."""

    spec: RunSpec
    status: str
    detail: str
    result: RunResult | None = None
    path: Path | None = None


def run_one(spec: RunSpec, data: DatasetSpec, opts: RunOptions) -> Outcome:
    """Run ``spec`` unless its result exists; returns the outcome (a failure is recorded, not raised).

    The run trains in ``seed<k>.partial`` and is committed whole (:func:`bench.store.layout.commit_run`).
    An existing complete result is kept unless ``opts.force``; with ``--force`` it stays in place
    until the new run is complete. An interrupted run resumes from its last epoch. A run another
    process is training (its lock is held) is skipped. Everything that decides or writes happens
    under the run's lock. Under ``torchrun`` all ranks share one run, rank 0 decides and writes, and
    a failure ends the job (rank 0 records it).
    """
    final = store.run_dir(opts.results, spec)
    work = store.partial_dir(final)
    where = f"{spec.label} on {spec.dataset} seed {spec.seed}"
    distributed = env_world_size() > 1
    info = init_from_env(resolve_device(opts.device))[0] if distributed else DistInfo()
    lock = store.RunLock(store.lock_path(final))
    try:
        decision: tuple[str, str] = ("run", "")
        if info.is_main:
            try:
                decision = _decide(final, work, lock, opts.force)
            except BenchError as exc:  # every rank must learn of it (they wait in the broadcast)
                decision = ("refuse", str(exc))
        action, detail = broadcast_object(decision, info)
        if action == "skip":
            opts.log(f"{where}: {detail}")
            return Outcome(spec, "skipped", detail, path=final)
        if action == "refuse":
            raise BenchError(detail)
        result = execute_run(spec, data, work, opts)
        if not info.is_main:
            return Outcome(spec, "complete", "rank > 0")
        store.commit_run(work, final)
        return Outcome(spec, "complete", _summary(result), result, final)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - isolation: record, report, go on
        if distributed:
            raise  # a failing rank ends the torchrun job
        reason = record_failure(spec, work, opts.device, exc)
        opts.log(f"FAILED {where}: {reason}")
        return Outcome(spec, "failed", reason, path=final)
    finally:
        lock.release()


def _decide(final: Path, work: Path, lock: store.RunLock, force: bool) -> tuple[str, str]:
    """("skip", why), ("refuse", one-line error) or ("run", "") with ``work`` ready, decided under the run's lock.

    One exception: a complete result with nothing to recover beside it is kept before the lock is
    taken (reading it writes nothing), so a finished run on a read-only results directory is "kept",
    not "failed"."""
    if not force and _finished_and_settled(final, work):
        return "skip", f"result exists at {final}, kept (use --force to re-run)"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        if not lock.acquire():
            return "skip", "another process holds its run lock"
    except OSError as exc:
        raise BenchError(f"cannot write under {final.parent} ({exc.strerror}); ask its owner for write access or "
                         f"pass --results with a directory of your own") from None
    return _decide_locked(final, work, force)


def _finished_and_settled(final: Path, work: Path) -> bool:
    """``final`` holds a complete result and no interrupted commit waits beside it (read-only)."""
    if store.committed_state(final) != "complete" or os.path.lexists(store.replaced_dir(final)):
        return False
    return not store.has_complete_result(work)  # a finished run waiting to be committed replaces it


def _decide_locked(final: Path, work: Path, force: bool) -> tuple[str, str]:
    store.recover_run(final)
    state = store.committed_state(final)
    if state == "complete" and not force:
        return "skip", f"result exists at {final}, kept (use --force to re-run)"
    if state not in ("missing", "complete") and not force:
        return "refuse", (f"{final} holds a result this version cannot read ({state}); move it away, or re-run with "
                          f"--force to replace it")
    try:
        _prepare_work_dir(work, force)
    except OSError as exc:
        raise BenchError(f"cannot write {work} ({exc.strerror}); ask the owner of {final.parent} for write access "
                         f"or pass --results with a directory of your own") from None
    return "run", ""


def _prepare_work_dir(work: Path, force: bool) -> None:
    """``seed<k>.partial``: fresh with ``--force``, else kept so that an interrupted run resumes."""
    if force:
        store.remove_dir(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / store.RESULT_FILE).unlink(missing_ok=True)  # a failure record of an earlier attempt


def _summary(result: RunResult) -> str:
    return f"test MSE {result.test['mse']:.3f}, best epoch {result.best_epoch}"


def execute_run(spec: RunSpec, data: DatasetSpec, work: Path, opts: RunOptions) -> RunResult | None:
    """Train, select, test and record ``spec`` in ``work``; returns the result (None on ranks > 0)."""
    run = prepare_run(spec, data, work, opts)
    progress = train_run(run)
    return test_and_record(run, progress)


@dataclass
class PreparedRun:
    """A run ready to train: its device and process layout, data, model and pretraining record."""

    spec: RunSpec
    data: DatasetSpec
    work: Path
    opts: RunOptions
    info: DistInfo
    device: torch.device
    splits: Any
    sizes: dict[str, int]
    model: nn.Module
    rank_batch: int
    pretrain_record: dict | None
    started: str
    wall_start: float

    @property
    def method(self) -> MethodSpec:
        return self.spec.method_spec()

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser iterations per epoch on every rank (the smallest shard decides: drops < world_size sequences)."""
        return math.ceil((self.sizes["train"] // self.info.world_size) / self.rank_batch)

    @property
    def where(self) -> str:
        return f"{self.spec.label} on {self.spec.dataset} seed {self.spec.seed}"

    def log(self, text: str) -> None:
        if self.info.is_main:
            self.opts.log(text)


def prepare_run(spec: RunSpec, data: DatasetSpec, work: Path, opts: RunOptions) -> PreparedRun:
    """Device and processes, the seeded data splits, the model, and the pretraining stage if any."""
    info, device = init_from_env(resolve_device(opts.device))
    if spec.batch_size % info.world_size:
        raise BenchError(f"batch size {spec.batch_size} is not divisible by the {info.world_size} processes; "
                         f"pass --batch-size as a multiple of --nproc_per_node")
    barrier(info)
    seed_everything(spec.seed, device)
    splits = data.load(data, _data_config(spec, opts, info))
    sizes = {s: _global_size(splits, s, info, device) for s in ("train", "val", "test")}
    method = spec.method_spec()
    model = method.create_model(data, spec.hparams).to(device)
    keep_freed_memory_on(device)  # CPU: 2x faster training steps (measured; see bench.core.host_allocator)
    run = PreparedRun(spec, data, work, opts, info, device, splits, sizes, model, spec.batch_size // info.world_size,
                      None, datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter())
    if method.pretrain is not None:
        ctx = PretrainContext(data=data, splits=splits, hp={**spec.hparams, "batch_size": run.rank_batch},
                              device=device, seed=spec.seed,
                              cache_dir=Path(opts.results) / "_cache" / data.name if info.world_size == 1 else None,
                              log=run.log, check_finite=check_finite,
                              extra={"sizes": dict(spec.sizes), "data_seed": spec.data_seed,
                                     "data_source": dict(spec.data_source), "world_size": info.world_size})
        run.pretrain_record = method.pretrain(model, ctx)
        seed_everything(spec.seed, device)  # the training stage starts from the same RNG state, cached stage or not
    if opts.channels_last:
        run.model = model.to(memory_format=torch.channels_last)
    return run


def train_run(run: PreparedRun) -> Progress:
    """The epoch loop: train, validate, keep the best epoch, checkpoint (resuming where a run stopped)."""
    spec, method, model, hp = run.spec, run.method, run.model, dict(run.spec.hparams)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, hp)
    steps_per_epoch = run.steps_per_epoch  # every rank takes the same number of steps
    scheduler = make_scheduler(optimizer, hp, spec.epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler(run.device.type, enabled=spec.precision == "fp16")
    progress = resume(run.work, spec, model, optimizer, scheduler, scaler)
    if progress is None:
        progress = Progress()
    else:
        run.log(f"{run.where}: resuming after epoch {progress.next_epoch - 1}")
    step_module = wrap_for_training(model, method.train_step, hp, run.info, run.device)
    if run.opts.compile:
        step_module = torch.compile(step_module)
    bar = _ProgressBar(run.opts.progress if run.info.is_main else None, run.where, spec.epochs * steps_per_epoch,
                       (progress.next_epoch - 1) * steps_per_epoch)
    model.train()
    for epoch in range(progress.next_epoch, spec.epochs + 1):
        stats = train_epoch(method, step_module, run.splits, epoch, spec.epochs, steps_per_epoch, run.rank_batch, hp,
                            optimizer, scheduler, scaler, params, run.device, run.info, spec.precision,
                            run.opts.channels_last, on_step=bar.step)
        t1 = time.perf_counter()
        val = evaluate(method, model, run.splits, "val", hp, run.device, spec.pred_len, run.rank_batch,
                       precision=spec.precision).metrics
        progress.history.append({"epoch": epoch, "train_loss": stats.train_loss, "val": val,
                                 "lr": float(optimizer.param_groups[0]["lr"]), "seconds": stats.seconds,
                                 "eval_seconds": time.perf_counter() - t1, "train_samples": stats.samples})
        improved = val["mse"] < progress.best_mse
        if improved:
            progress.best_mse, progress.best_epoch = val["mse"], epoch
            progress.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if run.info.is_main:  # last.pt first: it can always restore the best epoch if it is this one
            save_last(run.work, spec, epoch, model, optimizer, scheduler, scaler, progress)
            if improved:
                save_best(run.work, epoch, progress.best_state)
            store.write_history_csv(run.work / "history.csv", [_flat(r) for r in progress.history])
        run.log(f"{run.where}: epoch {epoch}/{spec.epochs} train_loss {stats.train_loss:.5f} "
                f"val_mse {val['mse']:.3f} ({stats.seconds:.1f}s)")
    bar.close()
    return progress


def test_and_record(run: PreparedRun, progress: Progress) -> RunResult | None:
    """Test the best validation epoch once, measure efficiency, write predictions and result.json."""
    spec, method, model, hp = run.spec, run.method, run.model, dict(run.spec.hparams)
    if progress.best_state is not None:
        model.load_state_dict(progress.best_state)
    test = evaluate(method, model, run.splits, "test", hp, run.device, spec.pred_len, run.rank_batch,
                    keep=NUM_STORED_PREDICTIONS if run.info.world_size == 1 else 0, precision=spec.precision)
    stored = test.kept
    if run.info.enabled and run.info.is_main:  # the stored sequences are the first test sequences, whatever the sharding
        whole = run.data.load(run.data, _data_config(spec, run.opts, DistInfo()))
        stored = evaluate(method, model, _FirstBatch(whole, NUM_STORED_PREDICTIONS), "test", hp, run.device,
                          spec.pred_len, NUM_STORED_PREDICTIONS, keep=NUM_STORED_PREDICTIONS,
                          precision=spec.precision, reduce=False).kept
    try:
        if not run.info.is_main:
            return None
        efficiency = (measure_efficiency(method, model, run.data, hp, run.splits, run.device, run.opts.fps_batch)
                      if run.opts.efficiency else Efficiency())
        result = build_result(run, progress, test, efficiency)
        if stored:
            store.atomic_save_npz(run.work / "predictions.npz", **stored)
        store.atomic_write_text(run.work / store.RESULT_FILE, write_json_text(result))
        (run.work / LAST).unlink(missing_ok=True)  # only now: until result.json exists, last.pt is the way back
        return result
    finally:
        barrier(run.info)  # every rank leaves together, also when rank 0 failed here


def _data_config(spec: RunSpec, opts: RunOptions, info: DistInfo) -> DataConfig:
    return DataConfig(data_dir=opts.data_dir, seed=spec.seed, data_seed=spec.data_seed, sizes=dict(spec.sizes),
                      rank=info.rank, world_size=info.world_size, pred_len=spec.hparams.get("pred_len"))


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """A history row for history.csv: validation metrics as ``val_<metric>`` columns."""
    return {**{k: v for k, v in row.items() if k != "val"}, **{f"val_{k}": v for k, v in row["val"].items()}}


def build_result(run: PreparedRun, progress: Progress, test: Evaluation, efficiency: Efficiency) -> RunResult:
    """The complete run's record (:class:`~bench.store.record.RunResult`)."""
    spec, data, info = run.spec, run.data, run.info
    seconds = [float(h["seconds"]) for h in progress.history]
    samples = sum(int(h["train_samples"]) for h in progress.history)
    efficiency = replace(efficiency, train_seconds_per_epoch=median(seconds),
                         train_samples_per_second=samples / sum(seconds) if seconds and sum(seconds) > 0 else None)
    env = store.environment(run.device)
    method = spec.method_spec()
    return RunResult(
        schema=SCHEMA, status="complete", spec=spec, spec_hash=spec.hash,
        method=MethodInfo(spec.method, method.citation, method.recurrent),
        environment=Environment(**{k: v for k, v in env.items() if k in Environment.__dataclass_fields__}),
        timing=Timing(run.started, datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      time.perf_counter() - run.wall_start),
        dataset=DatasetInfo(data.name, data.in_frames, data.out_frames, data.channels, data.height, data.width,
                            info=store.to_jsonable(dict(getattr(run.splits, "info", {}))), sizes=run.sizes),
        settings=RunSettings(device=str(run.device), channels_last=run.opts.channels_last, compile=run.opts.compile,
                             world_size=info.world_size,
                             host_allocator=setting_for(run.device),
                             batch_rule=f"global batch {spec.batch_size} = {info.world_size} process(es) x "
                                        f"{run.rank_batch}; gradients averaged; lr not scaled",
                             schedule=(store.to_jsonable(method.schedule(dict(spec.hparams),
                                                                         spec.epochs * run.steps_per_epoch))
                                       if method.schedule is not None else {})),
        scoring=Scoring(SCORING_PROTOCOL, METRIC_CONVENTION),
        history=[EpochRecord(**h) for h in progress.history], best_epoch=progress.best_epoch,
        test=test.metrics, test_per_frame=test.per_frame, efficiency=efficiency, pretrain=run.pretrain_record)


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


def _global_size(splits: Splits, split: str, info: DistInfo, device: torch.device) -> int:
    """Size of a split over all ranks."""
    n = torch.tensor([splits.size(split)], dtype=torch.float64, device=device)
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(n)
    return int(n.item())


class _FirstBatch:
    """The first ``n`` sequences of a split, as one batch."""

    def __init__(self, splits: Splits, n: int):
        self.splits, self.n = splits, n

    def batches(self, split: str, batch_size: int, epoch: int = 0):
        yield next(iter(self.splits.batches(split, self.n, epoch)))


def measure_efficiency(spec: MethodSpec, model: nn.Module, data: DatasetSpec, hp: dict[str, Any],
                       splits: Any, device: torch.device, fps_batch: int = 16) -> Efficiency:
    """Params, fvcore FLOPs (one sample) and test fps on the first test batch (fixed size, one
    warm-up call, :data:`FPS_REPEATS` synchronised repeats; the median is the figure)."""
    flops, skipped = count_flops(copy.deepcopy(model).cpu(), spec.flops_inputs(data))
    example, _ = next(iter(splits.batches("test", fps_batch)))
    if len(example) < fps_batch:  # tiny test sets: repeat to the fixed batch
        example = example.repeat(math.ceil(fps_batch / len(example)), 1, 1, 1, 1)[:fps_batch]
    example = example.to(device)
    model.eval()
    load = load_average()
    repeats = fps_repeats(lambda x: rollout(spec, model, x, hp, data.out_frames), example, repeats=FPS_REPEATS)
    model.train()
    return Efficiency(params=count_params(model), trainable_params=count_params(model, trainable_only=True),
                      flops=flops, flops_skipped=skipped, fps=median(repeats), fps_repeats=repeats,
                      fps_batch=int(example.shape[0]), load_average=load,
                      flops_convention="fvcore, one sample, multiply-add counted as one FLOP")
