"""The data path: the same batches whatever the worker count, the decoded-frame cache, exact uint8 -> float.

Fixtures are the tiny on-disk datasets of ``dataset_files.py``; every loader is the one a run uses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.datafiles import frame_cache
from bench.datasets import kth
from bench.errors import BenchError
from bench.spec.batching import LoaderSettings
from bench.spec.registry import DataConfig, get_dataset
from bench.spec.splits import raw_batches, to_unit_float, unit_table
from dataset_files import one_line, write_kth, write_taxibj

SMALL_KTH = {1: 31, 16: 30, 17: 30}  # person -> frames per video: 6 train clips, 6 val, 6 test


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("loader-data")
    write_kth(root, SMALL_KTH)
    write_taxibj(root)
    return root


def raw(name: str, root: Path | None, workers: int, split: str = "train", epoch: int = 2, **kw) -> list:
    spec = get_dataset(name)
    config = DataConfig(data_dir=str(root) if root else None, seed=5, loader=LoaderSettings(workers=workers), **kw)
    return list(raw_batches(spec.load(spec, config), split, 4, epoch))


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(a, b))


def test_the_same_seed_gives_the_same_batches_whatever_the_worker_count(data):
    cases = [("kth", data, "train", {}), ("taxibj", data, "train", {"sizes": {"train": 24}}),
             ("mmnist", None, "train", {"sizes": {"train": 260, "val": 8, "test": 8}})]  # two generator chunks
    for name, root, split, kw in cases:
        inline, two = raw(name, root, 0, split, **kw), raw(name, root, 2, split, **kw)
        assert len(inline) > 1 and same(inline, two), name
        assert inline[0][0].dtype == (torch.float32 if name == "taxibj" else torch.uint8)
    assert not same(raw("kth", data, 0, epoch=1), raw("kth", data, 0, epoch=2))  # reshuffled per epoch


def _counting(monkeypatch) -> list[Path]:
    """Replace kth.read_frame by a counting one (the loader passes it to the frame cache's build)."""
    calls: list[Path] = []
    real = kth.read_frame

    def read_frame(path: Path) -> np.ndarray:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(kth, "read_frame", read_frame)
    return calls


def load_kth(root: Path, lines: list[str], workers: int = 0):
    spec = get_dataset("kth")
    return spec.load(spec, DataConfig(data_dir=str(root), seed=1, loader=LoaderSettings(workers=workers),
                                      log=lines.append))


def all_frames(splits) -> torch.Tensor:
    return torch.cat([torch.cat([x, y], 1) for x, y in raw_batches(splits, "val", 8)])


def copy_kth(data: Path, tmp_path: Path) -> Path:
    shutil.copytree(data / "kth", tmp_path / "kth")
    return tmp_path


def test_frames_are_decoded_once_then_read_from_the_cache_and_rebuilt_when_a_file_changes(data, tmp_path, monkeypatch):
    copy_kth(data, tmp_path)
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    calls = _counting(monkeypatch)
    lines: list[str] = []
    first = all_frames(load_kth(tmp_path, lines))
    n_files = sum(1 for _ in (tmp_path / "kth").rglob("*.png"))
    assert len(calls) == n_files and len(lines) == 1 and f"decoding its {n_files} frames once" in lines[0]
    again = all_frames(load_kth(tmp_path, lines, workers=2))  # a later run, worker processes reading the map
    assert len(calls) == n_files and len(lines) == 1 and torch.equal(first, again)
    victim = tmp_path / "kth" / "boxing" / "person16_boxing_d1_uncomp" / "image_0001.png"
    Image.fromarray(np.full((128, 128), 7, dtype=np.uint8)).save(victim)  # the first frame of a validation clip
    changed = all_frames(load_kth(tmp_path, lines))
    assert len(lines) == 2 and "source files changed since it was built; rebuilding" in lines[1]
    assert len(calls) == 2 * n_files and not torch.equal(first, changed)
    assert bool((changed == 7).all(dim=(-1, -2, -3)).any())  # the new frame is served
    caches = list((frame_cache.cache_root() / frame_cache.FOLDER).glob("kth-*.npy"))
    assert len(caches) == 1  # the stale cache of this folder is gone


def test_a_failed_build_leaves_no_cache_and_an_unwritable_cache_decodes_in_memory(data, tmp_path, monkeypatch):
    copy_kth(data, tmp_path)
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(frame_cache, "CHUNK", 16)  # several chunks: the failure comes after some are written
    real, seen = kth.read_frame, []

    def failing(path: Path) -> np.ndarray:
        seen.append(path)
        if len(seen) == 100:
            raise BenchError(f"{path}: expected a readable image, found a corrupt file; re-extract it")
        return real(path)

    monkeypatch.setattr(kth, "read_frame", failing)
    lines: list[str] = []
    with pytest.raises(BenchError, match="expected a readable image") as e:
        all_frames(load_kth(tmp_path, lines))
    one_line(e.value)
    left = [p.name for p in (tmp_path / "cache" / frame_cache.FOLDER).iterdir() if p.suffix != ".lock"]
    assert left == []  # no cache, no temporary file
    monkeypatch.setattr(kth, "read_frame", real)
    cached = all_frames(load_kth(tmp_path, lines))
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "not-a-folder"))
    in_memory = all_frames(load_kth(tmp_path, lines))
    assert "cannot write the frame cache" in lines[-1] and "decoded in memory" in lines[-1]
    assert torch.equal(cached, in_memory)


def test_uint8_to_float_gives_the_cpu_values_on_every_device():
    levels = torch.arange(256).to(torch.uint8)
    assert torch.equal(unit_table(torch.device("cpu")), levels.to(torch.float32).div_(255.0))  # bit for bit
    assert torch.equal(to_unit_float(levels), unit_table(torch.device("cpu")))
    if torch.cuda.is_available():
        assert torch.equal(to_unit_float(levels.cuda()).cpu(), to_unit_float(levels))


def test_a_corrupt_frame_found_by_a_worker_is_one_line(data, tmp_path, monkeypatch):
    copy_kth(data, tmp_path)
    (tmp_path / "kth" / "walking" / "person01_walking_d1_uncomp" / "image_0002.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "not-a-folder"))  # no cache: the worker decodes as it reads
    lines: list[str] = []
    splits = load_kth(tmp_path, lines, workers=1)
    with pytest.raises(BenchError, match=r"image_0002.png: expected a readable image") as e:
        list(raw_batches(splits, "train", 4))
    one_line(e.value)
    assert "cannot write the frame cache" in lines[0]


@pytest.mark.slow
def test_workers_is_a_run_option_outside_the_run_spec(bench, trained_run, tmp_path):
    from conftest import TRAINED_RUN_ARGS
    from run_helpers import comparable, complete_result, run_dirs

    res = bench("run", *TRAINED_RUN_ARGS, "--workers", "2", "--results", tmp_path)
    assert res.exit_code == 0, res.output
    mine, shared = run_dirs(tmp_path)[0], run_dirs(trained_run)[0]
    assert mine.relative_to(tmp_path) == shared.relative_to(trained_run)  # the same spec hash
    assert comparable(complete_result(tmp_path)) == comparable(complete_result(trained_run))  # the same numbers
    bad = bench("run", *TRAINED_RUN_ARGS, "--workers", "-1", "--results", tmp_path / "other")
    assert bad.exit_code == 2 and "--workers -1 is invalid" in one_line_output(bad.output)


def one_line_output(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]
