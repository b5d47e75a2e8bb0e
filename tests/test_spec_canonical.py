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
from typer.testing import CliRunner

from bench.cli import app
from bench.registry import get_dataset, parse_method_key
from bench.run_spec import RunSpec, SpecOptions, resolve_run_spec
from run_helpers import complete_result

runner = CliRunner()
TINY = ["--datasets", "mmnist", "--tiny", "--quiet", "--sizes", "train=4,val=2,test=2", "--batch-size", "2"]


def bench(*args):
    return runner.invoke(app, [str(a) for a in args])


def spec_of(key: str = "simvp", dataset: str = "mmnist", seed: int = 0, **options) -> RunSpec:
    return resolve_run_spec(parse_method_key(key), get_dataset(dataset), seed, SpecOptions(**options))


# ------------------------------------------------------------------------------------ schedule=none


def test_the_documented_schedule_none_can_be_typed(tmp_path):
    res = bench("run", "--methods", "simvp", "--set", "schedule=none", *TINY, "--epochs", 2, "--results", tmp_path)
    assert res.exit_code == 0, res.output
    result = complete_result(tmp_path)
    assert result.spec.hparams["schedule"] == "none"
    assert [h.lr for h in result.history] == [result.spec.hparams["lr"]] * 2  # a constant learning rate
    assert parse_method_key("simvp:schedule=none").label == "simvp:schedule=none"
    listed = bench("list", "--hparams", "simvp:schedule=None")
    assert listed.exit_code == 0 and "'none'" in listed.stdout, listed.output
