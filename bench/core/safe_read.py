"""Reading the files of a results directory safely: regular files only, bounded in size.

A results directory is shared, copied and edited by hand, so any file in it may be something other
than what its name says: a FIFO (opening it for reading blocks until a writer comes), a symbolic
link to ``/dev/zero`` (an endless read), a multi-gigabyte file, JSON nested a thousand deep (a
``RecursionError`` in the parser) or an integer of thousands of digits (a ``ValueError`` since
Python's limit on integer conversion). Every JSON file the store
reads (``result.json``, ``bench audit`` records, the report's manifest) goes through
:func:`read_json_file`, which turns each of these into a one-line :class:`~bench.errors.BenchError`
naming the file, so the caller lists it as skipped and goes on.

How: the file is opened with ``O_NONBLOCK`` (a FIFO opens at once instead of waiting for a writer),
``fstat`` of the open descriptor must say "regular file" (the check is on what was opened, not on a
name that could change in between), its size must be at most the bound, and at most bound + 1
bytes are read (a file growing while it is read is still bounded). Symbolic links are followed:
what decides is the file they lead to (a dangling link is reported as such). The parser's
``RecursionError`` (nesting near a thousand levels) and ``ValueError`` (a 5,000-digit integer) become
one line each; JSON the parser accepts is walked without trouble by the readers (checked to 960 levels).
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from bench.errors import BenchError

MAX_JSON_BYTES = 64 << 20  # a result.json of a 2,000-epoch run with per-frame metrics is well under 1 MiB


def kind_of(mode: int) -> str:
    """A file type in words (``a FIFO``, ``a character device``...)."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_bytes(path: Path, max_bytes: int = MAX_JSON_BYTES, fix: str = "delete it") -> bytes:
    """The bytes of the regular file ``path`` (at most ``max_bytes``); one-line BenchError otherwise."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(path):
            raise BenchError(f"{path} is a symbolic link to {os.readlink(path)}, which does not exist; {fix}") \
                from None
        raise BenchError(f"cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BenchError(f"{path} is {kind_of(info.st_mode)}, not a regular file; it was not read ({fix})")
        if info.st_size > max_bytes:
            raise BenchError(f"{path} is {info.st_size} bytes, more than the {max_bytes} a bench file can be; "
                             f"it was not read ({fix})")
        os.set_blocking(fd, True)
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise BenchError(f"{path} grew beyond {max_bytes} bytes while it was read; it was not read ({fix})")
        return b"".join(chunks)
    except OSError as exc:
        raise BenchError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def read_json_file(path: Path, max_bytes: int = MAX_JSON_BYTES, fix: str = "delete it") -> Any:
    """Parsed JSON of the regular file ``path``, bounded in size; one-line BenchError otherwise (also for JSON
    nested deeper than the parser can go, and for an integer beyond Python's digit limit).

    ``fix`` is what the message tells the user to do about a bad file (e.g. "delete it and re-run that run").
    """
    raw = read_regular_bytes(path, max_bytes, fix)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BenchError(f"{path} is not UTF-8 text; {fix}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); {fix}") from None
    except RecursionError:
        raise BenchError(f"{path} nests its JSON too deeply to be a bench file; {fix}") from None
    except ValueError as exc:  # an integer beyond Python's digit limit
        first = (str(exc).splitlines() or [""])[0].split(";")[0]
        raise BenchError(f"{path} holds a number that cannot be read ({first}); {fix}") from None
    return data


__all__ = ["MAX_JSON_BYTES", "kind_of", "read_json_file", "read_regular_bytes"]
