"""Shared helpers of the file-backed datasets: data directory, one-line file errors, checksums,
resumable downloads, HDF5/hickle and npz readers, clip-indexed splits, and the ``bench data`` catalogue.

Every problem with a user's file ends in ONE :class:`~bench.errors.BenchError` line naming the file,
what was expected, what was found and how to fix it, never a traceback from numpy, h5py or PIL.

Data directory: ``--data-dir`` or ``$BENCH_DATA`` (:func:`data_root`; one the user names must exist);
each dataset lives in its own sub-folder there (``DATA/taxibj/``, ``DATA/kth/``...), see the modules.
What a run read is identified by a content digest of those files (:mod:`bench.datafiles.identity`).

Downloads (:func:`download`) are resumable and atomic: bytes go to ``DEST.part``, an existing
``.part`` is continued with an HTTP ``Range`` request (a server that ignores it restarts the file),
the whole file is checked (size, MD5/SHA-256 where published, a structural check where not) and
only then renamed to ``DEST``; a mismatch deletes the ``.part`` so nothing bad is left at ``DEST``.
``$BENCH_DOWNLOAD_BASE`` (or ``base_url=``) replaces the directory of every URL (mirrors, tests).
"""

from __future__ import annotations

import hashlib
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from bench.spec.splits import epoch_permutation, shard_range, to_unit_float
from bench.core.registry import Registry
from bench.errors import BenchError

DOWNLOAD_BASE_ENV = "BENCH_DOWNLOAD_BASE"
CHUNK_BYTES = 1 << 20
#: the most bytes a download may bring when its file states neither ``size`` nor ``max_bytes``
DEFAULT_MAX_BYTES = 8 << 30


# --------------------------------------------------------------------------------------------
# Data directory and file errors
# --------------------------------------------------------------------------------------------


DATA_ENV = "BENCH_DATA"


def data_root(config_dir: str | None, must_exist: bool = True) -> Path | None:
    """The data directory: ``--data-dir``, else ``$BENCH_DATA``, else None.

    A directory the user names (either way) must be a readable directory: a typo, ``/proc/foo``
    or ``/dev/null`` is a one-line BenchError, never silently "no data" (Moving MNIST would fall
    back to its bundled digits). ``must_exist=False``: only for a destination the caller creates
    (``bench data download``). An empty ``$BENCH_DATA`` counts as unset, an empty ``--data-dir``
    is an error.
    """
    if config_dir is not None:
        if not config_dir.strip():
            raise BenchError("--data-dir is empty; pass the data directory, e.g. --data-dir ~/data")
        given, origin = config_dir, "--data-dir"
    elif os.environ.get(DATA_ENV, "").strip():
        given, origin = os.environ[DATA_ENV], f"${DATA_ENV}"
    else:
        return None
    root = Path(given).expanduser()
    if must_exist:
        if not root.is_dir():
            what = "is not a directory" if root.exists() else "does not exist"
            fix = ("pass --data-dir with the directory that holds the datasets" if origin == "--data-dir" else
                   f"set {DATA_ENV} to the directory that holds the datasets, or unset it")
            raise BenchError(f"data directory {root} ({origin}) {what}; {fix} (`bench data list` shows what "
                             f"goes where)")
        try:
            with os.scandir(root):
                pass
        except OSError as exc:
            raise BenchError(f"cannot read data directory {root} ({origin}): {exc.strerror or exc}; fix its "
                             f"permissions or pass another --data-dir") from None
    return root


def require_root(config_dir: str | None, dataset: str, layout: str) -> Path:
    root = data_root(config_dir)
    if root is None:
        raise BenchError(f"dataset {dataset!r} reads files from the data directory, but none is set; "
                         f"pass --data-dir DIR or set BENCH_DATA=DIR, with {layout}")
    return root


def first_existing(candidates: Iterable[Path]) -> Path | None:
    for p in candidates:
        if p.exists():
            return p
    return None


def missing(path: Path | str, what: str, fix: str) -> BenchError:
    return BenchError(f"{path} is missing: expected {what}; {fix}")


def bad_file(path: Path | str, expected: str, found: str, fix: str) -> BenchError:
    return BenchError(f"{path}: expected {expected}, found {found}; {fix}")


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Readers: npz, npy header, hickle (HDF5)
# --------------------------------------------------------------------------------------------


