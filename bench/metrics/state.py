"""Accumulating metrics over batches and processes: :class:`MetricState` (torchmetrics style).

The scoring itself is :func:`bench.metrics.functional.score_frames`; this module only sums its per-frame values
per predicted-frame index, exactly, so that means over all frames, per-horizon curves and
multi-process reductions need no averaging of averages.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from bench.errors import BenchError
from bench.metrics.functional import METRIC_KEYS, score_frames


class MetricState:
    """Running sums of the per-frame metrics per predicted-frame index (torchmetrics style).

    The state is ONE float64 tensor of shape (K + 1, T): row k holds the sum of metric
    ``METRIC_KEYS[k]`` over every sequence at predicted frame t, the last row the number of frames
    summed at each t. It lives on the device of the first update (or ``device``), so
    :meth:`update` never syncs with the host and :meth:`all_reduce` is a single collective.
    :meth:`compute` gives the mean over all frames (all frames of all sequences weigh the same);
    :meth:`compute_per_frame` the mean at each predicted frame 1..T (the per-horizon curve).

    ``update`` scores with :func:`score_frames` (the scoring protocol). Call :meth:`all_reduce`
    once, after the last update and before :meth:`compute`.
    """

    keys: tuple[str, ...] = METRIC_KEYS

    def __init__(self, device: torch.device | str | None = None, horizon: int | None = None) -> None:
        self._state: torch.Tensor | None = None
        self._device = None if device is None else torch.device(device)
        self._horizon = horizon
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
        per_frame = score_frames(pred.detach(), true.detach())
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


