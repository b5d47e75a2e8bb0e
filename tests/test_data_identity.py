"""Issue 20: the identity of the data a run read is in its spec, its result and the report's grouping.

A result computed on other data must never be served as "kept" (the Moving MNIST digit file was
identified by its byte size only, and MNIST and Fashion-MNIST have the same size; the file-backed
datasets had no data identity at all), and the report never puts runs on different data in one
table. The digest cache must make the second resolve cost a ``stat`` per file, and must notice a
file that changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.datafiles import identity as data_identity
from bench import store
from bench.spec.registry import DataConfig, get_dataset, parse_method_key
from bench.store.record import read_result
from bench.spec.run_spec import SpecOptions, resolve_run_spec
from run_helpers import complete_result, run_dirs
from toy_data import write_idx

sys.path.insert(0, str(Path(__file__).parent))
from report_builders import make_result, metrics, write_result  # noqa: E402
from dataset_files import write_human36m, write_kitti, write_kth, write_mmnist_std, write_taxibj  # noqa: E402

TINY = ["--methods", "simvp", "--tiny", "--quiet", "--epochs", "1", "--sizes", "train=4,val=2,test=2",
        "--batch-size", "2"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_raw_idx(path: Path, seed: int, n: int = 24) -> None:
    """An uncompressed MNIST-format file: its byte size depends on the image count only (like MNIST and
    Fashion-MNIST), so two seeds give other digits of exactly the same size."""
    write_idx(path, np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8))


def identity(dataset: str, root: Path) -> dict:
    data = get_dataset(dataset)
    return dict(data.source_identity(DataConfig(data_dir=str(root))))


@pytest.fixture
def no_racy_window(monkeypatch):
    """Cache digests of files written just now (the tests write them; see bench.datafiles.identity.RACY_NS)."""
    monkeypatch.setattr(data_identity, "RACY_NS", 0)


# ---------------------------------------------------------------------------------------- bench run


def test_a_result_on_other_digits_of_the_same_size_is_not_served(bench, tmp_path):
    data, results = tmp_path / "data", tmp_path / "results"
    mnist = data / "train-images-idx3-ubyte"
    write_raw_idx(mnist, seed=0)
    res = bench("run", *TINY, "--data-dir", data, "--results", results)
    assert res.exit_code == 0, res.output
    first = complete_result(results)
    assert first.spec.data_source == {"digit_source": "mnist-idx", "sha256": sha256(mnist)}  # in result.json's spec
    size = mnist.stat().st_size
    write_raw_idx(mnist, seed=1)  # "Fashion-MNIST": other digits, the same byte size
    assert mnist.stat().st_size == size
    res = bench("run", *TINY, "--data-dir", data, "--results", results)
    assert res.exit_code == 0 and "skipped" not in res.output, res.output  # trained, not served
    runs = [read_result(d / store.RESULT_FILE) for d in run_dirs(results)]
    assert sorted(r.spec.data_source["sha256"] for r in runs) == sorted([first.spec.data_source["sha256"], sha256(mnist)])
    res = bench("run", *TINY, "--data-dir", data, "--results", results)  # the same data again: served
    assert res.exit_code == 0 and "skipped" in res.output, res.output


def test_the_bundled_digits_keep_their_identity_and_hash(tmp_path):
    """Results on the bundled digits (no MNIST file) stay served: their spec is what it was before digests."""
    key, data = parse_method_key("simvp"), get_dataset("mmnist")
    without = resolve_run_spec(key, data, 0, SpecOptions(tiny=True))
    empty_dir = resolve_run_spec(key, data, 0, SpecOptions(tiny=True, data_dir=str(tmp_path)))
    assert without.data_source == empty_dir.data_source == {"digit_source": "sklearn-digits"}
    assert without.hash == empty_dir.hash


def test_the_file_backed_datasets_are_identified_by_their_bytes(tmp_path):
    """Every file-backed dataset: an identity that changes with one file's bytes (same size), and that does
    not depend on where the data directory is."""
    root = tmp_path / "a"
    write_taxibj(root)
    write_kth(root, frames={1: 3, 17: 3})
    write_human36m(root)
    write_kitti(root)
    write_mmnist_std(root, n_test=2)
    one_file = {"taxibj": root / "taxibj" / "dataset.npz", "kth": root / "kth" / "walking" /
                "person17_walking_d1_uncomp" / "image_0002.png",
                "human36m": root / "human36m" / "images" / "S9_Walking.54138969_000006.png",
                "kitti_caltech": root / "kitti_caltech" / "caltech_hkl" / "X_test.hkl",
                "mmnist_std": root / "mmnist" / "mnist_test_seq.npy"}
    before = {name: identity(name, root) for name in one_file}
    assert before["taxibj"] == {"sha256": sha256(one_file["taxibj"])}
    assert before["kth"]["files"] == 6 * 2 * 3 and before["kitti_caltech"]["files"] == 6
    assert before["mmnist_std"]["files"] == 2
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved)
    assert {name: identity(name, moved) for name in one_file} == before  # names, not paths
    for name, path in one_file.items():
        raw = bytearray(path.read_bytes())
        raw[-1] ^= 0xFF  # one byte of one file, the same size
        path.write_bytes(bytes(raw))
        assert identity(name, root)["sha256"] != before[name]["sha256"], name


def test_human36m_layouts_of_the_same_frames_have_one_identity(tmp_path):
    write_human36m(tmp_path)
    flat = identity("human36m", tmp_path)
    base = tmp_path / "human36m"
    for p in sorted((base / "images").glob("S9_*")):  # the flat layout -> the nested one
        subject, video, frame = p.stem.split("_")
        target = base / subject / video / f"{frame}{p.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        p.rename(target)
    assert identity("human36m", tmp_path) == flat


def test_a_taxibj_result_on_other_data_is_not_served(bench, tmp_path):
    data, results = tmp_path / "data", tmp_path / "results"
    write_taxibj(data, n_train=20, n_test=4)
    args = ["run", *TINY, "--datasets", "taxibj", "--data-dir", data, "--results", results]
    assert bench(*args).exit_code == 0
    write_taxibj(data, n_train=20, n_test=4, Y_test=np.zeros((4, 4, 2, 32, 32)))  # other targets, same shapes
    res = bench(*args)
    assert res.exit_code == 0 and "skipped" not in res.output, res.output
    assert len({read_result(d / store.RESULT_FILE).spec.data_source["sha256"]
                for d in run_dirs(results, dataset="taxibj")}) == 2


# ---------------------------------------------------------------------------------------- the cache


def test_the_second_resolve_reads_no_bytes_and_a_changed_file_is_read_again(tmp_path, monkeypatch, no_racy_window):
    write_kth(tmp_path, frames={1: 3, 17: 3})
    reads = []
    real = data_identity.sha256_of_file
    monkeypatch.setattr(data_identity, "sha256_of_file", lambda p: reads.append(Path(p)) or real(p))
    first = identity("kth", tmp_path)
    assert len(reads) == 36
    reads.clear()
    assert identity("kth", tmp_path) == first and reads == []  # a stat per file
    frame = tmp_path / "kth" / "boxing" / "person01_boxing_d1_uncomp" / "image_0001.png"
    st = frame.stat()
    raw = bytearray(frame.read_bytes())
    raw[-1] ^= 0xFF
    frame.write_bytes(bytes(raw))
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: only ctime tells
    changed = identity("kth", tmp_path)
    assert reads == [frame] and changed != first


def test_a_file_changed_just_now_is_not_cached(tmp_path, monkeypatch):
    mnist = tmp_path / "train-images-idx3-ubyte"
    write_raw_idx(mnist, seed=0)  # mtime: now, within the racy window
    reads = []
    real = data_identity.sha256_of_file
    monkeypatch.setattr(data_identity, "sha256_of_file", lambda p: reads.append(p) or real(p))
    identity("mmnist", tmp_path)
    identity("mmnist", tmp_path)
    assert len(reads) == 2


@pytest.mark.parametrize("damage", ["garbage", "wrong digest", "fifo", "unwritable"])
def test_a_broken_or_unwritable_cache_is_ignored(tmp_path, monkeypatch, no_racy_window, damage):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    mnist = tmp_path / "data" / "train-images-idx3-ubyte"
    write_raw_idx(mnist, seed=0)
    truth = identity("mmnist", tmp_path / "data")
    assert truth["sha256"] == sha256(mnist)
    (cache_file,) = (tmp_path / "cache").rglob("*.json")
    if damage == "garbage":
        cache_file.write_text("{" * 5000)
    elif damage == "wrong digest":  # not ours to trust: a well-formed entry is only used if its key matches
        text = cache_file.read_text().replace(truth["sha256"], "0" * 64)
        cache_file.write_text(text)
        write_raw_idx(mnist, seed=1)
        truth = {**truth, "sha256": sha256(mnist)}
    elif damage == "fifo":
        cache_file.unlink()
        os.mkfifo(cache_file)
    else:
        shutil.rmtree(tmp_path / "cache")
        (tmp_path / "cache").write_text("a file where the cache directory would be")
    assert identity("mmnist", tmp_path / "data") == truth


# ---------------------------------------------------------------------------------------- the report


def test_the_report_never_puts_runs_on_different_data_in_one_table(bench, tmp_path):
    for seed, digest in ((0, "a" * 64), (1, "a" * 64), (0, "b" * 64)):
        r = make_result("simvp", seed, metrics(1.0 + seed + (digest[0] == "b")))
        spec = replace(r.spec, data_source={"digit_source": "mnist-idx", "sha256": digest})
        write_result(tmp_path, r.replace(spec=spec, spec_hash=spec.hash))
    res = bench("report", "--results", tmp_path, "--format", "md,csv", "--no-figures")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "report" / "report.md").read_text()
    headings = [line for line in md.splitlines() if line.startswith("#") and "mmnist[" in line]
    assert any("data sha256 aaaaaaaaaaaa" in h for h in headings) and any("data sha256 bbbbbbbbbbbb" in h
                                                                          for h in headings), headings
    csv = (tmp_path / "report" / "report.csv").read_text().splitlines()
    ours = [line for line in csv if ",simvp," in line and "data sha256" in line]
    assert sum("aaaaaaaaaaaa" in line for line in ours) >= 1 and sum("bbbbbbbbbbbb" in line for line in ours) >= 1
    assert not any("aaaaaaaaaaaa" in line and "bbbbbbbbbbbb" in line for line in ours)


def test_a_sweep_identifies_its_data_once(tmp_path):
    """One identity per dataset and command, not per method and seed (a directory dataset is scanned each time)."""
    from bench.cli.common import resolve_runs, resolve_targets
    from bench.datasets import taxibj

    write_taxibj(tmp_path, n_train=20, n_test=4)
    calls = []
    real = taxibj.source_identity
    keys, datasets = resolve_targets("simvp", "taxibj", {})
    datasets = [replace(datasets[0], source_identity=lambda config: calls.append(config) or real(config))]
    runs = resolve_runs(keys, datasets, [0, 1, 2], SpecOptions(tiny=True, data_dir=str(tmp_path)))
    assert len(runs) == 3 and len(calls) == 1
    assert {spec.data_source["sha256"] for spec, _ in runs} == {sha256(tmp_path / "taxibj" / "dataset.npz")}


def test_the_cache_forgets_files_that_are_gone(tmp_path, no_racy_window):
    import json

    write_kth(tmp_path, frames={1: 3, 17: 3})
    identity("kth", tmp_path)
    shutil.rmtree(tmp_path / "kth" / "running")  # a re-extraction without one action
    (tmp_path / "kth" / "running").mkdir()
    frame = tmp_path / "kth" / "boxing" / "person01_boxing_d1_uncomp" / "image_0001.png"
    frame.write_bytes(frame.read_bytes() + b"\0")  # a changed file: the cache is written again
    identity("kth", tmp_path)
    (cache_file,) = Path(os.environ["BENCH_CACHE"]).rglob(
        hashlib.sha1(os.path.abspath(tmp_path / "kth").encode()).hexdigest()[:20] + ".json")
    kept = json.loads(cache_file.read_text())["files"]
    assert len(kept) == 30 and not any("/running/" in k for k in kept)


def test_data_check_shows_the_identity_a_run_will_record(bench, tmp_path):
    write_taxibj(tmp_path, n_train=20, n_test=4)
    res = bench("data", "check", "taxibj", "--data-dir", tmp_path)
    assert res.exit_code == 0, res.output
    digest = sha256(tmp_path / "taxibj" / "dataset.npz")
    assert f"data identity recorded in every run's spec: sha256 {digest}" in res.output.replace("\n", " "), res.output
