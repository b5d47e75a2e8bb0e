"""``bench data``: what datasets are registered, which files are present, checks and downloads.

    bench data list                    registered datasets, what is present under the data directory,
                                       what is missing and how to get it
    bench data check NAME              shapes, value ranges and sequence counts against the papers'
                                       (a count that differs, e.g. on small fixture files, is a warning)
    bench data download NAME           fetch what can be fetched (Moving MNIST); resumable, verified

The data directory is ``--data-dir`` or ``$BENCH_DATA``. Mounted in :mod:`bench.cli.app` as
``app.add_typer(data_app, name="data")``. File layouts: the module docstrings in ``datasets/``.
"""

from __future__ import annotations

import os
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from bench.errors import BenchError

data_app = typer.Typer(name="data", help="List, check and download datasets.", no_args_is_help=True,
                       add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

DATA_DIR_HELP = "Data directory (default: $BENCH_DATA)"


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"error: {message}", markup=False, soft_wrap=True)
    return typer.Exit(code)


def _sources():
    from bench.datafiles import SOURCES
    from bench.spec.registry import list_datasets

    names = list_datasets()  # imports every dataset module, which registers its source
    return names, SOURCES


def _source(name: str):
    from bench.spec.registry import get_dataset

    get_dataset(name)  # unknown names: one line with a suggestion
    _, sources = _sources()
    if name not in sources:
        raise BenchError(f"dataset {name!r} does not describe its files (a plugin without a data source); "
                         f"see its documentation for where its data goes")
    return sources.get(name)


def _check_base_url(base_url: str) -> None:
    """``--base-url`` must be an absolute http(s) or file URL."""
    from urllib.parse import urlparse

    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https", "file") or (parsed.scheme != "file" and not parsed.netloc):
        raise BenchError(f"--base-url {base_url!r} is not an http(s):// or file:// address; write e.g. "
                         f"--base-url https://mirror.example.org/data")


@data_app.command("list")
def list_(data_dir: Optional[str] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP)) -> None:
    """Registered datasets: frames, shape, status under the data directory, and how to get what is missing."""
    from bench.datafiles import data_root
    from bench.spec.registry import get_dataset

    try:
        names, sources = _sources()
        root = data_root(data_dir)
    except BenchError as exc:
        raise _fail(str(exc), exc.exit_code)
    table = Table(title=f"datasets (data directory: {root if root else 'not set: pass --data-dir or set BENCH_DATA'})")
    for col in ("dataset", "frames", "shape (C,H,W)", "status", "where / how to get it"):
        table.add_column(col, overflow="fold")
    style = {"present": "green", "generated": "green", "partial": "yellow", "missing": "red"}
    for name in names:
        spec = get_dataset(name)
        src = sources.get(name) if name in sources else None
        if src is None:
            status, where = "unknown", "(plugin: no data source described)"
        else:
            status, where = src.present(root)
            if status in ("missing", "partial"):
                where = f"{where}. To get it: {src.how_to_get}"
        table.add_row(name, f"{spec.in_frames} -> {spec.out_frames}", str(spec.frame_shape),
                      f"[{style.get(status, 'white')}]{status}[/]", where)
    console.print(table)


@data_app.command()
def check(
    name: str = typer.Argument(..., help="Dataset name, e.g. taxibj"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
) -> None:
    """Check a dataset's files: shapes, value ranges and counts against the papers' full sizes.

    Exit code 0 when the files load (count differences are warnings), 2 when something is wrong.
    """
    from bench.datafiles import CheckReport, data_root, require_root

    try:
        src = _source(name)
        root = data_root(data_dir)
        if root is None and src.present(None)[0] == "generated":
            pass  # a generated dataset needs no data directory
        else:
            root = require_root(data_dir, name, src.layout)
    except BenchError as exc:
        raise _fail(str(exc), exc.exit_code)
    report = CheckReport()
    try:
        src.check(root, report)
        if not report.failed:
            _identity_line(name, root, report)
    except Exception as exc:  # noqa: BLE001 - a check must report, never crash
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise _fail(f"checking {name} under {root} failed ({type(exc).__name__}: {first}); the files are not in the "
                    f"expected form: {src.layout}")
    mark = {"ok": "[green]ok[/]     ", "warn": "[yellow]warning[/]", "error": "[red]error[/]  "}
    for level, text in report.lines:
        console.print(f"{mark[level]} ", end="")
        console.print(text, markup=False, soft_wrap=True)
    if report.failed:
        raise _fail(f"{name}: {sum(1 for lv, _ in report.lines if lv == 'error')} problem(s) above; expected layout: "
                    f"{src.layout}")
    warns = sum(1 for lv, _ in report.lines if lv == "warn")
    console.print(f"{name}: files load" + (f" ({warns} warning(s))" if warns else ""), markup=False)


def _identity_line(name: str, root, report) -> None:
    """What every run on these files records as its data identity (``data_source``, bench.datafiles.identity)."""
    from bench.spec.registry import DataConfig, get_dataset

    spec = get_dataset(name)
    if spec.source_identity is None:
        return
    try:
        identity = dict(spec.source_identity(DataConfig(data_dir=str(root) if root is not None else None)))
    except BenchError as exc:
        report.error(str(exc))
        return
    text = ", ".join(f"{k} {v}" for k, v in identity.items()) or "none"
    report.ok(f"data identity recorded in every run's spec: {text}")


@data_app.command()
def download(
    name: str = typer.Argument(..., help="Dataset name, e.g. mmnist_std"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Mirror replacing each file's directory URL "
                                                                      "(default: $BENCH_DOWNLOAD_BASE, else canonical)"),
) -> None:
    """Download a dataset's files where a stable public address exists; resumable (run again after an interruption)."""
    from bench.datafiles import data_root, download as fetch

    try:
        src = _source(name)
        root = data_root(data_dir, must_exist=False)  # the destination: created below
        if root is None:
            raise BenchError("no data directory: pass --data-dir DIR or set BENCH_DATA=DIR (files go under it)")
        if not src.remote:
            raise BenchError(f"{name} cannot be downloaded automatically: {src.how_to_get}; "
                             f"then run `bench data check {name}`")
        from bench.datafiles import DOWNLOAD_BASE_ENV

        if base_url is not None or os.environ.get(DOWNLOAD_BASE_ENV):
            _check_base_url(base_url if base_url is not None else os.environ[DOWNLOAD_BASE_ENV])
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / ".bench-write-probe"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise BenchError(f"cannot write to the data directory {root} ({exc.strerror}); pass --data-dir with a "
                             f"writable directory") from None
        for rf in src.remote:
            fetch(rf, root, base_url=base_url, log=lambda s: console.print(s, markup=False))
    except BenchError as exc:
        raise _fail(str(exc), exc.exit_code)
    except OSError as exc:  # e.g. the disk filled up while writing
        raise _fail(f"writing under {root} failed ({exc.strerror or exc}); free space or pass another --data-dir")
    console.print(f"{name}: all files present under {root}", markup=False)
