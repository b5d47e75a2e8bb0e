"""What a method's pretraining stage receives (see ``MethodSpec.pretrain``).

The spatial-masking pretraining of PLA-SM, usable by any encoder -> translator -> decoder method
(``plasm``, ``simvp:sm``), is :mod:`bench.blocks.masked_pretrain`; it honours ``cache_dir`` below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from bench.spec.splits import Splits
from bench.spec.registry import DatasetSpec


@dataclass
class PretrainContext:
    """Inputs of a pretraining stage.

    ``cache_dir`` is a directory where a stage may store its product (e.g. a pretrained encoder)
    under a key of the hyperparameters it depends on, so that variants sharing it reuse it;
    ``None`` disables reuse. ``check_finite(loss, step)`` raises NonFiniteLossError on NaN/Inf.
    ``log(text)`` prints a progress line.
    """

    data: DatasetSpec
    splits: Splits
    hp: dict[str, Any]
    device: torch.device
    seed: int
    cache_dir: Path | None = None
    log: Callable[[str], None] = print
    check_finite: Callable[[torch.Tensor, int], None] = lambda loss, step: None
    extra: dict[str, Any] = field(default_factory=dict)
