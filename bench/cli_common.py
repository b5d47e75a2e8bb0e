"""What the ``bench`` commands share: the consoles, one-line failures and option parsing/validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from bench.errors import BenchError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 2) -> "typer.Exit":
    err_console.print(f"error: {message}", markup=False, soft_wrap=True)
    return typer.Exit(code)


def warn_plugin_problems() -> None:
    """One line on stderr per plug-in that failed to load or whose registration was refused."""
    from bench.registry import plugin_errors

    for line in plugin_errors():
        err_console.print(f"warning: {line}", markup=False, soft_wrap=True)


def split_list(text: str | None) -> list[str]:
    """Comma-separated items, ignoring commas inside brackets (``simvp:incep_ker=(3,5),tau``)."""
    from bench.hparams import split_top_level

    return split_top_level(text or "")


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in split_list(text)]
    except ValueError:
        raise BenchError(f"--seeds {text!r} is not a comma-separated list of integers; write e.g. --seeds 0,1,2") from None
    if not seeds or any(s < 0 for s in seeds):
        raise BenchError(f"--seeds {text!r} must list non-negative integers; write e.g. --seeds 0,1")
    return seeds


def parse_sizes(text: str | None) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for part in split_list(text):
        name, _, value = part.partition("=")
        value = value.strip()
        if name.strip() not in ("train", "val", "test") or not (value.isascii() and value.isdigit()) or int(value) < 1:
            raise BenchError(f"--sizes {text!r}: write split=count with splits train, val, test and positive counts, "
                             f"e.g. --sizes train=256,val=64,test=64")
        sizes[name.strip()] = int(value)
    return sizes


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``--set`` options -> {key: value} (``--set incep_ker=3,5,7`` is a tuple; see bench.hparams)."""
    from bench.hparams import parse_set_items

    return parse_set_items(items)


def check_results_dir(path: Path) -> None:
    """The results directory must be a writable directory (created if missing)."""
    check_writable_dir(path, "results directory", "--results DIR")


def check_writable_dir(path: Path, what: str, flag: str) -> None:
    """``path`` must be a directory we can write (created if missing); one-line BenchError otherwise."""
    if path.exists() and not path.is_dir():
        raise BenchError(f"{what} {path} is a file, not a directory; pass {flag} with a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create {what} {path}: {exc.strerror}; pass {flag} with a writable directory") from None
    try:  # a real probe: permission bits do not tell for root or read-only mounts
        import tempfile

        with tempfile.NamedTemporaryFile(dir=path, prefix=".bench-probe-"):
            pass
    except OSError as exc:
        raise BenchError(f"{what} {path} is not writable ({exc.strerror}); fix its permissions or pass {flag} "
                         f"with a writable directory") from None


def resolve_targets(methods: str, datasets: str, sets: dict[str, Any]):
    """Parse and validate ``--methods``/``--datasets`` (and ``--set`` against every method)."""
    from bench.registry import get_dataset, parse_method_key

    keys = [parse_method_key(m) for m in split_list(methods)]
    if not keys:
        raise BenchError("no method given; pass --methods, e.g. --methods simvp (see `bench list`)")
    specs = [get_dataset(d) for d in split_list(datasets)]
    if not specs:
        raise BenchError("no dataset given; pass --datasets, e.g. --datasets mmnist (see `bench list`)")
    for key in keys:  # validate --set keys against every method/dataset before training anything
        for data in specs:
            key.resolve(data.name, sets)
    return keys, specs


def resolve_runs(keys, datasets, seeds: list[int], options) -> list:
    """Every (RunSpec, DatasetSpec) of a sweep, validated and buildable, before anything trains."""
    from bench.distributed import env_world_size
    from bench.run_spec import check_buildable, resolve_run_spec

    world = env_world_size()
    runs = []
    for data in datasets:
        for key in keys:
            specs = [resolve_run_spec(key, data, seed, options) for seed in seeds]
            check_buildable(specs[0], data)
            if specs[0].batch_size % world:
                raise BenchError(f"{specs[0].label}: batch size {specs[0].batch_size} is not divisible by the {world} "
                                 f"processes; pass --batch-size as a multiple of --nproc_per_node")
            runs += [(spec, data) for spec in specs]
    return runs
