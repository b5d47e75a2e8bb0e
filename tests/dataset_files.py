"""Dataset files written in their real on-disk formats (npz, frame folders, hickle/HDF5 written with
h5py in hickle's layouts, idx.gz, npy), for the tests of the file-backed datasets and their downloads
(``tests/test_datasets.py``, ``tests/test_data_download.py``)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from bench.datasets import kth
from toy_data import write_idx


N_TRAIN, N_TEST = 40, 12


def write_taxibj(root: Path, n_train=N_TRAIN, n_test=N_TEST, **override) -> Path:
    """X[i] is constant -1 + 2 i / (n - 1) (+ tiny noise): a clip's index can be read back from its values."""
    rng = np.random.default_rng(0)

    def clips(n, shift):
        level = -1 + 2 * np.arange(n) / max(n - 1, 1)
        a = level[:, None, None, None, None] + rng.uniform(-1e-3, 1e-3, (n, 4, 2, 32, 32))
        return np.clip(a + shift, -1, 1)

    arrays = {"X_train": clips(n_train, 0), "Y_train": clips(n_train, 0), "X_test": clips(n_test, 0),
              "Y_test": clips(n_test, 0)}
    arrays.update(override)
    path = root / "taxibj" / "dataset.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


KTH_FRAMES = {1: 35, 16: 52, 17: 52}  # person -> frames per video (train, val, test persons)


def write_kth(root: Path, frames=KTH_FRAMES) -> Path:
    rng = np.random.default_rng(1)
    base = root / "kth"
    for action in kth.ACTIONS:
        for person, n in frames.items():
            vdir = base / action / f"person{person:02d}_{action}_d1_uncomp"
            vdir.mkdir(parents=True)
            odd = action == "boxing" and person == 17  # raw KTH size, RGB: resized, first channel used
            for k in range(1, n + 1):
                if odd:
                    a = rng.integers(0, 256, (120, 160), dtype=np.uint8)
                    Image.fromarray(np.stack([a, a // 2, a // 3], -1)).save(vdir / f"image_{k:04d}.png")
                else:
                    Image.fromarray(rng.integers(0, 256, (128, 128), dtype=np.uint8)).save(vdir / f"image_{k:04d}.png")
    return base


def write_human36m(root: Path) -> Path:
    rng = np.random.default_rng(2)
    base = root / "human36m"
    frames = range(1, 77, 5)  # every 5th video frame, 16 frames: 2 clips of 8
    for subject, layout in ((1, "nested"), (8, "nested"), (9, "flat")):
        for activity in ("Walking", "WalkDog"):
            for k in frames:
                size = 64 if subject == 9 else 128  # S9 frames need resizing
                img = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
                if layout == "nested":
                    p = base / f"S{subject}" / f"{activity}.54138969" / f"{k:06d}.png"
                else:
                    p = base / "images" / f"S{subject}_{activity}.54138969_{k:06d}.png"
                p.parent.mkdir(parents=True, exist_ok=True)
                img.save(p)
    return base


def hickle3_dump(path: Path, obj) -> None:
    """hickle 2/3 layout: root attrs, dataset 'data_0' (arrays; lists of strings as fixed-length bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["CLASS"], f.attrs["VERSION"] = "hickle", "3"
        if isinstance(obj, list):
            d = f.create_dataset("data_0", data=np.array([s.encode() for s in obj]))
            d.attrs["type"] = [b"<type 'list'>"]
        else:
            d = f.create_dataset("data_0", data=obj)
            d.attrs["type"] = [b"ndarray"]


def hickle5_dump(path: Path, obj) -> None:
    """hickle 5 layout: dataset 'data' for arrays; a list is group 'data' of items data0, data1, ...
    (strings as (1, n) char arrays, repeated strings as object references to the first copy)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["HICKLE_VERSION"] = "5.0.3"
        if not isinstance(obj, list):
            f.create_dataset("data", data=obj)
            return
        g = f.create_group("data")
        first: dict[str, h5py.Dataset] = {}
        for i, s in enumerate(obj):
            if s in first:
                d = g.create_dataset(f"data{i}", data=first[s].ref, dtype=h5py.ref_dtype)
            else:
                d = first[s] = g.create_dataset(f"data{i}", data=np.array([[c.encode() for c in s]], dtype="S1"))
            d.attrs["item_index"] = i


def write_kitti(root: Path) -> Path:
    rng = np.random.default_rng(3)
    frames = lambda n: rng.integers(0, 256, (n, 128, 160, 3), dtype=np.uint8)  # noqa: E731
    kdir, cdir = root / "kitti_caltech" / "kitti_hkl", root / "kitti_caltech" / "caltech_hkl"
    hickle3_dump(kdir / "X_train.hkl", frames(40))
    hickle3_dump(kdir / "sources_train.hkl", ["city-a"] * 25 + ["road-b"] * 15)
    hickle3_dump(kdir / "X_val.hkl", frames(22))
    hickle3_dump(kdir / "sources_val.hkl", ["residential-c"] * 22)
    hickle5_dump(cdir / "X_test.hkl", frames(30))
    hickle5_dump(cdir / "sources_test.hkl", ["set06V000"] * 12 + ["set07V001"] * 18)
    return root / "kitti_caltech"


def write_mmnist_std(root: Path, n_test=6) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(4)
    idx = write_idx(root / "mnist" / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (60, 28, 28)))
    seqs = rng.integers(0, 256, (20, n_test, 64, 64), dtype=np.uint8)
    seqs[:, :, 0, 0] = np.arange(n_test, dtype=np.uint8)[None]  # sequence id in pixel (0, 0), every frame
    path = root / "mmnist" / "mnist_test_seq.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, seqs)
    return idx, path.read_bytes()



def write_all(root: Path) -> Path:
    """Every dataset's fixture files under ``root``."""
    write_taxibj(root)
    write_kth(root)
    write_human36m(root)
    write_kitti(root)
    write_mmnist_std(root)
    return root


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text
