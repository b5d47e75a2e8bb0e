"""Issue 20: values a user can type, upper bounds known before training, and one hash per configuration.

* ``--set schedule=none`` (the documented value) is accepted: the command line reads ``none`` as
  None, and a choice named ``none`` takes it.
* ``--pred-len``, ``--sizes``, ``--epochs``, ``--batch-size`` and the seeds have upper bounds checked
  before anything trains (one line each, never a raw OverflowError or a run that dies on memory).
* Equal configurations share one hash (``-0.0``, the standard ``--sizes`` written out, a key
  override equal to the default), and the hashes of configurations without such redundancies are
  those computed before the change (golden values below).
"""

from __future__ import annotations

import dataclasses

import pytest

from bench.spec.registry import get_dataset, parse_method_key
from bench.spec.run_spec import RunSpec, SpecOptions, resolve_run_spec
from run_helpers import complete_result

TINY = ["--datasets", "mmnist", "--tiny", "--quiet", "--sizes", "train=4,val=2,test=2", "--batch-size", "2"]


def spec_of(key: str = "simvp", dataset: str = "mmnist", seed: int = 0, **options) -> RunSpec:
    return resolve_run_spec(parse_method_key(key), get_dataset(dataset), seed, SpecOptions(**options))


# ------------------------------------------------------------------------------------ schedule=none


def test_the_documented_schedule_none_can_be_typed(bench, tmp_path):
    res = bench("run", "--methods", "simvp", "--set", "schedule=none", *TINY, "--epochs", 2, "--results", tmp_path)
    assert res.exit_code == 0, res.output
    result = complete_result(tmp_path)
    assert result.spec.hparams["schedule"] == "none"
    assert [h.lr for h in result.history] == [result.spec.hparams["lr"]] * 2  # a constant learning rate
    assert parse_method_key("simvp:schedule=none").label == "simvp:schedule=none"
    listed = bench("list", "--hparams", "simvp:schedule=None")
    assert listed.exit_code == 0 and "'none'" in listed.stdout, listed.output


# ------------------------------------------------------------------------------------ upper bounds


@pytest.mark.parametrize("args, message", [
    (["--pred-len", 100000], "--pred-len 100000 is above the limit of 1,000 frames"),
    (["--pred-len", 99999999999999999999], "is above the limit of 1,000 frames"),
    (["--sizes", "train=99999999999999999999999"], "is above the limit of 1,000,000 sequences per split"),
    (["--sizes", "train=1" + "0" * 5000], "--sizes train=100000000000...: the count has 5,001 digits"),
    (["--sizes", "train=1000001"], "--sizes train=1000001 is above the limit of 1,000,000"),
    (["--epochs", 99999999999999999999], "--epochs 99999999999999999999 is above the limit of 100,000 epochs"),
    (["--batch-size", 99999999999999999999], "--batch-size 99999999999999999999 is above the limit of 65,536"),
    (["--set", "epochs=100001"], "expected an integer >= 1 and <= 100000"),
    (["--set", "batch_size=100000"], "expected an integer >= 1 and <= 65536"),
    (["--data-seed", 2**63], "--data-seed 9223372036854775808 is invalid"),
    (["--seeds", 2**63], "--seeds"),
    (["--seeds", "1" * 20000], "--seeds is too long"),
])
def test_upper_bounds_are_one_line_before_anything_runs(bench, tmp_path, args, message):
    base = ["--datasets", "mmnist", "--tiny", "--quiet"]
    if "--epochs" not in args:
        base += ["--epochs", "1"]
    res = bench("run", "--methods", "simvp", *base, *args, "--results", tmp_path)
    err = res.stderr.strip()
    assert res.exit_code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "mmnist").exists()


def test_a_batch_that_cannot_fit_in_memory_is_refused_up_front(bench, tmp_path, monkeypatch):
    import bench.spec.run_spec as run_spec

    monkeypatch.setattr(run_spec, "available_memory", lambda: 8 * 2**30)  # a machine with 8 GiB free
    res = bench("run", "--methods", "simvp", "--datasets", "mmnist", "--tiny", "--quiet", "--epochs", 1,
                "--pred-len", 1000, "--batch-size", 1024, "--results", tmp_path)
    err = res.stderr.strip()
    # 1024 x (10 + 2 x 1000) frames x 64 x 64 x 4 bytes = 31.4 GiB
    assert res.exit_code == 2 and "needs at least 31.4 GiB" in err and "8.0 GiB" in err, err
    assert len(err.splitlines()) == 1 and not (tmp_path / "mmnist").exists()
    assert spec_of(tiny=True, pred_len=1000, batch_size=16).pred_len == 1000  # 0.5 GiB: fits


# ------------------------------------------------------------------------------------ one hash per configuration

