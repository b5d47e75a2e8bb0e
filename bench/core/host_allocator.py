"""Keep freed CPU tensor memory in the process on glibc, instead of handing it back to the kernel.

Why (measured on the 2-core CPU machine these instructions target, torch 2.13 CPU build):
PyTorch's CPU allocator calls ``malloc`` for every activation and gradient. glibc serves blocks
above its mmap threshold (128 KiB, adapted upwards only after a free) with a fresh ``mmap`` and
returns them with ``munmap`` on ``free``, and it trims the heap top back to the kernel once more
than 128 KiB is free there, so every training step maps, zero-faults and unmaps tens of megabytes.
The kernel time this costs was 5-8 s of every 13-20 s of CPU time:

    tiny SimVP (batch 16, 10 -> 10, 64x64), s/step:  0.32 (default) -> 0.155 (heap only)
    tiny TAU, s/step:                                0.55 (default) -> 0.265 (heap only)
    tiny ConvLSTM / PredRNN (16x16 patches, small tensors): unchanged
    paper-size TAU, ``bench perf --methods tau --batch-size 4 --iters 3``: 1.00 -> 1.73 samples/s,
    peak resident memory 2,535 -> 2,778 MiB (+10%: freed blocks in the middle of the heap are
    reused but not returned, so fragmentation raises the peak)

``keep_freed_memory()`` sets ``M_MMAP_MAX = 0`` (every block comes from the heap, which reuses
freed memory) and ``M_TRIM_THRESHOLD = 1 GiB`` (the heap top is returned only beyond that), the
runtime equivalent of ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824``. It is applied, on
CPU devices only, by ``bench run`` and ``bench demo`` (after the data and the model are built, before
training), ``bench audit`` and ``bench perf``; each records the setting it ran under. It is
process-wide and stays for the life of the process (a sweep's later runs, a test session). GPU
memory goes through the CUDA caching allocator and is not affected. It does nothing where malloc is
not glibc's (macOS, musl, or jemalloc/tcmalloc preloaded). ``BENCH_KEEP_FREED_MEMORY=0`` (or
``false``/``off``/``no``) turns it off.

What it costs in memory (measured, issue 25): the heap keeps what a training step freed, so the phase
after training (validation, the checkpoint, the test, the fps passes) would sit on training's footprint
(a one-epoch ``--quick`` paper-size SimVP: 7.0 GB resident through every phase). :func:`release_free_heap`
(glibc ``malloc_trim(0)``) hands the free pages back; :mod:`bench.core.memory` calls it once at the
start of each phase (never per step, which would bring back the page faults this setting removes).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from typing import Any

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_MAX = -4
TRIM_THRESHOLD_BYTES = 1 << 30
OFF_VALUES = ("0", "false", "off", "no")

_applied: str = ""


def keep_freed_memory() -> str:
    """Apply the setting once per process; return what is in effect (recorded in results)."""
    global _applied
    if _applied:
        return _applied
    if os.environ.get("BENCH_KEEP_FREED_MEMORY", "1").strip().lower() in OFF_VALUES:
        _applied = "default (BENCH_KEEP_FREED_MEMORY=0)"
        return _applied
    libc = glibc_malloc()
    if libc is None:
        _applied = "default (malloc is not glibc's)"
        return _applied
    no_mmap = libc.mallopt(M_MMAP_MAX, 0) == 1
    no_trim = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    if no_mmap and no_trim:
        _applied = "glibc heap only (M_MMAP_MAX=0, M_TRIM_THRESHOLD=1GiB)"
    else:
        _applied = f"partial (mallopt M_MMAP_MAX=0 {'ok' if no_mmap else 'refused'}, " \
                   f"M_TRIM_THRESHOLD=1GiB {'ok' if no_trim else 'refused'})"
    return _applied


def keep_freed_memory_on(device: Any) -> str:
    """Apply the setting if ``device`` is the CPU; return what is in effect for it ("" on a GPU)."""
    return keep_freed_memory() if getattr(device, "type", device) == "cpu" else ""


def setting_for(device: Any) -> str:
    """What a record made on ``device`` should say: the setting in effect in this process on CPU
    ("" if nothing applied it), "" on a GPU. Never applies anything, so a record cannot claim a
    setting that training did not run under."""
    return _applied if getattr(device, "type", device) == "cpu" else ""


def release_free_heap() -> bool:
    """Return the free pages of the heap to the kernel (glibc ``malloc_trim(0)``); False where malloc is
    not glibc's (nothing done)."""
    libc = glibc_malloc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


@functools.cache
def glibc_malloc() -> ctypes.CDLL | None:
    """The process's own C library, if it is glibc and its malloc is the one in use; else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        process = ctypes.CDLL(None)  # the symbols already loaded: no library search, no subprocess
        process.gnu_get_libc_version  # glibc only (musl has no such symbol)
        libc = ctypes.CDLL("libc.so.6")
        in_use = ctypes.cast(process.malloc, ctypes.c_void_p).value
        if in_use != ctypes.cast(libc.malloc, ctypes.c_void_p).value:  # jemalloc/tcmalloc preloaded
            return None
        libc.mallopt
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return libc
