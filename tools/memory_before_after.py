"""Peak memory and CPU training throughput of ``bench run --methods M --quick --epochs 1``, before and after a change.

Issue 25 asked where the 6-8 GB of a one-epoch ``--quick`` paper-size SimVP / TAU run go, and for the
peak memory and the training throughput before and after the changes that removed the waste, measured
with the same command, alternated in one script. This is that script:

    git archive <before-commit> | tar -x -C /tmp/before        # the tree before the change
    .venv/bin/python tools/memory_before_after.py --before /tmp/before --methods simvp,tau --rounds 2

Every run is a fresh process of ``bench run --methods M --quick --epochs 1 --device cpu --results <tmp>
--quiet`` importing the bench of the tree it measures (a module finder put first on ``sys.meta_path``
maps ``bench``, ``bench.baselines``, ``bench.methods`` and ``bench.datasets`` to that tree's folders;
the child checks where ``bench`` came from). Per method and round the two trees run one after the
other, in alternating order, so that the drift of a shared machine hits both.

What is measured, the same way in both trees and outside their code (nothing here frees or trims
memory, so the tree's own behaviour is what is measured):

* ``process``: the peak resident set size of the whole process, polled by this script every 20 ms
  (``VmRSS`` of the child; its ``ru_maxrss`` would not do: the phases' resets of the high-water mark
  reset it too);
* per phase, the peak resident set size during it: the kernel's high-water mark (``VmHWM``) is reset
  at the start of the phase (``5`` written to ``/proc/self/clear_refs``) and read at its end.
  ``train`` is each call of ``bench.run.loop.train_epoch``, ``val`` and ``test`` each call of
  ``evaluate`` from the epoch loop and from the end of the run, ``save`` each call of ``save_last``
  and ``save_best`` (the checkpoints), ``measure`` each call of ``measure_efficiency`` (fvcore's FLOP
  count and the fps passes). A phase's peak includes everything resident when it starts (the
  model, the optimiser state, freed memory the allocator kept);
* ``samples/s``: the run's own ``efficiency.train_samples_per_second`` (training samples over the
  seconds of the epoch, its first step included: that step maps and faults in the memory the others
  reuse); ``steady``: the steps after the first (timed at the progress bar's hook, called after every
  optimiser step);
* ``wall s``: the child's wall-clock seconds.

Linux only (``/proc``). The results go to ``--out`` (JSON) and a table on stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = {"bench": "bench", "bench.baselines": "baselines", "bench.methods": "methods", "bench.datasets": "datasets"}
PHASES = ("train", "val", "save", "test", "measure")
POLL_SECONDS = 0.02


# ------------------------------------------------------------------------------------------ child


def _hwm() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_hwm() -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")


class _TreeFinder:
    """Imports ``bench`` and its mapped packages from one tree, ahead of any installed copy."""

    def __init__(self, tree: Path):
        self.tree = tree

    def find_spec(self, fullname, path=None, target=None):
        folder = PACKAGES.get(fullname)
        if folder is None:
            return None
        where = self.tree / folder
        return importlib.util.spec_from_file_location(fullname, where / "__init__.py",
                                                      submodule_search_locations=[str(where)])


def _metered(peaks: dict[str, list[int]], phase: str, fn):
    def wrapper(*args, **kwargs):
        _reset_hwm()
        try:
            return fn(*args, **kwargs)
        finally:
            peaks.setdefault(phase, []).append(_hwm())
    return wrapper


def child(tree: Path, method: str, results: Path, out: Path, extra: list[str]) -> None:
    """One ``bench run`` of ``tree`` in this process, its phases metered; the peaks go to ``out``."""
    sys.meta_path.insert(0, _TreeFinder(tree))
    import bench
    import bench.run.finish as finish
    import bench.run.loop as loop

    if not Path(bench.__file__).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"bench was imported from {bench.__file__}, not from {tree}")
    peaks: dict[str, list[int]] = {}
    loop.train_epoch = _metered(peaks, "train", loop.train_epoch)
    loop.evaluate = _metered(peaks, "val", loop.evaluate)
    loop.save_last = _metered(peaks, "save", loop.save_last)
    loop.save_best = _metered(peaks, "save", loop.save_best)
    finish.evaluate = _metered(peaks, "test", finish.evaluate)
    finish.measure_efficiency = _metered(peaks, "measure", finish.measure_efficiency)
    step_times: list[float] = []
    bar_step = loop._ProgressBar.step

    def timed_step(self, loss):  # called after every optimiser step (the progress bar's hook)
        step_times.append(time.perf_counter())
        return bar_step(self, loss)

    loop._ProgressBar.step = timed_step
    from bench.cli.app import main

    sys.argv = ["bench", "run", "--methods", method, "--quick", "--epochs", "1", "--device", "cpu",
                "--results", str(results), "--quiet", *extra]
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    out.write_text(json.dumps({"peaks": peaks, "bench": bench.__file__, "step_times": step_times}))


# ------------------------------------------------------------------------------------------ parent


def _rss_of(pid: int) -> int:
    """The resident set size of process ``pid`` now (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def measure(tree: Path, method: str, env: dict[str, str], extra: tuple[str, ...] = ()) -> dict:
    """One run of ``method`` with the bench of ``tree``, in a fresh process (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="membench-") as tmp:
        results, out = Path(tmp) / "results", Path(tmp) / "peaks.json"
        log = Path(tmp) / "log.txt"
        t0 = time.perf_counter()
        with open(log, "w", encoding="utf-8") as fh:
            proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(tree), method,
                                     str(results), str(out), *extra], env=env, stdout=fh, stderr=subprocess.STDOUT)
            process_peak = 0
            while proc.poll() is None:
                process_peak = max(process_peak, _rss_of(proc.pid))
                time.sleep(POLL_SECONDS)
        code = proc.returncode
        if code != 0 or not out.exists():
            raise SystemExit(f"the run of {method} in {tree} failed ({code}):\n{log.read_text()[-3000:]}")
        (result_file,) = results.rglob("result.json")
        result = json.loads(result_file.read_text())
        if result["status"] != "complete":
            raise SystemExit(f"the run of {method} in {tree} did not complete: {result.get('error')}")
        child_out = json.loads(out.read_text())
        peaks, times = child_out["peaks"], child_out["step_times"]
        per_step = sum(h["train_samples"] for h in result["history"]) / len(times)
        return {"process": process_peak, **{p: max(peaks[p]) for p in PHASES if peaks.get(p)},
                "samples_per_s": result["efficiency"]["train_samples_per_second"],
                "steady_samples_per_s": (len(times) - 1) * per_step / (times[-1] - times[0]),
                "wall_s": time.perf_counter() - t0, "recorded_memory": result.get("memory")}


def gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f}"


def table(rows: list[dict]) -> str:
    head = ["method", "tree", "round", "process", *PHASES, "samples/s", "steady", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        m = r["measured"]
        lines.append("| " + " | ".join([r["method"], r["tree"], str(r["round"]), gib(m["process"]),
                                         *(gib(m.get(p)) for p in PHASES), f"{m['samples_per_s']:.3f}",
                                         f"{m['steady_samples_per_s']:.3f}", f"{m['wall_s']:.0f}"]) + " |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """Per method and tree: the median over rounds of the process peak, train and eval peaks, samples/s."""
    lines = ["| method | tree | peak RSS process (GiB) | train (GiB) | eval (GiB) | samples/s (median; all) | "
             "steady samples/s (median; all) |", "|---|---|---|---|---|---|---|"]
    for method in dict.fromkeys(r["method"] for r in rows):
        for tree in ("before", "after"):
            ms = [r["measured"] for r in rows if r["method"] == method and r["tree"] == tree]
            if not ms:
                continue
            med = lambda key: statistics.median(m[key] for m in ms)
            evals = statistics.median(max(m.get("val", 0), m.get("test", 0)) for m in ms)
            speeds = ", ".join(f"{m['samples_per_s']:.3f}" for m in ms)
            steady = ", ".join(f"{m['steady_samples_per_s']:.3f}" for m in ms)
            lines.append(f"| {method} | {tree} | {gib(med('process'))} | {gib(med('train'))} | {gib(evals)} | "
                         f"{med('samples_per_s'):.3f} ({speeds}) | {med('steady_samples_per_s'):.3f} ({steady}) |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5]), sys.argv[6:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="a tree of the code before the change")
    parser.add_argument("--after", type=Path, default=REPO, help="a tree of the code after it (default: this one)")
    parser.add_argument("--methods", default="simvp,tau")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the measurements here (JSON)")
    parser.add_argument("--extra", default="", help="more `bench run` arguments, e.g. '--tiny' for a quick check")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    rows = []
    for rnd in range(1, args.rounds + 1):
        for i, method in enumerate(args.methods.split(",")):
            order = [("before", args.before), ("after", args.after)]
            for name, tree in (order if (rnd + i) % 2 else order[::-1]):
                measured = measure(tree, method, env, tuple(args.extra.split()))
                rows.append({"method": method, "tree": name, "round": rnd, "measured": measured})
                print(f"measured {method} {name} round {rnd}: process {gib(measured['process'])} GiB, "
                      f"{measured['samples_per_s']:.3f} samples/s", flush=True)
    print(table(rows))
    print()
    print(summary(rows))
    if args.out is not None:
        args.out.write_text(json.dumps({"command": f"bench run --methods M --quick --epochs 1 --device cpu {args.extra}",
                                        "before": str(args.before), "after": str(args.after),
                                        "keep_freed_memory": os.environ.get("BENCH_KEEP_FREED_MEMORY", "1"),
                                        "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