#: Hashes computed on the code before issue 20 (commit b150fd8) for configurations without any
#: redundancy, with the data source fixed (its identity is decided elsewhere): they must not change.
GOLDEN = [
    ("simvp", {}, "4572406de7"),
    ("simvp", {"tiny": True}, "f4da8246dc"),
    ("tau", {}, "36653d6029"),
    ("plasm:mask-sm", {"quick": True}, "d441eaab4c"),
    ("tau:no-ddr", {"tiny": True, "epochs": 2, "batch_size": 4, "sizes": {"train": 8, "val": 4, "test": 4}},
     "b2b5274b9b"),
    ("simvp:lr=0.02", {"tiny": True, "sets": {"weight_decay": 0.01}, "pred_len": 12}, "f2988c221c"),
    ("convlstm", {"quick": True, "tiny": True, "precision": "bf16", "data_seed": 3}, "d60fc6b827"),
    ("predrnn", {"tiny": True}, "5cdc6dd627"),
    ("plasm", {}, "e2425a3eb5"),
    ("simvp", {"tiny": True, "sets": {"schedule": "cosine"}}, "08a8b0c807"),
]


def fixed_source(spec: RunSpec) -> RunSpec:
    return dataclasses.replace(spec, data_source={"digit_source": "sklearn-digits"})


@pytest.mark.parametrize("key, options, expected", GOLDEN)
def test_hashes_of_configurations_without_redundancy_do_not_change(key, options, expected):
    assert fixed_source(spec_of(key, **options)).hash == expected


def test_equal_configurations_share_one_result_at_the_cli(bench, tmp_path):
    """One run, then spellings of the same configuration: each finds that result and keeps it."""
    common = ["--datasets", "mmnist", "--tiny", "--quiet", "--epochs", "1", "--batch-size", "2",
              "--sizes", "train=2,val=2,test=2", "--results", str(tmp_path)]
    first = bench("run", "-m", "simvp", *common)
    assert first.exit_code == 0, first.output
    for spelling in (["-m", "simvp", "--set", "weight_decay=-0.0"],  # -0.0 is 0.0, the default
                     ["-m", "simvp:weight_decay=-0.0"],
                     ["-m", "simvp:lr=0.01"],  # the tiny configuration's own learning rate
                     ["-m", "simvp:lr=1e-2:weight_decay=0"]):
        again = bench("run", *spelling, *common)
        assert again.exit_code == 0 and "kept" in again.output, (spelling, again.output)
    assert len(list(tmp_path.rglob("result.json"))) == 1


@pytest.mark.parametrize("redundant, plain", [
    (("simvp", {"sets": {"weight_decay": -0.0}}), ("simvp", {})),
    (("simvp", {"sets": {"weight_decay": -0.0, "lr": 0.02}}), ("simvp", {"sets": {"lr": 0.02}})),
    (("simvp:lr=0.01:hid_S=8", {}), ("simvp:hid_S=8", {})),  # 0.01: SimVP's own, tiny or not
    (("tau:no-ddr:ddr_weight=0.0", {}), ("tau:no-ddr", {})),  # what the variant already sets
    (("tau:no-ddr:ddr_weight=-0.0", {}), ("tau:no-ddr", {})),
    (("simvp:epochs=2", {"quick": True}), ("simvp", {"quick": True})),  # --quick caps the epochs at 2 anyway
    (("simvp", {"sizes": {"train": 10000, "val": 1000, "test": 10000}}), ("simvp", {})),  # standard sizes
    (("simvp", {"sizes": {"train": 10000, "val": 64}}), ("simvp", {"sizes": {"val": 64}})),
    (("simvp", {"quick": True, "sizes": {"train": 64}}), ("simvp", {"quick": True})),  # --quick's own size
    (("simvp:schedule=none", {"sets": {"schedule": None}}), ("simvp:schedule=none", {})),
    (("simvp", {"pred_len": 10}), ("simvp", {})),  # the dataset's own horizon
])
def test_equal_configurations_share_one_hash(redundant, plain):
    (key, options), (key2, options2) = redundant, plain
    for tiny in (False, True):
        a, b = spec_of(key, tiny=tiny, **options), spec_of(key2, tiny=tiny, **options2)
        assert a.hash == b.hash and a.label == b.label, (a.label, b.label)
        assert a.to_json() | {"sets": None} == b.to_json() | {"sets": None}


def test_what_differs_still_differs():
    """Canonical forms never merge configurations that differ: quick's explicit standard size, a key
    override that differs from the default of this dataset, an epochs override under --quick."""
    assert spec_of("simvp", quick=True, sizes={"train": 10000}).hash != spec_of("simvp", quick=True).hash
    assert spec_of("simvp:epochs=5", quick=True).hash != spec_of("simvp", quick=True).hash
    assert spec_of("simvp:weight_decay=0.01").label == "simvp:weight_decay=0.01"
    assert spec_of("simvp", sizes={"train": 9999}).sizes == {"train": 9999}
    # the default a key override is compared with is that of the configuration it runs in
    assert spec_of("simvp:incep_ker=(3,5,7,11)").label == "simvp"
    assert spec_of("simvp:incep_ker=(3,5,7,11)", tiny=True).label == "simvp:incep_ker=(3,5,7,11)"
    # a key override is compared with the method's own value, not with a --set of the same value
    assert spec_of("simvp:lr=0.02", sets={"lr": 0.02}).label == "simvp:lr=0.02"
