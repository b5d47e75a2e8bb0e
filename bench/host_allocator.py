"""Keep freed CPU tensor memory in the process on glibc, instead of handing it back to the kernel.

Why (measured on the 2-core CPU machine these instructions target, torch 2.13 CPU build):
PyTorch's CPU allocator calls ``malloc`` for every activation and gradient. glibc serves blocks
above its mmap threshold (128 KiB, adapted upwards only after a free) with a fresh ``mmap`` and
returns them with ``munmap`` on ``free``, so every training step maps, zero-faults and unmaps
tens of megabytes. The kernel time this costs was 5-8 s of every 13-20 s of CPU time:

    tiny SimVP (batch 16, 10 -> 10, 64x64), s/step:  0.32 (default) -> 0.155 (heap only)
    tiny TAU, s/step:                                0.55 (default) -> 0.265 (heap only)
    tiny ConvLSTM / PredRNN (16x16 patches, small tensors): unchanged
    paper-size TAU, ``bench perf --methods tau --batch-size 4 --iters 3``: 1.00 -> 1.73 samples/s,
    peak resident memory 2,535 -> 2,778 MiB

``keep_freed_memory()`` sets ``M_MMAP_MAX = 0`` (every block comes from the heap, which reuses
freed memory) and ``M_TRIM_THRESHOLD = 1 GiB`` (the heap top is returned only beyond that), the
runtime equivalent of ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824``. The price is that
a process's resident memory stays at its peak until it exits, which is what a training process
does anyway. It is applied to CPU runs only (``bench run``/``bench audit`` on ``--device cpu``);
GPU memory goes through the CUDA caching allocator and is not affected. On anything but glibc
(macOS, musl) it does nothing. ``BENCH_KEEP_FREED_MEMORY=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_MAX = -4
TRIM_THRESHOLD_BYTES = 1 << 30

_applied: str | None = None


def keep_freed_memory() -> str:
    """Apply the setting once per process; return what was done (recorded in results)."""
    global _applied
    if _applied is not None:
        return _applied
    if os.environ.get("BENCH_KEEP_FREED_MEMORY", "1") == "0":
        _applied = "default (BENCH_KEEP_FREED_MEMORY=0)"
        return _applied
    libc = _glibc()
    if libc is None:
        _applied = "default (not glibc)"
        return _applied
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    _applied = "glibc heap only (M_MMAP_MAX=0, M_TRIM_THRESHOLD=1GiB)" if ok else "default (mallopt refused)"
    return _applied


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc only (musl has no such symbol)
        libc.mallopt
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc
