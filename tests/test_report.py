"""The reporter's tables: numbers, comparability groups, rows by run spec, scales in headers, clipped
columns, skipped files, failed runs, CSV/TeX, formats, determinism, errors, the CLI command.

Synthetic result sets are written through the typed result definition (tests/report_builders.py);
ranking, published numbers and figures have their own test files."""

from __future__ import annotations

import csv
import math
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from bench import store
from bench.errors import BenchError
from bench.report import ReportOptions, write_report
from bench.report.outputs import MANIFEST
from report_builders import edit_result, failed_run, fake_run, metrics, spec_of

# ------------------------------------------------------------------------------------ helpers


def table_after(md: str, heading_part: str) -> dict[str, list[str]]:
    """Rows (first cell -> cells) of the first markdown table after the heading containing ``heading_part``."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and heading_part in line)
    rows: dict[str, list[str]] = {}
    i = start + 1
    while not lines[i].startswith("|"):
        i += 1
    rows["__header__"] = [c.strip() for c in lines[i].strip("|").split(" | ")]
    i += 2
    while i < len(lines) and lines[i].startswith("|"):
        cells = [c.strip() for c in lines[i].strip().strip("|").split(" | ")]
        rows[cells[0]] = cells
        i += 1
    return rows


def section(md: str, heading_part: str) -> str:
    """The text from the heading containing ``heading_part`` to the next heading of any level."""
    after = md.split(heading_part, 1)[1]
    return after.split("\n#", 1)[0]


def headings(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("#")]


def ms(values: list[float], d: int = 2) -> str:
    return f"{statistics.mean(values):.{d}f} ± {statistics.stdev(values):.{d}f}"


def report(root: Path, out: Path, **kwargs) -> str:
    return write_report(root, out, ReportOptions(figures=False, **kwargs))[0].read_text()


@pytest.fixture()
def three_methods(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    values = {"tau": ([20.0, 22.5], [0.95, 0.96]), "simvp": ([30.0, 31.0], [0.97, 0.975]),
              "convlstm": ([100.0, 110.0], [0.7, 0.71])}
    for label, (mses, ssims) in values.items():
        for seed, (m, s) in enumerate(zip(mses, ssims)):
            fake_run(root, label, seed, metrics(m, ssim=s))
    return root


# ------------------------------------------------------------------------------------ tables


def test_numbers_and_paper_rows(three_methods: Path, tmp_path: Path) -> None:
    md = report(three_methods, tmp_path / "out")
    t = table_after(md, "mmnist[1]")
    header = t["__header__"]
    mse, ssim, legacy = header.index("MSE↓"), header.index("SSIM↑"), header.index("SSIM (legacy)↑")
    assert header[1] == "n" and "MAE↓" in header and "PSNR↑" in header
    # mean ± sample std over the seeds; separated beyond the seeds' spread: best bold, second underlined
    assert t["tau"][mse] == f"**{ms([20.0, 22.5])}**"
    assert t["simvp"][mse] == f"<u>{ms([30.0, 31.0])}</u>"
    assert t["convlstm"][mse] == ms([100.0, 110.0])
    assert t["tau"][1] == "2"
    assert t["simvp"][ssim] == f"**{ms([0.97, 0.975], 4)}**" and t["tau"][ssim] == f"<u>{ms([0.95, 0.96], 4)}</u>"
    # published rows beside ours, never ranked; SimVP/TAU SSIM (legacy code) sits in the legacy column
    paper = t["*tau — paper (TAU Table 2)*"]
    assert paper[1] == "paper" and paper[mse] == "19.8" and paper[legacy] == "0.957" and paper[ssim] == "–"
    assert t["*simvp — paper (PLA-SM Table II)*"][header.index("MAE↓")] == "69.9"
    assert not any("**" in c or "<u>" in c for row, cells in t.items() if "paper" in row for c in cells)
    assert "cpu (test)" in t["tau"][-1]
    notes = section(md, "mmnist[1]")
    assert "never ranked" in notes and "beyond the noise" in notes
    assert "test convention (published)" in md
    assert "2 epochs" in next(h for h in headings(md) if "mmnist[1]" in h)


def test_rows_are_run_specs_and_groups_are_comparable(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in (0, 1):
        fake_run(root, "tau", seed, metrics(20.0 + seed))
        fake_run(root, "simvp", seed, metrics(30.0 + seed))
        fake_run(root, "convlstm", seed, metrics(10.0 + seed), epochs=5)  # better, but a different budget
        fake_run(root, "predrnn", seed, metrics(15.0 + seed), epochs=5)
        fake_run(root, "plasm", seed, metrics(1.0 + seed), digit_source="sklearn-digits")
        fake_run(root, "tau:no-ddr", seed, metrics(5.0 + seed), frames=(10, 20))  # another horizon
        fake_run(root, "tau:no-sa", seed, metrics(2.0 + seed), tiny=True)  # tiny model
        fake_run(root, "simvp", seed, metrics(40.0 + seed), sets={"lr": 0.001})  # another spec, same label
    fake_run(root, "plasm:base", 0, metrics(3.0), epochs=3)  # same label, seeds run with different budgets
    fake_run(root, "plasm:base", 1, metrics(4.0), epochs=4)
    md = report(root, tmp_path / "out")
    heads = [h for h in headings(md) if h.startswith("#### mmnist[")]
    assert len(heads) == 7, heads
    by_rows = {}
    for h in heads:
        t = table_after(md, h)
        by_rows.setdefault(tuple(sorted(k for k in t if k != "__header__" and "paper" not in k)), []).append((h, t))
    [(h, t)] = by_rows[("simvp [lr=0.001]", "simvp [lr=0.01]", "tau")]
    assert "2 epochs" in h and "digits: mnist-idx" in h and "10→10" in h and "paper-size" in h
    assert "data info" not in h  # identical everywhere: not shown
    assert t["simvp [lr=0.001]"][2] == ms([40.0, 41.0])  # the two specs are never averaged together
    [(h, t)] = by_rows[("convlstm", "predrnn")]
    assert "5 epochs" in h and t["convlstm"][2].startswith("**") and t["predrnn"][2].startswith("<u>")
    [(h, t)] = by_rows[("plasm",)]
    assert "sklearn-digits" in h and not t["plasm"][2].startswith("**")  # alone: not ranked
    assert "10→20" in by_rows[("tau:no-ddr",)][0][0]
    assert "tiny models" in by_rows[("tau:no-sa",)][0][0]
    base = by_rows[("plasm:base",)]
    assert sorted(h.split(" · ")[2] for h, _ in base) == ["3 epochs", "4 epochs"]
    assert sorted(t["plasm:base"][1:3] for _, t in base) == [["1", "3.00"], ["1", "4.00"]]  # never averaged
    notes = section(md, by_rows[("plasm",)][0][0])
    assert "not MNIST: not comparable" in notes and "differ from this one in: frames, budget, model, data;" in notes
    assert "Tiny models (the small --tiny configuration)" in section(md, by_rows[("tau:no-sa",)][0][0])
    assert "7 groups of runs that are not comparable" in md
    spec_list = md.split("Run specifications", 1)[1].split("</details>", 1)[0]
    assert "simvp [lr=0.001]: spec " in spec_list and "seeds 0, 1" in spec_list


def test_scales_are_in_the_headers(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in (0, 1):
        fake_run(root, "tau", seed, metrics(0.344, mae=15.6, ssim=0.98), dataset="taxibj", frames=(4, 4),
                 shape=(2, 8, 8), digit_source=None)
        fake_run(root, "plasm", seed, metrics(286.0, mae=1230.0, ssim=0.9), dataset="human36m", frames=(4, 4),
                 shape=(3, 8, 8), digit_source=None)
    paths = write_report(root, tmp_path / "out", ReportOptions(formats=("md", "tex"), figures=False))
    md, tex = paths[0].read_text(), paths[1].read_text()
    t = table_after(md, "taxibj[1]")
    header = t["__header__"]
    assert "MSE↓ (×100)" in header and "MAE↓" in header  # TaxiBJ MSE x100 (TAU Table 3), MAE unscaled
    assert t["tau"][header.index("MSE↓ (×100)")] == "34.40 ± 0.00"
    assert t["*tau — paper (TAU Table 3)*"][header.index("MSE↓ (×100)")] == "34.4"
    t = table_after(md, "human36m[1]")
    header = t["__header__"]
    assert "MSE↓ (/10)" in header and "MAE↓ (/100)" in header  # PLA-SM IV-D
    assert t["plasm"][header.index("MSE↓ (/10)")] == "28.60 ± 0.00"
    assert t["plasm"][header.index("MAE↓ (/100)")] == "12.30 ± 0.00"
    assert r"MSE$\downarrow$ ($\times$100)" in tex and r"MAE$\downarrow$ (/100)" in tex
    eff = table_after(md, "Efficiency, taxibj[1]")
    assert "MSE↓ (×100)" in eff["__header__"]


def test_clipped_values_get_their_own_columns(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in (0, 1):
        fake_run(root, "tau", seed, metrics(20.0 + seed, clipped=15.0 + seed))
        fake_run(root, "simvp", seed, metrics(30.0 + seed, clipped=10.0 + seed))
    md = report(root, tmp_path / "a")
    assert "clipped" not in table_after(md, "mmnist[1]")["__header__"][-3]  # not shown by default
    md = report(root, tmp_path / "b", clipped=True)
    t = table_after(md, "mmnist[1]")
    header = t["__header__"]
    mse, clip = header.index("MSE↓"), header.index("MSE (clipped)↓")
    # ranked separately: tau is best unclipped, simvp best clipped; never a paper value in a clipped column
    assert t["tau"][mse].startswith("**") and t["simvp"][clip].startswith("**") and t["tau"][clip].startswith("<u>")
    assert t["*tau — paper (TAU Table 2)*"][clip] == "–" and t["*tau — paper (TAU Table 2)*"][mse] == "19.8"


def test_schema1_runs_only_fill_the_clipped_columns(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in (0, 1):  # what the migration of a schema-1 record gives: only the clipped MSE/MAE
        test = {k: v for k, v in metrics(20.0 + seed).items() if k not in ("mse", "mae")}
        fake_run(root, "tau", seed, test, protocol="clipped")
    md = report(root, tmp_path / "out")
    t = table_after(md, "mmnist[1]")
    header = t["__header__"]
    assert t["tau"][header.index("MSE↓")] == "–" and t["tau"][header.index("MSE (clipped)↓")] == ms([20.0, 21.0])
    assert "scored before the published protocol" in section(md, "mmnist[1]")


def test_invalid_files_are_listed_with_the_wrong_field(three_methods: Path, tmp_path: Path) -> None:
    broken = store.run_dir(three_methods, spec_of("predrnn", 0)) / store.RESULT_FILE
    broken.parent.mkdir(parents=True)
    broken.write_text('{"schema": 2, "status": "complete", "spec": ')  # truncated by hand
    edited = fake_run(three_methods, "tau:no-ddr", 0, metrics(1.0)) / store.RESULT_FILE
    edit_result(edited, "test.mse", "small")
    md = report(three_methods, tmp_path / "out")
    skipped = md.split("## Skipped files", 1)[1].split("\n## ", 1)[0]
    assert "not valid JSON" in skipped
    assert "tau+no-ddr" in skipped and "field test.mse" in skipped
    t = table_after(md, "mmnist[1]")
    assert "tau:no-ddr" not in t and "tau" in t


def test_failed_runs_are_listed(three_methods: Path, tmp_path: Path) -> None:
    failed_run(three_methods, "predrnn", 0, "CUDA out of memory", last_good_epoch=3)
    failed_run(three_methods, "tau", 0, "killed", last_good_epoch=None)  # a failed re-run of a kept result
    md = report(three_methods, tmp_path / "out")
    rows = [line for line in md.split("## Failed runs", 1)[1].split("\n## ", 1)[0].splitlines() if "| mmnist" in line]
    assert any("predrnn" in r and "| 3 |" in r and "CUDA out of memory" in r for r in rows)
    assert any("| tau |" in r and "the complete result of this run is kept" in r for r in rows)
    assert "tau" in table_after(md, "mmnist[1]")


# ------------------------------------------------------------------------------------ CSV, TeX, formats


def test_csv_carries_comparability_fields_and_seeds(three_methods: Path, tmp_path: Path) -> None:
    paths = write_report(three_methods, tmp_path / "out", ReportOptions(formats=("csv",), figures=False))
    assert [p.name for p in paths] == ["report.csv"]
    with open(paths[0], newline="") as fh:
        rows = list(csv.DictReader(fh))
    tau = [r for r in rows if r["method"] == "tau" and r["metric"] == "mse" and r["section"] == "comparison"
           and r["row_kind"] == "ours"]
    assert len(tau) == 1
    tau = tau[0]
    assert math.isclose(float(tau["raw_mean"]), 21.25) and tau["n"] == "2" and tau["rank"] == "1"
    assert math.isclose(float(tau["raw_std"]), statistics.stdev([20.0, 22.5]))
    assert tau["per_seed_raw"] == "0=20;1=22.5" and tau["seeds"] == "0;1"
    assert (tau["in_frames"], tau["pred_len"], tau["epochs"], tau["tiny"], tau["quick"]) == ("10", "10", "2", "False",
                                                                                            "False")
    assert (tau["train_size"], tau["val_size"], tau["test_size"]) == ("8", "4", "4")
    assert tau["data_source"] == "digits: mnist-idx" and tau["data_seed"] == "0" and tau["precision"] == "fp32"
    assert tau["scoring_protocol"] == "published" and len(tau["spec_hash"]) == 10
    # one method naming: our registry label (also in every other section), the paper's name for paper rows
    assert {r["method"] for r in rows if r["row_kind"] == "ours" and r["section"] in ("comparison", "efficiency")} \
        == {"tau", "simvp", "convlstm"}
    paper = [r for r in rows if r["row_kind"] == "paper" and r["source"] == "TAU Table 2" and r["text"] == "19.8"]
    assert paper and paper[0]["method"] == "tau" and paper[0]["pred_len"] == "10"
    legacy = [r for r in rows if r["row_kind"] == "paper" and r["metric"] == "ssim_legacy" and r["method"] == "tau"]
    assert legacy[0]["ssim_convention"] == "legacy"


def test_tex_tables_fit(three_methods: Path, tmp_path: Path) -> None:
    from bench.report.render_tex import COLUMN_CHARS, PAGE_CHARS, render_tex_table, width_chars
    from bench.report.table import Cell, Row, Table

    tex = write_report(three_methods, tmp_path / "out", ReportOptions(formats=("tex",), figures=False))[0].read_text()
    assert "graphicx" in tex and r"\textbf{21.25 $\pm$ 1.77}" in tex and r"\toprule" in tex
    narrow = Table("n", "narrow", ["Method", "MSE"], [Row([Cell("tau"), Cell("1.00")])])
    wide = Table("w", "wide", ["Method"] + [f"column {i}" for i in range(6)],
                 [Row([Cell("tau")] + [Cell("123.45 ± 6.78") for _ in range(6)])])
    huge = Table("h", "huge", ["Method"] + [f"column {i}" for i in range(20)],
                 [Row([Cell("tau")] + [Cell("123.45 ± 6.78") for _ in range(20)])])
    assert width_chars(narrow) <= COLUMN_CHARS < width_chars(wide) <= PAGE_CHARS < width_chars(huge)
    lines = render_tex_table(narrow)
    assert lines[0] == r"\begin{table}[t]" and not any("resizebox" in x for x in lines)
    lines = render_tex_table(wide)
    assert lines[0] == r"\begin{table*}[t]" and lines[-1] == r"\end{table*}" and not any("resizebox" in x for x in lines)
    lines = render_tex_table(huge)
    assert lines[0] == r"\begin{table*}[t]" and any(x.startswith(r"\resizebox{\textwidth}") for x in lines)
    i = next(i for i, x in enumerate(lines) if x.startswith(r"\resizebox"))
    assert lines[i + 1].startswith(r"\begin{tabular}") and lines[lines.index(r"\end{tabular}") + 1] == "}"
    # every table of the report: one that does not fit a column spans the page
    for block in tex.split(r"\end{table")[:-1]:
        if r"\begin{table*}" not in block:
            assert "resizebox" not in block


def test_only_the_formats_asked_for_are_written(three_methods: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = write_report(three_methods, out, ReportOptions(formats=("tex", "csv")))
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "report.csv", "report.tex"]
    assert [p.name for p in paths] == ["report.csv", "report.tex"]
    with pytest.raises(BenchError, match="unknown report format"):
        write_report(three_methods, out, ReportOptions(formats=("pdf",)))


RENDER = """
import sys
from pathlib import Path
from bench.report import ReportOptions, write_report
write_report(Path(sys.argv[1]), Path(sys.argv[2]), ReportOptions(formats=("md", "csv", "tex")))
"""


def render_elsewhere(root: Path, out: Path, hash_seed: str) -> dict[str, bytes]:
    """The report of ``root`` rendered by a fresh process with ``hash_seed``: its text files' bytes."""
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", RENDER, str(root), str(out)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return text_files(out)


