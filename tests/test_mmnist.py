"""Offline Moving MNIST: dynamics, determinism, disjoint splits, digit sources, idx reading."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from bench.errors import BenchError
from bench.spec.registry import DataConfig, get_dataset
from bench.datasets import mmnist
from toy_data import write_idx


def splits(**kw):
    spec = get_dataset("mmnist")
    sizes = kw.pop("sizes", {"train": 20, "val": 10, "test": 12})
    return spec.load(spec, DataConfig(sizes=sizes, **kw))


def test_shapes_ranges_and_source_recorded():
    s = splits()
    x, y = next(s.batches("train", 8, epoch=1))
    assert x.shape == (8, 10, 1, 64, 64) and y.shape == (8, 10, 1, 64, 64)
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and x.max() > 0.5
    assert s.info["digit_source"] == "sklearn-digits"
    assert s.size("train") == 20 and s.size("val") == 10 and s.size("test") == 12


def test_test_set_fixed_by_data_seed_not_run_seed_nor_batch_size():
    a = torch.cat([x for x, _ in splits(seed=0).batches("test", 5)])
    b = torch.cat([x for x, _ in splits(seed=7).batches("test", 3)])
    c = torch.cat([x for x, _ in splits(seed=0, data_seed=1).batches("test", 5)])
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_train_stream_changes_per_epoch_and_seed():
    s = splits()
    e1 = next(s.batches("train", 4, epoch=1))[0]
    assert torch.equal(e1, next(s.batches("train", 4, epoch=1))[0])
    assert not torch.equal(e1, next(s.batches("train", 4, epoch=2))[0])
    assert not torch.equal(e1, next(splits(seed=1).batches("train", 4, epoch=1))[0])


def test_validation_and_test_are_disjoint():
    s = splits(sizes={"train": 4, "val": 64, "test": 64})
    val = torch.cat([torch.cat([x, y], 1) for x, y in s.batches("val", 64)]).flatten(1)
    test = torch.cat([torch.cat([x, y], 1) for x, y in s.batches("test", 64)]).flatten(1)
    assert not (val[:, None] == test[None]).all(-1).any()
    pools = s.pools
    train_d, val_d, test_d = (set(map(bytes, pools[k].numpy().reshape(len(pools[k]), -1))) for k in ("train", "val", "test"))
    assert not (val_d & test_d) and not (train_d & test_d)


def test_bouncing_dynamics_stay_in_frame_and_reflect():
    g = torch.Generator().manual_seed(0)
    rows, cols = mmnist.trajectories(500, 20, g)
    for p in (rows, cols):
        assert p.min() >= 0 and p.max() <= 64 - 28
        step = p[:, 1:] - p[:, :-1]
        assert step.abs().max() <= int(0.1 * 36) + 1  # at most one step length per frame
    # some trajectory reverses direction at a wall
    d = (rows[:, 1:] - rows[:, :-1]).sign()
    assert ((d[:, 1:] * d[:, :-1]) < 0).any()


def test_render_places_digits_with_max():
    digits = torch.zeros(1, 2, 28, 28, dtype=torch.uint8)
    digits[0, 0] = 100
    digits[0, 1] = 200
    rows = torch.tensor([[[0, 10]]])
    cols = torch.tensor([[[0, 10]]])
    frame = mmnist.render(digits, rows, cols)[0, 0]
    assert frame[0, 0] == 100 and frame[15, 15] == 200 and frame[30, 30] == 200 and frame[50, 50] == 0


def test_mnist_idx_source_is_used_when_present(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (60, 28, 28)))
    s = splits(data_dir=str(tmp_path))
    assert s.info["digit_source"] == "mnist-idx"
    assert s.info["digit_pool_sizes"] == {"train": 50, "val": 5, "test": 5}
    assert next(s.batches("test", 2))[0].shape == (2, 10, 1, 64, 64)


def test_corrupt_idx_file_is_one_line_error(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 28, 28)))
    raw = gzip.open(tmp_path / "train-images-idx3-ubyte.gz").read()
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(raw[:-100])
    with pytest.raises(BenchError, match="truncated or corrupt") as err:
        splits(data_dir=str(tmp_path))
    assert "\n" not in str(err.value)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(BenchError, match="cannot read MNIST file"):
        splits(data_dir=str(tmp_path))


def test_ddp_shards_are_disjoint_and_cover():
    spec = get_dataset("mmnist")
    full = torch.cat([x for x, _ in splits(sizes={"train": 4, "val": 4, "test": 9}).batches("test", 4)])
    parts = [torch.cat([x for x, _ in spec.load(spec, DataConfig(sizes={"train": 4, "val": 4, "test": 9}, rank=r,
                                                                 world_size=2)).batches("test", 4)]) for r in (0, 1)]
    assert len(parts[0]) + len(parts[1]) == 9
    assert torch.equal(parts[0], full[0::2]) and torch.equal(parts[1], full[1::2])
