"""The manifest of a submission: which job (array element) trains which run (directory, spec hash).

One JSON file per ``bench submit``, written atomically in ``<jobs>/manifests/`` (rewritten as local jobs
start): the executor, the options, the results directory, the results moved aside by ``--force``, and
one element per run::

    {"index": 0, "job_id": "4242_0", "run_dir": "/shared/results/mmnist_std/tau/1a2b3c4d5e/seed0",
     "spec_hash": "1a2b3c4d5e", "label": "tau", "dataset": "mmnist_std", "seed": 0, "epochs": 2000}

``bench status`` reads every manifest: the newest element naming a run directory gives its job. The
results store stays the single source of truth for the run itself (complete, failed, progress).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.core.atomic import atomic_write_json
from bench.core.safe_read import read_json_file
from bench.errors import BenchError

MANIFEST_SCHEMA = 1
MANIFEST_DIR = "manifests"


def new_manifest_path(jobs: Path) -> Path:
    """A fresh manifest name (UTC time of submission, made unique)."""
    folder = Path(jobs) / MANIFEST_DIR
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path, n = folder / f"{stamp}.json", 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-{n}.json"
    return path


def element(index: int, spec: Any, run_dir: Path) -> dict[str, Any]:
    return {"index": index, "job_id": None, "run_dir": str(run_dir), "spec_hash": spec.hash, "label": spec.label,
            "dataset": spec.dataset, "seed": spec.seed, "epochs": spec.epochs}


def write_manifest(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"schema": MANIFEST_SCHEMA, **doc})


def read_manifests(jobs: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every manifest under ``jobs`` (oldest first) and one problem line per unreadable one."""
    folder = Path(jobs) / MANIFEST_DIR
    docs, problems = [], []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            doc = read_json_file(path, fix="delete it")
            if not isinstance(doc, dict) or doc.get("schema") != MANIFEST_SCHEMA or not isinstance(
                    doc.get("elements"), list):
                raise BenchError(f"{path} is not a bench submission manifest; delete it")
        except BenchError as exc:
            problems.append(str(exc))
            continue
        docs.append({**doc, "path": str(path)})
    docs.sort(key=lambda d: str(d.get("created", "")))
    return docs, problems


def jobs_by_run(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Run directory -> its newest element (with the submission's executor and manifest path)."""
    latest: dict[str, dict[str, Any]] = {}
    for doc in docs:
        for item in doc["elements"]:
            if isinstance(item, dict) and isinstance(item.get("run_dir"), str):
                latest[item["run_dir"]] = {**item, "executor": doc.get("executor"), "manifest": doc["path"]}
    return latest
