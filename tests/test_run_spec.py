"""Issue 11: a run is defined by everything that changes its numbers; nothing a user types destroys a result.

Each test reproduces a defect found by trying the CLI as a user would (see the issue) and fails on the
code that had it.
"""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
import torch

from bench import store
from bench.spec.registry import get_dataset, get_method, parse_method_key
from bench.store.record import load_results
from bench.spec.run_spec import RunSpec
from run_helpers import bench, comparable, complete_result, only, spec_of, TINY, work_dirs
from toy_data import write_idx


# ------------------------------------------------------------------------------------ the spec


def test_spec_hash_covers_everything_that_changes_the_numbers():
    base = spec_of(tiny=True, epochs=2)
    assert base.hash == spec_of(tiny=True, epochs=2).hash  # stable
    assert base.hash == spec_of(tiny=True, epochs=2, seed=3).hash  # seeds of one configuration share it
    changed = {
        "full size": spec_of(epochs=2),
        "quick": spec_of(tiny=True, epochs=2, quick=True),
        "epochs": spec_of(tiny=True, epochs=3),
        "batch size": spec_of(tiny=True, epochs=2, batch_size=8),
        "--set": spec_of(tiny=True, epochs=2, sets={"lr": 0.02}),
        "key override": spec_of("simvp:lr=0.02", tiny=True, epochs=2),
        "variant": spec_of("tau:no-ddr", tiny=True, epochs=2),
        "data seed": spec_of(tiny=True, epochs=2, data_seed=1),
        "sizes": spec_of(tiny=True, epochs=2, sizes={"train": 16}),
        "horizon": spec_of(tiny=True, epochs=2, pred_len=12),
        "precision": spec_of(tiny=True, epochs=2, precision="bf16"),
    }
    hashes = {name: s.hash for name, s in changed.items()}
    assert base.hash not in hashes.values()
    assert len(set(hashes.values())) == len(hashes), hashes
    assert store.run_dir("r", base) != store.run_dir("r", changed["quick"])
    assert RunSpec.from_json(base.to_json()) == base


def test_quick_caps_stage_budgets_and_an_explicit_epochs_wins():
    quick = spec_of("plasm", quick=True, tiny=True)
    assert quick.epochs == 2 and quick.hparams["pretrain_epochs"] <= 2
    assert spec_of(quick=True, tiny=True, epochs=5).epochs == 5


def test_a_result_of_another_configuration_is_never_served(bench, tmp_path):
    first = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--quick", "--results", tmp_path)
    assert first.exit_code == 0, first.output
    for other in (["--epochs", 2, "--quick"], ["--epochs", 1], ["--epochs", 1, "--quick", "--set", "lr=0.02"]):
        res = bench("run", "--methods", "simvp", *TINY, *other, "--results", tmp_path)
        assert res.exit_code == 0, res.output
    results, problems = load_results(tmp_path)
    assert problems == [] and len(results) == 4 and len({r.spec.hash for r in results}) == 4
    by = {(r.spec.epochs, r.spec.quick, r.spec.hparams["lr"]): r for r in results}
    assert sorted(by) == [(1, False, 0.01), (1, True, 0.01), (1, True, 0.02), (2, True, 0.01)]
    assert all(len(r.history) == epochs for (epochs, _, _), r in by.items())
    assert by[(1, False, 0.01)].spec.quick is False  # the non-quick run is not labelled (or served as) quick
    # and the same configuration again is served from its own directory
    again = bench("run", "--methods", "simvp", *TINY, "--epochs", 2, "--quick", "--results", tmp_path)
    assert again.exit_code == 0 and "kept" in again.output


def test_a_different_data_seed_never_mixes_histories(tmp_path, monkeypatch):
    spec = get_method("simvp")
    original = spec.loss
    calls = {"n": 0}

    def interrupt_in_epoch_2(pred, target, hp):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(pred, target, hp)

    object.__setattr__(spec, "loss", interrupt_in_epoch_2)
    try:
        assert bench("run", "--methods", "simvp", *TINY, "--epochs", 2, "--results", tmp_path).exit_code == 130
    finally:
        object.__setattr__(spec, "loss", original)
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", 2, "--data-seed", 1, "--results", tmp_path)
    assert res.exit_code == 0 and "resuming" not in res.output
    fresh = complete_result(tmp_path)
    assert fresh.spec.data_seed == 1 and [h.epoch for h in fresh.history] == [1, 2]
    straight = bench("run", "--methods", "simvp", *TINY, "--epochs", 2, "--data-seed", 1, "--results",
                     tmp_path / "straight")
    assert straight.exit_code == 0
    assert comparable(fresh) == comparable(complete_result(tmp_path / "straight"))
    assert (only(work_dirs(tmp_path)) / "last.pt").exists()  # the data-seed-0 run waits, resumable


