"""Synthetic dataset files at realistic sizes, for ``bench perf --data`` (the real data is licensed or has no
stable address): written once in each dataset's documented on-disk layout, then reused.

What the data path costs depends on the files' formats, frame sizes and counts, not on what the frames
show, so the frames are smooth moving patterns with mild noise (about 9 KB for a 128 x 128 grey PNG; 2 KB
for an RGB JPEG, smaller than a real frame's: JPEG decoding time follows the pixel count more than the
bytes). Sizes (:data:`SIZES`):

- KTH: 108 videos of 200 frames (persons 1-15 train, 16 validation, 17-18 test; the six actions),
  21,600 PNG frames of 128 x 128: 2,070 training clips of 30 frames (the real set: about 290,000
  frames, 5,200 train+validation clips).
- Human3.6M: subjects S1, S5-S9, S11, 4 cameras each, 320 frames per video on the 5-frame grid (the
  frames the loader reads; a real dump also holds the four frames between), 8,960 JPEG frames of
  128 x 128 RGB: 1,120 clips of 8 (the real set: 3,759).
- TaxiBJ: the real shapes, 19,627 training and 1,334 test clips of (4, 2, 32, 32) float32 (1.4 GB).
- KITTI->Caltech: 8,000 training, 800 validation and 1,600 test frames of 128 x 160 RGB in PredNet's
  hickle layout (640 MB; the real KITTI training file holds 41,396 frames).

Where: ``<cache>/perf-data-v1/`` (``$BENCH_CACHE``, else ``~/.cache/bench``), or ``--fixtures DIR``;
delete it to reclaim the space (about 2.2 GB, plus 1.4 GB of frame caches built from it,
:mod:`bench.datafiles.frame_cache`). A dataset's files count as written once its marker file
``<name>.complete`` exists (written last), so an interrupted write is redone.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from bench.core.atomic import atomic_write_json
from bench.datafiles.identity import cache_root

FOLDER = "perf-data-v1"
KTH_ACTIONS = ("boxing", "handclapping", "handwaving", "walking", "jogging", "running")
KTH_PERSONS = tuple(range(1, 19))
H36M_SUBJECTS = (1, 5, 6, 7, 8, 9, 11)
H36M_CAMERAS = ("54138969", "55011271", "58860488", "60457274")
SIZES = {"kth": {"videos": len(KTH_ACTIONS) * len(KTH_PERSONS), "frames_per_video": 200},
         "human36m": {"videos": len(H36M_SUBJECTS) * len(H36M_CAMERAS), "frames_per_video": 320},
         "taxibj": {"train": 19627, "test": 1334},
         "kitti_caltech": {"train": 8000, "val": 800, "test": 1600}}


def default_root() -> Path:
    return cache_root() / FOLDER


def _pattern(seed: int, n: int, height: int, width: int, channels: int) -> np.ndarray:
    """``n`` frames (n, height, width, channels) uint8 of a smooth pattern drifting over time, plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:2 * height, 0:2 * width].astype(np.float32)
    base = np.stack([110 + 50 * np.sin(xx / (9 + 3 * c) + c) + 30 * np.cos(yy / (7 + 2 * c))
                     for c in range(channels)], -1)
    noise = rng.integers(-4, 5, (16, height, width, channels)).astype(np.float32)
    out = np.empty((n, height, width, channels), dtype=np.uint8)
    for k in range(n):
        dy, dx = (k * 3 + seed) % height, (k * 5 + 2 * seed) % width
        out[k] = np.clip(base[dy:dy + height, dx:dx + width] + noise[k % 16], 0, 255)
    return out


def _write_images(task: tuple[str, int, int, int, list[str]]) -> None:
    """One video's frames as image files (a worker process's task)."""
    from PIL import Image

    folder, seed, size, channels, names = task
    frames = _pattern(seed, len(names), size, size, channels)
    Path(folder).mkdir(parents=True, exist_ok=True)
    for frame, name in zip(frames, names):
        Image.fromarray(frame[..., 0] if channels == 1 else frame).save(Path(folder) / name)


def write_kth(root: Path, processes: int) -> None:
    n = SIZES["kth"]["frames_per_video"]
    tasks = [(str(root / "kth" / a / f"person{p:02d}_{a}_d1_uncomp"), 100 * p + i, 128, 1,
              [f"image_{k:04d}.png" for k in range(1, n + 1)])
             for i, a in enumerate(KTH_ACTIONS) for p in KTH_PERSONS]
    _run(tasks, processes)


def write_human36m(root: Path, processes: int) -> None:
    n = SIZES["human36m"]["frames_per_video"]
    tasks = [(str(root / "human36m" / f"S{s}" / f"Walking.{cam}"), 1000 + 10 * s + i, 128, 3,
              [f"{1 + 5 * k:06d}.jpg" for k in range(n)])
             for s in H36M_SUBJECTS for i, cam in enumerate(H36M_CAMERAS)]
    _run(tasks, processes)


def _run(tasks: list, processes: int) -> None:
    if processes <= 1:
        for task in tasks:
            _write_images(task)
        return
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_write_images, tasks))


def write_taxibj(root: Path, processes: int) -> None:
    rng = np.random.default_rng(7)

    def flows(n: int) -> np.ndarray:
        level = np.sin(np.arange(n, dtype=np.float32) / 48 * 2 * np.pi)[:, None, None, None, None] * 0.6
        return np.clip(level + rng.uniform(-0.3, 0.3, (n, 4, 2, 32, 32)).astype(np.float32), -1, 1)

    path = root / "taxibj" / "dataset.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    n_train, n_test = SIZES["taxibj"]["train"], SIZES["taxibj"]["test"]
    np.savez(path, X_train=flows(n_train), Y_train=flows(n_train), X_test=flows(n_test), Y_test=flows(n_test))


def write_kitti_caltech(root: Path, processes: int) -> None:
    import h5py

    def dump(path: Path, obj) -> None:  # hickle 2/3's layout: dataset data_0 (PredNet's files)
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(path, "w") as f:
            f.attrs["CLASS"], f.attrs["VERSION"] = "hickle", "3"
            if isinstance(obj, list):
                f.create_dataset("data_0", data=np.array([s.encode() for s in obj]))
            else:
                f.create_dataset("data_0", data=obj)

    for split, sub, seed in (("train", "kitti_hkl", 11), ("val", "kitti_hkl", 12), ("test", "caltech_hkl", 13)):
        n = SIZES["kitti_caltech"][split]
        base = root / "kitti_caltech" / sub
        dump(base / f"X_{split}.hkl", _pattern(seed, n, 128, 160, 3))
        dump(base / f"sources_{split}.hkl", [f"{split}-recording-{k // 200:03d}" for k in range(n)])


WRITERS: dict[str, Callable[[Path, int], None]] = {"kth": write_kth, "human36m": write_human36m,
                                                   "taxibj": write_taxibj, "kitti_caltech": write_kitti_caltech}


def ensure_fixture(name: str, root: Path, log: Callable[[str], None]) -> bool:
    """Write dataset ``name``'s synthetic files under ``root`` unless they are complete; False for a dataset
    that needs none (generated) or has no writer."""
    if name not in WRITERS:
        return False
    marker = root / f"{name}.complete"
    if marker.is_file():
        return True
    shutil.rmtree(root / name, ignore_errors=True)  # an interrupted write
    processes = os.cpu_count() or 1
    log(f"{name}: writing synthetic files of realistic size under {root / name} once ({SIZES[name]}; "
        f"{processes} process(es))")
    WRITERS[name](root, processes)
    atomic_write_json(marker, SIZES[name])
    return True
