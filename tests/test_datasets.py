"""File-backed datasets (taxibj, kth, human36m, kitti_caltech, mmnist_std) and `bench data`.

Every fixture is written by the test in the dataset's real on-disk format (``dataset_files.py``) and
loaded through the same code a user's full files take. Downloads: ``tests/test_data_download.py``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from bench.datasets import kitti_caltech, kth, taxibj
from bench.datafiles import read_hickle_strings
from bench.errors import BenchError
from bench.spec.registry import DataConfig, get_dataset, get_method
from bench.run.evaluation import Scorer, evaluate
from bench.spec.method import rollout
from dataset_files import (N_TEST, N_TRAIN, hickle3_dump, hickle5_dump, one_line, write_all, write_kitti,
                           write_kth, write_taxibj)
from run_helpers import complete_result
from toy_data import write_idx


def config(root, pred_len=None, **kw) -> DataConfig:
    """A DataConfig; ``pred_len`` set as the runner's --pred-len reaches the loader."""
    return DataConfig(data_dir=str(root), pred_len=pred_len, **kw)


def load(name, root, **kw):
    spec = get_dataset(name)
    return spec.load(spec, config(root, **kw))


def all_batches(splits, split, bs=64):
    xs, ys = zip(*splits.batches(split, bs))
    return torch.cat(xs), torch.cat(ys)

@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_all(tmp_path_factory.mktemp("data"))


# ------------------------------------------------------------------------------------------------
# TaxiBJ
# ------------------------------------------------------------------------------------------------


def clip_ids(x: torch.Tensor, n: int) -> list[int]:
    return [int(round(v)) for v in (x.mean(dim=(1, 2, 3, 4)) * (n - 1)).tolist()]


def test_taxibj_shapes_range_and_disjoint_validation(data):
    s = load("taxibj", data)
    spec = get_dataset("taxibj")
    assert (spec.in_frames, spec.out_frames, spec.frame_shape) == (4, 4, (2, 32, 32))
    assert spec.metric_scale == {"mse": 100.0} and spec.metrics == ("mse", "mae", "ssim")
    n_val = N_TRAIN // 10
    assert (s.size("train"), s.size("val"), s.size("test")) == (N_TRAIN - n_val - taxibj.GAP, n_val, N_TEST)
    x, y = all_batches(s, "train")
    assert x.shape == (N_TRAIN - n_val - taxibj.GAP, 4, 2, 32, 32) and y.shape == x.shape
    assert x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1
    train_ids, val_ids = set(clip_ids(x, N_TRAIN)), set(clip_ids(all_batches(s, "val")[0], N_TRAIN))
    assert val_ids == set(range(N_TRAIN - n_val, N_TRAIN))  # the last clips of X_train
    assert max(train_ids) + taxibj.GAP < min(val_ids)  # no shared frame
    assert clip_ids(all_batches(s, "test")[0], N_TEST) == list(range(N_TEST))
    # the real file's split: 18,620 / 1,000 (+7 dropped) of 19,627
    tr, va = taxibj.val_layout(19627)
    assert (len(tr), len(va), va.start - tr.stop) == (18620, 1000, 7) == (spec.sizes["train"], spec.sizes["val"], 7)


def test_taxibj_sizes_subset_fixed_by_data_seed(data):
    a = load("taxibj", data, sizes={"train": 5, "test": 4}, seed=1)
    b = load("taxibj", data, sizes={"train": 5, "test": 4}, seed=2)
    assert a.size("train") == 5 and a.size("test") == 4
    ta, tb = all_batches(a, "test")[0], all_batches(b, "test")[0]
    assert torch.equal(ta, tb)  # run seed does not change the evaluated clips
    assert sorted(clip_ids(all_batches(a, "train")[0], N_TRAIN)) == sorted(clip_ids(all_batches(b, "train")[0], N_TRAIN))
    c = load("taxibj", data, sizes={"test": 4}, data_seed=7)
    assert not torch.equal(ta, all_batches(c, "test")[0])
    with pytest.raises(BenchError, match="--pred-len 8 exceeds the 4 target frames"):
        load("taxibj", data, pred_len=8)
    big = load("taxibj", data, sizes={"test": 1000})
    assert big.size("test") == N_TEST and big.info["clamped"]["test"] == {"requested": 1000, "used": N_TEST}


