"""Finding every ``result.json`` in a results directory, wherever it lies: none missed, none counted twice.

The store puts a run's record in ``<dataset>/<label>/<spec hash>/seed<k>/`` (schema 1:
``<dataset>/<label>/seed<k>/``); :func:`bench.store.record.load_results` trusts a record only where
its own spec puts it. For that check to see copies (``simvp.bak/``, ``mmnist_old/``, ``old/mmnist/``)
the scan looks everywhere, not only at the depths the layout uses: every directory below the root
(except ``audit``, ``_cache`` and ``report`` at the top) down to :data:`MAX_DEPTH` levels (a
``result.json`` directly in the root is no run's record in any layout and is not read).

Symbolic links to directories are followed (a configuration moved to another disk and linked back
is still read), each directory once and after every directory reachable without links: a link to a
directory seen (``simvp.bak -> simvp``) adds nothing, and a cycle of links ends. A dangling
``result.json`` link is returned like any other file (reading it says it dangles); a dangling link
named like a run directory (``seed<k>``) is a problem line, so that a result that disappeared is
listed, not dropped silently.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bench.store.layout import RESULT_FILE

SKIPPED_TOP = ("audit", "_cache", "report")  # bench audit records, reusable products, the default report
MAX_DEPTH = 8  # directories below the root (the layout uses 4)
RUN_DIR = re.compile(r"seed\d+(\.partial|\.replaced)?")


def find_result_files(root: Path) -> tuple[list[Path], list[str]]:
    """(every ``result.json`` path under ``root``, one problem line per dangling run-directory link)."""
    root = Path(root)
    files: list[Path] = []
    problems: list[str] = []
    seen: set[tuple[int, int]] = set()
    stack, linked = [(root, 0)], []  # linked directories wait until every real one was seen
    while stack or linked:
        folder, depth = stack.pop() if stack else linked.pop(0)
        try:
            info = folder.stat()
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            problems.append(f"{folder}: cannot be listed ({exc.strerror}); its results were not read")
            continue
        below = []
        for entry in entries:
            path = Path(entry.path)
            if depth == 0 and entry.name in SKIPPED_TOP:
                continue
            try:
                is_dir = entry.is_dir()  # follows a link
            except OSError:
                is_dir = False
            if entry.name == RESULT_FILE and not is_dir and depth > 0:  # none of the root's own files is a run
                files.append(path)
            elif is_dir and depth < MAX_DEPTH:
                (linked if entry.is_symlink() else below).append((path, depth + 1))
            elif entry.is_symlink() and RUN_DIR.fullmatch(entry.name) and not path.exists():
                problems.append(f"{path} is a symbolic link to {os.readlink(path)}, which does not exist: its "
                                f"result is gone; restore the target, or delete the link and re-run that run")
        stack.extend(reversed(below))
    return sorted(files), problems


__all__ = ["find_result_files", "MAX_DEPTH", "RUN_DIR", "SKIPPED_TOP"]
