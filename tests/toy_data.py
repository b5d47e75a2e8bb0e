"""Toy data for the tests: dataset geometries, tiny models, MNIST idx files.

Plain functions rather than fixtures, because test modules build their geometries at import time
(``DATA = toy_dataset(...)``); the fixtures (CLI runner, one trained run) are in ``conftest.py``.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.spec.dataset import DatasetSpec
from bench.spec.method import MethodSpec
from bench.spec.registry import get_method


def toy_dataset(in_frames: int = 4, out_frames: int = 3, channels: int = 1, height: int = 16, width: int = 16,
                name: str = "toy") -> DatasetSpec:
    """A dataset geometry with no data behind it (for building models and checking shapes).

    ``name`` picks the per-dataset hyperparameters: an unregistered name gets every method's
    ``"*"`` configuration, ``"mmnist"`` its Moving MNIST one."""
    return DatasetSpec(name=name, in_frames=in_frames, out_frames=out_frames, channels=channels, height=height,
                       width=width, load=lambda spec, config: None)


def tiny_model(method: str, data: DatasetSpec, variant: str | None = None,
               **overrides: Any) -> tuple[MethodSpec, torch.nn.Module, dict[str, Any]]:
    """``method``'s ``--tiny`` configuration for ``data`` (plus ``overrides``), built with seed 0."""
    spec = get_method(method)
    hp = spec.resolve_hparams(data.name, variant, overrides or None, tiny=True)
    torch.manual_seed(0)
    return spec, spec.create_model(data, hp), hp


def write_idx(path: Path, images: np.ndarray) -> bytes:
    """A gzipped MNIST idx3 image file of ``images`` (N x 28 x 28, uint8) at ``path``; its bytes.

    The gzip header carries no timestamp, so the same images always give the same bytes."""
    header = (2051).to_bytes(4, "big") + len(images).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    raw = gzip.compress(header + images.astype(np.uint8).tobytes(), mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return raw
