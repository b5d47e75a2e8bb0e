"""The results store: where each run's files live, atomic writes, run locks, and atomic commits.

Layout (``results/`` by default)::

    results/<dataset>/<label>/<spec hash>/
        seed<k>/            the COMMITTED run: created whole by one rename, only ever complete
            result.json       the record (bench.store.record.RunResult), status "complete"
            history.csv       one row per epoch: epoch, train_loss, val_* metrics, seconds
            predictions.npz   inputs, truth and prediction of the first test sequences (uint8)
            best.pt           the checkpoint with the best validation MSE (state_dict)
        seed<k>.partial/    a run in progress: spec.json (its run spec, written when it starts: what
                            ``bench status`` reads), last.pt (resume point), best.pt, history.csv;
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

import hashlib
from pathlib import Path
from typing import Any

from bench.errors import BenchError

RESULT_FILE = "result.json"
SPEC_FILE = "spec.json"  # the run spec of a run in progress (kept in the committed directory)
HISTORY_FILE = "history.csv"
MAX_LABEL_DIR = 120  # characters of a label directory name (file systems allow 255 bytes)


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


# ----------------------------------------------------------------------------------- writing


# ----------------------------------------------------------------------------------- reading


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a regular file of bounded size and depth (:mod:`bench.core.safe_read`)."""
    from bench.core.safe_read import read_json_file

    data = read_json_file(path, fix="delete it or re-run that run with --force")
    if not isinstance(data, dict):
        raise BenchError(f"{path} does not hold a JSON object; delete it or re-run that run with --force")
    return data


# ----------------------------------------------------------------------------------- provenance


