"""KITTI -> Caltech Pedestrian (``kitti_caltech``): train on KITTI, test on Caltech, RGB 3 x 128 x 160, 10 -> 1.

Sources: Geiger et al., "Vision meets Robotics: The KITTI Dataset", IJRR 2013 (training) and
Dollar et al., "Pedestrian Detection: A Benchmark", CVPR 2009 (test). Protocol of PredNet (Lotter,
Kreiman, Cox, ICLR 2017), which TAU (Sec. 4.1/4.3) and PLA-SM (Sec. IV-A) follow: frames
center-cropped and resized to 128 x 160; the model sees 10 frames and predicts the next one; it is
trained on KITTI and tested on Caltech Pedestrian (different cameras and cities: generalisation).
TAU Table 1: 2,042 training and 1,983 test samples.

On-disk layout (PredNet's preprocessed hickle files)::

    DATA/kitti_caltech/kitti_hkl/X_train.hkl        (N, 128, 160, 3) uint8   KITTI training frames
    DATA/kitti_caltech/kitti_hkl/sources_train.hkl  N strings: the recording each frame comes from
    DATA/kitti_caltech/kitti_hkl/X_val.hkl, sources_val.hkl          KITTI validation recordings
    DATA/kitti_caltech/caltech_hkl/X_test.hkl, sources_test.hkl      Caltech test frames, same format

``DATA/kitti_hkl/`` and ``DATA/caltech_hkl/`` (directly under the data directory, as in the
SimVP/OpenSTL code) are accepted too. The KITTI files are those produced by PredNet's
``process_kitti.py``; the Caltech test files are the Caltech test videos (set06-set10) processed
the same way (every 3rd frame to match KITTI's 10 fps, center-crop and resize to 128 x 160) and
saved with hickle as ``X_test.hkl``/``sources_test.hkl``. hickle files are HDF5: they are read
with h5py (hickle 2/3 store the object as dataset ``data_0``, hickle 4/5 as ``data``; a list of
strings in hickle 5 is a group of items), so hickle itself is not needed. These files are shared
through cloud drives, not a stable direct address, so ``bench data download kitti_caltech``
explains where to put them.

Clips (the OpenSTL/PredNet rule, re-implemented): consecutive frames of the SAME source, scanning
backwards from the last frame; a window of L frames whose first and last frame share the source is
a clip, and the scan then jumps L frames (non-overlapping clips). L = 10 + 1 = 11 for training;
for validation and test L = 10 + max(1, pred_len). Our clip counts therefore need not match Table
1's 2,042 / 1,983 (which correspond to other clip lengths); ``bench data check`` shows both.

Validation split: PredNet's KITTI validation recordings (``X_val.hkl``), disjoint from the
training recordings (our choice of a validation set; the papers select on the test set).

Metrics (PLA-SM Table III; TAU Table 4 shows SSIM and PSNR): MSE, SSIM, PSNR. The papers do not
state the unit of the Caltech MSE (PLA-SM Table III), so no display scale is set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.datafiles.identity import files_identity
from bench.datafiles import (CachedFrames, CheckReport, ClipSplits, DataSource, FrameSource, bad_file, check_loader,
                                   data_root, eval_out_frames, expect_counts, first_existing, hickle_array_dataset,
                                   missing, read_hickle_strings, read_rows, register_source, require_root,
                                   select_clips)
from bench.errors import BenchError
from bench.spec.registry import DataConfig, DatasetSpec, get_dataset, register_dataset

NAME = "kitti_caltech"
FRAME_HWC = (128, 160, 3)
PAPER_COUNTS = {"train": 2042, "test": 1983}
LAYOUT = ("DATA/kitti_caltech/kitti_hkl/{X,sources}_{train,val}.hkl and DATA/kitti_caltech/caltech_hkl/"
          "{X,sources}_test.hkl (PredNet hickle files, frames (N, 128, 160, 3) uint8)")
HOW = ("get PredNet's preprocessed KITTI data (kitti_data: X_train.hkl, sources_train.hkl, X_val.hkl, sources_val.hkl; "
       "made by PredNet's process_kitti.py) into DATA/kitti_caltech/kitti_hkl/, and the Caltech test set processed the "
       "same way into DATA/kitti_caltech/caltech_hkl/X_test.hkl and sources_test.hkl")
FILES = {"train": ("kitti_hkl", "train"), "val": ("kitti_hkl", "val"), "test": ("caltech_hkl", "test")}
DECODER = "kitti_caltech: X_{train,val,test}.hkl rows, HWC -> CHW"  # keys the frame cache


def folder(root: Path, sub: str) -> Path:
    found = first_existing([root / NAME / sub, root / sub])
    return found if found is not None else root / NAME / sub


class HickleFrames:
    """Frames of one ``X_*.hkl``, read in contiguous runs, opened lazily (safe across fork)."""

    def __init__(self, path: Path, fix: str):
        self.path, self.fix = path, fix
        self._file = self._ds = None
        f, ds = hickle_array_dataset(path, fix)
        try:
            self.shape, self.dtype = tuple(ds.shape), ds.dtype
        finally:
            f.close()
        if len(self.shape) != 4 or self.shape[1:] != FRAME_HWC or self.dtype != np.uint8:
            raise bad_file(path, "frames of shape (N, 128, 160, 3) uint8", f"{self.dtype} array of shape {self.shape}", fix)

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:  # an open HDF5 file never crosses processes: the receiver opens its own
        return {**self.__dict__, "_file": None, "_ds": None}

    def read(self, rows: np.ndarray) -> np.ndarray:
        if self._ds is None:
            self._file, self._ds = hickle_array_dataset(self.path, self.fix)
        try:
            frames = read_rows(self._ds, rows)
        except Exception as exc:
            raise bad_file(self.path, "readable frame data", f"a truncated or corrupt file ({type(exc).__name__})",
                           f"re-download it; {HOW}") from None
        return np.ascontiguousarray(frames.transpose(0, 3, 1, 2))


def open_split(root: Path, split: str) -> tuple[HickleFrames, list[str]]:
    xpath, spath = split_files(root, split)
    fix = f"put the PredNet hickle files there ({HOW})"
    frames = HickleFrames(xpath, fix)
    sources = read_hickle_strings(spath, fix)
    if len(sources) != len(frames):
        raise bad_file(spath, f"{len(frames)} source names (one per frame of {xpath.name})", f"{len(sources)}", fix)
    return frames, sources


def split_files(root: Path, split: str) -> tuple[Path, Path]:
    """(frames, sources) hickle files of ``split``; a missing one is one BenchError naming it."""
    sub, tag = FILES[split]
    base = folder(root, sub)
    fix = f"put the PredNet hickle files there ({HOW})"
    xpath, spath = base / f"X_{tag}.hkl", base / f"sources_{tag}.hkl"
    for p, what in ((xpath, "frames (N, 128, 160, 3) uint8"), (spath, "the source (recording) name of every frame")):
        if not p.is_file():
            raise missing(p, f"a hickle file with {what}", fix)
    return xpath, spath


def source_identity(config: DataConfig) -> dict:
    """The digest of the six hickle files, named ``kitti_hkl/X_train.hkl``... whichever accepted folder
    holds them (:mod:`bench.datafiles.identity`); {} without a data directory (the presence check reports it)."""
    root = data_root(config.data_dir)
    if root is None:
        return {}
    files = {f"{FILES[split][0]}/{p.name}": p for split in FILES for p in split_files(root, split)}
    return files_identity(root / NAME, files)


def clip_starts(sources: list[str], length: int) -> list[int]:
    """Non-overlapping windows of ``length`` frames of one source (backward scan, as OpenSTL)."""
    starts = []
    index = len(sources) - 1
    while index >= length - 1:
        first = index - length + 1
        if sources[index] == sources[first]:
            starts.append(first)
            index -= length
        else:
            index -= 1
    return sorted(starts)


@register_dataset(
    NAME,
    in_frames=10, out_frames=1, channels=3, height=128, width=160,
    display_name="KITTI -> Caltech Pedestrian", source_identity=source_identity,
    description="KITTI (train) -> Caltech Pedestrian (test), RGB 128x160, 10 -> 1; PredNet .hkl files",
    citation="Geiger et al., Vision meets Robotics: The KITTI Dataset, IJRR 2013; Dollar et al., Pedestrian Detection: "
             "A Benchmark, CVPR 2009; protocol of Lotter et al., PredNet, ICLR 2017",
    sizes={},
    quick_sizes={"train": 32, "val": 8, "test": 8},
    metrics=("mse", "ssim", "psnr"),
)
def load_kitti_caltech(spec: DatasetSpec, config: DataConfig) -> ClipSplits:
    root = require_root(config.data_dir, NAME, LAYOUT)
    eval_len = spec.in_frames + eval_out_frames(spec, config)
    lengths = {"train": spec.in_frames + spec.out_frames, "val": eval_len, "test": eval_len}
    opened = {split: open_split(root, split) for split in FILES}
    offsets, total, clips = {}, 0, {}
    for split, (frames, sources) in opened.items():
        offsets[split] = total
        L = lengths[split]
        starts = np.array(clip_starts(sources, L), dtype=np.int64)
        clips[split] = (total + starts[:, None] + np.arange(L)).reshape(-1, L)
        total += len(frames)
    chosen, info = select_clips(clips, config.sizes, config.data_seed, NAME)
    reader = SplitFrames([(offsets[s], offsets[s] + len(opened[s][0]), opened[s][0]) for s in FILES])
    base = root / NAME
    names = {f"{FILES[s][0]}/{opened[s][0].path.name}": opened[s][0].path for s in FILES}
    source = FrameSource(NAME, base, names, total, spec.frame_shape, reader, DECODER)
    info.update({"source": {s: str(opened[s][0].path) for s in FILES}, "clip_frames": lengths,
                 "validation": "KITTI validation recordings (X_val.hkl)"})
    return ClipSplits(CachedFrames(source, config.loader, config.log), chosen, spec.in_frames, seed=config.seed,
                      rank=config.rank, world_size=config.world_size, info=info, loader=config.loader)


class SplitFrames:
    """``read(ids)``: frames by global id across the three files (``bounds``: (first id, end id, file))."""

    def __init__(self, bounds: list[tuple[int, int, HickleFrames]]):
        self.bounds = bounds

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        parts = []
        for lo, hi, frames in self.bounds:
            sel = ids[(ids >= lo) & (ids < hi)]
            if len(sel):
                parts.append(frames.read(sel - lo))
        return np.concatenate(parts)


def _present(root: Path | None) -> tuple[str, str]:
    if root is None:
        return "missing", LAYOUT
    need = [folder(root, sub) / f"{k}_{tag}.hkl" for sub, tag in FILES.values() for k in ("X", "sources")]
    have = [p for p in need if p.is_file()]
    if len(have) == len(need):
        return "present", str(folder(root, "kitti_hkl").parent)
    return ("partial" if have else "missing"), (f"{len(have)}/{len(need)} files; " if have else "") + LAYOUT


def _check(root: Path, report: CheckReport) -> None:
    counts = {}
    for split in FILES:
        try:
            frames, sources = open_split(root, split)
        except BenchError as exc:
            report.error(str(exc))
            continue
        sample = frames.read(np.arange(min(len(frames), 4)))
        report.ok(f"{frames.path.name}: {frames.dtype} {frames.shape}, {len(set(sources))} sources, "
                  f"sample values in [{int(sample.min())}, {int(sample.max())}]")
        counts[split] = len(clip_starts(sources, 11))
    expect_counts(report, counts, PAPER_COUNTS, note=" (11-frame non-overlapping clips; see the module docstring)")
    if not report.failed:
        check_loader(get_dataset(NAME), root, report)


register_source(DataSource(dataset=NAME, layout=LAYOUT, how_to_get=HOW, present=_present, check=_check))
