"""Scheduled sampling and reverse scheduled sampling of the recurrent baselines, on the run's clock.

The training forward that uses these masks, and the rest of the recurrent protocol, is in
:mod:`bench.blocks.recurrent`; this module holds what changes with ``progress`` (the fraction of
training done): the probabilities, the masks drawn from them and the record of a run's schedule.

Scheduled sampling (Bengio et al. 2015; PredRNN's released code, also OpenSTL)
------------------------------------------------------------------------------
``eta`` decays linearly from 1 to 0. The reference code decrements it by 2e-5 per iteration, which
reaches 0 at iteration 50,000 of 80,000 (PredRNN's Moving MNIST scripts). The harness trains for a
number of epochs, not iterations, so ``eta`` is a function of ``progress`` (fraction of training
done): ``eta = max(0, 1 - progress / ss_stop)``. We choose ``ss_stop = 0.625`` = 50,000 / 80,000, the
reference ratio. ``ss_stop = 0`` feeds the model's own predictions from the start (the reference
code's ``scheduled_sampling = 0``), the ``no-ss`` variant.

Reverse scheduled sampling (PredRNN-V2: Wang et al., "PredRNN: A Recurrent Neural Network for
Spatiotemporal Predictive Learning", TPAMI 2022, section "Reverse Scheduled Sampling")
--------------------------------------------------------------------------------------------
The mask covers every step after the first (``T - 2`` steps): the ``T_in - 1`` later *context*
steps read the true frame with probability ``r_eta``, which RISES from 0.5 to 1 (the encoder is
weaned off its own predictions), and the ``T_out - 1`` future steps with probability ``eta``, which
FALLS from 0.5 to 0 (:func:`rss_probabilities`; the authors' ``reserve_schedule_sampling_exp``)::

    progress < s:        r_eta = 0.5                               eta = 0.5
    s <= progress < e:   r_eta = 1 - 0.5 exp(-(progress - s) / a)   eta = 0.5 - 0.5 (progress - s) / (e - s)
    progress >= e:       r_eta = 1                                 eta = 0

The authors' iteration constants become fractions of training: their Moving MNIST script has
``r_sampling_step_1 = 25,000``, ``r_sampling_step_2 = 50,000`` and ``r_exp_alpha = 2,500`` of
``max_iterations = 80,000``, so ``s = 0.3125``, ``e = 0.625``, ``a = 0.03125`` (their KTH script:
5,000 / 50,000 / 2,000 of 80,000). One coin per (sequence, step) is drawn with ``torch.rand``,
always (:func:`sample_reverse_mask`). The rollout needs nothing new: a mask over ``T - 2`` steps
leaves one context step, exactly the reference's indexing (``mask[:, t - 1]`` at step ``t >= 1``).
At test time the reference's mask is 1 on the first ``T_in - 1`` steps and 0 after, i.e. the
ordinary test rollout (:mod:`bench.blocks.recurrent`).

Schedules on the run's clock (recorded in ``result.json`` as ``settings.schedule``)
-----------------------------------------------------------------------------------
Every iteration-based schedule above is a function of ``progress = i / N``, where ``i`` = 0 .. N - 1
is the optimiser iteration (batch) and ``N`` = epochs x steps per epoch is this run's number of
iterations; the reference's thresholds are kept as fractions of the reference's run (80,000
iterations). A shortened run (``--epochs``, ``--quick``, ``--tiny``) therefore passes through the
whole schedule, compressed. :func:`recurrent_schedule` (a method's ``MethodSpec.schedule`` hook)
writes the fractions, the formula and the iteration of this run at which each threshold falls
into the result, so that a reader sees which part of the schedule a run covered.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from bench.errors import BenchError

#: Fraction of training after which scheduled sampling feeds only the model's own predictions.
DEFAULT_SS_STOP = 0.625
#: The reference run these fractions are taken from (PredRNN's and PredRNN-V2's scripts: max_iterations).
REFERENCE_ITERATIONS = 80_000
#: Reverse scheduled sampling (PredRNN-V2's Moving MNIST script): 25,000 / 50,000 / 2,500 of 80,000 iterations.
DEFAULT_RSS = {"rss_start": 25_000 / REFERENCE_ITERATIONS, "rss_end": 50_000 / REFERENCE_ITERATIONS,
               "rss_alpha": 2_500 / REFERENCE_ITERATIONS}


# --------------------------------------------------------------------------------------------
# Scheduled sampling
# --------------------------------------------------------------------------------------------


def ss_eta(progress: float, ss_stop: float) -> float:
    """Probability of feeding the true frame at a future step: 1 at ``progress`` 0, linearly to 0 at ``ss_stop``."""
    if ss_stop <= 0:
        return 0.0
    return float(min(1.0, max(0.0, 1.0 - float(progress) / float(ss_stop))))


def sample_true_mask(batch: int, steps: int, eta: float, device: torch.device | str) -> torch.Tensor:
    """(batch, steps) float mask: 1 where the true frame is fed, drawn with probability ``eta``."""
    coins = torch.rand(batch, steps, device=device)  # always drawn: the RNG stream ignores eta
    return (coins < eta).to(torch.float32)


def rss_probabilities(progress: float, start: float, end: float, alpha: float) -> tuple[float, float]:
    """``(r_eta, eta)`` of reverse scheduled sampling at ``progress`` (see the module docstring).

    ``r_eta``: probability of the true frame at a context step after the first; ``eta``: at a future step.
    """
    p = float(progress)
    if p < start:
        return 0.5, 0.5
    if p < end:
        return 1.0 - 0.5 * math.exp(-(p - start) / alpha), 0.5 - 0.5 * (p - start) / (end - start)
    return 1.0, 0.0


def sample_reverse_mask(batch: int, in_frames: int, out_frames: int, r_eta: float, eta: float,
                        device: torch.device | str) -> torch.Tensor:
    """(batch, in_frames + out_frames - 2) float mask over every step after the first: 1 where the
    true frame is fed, with probability ``r_eta`` on the ``in_frames - 1`` context steps and ``eta``
    on the ``out_frames - 1`` future steps (one coin per (sequence, step), always drawn)."""
    coins = torch.rand(batch, in_frames + out_frames - 2, device=device)
    threshold = torch.full((in_frames + out_frames - 2,), float(eta), device=device)
    threshold[:in_frames - 1] = float(r_eta)
    return (coins < threshold).to(torch.float32)


def validate_rss(start: float, end: float, alpha: float) -> None:
    """Reverse scheduled sampling fractions: 0 <= start <= end <= 1 and alpha > 0 (BenchError with the fix)."""
    if not 0.0 <= float(start) <= float(end) <= 1.0:
        raise BenchError(f"reverse scheduled sampling needs 0 <= rss_start <= rss_end <= 1 (fractions of training), "
                         f"got rss_start={start!r}, rss_end={end!r}")
    if float(alpha) <= 0:
        raise BenchError(f"rss_alpha must be > 0 (the exponential's time constant as a fraction of training), "
                         f"got {alpha!r}")


def reverse_ss_mask(x: torch.Tensor, y: torch.Tensor, hp: Mapping[str, Any], progress: float) -> torch.Tensor:
    """The reverse-scheduled-sampling mask of one training batch at ``progress`` (module docstring)."""
    r_eta, eta = rss_probabilities(progress, float(hp["rss_start"]), float(hp["rss_end"]), float(hp["rss_alpha"]))
    return sample_reverse_mask(x.shape[0], x.shape[1], y.shape[1], r_eta, eta, x.device)


def recurrent_schedule(hp: Mapping[str, Any], iterations: int) -> dict[str, Any]:
    """``MethodSpec.schedule``: this run's schedules on its clock, as recorded in ``result.json``.

    ``iterations`` is the run's number of optimiser iterations N (epochs x steps per epoch); each
    threshold is given as the fraction of training, the reference's iteration count it stands for,
    and the iteration of this run at which it falls (``ceil(fraction * N)``).
    """
    n = max(int(iterations), 1)

    def at(fraction: float) -> int:
        return min(math.ceil(float(fraction) * n), n)

    out: dict[str, Any] = {"clock": f"progress = i / N at optimiser iteration i = 0..N-1 (one batch), N = {n}",
                           "iterations": n}
    if "ss_stop" in hp:
        stop = float(hp["ss_stop"])
        out["scheduled_sampling"] = {
            "eta": f"max(0, 1 - progress / {stop:g})", "ss_stop": stop, "eta_zero_from_iteration": at(stop),
            "reference": f"eta -= 2e-5 per iteration from 1: 0 at iteration 50,000 of {REFERENCE_ITERATIONS:,} "
                         f"(ss_stop {50_000 / REFERENCE_ITERATIONS:g})"}
    if "rss_start" in hp:
        s, e, a = float(hp["rss_start"]), float(hp["rss_end"]), float(hp["rss_alpha"])
        out["reverse_scheduled_sampling"] = {
            "r_eta": f"0.5 until {s:g}, then 1 - 0.5 exp(-(progress - {s:g}) / {a:g}) until {e:g}, then 1",
            "eta": f"0.5 until {s:g}, then linear to 0 at {e:g}",
            "rss_start": s, "rss_end": e, "rss_alpha": a,
            "start_iteration": at(s), "end_iteration": at(e), "alpha_iterations": a * n,
            "reference_iterations": {"r_sampling_step_1": s * REFERENCE_ITERATIONS,
                                     "r_sampling_step_2": e * REFERENCE_ITERATIONS,
                                     "r_exp_alpha": a * REFERENCE_ITERATIONS,
                                     "max_iterations": REFERENCE_ITERATIONS}}
    if "reverse_input" in hp:
        out["passes"] = (["sequence", "time-reversed sequence (same mask)"] if hp["reverse_input"] else ["sequence"])
    return out
