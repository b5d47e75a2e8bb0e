"""Issue 21: the result schema moved to pydantic, one JSON encoder, metrics declared once; the bytes did not move.

tests/fixtures/store/ was written by tools/make_store_fixtures.py with the code BEFORE those changes
(in its own processes, under two hash seeds): the result.json of real tiny runs (SimVP, PLA-SM with
its pretraining record, PredRNN with its schedule), the synthetic runs of tests/report_builders.py,
a failed attempt, a schema-1 record, an audit record, and the report of that directory. Here, in
this process:

* every schema-2 record reads and writes back to the same bytes (the same values: a value read
  differently would be written differently);
* the synthetic records, built again in code, are written to the same bytes (the writer's path);
* the schema-1 record is migrated as before;
* the report of the stored directory is byte-identical to the committed one.

A change meant to alter these (a new field, a new report section) regenerates the fixtures with the
tool, and the diff of the fixtures is the change to review.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from bench.cli.app import app
from bench.store.record import load_results, read_result, write_json_text

FIXTURES = Path(__file__).parent / "fixtures" / "store"
RESULTS = FIXTURES / "results"
TOOL = Path(__file__).resolve().parent.parent / "tools" / "make_store_fixtures.py"


def _tool():
    spec = importlib.util.spec_from_file_location("make_store_fixtures", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _records(schema: int) -> list[Path]:
    return [p for p in sorted(RESULTS.rglob("result.json")) if json.loads(p.read_text())["schema"] == schema]


def test_stored_results_read_back_to_the_same_bytes():
    files = _records(2)
    assert len(files) == 11  # 10 complete runs, a failed attempt
    for path in files:
        assert write_json_text(read_result(path, RESULTS)) == path.read_text(), path
    results, problems = load_results(RESULTS)
    assert problems == [] and len(results) == 12  # 11 complete runs (one of schema 1) and a failed attempt
    plasm = next(r for r in results if r.spec.method == "plasm")
    assert plasm.pretrain["pretrained"] is True and plasm.schema == 2 and plasm.spec_hash == plasm.spec.hash
    simvp = next(r for r in results if r.spec.method == "simvp" and r.spec.tiny and r.schema == 2)
    assert simvp.spec.hparams["incep_ker"] == (3, 5)  # JSON lists back to the registry's tuples


def test_records_built_in_code_are_written_as_before(tmp_path):
    _tool().synthetic_runs(tmp_path)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json"))
    assert len(written) == 8  # six complete runs, a failed attempt, an audit
    for rel in written:
        assert (tmp_path / rel).read_bytes() == (RESULTS / rel).read_bytes(), rel


def test_a_schema1_record_is_migrated_as_before():
    (path,) = _records(1)
    r = read_result(path, RESULTS)
    assert (r.schema, r.spec_hash, r.status, r.label, r.spec.seed, r.spec.tiny) == (1, "", "complete", "simvp", 3, True)
    assert r.test == {"psnr": 17.5, "ssim": 0.75, "ssim_legacy": 0.8, "mse_clipped": 31.5, "mae_clipped": 90.25}
    assert [h.val for h in r.history] == [{"ssim": 0.6, "mse_clipped": 60.0, "mae_clipped": 150.0},
                                          {"ssim": 0.7, "mse_clipped": 30.0, "mae_clipped": 75.0}]
    assert r.efficiency.fps_repeats == [50.0] and r.environment.scikit_image == "0.19.3"
    assert (r.scoring.protocol, r.settings.batch_rule) == ("clipped", "one process")


def test_the_report_of_the_stored_results_is_byte_identical(tmp_path, monkeypatch):
    shutil.copytree(RESULTS, tmp_path / "results")
    monkeypatch.chdir(tmp_path)  # the report names the results directory as given: "results"
    res = CliRunner().invoke(app, _tool().REPORT_ARGS)
    assert res.exit_code == 0, res.output
    golden = sorted(p.name for p in (FIXTURES / "report").iterdir())
    assert golden == ["report.csv", "report.md", "report.tex"]
    for name in golden:
        assert (tmp_path / "report" / name).read_bytes() == (FIXTURES / "report" / name).read_bytes(), name
