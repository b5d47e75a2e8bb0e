"""``bench data download``: resumable, atomic, bounded downloads.

Bytes go to ``DEST.part``, an existing ``.part`` is continued with an HTTP ``Range`` request (a
server that ignores it restarts the file), the whole file is checked (size, MD5/SHA-256 where
published, a structural check where not) and only then renamed to ``DEST``; a mismatch deletes the
``.part`` so nothing bad is left at ``DEST``. A download stops at the published size (or the stated
cap, :attr:`RemoteFile.limit`) and deletes the partial file: a server that streams forever cannot
fill the disk. ``$BENCH_DOWNLOAD_BASE`` (or ``base_url=``) replaces the directory of every URL
(mirrors, tests).
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


from bench.errors import BenchError
from bench.datafiles.paths import file_digest


DOWNLOAD_BASE_ENV = "BENCH_DOWNLOAD_BASE"


CHUNK_BYTES = 1 << 20


#: the most bytes a download may bring when its file states neither ``size`` nor ``max_bytes``
DEFAULT_MAX_BYTES = 8 << 30


@dataclass(frozen=True)
class RemoteFile:
    """A file ``bench data download`` fetches: canonical URL, destination under the data dir, checks.

    ``md5``/``sha256``: the published checksum (None where none is published). ``size``: exact
    byte size where known. ``max_bytes``: the stated cap where no size is published (default
    :data:`DEFAULT_MAX_BYTES`); a download stops there (:attr:`limit`) and deletes its partial file,
    so a mirror that streams forever never fills the disk. ``validate(path)``: a structural check
    raising BenchError.
    """

    url: str
    dest: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None
    validate: Callable[[Path], None] | None = None
    note: str = ""
    max_bytes: int | None = None

    @property
    def limit(self) -> int:
        """The most bytes the file may have: its published size, else the stated cap."""
        if self.size is not None:
            return self.size
        return self.max_bytes if self.max_bytes is not None else DEFAULT_MAX_BYTES

    def resolved_url(self, base_url: str | None = None) -> str:
        base = base_url or os.environ.get(DOWNLOAD_BASE_ENV)
        if not base:
            return self.url
        return base.rstrip("/") + "/" + self.url.rsplit("/", 1)[-1]


def _verify(path: Path, rf: RemoteFile, url: str) -> None:
    """Size, checksum and structure of a fully downloaded file; BenchError on the first mismatch."""
    size = path.stat().st_size
    if rf.size is not None and size != rf.size:
        raise BenchError(f"download of {url} has {size} bytes, expected {rf.size}")
    for algo, want in (("md5", rf.md5), ("sha256", rf.sha256)):
        if want:
            got = file_digest(path, algo)
            if got != want.lower():
                raise BenchError(f"checksum mismatch for {url}: {algo} {got}, expected {want}")
    if rf.validate is not None:
        rf.validate(path)


def download(rf: RemoteFile, root: Path, base_url: str | None = None, log: Callable[[str], None] = print,
             timeout: float = 30.0) -> Path:
    """Fetch ``rf`` to ``root / rf.dest`` (resumable, verified, atomic); returns the final path."""
    dest = root / rf.dest
    url = rf.resolved_url(base_url)
    if dest.exists():
        try:
            _verify(dest, rf, url)
        except BenchError as exc:
            raise BenchError(f"{dest} exists but fails its check ({exc}); delete it and run the download again") from None
        log(f"{dest}: present and verified")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    if offset > rf.limit:  # left by a runaway download: more than the file can have
        log(f"{part} has {offset} bytes, more than {dest.name} can have ({rf.limit}); starting over")
        part.unlink()
        offset = 0
    headers = {"User-Agent": "bench-data/1", "Range": f"bytes={offset}-"} if offset else {"User-Agent": "bench-data/1"}
    host = urllib.parse.urlsplit(url).netloc or url
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to send: the .part is already complete
            resp = None
        else:
            raise BenchError(f"download of {url} failed: HTTP {exc.code} {exc.reason}; check the address "
                             f"(or ${DOWNLOAD_BASE_ENV}) or fetch it by hand to {dest}") from None
    except ValueError as exc:  # a malformed address (unknown url type, bad port, ...)
        raise BenchError(f"cannot download from {url!r} ({exc}); check --base-url / ${DOWNLOAD_BASE_ENV}") from None
    except (urllib.error.URLError, socket.timeout, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BenchError(f"cannot reach {host} ({reason}): no network here? fetch {url} by hand and save it as "
                         f"{dest}, or set ${DOWNLOAD_BASE_ENV} to a reachable mirror") from None
    if resp is not None:
        with resp:
            status = getattr(resp, "status", 200)
            mode = "ab"
            if offset and status == 206:
                crange = resp.headers.get("Content-Range", "")
                if not crange.startswith(f"bytes {offset}-"):  # not the range we asked for: start again
                    resp.close()
                    return _restart(rf, root, part, base_url, log, timeout)
                log(f"resuming {url} at byte {offset}")
            elif offset:
                mode, offset = "wb", 0  # server ignored Range: the body is the whole file
                log(f"{host} does not resume downloads; restarting {dest.name}")
            total = _content_length(resp)
            limit = rf.limit
            bound = "its published size" if rf.size is not None else "the stated cap (no size is published)"
            if total is not None and total + offset > limit:
                raise BenchError(f"download of {url} announces {total + offset} bytes, more than the {limit} of "
                                 f"{bound}; nothing was downloaded; check the address (or ${DOWNLOAD_BASE_ENV})")
            log(f"downloading {url} -> {dest}" + (f" ({(total + offset) / 1e6:.1f} MB)" if total is not None else ""))
            written = offset
            try:
                with open(part, mode) as fh:
                    while written <= limit:  # one byte beyond the limit is enough to know the file is wrong
                        block = resp.read(min(CHUNK_BYTES, limit - written + 1))
                        if not block:
                            break
                        fh.write(block)
                        written += len(block)
                    if written <= limit:
                        fh.flush()
                        os.fsync(fh.fileno())
            except (OSError, socket.timeout, urllib.error.URLError) as exc:
                raise BenchError(f"download of {url} interrupted after {written} bytes ({exc}); run the same "
                                 f"command again to resume from {part}") from None
            if written > limit:
                part.unlink(missing_ok=True)
                raise BenchError(f"download of {url} sent more than the {limit} bytes of {bound}: stopped there "
                                 f"and deleted the partial file; the server is not sending this file, check the "
                                 f"address (or ${DOWNLOAD_BASE_ENV})")
            if total is not None and written != total + offset:
                raise BenchError(f"download of {url} stopped after {written} of {total + offset} bytes; "
                                 f"run the same command again to resume from {part}")
    # verify under a temporary name that keeps the file's suffix (readers look at it, e.g. ".gz")
    checking = dest.with_name(f".checking-{dest.name}")
    os.replace(part, checking)
    try:
        _verify(checking, rf, url)
    except BenchError as exc:
        checking.unlink(missing_ok=True)
        raise BenchError(f"{exc}; the partial file was deleted, nothing was written to {dest}; run the download again") from None
    os.replace(checking, dest)
    log(f"{dest}: downloaded and verified" + ("" if (rf.md5 or rf.sha256) else " (structure and size checked; no published checksum)"))
    return dest


def _content_length(resp: Any) -> int | None:
    """The response's Content-Length as a non-negative int; None when absent or not a number."""
    text = (resp.headers.get("Content-Length") or "").strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _restart(rf: RemoteFile, root: Path, part: Path, base_url: str | None, log: Callable[[str], None],
             timeout: float) -> Path:
    part.unlink(missing_ok=True)
    return download(rf, root, base_url, log, timeout)
