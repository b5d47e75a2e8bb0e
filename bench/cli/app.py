"""The ``bench`` command line (typer + rich): one module per subcommand, mounted here.

Every user error ends in ONE line on stderr naming the problem and the fix, and a non-zero exit;
everything is validated before any training starts.

    bench run      bench.cli.run          bench report   bench.cli.report
    bench demo     bench.cli.demo         bench audit    bench.cli.efficiency
    bench list     bench.cli.listing      bench perf     bench.cli.efficiency
    bench data     bench.cli.data         bench plan     bench.cli.plan
    bench submit   bench.cli.submit       bench status   bench.cli.status
"""

from __future__ import annotations

import sys
import warnings

import typer

from bench.cli.common import err_console
from bench.cli.data import data_app
from bench.cli.demo import demo
from bench.cli.efficiency import audit, perf
from bench.cli.listing import list_
from bench.cli.plan import plan
from bench.cli.status import status
from bench.cli.submit import submit
from bench.cli.report import report
from bench.cli.run import run
from bench.errors import BenchError

__all__ = ["app", "main"]

app = typer.Typer(
    name="bench",
    help="Benchmark harness for spatiotemporal predictive learning (video prediction).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# the CLI prints refused registrations itself, one line each (see warn_plugin_problems)
warnings.filterwarnings("ignore", message=r".* refused: the name is already registered", category=UserWarning)

app.command()(run)
app.command()(demo)
app.command("list")(list_)
app.command()(report)
app.command()(audit)
app.command()(perf)
app.command()(plan)
app.command()(submit)
app.command()(status)
app.add_typer(data_app, name="data", help="List, check and download datasets.")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BenchError as exc:  # anything not caught in a command
        err_console.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
