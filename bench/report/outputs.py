"""The report's output directory: replace only what an earlier report wrote, never anything else.

``bench report --out DIR`` may be pointed at a directory that holds the user's own files (notes, a
hand-made ``figures/overview.png``, an edited ``report.md``). The report keeps a manifest,
``DIR/.bench-report.json``, of every file it wrote there and the SHA-256 of the bytes it wrote; it
touches a file only when the manifest lists it and the file still holds those bytes. So:

- A file the report is about to write that exists but is not the report's (not in the manifest, or
  changed since: the user edited it, or replaced it with a link) stops the report before it writes
  anything, with one line naming the file: move it away, or choose another ``--out``. (Writing
  over it would lose the user's work; writing elsewhere would leave a report whose links point at
  the user's file.)
- A file an earlier report wrote and this one does not (another ``--format``, a group that is gone)
  is deleted when it still holds the bytes the report wrote; an edited one is kept and dropped from
  the manifest (it is the user's now). Nothing else in ``DIR`` is ever deleted.
- Crash safety: the manifest is written (atomically) before the files, listing the files about to be
  written without a digest ("being written": the content may be half-way between two reports'),
  and again after them with their digests. A report interrupted in between leaves a directory the
  next report can take over; the manifest never lists a file that was not the report's.
- A report directory written before the manifest existed (bench 0.1 reports) has no manifest: its
  ``report.md``/``report.csv``/``report.tex`` are adopted when each starts with what bench report
  writes first (the ``# Benchmark report`` title, the CSV's header row, the ``% bench report tables``
  comment), and so are the figures the adopted ``report.md`` links to; anything else there stays
  the user's. So ``bench demo`` and ``bench report`` keep working in a directory an older version
  wrote, and a user's own ``report.md`` is still never overwritten.

Only names the report writes are ever listed (``report.md``, ``report.csv``, ``report.tex`` and
``figures/<name>.png``): a manifest edited to name any other file is refused, never obeyed.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from bench import store
from bench.errors import BenchError
from bench.core.safe_read import read_json_file

MANIFEST = ".bench-report.json"
_REPORT_NAME = re.compile(r"report\.(md|csv|tex)|figures/[^/\\\x00]+\.png")


#: What each report file of bench 0.1 (before the manifest) starts with.
_PRE_MANIFEST_SIGNATURES = {"report.md": b"# Benchmark report\n", "report.csv": b"table,section,dataset,group,row_kind,",
                            "report.tex": b"% bench report tables;"}


def _head(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of a regular file (b"" for anything else: a link, a FIFO, unreadable)."""
    try:
        if path.is_symlink() or not path.is_file():
            return b""
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ReportOutputs:
    """The manifest of one output directory (see the module docstring)."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / MANIFEST
        self.files: dict[str, str | None] = self._load()  # name relative to out_dir -> SHA-256, None while written

    def _load(self) -> dict[str, str | None]:
        if not os.path.lexists(self.path):
            return self._adopt_pre_manifest_report()
        fix = "delete it (the report then writes only where no file is) or choose another --out DIR"
        data = read_json_file(self.path, max_bytes=1 << 22, fix=fix)
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict) or not all(
                isinstance(k, str) and _REPORT_NAME.fullmatch(k) and (v is None or isinstance(v, str))
                for k, v in files.items()):
            raise BenchError(f"{self.path} is not a bench report manifest (it lists files the report does not write, "
                             f"or is damaged); {fix}")
        return dict(files)

    def _adopt_pre_manifest_report(self) -> dict[str, str | None]:
        """The files of a report written before the manifest existed (see the module docstring)."""
        adopted: dict[str, str | None] = {}
        for name, first_bytes in _PRE_MANIFEST_SIGNATURES.items():
            head = _head(self.out_dir / name, len(first_bytes))
            if head == first_bytes:
                adopted[name] = None  # the report's, content unknown: replaced or deleted like one being written
        if "report.md" in adopted:
            text = _head(self.out_dir / "report.md", 1 << 22).decode("utf-8", errors="replace")
            for link in sorted(set(re.findall(r"\((figures/[^()/\\\s]+\.png)\)", text))):
                path = self.out_dir / link
                if path.is_file() and not path.is_symlink():
                    adopted[link] = None
        return adopted

    def _save(self) -> None:
        store.atomic_write_json(self.path, {"files": dict(sorted(self.files.items())),
                                            "about": "files bench report wrote here, with their SHA-256; "
                                                     "it replaces or deletes only these, and only unchanged"})

    def _name(self, path: Path) -> str:
        return Path(path).relative_to(self.out_dir).as_posix()

    def is_ours(self, name: str) -> bool:
        """Whether the file ``name`` is the report's: listed, a regular file, and unchanged since it was written."""
        path = self.out_dir / name
        if name not in self.files or path.is_symlink() or not path.is_file():
            return False
        try:
            return self.files[name] is None or _digest(path) == self.files[name]
        except OSError:  # cannot be read: not provably the report's
            return False

    def check(self, paths: list[Path]) -> None:
        """One-line BenchError if a file in ``paths`` exists and is not the report's."""
        for name in (self._name(p) for p in paths):
            path = self.out_dir / name
            if os.path.lexists(path) and not self.is_ours(name):
                why = ("was changed since bench report wrote it" if name in self.files
                       else f"was not written by bench report (it lists what it writes in {MANIFEST}; a file from "
                            "before it kept that list counts as yours)")
                raise BenchError(f"{path} exists and {why}; the report would overwrite it: move it away, or choose "
                                 "another --out DIR")

    def claim(self, paths: list[Path]) -> None:
        """Before anything is written: :meth:`check` the targets, then record them as being written."""
        self.check(paths)
        names = [self._name(p) for p in paths]
        for name in names:
            self.files[name] = None
        self._save()

    def finish(self, written: list[Path]) -> None:
        """After writing ``written``: record their digests, delete the report's files this report did not write
        (only those still unchanged), and save the manifest."""
        current = {self._name(p): _digest(p) for p in written}
        for name in sorted(set(self.files) - set(current)):
            if self.is_ours(name):
                (self.out_dir / name).unlink(missing_ok=True)
            del self.files[name]  # deleted, or changed by the user and theirs from now on
        self.files.update(current)
        self._save()


__all__ = ["MANIFEST", "ReportOutputs"]
