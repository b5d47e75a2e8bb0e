"""The results store: where each run's files live, atomic writes, run locks, and atomic commits.

Layout (``results/`` by default)::

    results/<dataset>/<label>/<spec hash>/
        seed<k>/            the COMMITTED run: created whole by one rename, only ever complete
            result.json       the record (bench.store.record.RunResult), status "complete"
            history.csv       one row per epoch: epoch, train_loss, val_* metrics, seconds
            predictions.npz   inputs, truth and prediction of the first test sequences (uint8)
            best.pt           the checkpoint with the best validation MSE (state_dict)
        seed<k>.partial/    a run in progress: last.pt (resume point), best.pt, history.csv;
                            after a failure also result.json with status "failed"
        seed<k>.lock        the run lock (fcntl; two processes never train one run at once)
    results/_cache/...       reusable products (e.g. PLA-SM's pretrained encoders)
    results/audit/<dataset>/<label>.json   ``bench audit`` figures (no training)

The spec hash (:attr:`bench.spec.run_spec.RunSpec.hash`) makes every configuration its own directory:
a tiny, quick, 2-epoch or ``--set`` run never meets another configuration's files. The label is
the canonical method key with ``:`` written as ``+`` (``tau:no-ddr`` -> ``tau+no-ddr``); a label
too long for a file name is cut and suffixed with a hash of the whole (:func:`label_to_dirname`).

Nothing a user does can destroy a finished result:
- every file is written to a temporary file in the same directory and renamed over the target;
- a run trains in ``seed<k>.partial`` and is committed by :func:`commit_run`, which moves the whole
  directory into place; ``--force`` keeps the previous ``seed<k>`` until the new run is complete and
  then swaps the two directories (``seed<k>.replaced`` exists only between two renames, and
  :func:`recover_run` finishes or undoes an interrupted swap);
- a failure record goes into ``seed<k>.partial``, never over a committed result;
- temporary files a kill left in ``seed<k>.partial`` (``.last.pt.<random>.tmp``) are deleted at the
  commit, never committed;
- a run directory that is a symbolic link (a result moved to another disk) is replaced by
  unlinking the link, never by deleting what it points to;
- the run lock is opened without blocking and must be a regular file (a FIFO is refused in one line).

Reading is as careful (:mod:`bench.core.safe_read`): regular files only, bounded in size. A result is
trusted only where its own spec puts it (:func:`bench.store.record.load_results`), and ``bench
run`` serves only a result of the current schema and spec rules (:func:`committed_state`).

Files and directories are created with the user's umask (a shared results directory stays
readable to the team).
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import platform
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError

RESULT_FILE = "result.json"
MAX_LABEL_DIR = 120  # characters of a label directory name (file systems allow 255 bytes)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Permission bits of created files: what ``open()`` would give under the process umask.
FILE_MODE = 0o666 & ~_current_umask()


def label_to_dirname(label: str) -> str:
    """A file-system-safe directory name for a method label, at most :data:`MAX_LABEL_DIR` characters."""
    name = label.replace(":", "+").replace("/", "_").replace("\\", "_").replace("\0", "")
    if len(name.encode()) > MAX_LABEL_DIR:
        digest = hashlib.sha1(label.encode()).hexdigest()[:10]
        name = name.encode()[:MAX_LABEL_DIR - 12].decode(errors="ignore") + "~" + digest
    return name


def config_dir(root: Path, dataset: str, label: str, spec_hash: str) -> Path:
    """The directory of one configuration (all its seeds)."""
    return Path(root) / dataset / label_to_dirname(label) / spec_hash


def run_dir(root: Path, spec: Any) -> Path:
    """The committed directory of a :class:`~bench.spec.run_spec.RunSpec`'s run."""
    return config_dir(root, spec.dataset, spec.label, spec.hash) / f"seed{spec.seed}"


def partial_dir(final: Path) -> Path:
    return final.with_name(final.name + ".partial")


def replaced_dir(final: Path) -> Path:
    return final.with_name(final.name + ".replaced")


def lock_path(final: Path) -> Path:
    return final.with_name(final.name + ".lock")


def audit_path(root: Path, dataset: str, label: str) -> Path:
    return Path(root) / "audit" / dataset / f"{label_to_dirname(label)}.json"


