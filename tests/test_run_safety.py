"""Issue 11, nothing a user types destroys a result: forced re-runs, interruptions and failures never
replace a complete result, a result of another configuration is never served, files follow the umask.

Each test reproduces a defect found by trying the CLI as a user would and fails on the code that had it.
"""

from __future__ import annotations

import errno
import os
import stat

import pytest

from bench import store
from bench.errors import BenchError
from bench.spec.registry import get_method
from bench.store.record import load_results, read_result
from run_helpers import bench, comparable, complete_result, failed_result, only, run_dirs, spec_of, TINY, work_dirs


# ------------------------------------------------------------------------------------ nothing lost


@pytest.fixture()
def finished(tmp_path):
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", tmp_path)
    assert res.exit_code == 0, res.output
    return tmp_path, complete_result(tmp_path)


def _inject(method: str, field: str, make):
    spec = get_method(method)
    original = getattr(spec, field)
    object.__setattr__(spec, field, make(original))
    return lambda: object.__setattr__(spec, field, original)


def test_a_failed_forced_rerun_never_replaces_a_complete_result(finished):
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


def test_interrupting_a_forced_rerun_keeps_the_previous_result(finished):
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


def test_an_interrupted_swap_is_repaired(finished):
    root, before = finished
    final = only(run_dirs(root))
    os.replace(final, store.replaced_dir(final))  # killed between the two renames of a --force commit
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", root)
    assert res.exit_code == 0 and "kept" in res.output
    assert complete_result(root) == before and not store.replaced_dir(final).exists()


def test_non_finite_predictions_fail_the_run_instead_of_scoring(tmp_path):
    def inf_predictions(original):
        return lambda model, x, hp: original(model, x, hp) * float("inf")

    restore = _inject("simvp", "predict", inf_predictions)
    try:
        res = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", tmp_path)
    finally:
        restore()
    assert res.exit_code == 1 and not run_dirs(tmp_path)
    assert "non-finite" in failed_result(tmp_path).error


def test_the_sweep_goes_on_when_the_failure_record_cannot_be_written(tmp_path, monkeypatch):
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


def test_a_finished_run_that_was_not_committed_is_committed_not_retrained(finished):
    root, before = finished
    final = only(run_dirs(root))
    os.replace(final, store.partial_dir(final))  # killed after writing result.json, before the commit
    waiting, problems = load_results(root)  # counted once while it waits (issue 20); reading writes nothing
    assert problems == [] and [(r.spec, r.test) for r in waiting] == [(before.spec, before.test)]
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", root)
    assert res.exit_code == 0 and "kept" in res.output  # committed, then served: no epoch was trained again
    assert complete_result(root) == before and not work_dirs(root)


def test_an_unreadable_result_is_never_replaced_without_force(finished):
    root, before = finished
    path = only(run_dirs(root)) / "result.json"
    path.write_text(path.read_text().replace('"schema": 2', '"schema": 3'))
    res = bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", root)
    assert res.exit_code == 1 and '"schema": 3' in path.read_text()  # left alone
    assert "cannot read" in failed_result(root).error and "--force" in failed_result(root).error
    assert bench("run", "--methods", "simvp", *TINY, "--epochs", 1, "--results", root, "--force").exit_code == 0
    assert complete_result(root).schema == 2


def test_pretraining_cache_files_follow_the_umask(tmp_path):
    res = bench("run", "--methods", "simvp:sm", *TINY, "--epochs", 1, "--quick", "--results", tmp_path)
    assert res.exit_code == 0, res.output
    (cache,) = (tmp_path / "_cache").rglob("*.pt")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o666 & ~_umask()


def test_a_result_copied_into_another_configuration_is_not_served(finished):
    import shutil

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
