"""The run selection ``bench run`` and ``bench submit`` share: the same options, validated the same way.

A selection is either ``--methods``/``--datasets`` (every method on every dataset) or ``--plan NAME|FILE``
(:mod:`bench.plan`: a paper table's runs or a TOML plan). With a plan, the options given on the command
line override the plan's (``--epochs 200``, ``--seeds 0``, ``--set lr=...`` on top of the plan's sets,
``--tiny``), and ``--methods``/``--datasets``/``--pred-len`` are refused (the plan fixes them). Either
way every run spec is resolved and checked (:func:`bench.cli.common.resolve_runs`) before anything
trains or is submitted.

Plans are found by name among the papers' tables (``bench plan`` lists them), as a path to a TOML
file, or as ``plans/<NAME>.toml`` in the current directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from bench.errors import BenchError

PLANS_DIR = Path("plans")

# options shared by `bench run` and `bench submit` (one definition: the same names, help and defaults)
METHODS = typer.Option(None, "--methods", "-m", help="Comma-separated method keys: name[:variant][:key=value], e.g. tau,tau:no-ddr")
DATASETS = typer.Option(None, "--datasets", "-d", help="Comma-separated dataset names (default: mmnist)")
PLAN = typer.Option(None, "--plan", help="A plan instead of --methods/--datasets: a paper table (see `bench plan`) or a .toml file")
SEEDS = typer.Option(None, "--seeds", help="Comma-separated seeds, e.g. 0,1,2 (default: 0, or the plan's)")
EPOCHS = typer.Option(None, "--epochs", "-e", help="Epochs (default: the paper's; 2 with --quick)")
BATCH_SIZE = typer.Option(None, "--batch-size", "-b", help="Batch size (default: the paper's)")
QUICK = typer.Option(False, "--quick", help="Smoke test of the paper-size model (at most 2 epochs, small splits); not a benchmark")
TINY = typer.Option(False, "--tiny", help="The small configuration: paper recipes at small widths, learns in minutes on a CPU (results labelled tiny, never ranked with paper-size ones)")
SIZES = typer.Option(None, "--sizes", help="Sequences per split, e.g. train=256,val=64,test=64")
SET = typer.Option(None, "--set", help="Override hyperparameters for every method: key=value (repeatable)")
PRED_LEN = typer.Option(None, "--pred-len", help="Frames to predict at evaluation (recursive rollout beyond the native length)")
RESULTS = typer.Option("results", "--results", "-r", help="Results directory")
DATA_DIR = typer.Option(None, "--data-dir", help="Data directory (default: $BENCH_DATA)")
DATA_SEED = typer.Option(None, "--data-seed", help="Seed of the fixed validation/test sets (default: 0)")
PRECISION = typer.Option(None, "--precision", help="fp32, bf16 or fp16 (autocast; gradient scaling for fp16; default: fp32)")


@dataclass
class Selection:
    """What the command line selects, as given (None: not given)."""

    methods: Optional[str] = None
    datasets: Optional[str] = None
    plan: Optional[str] = None
    seeds: Optional[str] = None
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    quick: bool = False
    tiny: bool = False
    sizes: Optional[str] = None
    sets: Optional[list[str]] = None
    pred_len: Optional[int] = None
    data_dir: Optional[str] = None
    data_seed: Optional[int] = None
    precision: Optional[str] = None


@dataclass
class Resolved:
    runs: list  # (RunSpec, DatasetSpec), validated
    plan: Any  # the Plan, or None
    options: dict  # spec hash -> the SpecOptions it was resolved with (what a job resolves it with again)


def find_plan(text: str):
    """The plan ``text`` names: a paper table, a TOML file, or ``plans/<text>.toml``; one-line BenchError otherwise."""
    from bench.plan.model import load_plan_file
    from bench.plan.papers import normalise_name

    if not text.strip():
        raise BenchError("--plan is empty; name a plan (see `bench plan`) or pass a .toml file")
    path = Path(text)
    if text.endswith(".toml") or path.is_file():
        return load_plan_file(path)
    plans = builtin_plans()
    name = normalise_name(text)
    if name in plans:
        return plans[name]
    local = PLANS_DIR / f"{text}.toml"
    if local.is_file():
        return load_plan_file(local)
    from difflib import get_close_matches

    near = get_close_matches(name, list(plans), n=3)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    raise BenchError(f"unknown plan {text!r}{hint}; `bench plan` lists the plans, or pass a .toml file")


def builtin_plans() -> dict:
    """The papers' tables as plans (:mod:`bench.plan.papers`), by name."""
    from bench.plan.papers import paper_plans
    from bench.report.published import PUBLISHED_ALIASES, load_published

    return paper_plans(load_published().entries, PUBLISHED_ALIASES)


