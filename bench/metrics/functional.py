"""Frame-quality metrics for video prediction: MSE, MAE, PSNR, SSIM (and the legacy SSIM).

All per-frame functions take ``pred`` and ``true`` of shape (B, T, C, H, W), on any device, and
return one value per frame, shape (B, T), as float64 on the inputs' device. They score exactly
what they are given: they do NOT clamp. :func:`score_frames` applies the scoring protocol below
(which metrics see raw and which see clipped predictions) and :class:`bench.metrics.state.MetricState` accumulates it.

The scoring protocol: whose code does what. The papers say nothing about clipping: TAU Sec. 4
"Measurement" and PLA-SM Sec. IV-A "Evaluation Metrics" only name the metrics. The code that
produced the SimVP / TAU numbers (SimVP's ``API/metrics.py`` and OpenSTL's
``openstl/core/metrics.py``, function ``metric``) computes MSE and MAE on the RAW predictions, then
clips the predictions to [0, 1] and computes SSIM and PSNR on the clipped ones. That is our default,
the **published protocol**: ``mse``/``mae`` (and their per-pixel forms) score raw predictions, so
they are the columns compared with paper rows. The **clipped** variant scores MSE/MAE after clipping
too (what this harness did before; lower than the published protocol whenever outputs leave
[0, 1]): it is kept under its own names, ``mse_clipped``/``mae_clipped``, and never shown or ranked
in the same column as published-protocol numbers. PSNR, SSIM and SSIM (legacy) are always computed on
clipped predictions, as in both codes. A prediction that is not finite (NaN/Inf) is never scored:
the runner fails the run instead (clipping would turn +Inf into a finite score).

PSNR in the published rows. OpenSTL computes PSNR per frame in float from [0, 1] frames:
``20*log10(1/sqrt(mse))``, as we do (``psnr``). The original SimVP code, and copies of it in other
repositories, compute it as ``mse = mean((uint8(pred*255) - uint8(true*255))**2)`` in uint8
arithmetic: the subtraction and the square wrap around modulo 256, which shrinks large errors and
inflates the PSNR; frames are truncated, not rounded, to 8 bits. Which code produced a published
PSNR is stated per row in the report where it can be established (``bench.report.published``) and flagged
where it cannot; our ``psnr`` is never the wrapped variant.

Conventions. The papers are silent on all of these: TAU Sec. 4 "Measurement" and PLA-SM Sec. IV-A
"Evaluation Metrics" only name the metrics (citing [29, 103] and [14, 8, 10]). We follow the metric
code released with SimVP / TAU (OpenSTL), which computes MSE/MAE as the error summed over C, H, W
and averaged over sequences and frames, and SSIM with scikit-image's ``structural_similarity``:

- MSE / MAE: squared / absolute error SUMMED over the C*H*W values of a frame, then averaged over
  frames and sequences. This is the convention behind the published Moving MNIST numbers (MSE
  ~20-30 for 64x64 frames). The per-pixel means are reported too, as ``mse_pixel``/``mae_pixel``.
- PSNR: per frame, 10*log10(data_range^2 / per-pixel MSE of the frame), then averaged over frames
  (not the PSNR of the average MSE). Our choice where a frame's MSE is 0 (PSNR = +inf): PSNR is
  capped at :data:`PSNR_MAX_DB` = 100 dB, i.e. the per-pixel MSE is floored at
  1e-10 * data_range^2. Any frame that differs by one 8-bit grey level (1/255) in a single pixel of
  a 64x64 frame scores about 84 dB, so the cap only ever touches (numerically) perfect frames; a
  capped frame keeps the mean finite.
- SSIM: scikit-image's ``structural_similarity(true, pred, data_range=1.0)`` with its defaults
  (Wang et al. 2004 SSIM with a 7x7 uniform window, sample covariances (normalised by N-1,
  N = 49), K1 = 0.01, K2 = 0.03, and the mean of the SSIM map over the interior that remains after
  cropping (7 - 1) // 2 = 3 pixels on each side). For C > 1 it is the mean over channels of the
  per-channel SSIM (scikit-image's ``channel_axis``). Computed here with separable valid-mode
  box means (window sums) - exact for the cropped interior, because no window there touches the
  border, so scikit-image's reflect padding never enters - in float64: float32 is 2-2.5x faster on
  CPU but differs from scikit-image by up to ~1e-5 per frame on near-constant frames close to 1
  (measured), float64 agrees to ~1e-13. Per frame, then averaged over frames.
- SSIM (legacy), ``ssim_legacy``: the same with data_range = 2. scikit-image <= 0.19 inferred the
  data range of float images from the dtype range (-1, 1), i.e. 2, when none was given; the
  published tables (computed with ``compare_ssim``/``structural_similarity`` on float frames in
  [0, 1] without ``data_range``) used that value, so ``ssim_legacy`` is the number to compare with
  them. It is higher than ``ssim`` because C1 and C2 are 4x larger.

:class:`bench.metrics.state.MetricState` accumulates float64 sums and a frame count on the device (no host sync per
update), can be merged and all-reduced across processes exactly (sums, not averages of averages),
and turns into a ``{key: float}`` dict with :meth:`MetricState.compute`.
"""