# ------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize("option, message", [
    ("lr=abc", "lr='abc'"),
    ("hid_S=0", "hid_S=0"),
    ("batch_size=0", "batch_size=0"),
    ("optimizer=foo", "one of adam, adamw, sgd"),
    ("epochs=1.5", "epochs=1.5"),
    ("epochs=True", "epochs=True"),
    ("lr=-1", "> 0"),
    ("incep_ker=3,0", "every element >= 1"),
])


def test_every_override_is_checked_before_anything_runs(tmp_path, option, message):
    for args in (["--methods", "simvp", "--set", option], ["--methods", f"simvp:{option.replace('3,0', '(3,0)')}"]):
        res = bench("run", *args, *TINY, "--epochs", 1, "--results", tmp_path)
        err = res.stderr.strip()
        assert res.exit_code == 2 and message in err and len(err.splitlines()) == 1, err
        assert "fix the value" in err
    assert not (tmp_path / "mmnist").exists()


def test_tuple_values_can_be_overridden():
    assert spec_of(tiny=True, sets={"incep_ker": (3, 5)}).hparams["incep_ker"] == (3, 5)
    key = parse_method_key("simvp:incep_ker=(3,7)")
    assert key.overrides == {"incep_ker": (3, 7)} and key.label == "simvp:incep_ker=(3,7)"
    from bench.cli.common import parse_sets, split_list

    assert parse_sets(["incep_ker=3,5,7", "lr=0.1,hid_S=4"]) == {"incep_ker": (3, 5, 7), "lr": 0.1, "hid_S": 4}
    assert split_list("simvp:incep_ker=(3,5),tau") == ["simvp:incep_ker=(3,5)", "tau"]


def test_a_configuration_the_builder_rejects_fails_up_front(bench, tmp_path):
    res = bench("run", "--methods", "simvp", "--set", "hid_S=7", "--set", "groups=2", *TINY, "--epochs", 1,
                "--results", tmp_path)  # 7 channels cannot be split in 2 groups
    err = res.stderr.strip()
    assert res.exit_code == 2 and len(err.splitlines()) == 1 and "simvp" in err, err
    assert not (tmp_path / "mmnist").exists()


def test_pred_len_beyond_the_data_fails_up_front(bench, tmp_path):
    res = bench("run", "--methods", "simvp", "--datasets", "taxibj", "--pred-len", 6, "--tiny", "--results", tmp_path)
    err = res.stderr.strip()
    assert res.exit_code == 2 and "--pred-len 6 exceeds the 4" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "taxibj").exists()  # refused before any data was read or any run started


@pytest.mark.parametrize("sizes", ["train=³", "train=٣", "val=-1", "test=1.5", "bogus=3"])
def test_bad_split_sizes_are_one_line(bench, tmp_path, sizes):
    res = bench("run", "--methods", "simvp", "--sizes", sizes, "--tiny", "--results", tmp_path)
    assert res.exit_code == 2 and "--sizes" in res.stderr and len(res.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------ the record


def test_a_value_set_twice_is_refused_and_an_explicit_budget_is_not_capped(tmp_path):
    res = bench("run", "--methods", "simvp:lr=0.01", "--set", "lr=0.1", *TINY, "--results", tmp_path)
    err = res.stderr.strip()
    assert res.exit_code == 2 and "lr is set twice" in err and len(err.splitlines()) == 1
    res = bench("run", "--methods", "simvp:epochs=3", "--epochs", 2, *TINY, "--results", tmp_path)
    assert res.exit_code == 2 and "epochs is set twice" in res.stderr
    assert spec_of("simvp:epochs=3", tiny=True, quick=True).epochs == 3  # the label says 3: it runs 3


def test_an_even_kernel_that_breaks_the_forward_fails_up_front(bench, tmp_path):
    res = bench("run", "--methods", "simvp:incep_ker=(4,)", *TINY, "--epochs", 1, "--results", tmp_path)
    err = res.stderr.strip()
    assert res.exit_code == 2 and len(err.splitlines()) == 1 and "cannot be built" in err, err
    assert not (tmp_path / "mmnist").exists()


def test_the_digit_source_is_part_of_the_spec(tmp_path):
    sklearn = spec_of(tiny=True, data_dir=str(tmp_path))
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((12, 28, 28)))  # 12 blank digits: the sequences use MNIST
    mnist = spec_of(tiny=True, data_dir=str(tmp_path))
    assert sklearn.data_source == {"digit_source": "sklearn-digits"}
    assert mnist.data_source["digit_source"] == "mnist-idx" and mnist.hash != sklearn.hash