def text_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.suffix in (".md", ".csv", ".tex")}


def rewrite_in_reverse_order(root: Path) -> None:
    """The same files, written again in the reverse order (what a directory listing returns may change)."""
    files = {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    shutil.rmtree(root)
    for rel, data in reversed(files.items()):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


@pytest.mark.slow
def test_the_report_is_byte_identical_in_every_process(three_methods: Path, tmp_path: Path) -> None:
    """Renders in one process agree whatever the hash seed, set and dict orders included (which a second
    render in the same process cannot show), and whatever order the results were written in."""
    write_report(three_methods, tmp_path / "here", ReportOptions(formats=("md", "csv", "tex")))
    here = text_files(tmp_path / "here")
    assert sorted(here) == ["report.csv", "report.md", "report.tex"]
    assert render_elsewhere(three_methods, tmp_path / "seed1", "1") == here
    rewrite_in_reverse_order(three_methods)
    assert render_elsewhere(three_methods, tmp_path / "seed2", "2") == here


def test_errors_for_missing_or_empty_results(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="does not exist") as err:
        write_report(tmp_path / "nope", tmp_path / "out")
    assert "\n" not in str(err.value) and "bench run" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match=r"no results in .*empty/: run `bench run") as err:
        write_report(tmp_path / "empty", tmp_path / "out")
    assert "\n" not in str(err.value)
    bad = fake_run(tmp_path / "bad", "tau", 0, metrics(1.0)) / store.RESULT_FILE
    bad.write_text("{")
    with pytest.raises(BenchError, match="no readable results") as err:
        write_report(tmp_path / "bad", tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_cli_report_options(bench, three_methods: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = bench("report", "-r", three_methods, "-o", out, "--format", "tex,csv", "--per-frame", "--clipped")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "report.csv", "report.tex"]
    assert "Per-frame MSE" in (out / "report.tex").read_text()
    res = bench("report", "-r", three_methods, "-o", out, "--samples", "1", "--no-figures")
    assert res.exit_code == 0, res.output
    res = bench("report", "-r", three_methods, "-o", out, "--samples", "-1")
    assert res.exit_code == 2 and "--samples" in res.output


def test_a_report_directory_never_keeps_outputs_of_an_earlier_report(three_methods, tmp_path):
    out = tmp_path / "out"
    first = write_report(three_methods, out, ReportOptions(formats=("md", "csv")))
    assert (out / "report.csv").exists() and any(p.suffix == ".png" for p in first)
    users_png = out / "figures" / "curves_other_0000.png"
    users_png.write_bytes(b"not from this report")  # the user's: kept (tests/test_store_safety.py has the rest)
    second = write_report(three_methods, out, ReportOptions(formats=("md",), figures=False))
    assert second == [out / "report.md"]
    assert not (out / "report.csv").exists() and list((out / "figures").glob("*.png")) == [users_png]