def spec_options(sel: Selection, plan=None, pred_len: Optional[int] = None):
    """The SpecOptions of a selection (the command line's options over the plan's; each value is checked
    against its rule when a run spec is resolved, :func:`bench.spec.run_spec.resolve_run_spec`)."""
    from bench.cli.common import parse_sets, parse_sizes
    from bench.spec.run_spec import SpecOptions

    sets = parse_sets(sel.sets)
    sizes = parse_sizes(sel.sizes)
    if plan is None:
        return SpecOptions(epochs=sel.epochs, batch_size=sel.batch_size, quick=sel.quick, tiny=sel.tiny, sizes=sizes,
                           data_seed=sel.data_seed or 0, sets=sets, pred_len=sel.pred_len,
                           precision=sel.precision or "fp32", data_dir=sel.data_dir)
    return SpecOptions(epochs=sel.epochs if sel.epochs is not None else plan.epochs,
                       batch_size=sel.batch_size if sel.batch_size is not None else plan.batch_size,
                       quick=sel.quick or plan.quick, tiny=sel.tiny or plan.tiny,
                       sizes=sizes if sel.sizes is not None else dict(plan.sizes),
                       data_seed=sel.data_seed if sel.data_seed is not None else plan.data_seed,
                       sets={**dict(plan.sets), **sets}, pred_len=pred_len,
                       precision=sel.precision or plan.precision, data_dir=sel.data_dir)


def plan_seeds(sel: Selection, plan) -> list[int]:
    from bench.cli.common import parse_seeds

    if sel.seeds is not None:
        return parse_seeds(sel.seeds)
    return list(plan.seeds) if plan is not None else [0]


def load_selected_plan(sel: Selection):
    """The plan of ``--plan`` (None without it); refuses the options a plan fixes."""
    if sel.plan is None:
        return None
    given = [flag for flag, value in (("--methods", sel.methods), ("--datasets", sel.datasets),
                                      ("--pred-len", sel.pred_len)) if value is not None]
    if given:
        raise BenchError(f"{given[0]} cannot be combined with --plan (the plan fixes the methods, datasets and "
                         f"horizons); drop {given[0]}, or drop --plan")
    return find_plan(sel.plan)


def resolve_selection(sel: Selection) -> Resolved:
    """Every run of the selection, validated, before anything trains (one-line BenchError otherwise)."""
    from bench.cli.common import resolve_runs, resolve_targets

    plan = load_selected_plan(sel)
    seeds = plan_seeds(sel, plan)
    if plan is None:
        options = spec_options(sel)
        keys, datasets = resolve_targets(sel.methods or "", sel.datasets or "mmnist", dict(options.sets))
        runs = resolve_runs(keys, datasets, seeds, options)
        return Resolved(runs, None, {spec.hash: options for spec, _ in runs})
    runs, seen, options_of = [], set(), {}
    for group in plan.groups:
        options = spec_options(sel, plan, group.pred_len)
        keys, datasets = resolve_targets(",".join(group.methods), ",".join(group.datasets), dict(options.sets))
        for spec, data in resolve_runs(keys, datasets, seeds, options):
            if (spec.hash, spec.seed) not in seen:  # two keys of one table may resolve to one configuration
                seen.add((spec.hash, spec.seed))
                runs.append((spec, data))
                options_of.setdefault(spec.hash, options)
    return Resolved(runs, plan, options_of)
