"""Batches produced ahead of the device: a background thread (pinned memory for CUDA) while it computes.

On the CPU the batches are made inline (a producer thread competes with the compute threads for the
same cores: tiny TAU 28 -> 20 samples/s on 2 cores with one). Batches may arrive as uint8 frames
(:func:`bench.spec.splits.raw_batches`) and are converted to [0, 1] floats after the copy to the
device (:func:`bench.spec.splits.to_unit_float`: the CPU's values on every device); batches already on
the device (Moving MNIST rendered there) or already pinned (torch's DataLoader) are not pinned again.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator

import torch

from bench.spec.splits import to_unit_float


def prefetch(batches: Iterator[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
             depth: int = 2) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Produce batches in a background thread (and pin them for the GPU) while the device computes.

    On the CPU the batches are made inline: a producer thread would compete with the compute
    threads for the same cores (measured: tiny TAU 28 -> 20 samples/s on 2 cores with a thread).
    """
    if depth <= 0 or device.type == "cpu":
        yield from ((to_unit_float(x.to(device)), to_unit_float(y.to(device))) for x, y in batches)
        return
    pin = device.type == "cuda"
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for x, y in batches:
                if stop.is_set():
                    return
                q.put((_pinned(x), _pinned(y)) if pin else (x, y))
            q.put(done)
        except BaseException as exc:  # re-raised in the consumer
            q.put(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            x, y = item
            yield to_unit_float(x.to(device, non_blocking=True)), to_unit_float(y.to(device, non_blocking=True))
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def _pinned(t: torch.Tensor) -> torch.Tensor:
    """``t`` in page-locked memory, unless it is on a device already or pinned already."""
    return t if t.device.type != "cpu" or t.is_pinned() else t.pin_memory()
