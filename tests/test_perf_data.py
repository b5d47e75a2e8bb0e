"""``bench perf --data``: delivered sequences/s beside each method's need, and the synthetic files it measures on."""

from __future__ import annotations

import json

import pytest
import torch

from bench.cost import data_fixtures, data_need
from bench.spec.registry import DataConfig, get_dataset
from bench.spec.splits import raw_batches
from dataset_files import write_taxibj


def test_the_need_is_the_sustained_throughput_over_six_times_the_counted_flops(bench, tmp_path, monkeypatch):
    write_taxibj(tmp_path / "data")
    monkeypatch.setattr(data_need, "method_flops", lambda key, data: 10**9)  # the count itself: tests of the audit
    res = bench("perf", "--data", "--data-dir", tmp_path / "data", "--datasets", "taxibj", "--methods", "simvp,tau",
                "--workers", "0", "--seconds", "0.05", "--results", tmp_path / "results")
    assert res.exit_code == 0, res.output
    record = json.loads(next((tmp_path / "results" / "perf").glob("perf-data-*.json")).read_text())
    (taxibj,) = record["datasets"]
    assert taxibj["needs"] == {"simvp": pytest.approx(330e12 / 6e9), "tau": pytest.approx(330e12 / 6e9)}  # 55,000/s
    delivered = {d["setting"]: d["sequences_per_s"] for d in taxibj["deliveries"]}
    assert set(delivered) == {"default of a CUDA run (0 workers)", "0 worker processes"}
    ratios = taxibj["verdict"]["ratios"]
    assert all(ratios[k] == pytest.approx(v / (330e12 / 6e9)) for k, v in delivered.items())
    assert "55,000" in res.output and "bench perf --data" in res.output
    bad = bench("perf", "--data", "--workers", "0,x", "--results", tmp_path / "results")
    assert bad.exit_code == 2 and "--workers '0,x' is invalid" in bad.output


@pytest.mark.slow
def test_the_synthetic_files_load_through_the_real_loaders(tmp_path, monkeypatch):
    """The writers follow each dataset's documented layout: the loaders read them (small sizes here)."""
    monkeypatch.setattr(data_fixtures, "KTH_PERSONS", (1, 16, 17))
    monkeypatch.setattr(data_fixtures, "H36M_SUBJECTS", (1, 8, 9))
    monkeypatch.setitem(data_fixtures.SIZES, "kth", {"videos": 18, "frames_per_video": 31})
    monkeypatch.setitem(data_fixtures.SIZES, "human36m", {"videos": 12, "frames_per_video": 16})
    monkeypatch.setitem(data_fixtures.SIZES, "taxibj", {"train": 40, "test": 6})
    monkeypatch.setitem(data_fixtures.SIZES, "kitti_caltech", {"train": 30, "val": 24, "test": 24})
    lines: list[str] = []
    for name, frames in (("kth", (1, 128, 128)), ("human36m", (3, 128, 128)), ("taxibj", (2, 32, 32)),
                         ("kitti_caltech", (3, 128, 160))):
        assert data_fixtures.ensure_fixture(name, tmp_path, lines.append)
        spec = get_dataset(name)
        splits = spec.load(spec, DataConfig(data_dir=str(tmp_path), log=lines.append))
        x, y = next(iter(raw_batches(splits, "train", 2)))
        assert x.shape == (2, spec.in_frames, *frames) and y.shape == (2, spec.out_frames, *frames), name
        assert float(torch.as_tensor(x, dtype=torch.float32).std()) > 0, name
    assert not data_fixtures.ensure_fixture("mmnist", tmp_path, lines.append)  # generated: no files
    written = len(lines)
    assert data_fixtures.ensure_fixture("kth", tmp_path, lines.append) and len(lines) == written  # once
