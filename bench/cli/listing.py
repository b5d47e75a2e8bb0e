"""``bench list``: the registered methods (with variants) and datasets, or one method key's hyperparameters."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from bench.cli.common import console, fail, warn_plugin_problems
from bench.errors import BenchError


def list_(
    pattern: str = typer.Argument("*", help="Wildcard over method names, e.g. 'tau*'"),
    hparams: Optional[str] = typer.Option(None, "--hparams", help="Show the resolved hyperparameters of a method key"),
    dataset: str = typer.Option("mmnist", "--dataset", help="Dataset for --hparams"),
    tiny: bool = typer.Option(False, "--tiny", help="With --hparams: the small (--tiny) configuration's values"),
) -> None:
    """List registered methods (with variants) and datasets."""
    from bench.spec.registry import get_dataset, get_method, list_datasets, list_methods, parse_method_key

    try:
        if hparams:
            key = parse_method_key(hparams)
            get_dataset(dataset)
            hp = key.resolve(dataset, tiny=tiny)
            declared = key.spec.declarations()
            table = Table(title=f"{key.label} on {dataset}" + (" (--tiny)" if tiny else ""))
            table.add_column("hyperparameter")
            table.add_column("value")
            table.add_column("valid values", overflow="fold")
            for k in sorted(hp):
                decl = declared.get(k)
                table.add_row(k, repr(hp[k]), (decl.describe() + (f" ({decl.doc})" if decl.doc else "")) if decl else "")
            console.print(table)
            return
        table = Table(title="methods")
        for col in ("method", "variants", "citation"):
            table.add_column(col, overflow="fold")
        for name in list_methods(pattern):
            spec = get_method(name)
            table.add_row(name, ", ".join(sorted(spec.variants)) or "-", spec.citation)
        console.print(table)
        dtable = Table(title="datasets")
        for col in ("dataset", "frames", "shape (C,H,W)", "description"):
            dtable.add_column(col, overflow="fold")
        for name in list_datasets():
            d = get_dataset(name)
            dtable.add_row(name, f"{d.in_frames} -> {d.out_frames}", str(d.frame_shape), d.description)
        console.print(dtable)
        warn_plugin_problems()
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
