"""Issue 21: result.json read through pydantic records, with the strictness of the reader it replaced.

A file that does not fit is one line naming the file and the field by its path (``history[1].val.ssim``),
the value and what was expected; an integer is never a bool nor a bool an integer, floats are finite,
``status`` is one of two words, and a key the record does not declare is named too (the file is refused,
not half read: see bench.store.record). At the command line: ``bench report`` lists such files under
"Skipped files" and ``bench run`` does not serve them as the run's result (nor replace them without
``--force``). The files edited here are real ``result.json`` (a stored fixture of a tiny SimVP run).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench import store
from bench.cli.app import app
from bench.errors import BenchError
from bench.spec.registry import get_dataset, parse_method_key
from bench.spec.run_spec import RunSpec, SpecOptions, resolve_run_spec
from bench.store.record import RunResult, load_results, read_result
from report_builders import make_result, metrics, write_result

REAL = Path(__file__).parent / "fixtures" / "store" / "results" / "mmnist" / "simvp" / "3a40d9cb0a" / "seed0"


def bench(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def stored_copy(root: Path, edit, seed: int = 0) -> Path:
    """The real result as seed ``seed``, where it belongs under ``root``, with ``edit`` applied to its JSON."""
    target = root / REAL.parent.relative_to(REAL.parents[3]) / f"seed{seed}" / "result.json"
    target.parent.mkdir(parents=True)
    data = json.loads((REAL / "result.json").read_text())
    data["spec"]["seed"] = seed
    edit(data)
    target.write_text(json.dumps(data, indent=2))
    return target


def _set(path: str, value):
    def edit(data):
        *parents, last = path.split(".")
        node = data
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if value is _DELETE:
            del node[int(last) if isinstance(node, list) else last]
        else:
            node[int(last) if isinstance(node, list) else last] = value
    return edit


_DELETE = object()

CASES = [
    ("history.1.val.ssim", "x", r"field history\[1\]\.val\.ssim: is 'x', expected a finite number"),
    ("tset", {"mse": 1.0}, r"field tset: is not a field of this record \(an unknown key"),
    ("timing.stated", "today", r"field timing\.stated: is not a field of this record"),
    ("spec.sed", 1, r"field spec\.sed: is not a field of this record"),
    ("spec_hash", _DELETE, r"field spec_hash: is missing"),
    ("history.0.lr", _DELETE, r"field history\[0\]\.lr: is missing"),
    ("spec.tiny", 1, r"field spec\.tiny: is 1, expected true or false"),
    ("best_epoch", True, r"field best_epoch: is True, expected an integer"),
    ("history.0.train_samples", 16.0, r"field history\[0\]\.train_samples: is 16\.0, expected an integer"),
    ("test.mse", float("nan"), r"field test\.mse: is nan, expected a finite number"),
    ("status", "done", r"field status: is 'done', expected 'complete' or 'failed'"),
    ("test_per_frame.mse", 1.0, r"field test_per_frame\.mse: is 1\.0, expected a list"),
    ("efficiency.fps_repeats.2", "fast", r"field efficiency\.fps_repeats\[2\]: is 'fast', expected a finite"),
    ("dataset.sizes.train", "16", r"field dataset\.sizes\.train: is '16', expected an integer"),
    ("spec.variant", 3, r"field spec\.variant: is 3, expected text"),
]


@pytest.mark.parametrize("path, value, message", CASES, ids=[c[0] for c in CASES])
def test_a_field_that_does_not_fit_is_named(tmp_path, path, value, message):
    target = stored_copy(tmp_path, _set(path, value))
    with pytest.raises(BenchError, match=message) as err:
        read_result(target, tmp_path)
    assert str(err.value).startswith(f"{target}: ") and "\n" not in str(err.value)
    assert "delete the file and re-run that run" in str(err.value)
    results, problems = load_results(tmp_path)
    assert results == [] and len(problems) == 1 and str(err.value) == problems[0]


def test_a_wrong_value_is_named_before_a_stray_key(tmp_path):
    target = stored_copy(tmp_path, lambda d: d["history"][0].update(train_loss="oops", was=1.0))
    with pytest.raises(BenchError, match=r"field history\[0\]\.train_loss: is 'oops'"):
        read_result(target)


def test_records_built_in_code_obey_the_same_rules():
    good = make_result("simvp", 0, metrics(1.0))
    for field, value in (("status", "done"), ("best_epoch", True), ("extra", 1), ("test", {"mse": float("inf")})):
        with pytest.raises(ValueError, match=field):
            good.replace(**{field: value})
    with pytest.raises(ValueError):  # frozen
        good.best_epoch = 3
    assert RunResult.model_validate(json.loads((REAL / "result.json").read_text())).spec.label == "simvp"
    assert RunSpec.from_json(good.spec.to_json()) == good.spec
    with pytest.raises(BenchError, match=r"field seed: is '0', expected an integer"):
        RunSpec.from_json({**good.spec.to_json(), "seed": "0"})


def test_bench_report_lists_each_bad_file_with_its_field(tmp_path):
    root = tmp_path / "results"
    stored_copy(root, _set("history.1.val.ssim", "x"), seed=0)
    stored_copy(root, _set("timing.stated", "today"), seed=1)
    stored_copy(root, _set("spec_hash", _DELETE), seed=2)
    stored_copy(root, lambda data: None, seed=3)  # a good one
    write_result(root, make_result("tau", 0, metrics(20.0)), predictions=False)
    res = bench("report", "--results", root, "--no-figures")
    assert res.exit_code == 0, res.output
    md = (root / "report" / "report.md").read_text()
    skipped = md.split("## Skipped files", 1)[1].split("\n## ", 1)[0]
    lines = [line.replace("\\", "") for line in skipped.splitlines() if line.startswith("- ")]  # markdown escapes
    assert len(lines) == 3, lines
    for seed, field in enumerate(("history[1].val.ssim", "timing.stated", "spec_hash")):
        assert sum(f"seed{seed}/result.json: field {field}:" in line for line in lines) == 1, (field, lines)
    assert "2 complete run(s)" in md and "3 file(s) skipped" in md  # the good ones are read


def test_bench_run_does_not_serve_a_file_with_an_unknown_key(tmp_path):
    sizes = {"train": 8, "val": 4, "test": 4}
    spec = resolve_run_spec(parse_method_key("simvp"), get_dataset("mmnist"), 0,
                            SpecOptions(tiny=True, epochs=1, batch_size=4, sizes=sizes))
    final = write_result(tmp_path, make_result("simvp", 0, metrics(5.0), tiny=True).replace(
        spec=spec, spec_hash=spec.hash), predictions=False)
    path = final / store.RESULT_FILE
    data = json.loads(path.read_text())
    data["tset"] = data["test"]
    path.write_text(json.dumps(data))
    before = path.read_bytes()
    res = bench("run", "--methods", "simvp", "--tiny", "--quiet", "--sizes", "train=8,val=4,test=4", "--batch-size",
                4, "--epochs", 1, "--results", tmp_path)
    assert res.exit_code == 1 and "kept" not in res.output
    assert path.read_bytes() == before  # left alone, never served nor replaced
    error = json.loads((store.partial_dir(final) / store.RESULT_FILE).read_text())["error"]
    assert "cannot read" in error and "field tset" in error and "remove that key" in error and "--force" in error
