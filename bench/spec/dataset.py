"""What a dataset is to the harness: :class:`DatasetSpec` (geometry, protocol, loader) and the
:class:`DataConfig` its loader receives. Registered with :func:`bench.spec.registry.register_dataset`."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from bench.errors import BenchError
from bench.spec.batching import LoaderSettings
from bench.spec.hparams import MAX_PRED_LEN, shorten
from bench.spec.splits import check_sizes


@dataclass(frozen=True)
class DataConfig:
    """What a dataset loader needs to build its splits.

    ``sizes`` maps split name (train/val/test) to a number of sequences; a missing key means the
    dataset's standard size (checked on construction: :func:`bench.spec.splits.check_sizes`, so a
    loader receives valid sizes). ``seed`` seeds the *training stream*; the validation and test sets
    are fixed by ``data_seed`` so that runs with different seeds are scored on the same sequences.

    ``loader`` (worker processes, pinned memory), ``device`` (where a generated dataset renders its
    sequences: None for the CPU generator) and ``log`` (one-line notes, e.g. a frame cache being
    built) say how the batches are made, never which: they are not part of a run spec.
    """

    data_dir: str | None = None
    seed: int = 0
    data_seed: int = 0
    sizes: Mapping[str, int] = field(default_factory=dict)
    rank: int = 0
    world_size: int = 1
    pred_len: int | None = None  # evaluation horizon when it exceeds the dataset's out_frames (--pred-len)
    loader: LoaderSettings = field(default_factory=LoaderSettings)
    device: str | None = None
    log: Callable[[str], None] = field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        check_sizes(self.sizes)
        if self.log is None:
            object.__setattr__(self, "log", stderr_line)


def stderr_line(text: str) -> None:
    """A loader's note when the run gives no log of its own: one line on stderr."""
    print(text, file=sys.stderr)


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its geometry, protocol and loader.

    ``load(spec, config) -> Splits`` builds the train/val/test splits (see :mod:`bench.spec.splits`).
    ``metric_scale`` maps metric name to the factor the papers display it with (TaxiBJ MSE x100).
    """

    name: str
    in_frames: int
    out_frames: int
    channels: int
    height: int
    width: int
    load: Callable[["DatasetSpec", DataConfig], Any]
    description: str = ""
    citation: str = ""
    sizes: Mapping[str, int] = field(default_factory=dict)
    quick_sizes: Mapping[str, int] = field(default_factory=dict)
    metrics: tuple[str, ...] = ("mse", "mae", "ssim", "psnr")
    metric_scale: Mapping[str, float] = field(default_factory=dict)
    #: the longest evaluation horizon (``--pred-len``) the data provides; None: any (generated data)
    max_pred_len: int | None = None
    #: ``source_identity(config) -> dict``: the identity of the data the loader will read, found before
    #: loading (a content digest of its files, cached: :mod:`bench.datafiles.identity`; one-line BenchError
    #: for files that are missing or unusable); it enters the run spec's hash. None: nothing beyond the name.
    source_identity: Callable[[DataConfig], Mapping[str, Any]] | None = None
    display_name: str = ""  # how reports name it, e.g. "Moving MNIST"; defaults to ``name``

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    @property
    def title(self) -> str:
        return self.display_name or self.name

    def check_pred_len(self, pred_len: int | None) -> int:
        """The evaluation horizon for ``--pred-len`` (None: the dataset's own), or a one-line BenchError:
        at least 1, at most :attr:`max_pred_len` (the frames the data holds), and for data without a
        limit of its own (generated) at most :data:`~bench.spec.hparams.MAX_PRED_LEN`. The one rule
        for the horizon: the run spec and the loaders ask it."""
        if pred_len is None:
            return self.out_frames
        if isinstance(pred_len, bool) or not isinstance(pred_len, int) or pred_len < 1:
            raise BenchError(f"--pred-len must be at least 1 (got {shorten(pred_len)}); leave it out for the dataset's "
                             f"own horizon ({self.out_frames} frames)")
        if self.max_pred_len is not None and pred_len > self.max_pred_len:
            raise BenchError(f"--pred-len {shorten(pred_len)} exceeds the {self.max_pred_len} target frames dataset "
                             f"{self.name!r} provides; use --pred-len <= {self.max_pred_len}")
        if self.max_pred_len is None and pred_len > MAX_PRED_LEN:
            raise BenchError(f"--pred-len {shorten(pred_len)} is above the limit of {MAX_PRED_LEN:,} frames for "
                             f"dataset {self.name!r}; use --pred-len <= {MAX_PRED_LEN:,}")
        return pred_len

    def with_frames(self, in_frames: int | None = None, out_frames: int | None = None) -> "DatasetSpec":
        return replace(
            self,
            in_frames=self.in_frames if in_frames is None else in_frames,
            out_frames=self.out_frames if out_frames is None else out_frames,
        )
