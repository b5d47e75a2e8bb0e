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


def idx_bytes(images: np.ndarray, magic: int = 2051) -> bytes:
    """``images`` (N x rows x cols) as an MNIST idx3 file: the big-endian header, then the uint8 pixels."""
    n, rows, cols = images.shape
    header = b"".join(v.to_bytes(4, "big") for v in (magic, n, rows, cols))
    return header + images.astype(np.uint8).tobytes()


def write_idx(path: Path, images: np.ndarray) -> bytes:
    """An MNIST idx3 file of ``images`` at ``path``, gzipped when the name ends in ``.gz``; its bytes.

    The gzip header carries no timestamp, so the same images always give the same bytes."""
    raw = idx_bytes(images)
    if path.suffix == ".gz":
        raw = gzip.compress(raw, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return raw
