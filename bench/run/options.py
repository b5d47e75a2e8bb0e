"""How runs execute (:class:`RunOptions`) and what became of one (:class:`Outcome`).

Nothing in :class:`RunOptions` changes a run's numbers: that is the run spec's job
(:mod:`bench.spec.run_spec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench.spec.run_spec import RunSpec
from bench.store.record import RunResult


@dataclass
class RunOptions:
    """How runs execute (nothing here changes the numbers; that is the run spec's job)."""

    results: Path = Path("results")
    device: str = "auto"
    force: bool = False
    data_dir: str | None = None
    fps_batch: int = 16
    efficiency: bool = True
    channels_last: bool = False
    compile: bool = False
    workers: int | None = None  # data-loading processes (--workers); None: 0 on the CPU, automatic on CUDA
    log: Callable[[str], None] = print
    progress: Any = None  # a rich.progress.Progress (with a ``loss`` field), or None for no bars


@dataclass
class Outcome:
    """What became of one run: ``complete``, ``skipped`` (with the reason) or ``failed``."""

    spec: RunSpec
    status: str
    detail: str
    result: RunResult | None = None
    path: Path | None = None
