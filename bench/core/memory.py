"""Peak memory of a phase of work, and allocation failures told apart from other errors.

What a phase needs is measured, not estimated:

- CPU: the peak resident set size (RSS) of the process during the phase. On Linux the kernel's
  high-water mark (``VmHWM`` in ``/proc/self/status``) is reset at the start of the phase by
  writing ``5`` to ``/proc/self/clear_refs`` and read at its end, so that each phase gets its own
  peak (training and evaluation apart), not "the peak so far". Where that file cannot be written
  (another OS, a restricted container) the figure is ``getrusage``'s ``ru_maxrss``, the peak of the
  process since it started; :func:`rss_scope` says which of the two a process measures.
- GPU: the CUDA caching allocator's peak of allocated bytes (``torch.cuda.max_memory_allocated``),
  reset at the start of the phase (``reset_peak_memory_stats``). It is what tensors held, not what
  the caching allocator reserved from the driver (``nvidia-smi`` shows more).

On glibc the CPU runs keep freed memory in the heap (:mod:`bench.core.host_allocator`), so a phase
that follows a larger one would sit on the larger one's pages: each phase starts by handing the free
heap pages back (:func:`bench.core.host_allocator.release_free_heap`, once per phase, never per step),
so that its RSS is what it holds itself.

:func:`is_out_of_memory` recognises the forms an allocation failure takes in Python: ``MemoryError``,
``torch.OutOfMemoryError`` (CUDA, "CUDA out of memory. Tried to allocate 1.50 GiB ..."), torch's CPU
allocator ("DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes"), a C++
``std::bad_alloc``, and a data-loader worker killed by the kernel's out-of-memory killer. When the
kernel kills the training process itself no code runs, and nothing can be recorded.
"""

from __future__ import annotations

import os
import resource
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Literal

import torch

from bench.core.host_allocator import release_free_heap

_OOM_TEXTS = ("out of memory", "can't allocate memory", "cannot allocate memory", "std::bad_alloc",
              "killed by signal: killed")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation failure, on the CPU or a GPU (see the module docstring)."""
    if isinstance(error, MemoryError):
        return True
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(error, oom):
        return True
    return isinstance(error, RuntimeError) and any(t in str(error).lower() for t in _OOM_TEXTS)


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss() -> int | None:
    """The resident set size of this process now, in bytes (None where ``/proc`` is absent)."""
    return _status_bytes("VmRSS")


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _process_peak() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, KiB on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)


_SCOPE: list[str] = []


def rss_scope() -> Literal["phase", "process"]:
    """``"phase"`` where a phase's peak RSS is its own (the high-water mark can be reset), else
    ``"process"`` (the peak of the process so far); found once per process."""
    if not _SCOPE:
        _SCOPE.append("phase" if _reset_rss_peak() and _status_bytes("VmHWM") is not None else "process")
    return _SCOPE[0]  # type: ignore[return-value]


@dataclass
class PhasePeak:
    """The peaks of one phase in bytes: resident (CPU), allocated by CUDA tensors (None on the CPU)."""

    rss: int | None = None
    gpu: int | None = None


class PeakMeter:
    """Measures the peak memory of phases: ``with meter.phase() as peak: ...`` fills ``peak`` at the end.

    Phases do not nest (an inner phase resets the outer one's peak); a run measures its set-up and
    training epochs, its evaluations and its efficiency measurement one after the other.
    """

    def __init__(self, device: Any):
        self.device = torch.device(device)
        self.scope = rss_scope()

    @contextmanager
    def phase(self) -> Iterator[PhasePeak]:
        peak = PhasePeak()
        release_free_heap()
        resettable = self.scope == "phase" and _reset_rss_peak()
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            yield peak
        finally:
            if cuda:
                torch.cuda.synchronize(self.device)
                peak.gpu = int(torch.cuda.max_memory_allocated(self.device))
            hwm = _status_bytes("VmHWM") if resettable else None
            peak.rss = hwm if hwm is not None else _process_peak()


def larger(a: int | None, b: int | None) -> int | None:
    """The larger of two optional byte counts (None when both are None)."""
    if a is None:
        return b
    return a if b is None else max(a, b)


def gib(n: int | None) -> str:
    """``n`` bytes in GiB with two decimals ("-" for None)."""
    return "-" if n is None else f"{n / 2**30:.2f}"


def total_memory() -> int | None:
    """Physical memory of the machine in bytes (None where unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None