def load_npz(path: Path, keys: Sequence[str], fix: str) -> dict[str, np.ndarray]:
    """Arrays ``keys`` of an .npz file; a truncated/corrupt file or a missing key is one BenchError."""
    try:
        with np.load(path, allow_pickle=False) as z:
            absent = [k for k in keys if k not in z.files]
            if absent:
                raise bad_file(path, f"keys {', '.join(keys)}", f"keys {', '.join(z.files) or '(none)'}", fix)
            return {k: z[k] for k in keys}
    except BenchError:
        raise
    except Exception as exc:  # BadZipFile, EOFError, ValueError, zlib.error, OSError...
        raise bad_file(path, "a readable .npz archive", f"a truncated or corrupt file ({type(exc).__name__})", fix) from None


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) of an .npy file, read from its header only."""
    from numpy.lib import format as npformat

    with open(path, "rb") as fh:
        major, _ = npformat.read_magic(fh)
        if major == 1:
            shape, _, dtype = npformat.read_array_header_1_0(fh)
        else:
            shape, _, dtype = npformat.read_array_header_2_0(fh)
        return tuple(shape), dtype, fh.tell()


def check_npy(path: Path, dtype: np.dtype | str, shape_ok: Callable[[tuple[int, ...]], bool], expected: str,
              fix: str) -> tuple[int, ...]:
    """Validate an .npy file's header and byte size; returns its shape."""
    try:
        shape, dt, offset = npy_header(path)
    except Exception as exc:
        raise bad_file(path, f"a .npy array ({expected})", f"no valid .npy header ({type(exc).__name__})", fix) from None
    if dt != np.dtype(dtype) or not shape_ok(shape):
        raise bad_file(path, expected, f"{dt} array of shape {shape}", fix)
    want = offset + int(np.prod(shape)) * np.dtype(dt).itemsize
    size = path.stat().st_size
    if size != want:
        raise bad_file(path, f"{want} bytes for shape {shape}", f"{size} bytes (truncated?)", fix)
    return shape


def _open_h5(path: Path, fix: str):
    import h5py

    try:
        return h5py.File(path, "r")
    except Exception as exc:
        raise bad_file(path, "a hickle (HDF5) file", f"a file h5py cannot open ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0][:80] if str(exc) else ''})", fix) from None


def _hickle_node(f, path: Path, fix: str):
    """The stored object of a hickle file: ``data_0`` (hickle 2/3) or ``data`` (hickle 4/5)."""
    for key in ("data_0", "data"):
        if key in f:
            return f[key]
    keys = list(f.keys())
    if len(keys) == 1:
        return f[keys[0]]
    raise bad_file(path, "a hickle file holding one object (dataset 'data_0' or 'data')",
                   f"top-level keys {keys}", fix)


def hickle_array_dataset(path: Path, fix: str):
    """(h5py file, dataset) of a hickle file holding one numpy array; caller closes the file."""
    import h5py

    f = _open_h5(path, fix)
    node = _hickle_node(f, path, fix)
    if not isinstance(node, h5py.Dataset):
        f.close()
        raise bad_file(path, "a hickle file holding a numpy array", "a hickle container (group)", fix)
    return f, node


def read_hickle_strings(path: Path, fix: str) -> list[str]:
    """A hickle file holding a list of strings (PredNet's ``sources_*.hkl``) -> list of str.

    Layouts: hickle 2/3 store the list as dataset ``data_0`` of fixed- or variable-length strings,
    hickle 4 as dataset ``data``; hickle 5 as group ``data`` with one item dataset per element
    (``data0``, ``data1``, ... ordered by their ``item_index`` attribute), each a char array or an
    object reference to an equal string stored earlier.
    """
    import h5py

    def text(v: Any) -> str:
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        if isinstance(v, np.ndarray):
            if v.dtype.kind == "S" and v.dtype.itemsize == 1:
                return b"".join(v.reshape(-1).tolist()).decode("utf-8", "replace")
            if v.size == 1:
                return text(v.reshape(-1)[0])
        return str(v)

    with _open_h5(path, fix) as f:
        node = _hickle_node(f, path, fix)
        try:
            if isinstance(node, h5py.Dataset):
                values = node[()]
                return [text(v) for v in np.asarray(values).reshape(-1)]
            items = sorted(node.values(), key=lambda d: int(d.attrs.get("item_index", 0)))
            out = []
            for d in items:
                v = d[()]
                if h5py.check_dtype(ref=d.dtype) is not None:
                    v = f[v][()]
                out.append(text(v))
            return out
        except BenchError:
            raise
        except Exception as exc:
            raise bad_file(path, "a hickle list of strings", f"unreadable content ({type(exc).__name__})", fix) from None


