"""``bench submit``: the runs of ``bench run``'s selection (or a plan) as Slurm jobs, or as local processes.

The selection is resolved and validated exactly as ``bench run`` does (:mod:`bench.cli.selection`),
then the cluster options (:mod:`bench.cluster.options`); runs already complete (or training now) are
dropped; ``--force`` is carried out here; each remaining run becomes one job (one element of one job
array on Slurm; :mod:`bench.cluster.executors`) and a manifest records which job trains which run
(:mod:`bench.cluster.manifest`). On Slurm the command returns at once; ``--executor local`` runs the
jobs here (one per GPU slot) and returns when they end. ``--dry-run`` prints the runs and the batch
script and submits nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from bench.cli import selection as sel
from bench.cli.common import as_dir, check_results_dir, check_writable_dir, console, fail, warn_plugin_problems
from bench.errors import BenchError


def submit(
    methods: Optional[str] = sel.METHODS,
    datasets: Optional[str] = sel.DATASETS,
    plan: Optional[str] = sel.PLAN,
    seeds: Optional[str] = sel.SEEDS,
    epochs: Optional[int] = sel.EPOCHS,
    batch_size: Optional[int] = sel.BATCH_SIZE,
    quick: bool = sel.QUICK,
    tiny: bool = sel.TINY,
    sizes: Optional[str] = sel.SIZES,
    set_: Optional[list[str]] = sel.SET,
    pred_len: Optional[int] = sel.PRED_LEN,
    results_: str = sel.RESULTS,
    data_dir: Optional[str] = sel.DATA_DIR,
    data_seed: Optional[int] = sel.DATA_SEED,
    precision: Optional[str] = sel.PRECISION,
    device: str = typer.Option("auto", "--device", help="Device of each run: auto, cpu, cuda"),
    channels_last: bool = typer.Option(False, "--channels-last", help="Channels-last memory format (GPU convolutions)"),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the training step"),
    force: bool = typer.Option(False, "--force", help="Re-run complete runs: their results are moved aside to "
                               "<jobs>/replaced/ now, at submission (never inside a job)"),
    executor: str = typer.Option("slurm", "--executor", help="slurm (sbatch, one job array) or local (processes "
                                 "on this machine, one per GPU; waits for them)"),
    jobs_: Optional[str] = typer.Option(None, "--jobs", help="Jobs folder for submitit's pickles, logs and the "
                                        "manifests; on storage every node sees (default: <results>/_jobs)"),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Minutes one job may run (Slurm: required, "
                                               "at most the partition's limit); a longer run is requeued and resumes"),
    gpus_per_run: Optional[int] = typer.Option(None, "--gpus-per-run", help="GPUs per run, one process each, one node "
                                               "(default 1; locally 0 without CUDA)"),
    tasks_per_run: Optional[int] = typer.Option(None, "--tasks-per-run", help="Processes per run without GPUs (CPU "
                                                "DDP with gloo); with GPUs it is --gpus-per-run"),
    cpus_per_task: Optional[int] = typer.Option(None, "--cpus-per-task", help="CPUs per process"),
    mem_gb: Optional[int] = typer.Option(None, "--mem-gb", help="Memory per node in GB"),
    max_parallel: Optional[int] = typer.Option(None, "--max-parallel", help="Runs at once (Slurm: the array's %% "
                                               "limit; local: job slots, default one per GPU)"),
    max_requeues: Optional[int] = typer.Option(None, "--max-requeues", help="Time-outs a run may be requeued after "
                                               "(default 10; local 5 at most); past it the run is recorded failed"),
    signal_delay: int = typer.Option(120, "--signal-delay", help="Seconds before the time limit at which the run is "
                                     "told to stop (SIGUSR2) and requeued"),
    partition: Optional[str] = typer.Option(None, "--partition", help="Slurm partition"),
    account: Optional[str] = typer.Option(None, "--account", help="Slurm account"),
    qos: Optional[str] = typer.Option(None, "--qos", help="Slurm quality of service"),
    constraint: Optional[str] = typer.Option(None, "--constraint", help="Slurm node constraint, e.g. a100"),
    sbatch: Optional[list[str]] = typer.Option(None, "--sbatch", help="Any other sbatch option: key=value or a flag "
                                               "(repeatable), e.g. --sbatch mail-type=END"),
    setup: Optional[list[str]] = typer.Option(None, "--setup", help="A shell line run before the job (repeatable), e.g. "
                                              "--setup 'module load cuda/12.4'"),
    job_name: str = typer.Option("bench", "--job-name", help="Slurm job name"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the runs and the batch script; submit nothing"),
) -> None:
    """Submit runs as Slurm jobs (one array element per run), or run them as local jobs (--executor local).

    Examples:

      bench submit --plan tau-table6 --time-limit 1440 --partition gpu --account proj42 --dry-run

      bench submit --methods tau,tau:no-ddr --datasets mmnist_std --seeds 0,1,2 --time-limit 720

      bench submit --plan tau-table6 --executor local          (a GPU workstation: one run per GPU)

    Needs the slurm extra: pip install -e '.[slurm]'. Runs already complete are not submitted. A job
    that reaches --time-limit is stopped at the next step (SIGUSR2 --signal-delay seconds before),
    requeued, and resumes from its last epoch; after --max-requeues time-outs the run is recorded as
    failed, and submitting it again resumes it. Watch with `bench status`, report with `bench report`.
    """
    from bench.cluster.options import ClusterOptions, check_options, parse_sbatch

    selection = sel.Selection(methods=methods, datasets=datasets, plan=plan, seeds=seeds, epochs=epochs,
                              batch_size=batch_size, quick=quick, tiny=tiny, sizes=sizes, sets=set_,
                              pred_len=pred_len, data_dir=data_dir, data_seed=data_seed, precision=precision)
    try:
        results = as_dir(results_, "--results")
        jobs = as_dir(jobs_, "--jobs") if jobs_ is not None else results / "_jobs"
        opts = ClusterOptions(executor=executor, jobs=jobs, time_limit_min=time_limit, gpus_per_run=gpus_per_run,
                              tasks_per_run=tasks_per_run, cpus_per_task=cpus_per_task, mem_gb=mem_gb,
                              max_parallel=max_parallel, max_requeues=max_requeues, signal_delay_s=signal_delay,
                              partition=partition, account=account, qos=qos, constraint=constraint,
                              sbatch=parse_sbatch(sbatch), setup=list(setup or []), job_name=job_name)
        require_submitit()
        check_options(opts, dry_run)
        resolved = sel.resolve_selection(selection)
        check_divisible(resolved.runs, opts.tasks)
        if not dry_run:
            check_results_dir(results)
            check_writable_dir(jobs, "jobs folder", "--jobs DIR")
        from bench.cluster.launch import triage

        sorted_runs = triage(resolved.runs, results, force)
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    warn_plugin_problems()
    say_dropped(sorted_runs)
    if not sorted_runs.submit:
        console.print("nothing to submit: every selected run is complete or training now "
                      f"(`bench status --results {results}` shows them)", markup=False)
        return
    from bench.cluster.job import JobSettings

    settings = JobSettings(results=str(results.resolve()), device=device,
                           data_dir=str(Path(data_dir).resolve()) if data_dir else None, channels_last=channels_last,
                           compile=compile_, max_requeues=opts.requeues, time_limit_min=opts.time_limit_min)
    if dry_run:
        print_dry_run(sorted_runs.submit, opts, force)
        return
    from bench.cli.submit_steps import launch

    launch(sorted_runs.submit, resolved, opts, settings, force)


def require_submitit() -> None:
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise BenchError("bench submit needs submitit: install the slurm extra with pip install -e '.[slurm]' (or "
                         "pip install 'submitit>=1.5') in the environment the jobs will use") from None


def check_divisible(runs: list, tasks: int) -> None:
    for spec, _ in runs:
        if spec.batch_size % tasks:
            raise BenchError(f"{spec.label}: batch size {spec.batch_size} is not divisible by the {tasks} processes of "
                             f"a run; pass --batch-size as a multiple of --gpus-per-run")


def say_dropped(sorted_runs) -> None:
    for what, runs in (("complete (not submitted; --force re-runs it)", sorted_runs.complete),
                       ("training now (its lock is held; not submitted)", sorted_runs.running)):
        if runs:
            console.print(f"{len(runs)} run(s) {what}: " + ", ".join(
                f"{s.label} on {s.dataset} seed {s.seed}" for s, _ in runs[:8]) + (" ..." if len(runs) > 8 else ""),
                markup=False, soft_wrap=True)


def runs_table(runs: list, title: str) -> Table:
    table = Table(title=title)
    for col in ("#", "dataset", "method", "seed", "epochs", "batch", "spec hash"):
        table.add_column(col, overflow="fold")
    for i, (spec, _) in enumerate(runs):
        table.add_row(str(i), spec.dataset, spec.label, str(spec.seed), str(spec.epochs), str(spec.batch_size),
                      spec.hash)
    return table


def print_dry_run(runs: list, opts, force: bool) -> None:
    from bench.cluster.executors import sbatch_script
    from bench.cluster.options import local_slots

    console.print(runs_table(runs, f"bench submit --dry-run: {len(runs)} run(s) to submit ({opts.executor})"))
    if force:
        console.print(f"--force: the previous results of these runs would be moved to {opts.jobs}/replaced/<time>/ "
                      f"and their work directories removed, before submitting", markup=False, soft_wrap=True)
    if opts.executor == "slurm":
        console.print(f"batch script (one sbatch; max {opts.requeues} requeues after time-outs per run):",
                      markup=False)
        console.print(sbatch_script(opts, len(runs)), markup=False, highlight=False, soft_wrap=True)
    else:
        slots = local_slots(opts)
        console.print(f"local: {len(slots)} slot(s) ({', '.join(_gpus(s) for s in slots)}), time limit "
                      f"{'none' if opts.time_limit_min is None else f'{opts.time_limit_min:g} min'}, "
                      f"max {opts.requeues} requeues after time-outs per run", markup=False)


def _gpus(slot: tuple[int, ...]) -> str:
    return f"GPUs {','.join(map(str, slot))}" if slot else "CPU"
