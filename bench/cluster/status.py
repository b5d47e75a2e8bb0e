"""``bench status``: every run's state from the results store, and its job's state from the scheduler.

The runs shown are a plan's (``--plan``), else every run the store holds (``<dataset>/<label>/<hash>/
seed<k>`` and ``seed<k>.partial``) together with every run a manifest names (submitted, maybe not
started). The state and progress are the store's (:mod:`bench.plan.state`); the job is the newest
manifest element naming the run (:mod:`bench.cluster.manifest`), and its state comes from ``sacct``
when it is on PATH (``sacct -n -X -P -o JobID,State -j <ids>``; array elements still pending are
printed as ``4242_[2-5%2]`` and expanded here), from the process table for local jobs (the job id is
its controller's pid: ``RUNNING`` while it lives, else ``ENDED``), else ``unknown``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from bench.plan.state import RunState, run_state

SKIPPED_TOP = ("audit", "_cache", "report", "_jobs")
SACCT_TIMEOUT_S = 30


@dataclass(frozen=True)
class RunRef:
    """A run to report: its committed directory and what is known of it without reading it."""

    final: Path
    dataset: str
    label: str
    seed: int
    epochs: int | None = None


@dataclass(frozen=True)
class StatusRow:
    run: RunRef
    state: RunState
    job_id: str | None = None
    job_state: str | None = None


def store_runs(results: Path) -> list[RunRef]:
    """Every run with a directory in the store (committed or in progress)."""
    refs: dict[Path, RunRef] = {}
    if not results.is_dir():
        return []
    for top in sorted(p for p in results.iterdir() if p.is_dir() and p.name not in SKIPPED_TOP):
        for path in sorted(top.glob("*/*/seed*")):
            match = re.fullmatch(r"seed(\d+)(\.partial)?", path.name)
            if not match or not path.is_dir():
                continue
            final = path.with_name(f"seed{match.group(1)}")
            refs.setdefault(final, RunRef(final, top.name, path.parent.parent.name.replace("+", ":"),
                                          int(match.group(1))))
    return list(refs.values())


def manifest_runs(elements: dict[str, dict[str, Any]], results: Path | None = None) -> list[RunRef]:
    """The runs the manifests name (newest element per run directory), those inside ``results`` only when given
    (a jobs folder shared by several results directories, or a results directory moved since submission)."""
    root = results.resolve() if results is not None else None
    return [RunRef(Path(run_dir), str(e.get("dataset", "?")), str(e.get("label", "?")), int(e.get("seed", 0)),
                   e.get("epochs") if isinstance(e.get("epochs"), int) else None)
            for run_dir, e in elements.items() if root is None or Path(run_dir).is_relative_to(root)]


def merge_runs(first: Iterable[RunRef], second: Iterable[RunRef]) -> list[RunRef]:
    """Both lists, one entry per run directory (the first list's entry wins; epochs filled from either)."""
    out: dict[Path, RunRef] = {}
    for ref in [*first, *second]:
        key = ref.final.resolve()
        if key not in out:
            out[key] = ref
        elif out[key].epochs is None and ref.epochs is not None:
            out[key] = RunRef(out[key].final, out[key].dataset, out[key].label, out[key].seed, ref.epochs)
    return sorted(out.values(), key=lambda r: (r.dataset, r.label, r.seed, str(r.final)))


def status_rows(refs: list[RunRef], elements: dict[str, dict[str, Any]]) -> list[StatusRow]:
    """Each run's state, and its job and the job's state where a manifest names one."""
    jobs = {ref.final: elements.get(str(ref.final.resolve())) for ref in refs}
    states = job_states([e for e in jobs.values() if e and e.get("job_id")])
    rows = []
    for ref in refs:
        item = jobs[ref.final]
        job_id = str(item["job_id"]) if item and item.get("job_id") else None
        rows.append(StatusRow(ref, run_state(ref.final, ref.epochs), job_id, states.get(job_id) if job_id else None))
    return rows


def job_states(items: list[dict[str, Any]]) -> dict[str, str]:
    """Job id -> scheduler state for manifest elements (``unknown`` where it cannot be asked)."""
    out: dict[str, str] = {}
    slurm = [str(e["job_id"]) for e in items if e.get("executor") == "slurm"]
    for e in items:
        if e.get("executor") == "local":
            out[str(e["job_id"])] = "RUNNING" if pid_alive(str(e["job_id"])) else "ENDED"
    if slurm:
        out.update(sacct_states(slurm))
    return out


def pid_alive(job_id: str) -> bool:
    try:
        os.kill(int(job_id), 0)
    except (ValueError, ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def sacct_states(ids: list[str]) -> dict[str, str]:
    """Slurm job id -> state from one ``sacct`` call (every id ``unknown`` without sacct or if it fails)."""
    unknown = {i: "unknown" for i in ids}
    if shutil.which("sacct") is None:
        return unknown
    arrays = sorted({i.split("_")[0] for i in ids})
    try:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(arrays)],
                             capture_output=True, text=True, timeout=SACCT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return unknown
    if out.returncode != 0:
        return unknown
    states = parse_sacct(out.stdout)
    return {i: states.get(i, "unknown") for i in ids}


def parse_sacct(text: str) -> dict[str, str]:
    """``JobID|State`` lines -> {job id: state}; ``4242_[2-5%2]`` and ``4242_[1,3]`` are expanded."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        job, sep, state = line.strip().partition("|")
        if not sep or not job:
            continue
        state = state.split()[0] if state.split() else "unknown"  # "CANCELLED by 1000" -> CANCELLED
        match = re.fullmatch(r"(\d+)_\[([\d,\-]+)(?:%\d+)?\]", job)
        if not match:
            states[job] = state
            continue
        for part in match.group(2).split(","):
            low, _, high = part.partition("-")
            for index in range(int(low), int(high or low) + 1):
                states[f"{match.group(1)}_{index}"] = state
    return states