def committed_state(final: Path) -> str:
    """``missing``, ``complete``, or why the committed result in ``final`` cannot be used."""
    from bench.store.record import SCHEMA, read_result
    from bench.spec.run_spec import SPEC_VERSION

    if not final.exists():
        return "missing"
    if not os.path.lexists(final / RESULT_FILE):
        return f"no {RESULT_FILE} in it"
    try:
        result = read_result(final / RESULT_FILE)
    except BenchError as exc:
        return str(exc)
    if (result.schema, result.spec_version) != (SCHEMA, SPEC_VERSION):  # never served for the current spec
        return (f"its {RESULT_FILE} was written with schema {result.schema}, spec version {result.spec_version} "
                f"(this bench writes {SCHEMA}, {SPEC_VERSION}), so it was not made for this configuration")
    return "complete" if result.complete else f"its {RESULT_FILE} has status {result.status!r}"


def has_complete_result(final: Path) -> bool:
    """Whether ``final`` holds a readable, complete result."""
    return committed_state(final) == "complete"


def recover_run(final: Path) -> None:
    """Bring a run's directories to a consistent state after a crash (call under the run's lock).

    - a ``--force`` swap interrupted between its two renames is undone (the previous result goes
      back into place) or, if the new result is already in place, finished;
    - a run whose complete result was written in ``seed<k>.partial`` but not yet moved into place
      (a crash just before the commit) is committed now, never trained again.
    """
    old = replaced_dir(final)
    if os.path.lexists(old):
        if os.path.lexists(final):  # the new run is in place: the old one only waited to be deleted
            remove_dir(old)
        else:  # interrupted after moving the old result aside: put it back
            os.replace(old, final)
    work = partial_dir(final)
    if work.exists() and has_complete_result(work):
        commit_run(work, final)


def remove_dir(path: Path) -> None:
    """Delete a run directory of the store; a symbolic link is unlinked, never followed (what it points
    to, outside the results tree, belongs to the user)."""
    if os.path.islink(path):
        os.unlink(path)
    elif path.exists():
        shutil.rmtree(path)


def remove_temp_files(work: Path) -> None:
    """Delete the temporary files of interrupted atomic writes (``.<name>.<random>.tmp``, see
    :func:`atomic_write_bytes`) in ``work``. Call under the run's lock (nothing else writes there)."""
    for path in Path(work).glob(".*.tmp"):
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)


def commit_run(work: Path, final: Path) -> None:
    """Move the finished run in ``work`` to ``final``, replacing a previous result atomically.

    With no previous result this is one rename. With one (``--force``), the previous directory is
    renamed aside, the new one into place, and the old one deleted; an interruption between the
    two renames is repaired by :func:`recover_run`, so ``final`` always ends complete. Temporary
    files a kill left in ``work`` are deleted first (they are no part of the result).
    """
    remove_temp_files(work)
    _fsync_dir(work)
    if not os.path.lexists(final):
        os.replace(work, final)
    else:
        old = replaced_dir(final)
        remove_dir(old)
        os.replace(final, old)
        os.replace(work, final)
        try:
            remove_dir(old)
        except OSError:
            pass  # the new result is in place; recover_run deletes the old one next time
    _fsync_dir(final.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------- writing


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:60]}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp creates 0600; give the file what open() would
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
    """An exclusive, non-blocking lock on one run (``seed<k>.lock`` beside its directories, ``fcntl.flock``).

    Two ``bench run`` processes sharing a results directory never train the same key at once: the
    second sees the lock and skips that run (its other keys go on). The lock dies with its process,
    so a killed run never leaves a stale lock behind.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh = None

    def acquire(self) -> bool:
        """True when this process now holds the lock; OSError when the lock file cannot be opened, BenchError
        when it is not a regular file (a FIFO would block the open: it is opened non-blocking and refused)."""
        import fcntl

        from bench.core.safe_read import kind_of

        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, FILE_MODE)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: a FIFO nobody reads
                raise
            fd = None
        mode = os.fstat(fd).st_mode if fd is not None else os.stat(self.path).st_mode
        if not stat.S_ISREG(mode):
            if fd is not None:
                os.close(fd)
            raise BenchError(f"the run lock {self.path} is {kind_of(mode)}, not a regular file; delete it and run "
                             "again")
        fh = os.fdopen(fd, "a")
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
    """A JSON object from a regular file of bounded size and depth (:mod:`bench.core.safe_read`)."""
    from bench.core.safe_read import read_json_file

    data = read_json_file(path, fix="delete it or re-run that run with --force")
    if not isinstance(data, dict):
        raise BenchError(f"{path} does not hold a JSON object; delete it or re-run that run with --force")
    return data


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
        "scikit_image": version("scikit-image"),
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