def read_rows(dataset: Any, rows: np.ndarray) -> np.ndarray:
    """``dataset[rows]`` for sorted unique ``rows``, read as contiguous runs (fast for h5py)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return np.empty((0, *dataset.shape[1:]), dtype=dataset.dtype)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    parts = [dataset[int(run[0]):int(run[-1]) + 1] for run in np.split(rows, breaks)]
    return np.concatenate(parts) if len(parts) > 1 else np.asarray(parts[0])


# --------------------------------------------------------------------------------------------
# Subsets and clip-indexed splits
# --------------------------------------------------------------------------------------------


def pick(n: int, size: int | None, data_seed: int, salt: int) -> np.ndarray:
    """Indices of ``size`` of ``n`` items: all of them, or a sorted subset fixed by ``data_seed``."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([data_seed, salt, 0xDA7A]).choice(n, size=int(size), replace=False))


SPLIT_SALT = {"train": 1, "val": 2, "test": 3}


def eval_out_frames(spec: Any, config: Any) -> int:
    """Target frames of the validation/test clips: ``max(out_frames, pred_len)``.

    ``pred_len`` is read from the :class:`~bench.spec.registry.DataConfig` when it carries one (the
    runner's ``--pred-len``); the KTH 10 -> 40 protocol needs 40 true future frames per test clip.
    """
    pred_len = getattr(config, "pred_len", None)
    return max(int(spec.out_frames), int(pred_len or 0))