def test_a_plugin_reusing_an_in_tree_builder_is_still_another_source():
    import dataclasses

    from bench.spec.registry import add_method

    original = get_method("tau")
    with pytest.warns(UserWarning, match="refused"):
        add_method(dataclasses.replace(original, citation="An impostor"))
    assert get_method("tau") is original


# ------------------------------------------------------------------------------------ found by trying the CLI


@pytest.mark.parametrize("args, message", [
    (["--methods", "simvp", "--set", "epochs=3", "--epochs", "1"], "epochs is set twice"),
    (["--methods", "simvp", "--set", "batch_size=2", "--batch-size", "4"], "batch_size is set twice"),
    (["--methods", "simvp", "--set", "lr=0.1", "--set", "lr=0.2"], "lr is set twice"),
    (["--methods", "simvp:lr=0.1:lr=0.2"], "sets lr twice"),
    (["--methods", "simvp", "--sizes", "train=8,train=16"], "gives train twice"),
    (["--methods", "simvp", "--sizes", ""], "--sizes is empty"),
    (["--methods", "simvp", "--set", ""], "--set with an empty value"),
    (["--methods", "simvp", "--seeds", "99999999999999999999999"], "--seeds"),
    (["--methods", "simvp", "--seeds", "1,1"], "a seed twice"),
    (["--methods", "simvp", "--datasets", "kth"], "dataset 'kth' has no data"),
    (["--methods", "simvp", "--results", ""], "--results is empty"),
])


def test_more_mistakes_are_one_line_before_anything_runs(tmp_path, monkeypatch, args, message):
    monkeypatch.delenv("BENCH_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    res = bench("run", *args, "--tiny", "--epochs", 1, *([] if "--results" in args else ["--results", tmp_path / "r"]))
    err = res.stderr.strip()
    assert res.exit_code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.rglob("result.json")) and not (tmp_path / "mmnist").exists()


def test_a_longer_horizon_on_generated_moving_mnist(bench, tmp_path):
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--pred-len", 12, "--results", tmp_path)
    assert res.exit_code == 0, res.output
    r = complete_result(tmp_path)
    assert r.spec.pred_len == 12 and len(r.test_per_frame["mse"]) == 12
    from bench.spec.registry import DataConfig

    data = get_dataset("mmnist")
    short = next(iter(data.load(data, DataConfig(sizes={"val": 4})).batches("val", 4)))
    long = next(iter(data.load(data, DataConfig(sizes={"val": 4}, pred_len=12)).batches("val", 4)))
    assert long[1].shape[1] == 12 and torch.equal(long[0], short[0]) and torch.equal(long[1][:, :10], short[1])
    assert spec_of(tiny=True, pred_len=10).hash == spec_of(tiny=True).hash  # the dataset's own horizon


def test_the_pretraining_cache_key_depends_on_the_digit_source():
    from bench.baselines.simvp import SIMVP_SM
    from bench.blocks.masked_pretrain import pretrain_key

    hp = spec_of("simvp:sm", tiny=True).hparams
    data = get_dataset("mmnist")
    keys = {pretrain_key(SIMVP_SM, data, hp, 0, {"data_source": src}) for src in
            ({"digit_source": "sklearn-digits"}, {"digit_source": "mnist-idx", "digit_file_bytes": 9912422})}
    assert len(keys) == 2


def test_an_unwritable_run_directory_is_one_line(bench, tmp_path, monkeypatch):
    def denied(self):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self.path))

    monkeypatch.setattr(store.RunLock, "acquire", denied)
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", tmp_path)
    assert res.exit_code == 1 and "cannot write under" in res.output and "Traceback" not in res.output
