"""Issue 25: the peak memory of training and evaluation, measured per phase, recorded, kept across a resume;
an out-of-memory run fails in one line naming the batch size to lower."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from bench.core.memory import is_out_of_memory, rss_scope
from bench.run.failure import failure_reason
from run_helpers import TINY, failed_result, spec_of

LINUX_PHASES = pytest.mark.skipif(rss_scope() != "phase", reason="needs a resettable high-water mark (Linux /proc)")

# A 256 MiB block is touched in one phase and freed; the next phase holds nothing. The heap keeps what is freed
# (bench.core.host_allocator, as in a CPU run), so the second phase's peak is its own only if the meter both
# gives the free heap back and resets the high-water mark.
PHASES = """
import torch
from bench.core.host_allocator import keep_freed_memory
from bench.core.memory import PeakMeter, current_rss
print(keep_freed_memory())
meter = PeakMeter("cpu")
with meter.phase() as big:
    block = torch.ones(64 << 20)
    del block
after_free = current_rss()
with meter.phase() as small:
    pass
print(big.rss, after_free, small.rss, small.gpu)
"""


@LINUX_PHASES
def test_each_phase_has_its_own_peak_and_starts_without_the_heap_an_earlier_phase_freed():
    env = {**os.environ, "BENCH_KEEP_FREED_MEMORY": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PHASES], env=env, capture_output=True, text=True, check=True)
    setting, numbers = out.stdout.strip().splitlines()
    big, after_free, small, gpu = numbers.split()
    assert setting.startswith("glibc heap only")  # freed memory stays resident ...
    assert int(after_free) > int(big) - (32 << 20)  # ... as the first phase left it
    assert int(small) < int(big) - (200 << 20)  # the second phase's peak is its own
    assert gpu == "None"


def test_a_trained_run_records_the_peak_memory_of_training_and_evaluation(trained_run):
    from run_helpers import complete_result

    memory = complete_result(trained_run).memory
    assert memory is not None and memory.rss_scope == rss_scope()
    assert memory.train_rss > 50 << 20 and memory.eval_rss > 50 << 20  # the process itself is more than that
    assert memory.measure_rss > 50 << 20  # the fixture measures efficiency
    assert (memory.train_gpu, memory.eval_gpu, memory.measure_gpu) == (None, None, None)  # a CPU run


def test_the_peaks_survive_a_resume_in_last_pt(tmp_path):
    from bench.run.checkpoint import Progress, resume, save_last
    from bench.spec.registry import get_method
    from test_checkpoint import epoch_record, training_state

    spec = spec_of(tiny=True, epochs=2)
    state = training_state(get_method("simvp"), spec)
    peaks = {"train_rss": 7 << 30, "eval_rss": 3 << 30, "train_gpu": 5 << 30}
    save_last(tmp_path, spec, 1, state, Progress(history=[epoch_record(1)], peaks=dict(peaks)))
    progress = resume(tmp_path, spec, state)
    assert progress.peaks == peaks
    progress.note_peak("train", type("Peak", (), {"rss": 1 << 30, "gpu": None})())  # a smaller later epoch
    assert progress.peaks["train_rss"] == 7 << 30  # the run needed the largest


def test_a_record_with_memory_reads_back_and_one_without_writes_no_memory_key(trained_run):
    from run_helpers import complete_result
    from bench.store.record import PeakMemory, parse_result, write_json_text
    import json

    result = complete_result(trained_run)
    text = write_json_text(result)
    assert '"memory"' in text and parse_result(json.loads(text)).memory == result.memory
    assert write_json_text(parse_result(json.loads(text))) == text
    bare = result.replace(memory=None)
    assert '"memory"' not in write_json_text(bare)  # as records written before the field existed
    assert PeakMemory(train_rss=1).eval_rss is None


CPU_OOM = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
           "to allocate 1610612736 bytes. Error code 12 (Cannot allocate memory)")


@pytest.mark.parametrize("error, batch, line", [
    (RuntimeError(CPU_OOM), 16, "out of memory on the CPU (an allocation of 1.50 GiB failed) at --batch-size 16; "
                                "lower it, e.g. --batch-size 8"),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB. GPU 0 has a total capacity of 79.1 "
                            "GiB of which 1.2 GiB is free."), 32,
     "out of memory on the GPU (an allocation of 3.00 GiB failed) at --batch-size 32; lower it, e.g. --batch-size 16"),
    (RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. "), 8,
     "out of memory on the CPU (a data-loader worker was killed by the kernel) at --batch-size 8; lower it, "
     "e.g. --batch-size 4"),
    (MemoryError(), 1, "out of memory on the CPU (MemoryError) at --batch-size 1; this configuration does not fit"),
])
def test_out_of_memory_is_one_line_naming_the_batch_size_to_lower(error, batch, line):
    assert is_out_of_memory(error)
    reason = failure_reason(error, batch)
    assert reason.startswith(line) and "\n" not in reason


def test_other_errors_are_not_taken_for_out_of_memory():
    for error in (RuntimeError("shape mismatch"), ValueError("out of range"), KeyError("memory")):
        assert not is_out_of_memory(error)
        assert "out of memory" not in failure_reason(error, 16)


def test_an_allocation_failure_in_training_fails_the_run_in_one_line_once(bench, tmp_path, monkeypatch):
    """A real failed allocation (256 TiB: beyond any address space) in the training step: the run is recorded
    failed with the one line, not retried (one attempt), and the command exits non-zero."""
    from bench.run import epoch

    attempts = []
    real_loss = epoch.training_loss

    def allocating_loss(*args, **kwargs):
        attempts.append(1)
        torch.empty(1 << 48, dtype=torch.uint8)
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(epoch, "training_loss", allocating_loss)
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", "1", "--results", tmp_path)
    line = "out of memory on the CPU (an allocation of 262144.00 GiB failed) at --batch-size 4; lower it, e.g. " \
           "--batch-size 2"
    assert res.exit_code == 1 and line in res.output
    failed = failed_result(tmp_path)
    assert failed.status == "failed" and failed.error.startswith(line) and "\n" not in failed.error
    assert len(attempts) == 1


@LINUX_PHASES
def test_bench_perf_measures_training_and_evaluation_apart(monkeypatch):
    """The evaluation's peak is the evaluation's: a 256 MiB block it touches shows there, not in training's."""
    from bench.cost import perf
    from bench.spec.registry import get_dataset, parse_method_key

    real_eval = perf._Timed.eval_sequences_per_s

    def eval_with_a_block(self):
        block = torch.ones(64 << 20)
        del block
        return real_eval(self)

    monkeypatch.setattr(perf._Timed, "eval_sequences_per_s", eval_with_a_block)
    settings = perf.PerfSettings(device=torch.device("cpu"), batch_size=2, iters=1, tiny=True)
    row = perf.train_throughput(parse_method_key("simvp"), get_dataset("mmnist"), settings)
    assert row["eval_peak_rss"] > row["train_peak_rss"] + (200 << 20)
    assert row["train_peak_gpu"] is None and row["eval_peak_gpu"] is None and row["rss_scope"] == "phase"
