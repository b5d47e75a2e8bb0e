"""SSIM throughput of our batched torch SSIM against scikit-image on the same frames (``bench perf``).

A benchmark helper, not a metric: it times :func:`bench.metrics.functional.ssim_per_frame` (float64 and
float32 paths) and scikit-image's ``structural_similarity`` on deterministic structured frames and
reports frames/s and the largest difference between the two.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F

from bench.metrics.functional import ssim_per_frame


def structured_frames(n_frames: int, size: int = 64, seed: int = 0,
                      device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic (pred, true) float32 pairs of shape (1, n_frames, 1, size, size) in [0, 1].

    ``true`` alternates smooth random fields (bicubic upsampled 8x8 noise plus fine noise) and
    Gaussian blobs on a black background (Moving-MNIST-like sparsity); ``pred`` is a 3x3-blurred,
    noisy, clamped copy, so SSIM spans a realistic range.
    """
    g = torch.Generator().manual_seed(seed)
    n = n_frames
    low = torch.rand(n, 1, 8, 8, generator=g)
    smooth = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    smooth = (smooth + 0.1 * torch.rand(n, 1, size, size, generator=g)).clamp(0.0, 1.0)
    coords = torch.arange(size, dtype=torch.float32)
    yy, xx = coords.view(1, 1, size, 1), coords.view(1, 1, 1, size)
    cy = torch.rand(n, 1, 1, 1, generator=g) * size
    cx = torch.rand(n, 1, 1, 1, generator=g) * size
    width = 4.0 + 12.0 * torch.rand(n, 1, 1, 1, generator=g)
    blobs = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * width))
    odd = (torch.arange(n) % 2 == 1).view(n, 1, 1, 1)
    true = torch.where(odd, blobs, smooth)
    noise = 0.05 * torch.randn(n, 1, size, size, generator=g)
    pred = (F.avg_pool2d(true, 3, stride=1, padding=1, count_include_pad=False) + noise).clamp(0.0, 1.0)
    return pred.unsqueeze(0).to(device), true.unsqueeze(0).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ssim_speed(n_frames: int = 1000, size: int = 64, seed: int = 0, device: str | torch.device = "cpu") -> dict[str, Any]:
    """SSIM throughput and agreement: our batched torch SSIM vs scikit-image, on the same frames.

    Scores ``n_frames`` structured ``size`` x ``size`` single-channel frames (see
    :func:`structured_frames`) once with :func:`ssim_per_frame` (all frames in one batch, float64
    and float32 pooling, after one warm-up call) and once with scikit-image, one frame at a time as a
    user would (float64 NumPy copies of the same float32 frames, ``data_range=1``). Returns frames/s
    for each, and the max abs difference per frame and of the mean SSIM vs scikit-image.
    """
    import numpy as np
    from skimage.metrics import structural_similarity

    dev = torch.device(device)
    pred, true = structured_frames(n_frames, size, seed, dev)

    def timed(dtype: torch.dtype) -> tuple[torch.Tensor, float]:
        ssim_per_frame(pred[:, : min(8, n_frames)], true[:, : min(8, n_frames)], dtype=dtype)  # warm-up
        _sync(dev)
        t0 = time.perf_counter()
        out = ssim_per_frame(pred, true, dtype=dtype)
        _sync(dev)
        return out, time.perf_counter() - t0

    ours64, t64 = timed(torch.float64)
    ours32, t32 = timed(torch.float32)

    p_np = pred[0, :, 0].detach().cpu().numpy().astype(np.float64)
    t_np = true[0, :, 0].detach().cpu().numpy().astype(np.float64)
    t0 = time.perf_counter()
    ref = np.array([structural_similarity(t_np[i], p_np[i], data_range=1.0) for i in range(n_frames)])
    t_sk = time.perf_counter() - t0

    o64 = ours64[0].cpu().numpy()
    o32 = ours32[0].cpu().numpy()
    return {
        "n_frames": n_frames,
        "size": size,
        "device": str(dev),
        "torch_fps": n_frames / t64,
        "torch_float32_fps": n_frames / t32,
        "skimage_fps": n_frames / t_sk,
        "speedup": t_sk / t64,
        "max_abs_diff": float(np.abs(o64 - ref).max()),
        "mean_abs_diff": float(abs(o64.mean() - ref.mean())),
        "max_abs_diff_float32": float(np.abs(o32 - ref).max()),
        "mean_abs_diff_float32": float(abs(o32.mean() - ref.mean())),
        "mean_ssim": float(ref.mean()),
        "threads": torch.get_num_threads(),
    }