class FrameStore:
    """Frames (N, C, H, W) uint8 read on first use by ``reader(sorted_ids) -> (k, C, H, W)`` and kept.

    The cache is one ``np.empty`` array (memory is only committed for frames actually read), so
    loading a dataset is instant and a quick run reads only the frames of the clips it uses.
    """

    def __init__(self, n: int, frame_shape: tuple[int, int, int], reader: Callable[[np.ndarray], np.ndarray]):
        self.n = int(n)
        self.frame_shape = tuple(frame_shape)
        self.reader = reader
        self._cache: np.ndarray | None = None
        self._have = np.zeros(self.n, dtype=bool)

    def get(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if self._cache is None:
            self._cache = np.empty((self.n, *self.frame_shape), dtype=np.uint8)
        need = np.unique(ids[~self._have[ids]])
        if len(need):
            frames = self.reader(need)
            if frames.shape != (len(need), *self.frame_shape):
                raise BenchError(f"internal: frame reader returned {frames.shape}, expected {(len(need), *self.frame_shape)}")
            self._cache[need] = frames
            self._have[need] = True
        return self._cache[ids]


@dataclass
class ClipSplits:
    """Splits whose sequences are clips of frame ids into a :class:`FrameStore`.

    ``clips[split]`` is an int array (n, L) of frame ids; the first ``in_frames`` frames of a clip
    are the input and the rest the target. Same ordering, sharding and conversion as
    :class:`bench.spec.splits.ArraySplits`: train reshuffled per epoch from the run seed, val/test fixed.
    """

    store: FrameStore
    clips: Mapping[str, np.ndarray]
    in_frames: int
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    info: dict[str, Any] = field(default_factory=dict)

    def _indices(self, split: str, epoch: int) -> np.ndarray:
        if split not in self.clips:
            raise BenchError(f"this dataset has no {split!r} split; choose one of {sorted(self.clips)}")
        n = len(self.clips[split])
        order = epoch_permutation(n, self.seed, epoch) if split == "train" else np.arange(n)
        return order[list(shard_range(n, self.rank, self.world_size))]

    def size(self, split: str) -> int:
        return len(self._indices(split, 0))

    def batches(self, split: str, batch_size: int, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        clips = self.clips[split]
        idx = self._indices(split, epoch)
        for start in range(0, len(idx), batch_size):
            sel = idx[start:start + batch_size]
            ids = clips[sel]  # (B, L)
            video = self.store.get(ids.reshape(-1)).reshape(*ids.shape, *self.store.frame_shape)
            t = self.in_frames
            yield to_unit_float(np.ascontiguousarray(video[:, :t])), to_unit_float(np.ascontiguousarray(video[:, t:]))


def select_clips(clips: Mapping[str, np.ndarray], sizes: Mapping[str, int], data_seed: int,
                 dataset: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Apply ``sizes`` (a data_seed-fixed subset per split); report available counts and clamps."""
    out: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"available": {k: int(len(v)) for k, v in clips.items()}}
    for split, arr in clips.items():
        if len(arr) == 0:
            raise BenchError(f"dataset {dataset!r} has no {split} sequences in the files found; "
                             f"run `bench data check {dataset}` to see what is there")
        want = sizes.get(split)
        if want is not None and int(want) < 1:
            raise BenchError(f"{dataset} {split} size must be at least 1 (got {want})")
        if want is not None and int(want) > len(arr):
            info.setdefault("clamped", {})[split] = {"requested": int(want), "used": int(len(arr))}
        out[split] = arr[pick(len(arr), want, data_seed, SPLIT_SALT[split])]
    return out, info


def frame_file_splits(spec: Any, config: Any, files: Sequence[Path], read_frame: Callable[[Path], np.ndarray],
                      clips: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> "ClipSplits":
    """Splits over clips of image files: ``clips[split]`` holds rows of indices into ``files``.

    Applies ``--sizes`` (:func:`select_clips`) and reads frames lazily with ``read_frame``.
    """
    chosen, selected = select_clips(clips, config.sizes, config.data_seed, spec.name)

    def reader(ids: np.ndarray) -> np.ndarray:
        return np.stack([read_frame(files[i]) for i in ids])

    return ClipSplits(FrameStore(len(files), spec.frame_shape, reader), chosen, spec.in_frames, seed=config.seed,
                      rank=config.rank, world_size=config.world_size, info={**selected, **info})


# --------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Catalogue for `bench data`
# --------------------------------------------------------------------------------------------


@dataclass
class CheckReport:
    """What `bench data check` prints: facts, warnings (counts differ from the paper's) and errors."""

    lines: list[tuple[str, str]] = field(default_factory=list)  # (level, text), level in ok|warn|error

    def ok(self, text: str) -> None:
        self.lines.append(("ok", text))

    def warn(self, text: str) -> None:
        self.lines.append(("warn", text))

    def error(self, text: str) -> None:
        self.lines.append(("error", text))

    @property
    def failed(self) -> bool:
        return any(level == "error" for level, _ in self.lines)


@dataclass(frozen=True)
class DataSource:
    """How a registered dataset is laid out on disk and obtained (for `bench data list/check/download`).

    ``present(root)`` -> (status, where): status is ``present``, ``partial``, ``missing`` or
    ``generated``. ``check(root, report)`` fills a :class:`CheckReport` (shapes, ranges, counts).
    """

    dataset: str
    layout: str
    how_to_get: str
    present: Callable[[Path | None], tuple[str, str]]
    check: Callable[[Path | None, CheckReport], None]
    remote: tuple[RemoteFile, ...] = ()


SOURCES: Registry[DataSource] = Registry("data source", "run `bench data list` to see the datasets and their sources")


def register_source(source: DataSource, replace: bool = False) -> DataSource:
    """Describe where a registered dataset's files go (the name is the dataset's; see :class:`Registry`)."""
    return SOURCES.add(source.dataset, source, str(getattr(source.check, "__module__", "?")), replace)


def expect_counts(report: CheckReport, found: Mapping[str, int], expected: Mapping[str, int], note: str = "",
                  unit: str = "sequences") -> None:
    """Compare counts with the papers' full sizes: a difference is a warning (fixtures, subsets)."""
    for key, want in expected.items():
        got = found.get(key)
        if got is None:
            continue
        if got == want:
            report.ok(f"{key}: {got} {unit} (as the papers)")
        else:
            report.warn(f"{key}: {got} {unit}, the papers' full set has {want}{note}")


def check_loader(spec: Any, root: Path | None, report: CheckReport, config_extra: Mapping[str, Any] | None = None) -> Any:
    """Build the splits as a run would and read the first batch of each split (shapes, ranges)."""
    from bench.spec.registry import DataConfig

    try:
        splits = spec.load(spec, DataConfig(data_dir=str(root) if root is not None else None, **dict(config_extra or {})))
    except BenchError as exc:
        report.error(str(exc))
        return None
    for split in ("train", "val", "test"):
        try:
            n = splits.size(split)
            first = next(iter(splits.batches(split, 4)), None)
        except BenchError as exc:
            report.error(str(exc))
            continue
        if first is None:
            report.error(f"{split}: no sequences (the split is empty); add its files or check the layout")
            continue
        x, y = first
        want_x = (spec.in_frames, *spec.frame_shape)
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        shape_ok = tuple(x.shape[1:]) == want_x and tuple(y.shape[2:]) == spec.frame_shape and y.shape[1] >= spec.out_frames
        if not (torch.isfinite(x).all() and torch.isfinite(y).all()):  # min/max of NaN would print [nan, nan]
            report.error(f"{split}: the first batch holds NaN or infinite values; the files are corrupt, replace them")
        elif not shape_ok:
            report.error(f"{split}: input {tuple(x.shape[1:])} / target {tuple(y.shape[1:])}, expected input {want_x} "
                         f"and target ({spec.out_frames}, {', '.join(map(str, spec.frame_shape))})")
        elif lo < 0.0 or hi > 1.0:
            report.error(f"{split}: values in [{lo:.3f}, {hi:.3f}], expected [0, 1]")
        else:
            report.ok(f"{split}: {n} sequences, input {tuple(x.shape[1:])} -> target {tuple(y.shape[1:])}, "
                      f"first batch in [{lo:.3f}, {hi:.3f}]")
    return splits
