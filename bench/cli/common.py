"""What the ``bench`` commands share: the consoles, one-line failures and option parsing.

The parsers here only turn an option's text into values (a malformed text is a one-line error
naming the option); whether the values are allowed is decided once, in the spec layer
(:mod:`bench.spec.checks`, :func:`bench.spec.run_spec.resolve_run_spec`)."""

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
    from bench.spec.registry import plugin_errors

    for line in plugin_errors():
        err_console.print(f"warning: {line}", markup=False, soft_wrap=True)


def split_list(text: str | None) -> list[str]:
    """Comma-separated items, ignoring commas inside brackets (``simvp:incep_ker=(3,5),tau``)."""
    from bench.spec.hparams import split_top_level

    return split_top_level(text or "")


#: The longest integer an option may spell out (Python reads at most 4,300 digits; any limit is far below).
MAX_DIGITS = 4_000


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2`` -> [0, 1, 2] (which seeds are allowed: :func:`bench.spec.checks.check_seeds`)."""
    if len(text) > 10_000:  # Python refuses to convert integers of more than 4,300 digits
        raise BenchError("--seeds is too long; list integers from 0 to 2**63-1, e.g. --seeds 0,1,2")
    try:
        return [int(s) for s in split_list(text)]
    except ValueError:
        raise BenchError(f"--seeds {text!r} is not a comma-separated list of integers; write e.g. --seeds 0,1,2"
                         ) from None


def parse_sizes(text: str | None) -> dict[str, int]:
    """``--sizes train=256,val=64`` -> {"train": 256, "val": 64} (which splits and counts are allowed:
    :func:`bench.spec.splits.check_sizes`)."""
    sizes: dict[str, int] = {}
    if text is not None and not split_list(text):
        raise BenchError("--sizes is empty; write e.g. --sizes train=256,val=64,test=64, or leave it out for the "
                         "dataset's standard sizes")
    for part in split_list(text):
        name, sep, value = (s.strip() for s in part.partition("="))
        digits = value[1:] if value[:1] in "+-" else value
        if not sep or not name or not (digits.isascii() and digits.isdigit()):
            raise BenchError(f"--sizes {text!r}: write split=count with integer counts, e.g. "
                             f"--sizes train=256,val=64,test=64")
        if len(digits) > MAX_DIGITS:
            raise BenchError(f"--sizes {name}={value[:12]}...: the count has {len(digits):,} digits; give a count of "
                             f"sequences, e.g. --sizes {name}=256")
        if name in sizes:
            raise BenchError(f"--sizes {text!r} gives {name} twice; give each split once")
        sizes[name] = int(value)
    return sizes


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``--set`` options -> {key: value} (``--set incep_ker=3,5,7`` is a tuple; see bench.spec.hparams)."""
    from bench.spec.hparams import parse_set_items

    if any(not item.strip() for item in items or []):
        raise BenchError("--set with an empty value; write e.g. --set lr=0.001")
    return parse_set_items(items)


def as_dir(text: str, flag: str) -> Path:
    """A directory option's value as a Path; an empty value is a one-line BenchError (not the cwd)."""
    if not text.strip():
        raise BenchError(f"{flag} is empty; pass a directory, e.g. {flag} results")
    return Path(text)


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
    from bench.spec.registry import get_dataset, parse_method_key

    keys = [parse_method_key(m) for m in split_list(methods)]
    if not keys:
        raise BenchError("no method given; pass --methods, e.g. --methods simvp (see `bench list`), or --plan NAME (see "
                         "`bench plan`)")
    specs = [get_dataset(d) for d in split_list(datasets)]
    if not specs:
        raise BenchError("no dataset given; pass --datasets, e.g. --datasets mmnist (see `bench list`)")
    for key in keys:  # validate --set keys against every method/dataset before training anything
        for data in specs:
            key.resolve(data.name, sets)
    return keys, specs


def check_data_present(dataset: str, data_dir: str | None) -> None:
    """A dataset that reads files must find them before any run starts (one line with how to get them)."""
    from bench.datafiles import SOURCES, data_root

    if dataset not in SOURCES:
        return
    source = SOURCES.get(dataset)
    root = data_root(data_dir)
    status, where = source.present(root)
    if status == "missing":
        hint = "pass --data-dir DIR or set BENCH_DATA=DIR" if root is None else f"under {root}"
        raise BenchError(f"dataset {dataset!r} has no data ({hint}): expected {where}; to get it: "
                         f"{source.how_to_get} (then check with `bench data check {dataset}`)")


def identity_once(data):
    """``data`` whose ``source_identity`` runs at most once per data directory: it may digest the files
    (:mod:`bench.datafiles.identity`), and a sweep resolves one spec per method and seed."""
    import dataclasses

    if data.source_identity is None:
        return data
    memo: dict = {}

    def identity(config):
        if config.data_dir not in memo:
            memo[config.data_dir] = dict(data.source_identity(config))
        return memo[config.data_dir]

    return dataclasses.replace(data, source_identity=identity)


def resolve_runs(keys, datasets, seeds: list[int], options) -> list:
    """Every (RunSpec, DatasetSpec) of a sweep, validated and buildable, before anything trains."""
    from bench.datafiles import data_root
    from bench.run.distributed import env_world_size
    from bench.spec.checks import check_seeds

    seeds = check_seeds(seeds)
    data_root(options.data_dir)  # a data directory the user names (--data-dir, $BENCH_DATA) must exist
    runs = resolve_specs(keys, datasets, seeds, options, env_world_size())
    for data in datasets:  # after the options (a bad option is the first thing to fix)
        check_data_present(data.name, options.data_dir)
    return runs


def resolve_specs(keys, datasets, seeds: list[int], options, world: int = 1) -> list:
    """The (RunSpec, DatasetSpec) of every key x dataset x seed, validated and buildable (the data's
    presence is the caller's to check); the batch size must divide among ``world`` processes."""
    from bench.spec.run_spec import check_buildable, resolve_run_spec

    runs = []
    for data in datasets:
        identified = identity_once(data)
        for key in keys:
            specs = [resolve_run_spec(key, identified, seed, options) for seed in seeds]
            check_buildable(specs[0], data)
            if specs[0].batch_size % world:
                raise BenchError(f"{specs[0].label}: batch size {specs[0].batch_size} is not divisible by the {world} "
                                 f"processes; pass --batch-size as a multiple of --nproc_per_node")
            runs += [(spec, data) for spec in specs]
    return runs
