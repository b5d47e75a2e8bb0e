"""The named training choices: optimisers, learning-rate schedules and numeric precisions, one table each.

Each table maps the name a user writes (``optimizer=adamw``, ``schedule=none``, ``--precision
bf16``) to how it is made. The declared choices of :mod:`bench.spec.hparams` (what ``--set`` accepts)
and the factories the run uses (:func:`make_optimizer`, :func:`make_scheduler`, :func:`autocast`) are
both read from these tables, so a name is accepted exactly when it can be built.

Schedules are stepped once per training iteration over ``total_steps`` iterations: ``onecycle``
(OneCycleLR with the learning rate as its peak), ``cosine`` (cosine annealing to 0) and ``none``
(constant learning rate).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Mapping

import torch
from torch import nn

from bench.errors import BenchError

#: optimizer name -> factory(params, lr, weight_decay)
OPTIMIZERS: dict[str, Callable[[list[nn.Parameter], float, float], torch.optim.Optimizer]] = {
    "adam": lambda params, lr, wd: torch.optim.Adam(params, lr=lr, weight_decay=wd),
    "adamw": lambda params, lr, wd: torch.optim.AdamW(params, lr=lr, weight_decay=wd),
    "sgd": lambda params, lr, wd: torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=0.9),
}

#: schedule name -> factory(optimizer, peak lr, total iterations)
SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, float, int], Any]] = {
    "onecycle": lambda opt, lr, total: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total, 1)),
    "cosine": lambda opt, lr, total: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1)),
    "none": lambda opt, lr, total: torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0),
}

#: precision name -> autocast dtype (None: no autocast)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _lookup(table: Mapping[str, Any], name: Any, what: str, flag: str) -> Any:
    try:
        return table[str(name).lower()]
    except KeyError:
        raise BenchError(f"unknown {what} {name!r}; use {', '.join(table)} ({flag})") from None


def make_optimizer(params: list[nn.Parameter], hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The optimiser ``hp['optimizer']`` over ``params`` with ``hp['lr']`` and ``hp['weight_decay']``."""
    factory = _lookup(OPTIMIZERS, hp["optimizer"], "optimizer", "set with optimizer=...")
    return factory(params, float(hp["lr"]), float(hp["weight_decay"]))


def make_scheduler(optimizer: torch.optim.Optimizer, hp: Mapping[str, Any], total_steps: int):
    """The schedule ``hp['schedule']`` over ``total_steps`` iterations."""
    factory = _lookup(SCHEDULES, hp["schedule"], "schedule", "set with schedule=...")
    return factory(optimizer, float(hp["lr"]), total_steps)


def autocast(device: torch.device, precision: str):
    """Autocast context for ``precision`` (fp32: none)."""
    dtype = _lookup(PRECISIONS, precision, "precision", "--precision")
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