def test_taxibj_file_errors_are_one_line(tmp_path):
    with pytest.raises(BenchError, match=r"taxibj/dataset.npz is missing.*DATA/taxibj/dataset.npz") as e:
        load("taxibj", tmp_path)
    one_line(e.value)
    path = write_taxibj(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BenchError, match=r"dataset.npz: expected a readable .npz archive, found a truncated") as e:
        load("taxibj", tmp_path)
    one_line(e.value)
    write_taxibj(tmp_path, X_test=np.zeros((N_TEST, 4, 1, 32, 32)))
    with pytest.raises(BenchError, match=r"expected X_test of shape \(N, 4, 2, 32, 32\), found float64 array of shape "
                                         r"\(12, 4, 1, 32, 32\)") as e:
        load("taxibj", tmp_path)
    one_line(e.value)
    write_taxibj(tmp_path, Y_test=np.full((N_TEST, 4, 2, 32, 32), 255.0))
    with pytest.raises(BenchError, match=r"values in \[-1, 1\].*found values in \[255, 255\]"):
        load("taxibj", tmp_path)
    write_taxibj(tmp_path, Y_train=np.zeros((3, 4, 2, 32, 32)))
    with pytest.raises(BenchError, match="X_train and Y_train with as many clips"):
        load("taxibj", tmp_path)
    with pytest.raises(BenchError, match="none is set; pass --data-dir"):
        spec = get_dataset("taxibj")
        spec.load(spec, DataConfig(data_dir=None))


# ------------------------------------------------------------------------------------------------
# KTH (and flexible-length prediction)
# ------------------------------------------------------------------------------------------------


def test_kth_clip_rule():
    nums = np.arange(1, 36)
    assert kth.clip_starts(nums, 30, stride_overlap=False) == [5]
    assert kth.clip_starts(nums, 30, stride_overlap=True) == [2, 5]
    gap = np.concatenate([np.arange(1, 21), np.arange(22, 52)])  # frame 21 missing
    assert kth.clip_starts(gap, 30, stride_overlap=False) == [20]  # only frames 22..51
    assert kth.clip_starts(np.arange(1, 20), 30, stride_overlap=True) == []


def test_kth_splits_shapes_and_persons(data):
    s = load("kth", data)
    spec = get_dataset("kth")
    assert (spec.in_frames, spec.out_frames, spec.frame_shape, spec.metrics) == (10, 20, (1, 128, 128), ("ssim", "psnr"))
    # 4 non-overlapping actions x 1 clip + 2 overlapping actions x 2 clips (35 frames); test person: 52 frames
    assert (s.size("train"), s.size("val"), s.size("test")) == (8, 4 + 2 * 8, 4 + 2 * 8)
    x, y = next(s.batches("test", 3))
    assert x.shape == (3, 10, 1, 128, 128) and y.shape == (3, 20, 1, 128, 128)
    assert 0 <= float(x.min()) and float(y.max()) <= 1 and float(x.std()) > 0.1
    ids = {k: set(v.reshape(-1).tolist()) for k, v in s.clips.items()}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    # the clips' frames come from the right persons (1-15 train, 16 val, 17-25 test)
    videos = kth.scan(data)
    owner = np.concatenate([[v.person] * len(v.files) for v in videos])
    assert {int(p) for p in owner[list(ids["train"])]} == {1}
    assert {int(p) for p in owner[list(ids["val"])]} == {16} and {int(p) for p in owner[list(ids["test"])]} == {17}
    # the 160x120 RGB video was resized and its first channel used
    boxing17 = next(v for v in videos if v.person == 17 and v.action == "boxing")
    a = np.asarray(Image.open(boxing17.files[0]))[..., 0]
    want = np.asarray(Image.fromarray(a).resize((128, 128), Image.BILINEAR))
    assert np.array_equal(kth.read_frame(boxing17.files[0])[0], want)


