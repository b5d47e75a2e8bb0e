"""The rules on a run's options, each stated once: seeds, split sizes, epochs and batch size, counts.

The command line only turns text into values (:mod:`bench.cli.common`); whether a value is allowed
is decided here, in the spec layer, whoever asks: :func:`bench.spec.run_spec.resolve_run_spec`
for every run, :class:`bench.spec.dataset.DataConfig` for a loader's sizes, the ``perf`` and
``audit`` commands for their own counts. The horizon's rule (``--pred-len``) is the dataset's:
:meth:`bench.spec.dataset.DatasetSpec.check_pred_len`; the upper bounds themselves are the
constants of :mod:`bench.spec.hparams`. Every refusal is a one-line :class:`BenchError` naming the
option and the fix.
"""

from __future__ import annotations

from typing import Any, Sequence

from bench.errors import BenchError
from bench.spec.choices import PRECISIONS
from bench.spec.hparams import MAX_SEED, TRAIN_PARAMS, shorten
from bench.spec.splits import check_sizes

__all__ = ["check_seed", "check_seeds", "check_sizes", "check_train_option", "check_count", "check_precision",
           "check_workers", "shorten"]

MAX_WORKERS = 256


#: What the upper bound of ``--epochs`` / ``--batch-size`` counts (for the message).
_UNITS = {"epochs": "epochs", "batch_size": "sequences"}


def check_seed(seed: Any, flag: str = "--seeds") -> int:
    """A seed (``--seeds``, ``--data-seed``): an integer from 0 to 2**63-1 (``torch.manual_seed``'s range)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise BenchError(f"{flag} {shorten(seed)} is invalid: seeds are integers from 0 to 2**63-1; write e.g. "
                         f"{flag} {'0,1' if flag == '--seeds' else '0'}")
    return seed


def check_seeds(seeds: Sequence[Any]) -> list[int]:
    """The seeds of a sweep: at least one, each valid (:func:`check_seed`), none twice."""
    if not seeds:
        raise BenchError("--seeds lists no seed; write e.g. --seeds 0,1,2")
    out = [check_seed(s) for s in seeds]
    twice = sorted({s for s in out if out.count(s) > 1})
    if twice:
        raise BenchError(f"--seeds lists a seed twice ({', '.join(map(str, twice))}); give each seed once")
    return out


def check_train_option(flag: str, name: str, value: Any) -> Any:
    """``--epochs``/``--batch-size`` (``name`` epochs/batch_size) against the training key's declaration
    (:data:`bench.spec.hparams.TRAIN_PARAMS`: the same bounds as ``--set epochs=...``); None passes."""
    if value is None:
        return None
    decl = TRAIN_PARAMS[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise BenchError(f"{flag} {value!r} is invalid: give {decl.describe()}")
    if decl.min is not None and value < decl.min:
        raise BenchError(f"{flag} must be at least {decl.min:g} (got {value}); give e.g. {flag} 1")
    if decl.max is not None and value > decl.max:
        raise BenchError(f"{flag} {shorten(value)} is above the limit of {decl.max:,.0f} {_UNITS[name]}; give a "
                         f"smaller value")
    return value


def check_count(flag: str, value: Any) -> int:
    """A positive count of a command of its own (``perf --iters``, ``audit --fps-batch``): an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BenchError(f"{flag} must be at least 1 (got {shorten(value)}); give e.g. {flag} 4")
    return value


def check_workers(value: Any, flag: str = "--workers") -> int:
    """Data-loading worker processes (``run --workers``, ``perf --workers``): an integer from 0 (batches made
    in the training process) to :data:`MAX_WORKERS`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WORKERS:
        raise BenchError(f"{flag} {shorten(value)} is invalid: give a number of worker processes from 0 (batches "
                         f"made in the training process) to {MAX_WORKERS}, e.g. {flag} 4")
    return value


def check_precision(precision: Any, flag: str = "--precision") -> str:
    """One of the numeric precisions of :data:`bench.spec.choices.PRECISIONS`."""
    if precision not in PRECISIONS:
        raise BenchError(f"{flag} {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision
