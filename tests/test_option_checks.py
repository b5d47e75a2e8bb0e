"""Each rule on a run's options lives once, in the spec layer (:mod:`bench.spec.checks`,
:func:`bench.spec.splits.check_sizes`, :meth:`DatasetSpec.check_pred_len`); the command line only
parses text. The CLI's one-line error is the spec layer's own message, word for word."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

import bench
from bench.cli.app import app
from bench.errors import BenchError
from bench.spec.checks import check_count, check_precision, check_seed, check_seeds, check_train_option
from bench.spec.dataset import DataConfig, DatasetSpec
from bench.spec.hparams import MAX_BATCH_SIZE, MAX_EPOCHS, MAX_PRED_LEN, MAX_SEED, MAX_SPLIT_SIZE, shorten
from bench.spec.splits import check_sizes

ROOT = Path(bench.__file__).resolve().parent.parent


def refused(fn, *args) -> str:
    with pytest.raises(BenchError) as exc:
        fn(*args)
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_split_sizes():
    assert check_sizes({"train": 1, "val": MAX_SPLIT_SIZE}) == {"train": 1, "val": MAX_SPLIT_SIZE}
    assert "'bogus' is not a split" in refused(check_sizes, {"bogus": 3})
    for bad in (0, -1, True, 1.5, "8"):
        assert refused(check_sizes, {"test": bad}).startswith(f"--sizes test={shorten(bad)} is invalid")
    assert "above the limit of 1,000,000" in refused(check_sizes, {"train": MAX_SPLIT_SIZE + 1})
    # a loader never sees a size the rule refuses: the DataConfig it receives checks them
    assert "is invalid" in refused(DataConfig, None, 0, 0, {"train": 0})


def test_seeds():
    assert check_seeds([0, MAX_SEED]) == [0, MAX_SEED]
    assert "no seed" in refused(check_seeds, [])
    assert "a seed twice (1)" in refused(check_seeds, [1, 0, 1])
    for bad in (-1, MAX_SEED + 1, True, 1.0):
        assert refused(check_seed, bad).startswith("--seeds ")
    assert refused(check_seed, -1, "--data-seed").startswith("--data-seed -1 is invalid")


def test_epochs_batch_size_and_counts():
    assert check_train_option("--epochs", "epochs", None) is None
    assert check_train_option("--epochs", "epochs", MAX_EPOCHS) == MAX_EPOCHS
    assert "--epochs must be at least 1" in refused(check_train_option, "--epochs", "epochs", 0)
    assert "above the limit of 100,000 epochs" in refused(check_train_option, "--epochs", "epochs", MAX_EPOCHS + 1)
    assert "above the limit of 65,536 sequences" in refused(check_train_option, "--batch-size", "batch_size",
                                                            MAX_BATCH_SIZE + 1)
    assert "--iters must be at least 1" in refused(check_count, "--iters", 0)
    assert check_precision("bf16") == "bf16" and "choose one of fp32" in refused(check_precision, "fp8")


def test_pred_len_is_the_datasets_rule():
    def spec(max_pred_len):
        return DatasetSpec(name="toy", in_frames=2, out_frames=3, channels=1, height=8, width=8, load=lambda s, c: None,
                           max_pred_len=max_pred_len)

    assert spec(None).check_pred_len(None) == 3 and spec(None).check_pred_len(MAX_PRED_LEN) == MAX_PRED_LEN
    assert "at least 1" in refused(spec(None).check_pred_len, 0)
    assert "above the limit of 1,000 frames" in refused(spec(None).check_pred_len, MAX_PRED_LEN + 1)
    assert "exceeds the 4 target frames" in refused(spec(4).check_pred_len, 5)


@pytest.mark.parametrize("args, rule, value", [
    (["--sizes", "train=0"], check_sizes, {"train": 0}),
    (["--sizes", "bogus=3"], check_sizes, {"bogus": 3}),
    (["--sizes", "train=1000001"], check_sizes, {"train": 1_000_001}),
    (["--seeds", "1,1"], check_seeds, [1, 1]),
    (["--seeds", str(MAX_SEED + 1)], check_seeds, [MAX_SEED + 1]),
    (["--epochs", "0"], lambda v: check_train_option("--epochs", "epochs", v), 0),
    (["--batch-size", str(MAX_BATCH_SIZE + 1)], lambda v: check_train_option("--batch-size", "batch_size", v),
     MAX_BATCH_SIZE + 1),
])
def test_the_cli_error_is_the_spec_layers_message(tmp_path, args, rule, value):
    res = CliRunner().invoke(app, ["run", "--methods", "simvp", "--tiny", *args, "--results", str(tmp_path)])
    assert res.exit_code == 2 and res.stderr.strip() == f"error: {refused(rule, value)}", res.stderr


LIMITS = {"MAX_SEED", "MAX_SPLIT_SIZE", "MAX_EPOCHS", "MAX_BATCH_SIZE", "MAX_PRED_LEN"}
#: modules outside bench.spec that may name a limit: a hyperparameter DECLARATION (not a check)
DECLARES = {"bench/blocks/masked_pretrain.py"}


def test_no_limit_is_checked_outside_the_spec_layer():
    named = []
    for folder in ("bench", "baselines", "methods", "datasets"):
        for path in (ROOT / folder).rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            if rel.startswith("bench/spec/") or rel in DECLARES:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Name) and node.id in LIMITS or \
                        isinstance(node, ast.alias) and node.name in LIMITS:
                    named.append(f"{rel}:{getattr(node, 'lineno', '?')}")
    assert named == []
