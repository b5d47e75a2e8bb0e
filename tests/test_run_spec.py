"""Issue 11: a run is defined by everything that changes its numbers; nothing a user types destroys a result.

Each test reproduces a defect found by trying the CLI as a user would (see the issue) and fails on the
code that had it.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

import numpy as np
import pytest
import torch

from bench import store
from bench.errors import BenchError
from bench.spec.registry import get_dataset, get_method, parse_method_key
from bench.store.record import load_results, read_result
from bench.spec.run_spec import RunSpec, SpecOptions, resolve_run_spec
from run_helpers import comparable, complete_result, failed_result, only, run_dirs, work_dirs
from toy_data import write_idx

TINY = ["--datasets", "mmnist", "--tiny", "--quiet", "--sizes", "train=8,val=4,test=4", "--batch-size", "4"]


def spec_of(key: str = "simvp", seed: int = 0, **options) -> RunSpec:
    return resolve_run_spec(parse_method_key(key), get_dataset("mmnist"), seed, SpecOptions(**options))


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


def test_resume_refuses_a_checkpoint_of_other_data_settings(tmp_path):
    spec = spec_of(tiny=True, epochs=1)
    method = get_method("simvp")
    from bench.run.checkpoint import Progress, resume, save_last
    from bench.spec.choices import make_optimizer, make_scheduler

    data = get_dataset("mmnist")
    model = method.create_model(data, spec.hparams)
    opt = make_optimizer(list(model.parameters()), spec.hparams)
    sched = make_scheduler(opt, spec.hparams, 4)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    save_last(tmp_path, spec, 1, model, opt, sched, scaler, Progress(history=[{"epoch": 1}]))
    assert resume(tmp_path, spec, model, opt, sched, scaler).next_epoch == 2
    for other in (spec_of(tiny=True, epochs=1, data_seed=1), spec_of(tiny=True, epochs=1, sizes={"val": 2}),
                  spec_of(tiny=True, epochs=1, pred_len=12)):
        with pytest.raises(BenchError, match="another configuration .*differs in"):
            resume(tmp_path, other, model, opt, sched, scaler)


def test_a_different_data_seed_never_mixes_histories(bench, tmp_path, monkeypatch):
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
def test_every_override_is_checked_before_anything_runs(bench, tmp_path, option, message):
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


# ------------------------------------------------------------------------------------ nothing lost


@pytest.fixture(scope="module")
def finished_once(bench, tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", root)
    assert res.exit_code == 0, res.output
    return root


@pytest.fixture()
def finished(finished_once, tmp_path):
    """A results directory of its own holding one complete 1-epoch run (copied: trained once per module)."""
    root = shutil.copytree(finished_once, tmp_path / "results")
    return root, complete_result(root)


def _inject(method: str, field: str, make):
    spec = get_method(method)
    original = getattr(spec, field)
    object.__setattr__(spec, field, make(original))
    return lambda: object.__setattr__(spec, field, original)


def test_a_failed_forced_rerun_never_replaces_a_complete_result(bench, finished):
    root, before = finished

    def nan_loss(original):
        return lambda pred, target, hp: original(pred, target, hp) * float("nan")

    restore = _inject("simvp", "loss", nan_loss)
    try:
        res = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", root, "--force")
    finally:
        restore()
    assert res.exit_code == 1
    assert complete_result(root) == before  # still there, untouched
    failure = failed_result(root)
    assert failure.status == "failed" and "training loss became nan" in failure.error
    results, problems = load_results(root)
    assert problems == [] and sorted(r.status for r in results) == ["complete", "failed"]


def test_interrupting_a_forced_rerun_keeps_the_previous_result(bench, finished):
    root, before = finished

    def interrupt(original):
        return lambda pred, target, hp: (_ for _ in ()).throw(KeyboardInterrupt)

    restore = _inject("simvp", "loss", interrupt)
    try:
        res = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", root, "--force")
    finally:
        restore()
    assert res.exit_code == 130 and "previous results are intact" in res.stderr
    assert "start the forced re-runs over" in res.stderr and "resume" not in res.stderr  # what the same command does
    assert complete_result(root) == before
    # the forced run, done, replaces it in one step
    assert bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", root, "--force").exit_code == 0
    after = complete_result(root)
    assert after.timing != before.timing and comparable(after) == comparable(before)
    assert not work_dirs(root) and not list(root.rglob("*.replaced"))


def test_an_interrupted_swap_is_repaired(bench, finished):
    root, before = finished
    final = only(run_dirs(root))
    os.replace(final, store.replaced_dir(final))  # killed between the two renames of a --force commit
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", root)
    assert res.exit_code == 0 and "kept" in res.output
    assert complete_result(root) == before and not store.replaced_dir(final).exists()


def test_non_finite_predictions_fail_the_run_instead_of_scoring(bench, tmp_path):
    def inf_predictions(original):
        return lambda model, x, hp: original(model, x, hp) * float("inf")

    restore = _inject("simvp", "predict", inf_predictions)
    try:
        res = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", tmp_path)
    finally:
        restore()
    assert res.exit_code == 1 and not run_dirs(tmp_path)
    assert "non-finite" in failed_result(tmp_path).error


def test_the_sweep_goes_on_when_the_failure_record_cannot_be_written(bench, tmp_path, monkeypatch):
    def nan_loss(original):
        return lambda pred, target, hp: original(pred, target, hp) * float("nan")

    real_write = store.atomic_write_text

    def full_disk(path, text):
        if '"status": "failed"' in text:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(path, text)

    monkeypatch.setattr(store, "atomic_write_text", full_disk)
    restore = _inject("simvp", "loss", nan_loss)
    try:
        res = bench("run", "--methods", "simvp,tau", *TINY, "--epochs", 1, "--results", tmp_path)
    finally:
        restore()
    assert res.exit_code == 1 and "1 of 2 run(s) failed" in res.stderr
    assert "could not be written" in res.output and "No space left" in res.output
    assert complete_result(tmp_path, "tau").complete  # the next run of the sweep still ran


def test_long_labels_make_short_distinct_directory_names():
    a = "tau:" + ":".join(f"k{i}={'x' * 30}" for i in range(10))
    b = a[:-1] + "y"
    da, db = store.label_to_dirname(a), store.label_to_dirname(b)
    assert len(da.encode()) <= store.MAX_LABEL_DIR and da != db and ":" not in da


def test_files_are_created_with_the_users_umask(tmp_path):
    store.atomic_write_text(tmp_path / "x.json", "{}")
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------------------------ the record


def test_a_result_field_of_the_wrong_type_is_named(finished):
    root, _ = finished
    path = only(run_dirs(root)) / "result.json"
    text = path.read_text()
    path.write_text(text.replace('"train_loss": ', '"train_loss": "oops", "was": ', 1))
    with pytest.raises(BenchError, match=r"field history\[0\]\.train_loss: is 'oops', expected a finite number"):
        read_result(path)
    results, problems = load_results(root)
    assert results == [] and len(problems) == 1 and "history[0].train_loss" in problems[0]
    path.write_text(text.replace('"epochs": 1', '"epochs": 2', 1))  # an edited spec no longer matches its hash
    with pytest.raises(BenchError, match="spec_hash"):
        read_result(path)


def test_a_value_set_twice_is_refused_and_an_explicit_budget_is_not_capped(bench, tmp_path):
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


def test_a_finished_run_that_was_not_committed_is_committed_not_retrained(bench, finished):
    root, before = finished
    final = only(run_dirs(root))
    os.replace(final, store.partial_dir(final))  # killed after writing result.json, before the commit
    waiting, problems = load_results(root)  # counted once while it waits (issue 20); reading writes nothing
    assert problems == [] and [(r.spec, r.test) for r in waiting] == [(before.spec, before.test)]
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", root)
    assert res.exit_code == 0 and "kept" in res.output  # committed, then served: no epoch was trained again
    assert complete_result(root) == before and not work_dirs(root)


def test_an_unreadable_result_is_never_replaced_without_force(bench, finished):
    root, before = finished
    path = only(run_dirs(root)) / "result.json"
    path.write_text(path.read_text().replace('"schema": 2', '"schema": 3'))
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", root)
    assert res.exit_code == 1 and '"schema": 3' in path.read_text()  # left alone
    assert "cannot read" in failed_result(root).error and "--force" in failed_result(root).error
    assert bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", root, "--force").exit_code == 0
    assert complete_result(root).schema == 2


def test_best_epoch_weights_survive_a_crash_between_the_two_checkpoint_files(tmp_path):
    from bench.run.checkpoint import BEST, Progress, resume, save_best, save_last
    from bench.spec.choices import make_optimizer, make_scheduler

    spec = spec_of(tiny=True, epochs=3)
    data = get_dataset("mmnist")
    model = get_method("simvp").create_model(data, spec.hparams)
    opt = make_optimizer(list(model.parameters()), spec.hparams)
    sched, scaler = make_scheduler(opt, spec.hparams, 3), torch.amp.GradScaler("cpu", enabled=False)
    first = {k: v.clone() for k, v in model.state_dict().items()}
    save_last(tmp_path, spec, 1, model, opt, sched, scaler, Progress(history=[{"epoch": 1}], best_mse=5.0, best_epoch=1))
    save_best(tmp_path, 1, first)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    # epoch 2 is better: last.pt is written, then the process dies before best.pt
    save_last(tmp_path, spec, 2, model, opt, sched, scaler,
              Progress(history=[{"epoch": 1}, {"epoch": 2}], best_mse=4.0, best_epoch=2))
    progress = resume(tmp_path, spec, model, opt, sched, scaler)
    assert progress.best_epoch == 2
    assert all(torch.equal(progress.best_state[k], v) for k, v in model.state_dict().items())
    assert torch.load(tmp_path / BEST, weights_only=True)["epoch"] == 1


def test_a_plugin_reusing_an_in_tree_builder_is_still_another_source():
    import dataclasses

    from bench.spec.registry import add_method

    original = get_method("tau")
    with pytest.warns(UserWarning, match="refused"):
        add_method(dataclasses.replace(original, citation="An impostor"))
    assert get_method("tau") is original


def test_pretraining_cache_files_follow_the_umask(bench, tmp_path):
    res = bench("run", "--methods", "simvp:sm", *TINY, "--epochs", 1, "--quick", "--results", tmp_path)
    assert res.exit_code == 0, res.output
    (cache,) = (tmp_path / "_cache").rglob("*.pt")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o666 & ~_umask()


# ------------------------------------------------------------------------------------ found by trying the CLI


def test_a_result_copied_into_another_configuration_is_not_served(bench, finished):
    root, before = finished
    other = spec_of(tiny=True, epochs=2, batch_size=4, sizes={"train": 8, "val": 4, "test": 4})
    target = store.run_dir(root, other)
    target.parent.mkdir(parents=True)
    shutil.copytree(only(run_dirs(root)), target)  # the 1-epoch result under the 2-epoch configuration's name
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", 2, "--results", root)
    assert res.exit_code == 1 and "kept" not in res.output
    assert "belongs in another directory" in failed_result(root).error  # refused, not replaced, not served
    results, problems = load_results(root)
    assert any("belongs in another directory" in p for p in problems)
    assert [r.spec.epochs for r in results if r.complete] == [1]


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
def test_more_mistakes_are_one_line_before_anything_runs(bench, tmp_path, monkeypatch, args, message):
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
