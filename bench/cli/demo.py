"""The first five minutes: ``bench demo`` trains three methods at the small configuration on offline
Moving MNIST, renders the report, and says where it is and what to run next.

It is exactly ``bench run --methods simvp,tau,convlstm --datasets mmnist --tiny --sizes
train=1024,val=128,test=64 --epochs 5 --batch-size 8`` followed by ``bench report`` on the same
directory (the command prints it). Nothing in it is a separate concept: ``--tiny`` is the small
configuration (each method's ``tiny`` widths with its paper optimiser, learning rate, schedule and
loss), ``--sizes``/``--epochs`` set the budget, and ``--batch-size 8`` replaces the papers' batch 16
(learning rates not rescaled; measured below), all recorded in each run's spec. Every result is
labelled tiny, and the report never ranks it with paper-size runs or presents it as comparable
with the papers.

How the budget was chosen (measured on the 2-core CPU these instructions target, idle, 2 threads,
with :mod:`bench.core.host_allocator` in effect, which halved the SimVP/TAU step time):
- Batch: tiny TAU for 90 s reaches validation MSE 83.5 at batch 8, 83.4 at batch 4 (lr 0.005),
  about 88 at batch 16 and 90.7 at batch 32 (lr 0.02): at these widths more, smaller steps learn
  more per second, and batch 8 keeps the paper learning rates.
- Budget: 5 epochs of 1,024 generated sequences train for about 100 s (TAU), 58 s (SimVP) and
  27 s (ConvLSTM); with validation after every epoch, the test, FLOPs, fps and the report the
  whole demo took 3 min 26 s here (4 min 00 s on a fresh clone, where the machine was busier).
  All three methods share sizes and epochs so that they land in one comparison table (the report
  groups runs by budget).
- What it shows: validation MSE (raw predictions, summed over the 64x64 frame; an all-black
  prediction scores about 151) falls at every epoch, TAU 110 -> 82, SimVP 113 -> 96, ConvLSTM
  152 -> 104. The predictions are the digits as blurred blobs moving to the right places.
- What it cannot show in 5 minutes: sharp, recognisable digits. Measured: tiny TAU trained for
  10 minutes at batch 16 (28,000 sequences) reaches validation MSE 66 (27 on the first predicted
  frame), and for 19 minutes at batch 8 (55,000 sequences) 58 (23 on the first frame): only then
  are the digits recognisable in the first one or two predicted frames, blurring after. Wider
  models (hid_S 16-32, hid_T 64-128, N_S 4) and a 32x32 canvas learn less per CPU second, and
  ``torch.compile`` gave no speed-up on CPU. Sharp digits take the paper configurations on a GPU
  (``bench run ... --device cuda``).
"""

from __future__ import annotations

from dataclasses import dataclass

import typer

from bench.cli.common import as_dir, check_results_dir, console, fail, parse_sizes, resolve_runs, resolve_targets
from bench.cli.run import execute_sweep, print_outcomes
from bench.errors import BenchError
from bench.run.options import RunOptions


@dataclass(frozen=True)
class DemoRecipe:
    methods: str = "simvp,tau,convlstm"
    dataset: str = "mmnist"
    sizes: str = "train=1024,val=128,test=64"
    epochs: int = 5
    batch_size: int = 8

    def run_command(self, results: str) -> str:
        return (f"bench run --methods {self.methods} --datasets {self.dataset} --tiny --sizes {self.sizes} "
                f"--epochs {self.epochs} --batch-size {self.batch_size} --results {results}")


DEMO = DemoRecipe()

NEXT_STEP = ("bench run --methods simvp,tau,convlstm --datasets mmnist --device cuda "
             "(the paper configurations; add --seeds 0,1,2 and --epochs N for a real comparison)")


def demo(
    results_: str = typer.Option("results/demo", "--results", "-r", help="Results directory of the demo"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or per-epoch lines"),
) -> None:
    """The first five minutes: three methods at the small (--tiny) configuration on offline Moving MNIST,
    then the report (about 4 minutes on 2 CPU cores). Not a benchmark: the numbers are labelled tiny.
    """
    from bench.core.platform import resolve_device
    from bench.report import write_report
    from bench.spec.run_spec import SpecOptions

    try:
        results = as_dir(results_, "--results")
        keys, specs = resolve_targets(DEMO.methods, DEMO.dataset, {})
        runs = resolve_runs(keys, specs, [0], SpecOptions(tiny=True, sizes=parse_sizes(DEMO.sizes),
                                                          epochs=DEMO.epochs, batch_size=DEMO.batch_size))
        check_results_dir(results)
        device = str(resolve_device("auto"))
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    console.print(f"demo: {DEMO.run_command(str(results))}, then bench report --results {results}", markup=False,
                  soft_wrap=True)
    outcomes = execute_sweep(runs, RunOptions(results=results, device=device), quiet)
    print_outcomes(outcomes, results)
    try:
        written = write_report(results, results / "report")
    except BenchError as exc:
        raise fail(str(exc), exc.exit_code)
    figures = sorted(p for p in written if p.suffix == ".png")
    console.print(f"Report: {results / 'report' / 'report.md'} ({len(figures)} figures in "
                  f"{results / 'report' / 'figures'}). Next: {NEXT_STEP}", markup=False, soft_wrap=True)
