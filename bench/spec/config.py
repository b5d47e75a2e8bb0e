"""A method's paper configuration: one base, and per dataset only what differs from it.

``MethodSpec.hparams`` maps ``"*"`` to the method's base configuration (every model hyperparameter
and the training recipe of its paper's main benchmark) and a dataset name to the values that
dataset changes; :meth:`MethodSpec.resolve_hparams` lays them over each other (``TRAIN_DEFAULTS <
base < dataset < --tiny < variant < overrides``). Each fact is then written once::

    hparams={"*": {"hid": 64, "lr": 0.01, "epochs": 2000},
             "taxibj": {"lr": 0.001, "epochs": 50}}          # not {"hid": 64, "lr": 0.001, ...}

and the builder takes the model hyperparameters without defaults of its own (``def build(data, hid)``):
the registry passes every one, so a default there would be a second copy of the base that nothing
keeps equal to it.

:func:`per_dataset` merges several per-dataset tables (e.g. a paper's table of settings and
PLA-SM's mask ratios per dataset) key by key, so that one table never silently replaces another's
entry for the same dataset. :func:`configuration_problems` lists what breaks these rules (a
per-dataset value equal to the base's, a per-dataset key the base lacks, a builder default that
disagrees with the base, a builder parameter the base does not set); the test suite requires it to
be empty for every registered method.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from bench.spec.hparams import TRAIN_DEFAULTS, TRAIN_KEYS, same_value
from bench.spec.method import MethodSpec

BASE = "*"


def per_dataset(*tables: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-dataset tables merged dataset by dataset: ``per_dataset({"kth": {"lr": 1}}, {"kth": {"r0": 0.9}})``
    is ``{"kth": {"lr": 1, "r0": 0.9}}``. Two tables giving one key of one dataset different values is a
    ValueError (a configuration written twice)."""
    merged: dict[str, dict[str, Any]] = {}
    for table in tables:
        for dataset, values in table.items():
            into = merged.setdefault(dataset, {})
            for key, value in values.items():
                if key in into and not same_value(into[key], value):
                    raise ValueError(f"{dataset}: {key} is given twice ({into[key]!r} and {value!r})")
                into[key] = value
    return merged


def differences(base: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that ``base`` does not already hold (type-exact: ``1`` differs from ``1.0``)."""
    return {k: v for k, v in values.items() if k not in base or not same_value(base[k], v)}


def configuration_problems(spec: MethodSpec) -> list[str]:
    """What breaks the base-plus-differences rules in ``spec`` (see the module docstring), one line each."""
    base = {**TRAIN_DEFAULTS, **spec.hparams.get(BASE, {})}
    problems = []
    for dataset, values in spec.hparams.items():
        if dataset == BASE:
            continue
        for key, value in values.items():
            if key not in base:
                problems.append(f"{spec.name}: hparams[{dataset!r}] sets {key}, which the base ('*') does not set")
            elif same_value(base[key], value):
                problems.append(f"{spec.name}: hparams[{dataset!r}] repeats the base value {key}={value!r}")
    return problems + builder_problems(spec, base)


def builder_problems(spec: MethodSpec, base: Mapping[str, Any]) -> list[str]:
    """The builder's parameters against the base: a keyword default must equal the base value, every
    parameter after ``data`` must be a model key of the base, and every model key must be accepted."""
    try:
        params = list(inspect.signature(spec.build).parameters.values())[1:]  # the first is the DatasetSpec
    except (TypeError, ValueError):  # a builder without a signature (a C callable): nothing to compare
        return []
    model_keys = {k for k in base if k not in TRAIN_KEYS and k != "pred_len"}
    problems = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name not in model_keys:
            problems.append(f"{spec.name}: the builder takes {p.name}, which the base ('*') does not set")
        elif p.default is not p.empty and not same_value(p.default, base[p.name]):
            problems.append(f"{spec.name}: the builder's default {p.name}={p.default!r} disagrees with the base "
                            f"value {base[p.name]!r}; drop the default (the registry passes every key)")
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        accepted = {p.name for p in params}
        problems += [f"{spec.name}: the base sets {k}, which the builder does not take"
                     for k in sorted(model_keys - accepted)]
    return problems
