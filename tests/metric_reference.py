"""The scikit-image reference of SSIM and the tolerances the metric tests hold it to
(``tests/test_metrics.py``, ``tests/test_metric_state.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from bench.metrics.functional import METRIC_KEYS, ssim_per_frame


# Tolerances the metric must meet with float32 inputs (the task's contract) ...
TOL_FRAME, TOL_MEAN = 1e-4, 1e-5
# ... and what the default float64 computation actually achieves.
TOL_EXACT = 1e-9


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sk_ssim(pred: torch.Tensor, true: torch.Tensor, data_range: float = 1.0, np_dtype=np.float64) -> np.ndarray:
    """scikit-image reference, one frame at a time: (B, T)."""
    b, t, c = true.shape[:3]
    p = pred.detach().cpu().numpy().astype(np_dtype)
    g = true.detach().cpu().numpy().astype(np_dtype)
    out = np.empty((b, t))
    for i in range(b):
        for j in range(t):
            if c == 1:
                out[i, j] = structural_similarity(g[i, j, 0], p[i, j, 0], data_range=data_range)
            else:
                out[i, j] = structural_similarity(g[i, j], p[i, j], data_range=data_range, channel_axis=0)
    return out


def assert_ssim_agrees(pred, true, data_range=1.0, tol_frame=TOL_FRAME, tol_mean=TOL_MEAN, **kw):
    ours = ssim_per_frame(pred, true, data_range=data_range, **kw).numpy()
    ref = sk_ssim(pred, true, data_range)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= tol_frame, np.abs(ours - ref).max()
    assert abs(ours.mean() - ref.mean()) <= tol_mean
    return ours, ref


def noisy_batch(seed: int, b: int = 4, t: int = 3, c: int = 1, h: int = 12, w: int = 12):
    """(prediction, truth) in [0, 1]: the truth and a noisy copy of it."""
    g = generator(seed)
    true = torch.rand(b, t, c, h, w, generator=g)
    pred = (0.7 * true + 0.3 * torch.rand(b, t, c, h, w, generator=g)).clamp(0, 1)
    return pred, true


def assert_same_metrics(d1: dict, d2: dict, tol: float = 1e-12):
    assert list(d1) == list(d2) == list(METRIC_KEYS)
    for k in d1:
        assert d1[k] == pytest.approx(d2[k], rel=tol, abs=tol), k
