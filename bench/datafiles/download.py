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
    transfer = _Transfer(rf, root / rf.dest, rf.resolved_url(base_url), log, timeout)
    if transfer.dest.exists():
        return transfer.present()
    transfer.dest.parent.mkdir(parents=True, exist_ok=True)
    while not transfer.receive():  # False: the server sent another range than asked; start the file over
        transfer.part.unlink(missing_ok=True)
    return transfer.commit()


@dataclass(frozen=True)
class _Transfer:
    """One download of ``rf`` from ``url`` to ``dest`` through ``dest.part`` (see the module docstring)."""

    rf: RemoteFile
    dest: Path
    url: str
    log: Callable[[str], None]
    timeout: float

    @property
    def part(self) -> Path:
        return self.dest.with_name(self.dest.name + ".part")

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).netloc or self.url

    def present(self) -> Path:
        """``dest`` exists already: verified, it is the result; failing its check, a one-line error."""
        try:
            _verify(self.dest, self.rf, self.url)
        except BenchError as exc:
            raise BenchError(f"{self.dest} exists but fails its check ({exc}); delete it and run the download "
                             f"again") from None
        self.log(f"{self.dest}: present and verified")
        return self.dest

    def offset(self) -> int:
        """Bytes already in ``.part`` to resume after (0 for none, or for a runaway one, deleted)."""
        offset = self.part.stat().st_size if self.part.exists() else 0
        if offset > self.rf.limit:  # left by a runaway download: more than the file can have
            self.log(f"{self.part} has {offset} bytes, more than {self.dest.name} can have ({self.rf.limit}); "
                     f"starting over")
            self.part.unlink()
            offset = 0
        return offset

    def open(self, offset: int) -> Any:
        """The server's response from byte ``offset`` (None: 416, the ``.part`` is already whole)."""
        headers = {"User-Agent": "bench-data/1", **({"Range": f"bytes={offset}-"} if offset else {})}
        try:
            return urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:  # nothing left to send: the .part is already complete
                return None
            raise BenchError(f"download of {self.url} failed: HTTP {exc.code} {exc.reason}; check the address "
                             f"(or ${DOWNLOAD_BASE_ENV}) or fetch it by hand to {self.dest}") from None
        except ValueError as exc:  # a malformed address (unknown url type, bad port, ...)
            raise BenchError(f"cannot download from {self.url!r} ({exc}); check --base-url / "
                             f"${DOWNLOAD_BASE_ENV}") from None
        except (urllib.error.URLError, socket.timeout, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BenchError(f"cannot reach {self.host} ({reason}): no network here? fetch {self.url} by hand and "
                             f"save it as {self.dest}, or set ${DOWNLOAD_BASE_ENV} to a reachable mirror") from None

    def receive(self) -> bool:
        """Bring ``.part`` to the whole file (resuming where it stopped); False when the server answered
        with another range than asked (the caller starts over)."""
        offset = self.offset()
        resp = self.open(offset)
        if resp is None:
            return True
        with resp:
            mode = "ab"
            if offset and getattr(resp, "status", 200) == 206:
                if not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                    return False  # not the range we asked for
                self.log(f"resuming {self.url} at byte {offset}")
            elif offset:
                mode, offset = "wb", 0  # server ignored Range: the body is the whole file
                self.log(f"{self.host} does not resume downloads; restarting {self.dest.name}")
            total = _content_length(resp)
            if total is not None and total + offset > self.rf.limit:
                raise BenchError(f"download of {self.url} announces {total + offset} bytes, more than the "
                                 f"{self.rf.limit} of {self.bound}; nothing was downloaded; check the address (or "
                                 f"${DOWNLOAD_BASE_ENV})")
            self.log(f"downloading {self.url} -> {self.dest}"
                     + (f" ({(total + offset) / 1e6:.1f} MB)" if total is not None else ""))
            written = self.write(resp, mode, offset)
        if total is not None and written != total + offset:
            raise BenchError(f"download of {self.url} stopped after {written} of {total + offset} bytes; "
                             f"run the same command again to resume from {self.part}")
        return True

    @property
    def bound(self) -> str:
        return "its published size" if self.rf.size is not None else "the stated cap (no size is published)"

    def write(self, resp: Any, mode: str, offset: int) -> int:
        """Append the body to ``.part`` (``mode`` "ab") or replace it ("wb"), never past the file's limit;
        returns the bytes ``.part`` holds."""
        limit, written = self.rf.limit, offset
        try:
            with open(self.part, mode) as fh:
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
            raise BenchError(f"download of {self.url} interrupted after {written} bytes ({exc}); run the same "
                             f"command again to resume from {self.part}") from None
        if written > limit:
            self.part.unlink(missing_ok=True)
            raise BenchError(f"download of {self.url} sent more than the {limit} bytes of {self.bound}: stopped there "
                             f"and deleted the partial file; the server is not sending this file, check the "
                             f"address (or ${DOWNLOAD_BASE_ENV})")
        return written

    def commit(self) -> Path:
        """Verify the whole ``.part`` and only then rename it to ``dest``; a failing file is deleted."""
        # verify under a temporary name that keeps the file's suffix (readers look at it, e.g. ".gz")
        checking = self.dest.with_name(f".checking-{self.dest.name}")
        os.replace(self.part, checking)
        try:
            _verify(checking, self.rf, self.url)
        except BenchError as exc:
            checking.unlink(missing_ok=True)
            raise BenchError(f"{exc}; the partial file was deleted, nothing was written to {self.dest}; run the "
                             f"download again") from None
        os.replace(checking, self.dest)
        self.log(f"{self.dest}: downloaded and verified"
                 + ("" if (self.rf.md5 or self.rf.sha256) else " (structure and size checked; no published checksum)"))
        return self.dest


def _content_length(resp: Any) -> int | None:
    """The response's Content-Length as a non-negative int; None when absent or not a number."""
    text = (resp.headers.get("Content-Length") or "").strip()
    return int(text) if text.isascii() and text.isdigit() else None
