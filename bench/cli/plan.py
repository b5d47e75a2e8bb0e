"""``bench plan``: the plans (paper tables, TOML files), and one plan's runs with their state and cost.

``bench plan`` lists the papers' tables (:mod:`bench.plan.papers`) and the ``*.toml`` plans in ``./plans``;
``bench plan NAME|FILE`` resolves the plan's runs as ``bench run --plan`` would (the same options
override it), and prints for each its state in the results store (:mod:`bench.plan.state`) and its
estimated GPU-hours (:mod:`bench.plan.estimate`, with the throughput assumed). A dataset whose data is
not here cannot be hashed (its files' digest is part of every run spec), so its runs' state is
``unknown``; their cost is still estimated.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from bench.cli import selection as sel
from bench.cli.common import as_dir, console, err_console, fail, warn_plugin_problems
from bench.errors import BenchError


@dataclass
class PlanRow:
    spec: Any
    data: Any
    state: Any  # bench.plan.state.RunState
    cost: Any = None  # bench.plan.estimate.RunCost, or None when not estimated


def plan(
    name: Optional[str] = typer.Argument(None, help="A plan: a paper table (e.g. tau-table6) or a .toml file"),
    results_: str = sel.RESULTS,
    tflops: float = typer.Option(None, "--tflops", help="Sustained training throughput to assume, in TFLOP/s "
                                 "(fvcore FLOPs; default: 3.2, TAU's authors' V100 figure)"),
    estimate: bool = typer.Option(True, "--estimate/--no-estimate", help="Estimate GPU-hours (counts each "
                                  "configuration's FLOPs once; cached under <results>/_cache/flops)"),
    seeds: Optional[str] = sel.SEEDS,
    epochs: Optional[int] = sel.EPOCHS,
    batch_size: Optional[int] = sel.BATCH_SIZE,
    quick: bool = sel.QUICK,
    tiny: bool = sel.TINY,
    sizes: Optional[str] = sel.SIZES,
    set_: Optional[list[str]] = sel.SET,
    data_dir: Optional[str] = sel.DATA_DIR,
    data_seed: Optional[int] = sel.DATA_SEED,
    precision: Optional[str] = sel.PRECISION,
) -> None:
    """List the plans, or show one plan's runs: state (complete, failed, running, missing) and GPU-hours.

    Examples:

      bench plan                                  the plans: the papers' tables and ./plans/*.toml

      bench plan tau-table6 --results results     TAU Table 6: its runs, their state, the cost

      bench plan tau-table2 --epochs 200          the same table at 200 epochs

      bench plan plans/my-ablation.toml

    A plan file (TOML): title, seeds, epochs, batch_size, methods and datasets (every method on every
    dataset), [set] overrides, [[runs]] groups with their own datasets, methods and pred_len; see the
    README. Run a plan with `bench run --plan NAME`, or on a cluster with `bench submit --plan NAME`.
    """
    from bench.plan.estimate import DEFAULT_TFLOPS

    try:
        results = as_dir(results_, "--results")
        if name is None:
            list_plans()
            return
        throughput = DEFAULT_TFLOPS if tflops is None else tflops
        if not throughput > 0:
            raise BenchError(f"--tflops must be a positive number of TFLOP/s (got {tflops})")
        selection = sel.Selection(plan=name, seeds=seeds, epochs=epochs, batch_size=batch_size, quick=quick, tiny=tiny,
                                  sizes=sizes, sets=set_, data_dir=data_dir, data_seed=data_seed, precision=precision)
        the_plan = sel.load_selected_plan(selection)
        rows, missing_data = plan_rows(the_plan, selection, results)
        if estimate:
            add_costs(rows, results)
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    warn_plugin_problems()
    from bench.plan.estimate import THROUGHPUT_SOURCE

    basis = f"{THROUGHPUT_SOURCE}; set --tflops to change" if tflops is None else "from --tflops"
    print_plan(the_plan, rows, results, (throughput, basis) if estimate else None, missing_data)


def list_plans() -> None:
    from bench.plan.model import load_plan_file

    table = Table(title="plans (bench plan NAME shows the runs; bench run/submit --plan NAME runs them)")
    for col in ("plan", "runs", "datasets", "table"):
        table.add_column(col, overflow="fold")
    for p in sel.builtin_plans().values():
        table.add_row(p.name, str(p.size), ", ".join(p.datasets), p.title)
    for path in sorted(sel.PLANS_DIR.glob("*.toml")) if sel.PLANS_DIR.is_dir() else []:
        try:
            p = load_plan_file(path)
            table.add_row(str(path), str(p.size), ", ".join(p.datasets), p.title)
        except BenchError as exc:
            table.add_row(str(path), "-", "-", f"[red]{exc}[/red]")
    console.print(table)


def plan_rows(the_plan, selection: "sel.Selection", results: Path) -> tuple[list[PlanRow], dict[str, str]]:
    """Every run of the plan with its state; datasets without data are resolved without their files'
    digest (their state is ``unknown``). Returns (rows, dataset -> why its data is missing)."""
    from bench import store
    from bench.cli.common import check_data_present, resolve_specs, resolve_targets
    from bench.datafiles import data_root
    from bench.plan.state import RunState, run_state

    data_root(selection.data_dir)
    seeds = sel.plan_seeds(selection, the_plan)
    rows, seen, missing = [], set(), {}
    for group in the_plan.groups:
        options = sel.spec_options(selection, the_plan, group.pred_len)
        keys, datasets = resolve_targets(",".join(group.methods), ",".join(group.datasets), dict(options.sets))
        for data in datasets:
            try:
                check_data_present(data.name, selection.data_dir)
            except BenchError as exc:
                missing[data.name] = str(exc)
                data = replace(data, source_identity=None)
            for spec, d in resolve_specs(keys, [data], seeds, options):
                if (spec.hash, spec.seed, spec.dataset) in seen:
                    continue
                seen.add((spec.hash, spec.seed, spec.dataset))
                state = (RunState("unknown", "no data here (below)")
                         if data.name in missing else run_state(store.run_dir(results, spec), spec.epochs))
                rows.append(PlanRow(spec, d, state))
    return rows, missing


def add_costs(rows: list[PlanRow], results: Path) -> None:
    """Each row's cost (FLOPs counted once per configuration; a line on stderr before a first count)."""
    from bench.plan.estimate import run_cost

    cache = results / "_cache" / "flops"
    first: dict[str, Any] = {}
    uncached = len({(r.spec.hash, r.spec.dataset) for r in rows})
    if uncached > 1 and not cache.is_dir():
        err_console.print(f"counting the FLOPs of {uncached} configuration(s) (once: cached in {cache})", markup=False)
    for row in rows:
        key = f"{row.spec.dataset}/{row.spec.hash}"
        if key not in first:
            first[key] = run_cost(row.spec, row.data, cache)
        row.cost = first[key]