from __future__ import annotations

import torch

from bench.errors import BenchError
from bench.metrics.declarations import METRICS, PSNR_MAX_DB, SCORING_PROTOCOL, convention_text

#: Keys returned by :meth:`MetricState.compute`, in report order (:data:`bench.metrics.declarations.METRICS`).
METRIC_KEYS: tuple[str, ...] = tuple(m.key for m in METRICS)
#: Keys scored on predictions clipped to [0, 1] (the rest score raw predictions; see the module docstring).
CLIPPED_KEYS: frozenset[str] = frozenset(m.key for m in METRICS if m.clipped)

#: Whether a larger value is better, per metric key.
HIGHER_IS_BETTER: dict[str, bool] = {m.key: m.higher_is_better for m in METRICS}

SSIM_WIN: int = 7
SSIM_K1: float = 0.01
SSIM_K2: float = 0.03
#: data_range that scikit-image <= 0.19 used implicitly for float images (dtype range -1..1).
LEGACY_SSIM_DATA_RANGE: float = 2.0

#: The exact conventions, as printed by the README and every report (built from the declarations).
METRIC_CONVENTION: str = convention_text()


# --------------------------------------------------------------------------------------------
# Per-frame functions
# --------------------------------------------------------------------------------------------


def _check_pair(pred: torch.Tensor, true: torch.Tensor) -> None:
    if not isinstance(pred, torch.Tensor) or not isinstance(true, torch.Tensor):
        raise BenchError("metrics need torch tensors for pred and true; convert with torch.as_tensor(...) first")
    if pred.shape != true.shape:
        raise BenchError(
            f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(true.shape)}; "
            "the model must output (B, T', C, H, W) matching the dataset's target frames"
        )
    if pred.dim() != 5:
        raise BenchError(
            f"metrics expect (B, T, C, H, W) tensors, got {pred.dim()} dimensions {tuple(pred.shape)}; "
            "add the missing batch/time/channel axes (e.g. x[None] or x.unsqueeze(2))"
        )
    if not (pred.is_floating_point() and true.is_floating_point()):
        raise BenchError(
            f"metrics expect floating-point frames in [0, 1], got {pred.dtype} and {true.dtype}; "
            "convert with x.float() / 255 first"
        )
    if pred.device != true.device:
        raise BenchError(f"pred is on {pred.device} but true is on {true.device}; move both to one device")


