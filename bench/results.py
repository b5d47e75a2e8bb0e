"""The results store: one directory per run, atomic writes, and loading for the reporter.

Layout (``results/`` by default)::

    results/<dataset>/<method label>/seed<k>/
        result.json       everything about the run (schema below); written last, atomically
        history.csv       one row per epoch: epoch, train_loss, val_* metrics, seconds
        predictions.npz   inputs, truth and prediction of the first few test sequences (uint8)
        best.pt           the best checkpoint by validation MSE (state_dict)
    results/audit/<dataset>/<method label>.json   ``bench audit`` figures (no training)

The method label is the canonical method key with ``:`` written as ``+`` in directory names
(``tau:no-ddr`` -> ``tau+no-ddr``). ``result.json`` keys: ``schema``, ``status``
(``complete``/``failed``), ``key`` (dataset, method, variant, overrides, label, seed), ``config``
(hparams, sizes, quick, tiny, device, ...), ``dataset`` (geometry and ``info`` with the digit
source), ``method`` (name, citation), ``environment`` (versions, git hash), ``metric_convention``,
``history`` (list of per-epoch dicts), ``best_epoch``, ``test`` (metrics of the best checkpoint),
``efficiency`` (params, flops, flops_skipped, fps, train seconds per epoch...), ``pretrain``,
``timing``; a failed run has ``error`` and ``last_good_epoch`` instead of ``test``.

Every file is written to a temporary file in the same directory and renamed over the target, so
an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from bench.errors import BenchError

SCHEMA = 1
RESULT_FILE = "result.json"


def label_to_dirname(label: str) -> str:
    return label.replace(":", "+").replace("/", "_")


def dirname_to_label(name: str) -> str:
    return name.replace("+", ":")


def run_dir(root: Path, dataset: str, label: str, seed: int) -> Path:
    return Path(root) / dataset / label_to_dirname(label) / f"seed{seed}"


def audit_path(root: Path, dataset: str, label: str) -> Path:
    return Path(root) / "audit" / dataset / f"{label_to_dirname(label)}.json"


# ----------------------------------------------------------------------------------- writing


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/torch scalars, paths and tuples; non-finite floats become None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return to_jsonable(obj.item())
    return obj


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_torch_save(path: Path, obj: Any) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def write_history_csv(path: Path, history: list[dict[str, Any]]) -> None:
    import pandas as pd

    atomic_write_text(path, pd.DataFrame(history).to_csv(index=False, float_format="%.6g"))


class RunLock:
    """An exclusive, non-blocking lock on one run directory (``.lock``, ``fcntl.flock``).

    Two ``bench run`` processes sharing a results directory never train the same key at once: the
    second sees the lock and skips that run (its other keys go on). The lock dies with its process,
    so a killed run never leaves a stale lock behind.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self._fh = None

    def acquire(self) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


# ----------------------------------------------------------------------------------- reading


def read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); delete it or re-run that run with --force") from None
    except OSError as exc:
        raise BenchError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise BenchError(f"{path} does not hold a JSON object; delete it or re-run that run with --force")
    return data


def validate_result(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Check the fields the reporter relies on; raise BenchError naming the first bad one."""
    def bad(what: str) -> BenchError:
        return BenchError(f"{path}: {what}; the file was edited or is from another tool: delete it or re-run with --force")

    if data.get("schema") != SCHEMA:
        raise bad(f"unknown schema {data.get('schema')!r} (expected {SCHEMA})")
    if data.get("status") not in ("complete", "failed"):
        raise bad(f"status {data.get('status')!r} is neither 'complete' nor 'failed'")
    key = data.get("key")
    if not isinstance(key, dict) or not all(isinstance(key.get(k), str) for k in ("dataset", "method", "label")) \
            or not isinstance(key.get("seed"), int):
        raise bad("'key' must hold dataset, method, label (text) and seed (integer)")
    if data["status"] == "complete":
        test = data.get("test")
        if not isinstance(test, dict):
            raise bad("a complete run has no 'test' metrics")
        for name, value in test.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise bad(f"test metric {name!r} is {value!r}, not a finite number")
        if not isinstance(data.get("history"), list):
            raise bad("'history' must be a list of epochs")
    return data


def load_results(root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All run results under ``root``: (valid results sorted by key, problems found)."""
    root = Path(root)
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    for path in sorted(root.glob(f"*/*/seed*/{RESULT_FILE}")):
        try:
            data = validate_result(read_json(path), path)
        except BenchError as exc:
            problems.append(str(exc))
            continue
        data["_dir"] = str(path.parent)
        runs.append(data)
    runs.sort(key=lambda r: (r["key"]["dataset"], r["key"]["label"], r["key"]["seed"]))
    return runs, problems


def load_audits(root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    root = Path(root)
    audits, problems = [], []
    for path in sorted((root / "audit").glob("*/*.json")):
        try:
            audits.append(read_json(path))
        except BenchError as exc:
            problems.append(str(exc))
    return audits, problems


# ----------------------------------------------------------------------------------- provenance


def git_revision(cwd: Path | None = None) -> dict[str, Any]:
    """The git commit of the harness source (and whether the tree had local changes), if known."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return {"git": None}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
        return {"git": rev.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"git": None}


def environment(device: Any = None) -> dict[str, Any]:
    """Versions, platform, git hash and device name, recorded in every result."""
    import importlib.metadata as md

    import torch

    import bench

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    env: dict[str, Any] = {
        "bench": bench.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "fvcore": version("fvcore"),
        "scikit-image": version("scikit-image"),
        "cuda": torch.version.cuda,
        **git_revision(),
    }
    if device is not None:
        env["device"] = str(device)
        env["device_name"] = describe_device(device)
    return env


def describe_device(device: Any) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def iter_result_dirs(root: Path) -> Iterable[Path]:
    yield from sorted(p.parent for p in Path(root).glob(f"*/*/seed*/{RESULT_FILE}"))