def test_kth_pred_len_40_gives_40_target_frames(data):
    s = load("kth", data, pred_len=40)
    assert (s.size("train"), s.size("val"), s.size("test")) == (8, 6, 6)  # 50-frame test clips; training stays 10 -> 20
    assert next(s.batches("train", 2))[1].shape[1] == 20
    x, y = next(s.batches("test", 2))
    assert x.shape[1] == 10 and y.shape[1] == 40


def test_kth_recursive_rollout_feed_forward_and_native_recurrent(data):
    s = load("kth", data, pred_len=40, sizes={"test": 2, "val": 2})
    x, y = next(s.batches("test", 2))
    kth_spec = get_dataset("kth")
    # feed-forward: SimVP trained 10 -> 10, asked for 20 frames, predicts recursively (TAU Sec. 4.4)
    simvp = get_method("simvp")
    assert not simvp.recurrent
    hp = simvp.resolve_hparams("kth", tiny=True)
    torch.manual_seed(0)
    model = simvp.create_model(kth_spec.with_frames(out_frames=10), hp).eval()
    with torch.no_grad():
        pred = rollout(simvp, model, x, hp, 20)
        first = model(x)
        second = model(first)  # the next input is the last 10 frames of [x, first] = first
    assert pred.shape == (2, 20, 1, 128, 128)
    assert torch.allclose(pred[:, :10], first) and torch.allclose(pred[:, 10:], second, atol=1e-5)
    # recurrent: ConvLSTM rolls out natively to 40 frames, scored against the 40 true frames
    conv = get_method("convlstm")
    assert conv.recurrent
    hp = conv.resolve_hparams("kth", tiny=True)
    torch.manual_seed(0)
    model = conv.create_model(kth_spec, hp).eval()
    with torch.no_grad():
        pred = rollout(conv, model, x, hp, 40)
    assert pred.shape == (2, 40, 1, 128, 128) and bool(torch.isfinite(pred).all())  # raw, not clipped
    metrics = evaluate(Scorer(conv, model, hp, torch.device("cpu"), horizon=40, batch_size=2), s, "test").metrics
    assert np.isfinite(metrics["ssim"]) and np.isfinite(metrics["psnr"])


def test_kth_errors(tmp_path, data):
    with pytest.raises(BenchError, match=r"kth is missing: expected DATA/kth/<action>") as e:
        load("kth", tmp_path)
    one_line(e.value)
    (tmp_path / "kth" / "boxing").mkdir(parents=True)
    with pytest.raises(BenchError, match=r"has no folder for handclapping, handwaving, walking, jogging, running") as e:
        load("kth", tmp_path)
    one_line(e.value)
    bad = tmp_path / "bad"
    write_kth(bad, {1: 31, 16: 30, 17: 30})
    victim = bad / "kth" / "walking" / "person01_walking_d1_uncomp" / "image_0002.png"
    victim.write_bytes(b"\x89PNG broken")
    s = load("kth", bad, sizes={"train": 64})
    with pytest.raises(BenchError, match=r"image_0002.png: expected a readable image, found a corrupt") as e:
        all_batches(s, "train")
    one_line(e.value)


# ------------------------------------------------------------------------------------------------
# Human3.6M
# ------------------------------------------------------------------------------------------------


def test_human36m_walking_only_subject_splits(data):
    s = load("human36m", data)
    spec = get_dataset("human36m")
    assert (spec.in_frames, spec.out_frames, spec.frame_shape) == (4, 4, (3, 128, 128))
    assert spec.metric_scale == {"mse": 0.1, "mae": 0.01}
    assert (s.size("train"), s.size("val"), s.size("test")) == (2, 2, 2)  # Walking only, 2 clips per video
    x, y = next(s.batches("test", 2))  # S9: flat OpenSTL naming, 64x64 frames resized
    assert x.shape == (2, 4, 3, 128, 128) and y.shape == (2, 4, 3, 128, 128)
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    from bench.datasets import human36m

    videos = human36m.scan(data)
    assert {(v.subject, v.name) for v in videos} == {(1, "Walking.54138969"), (8, "Walking.54138969"),
                                                      (9, "Walking.54138969")}
    ids = {k: set(v.reshape(-1).tolist()) for k, v in s.clips.items()}
    assert not ids["train"] & ids["val"] and not ids["val"] & ids["test"] and not ids["train"] & ids["test"]
    assert [f for f in human36m.clip_frames(set(range(1, 77, 5)), 1, 76, 8)] == [
        list(range(1, 37, 5)), list(range(41, 77, 5))]


