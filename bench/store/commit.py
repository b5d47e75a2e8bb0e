"""Committing a run: the run lock, the state of a committed result, atomic commits and their recovery.

A run trains in ``seed<k>.partial`` and :func:`commit_run` moves the whole directory into place;
with ``--force`` the previous ``seed<k>`` stays until the new run is complete and the two are
swapped (``seed<k>.replaced`` exists only between two renames; :func:`recover_run` finishes or undoes
an interrupted swap, and commits a finished run a crash left uncommitted). See
:mod:`bench.store.layout` for the directory layout.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
from pathlib import Path

from bench.errors import BenchError
from bench.core.atomic import FILE_MODE, fsync_dir
from bench.store.layout import RESULT_FILE, partial_dir, replaced_dir


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
    fsync_dir(work)
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
    fsync_dir(final.parent)


PROBE_RETRIES, PROBE_WAIT_S = 3, 0.05  # RunLock.acquire tries again while a probe may hold the lock


def lock_is_held(path: Path) -> bool:
    """Whether a process holds the run lock ``path`` (``bench status``, ``bench plan``): a shared lock
    taken and dropped at once, without creating the file (none: nobody holds it). A run starting at
    that instant does not skip: :meth:`RunLock.acquire` tries again for a moment."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


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
        for attempt in range(PROBE_RETRIES + 1):  # a probe (lock_is_held) holds it for microseconds
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == PROBE_RETRIES:
                    fh.close()
                    return False
                time.sleep(PROBE_WAIT_S)
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
