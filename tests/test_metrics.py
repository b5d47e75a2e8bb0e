"""bench.metrics.functional: agreement with scikit-image, hand-computed MSE/MAE, PSNR, the conventions and
the scoring protocol (MetricState: tests/test_metric_state.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio

import bench.metrics.functional as M
from bench.errors import BenchError
from bench.cost.metric_speed import ssim_speed
from bench.metrics.state import MetricState
from bench.metrics.functional import (
    HIGHER_IS_BETTER,
    METRIC_CONVENTION,
    METRIC_KEYS,
    PSNR_MAX_DB,
    mae_per_frame,
    mse_per_frame,
    per_frame_metrics,
    psnr_per_frame,
    ssim_legacy_per_frame,
    ssim_per_frame,
)

from metric_reference import (TOL_EXACT, TOL_FRAME, TOL_MEAN, assert_same_metrics, assert_ssim_agrees, generator,
                              noisy_batch, sk_ssim)


# --------------------------------------------------------------------------------------------
# Structured test frames, (B, T, C, H, W) float32 in [0, 1]
# --------------------------------------------------------------------------------------------


def random_pair(c: int, seed: int, b=2, t=3, h=16, w=20):
    g = generator(seed)
    true = torch.rand(b, t, c, h, w, generator=g)
    pred = (true + 0.3 * torch.randn(b, t, c, h, w, generator=g)).clamp(0, 1)
    return pred, true


def gradient_pair(c: int, h=16, w=20):
    yy = torch.linspace(0, 1, h).view(h, 1)
    xx = torch.linspace(0, 1, w).view(1, w)
    ramps = [xx.expand(h, w), yy.expand(h, w), (xx + yy) / 2]
    true = torch.stack([torch.stack([ramps[(k + ch) % 3] for ch in range(c)]) for k in range(3)])[None]
    pred = torch.stack([torch.stack([ramps[(k + ch + 1) % 3] ** 1.5 for ch in range(c)]) for k in range(3)])[None]
    return pred.float().contiguous(), true.float().contiguous()


def blob_pair(c: int, shift: int = 2, h=24, w=24):
    """Gaussian blobs on black (Moving-MNIST-like) and the same blobs shifted by ``shift`` px."""
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    frames_t, frames_p = [], []
    for k, (cy, cx) in enumerate([(8.0, 9.0), (12.0, 12.0), (15.0, 7.0)]):
        chans_t, chans_p = [], []
        for ch in range(c):
            s2 = 6.0 + 3 * ch + k
            chans_t.append(torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / s2))
            chans_p.append(torch.exp(-((ys - cy - shift) ** 2 + (xs - cx + shift) ** 2) / s2))
        frames_t.append(torch.stack(chans_t))
        frames_p.append(torch.stack(chans_p))
    return torch.stack(frames_p)[None], torch.stack(frames_t)[None]


def blurred_noisy_pair(c: int, seed: int = 3, h=20, w=16):
    g = generator(seed)
    low = torch.rand(2 * 2 * c, 1, 4, 4, generator=g)
    true = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    pred = F.avg_pool2d(true, 3, stride=1, padding=1, count_include_pad=False)
    pred = (pred + 0.05 * torch.randn(pred.shape, generator=g)).clamp(0, 1)
    return pred.reshape(2, 2, c, h, w), true.reshape(2, 2, c, h, w)


def near_constant_pair(c: int, seed: int = 4, h=16, w=16):
    """Worst case for float32 cancellation: near-constant frames close to 1 and half-bright frames."""
    g = generator(seed)
    true = 0.999 + 1e-3 * torch.rand(1, 2, c, h, w, generator=g)
    pred = 0.999 + 1e-3 * torch.rand(1, 2, c, h, w, generator=g)
    half = torch.zeros(1, 2, c, h, w)
    half[..., : w // 2] = 1.0
    true2 = (half + torch.where(half > 0, -1.0, 1.0) * 1e-3 * torch.rand(half.shape, generator=g))
    pred2 = (true2 * 0.999 + 0.0005).float()
    return torch.cat([pred, pred2], 1), torch.cat([true, true2], 1)


STRUCTURED = {
    "gradient": gradient_pair,
    "blobs": blob_pair,
    "blurred-noisy": blurred_noisy_pair,
    "near-constant": near_constant_pair,
}


# --------------------------------------------------------------------------------------------
# SSIM vs scikit-image
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [1, 2, 3])
def test_ssim_matches_skimage_random(c):
    pred, true = random_pair(c, seed=c)
    ours, ref = assert_ssim_agrees(pred, true)
    assert np.abs(ours - ref).max() <= TOL_EXACT
    assert ours.std() > 0.01  # frames differ, so the comparison is not vacuous


@pytest.mark.parametrize("c", [1, 2, 3])
@pytest.mark.parametrize("kind", sorted(STRUCTURED))
def test_ssim_matches_skimage_structured(kind, c):
    pred, true = STRUCTURED[kind](c)
    ours, ref = assert_ssim_agrees(pred, true)
    assert np.abs(ours - ref).max() <= TOL_EXACT
    # float32 computation still meets the contract on the hard cases
    assert_ssim_agrees(pred, true, dtype=torch.float32)


@pytest.mark.parametrize("c", [1, 3])
def test_legacy_ssim_is_skimage_with_data_range_2(c):
    pred, true = blurred_noisy_pair(c)
    legacy = ssim_legacy_per_frame(pred, true).numpy()
    ref2 = sk_ssim(pred, true, data_range=2.0)
    assert np.abs(legacy - ref2).max() <= TOL_EXACT
    # and it really differs from the reference SSIM (larger constants -> higher score)
    assert (legacy > ssim_per_frame(pred, true).numpy() + 1e-4).all()


def test_ssim_matches_skimage_fed_float32_like_a_user():
    pred, true = blob_pair(1, shift=1)
    ours = ssim_per_frame(pred, true).numpy()
    ref32 = sk_ssim(pred, true, np_dtype=np.float32)
    assert np.abs(ours - ref32).max() <= TOL_FRAME
    assert abs(ours.mean() - ref32.mean()) <= TOL_MEAN


def test_ssim_identical_frames_is_one_and_symmetric_inputs():
    pred, true = random_pair(2, seed=7)
    same = ssim_per_frame(true, true.clone())
    assert torch.allclose(same, torch.ones_like(same), atol=1e-12, rtol=0)
    const = torch.full((1, 1, 1, 9, 9), 0.3)
    assert ssim_per_frame(const, const.clone()).item() == pytest.approx(1.0, abs=1e-12)
    # different constants: luminance term only, as in scikit-image
    other = torch.full((1, 1, 1, 9, 9), 0.7)
    assert ssim_per_frame(other, const).item() == pytest.approx(sk_ssim(other, const).item(), abs=1e-12)
    assert ssim_per_frame(other, const).item() < 0.9


def test_ssim_minimum_size_and_chunking(monkeypatch):
    pred, true = random_pair(1, seed=9, b=3, t=5, h=7, w=7)  # 7x7: a single window per frame
    ref = sk_ssim(pred, true)
    full = ssim_per_frame(pred, true)
    assert np.abs(full.numpy() - ref).max() <= TOL_EXACT
    monkeypatch.setitem(M._CHUNK_VALUES, "cpu", 2 * 49)  # 2 frames per chunk -> 8 chunks
    chunked = ssim_per_frame(pred, true)
    assert torch.allclose(full, chunked, atol=1e-14, rtol=0)


def test_box_mean_equals_avg_pool():
    x = torch.rand(2, 3, 11, 13, dtype=torch.float64, generator=generator(11))
    assert torch.allclose(M._box_mean(x, 7), F.avg_pool2d(x, 7, stride=1), atol=1e-14, rtol=0)


# --------------------------------------------------------------------------------------------
# MSE / MAE / PSNR
# --------------------------------------------------------------------------------------------


def test_mse_mae_hand_computed_single_channel():
    true = torch.zeros(1, 2, 1, 2, 2)
    pred = torch.zeros(1, 2, 1, 2, 2)
    pred[0, 0, 0] = torch.tensor([[0.5, 0.0], [0.0, 0.25]])
    pred[0, 1] = 0.1
    mse = mse_per_frame(pred, true)
    mae = mae_per_frame(pred, true)
    assert mse.shape == (1, 2) and mse.dtype == torch.float64
    assert mse[0, 0].item() == pytest.approx(0.25 + 0.0625, abs=1e-12)
    assert mae[0, 0].item() == pytest.approx(0.75, abs=1e-12)
    assert mse[0, 1].item() == pytest.approx(4 * 0.1 ** 2, abs=1e-8)
    assert mae[0, 1].item() == pytest.approx(4 * 0.1, abs=1e-7)


def test_mse_mae_sum_over_channels_too():
    true = torch.full((2, 1, 3, 2, 2), 0.5)
    pred = true.clone()
    pred[0, 0, 0, 0, 0] = 1.0  # +0.5 in channel 0
    pred[0, 0, 2, 1, 1] = 0.25  # -0.25 in channel 2
    mse = mse_per_frame(pred, true)
    mae = mae_per_frame(pred, true)
    assert mse[0, 0].item() == pytest.approx(0.25 + 0.0625, abs=1e-12)
    assert mae[0, 0].item() == pytest.approx(0.75, abs=1e-12)
    assert mse[1, 0].item() == 0.0 and mae[1, 0].item() == 0.0


@pytest.mark.parametrize("c", [1, 3])
def test_psnr_matches_skimage(c):
    pred, true = random_pair(c, seed=20 + c)
    ours = psnr_per_frame(pred, true).numpy()
    p, t = pred.double().numpy(), true.double().numpy()
    ref = np.array([[peak_signal_noise_ratio(t[i, j], p[i, j], data_range=1.0) for j in range(p.shape[1])]
                    for i in range(p.shape[0])])
    assert np.abs(ours - ref).max() <= 1e-9
    ref2 = peak_signal_noise_ratio(t[0, 0], p[0, 0], data_range=2.0)
    assert psnr_per_frame(pred, true, data_range=2.0)[0, 0].item() == pytest.approx(ref2, abs=1e-9)


def test_psnr_of_perfect_frame_is_capped():
    true = torch.rand(1, 2, 1, 8, 8, generator=generator(5))
    pred = true.clone()
    pred[0, 1, 0, 0, 0] += 1.0 / 255
    psnr = psnr_per_frame(pred, true)
    assert psnr[0, 0].item() == pytest.approx(PSNR_MAX_DB)
    expected = 10 * math.log10(64 / (1.0 / 255) ** 2)
    assert psnr[0, 1].item() == pytest.approx(expected, abs=1e-3)
    assert psnr[0, 1].item() < PSNR_MAX_DB


def test_metrics_score_what_they_are_given_no_clamping():
    true = torch.zeros(1, 1, 1, 8, 8)
    pred = torch.full((1, 1, 1, 8, 8), 1.5)  # out of range on purpose
    assert mse_per_frame(pred, true).item() == pytest.approx(64 * 2.25)
    assert mae_per_frame(pred, true).item() == pytest.approx(64 * 1.5)


def test_input_errors_are_bench_errors():
    a = torch.rand(1, 2, 1, 8, 8)
    with pytest.raises(BenchError, match="differs"):
        mse_per_frame(a, a[:, :1])
    with pytest.raises(BenchError, match="B, T, C, H, W"):
        ssim_per_frame(a[0], a[0])
    with pytest.raises(BenchError, match="at least 7x7"):
        ssim_per_frame(a[..., :6], a[..., :6])
    with pytest.raises(BenchError, match="floating"):
        psnr_per_frame((a * 255).to(torch.uint8), (a * 255).to(torch.uint8))


# --------------------------------------------------------------------------------------------
# Conventions text, speed helper, accelerator
# --------------------------------------------------------------------------------------------


def test_convention_text_and_direction_table():
    assert set(HIGHER_IS_BETTER) == set(METRIC_KEYS)
    assert [k for k in METRIC_KEYS if HIGHER_IS_BETTER[k]] == ["psnr", "ssim", "ssim_legacy"]
    assert "\n" in METRIC_CONVENTION
    for k in METRIC_KEYS:
        assert f"  {k} " in METRIC_CONVENTION
    for phrase in ("scikit-image", "data_range=2", "data_range=1", "SUMMED", "7x7", "K1=0.01", "K2=0.03"):
        assert phrase in METRIC_CONVENTION


def test_ssim_speed_small():
    res = ssim_speed(n_frames=16, size=24, seed=1)
    assert res["n_frames"] == 16 and res["device"] == "cpu"
    assert res["torch_fps"] > 0 and res["skimage_fps"] > 0 and res["torch_float32_fps"] > 0
    assert res["max_abs_diff"] <= TOL_EXACT and res["mean_abs_diff"] <= TOL_EXACT
    assert res["max_abs_diff_float32"] <= TOL_FRAME and res["mean_abs_diff_float32"] <= TOL_MEAN
    assert 0.0 < res["mean_ssim"] < 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    pred, true = noisy_batch(9, c=3, h=32, w=32)
    cpu = per_frame_metrics(pred, true)
    gpu = per_frame_metrics(pred.cuda(), true.cuda())
    for k in cpu:
        assert gpu[k].device.type == "cuda"
        assert torch.allclose(gpu[k].cpu(), cpu[k], atol=1e-9, rtol=1e-9), k
    st = MetricState()
    st.update(pred.cuda(), true.cuda())
    ref = MetricState()
    ref.update(pred, true)
    assert_same_metrics(st.compute(), ref.compute(), tol=1e-9)


# --------------------------------------------------------------------------------------------
# Scoring protocol (issue 12): raw MSE/MAE as the SimVP/TAU/OpenSTL code, clipped SSIM/PSNR
# --------------------------------------------------------------------------------------------


def _openstl_style(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """The published protocol written out independently with numpy, as that code's ``metric``
    function does it: MSE/MAE = mean over (batch, time) of the error summed over C, H, W, on the
    raw predictions; then clip to [0, 1]; SSIM per frame with scikit-image on the clipped ones."""
    from skimage.metrics import structural_similarity

    out = {"mse": float(np.mean((pred - true) ** 2, axis=(0, 1)).sum()),
           "mae": float(np.mean(np.abs(pred - true), axis=(0, 1)).sum())}
    clipped = np.minimum(np.maximum(pred, 0.0), 1.0)
    ssim = [structural_similarity(true[b, t].transpose(1, 2, 0), clipped[b, t].transpose(1, 2, 0),
                                  channel_axis=2, data_range=1.0)
            for b in range(pred.shape[0]) for t in range(pred.shape[1])]
    out["ssim"] = float(np.mean(ssim))
    out["mse_clipped"] = float(np.mean((clipped - true) ** 2, axis=(0, 1)).sum())
    return out


def test_published_protocol_scores_raw_mse_and_clipped_ssim():
    g = generator(21)
    true = torch.rand(3, 4, 2, 16, 16, generator=g, dtype=torch.float64)
    pred = true + 0.6 * torch.randn(3, 4, 2, 16, 16, generator=g, dtype=torch.float64)  # leaves [0, 1] often
    assert (pred < 0).any() and (pred > 1).any()
    st = MetricState()
    st.update(pred, true)
    ours = st.compute()
    ref = _openstl_style(pred.numpy(), true.numpy())
    assert ours["mse"] == pytest.approx(ref["mse"], rel=1e-12)
    assert ours["mae"] == pytest.approx(ref["mae"], rel=1e-12)
    assert ours["ssim"] == pytest.approx(ref["ssim"], abs=1e-10)
    assert ours["mse_clipped"] == pytest.approx(ref["mse_clipped"], rel=1e-12)
    assert ours["mse"] > ours["mse_clipped"] * 1.05  # the two conventions differ here, and are kept apart
    assert ours["psnr"] == pytest.approx(psnr_per_frame(pred.clamp(0, 1), true).mean().item(), rel=1e-12)


def test_per_frame_index_means_are_the_horizon_curve():
    p1, t1 = noisy_batch(30, b=2, t=4)
    p2, t2 = noisy_batch(31, b=3, t=4)
    st = MetricState()
    st.update(p1, t1)
    st.update(p2, t2)
    curve = st.compute_per_frame()
    both_p, both_t = torch.cat([p1, p2]), torch.cat([t1, t2])
    want = mse_per_frame(both_p, both_t).mean(dim=0).tolist()
    assert curve["mse"] == pytest.approx(want, rel=1e-12)
    assert curve["ssim"] == pytest.approx(ssim_per_frame(both_p, both_t).mean(dim=0).tolist(), abs=1e-12)
    assert len(curve["psnr"]) == 4
    assert np.mean(curve["mse"]) == pytest.approx(st.compute()["mse"], rel=1e-12)
    with pytest.raises(BenchError, match="horizon"):
        st.update(*noisy_batch(32, b=1, t=3))
