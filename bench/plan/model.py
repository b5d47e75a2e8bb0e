"""A plan: the runs that reproduce one table, as data (method keys x datasets x seeds, with options).

A :class:`Plan` is a list of :class:`PlanGroup` (datasets, the method keys to run on each, and the
evaluation horizon where the table fixes one) plus what every run shares: seeds, and optionally
epochs, batch size, ``--set`` overrides, split sizes, ``--tiny``/``--quick``, precision, data seed.
Left out, epochs and batch size are each method's paper configuration for the dataset (the method
modules hold them: :mod:`bench.spec.run_spec` resolves them as ``bench run`` does).

The papers' tables are derived from the published numbers (:mod:`bench.plan.papers`); a user writes
a plan as a TOML file (:func:`load_plan_file`) and commits it with the paper that uses it::

    title = "TAU Table 6 at 200 epochs"      # name: the file's stem unless given
    seeds = [0, 1, 2]
    epochs = 200                              # optional: else each method's paper configuration
    methods = ["tau", "tau:no-ddr", "tau:conv"]
    datasets = ["mmnist_std", "taxibj"]       # methods x datasets
    [set]                                     # optional: --set for every run
    lr = 0.005
    [[runs]]                                  # optional: more groups, e.g. a horizon of its own
    datasets = ["kth"]
    methods = ["simvp", "tau"]
    pred_len = 40

Every key is checked (type, and unknown keys with the valid ones named) in one line; method keys,
datasets and values are validated when the plan is resolved into run specs, exactly as ``bench run``
validates its options.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from bench.errors import BenchError

DEFAULT_SEEDS = (0, 1, 2)
MAX_PLAN_BYTES = 1 << 20


@dataclass(frozen=True)
class PlanGroup:
    """Method keys to run on each of some datasets (at one evaluation horizon; None: the dataset's own)."""

    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    pred_len: int | None = None


@dataclass(frozen=True)
class Plan:
    """The runs of one table (see the module docstring)."""

    name: str
    title: str
    source: str  # where it comes from: the published table, or the TOML file
    groups: tuple[PlanGroup, ...]
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    epochs: int | None = None
    batch_size: int | None = None
    sets: Mapping[str, Any] = field(default_factory=dict)
    sizes: Mapping[str, int] = field(default_factory=dict)
    tiny: bool = False
    quick: bool = False
    precision: str = "fp32"
    data_seed: int = 0

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d for g in self.groups for d in g.datasets))

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m for g in self.groups for m in g.methods))

    @property
    def size(self) -> int:
        """Runs before resolution (equal configurations are merged when resolved)."""
        return sum(len(g.datasets) * len(g.methods) for g in self.groups) * len(self.seeds)


#: TOML key -> (type(s) accepted, what to write)
_TOP = {"name": (str, "text"), "title": (str, "text"), "seeds": (list, "a list of integers, e.g. [0, 1, 2]"),
        "epochs": (int, "an integer"), "batch_size": (int, "an integer"), "set": (dict, "a table of key = value"),
        "sizes": (dict, "a table such as { train = 256, val = 64, test = 64 }"), "tiny": (bool, "true or false"),
        "quick": (bool, "true or false"), "precision": (str, "fp32, bf16 or fp16"),
        "data_seed": (int, "an integer"), "methods": (list, "a list of method keys"),
        "datasets": (list, "a list of dataset names"), "pred_len": (int, "an integer"),
        "runs": (list, "an array of tables [[runs]] with datasets, methods and optionally pred_len")}
_GROUP = ("datasets", "methods", "pred_len")


def load_plan_file(path: Path) -> Plan:
    """The plan in the TOML file ``path``; a one-line BenchError naming the file and the fix otherwise."""
    from bench.core.safe_read import read_regular_bytes

    path = Path(path)
    raw = read_regular_bytes(path, MAX_PLAN_BYTES, fix="pass a plan file of your own")
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"plan file {path} is not valid TOML ({str(exc).splitlines()[0]}); fix it (see `bench plan "
                         f"--help` for the format)") from None
    return plan_from_toml(doc, path)


def plan_from_toml(doc: Mapping[str, Any], path: Path) -> Plan:
    def bad(what: str) -> BenchError:
        return BenchError(f"plan file {path}: {what}")

    unknown = sorted(set(doc) - set(_TOP))
    if unknown:
        raise bad(f"unknown key {unknown[0]!r}; valid keys: {', '.join(_TOP)}")
    for key, value in doc.items():
        kind, words = _TOP[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise bad(f"{key} must be {words} (got {value!r})")
    groups = []
    if "methods" in doc or "datasets" in doc or "pred_len" in doc:
        groups.append(_group({k: doc[k] for k in _GROUP if k in doc}, "the top level", bad))
    for i, table in enumerate(doc.get("runs", []), start=1):
        if not isinstance(table, dict):
            raise bad(f"[[runs]] entry {i} must be a table with datasets and methods")
        extra = sorted(set(table) - set(_GROUP))
        if extra:
            raise bad(f"[[runs]] entry {i} has unknown key {extra[0]!r}; valid keys: {', '.join(_GROUP)}")
        groups.append(_group(table, f"[[runs]] entry {i}", bad))
    if not groups:
        raise bad("it lists no runs; give methods and datasets (or [[runs]] tables)")
    seeds = doc.get("seeds", list(DEFAULT_SEEDS))
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise bad(f"seeds must be a non-empty list of integers >= 0 (got {seeds!r})")
    if len(set(seeds)) != len(seeds):
        raise bad(f"seeds {seeds!r} lists a seed twice; give each seed once")
    sizes = doc.get("sizes", {})
    if any(k not in ("train", "val", "test") or isinstance(v, bool) or not isinstance(v, int) or v < 1
           for k, v in sizes.items()):
        raise bad(f"sizes must map train, val or test to positive integers (got {sizes!r})")
    sets = {k: _tuples(v) for k, v in doc.get("set", {}).items()}
    for key, value in sets.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise bad(f"set {key} = {value!r} is not a finite number")
        if isinstance(value, dict):
            raise bad(f"set {key} must be a value, not a table")
    return Plan(name=doc.get("name", path.stem), title=doc.get("title", path.stem), source=str(path),
                groups=tuple(groups), seeds=tuple(seeds), epochs=doc.get("epochs"), batch_size=doc.get("batch_size"),
                sets=sets, sizes=dict(sizes), tiny=doc.get("tiny", False), quick=doc.get("quick", False),
                precision=doc.get("precision", "fp32"), data_seed=doc.get("data_seed", 0))


def _group(table: Mapping[str, Any], where: str, bad) -> PlanGroup:
    datasets, methods = table.get("datasets"), table.get("methods")
    for key, value in (("datasets", datasets), ("methods", methods)):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise bad(f"{where}: {key} must be a non-empty list of names (got {value!r})")
    pred_len = table.get("pred_len")
    if pred_len is not None and (isinstance(pred_len, bool) or not isinstance(pred_len, int) or pred_len < 1):
        raise bad(f"{where}: pred_len must be a positive integer (got {pred_len!r})")
    return PlanGroup(tuple(dict.fromkeys(d.strip() for d in datasets)),
                     tuple(dict.fromkeys(m.strip() for m in methods)), pred_len)


def _tuples(value: Any) -> Any:
    """TOML arrays as tuples (tuple-valued hyperparameters are tuples in the registry)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