# ------------------------------------------------------------------------------------------------
# KITTI -> Caltech (hickle files read with h5py)
# ------------------------------------------------------------------------------------------------


def test_hickle_layouts_are_read(tmp_path):
    names = ["a", "bb", "a", "ccc", "bb"]
    for dump in (hickle3_dump, hickle5_dump):
        p = tmp_path / f"{dump.__name__}.hkl"
        dump(p, names)
        assert read_hickle_strings(p, "fix") == names


def test_kitti_caltech_clips_by_source(data):
    assert kitti_caltech.clip_starts(["a"] * 25 + ["b"] * 15, 11) == [3, 14, 29]
    s = load("kitti_caltech", data)
    spec = get_dataset("kitti_caltech")
    assert (spec.in_frames, spec.out_frames, spec.frame_shape) == (10, 1, (3, 128, 160))
    assert spec.metrics == ("mse", "ssim", "psnr")
    assert (s.size("train"), s.size("val"), s.size("test")) == (3, 2, 2)
    x, y = next(s.batches("test", 2))
    assert x.shape == (2, 10, 3, 128, 160) and y.shape == (2, 1, 3, 128, 160)
    # values are the stored uint8 frames / 255, channels first
    with h5py.File(data / "kitti_caltech" / "kitti_hkl" / "X_train.hkl") as f:
        raw = f["data_0"][3:14]
    first = s.store.get(s.clips["train"][0])
    assert np.array_equal(first, raw.transpose(0, 3, 1, 2))
    ids = {k: set(v.reshape(-1).tolist()) for k, v in s.clips.items()}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]


def test_kitti_caltech_errors(tmp_path):
    root = tmp_path
    write_kitti(root)
    (root / "kitti_caltech" / "caltech_hkl" / "sources_test.hkl").unlink()
    with pytest.raises(BenchError, match=r"sources_test.hkl is missing: expected a hickle file with the source") as e:
        load("kitti_caltech", root)
    one_line(e.value)
    hickle5_dump(root / "kitti_caltech" / "caltech_hkl" / "sources_test.hkl", ["x"] * 29)
    with pytest.raises(BenchError, match=r"expected 30 source names .* found 29"):
        load("kitti_caltech", root)
    xp = root / "kitti_caltech" / "kitti_hkl" / "X_train.hkl"
    xp.write_bytes(xp.read_bytes()[:5000])
    with pytest.raises(BenchError, match=r"X_train.hkl: expected a hickle \(HDF5\) file, found a file h5py cannot open") as e:
        load("kitti_caltech", root)
    one_line(e.value)
    hickle3_dump(xp, np.zeros((40, 64, 64, 3), np.uint8))
    with pytest.raises(BenchError, match=r"expected frames of shape \(N, 128, 160, 3\) uint8, found uint8 array of shape"):
        load("kitti_caltech", root)


# ------------------------------------------------------------------------------------------------
# Moving MNIST, standard protocol
# ------------------------------------------------------------------------------------------------


