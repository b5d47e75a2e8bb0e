"""The machine a run executes on: device choice, seeding, random-state capture, synchronisation.

:func:`resolve_device` turns ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into a device or a
one-line error; :func:`seed_everything` seeds Python, NumPy and torch (and switches on deterministic
algorithms on the CPU, where runs repeat exactly); :func:`rng_state`/:func:`set_rng_state` capture
and replay torch's random state (a method's extra training passes draw the same masks);
:func:`synchronize` waits for the device before a timing is read.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from bench.errors import BenchError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; an unavailable device is a BenchError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BenchError(f"device {name!r} requested but no CUDA GPU is available here; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BenchError(f"device {name!r} does not exist: {torch.cuda.device_count()} GPU(s) here; use cuda:0..")
    elif device.type != "cpu":
        raise BenchError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def seed_everything(seed: int, device: torch.device) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)


def rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The torch random state (CPU, and the CUDA device's) to replay in a later pass."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def set_rng_state(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