def print_plan(the_plan, rows: list[PlanRow], results: Path, throughput: tuple[float, str] | None,
               missing_data: dict[str, str]) -> None:
    """The runs table, the count of each state, the datasets without data and the estimate."""
    tflops = throughput[0] if throughput else None
    table = Table(title=f"{the_plan.name}: {the_plan.title}", caption=f"source: {the_plan.source}")
    columns = ["dataset", "method", "seed", "epochs", "batch", "state", "detail"] + (["GPU-h"] if tflops else [])
    for col in columns:
        table.add_column(col, overflow="fold", justify="right" if col in ("seed", "epochs", "batch", "GPU-h") else "left")
    style = {"complete": "green", "failed": "red", "running": "cyan", "missing": "yellow"}
    for r in rows:
        st = r.state.state
        detail = r.state.detail or _progress(r.state)
        cells = [r.spec.dataset, r.spec.label, str(r.spec.seed), str(r.spec.epochs), str(r.spec.batch_size),
                 f"[{style.get(st, 'dim')}]{st}[/]", detail]
        if tflops:
            hours = r.cost.gpu_hours(tflops) if r.cost else None
            cells.append("?" if hours is None else f"{hours:.3g}")
        table.add_row(*cells)
    console.print(table)
    counts = Counter(r.state.state for r in rows)
    shown = [s for s in ("complete", "running", "failed", "missing", "unknown") if counts.get(s) or s != "unknown"]
    console.print(f"{len(rows)} run(s): " + ", ".join(f"{counts.get(s, 0)} {s}" for s in shown)
                  + f" (results: {results})", markup=False)
    for dataset, why in missing_data.items():
        console.print(f"no data for {dataset} here, so the state of its runs is unknown (a run's spec hash holds the "
                      f"data files' digest): {why}", markup=False, soft_wrap=True)
    if throughput:
        print_estimate(rows, *throughput)


def print_estimate(rows: list[PlanRow], tflops: float, basis: str) -> None:
    hours = [r.cost.gpu_hours(tflops) for r in rows]
    known = [h for h in hours if h is not None]
    todo = [h for r, h in zip(rows, hours) if h is not None and r.state.state != "complete"]
    console.print(f"estimated GPU-hours: {sum(known):.4g} in all, {sum(todo):.4g} not complete yet; ASSUMED "
                  f"{tflops:g} TFLOP/s sustained ({basis}), "
                  f"work = fvcore FLOPs of one sequence x (3 x training sequences x epochs + validation sequences x "
                  f"epochs + test sequences)", markup=False, soft_wrap=True)
    unknown = len(hours) - len(known)
    if unknown:
        console.print(f"{unknown} run(s) not estimated: their training-set size comes from the data files "
                      f"(the dataset registers no standard sizes)", markup=False, soft_wrap=True)
    pretrain = sorted({r.spec.label for r in rows if r.cost and r.cost.pretraining})
    if pretrain:
        console.print(f"not counted: the pretraining stage of {', '.join(pretrain)}", markup=False, soft_wrap=True)


def _progress(state) -> str:
    from bench.plan.state import describe_progress

    return describe_progress(state.progress)