def test_mmnist_std_fixed_test_file_and_generated_train(data):
    s = load("mmnist_std", data, sizes={"train": 8, "val": 4})
    assert (s.size("train"), s.size("val"), s.size("test")) == (8, 4, 6)
    x, y = all_batches(s, "test", 4)
    seqs = np.load(data / "mmnist" / "mnist_test_seq.npy")
    assert torch.equal(x, torch.from_numpy(seqs[:10].transpose(1, 0, 2, 3)[:, :, None]).float() / 255)
    assert torch.equal(y, torch.from_numpy(seqs[10:].transpose(1, 0, 2, 3)[:, :, None]).float() / 255)
    assert s.info["digit_source"] == "mnist-idx"
    xt, yt = next(s.batches("train", 8))
    assert xt.shape == (8, 10, 1, 64, 64) and yt.shape == (8, 10, 1, 64, 64)
    sub = load("mmnist_std", data, sizes={"test": 3})
    ids = (all_batches(sub, "test")[0][:, 0, 0, 0, 0] * 255).round().int().tolist()
    assert len(ids) == 3 and ids == sorted(ids) and len(set(ids)) == 3


def test_mmnist_std_errors(tmp_path):
    write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte.gz", np.zeros((60, 28, 28)))
    with pytest.raises(BenchError, match=r"mnist_test_seq.npy is missing.*bench data download mmnist_std") as e:
        load("mmnist_std", tmp_path)
    one_line(e.value)
    (tmp_path / "mmnist").mkdir()
    np.save(tmp_path / "mmnist" / "mnist_test_seq.npy", np.zeros((20, 4, 64, 64), np.uint8))
    p = tmp_path / "mmnist" / "mnist_test_seq.npy"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(BenchError, match=r"expected \d+ bytes for shape \(20, 4, 64, 64\), found \d+ bytes"):
        load("mmnist_std", tmp_path)
    np.save(p, np.zeros((10, 4, 64, 64), np.float32))
    with pytest.raises(BenchError, match=r"found float32 array of shape \(10, 4, 64, 64\)"):
        load("mmnist_std", tmp_path)
    np.save(p, np.zeros((20, 4, 64, 64), np.uint8))
    with pytest.raises(BenchError, match="10 target frames"):
        load("mmnist_std", tmp_path, pred_len=20)


# ------------------------------------------------------------------------------------------------
# `bench data list/check` and an end-to-end run on fixture data
# ------------------------------------------------------------------------------------------------


def test_cli_list_and_check(bench, data, tmp_path):
    res = bench("data", "list", "--data-dir", str(data))
    assert res.exit_code == 0, res.output
    for name in ("taxibj", "kth", "human36m", "kitti_caltech", "mmnist_std", "mmnist"):
        assert name in res.output
    assert "missing" not in res.output
    res = bench("data", "list", "--data-dir", str(tmp_path))
    assert res.exit_code == 0 and "missing" in res.output and "To get it" in res.output
    res = bench("data", "check", "taxibj", "--data-dir", str(data))
    assert res.exit_code == 0, res.output
    assert "train+val: 40 sequences, the papers' full set has 19627" in res.output
    assert "val: 4 sequences, input (4, 2, 32, 32) -> target (4, 2, 32, 32)" in res.output
    res = bench("data", "check", "kitti_caltech", "--data-dir", str(data))
    assert res.exit_code == 0, res.output
    res = bench("data", "check", "kth", "--data-dir", str(tmp_path))
    assert res.exit_code == 2 and "kth is missing" in res.output
    res = bench("data", "check", "kthh", "--data-dir", str(tmp_path))
    assert res.exit_code == 2 and "did you mean 'kth'" in res.output


def test_end_to_end_run_on_taxibj_fixture(bench, data, tmp_path):
    res = bench("run", "--methods", "tau", "--datasets", "taxibj", "--tiny", "--quick", "--quiet", "--epochs", 1,
                "--data-dir", data, "--sizes", "train=8,val=4,test=4", "--results", tmp_path)
    assert res.exit_code == 0, res.output + str(res.exception)
    r = complete_result(tmp_path, "tau", "taxibj")
    assert r.complete and r.dataset.channels == 2 and r.spec.pred_len == 4
    assert r.dataset.sizes == {"train": 8, "val": 4, "test": 4}
    assert r.dataset.info["source"].endswith("dataset.npz")
    assert np.isfinite(r.test["mse"]) and 0 < r.test["ssim"] <= 1
    assert len(r.test_per_frame["mse"]) == 4
