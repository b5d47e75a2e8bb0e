"""CPU runs keep freed memory in the heap (bench.core.host_allocator): no mmap/munmap, no trim per step."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.core.host_allocator import glibc_malloc

_LIBC = glibc_malloc()
pytestmark = pytest.mark.skipif(_LIBC is None or not hasattr(_LIBC, "mallinfo2"), reason="glibc >= 2.33 only")

PROBE = """
import ctypes, torch
from bench.core.host_allocator import keep_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6"); libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p; libc.malloc.argtypes = [ctypes.c_size_t]; libc.free.argtypes = [ctypes.c_void_p]
print(keep_freed_memory())
before = libc.mallinfo2().hblkhd
t = torch.empty(16 * 1024 * 1024)  # 64 MiB: above any default mmap threshold
print(libc.mallinfo2().hblkhd - before)  # bytes mapped for it (0: it came from the heap)
block = libc.malloc(64 << 20)
grown = libc.mallinfo2().arena
libc.free(block)  # a free block at the heap top: glibc trims it unless the trim threshold is raised
print(grown - libc.mallinfo2().arena)  # bytes handed back to the kernel
"""


def _probe(setting: str) -> tuple[str, int, int]:
    env = {**os.environ, "BENCH_KEEP_FREED_MEMORY": setting}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    applied, mapped, trimmed = out.stdout.strip().splitlines()
    return applied, int(mapped), int(trimmed)


def test_large_tensors_come_from_the_heap_and_stay_there_once_applied():
    applied, mapped, trimmed = _probe("1")
    assert applied.startswith("glibc heap only") and mapped == 0 and trimmed == 0


@pytest.mark.parametrize("off", ["0", "off"])
def test_the_default_allocator_maps_large_blocks_so_the_probe_can_tell(off):
    applied, mapped, _ = _probe(off)
    assert applied.startswith("default") and mapped >= 64 << 20  # mapped per allocation: the cost removed
