"""Readers of the file formats the datasets come in: npz/npy (headers checked before loading), HDF5 and hickle.

Each reader turns a malformed file into one line naming it (:func:`bench.datafiles.paths.bad_file`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from bench.errors import BenchError
from bench.datafiles.paths import bad_file


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
