"""Frame-quality metrics for video prediction: MSE, MAE, PSNR, SSIM (and the legacy SSIM).

All per-frame functions take ``pred`` and ``true`` of shape (B, T, C, H, W), on any device, and
return one value per frame, shape (B, T), as float64 on the inputs' device. They score exactly
what they are given: they do NOT clamp. :func:`score_frames` applies the scoring protocol below
(which metrics see raw and which see clipped predictions) and :class:`MetricState` accumulates it.

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
PSNR is stated per row in the report where it can be established (``bench.published``) and flagged
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

:class:`MetricState` accumulates float64 sums and a frame count on the device (no host sync per
update), can be merged and all-reduced across processes exactly (sums, not averages of averages),
and turns into a ``{key: float}`` dict with :meth:`MetricState.compute`.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from bench.errors import BenchError

#: Keys returned by :meth:`MetricState.compute`, in report order.
METRIC_KEYS: tuple[str, ...] = ("mse", "mae", "mse_pixel", "mae_pixel", "psnr", "ssim", "ssim_legacy",
                                "mse_clipped", "mae_clipped")
#: Keys scored on predictions clipped to [0, 1] (the rest score raw predictions; see the module docstring).
CLIPPED_KEYS: frozenset[str] = frozenset({"psnr", "ssim", "ssim_legacy", "mse_clipped", "mae_clipped"})
#: Name of the scoring protocol of ``mse``/``mae`` (recorded in every result).
SCORING_PROTOCOL: str = "published"

#: Whether a larger value is better, per metric key.
HIGHER_IS_BETTER: dict[str, bool] = {
    "mse": False,
    "mae": False,
    "mse_pixel": False,
    "mae_pixel": False,
    "psnr": True,
    "ssim": True,
    "ssim_legacy": True,
    "mse_clipped": False,
    "mae_clipped": False,
}

#: Upper bound on the per-frame PSNR (reached when a frame's MSE is 0).
PSNR_MAX_DB: float = 100.0

SSIM_WIN: int = 7
SSIM_K1: float = 0.01
SSIM_K2: float = 0.03
#: data_range that scikit-image <= 0.19 used implicitly for float images (dtype range -1..1).
LEGACY_SSIM_DATA_RANGE: float = 2.0

#: The exact conventions, as printed by the README and every report.
METRIC_CONVENTION: str = f"""\
Metric conventions (true frames have values in [0, 1]; every metric is computed per frame and then
averaged over all predicted frames of all test sequences; scoring protocol "{SCORING_PROTOCOL}": as the
SimVP/TAU/OpenSTL code, MSE and MAE score the RAW predictions, the other metrics score predictions
clipped to [0, 1]; non-finite predictions fail the run):
  mse          squared error SUMMED over the C*H*W values of a frame, raw predictions (the papers'
               convention; Moving MNIST 64x64x1 frames give values around 20-30).
  mae          absolute error SUMMED over the C*H*W values of a frame, raw predictions.
  mse_pixel    squared error averaged over the C*H*W values of a frame (= mse / (C*H*W)).
  mae_pixel    absolute error averaged over the C*H*W values of a frame (= mae / (C*H*W)).
  psnr         10*log10(1 / per-pixel MSE) in dB per frame (data range 1, float arithmetic, clipped
               predictions), then averaged; a frame with zero error is capped at {PSNR_MAX_DB:g} dB.
  ssim         scikit-image's structural_similarity(true, pred, data_range=1) with its defaults:
               7x7 uniform window, sample covariance (N-1, N=49), K1=0.01, K2=0.03, mean of the
               SSIM map over the interior after cropping 3 pixels per side; for C>1 the mean over
               channels (channel_axis); clipped predictions. This is the reference SSIM.
  ssim_legacy  the same with data_range=2: what scikit-image <= 0.19 silently used for float
               images (dtype range -1..1), i.e. what the SimVP/OpenSTL-family published tables
               report. Compare their SSIM with ssim_legacy, not with ssim.
  mse_clipped  the "clipped" variant of mse: predictions clipped to [0, 1] first. Never compared
               with mse or with published MSE.
  mae_clipped  the clipped variant of mae.
