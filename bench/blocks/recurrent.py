"""Shared machinery of the recurrent baselines (ConvLSTM, PredRNN, PredRNN++, PredRNN-V2): patches,
the recurrent predictor, the scheduled-sampling training forward, time-reversed passes, rollout (the
schedules themselves, on the run's clock: :mod:`bench.blocks.schedules`).

This module registers nothing; :mod:`bench.baselines.convlstm`, :mod:`bench.baselines.predrnn`,
:mod:`bench.baselines.predrnnpp` and :mod:`bench.baselines.predrnnv2` build on it.

Patches
-------
Both baselines run their recurrent cells on *patchified* frames: a (C, H, W) frame is cut into
non-overlapping p x p patches and every patch becomes a channel vector, giving a (p*p*C, H/p, W/p)
tensor (Shi et al. 2015, Sec. 4.1 splits 64x64 Moving MNIST frames into 16x16 grids of 4x4 patches;
PredRNN, Wang et al. 2017, Sec. 4.1, does the same). Channel order is (row-in-patch,
column-in-patch, c), the frame channel varying fastest: the layout of the reference code
(PredRNN's ``reshape_patch``, also OpenSTL's), so that reference weights load one to one (the
golden tests, ``tests/test_reference_match.py``, use a 2-channel PredRNN to pin it). The map is a
pure permutation, so :func:`unpatchify` inverts it exactly. Frames whose height or width is not
divisible by the patch size raise a :class:`BenchError` at build time.

Training protocol (the "reference protocol" of PredRNN's released code, also used by OpenSTL)
-------------------------------------------------------------------------------------------------
The model sees the whole sequence ``s = cat(x, y)`` of ``T = T_in + T_out`` frames (20 on Moving
MNIST) and predicts every next frame ``s[1..T-1]`` (19 one-step predictions); the loss is the MSE
over all of them. At step ``t`` (predicting ``s[t+1]``) the cell input is

* ``s[t]`` for the ``T_in`` context steps ``t < T_in``;
* for ``t >= T_in`` (scheduled sampling, Bengio et al. 2015): ``s[t]`` with probability ``eta`` and
  the model's own previous prediction otherwise. The coin is drawn per (sequence, step) with
  ``torch.rand`` on the input's device, so the global torch seed fixes it; the coin is always drawn
  (also when ``eta`` is 0 or 1) so that the random stream does not depend on ``progress``.
  The fed-back prediction is not detached (as in the reference code), so gradients flow through
  the autoregressive path.

``eta`` falls from 1 to 0 over training (``ss_stop``, the reference's ratio; reverse scheduled
sampling for PredRNN-V2): the schedules, and how the reference's iteration counts become fractions
of this run's training, are in :mod:`bench.blocks.schedules`.

:func:`scheduled_sampling_step` is this training forward for a *given* mask (the seam the golden
tests use to replay the reference's scheduled-sampling draws); :func:`recurrent_train_step` draws
the mask and calls it.

Time-reversed passes (``reverse_input``)
----------------------------------------
The authors' trainers (PredRNN-V2's ``core/trainer.py::train``, also PredRNN++'s TensorFlow
``train.py``) take a SECOND optimiser step on the time-reversed sequence after every step, with
the same scheduled-sampling mask, and report the mean of the two losses.
:func:`time_reversed_passes` gives these passes to the training loop (``MethodSpec.train_passes``);
the loop (:func:`bench.run.epoch.train_epoch`) takes one optimiser step per pass, replays the
random state so that every pass draws the same mask, and steps the learning-rate schedule once per
iteration (a batch), so ``progress`` counts iterations as the authors' ``itr`` does.

Test-time protocol
------------------
:meth:`RecurrentPredictor.forward` on the ``T_in`` context frames runs ``T_in - 1`` teacher-forced
steps and then ``pred_len`` autoregressive steps, feeding back its own (unclipped) predictions, and
returns the ``pred_len`` future frames as they are (raw, unclipped, like SimVP and TAU: the scoring
protocol of :mod:`bench.metrics.functional` scores raw MSE/MAE and clips only for SSIM/PSNR, as the reference
code does; clipping inside the model would lower this baseline's MSE alone). This is the reference's
test-time path: OpenSTL's
PredRNN/ConvLSTM ``forward`` passes an all-zero "real input" mask for every step after the context
(with ``reverse_scheduled_sampling`` on, the mask covers every step and is 1 on the context steps
only, which gives the same inputs), so every future step reads the previous prediction. The
reference returns the raw predictions, and so do we; the golden tests compare
:meth:`RecurrentPredictor.rollout` and ``forward`` with them. On Moving MNIST that is 9 + 10 = 19
cell steps, the same 19 steps the reference code runs over its 20-frame input, so fvcore's count
of ``forward`` on a (1, 10, 1, 64, 64) input equals the published FLOPs (see
:func:`recurrent_flops_inputs`).

Cells (both baselines; checked against the reference code by the golden tests)
-----------------------------------------------------------------------------
Convolutions are bias-free and there are no other gate biases except the constant forget bias the
cell defines (see each module); layer norm (``layer_norm=True``) is PredRNN's PyTorch/OpenSTL one,
``nn.LayerNorm([C, H, W])`` on each convolution's output: statistics over (C, H, W) of one sample,
an affine weight and bias *per element* of (C, H, W) (:func:`make_norm`).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from bench.blocks.schedules import (  # noqa: F401 - the schedule names are re-exported from here too
    DEFAULT_RSS,
    DEFAULT_SS_STOP,
    REFERENCE_ITERATIONS,
    recurrent_schedule,
    reverse_ss_mask,
    rss_probabilities,
    sample_reverse_mask,
    sample_true_mask,
    ss_eta,
    validate_rss,
)
from bench.errors import BenchError
from bench.spec.registry import DatasetSpec

# --------------------------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------------------------


def patchify(frames: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T, p*p*C, H/p, W/p): each p x p patch becomes a channel vector.

    Channel ``(i * p + j) * C + c`` of grid cell (gh, gw) is pixel (c, p*gh + i, p*gw + j).
    """
    b, t, c, h, w = frames.shape
    if h % patch or w % patch:
        raise BenchError(f"frames of {h}x{w} cannot be cut into {patch}x{patch} patches; "
                         f"set patch_size to a divisor of both")
    x = frames.reshape(b, t, c, h // patch, patch, w // patch, patch)
    x = x.permute(0, 1, 4, 6, 2, 3, 5)  # b, t, pi, pj, c, gh, gw
    return x.reshape(b, t, patch * patch * c, h // patch, w // patch)


def unpatchify(patches: torch.Tensor, patch: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, T, p*p*C, h, w) -> (B, T, C, h*p, w*p)."""
    b, t, cp, gh, gw = patches.shape
    c = cp // (patch * patch)
    x = patches.reshape(b, t, patch, patch, c, gh, gw)
    x = x.permute(0, 1, 4, 5, 2, 6, 3)  # b, t, c, gh, pi, gw, pj
    return x.reshape(b, t, c, gh * patch, gw * patch)


def check_geometry(data: DatasetSpec, patch_size: int) -> None:
    """Raise a :class:`BenchError` unless ``data``'s frames split into ``patch_size`` patches."""
    if int(patch_size) < 1:
        raise BenchError(f"patch_size must be a positive integer, got {patch_size!r}")
    if data.height % patch_size or data.width % patch_size:
        raise BenchError(
            f"dataset {data.name!r} has {data.height}x{data.width} frames, which {patch_size}x{patch_size} "
            f"patches do not tile; set patch_size to a common divisor of {data.height} and {data.width} "
            f"(e.g. `:patch_size=1`)"
        )

# --------------------------------------------------------------------------------------------
# The recurrent predictor
# --------------------------------------------------------------------------------------------


class RecurrentPredictor(nn.Module):
    """A stack of recurrent cells on patchified frames with a 1x1 readout to the next patch frame.

    Subclasses define ``init_state(batch, like)`` and ``step(frame, state) -> (top_hidden, state)``;
    this class runs the sequence (:meth:`forward`) and owns the readout ``self.readout``.

    ``forward(x)`` (x: (B, T_in, C, H, W)) is the test-time rollout to ``out_frames`` (or
    ``pred_len``) future frames (raw predictions, not clipped). ``forward(seq, true_mask=mask)`` is the training
    pass over a whole sequence: it returns the raw one-step predictions of ``seq[:, 1:]``, where the
    last ``mask.shape[1]`` input steps mix true frames and own predictions by ``mask``.
    """

    def __init__(self, data: DatasetSpec, patch_size: int, top_hidden: int):
        super().__init__()
        check_geometry(data, patch_size)
        self.patch_size = int(patch_size)
        self.in_frames = data.in_frames
        self.out_frames = data.out_frames
        self.frame_channels = data.channels
        self.patch_channels = data.channels * self.patch_size ** 2
        self.grid = (data.height // self.patch_size, data.width // self.patch_size)
        # 1x1 conv from the top layer's hidden state to the patch channels (no bias: PredRNN's code).
        self.readout = nn.Conv2d(top_hidden, self.patch_channels, kernel_size=1, bias=False)

    # -- to be provided by the cell stacks -------------------------------------------------
    def init_state(self, batch: int, like: torch.Tensor) -> Any:
        raise NotImplementedError

    def step(self, frame: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    # -- the sequence loop ------------------------------------------------------------------
    def rollout(self, patches: torch.Tensor, n_steps: int, context: int,
                true_mask: torch.Tensor | None = None, state: Any = None, return_state: bool = False):
        """Run ``n_steps`` cell steps; returns the (B, n_steps, C*p*p, h, w) one-step predictions.

        Step ``t`` reads ``patches[:, t]`` while ``t < context``; afterwards it reads the previous
        prediction, or, with ``true_mask`` (B, n_steps - context), the mix
        ``m * patches[:, t] + (1 - m) * prediction``. ``state`` replaces ``init_state``'s initial
        state; with ``return_state`` the result is ``(predictions, final state)`` (PredRNN-V2
        carries its decoupling terms in the state).
        """
        batch = patches.shape[0]
        state = self.init_state(batch, patches) if state is None else state
        preds: list[torch.Tensor] = []
        pred: torch.Tensor | None = None
        for t in range(n_steps):
            if t < context:
                frame = patches[:, t]
            elif true_mask is None:
                frame = pred
            else:
                m = true_mask[:, t - context].to(patches.dtype).view(batch, 1, 1, 1)
                frame = m * patches[:, t] + (1 - m) * pred
            top, state = self.step(frame, state)
            pred = self.readout(top)
            preds.append(pred)
        preds = torch.stack(preds, dim=1)
        return (preds, state) if return_state else preds

    def check_frames(self, x: torch.Tensor) -> None:
        """BenchError unless ``x`` is (B, T, C, H, W) with this model's frame geometry."""
        if x.dim() != 5 or tuple(x.shape[2:]) != (self.frame_channels, self.grid[0] * self.patch_size,
                                                   self.grid[1] * self.patch_size):
            raise BenchError(f"expected frames of shape (B, T, {self.frame_channels}, "
                             f"{self.grid[0] * self.patch_size}, {self.grid[1] * self.patch_size}), "
                             f"got {tuple(x.shape)}")

    @staticmethod
    def mask_context(steps_in: int, true_mask: torch.Tensor) -> int:
        """The always-true context steps of a training pass over ``steps_in`` frames with ``true_mask``."""
        context = steps_in - 1 - true_mask.shape[1]
        if context < 1:
            raise BenchError(f"true_mask covers {true_mask.shape[1]} steps of a {steps_in}-frame sequence")
        return context

    def forward(self, x: torch.Tensor, pred_len: int | None = None,
                true_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_frames(x)
        patches = patchify(x, self.patch_size)
        steps_in = x.shape[1]
        if true_mask is not None:  # training: one-step predictions of x[:, 1:]
            context = self.mask_context(steps_in, true_mask)
            return unpatchify(self.rollout(patches, steps_in - 1, context, true_mask), self.patch_size)
        n_out = self.out_frames if pred_len is None else int(pred_len)
        if n_out < 1:
            raise BenchError(f"pred_len must be at least 1, got {pred_len!r}")
        preds = self.rollout(patches, steps_in - 1 + n_out, steps_in)
        return unpatchify(preds[:, steps_in - 1:], self.patch_size)


# --------------------------------------------------------------------------------------------
# MethodSpec hooks
# --------------------------------------------------------------------------------------------


def scheduled_sampling_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                            true_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The training forward for a given (B, T_out - 1) mask (1: feed the true frame at that future step).

    Returns ``(pred, target)``, both (B, T_in + T_out - 1, C, H, W): the one-step predictions of
    frames 2..T of ``cat(x, y)`` and those frames.
    """
    seq = torch.cat([x, y], dim=1)
    pred = model(seq, true_mask=true_mask)  # through __call__, so DDP wrappers see the forward
    return pred, seq[:, 1:]


def recurrent_train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, hp: Mapping[str, Any],
                         progress: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference protocol: :func:`scheduled_sampling_step` with a mask drawn at ``eta(progress)``."""
    eta = ss_eta(progress, float(hp["ss_stop"]))
    mask = sample_true_mask(x.shape[0], y.shape[1] - 1, eta, x.device)
    return scheduled_sampling_step(model, x, y, mask)


def time_reversed_passes(x: torch.Tensor, y: torch.Tensor,
                         hp: Mapping[str, Any]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``MethodSpec.train_passes``: the batch, then (with ``hp["reverse_input"]``) the time-reversed
    sequence ``cat(x, y)[:, ::-1]`` split at the same point (the authors' ``reverse_input``)."""
    if not hp.get("reverse_input"):
        return [(x, y)]
    rev = torch.cat([x, y], dim=1).flip(1)
    return [(x, y), (rev[:, :x.shape[1]], rev[:, x.shape[1]:])]


def recurrent_predict(model: nn.Module, x: torch.Tensor, hp: Mapping[str, Any]) -> torch.Tensor:
    """Autoregressive rollout from the context ``x`` to ``hp["pred_len"]`` (default: the dataset's) frames."""
    return model(x, pred_len=hp.get("pred_len"))


def recurrent_flops_inputs(data: DatasetSpec) -> tuple[torch.Tensor, ...]:
    """A (1, T_in, C, H, W) context: ``forward`` then runs T_in - 1 + T_out cell steps.

    On Moving MNIST that is 19 steps, exactly the ``total_length - 1`` steps the published figures
    (OpenSTL model zoo; TAU, Table 6) count over a 20-frame input: the FLOPs per step do not depend
    on whether a step reads a true frame or a prediction.
    """
    return (torch.zeros(1, data.in_frames, *data.frame_shape),)


def check_filter_size(filter_size: int) -> None:
    """The cells' convolutions pad 'same', so the filter size must be odd (its type and range are the
    method's declarations, checked when its hyperparameters resolve)."""
    if int(filter_size) % 2 == 0:
        raise BenchError(f"filter_size must be odd (same padding), got {filter_size!r}; set e.g. filter_size=5")


def make_norm(shape: tuple[int, int, int], enabled: bool) -> nn.Module:
    """``nn.LayerNorm([C, H, W])`` (PredRNN's PyTorch code, OpenSTL): per-sample statistics over
    (C, H, W), an affine weight and bias per element; identity when disabled."""
    return nn.LayerNorm(list(shape)) if enabled else nn.Identity()


def conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    """Bias-free 'same' convolution, as every convolution of the reference cells."""
    return nn.Conv2d(cin, cout, kernel_size=k, padding=k // 2, bias=False)
