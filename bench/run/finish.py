"""The end of a run: test the best validation epoch once, measure efficiency, write the record.

:func:`test_and_record` writes ``predictions.npz`` (the first test sequences, for the qualitative
figure) and ``result.json`` (:func:`build_result`) into the work directory, then removes
``last.pt``; the runner commits the directory. The test pass counts as evaluation, and the efficiency
measurement as a phase of its own, in the run's peak memory (:class:`~bench.store.record.PeakMemory`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timezone

from bench.core.host_allocator import setting_for
from bench.core.memory import PeakMeter, rss_scope
from bench.cost.measure import Measured, measure_efficiency, median
from bench.metrics.functional import METRIC_CONVENTION, SCORING_PROTOCOL
from bench.run.checkpoint import LAST, Progress
from bench.run.distributed import DistInfo, barrier
from bench.run.evaluation import Evaluation, evaluate
from bench.run.prepared import PreparedRun, data_config
from bench.spec.splits import Splits
from bench import store
from bench.store.record import (SCHEMA, DatasetInfo, Efficiency, Environment, MethodInfo, PeakMemory, RunResult,
                                RunSettings, Scoring, Timing, write_json_text)


NUM_STORED_PREDICTIONS = 4  # test sequences whose predictions are stored for qualitative figures


def test_and_record(run: PreparedRun, progress: Progress) -> RunResult | None:
    """Test the best validation epoch once, measure efficiency, write predictions and result.json."""
    spec, method, model, hp = run.spec, run.method, run.model, dict(run.spec.hparams)
    if progress.best_state is not None:
        model.load_state_dict(progress.best_state)
    meter = run.meter or PeakMeter(run.device)
    with meter.phase() as test_peak:
        test = evaluate(run.scorer, run.splits, "test", keep=NUM_STORED_PREDICTIONS if run.info.world_size == 1 else 0)
    progress.note_peak("eval", test_peak)
    stored = test.kept
    if run.info.enabled and run.info.is_main:  # the stored sequences are the first test sequences, whatever the sharding
        whole = run.data.load(run.data, data_config(spec, run.opts, DistInfo()))
        first = replace(run.scorer, batch_size=NUM_STORED_PREDICTIONS)
        stored = evaluate(first, _FirstBatch(whole, NUM_STORED_PREDICTIONS), "test", keep=NUM_STORED_PREDICTIONS,
                          reduce=False).kept
    try:
        if not run.info.is_main:
            return None
        efficiency = Efficiency()
        if run.opts.efficiency:
            with meter.phase() as measure_peak:
                efficiency = measure_efficiency(Measured(method, model, run.data, hp), run.splits, run.device,
                                                run.opts.fps_batch)
            progress.note_peak("measure", measure_peak)
        result = build_result(run, progress, test, efficiency)
        if stored:
            store.atomic_save_npz(run.work / "predictions.npz", **stored)
        store.atomic_write_text(run.work / store.RESULT_FILE, write_json_text(result))
        (run.work / LAST).unlink(missing_ok=True)  # only now: until result.json exists, last.pt is the way back
        return result
    finally:
        barrier(run.info)  # every rank leaves together, also when rank 0 failed here


def build_result(run: PreparedRun, progress: Progress, test: Evaluation, efficiency: Efficiency) -> RunResult:
    """The complete run's record (:class:`~bench.store.record.RunResult`)."""
    spec, data, info = run.spec, run.data, run.info
    seconds = [float(h.seconds) for h in progress.history]
    samples = sum(int(h.train_samples) for h in progress.history)
    efficiency = efficiency.replace(train_seconds_per_epoch=median(seconds),
                                    train_samples_per_second=samples / sum(seconds) if seconds and sum(seconds) > 0 else None)
    env = store.environment(run.device)
    method = spec.method_spec()
    return RunResult(
        schema=SCHEMA, status="complete", spec=spec, spec_hash=spec.hash,
        method=MethodInfo(name=spec.method, citation=method.citation, recurrent=method.recurrent),
        environment=Environment.of(env),
        timing=Timing(started=run.started, finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      wall_seconds=time.perf_counter() - run.wall_start),
        dataset=DatasetInfo(name=data.name, in_frames=data.in_frames, out_frames=data.out_frames,
                            channels=data.channels, height=data.height, width=data.width,
                            info=store.to_jsonable(dict(getattr(run.splits, "info", {}))), sizes=run.sizes),
        settings=RunSettings(device=str(run.device), channels_last=run.opts.channels_last, compile=run.opts.compile,
                             world_size=info.world_size,
                             host_allocator=setting_for(run.device),
                             batch_rule=f"global batch {spec.batch_size} = {info.world_size} process(es) x "
                                        f"{run.rank_batch}; gradients averaged; lr not scaled",
                             schedule=(store.to_jsonable(method.schedule(dict(spec.hparams),
                                                                         spec.epochs * run.steps_per_epoch))
                                       if method.schedule is not None else {})),
        scoring=Scoring(protocol=SCORING_PROTOCOL, text=METRIC_CONVENTION),
        history=list(progress.history), best_epoch=progress.best_epoch,
        test=test.metrics, test_per_frame=test.per_frame, efficiency=efficiency, pretrain=run.pretrain_record,
        memory=PeakMemory(**progress.peaks, rss_scope=rss_scope()) if progress.peaks else None)


class _FirstBatch:
    """The first ``n`` sequences of a split, as one batch."""

    def __init__(self, splits: Splits, n: int):
        self.splits, self.n = splits, n

    def batches(self, split: str, batch_size: int, epoch: int = 0):
        yield next(iter(self.splits.batches(split, self.n, epoch)))