Higher is better for psnr, ssim, ssim_legacy; lower is better for the others."""


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
    """All :data:`METRIC_KEYS` per frame: ``{key: (B, T) float64 tensor}`` on the inputs' device.

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


# --------------------------------------------------------------------------------------------
# Accumulating state
# --------------------------------------------------------------------------------------------


class MetricState:
    """Running sums of the per-frame metrics per predicted-frame index (torchmetrics style).

    The state is ONE float64 tensor of shape (K + 1, T): row k holds the sum of metric
    ``METRIC_KEYS[k]`` over every sequence at predicted frame t, the last row the number of frames
    summed at each t. It lives on the device of the first update (or ``device``), so
    :meth:`update` never syncs with the host and :meth:`all_reduce` is a single collective.
    :meth:`compute` gives the mean over all frames (all frames of all sequences weigh the same);
    :meth:`compute_per_frame` the mean at each predicted frame 1..T (the per-horizon curve).

    ``update`` scores with :func:`score_frames` (the scoring protocol) unless ``protocol=False``,
    which scores exactly what it is given (:func:`per_frame_metrics`, with the clipped keys equal to
    the raw ones). Call :meth:`all_reduce` once, after the last update and before :meth:`compute`.
    """

    keys: tuple[str, ...] = METRIC_KEYS

    def __init__(self, device: torch.device | str | None = None, horizon: int | None = None,
                 protocol: bool = True) -> None:
        self._state: torch.Tensor | None = None
        self._device = None if device is None else torch.device(device)
        self._horizon = horizon
        self._protocol = protocol
        if device is not None and horizon is not None:
            self._ensure(self._device, horizon)

    # -- accumulation ----------------------------------------------------------------------

    def _ensure(self, device: torch.device, horizon: int) -> torch.Tensor:
        if self._state is None:
            self._state = torch.zeros(len(METRIC_KEYS) + 1, horizon, dtype=torch.float64, device=device)
        elif self._state.shape[1] != horizon:
            raise BenchError(f"a metric state of {self._state.shape[1]} predicted frames cannot take a batch of "
                             f"{horizon}; score one horizon per state")
        return self._state

    @torch.no_grad()
    def update(self, pred: torch.Tensor, true: torch.Tensor) -> dict[str, torch.Tensor]:
        """Add a batch of frames; returns the per-frame metrics ``{key: (B, T)}`` (on the device)."""
        if self._protocol:
            per_frame = score_frames(pred.detach(), true.detach())
        else:
            per_frame = per_frame_metrics(pred.detach(), true.detach())
            per_frame["mse_clipped"], per_frame["mae_clipped"] = per_frame["mse"], per_frame["mae"]
        state = self._ensure(self._device or pred.device, pred.shape[1])
        sums = torch.stack([per_frame[k].sum(dim=0) for k in METRIC_KEYS])  # (K, T)
        counts = sums.new_full((1, pred.shape[1]), float(pred.shape[0]))
        state.add_(torch.cat([sums, counts]).to(state.device))
        return per_frame

    def merge(self, other: "MetricState") -> "MetricState":
        """Add ``other``'s sums and counts into this state (exact); returns self."""
        if other._state is None:
            return self
        if self._state is None:
            self._state = other._state.detach().clone()
        else:
            self._ensure(self._state.device, other._state.shape[1]).add_(other._state.to(self._state.device))
        return self

    def reset(self) -> None:
        if self._state is not None:
            self._state.zero_()

    def all_reduce(self, group: Any = None) -> "MetricState":
        """Sum the state over all torch.distributed processes (a no-op when not initialised).

        Sums and counts are reduced, so the result equals one state that saw every process's
        frames. A process that scored nothing takes part with zeros (it needs ``horizon``).
        Returns self.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        backend = dist.get_backend(group)
        if backend == "nccl":
            comm_device = torch.device("cuda", torch.cuda.current_device())
        else:
            comm_device = self._state.device if self._state is not None else torch.device("cpu")
        if self._state is None and self._horizon is None:
            raise BenchError("an empty metric state needs its horizon to take part in all_reduce; "
                             "pass MetricState(horizon=T)")
        state = self._ensure(comm_device, self._state.shape[1] if self._state is not None else self._horizon)
        buf = state if state.device == comm_device else state.to(comm_device)
        dist.all_reduce(buf, op=dist.ReduceOp.SUM, group=group)
        if buf is not state:
            state.copy_(buf)
        return self

    # -- results ----------------------------------------------------------------------------

    @property
    def n_frames(self) -> int:
        """Frames accumulated so far (syncs with the device)."""
        return 0 if self._state is None else int(self._state[-1].sum().item())

    def _host(self) -> torch.Tensor:
        if self._state is None or float(self._state[-1].sum().item()) == 0.0:
            raise BenchError("no frames were scored, so there are no metrics; score at least one batch "
                             "(is the test split empty?)")
        return self._state.detach().cpu()

    def compute(self) -> dict[str, float]:
        """``{key: mean over all frames}`` for every key of :data:`METRIC_KEYS` (one host sync)."""
        state = self._host()
        totals = state.sum(dim=1).tolist()
        return {k: totals[i] / totals[-1] for i, k in enumerate(METRIC_KEYS)}

    def compute_per_frame(self) -> dict[str, list[float]]:
        """``{key: [mean at predicted frame 1, ..., T]}`` (frames no sequence reached are omitted)."""
        state = self._host()
        counts = state[-1]
        seen = counts > 0
        means = state[:-1, seen] / counts[seen]
        return {k: means[i].tolist() for i, k in enumerate(METRIC_KEYS)}

    def state_dict(self) -> dict[str, Any]:
        """Portable copy: ``{"keys": [...], "sums": (K, T) float64 CPU tensor, "counts": (T,)}``."""
        if self._state is None:
            sums, counts = torch.zeros(len(METRIC_KEYS), 0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
        else:
            cpu = self._state.detach().cpu()
            sums, counts = cpu[:-1].clone(), cpu[-1].clone()
        return {"keys": list(METRIC_KEYS), "sums": sums, "counts": counts}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        keys = list(state_dict.get("keys", []))
        if keys != list(METRIC_KEYS):
            raise BenchError(
                f"metric state has keys {keys}, this version expects {list(METRIC_KEYS)}; "
                "re-score the run instead of resuming its metric state"
            )
        sums = torch.as_tensor(state_dict["sums"], dtype=torch.float64).reshape(len(METRIC_KEYS), -1)
        counts = torch.as_tensor(state_dict["counts"], dtype=torch.float64).reshape(1, -1)
        device = self._state.device if self._state is not None else (self._device or sums.device)
        self._state = torch.cat([sums.cpu(), counts.cpu()]).to(device)

    def __repr__(self) -> str:
        where = "empty" if self._state is None else f"device={self._state.device}, horizon={self._state.shape[1]}"
        return f"MetricState({where})"


# --------------------------------------------------------------------------------------------
# SSIM speed / agreement benchmark
# --------------------------------------------------------------------------------------------


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


__all__ = [
    "HIGHER_IS_BETTER",
    "LEGACY_SSIM_DATA_RANGE",
    "METRIC_CONVENTION",
    "METRIC_KEYS",
    "MetricState",
    "PSNR_MAX_DB",
    "mae_per_frame",
    "mse_per_frame",
    "per_frame_metrics",
    "psnr_per_frame",
    "ssim_legacy_per_frame",
    "ssim_per_frame",
    "ssim_speed",
    "structured_frames",
]

