"""Method configurations: one base plus per-dataset differences, builders without a second copy of
the defaults, and every resolved hyperparameter unchanged by the rewrite (:mod:`bench.spec.config`).

The golden (``tests/fixtures/method_config_golden.json``, written by ``tools/make_config_golden.py``
before the configurations were rewritten) holds, for every registered method key on every dataset
and on ``*``, with and without ``--tiny``, the resolved hyperparameters as ``repr`` (type-exact: the
run-spec hash sees ``1`` and ``1.0`` differently), and every method's declarations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.spec.config import configuration_problems, per_dataset
from bench.spec.method import MethodSpec
from bench.spec.registry import get_method, list_methods

GOLDEN = Path(__file__).parent / "fixtures" / "method_config_golden.json"


def resolved() -> dict:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    try:
        from make_config_golden import resolved_configurations
    finally:
        sys.path.pop(0)
    return resolved_configurations()


def test_every_resolved_configuration_equals_the_golden():
    want, got = json.loads(GOLDEN.read_text()), resolved()
    assert sorted(got["hparams"]) == sorted(want["hparams"]), "the registered method keys or datasets changed"
    changed = [f"{key} {mode}: {name} {want['hparams'][key][mode].get(name)} -> {got['hparams'][key][mode].get(name)}"
               for key in want["hparams"] for mode in ("full", "tiny")
               for name in set(want["hparams"][key][mode]) | set(got["hparams"][key][mode])
               if want["hparams"][key][mode].get(name) != got["hparams"][key][mode].get(name)]
    assert not changed, f"{len(changed)} resolved values changed, e.g. " + "; ".join(changed[:5])
    assert got["declarations"] == want["declarations"]


@pytest.mark.parametrize("name", list_methods())
def test_configuration_is_a_base_plus_differences(name):
    assert configuration_problems(get_method(name)) == []


@pytest.mark.parametrize("name", list_methods())
def test_in_tree_builders_take_no_defaults_of_their_own(name):
    """The registry passes every model key, so a default would be a second copy of the base."""
    import inspect

    params = list(inspect.signature(get_method(name).build).parameters.values())[1:]
    assert [p.name for p in params if p.default is not p.empty] == []


def _spec(hparams, build=None) -> MethodSpec:
    def default_build(data, hid, act):  # noqa: ANN001 - a toy builder
        raise AssertionError("not built")

    return MethodSpec(name="toy", build=build or default_build, hparams=hparams)


def test_problems_name_each_repeat_and_each_builder_disagreement():
    base = {"hid": 8, "act": "gelu", "lr": 0.01}
    assert configuration_problems(_spec({"*": base, "kth": {"hid": 16}})) == []
    assert configuration_problems(_spec({"*": base, "kth": {"hid": 8, "lr": 0.001}})) == [
        "toy: hparams['kth'] repeats the base value hid=8"]
    # a training default the base leaves to the harness counts as part of the base
    assert configuration_problems(_spec({"*": base, "kth": {"batch_size": 16}})) == [
        "toy: hparams['kth'] repeats the base value batch_size=16"]
    # type-exact: 8.0 is not the base's 8 (another hash)
    assert configuration_problems(_spec({"*": base, "kth": {"hid": 8.0}})) == []
    assert configuration_problems(_spec({"*": base, "kth": {"width": 3}})) == [
        "toy: hparams['kth'] sets width, which the base ('*') does not set"]

    def agrees(data, hid=8, act="gelu"):  # noqa: ANN001
        raise AssertionError

    def disagrees(data, hid=16, act="gelu"):  # noqa: ANN001
        raise AssertionError

    def lacks(data, hid):  # noqa: ANN001
        raise AssertionError

    def extra(data, hid, act, depth):  # noqa: ANN001
        raise AssertionError

    assert configuration_problems(_spec({"*": base}, agrees)) == []
    assert configuration_problems(_spec({"*": base}, disagrees)) == [
        "toy: the builder's default hid=16 disagrees with the base value 8; drop the default (the registry passes "
        "every key)"]
    assert configuration_problems(_spec({"*": base}, lacks)) == ["toy: the base sets act, which the builder does not take"]
    assert configuration_problems(_spec({"*": base}, extra)) == [
        "toy: the builder takes depth, which the base ('*') does not set"]


def test_per_dataset_tables_merge_key_by_key_and_refuse_a_value_given_twice():
    paper = {"kth": {"lr": 0.001, "epochs": 100}, "taxibj": {"lr": 0.005}}
    masks = {"kth": {"r0": 0.9}, "human36m": {"r0": 0.95}}
    assert per_dataset(paper, masks) == {"kth": {"lr": 0.001, "epochs": 100, "r0": 0.9}, "taxibj": {"lr": 0.005},
                                         "human36m": {"r0": 0.95}}
    assert per_dataset(paper, {"kth": {"lr": 0.001}}) == paper  # the same value twice is no conflict
    with pytest.raises(ValueError, match="kth: lr is given twice"):
        per_dataset(paper, {"kth": {"lr": 0.01}})
