"""Moving MNIST, standard protocol (``mmnist_std``): MNIST-digit training sequences + the fixed test file.

This is the setting of the published Moving MNIST numbers (TAU Table 2, PLA-SM Table II):
Srivastava, Mansimov, Salakhutdinov, "Unsupervised Learning of Video Representations using LSTMs",
ICML 2015 (www.cs.toronto.edu/~nitish/unsupervised_video/). Training sequences are generated
online from the MNIST training digits with the standard bouncing dynamics (the generator of
:mod:`bench.datasets.mmnist`: ``generate``/``read_idx_images``, same code path); the test set is
the fixed file ``mnist_test_seq.npy`` of 10,000 sequences (TAU Table 1), frames 0-9 input and
10-19 target. The generated ``mmnist`` dataset falls back to scikit-learn digits when MNIST is
absent; this one never does: it needs both files.

On-disk layout::

    DATA/mnist/train-images-idx3-ubyte.gz      MNIST training images (also found directly in DATA/,
                                               DATA/mmnist/ or DATA/MNIST/raw/, .gz or not)
    DATA/mmnist/mnist_test_seq.npy             uint8 (20, 10000, 64, 64): frame, sequence, row, col
                                               (also found in DATA/moving_mnist/ or DATA/)

``bench data download mmnist_std`` fetches both from their canonical addresses:
- https://storage.googleapis.com/cvdf-datasets/mnist/train-images-idx3-ubyte.gz (the CVDF mirror
  of yann.lecun.com/exdb/mnist), checked against MNIST's published MD5
  f68b3c2dcbeaaa9fbdd348bbdeb94873 and size 9,912,422 bytes;
- http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy: no checksum is
  published for it, so it is checked structurally: a valid .npy header of uint8 (20, 10000, 64, 64)
  and the exact byte size that header implies (the checksum is UNVERIFIED).
``bench data download mmnist`` fetches the MNIST file only (the generated ``mmnist`` then uses it).

Splits: train = a fresh stream of generated sequences every epoch (10,000 per epoch, from the run
seed), validation = 1,000 generated sequences fixed by ``data_seed`` (our choice; the papers
have none), both from the :mod:`bench.datasets.mmnist` digit pools (the 60,000 MNIST digits split
50,000 train / 5,000 validation; its 5,000 "test" digits are unused here), and test = the fixed
file (all 10,000, or a ``data_seed``-fixed subset with ``--sizes test=N``).

Metrics (TAU Table 2, PLA-SM Table II): MSE, MAE (per frame, summed over pixels), SSIM.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from bench.spec.splits import ArraySplits
from bench.datafiles.identity import files_identity
from bench.datafiles import (CheckReport, DataSource, RemoteFile, check_loader, check_npy, data_root,
                                   expect_counts, first_existing, missing, pick, register_source, require_root)
from bench.datasets.mmnist import MovingMNISTSplits, find_mnist_idx, idx_header, read_idx_images
from bench.errors import BenchError
from bench.spec.registry import DataConfig, DatasetSpec, get_dataset, register_dataset

NAME = "mmnist_std"
TEST_NAME = "mnist_test_seq.npy"
TEST_SHAPE = (20, 10000, 64, 64)
MNIST_N = 60000
LAYOUT = "DATA/mnist/train-images-idx3-ubyte.gz and DATA/mmnist/mnist_test_seq.npy (uint8, 20 x 10000 x 64 x 64)"
HOW = "run `bench data download mmnist_std` (MNIST from the CVDF mirror, the test set from cs.toronto.edu)"


def validate_mnist(path: Path) -> None:
    images = read_idx_images(path)
    if images.shape != (MNIST_N, 28, 28):
        raise BenchError(f"{path}: expected the 60,000 MNIST training images (60000, 28, 28), found {images.shape}")


def validate_test_seq(path: Path) -> None:
    check_npy(path, np.uint8, lambda s: s == TEST_SHAPE, "uint8 array of shape (20, 10000, 64, 64)",
              f"delete it and {HOW}")


MNIST_REMOTE = RemoteFile(
    url="https://storage.googleapis.com/cvdf-datasets/mnist/train-images-idx3-ubyte.gz",
    dest="mnist/train-images-idx3-ubyte.gz", md5="f68b3c2dcbeaaa9fbdd348bbdeb94873", size=9912422,
    validate=validate_mnist, note="MNIST's published MD5")
TEST_REMOTE = RemoteFile(
    url="http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy",
    dest=f"mmnist/{TEST_NAME}", validate=validate_test_seq,
    max_bytes=20 * 10000 * 64 * 64 + 4096,  # no published size: the uint8 array plus at most 4 KiB of .npy header
    note="no published checksum: .npy header and exact size checked (checksum unverified)")


def find_test_file(root: Path) -> Path | None:
    return first_existing([root / "mmnist" / TEST_NAME, root / "moving_mnist" / TEST_NAME, root / TEST_NAME])


def read_test(root: Path) -> np.ndarray:
    """The test sequences as a read-only memory map (20, N, 64, 64) uint8 (N = 10,000 in the real file)."""
    path = find_test_file(root)
    if path is None:
        raise missing(root / "mmnist" / TEST_NAME, "the Moving MNIST test set (uint8, 20 x 10000 x 64 x 64)", HOW)
    check_npy(path, np.uint8, lambda s: len(s) == 4 and s[0] == 20 and s[2:] == (64, 64) and s[1] > 0,
              "uint8 array of shape (20, N, 64, 64)", f"delete it and {HOW}")
    return np.load(path, mmap_mode="r")


def source_identity(config: DataConfig) -> dict[str, Any]:
    """The digest of the MNIST file and the test file, named by their file names (:mod:`bench.datafiles.identity`);
    {} without a data directory (the presence check reports it)."""
    root = data_root(config.data_dir)
    if root is None:
        return {}
    idx, test = find_mnist_idx(root), find_test_file(root)
    if idx is None:
        raise missing(root / "mnist" / "train-images-idx3-ubyte.gz", "the MNIST training images", HOW)
    if test is None:
        raise missing(root / "mmnist" / TEST_NAME, "the Moving MNIST test set (uint8, 20 x 10000 x 64 x 64)", HOW)
    idx_header(idx)
    return files_identity(root, {idx.name: idx, TEST_NAME: test})


class StandardMovingMNISTSplits:
    """Generated train/val (MNIST digits, :class:`MovingMNISTSplits`) + the fixed test file."""

    def __init__(self, spec: DatasetSpec, config: DataConfig):
        root = require_root(config.data_dir, NAME, LAYOUT)
        idx = find_mnist_idx(root)
        if idx is None:
            raise missing(root / "mnist" / "train-images-idx3-ubyte.gz", "the MNIST training images", HOW)
        spec.check_pred_len(config.pred_len)  # the standard test set holds max_pred_len = 10 target frames
        seqs = read_test(root)
        want = config.sizes.get("test")
        sel = pick(seqs.shape[1], want, config.data_seed, 3)
        video = np.ascontiguousarray(np.asarray(seqs[:, sel]).transpose(1, 0, 2, 3)[:, :, None])  # (n, 20, 1, 64, 64)
        t = spec.in_frames
        self.test = ArraySplits({"test": (video[:, :t], video[:, t:t + spec.out_frames])}, seed=config.seed,
                                rank=config.rank, world_size=config.world_size, loader=config.loader)
        gen_sizes = {k: v for k, v in config.sizes.items() if k != "test"}
        self.gen = MovingMNISTSplits(spec, replace(config, data_dir=str(idx.parent), sizes=gen_sizes))
        self.info: dict[str, Any] = {**self.gen.info, "test_source": str(find_test_file(root)),
                                     "test_sequences": int(len(sel)), "test_available": int(seqs.shape[1]),
                                     "protocol": "standard: MNIST-digit training stream, fixed mnist_test_seq.npy test"}
        self.info["sizes"] = {**self.gen.sizes, "test": int(len(sel))}

    def size(self, split: str) -> int:
        return self.test.size("test") if split == "test" else self.gen.size(split)

    def batches(self, split: str, batch_size: int, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if split == "test":
            return self.test.batches("test", batch_size, epoch)
        return self.gen.batches(split, batch_size, epoch)

    def raw_batches(self, split: str, batch_size: int, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if split == "test":
            return self.test.raw_batches("test", batch_size, epoch)
        return self.gen.raw_batches(split, batch_size, epoch)


@register_dataset(
    NAME,
    in_frames=10, out_frames=10, channels=1, height=64, width=64,
    max_pred_len=10, source_identity=source_identity,
    description="Moving MNIST, standard protocol: MNIST-digit training stream, fixed mnist_test_seq.npy test set, 10 -> 10",
    citation="Srivastava et al., Unsupervised Learning of Video Representations using LSTMs, ICML 2015",
    sizes={"train": 10000, "val": 1000, "test": 10000},
    quick_sizes={"train": 64, "val": 32, "test": 32},
    metrics=("mse", "mae", "ssim"),
)
def load_mmnist_std(spec: DatasetSpec, config: DataConfig) -> StandardMovingMNISTSplits:
    return StandardMovingMNISTSplits(spec, config)


def _present_std(root: Path | None) -> tuple[str, str]:
    if root is None:
        return "missing", LAYOUT
    idx, test = find_mnist_idx(root), find_test_file(root)
    if idx and test:
        return "present", f"{idx}, {test}"
    if idx or test:
        return "partial", f"{idx or test} found; missing " + ("the test set" if idx else "MNIST")
    return "missing", LAYOUT


def _check_std(root: Path, report: CheckReport) -> None:
    idx = find_mnist_idx(root)
    if idx is None:
        report.error(str(missing(root / "mnist" / "train-images-idx3-ubyte.gz", "the MNIST training images", HOW)))
    else:
        try:
            images = read_idx_images(idx)
            report.ok(f"{idx}: {images.shape[0]} digits of {images.shape[1]}x{images.shape[2]}")
            expect_counts(report, {"MNIST": images.shape[0]}, {"MNIST": MNIST_N}, unit="training digits")
        except BenchError as exc:
            report.error(str(exc))
    try:
        seqs = read_test(root)
        report.ok(f"{find_test_file(root)}: uint8 {tuple(seqs.shape)}, values in [{int(seqs[:, :64].min())}, "
                  f"{int(seqs[:, :64].max())}] (first 64 sequences)")
        expect_counts(report, {"test": int(seqs.shape[1])}, {"test": TEST_SHAPE[1]})
    except BenchError as exc:
        report.error(str(exc))
    if not report.failed:
        check_loader(get_dataset(NAME), root, report)


def _present_gen(root: Path | None) -> tuple[str, str]:
    idx = find_mnist_idx(root)
    return "generated", (f"digits from {idx}" if idx else "digits from scikit-learn (MNIST absent: "
                         "`bench data download mmnist` for MNIST digits)")


def _check_gen(root: Path, report: CheckReport) -> None:
    idx = find_mnist_idx(root)
    if idx is None:
        report.warn("no MNIST idx file: sequences use scikit-learn's 8x8 digits (not comparable with published "
                    "numbers); `bench data download mmnist` fetches MNIST")
    check_loader(get_dataset("mmnist"), root, report)


register_source(DataSource(dataset=NAME, layout=LAYOUT, how_to_get=HOW, present=_present_std, check=_check_std,
                           remote=(MNIST_REMOTE, TEST_REMOTE)))
register_source(DataSource(dataset="mmnist", layout="generated; optional DATA/mnist/train-images-idx3-ubyte.gz",
                           how_to_get="generated offline; `bench data download mmnist` adds real MNIST digits",
                           present=_present_gen, check=_check_gen, remote=(MNIST_REMOTE,)))
