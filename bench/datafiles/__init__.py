"""Data files a user has: where they live, how they are read, checked, identified and downloaded.

The file-backed datasets (``datasets/``) and ``bench data`` are built on these modules:
:mod:`~bench.datafiles.paths` (the data directory, one-line file errors), :mod:`~bench.datafiles.formats`
(npz/npy/HDF5/hickle readers), :mod:`~bench.datafiles.clips` (clip-indexed splits over a frame
store), :mod:`~bench.datafiles.frame_cache` (frames decoded once into a memory-mapped
cache), :mod:`~bench.datafiles.identity` (the content digest a run records),
:mod:`~bench.datafiles.download` (bounded, resumable downloads) and :mod:`~bench.datafiles.check`
(the ``bench data`` catalogue and its checks). Their public names are re-exported here.
"""

from bench.datafiles.check import SOURCES, CheckReport, DataSource, check_loader, expect_counts, register_source  # noqa: F401
from bench.datafiles.clips import (SPLIT_SALT, CachedFrames, ClipSplits, FrameFiles, FrameStore,  # noqa: F401
                                   eval_out_frames, frame_file_splits, pick, read_rows, select_clips)
from bench.datafiles.frame_cache import FrameSource  # noqa: F401
from bench.datafiles.download import DOWNLOAD_BASE_ENV, RemoteFile, download  # noqa: F401
from bench.datafiles.formats import (check_npy, hickle_array_dataset, load_npz, npy_header,  # noqa: F401
                                     read_hickle_strings)
from bench.datafiles.paths import DATA_ENV, bad_file, data_root, file_digest, first_existing, missing, require_root  # noqa: F401
