"""CPU runs keep freed memory in the heap (bench.host_allocator): no mmap/munmap per training step."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.host_allocator import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None or not hasattr(_glibc(), "mallinfo2"), reason="glibc >= 2.33 only")

PROBE = """
import ctypes, torch
from bench.host_allocator import keep_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6"); libc.mallinfo2.restype = MallInfo2
print(keep_freed_memory())
before = libc.mallinfo2().hblkhd
t = torch.empty(16 * 1024 * 1024)  # 64 MiB: above any default mmap threshold
print(libc.mallinfo2().hblkhd - before)
"""


def _probe(setting: str) -> tuple[str, int]:
    env = {**os.environ, "BENCH_KEEP_FREED_MEMORY": setting}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    applied, mapped = out.stdout.strip().splitlines()
    return applied, int(mapped)


def test_large_tensors_come_from_the_heap_once_applied():
    applied, mapped = _probe("1")
    assert applied.startswith("glibc heap only") and mapped == 0
    applied, mapped = _probe("0")  # the default allocator maps it: the probe can tell the difference
    assert applied.startswith("default") and mapped >= 64 * 1024 * 1024