def _diff64(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    _check_pair(pred, true)
    return pred.to(torch.float64) - true.to(torch.float64)


def mse_per_frame(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """(B, T) squared error summed over the C*H*W values of each frame (float64)."""
    return _diff64(pred, true).square().sum(dim=(2, 3, 4))


def mae_per_frame(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """(B, T) absolute error summed over the C*H*W values of each frame (float64)."""
    return _diff64(pred, true).abs().sum(dim=(2, 3, 4))


def _psnr_from_pixel_mse(mse_pixel: torch.Tensor, data_range: float) -> torch.Tensor:
    dr2 = float(data_range) ** 2
    floor = dr2 * 10.0 ** (-PSNR_MAX_DB / 10.0)
    return 10.0 * torch.log10(dr2 / mse_pixel.clamp_min(floor))


def psnr_per_frame(pred: torch.Tensor, true: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """(B, T) PSNR in dB: 10*log10(data_range^2 / per-pixel MSE of the frame), float64.

    A frame whose MSE is 0 (or below 1e-10 * data_range^2) scores :data:`PSNR_MAX_DB` (100 dB)
    instead of +inf. NaN inputs give NaN.
    """
    per_pixel = _diff64(pred, true).square().mean(dim=(2, 3, 4))
    return _psnr_from_pixel_mse(per_pixel, data_range)


def _box_mean(x: torch.Tensor, win: int) -> torch.Tensor:
    """Valid-mode mean over win x win windows of (N, C, H, W): separable sums of unfolded windows.

    Equal to ``F.avg_pool2d(x, win, stride=1)`` (and to scipy's ``uniform_filter`` on the cropped
    interior); on CPU in float64 it measured ~1.7x faster than avg_pool2d on cache-sized chunks.
    """
    x = x.unfold(-1, win, 1).sum(dim=-1)
    return x.unfold(-2, win, 1).sum(dim=-1) / float(win * win)


#: Frames are scored in chunks of about this many input values (C*H*W per frame): small chunks
#: keep the five pooled maps in cache on CPU; on accelerators big chunks only bound the memory.
_CHUNK_VALUES = {"cpu": 1 << 16}
_CHUNK_VALUES_DEFAULT = 1 << 22


def _ssim_chunk(x: torch.Tensor, y: torch.Tensor, data_ranges: tuple[float, ...], win: int) -> list[torch.Tensor]:
    """Per-frame SSIM of x=true, y=pred, (N, C, H, W) in the compute dtype, for each data range."""
    c = x.shape[1]
    # Variances are E[x^2] - E[x]^2, exact for any shift of x; subtracting each frame's mean
    # first shrinks the cancellation error (it matters in float32; harmless in float64).
    mx = x.mean(dim=(2, 3), keepdim=True)
    my = y.mean(dim=(2, 3), keepdim=True)
    x = x - mx
    y = y - my
    pooled = _box_mean(torch.cat([x, y, x * x, y * y, x * y], dim=1), win)
    ux, uy, uxx, uyy, uxy = pooled.split(c, dim=1)
    n = win * win
    cov_norm = n / (n - 1.0)  # sample covariance, scikit-image's use_sample_covariance=True
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    ux = ux + mx
    uy = uy + my
    lum_num = 2.0 * ux * uy
    lum_den = ux * ux + uy * uy
    cs_num = 2.0 * vxy
    cs_den = vx + vy
    out = []
    for data_range in data_ranges:
        c1 = (SSIM_K1 * data_range) ** 2
        c2 = (SSIM_K2 * data_range) ** 2
        smap = ((lum_num + c1) * (cs_num + c2)) / ((lum_den + c1) * (cs_den + c2))
        # mean of the SSIM map over the cropped interior (in float64), then over channels
        out.append(smap.to(torch.float64).mean(dim=(2, 3)).mean(dim=1))
    return out


def _ssim_frames(pred: torch.Tensor, true: torch.Tensor, data_ranges: tuple[float, ...],
                 dtype: torch.dtype = torch.float64, win: int = SSIM_WIN) -> list[torch.Tensor]:
    """(B, T) float64 SSIM for each of ``data_ranges`` (the pooled moments are shared)."""
    _check_pair(pred, true)
    b, t, c, h, w = true.shape
    if h < win or w < win:
        raise BenchError(
            f"SSIM needs frames of at least {win}x{win} pixels, got {h}x{w}; "
            "score larger frames or leave SSIM out"
        )
    x = true.reshape(b * t, c, h, w)
    y = pred.reshape(b * t, c, h, w)
    budget = _CHUNK_VALUES.get(true.device.type, _CHUNK_VALUES_DEFAULT)
    step = max(1, budget // (c * h * w))
    parts: list[list[torch.Tensor]] = [[] for _ in data_ranges]
    for i in range(0, b * t, step):
        res = _ssim_chunk(x[i:i + step].to(dtype), y[i:i + step].to(dtype), data_ranges, win)
        for acc, r in zip(parts, res):
            acc.append(r)
    return [torch.cat(acc).reshape(b, t) for acc in parts]


def ssim_per_frame(pred: torch.Tensor, true: torch.Tensor, data_range: float = 1.0,
                   dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(B, T) SSIM of each frame, float64; equals scikit-image's

    ``structural_similarity(true[b, t, 0], pred[b, t, 0], data_range=data_range)`` for C == 1 and
    ``structural_similarity(true[b, t], pred[b, t], data_range=data_range, channel_axis=0)`` for
    C > 1 (7x7 uniform window, sample covariance, K1=0.01, K2=0.03, interior mean, channel mean).

    ``dtype`` is the precision of the window means and the SSIM map. float64 (default) agrees with
    scikit-image to ~1e-13; float32 is 2-2.5x faster on CPU and agrees to ~1e-5 per frame in the
    worst cases we measured (near-constant frames close to 1), ~3e-7 on ordinary frames.
    """
    return _ssim_frames(pred, true, (float(data_range),), dtype)[0]


def ssim_legacy_per_frame(pred: torch.Tensor, true: torch.Tensor,
                          dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """LEGACY SSIM: :func:`ssim_per_frame` with data_range = 2.

    scikit-image <= 0.19 used the dtype range of float images, (-1, 1), i.e. data_range 2, when no
    data_range was passed; the published TAU / PLA-SM / OpenSTL tables were computed that way.
    Use it only to compare with those tables; the reference SSIM is :func:`ssim_per_frame`.
    """
    return ssim_per_frame(pred, true, data_range=LEGACY_SSIM_DATA_RANGE, dtype=dtype)


def per_frame_metrics(pred: torch.Tensor, true: torch.Tensor) -> dict[str, torch.Tensor]:
    """mse, mae, mse_pixel, mae_pixel, psnr, ssim and ssim_legacy of exactly the given frames, per
    frame: ``{key: (B, T) float64 tensor}`` on the inputs' device (no clipping; :func:`score_frames`
    applies the scoring protocol).

    Shares the error tensor and the SSIM moments between metrics, so it is cheaper than calling
    the individual functions.
    """
    d = _diff64(pred, true)
    pixels = d.shape[2] * d.shape[3] * d.shape[4]
    sq = d.square().sum(dim=(2, 3, 4))
    ab = d.abs().sum(dim=(2, 3, 4))
    ssim, ssim_legacy = _ssim_frames(pred, true, (1.0, LEGACY_SSIM_DATA_RANGE))
    return {
        "mse": sq,
        "mae": ab,
        "mse_pixel": sq / pixels,
        "mae_pixel": ab / pixels,
        "psnr": _psnr_from_pixel_mse(sq / pixels, 1.0),
        "ssim": ssim,
        "ssim_legacy": ssim_legacy,
    }


def score_frames(pred: torch.Tensor, true: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every :data:`METRIC_KEYS` value per frame under the scoring protocol (module docstring):
    ``mse``/``mae``/``*_pixel`` on the raw ``pred``, the :data:`CLIPPED_KEYS` on ``pred`` clipped
    to [0, 1]. ``pred`` must be finite (the runner checks); ``{key: (B, T) float64}``."""
    d = _diff64(pred, true)
    pixels = d.shape[2] * d.shape[3] * d.shape[4]
    sq, ab = d.square().sum(dim=(2, 3, 4)), d.abs().sum(dim=(2, 3, 4))
    clipped = per_frame_metrics(pred.clamp(0.0, 1.0), true)
    out = {"mse": sq, "mae": ab, "mse_pixel": sq / pixels, "mae_pixel": ab / pixels,
           "psnr": clipped["psnr"], "ssim": clipped["ssim"], "ssim_legacy": clipped["ssim_legacy"],
           "mse_clipped": clipped["mse"], "mae_clipped": clipped["mae"]}
    return {k: out[k] for k in METRIC_KEYS}


__all__ = [
    "CLIPPED_KEYS",
    "HIGHER_IS_BETTER",
    "LEGACY_SSIM_DATA_RANGE",
    "METRIC_CONVENTION",
    "METRIC_KEYS",
    "PSNR_MAX_DB",
    "SCORING_PROTOCOL",
    "mae_per_frame",
    "mse_per_frame",
    "per_frame_metrics",
    "psnr_per_frame",
    "ssim_legacy_per_frame",
    "ssim_per_frame",
]

