"""The reporter: tables (numbers, ranks, comparability groups, scales, published rows), skipped
files, figures, determinism, errors, published.json; plus real tiny runs through the runner."""

from __future__ import annotations

import ast
import csv
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest

from bench import results as store
from bench.errors import BenchError
from bench.figures import REFERENCE_LINE_GID, method_lines
from bench.published import load_published
from bench.report import build_context, curves_figure, write_report

# ------------------------------------------------------------------------------------ helpers


def fake_run(root: Path, label: str, seed: int, test: dict, *, dataset: str = "mmnist", epochs: int = 2,
             digit_source: str | None = "mnist-idx", tiny: bool = False, frames: tuple[int, int] = (10, 10),
             shape: tuple[int, int, int] = (1, 16, 16), hparams: dict | None = None, flops: float = 1e9,
             params: int = 1_000_000, fps: float = 100.0, train_s: float = 10.0, val_mse: list | None = None,
             predictions: bool = True, sets: dict | None = None) -> Path:
    """Write a result.json (and predictions.npz) with exactly the runner's schema (see test_real_runs)."""
    parts = label.split(":")
    variant = next((p for p in parts[1:] if "=" not in p), None)
    overrides = {p.split("=")[0]: ast.literal_eval(p.split("=")[1]) for p in parts[1:] if "=" in p}
    hp = {"epochs": epochs, "batch_size": 16, "lr": 0.01, **(hparams or {}), **overrides, **(sets or {})}
    c, h, w = shape
    val_mse = val_mse or [test["mse"] * (1.5 - 0.5 * e / epochs) for e in range(1, epochs + 1)]
    history = [{"epoch": e, "train_loss": 0.1, "val_mse": v, "val_mae": v * 2, "lr": 0.01, "seconds": train_s,
                "eval_seconds": 0.1, "train_samples": 8} for e, v in enumerate(val_mse, start=1)]
    result = {
        "schema": store.SCHEMA, "status": "complete",
        "key": {"dataset": dataset, "method": parts[0], "variant": variant, "overrides": overrides,
                "label": label, "seed": seed},
        "config": {"hparams": hp, "epochs": epochs, "batch_size": 16, "quick": False, "tiny": tiny,
                   "sizes": {"train": 8, "val": 4, "test": 4}, "data_seed": 0, "device": "cpu",
                   "pred_len": frames[1], "sets": dict(sets or {}), "selection": "best validation MSE"},
        "dataset": {"name": dataset, "in_frames": frames[0], "out_frames": frames[1], "channels": c, "height": h,
                    "width": w, "info": {} if digit_source is None else {"digit_source": digit_source}},
        "method": {"name": parts[0], "citation": "", "recurrent": False},
        "environment": {"python": "3.11", "device": "cpu", "device_name": "cpu (test)"},
        "metric_convention": "test convention: mse summed over the pixels of a frame",
        "history": history, "best_epoch": epochs, "test": test,
        "efficiency": {"params": params, "trainable_params": params, "flops": flops, "flops_skipped": {},
                       "fps": fps, "fps_batch": 16, "flops_convention": "fvcore",
                       "train_seconds_per_epoch": train_s, "train_samples_per_second": 1.0},
        "pretrain": None, "timing": {"started": "x", "finished": "y", "wall_seconds": 1.0},
    }
    out = store.run_dir(root, dataset, label, seed)
    store.atomic_write_json(out / store.RESULT_FILE, result)
    if predictions:
        rng = np.random.default_rng(seed + len(label))
        truth_rng = np.random.default_rng(0)
        inputs = truth_rng.integers(0, 255, (2, frames[0], c, h, w), dtype=np.uint8)
        truth = truth_rng.integers(0, 255, (2, frames[1], c, h, w), dtype=np.uint8)
        pred = rng.integers(0, 255, truth.shape, dtype=np.uint8)
        store.atomic_save_npz(out / "predictions.npz", inputs=inputs, truth=truth, pred=pred)
    return out


def metrics(mse: float, mae: float | None = None, ssim: float = 0.9, psnr: float = 30.0) -> dict:
    return {"mse": mse, "mae": mae if mae is not None else 3 * mse, "mse_pixel": mse / 256,
            "mae_pixel": (mae or 3 * mse) / 256, "psnr": psnr, "ssim": ssim, "ssim_legacy": ssim + 0.01}


def table_after(md: str, heading_part: str) -> dict[str, list[str]]:
    """Rows (first cell -> cells) of the first markdown table after the heading containing ``heading_part``."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and heading_part in line)
    rows: dict[str, list[str]] = {}
    i = start + 1
    while not lines[i].startswith("|"):
        i += 1
    header = [c.strip() for c in lines[i].strip("|").split(" | ")]
    rows["__header__"] = header
    i += 2
    while i < len(lines) and lines[i].startswith("|"):
        cells = [c.strip() for c in lines[i].strip().strip("|").split(" | ")]
        rows[cells[0]] = cells
        i += 1
    return rows


def headings(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("#")]


def ms(values: list[float], d: int = 2) -> str:
    return f"{statistics.mean(values):.{d}f} ± {statistics.stdev(values):.{d}f}"


# ------------------------------------------------------------------------------------ tables


@pytest.fixture()
def three_methods(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    values = {"tau": ([20.0, 22.5], [0.95, 0.96]), "simvp": ([30.0, 31.0], [0.97, 0.975]),
              "convlstm": ([100.0, 110.0], [0.7, 0.71])}
    for label, (mses, ssims) in values.items():
        for seed, (m, s) in enumerate(zip(mses, ssims)):
            fake_run(root, label, seed, metrics(m, ssim=s))
    return root


def test_numbers_ranks_and_paper_rows(three_methods: Path, tmp_path: Path) -> None:
    md = write_report(three_methods, tmp_path / "out", figures=False)[0].read_text()
    t = table_after(md, "mmnist[1]")
    header = t["__header__"]
    mse, ssim, legacy = header.index("MSE↓"), header.index("SSIM↑"), header.index("SSIM (legacy)↑")
    assert header[1] == "n" and "MAE↓" in header and "PSNR↑" in header
    # mean ± sample std over the seeds; best bold, second underlined (MSE: lower is better)
    assert t["tau"][mse] == f"**{ms([20.0, 22.5])}**"
    assert t["simvp"][mse] == f"<u>{ms([30.0, 31.0])}</u>"
    assert t["convlstm"][mse] == ms([100.0, 110.0])
    assert t["tau"][1] == "2"
    # SSIM: higher is better
    assert t["simvp"][ssim] == f"**{ms([0.97, 0.975], 4)}**"
    assert t["tau"][ssim] == f"<u>{ms([0.95, 0.96], 4)}</u>"
    assert t["convlstm"][ssim] == ms([0.7, 0.71], 4)
    # published rows beside ours, never ranked; paper SSIM sits in the legacy column
    paper = t["*tau — paper (TAU Table 2)*"]
    assert paper[1] == "paper" and paper[mse] == "19.8" and paper[legacy] == "0.957" and paper[ssim] == "–"
    assert t["*simvp — paper (PLA-SM Table II)*"][header.index("MAE↓")] == "69.9"
    assert not any("**" in c or "<u>" in c for row, cells in t.items() if "paper" in row for c in cells)
    assert "cpu (test)" in t["tau"][-1]
    notes = md.split("mmnist[1]", 1)[1]
    assert "data_range is 2" in notes and "SSIM (legacy)" in notes and "never ranked" in notes
    assert "test convention: mse summed over the pixels of a frame" in notes
    assert "2 epochs" in headings(md)[[i for i, h in enumerate(headings(md)) if "mmnist[1]" in h][0]]


def test_incomparable_runs_get_separate_tables(tmp_path: Path) -> None:
    root = tmp_path / "results"  # one run per (dataset, label, seed): groups differ by label or seed
    for seed in (0, 1):
        fake_run(root, "tau", seed, metrics(20.0 + seed), epochs=2)
        fake_run(root, "simvp", seed, metrics(30.0 + seed), epochs=2)
        fake_run(root, "convlstm", seed, metrics(10.0 + seed), epochs=5)  # better, but a different budget
        fake_run(root, "predrnn", seed, metrics(15.0 + seed), epochs=5)
        fake_run(root, "plasm", seed, metrics(1.0 + seed), epochs=2, digit_source="sklearn-digits")
        fake_run(root, "tau:no-ddr", seed, metrics(5.0 + seed), epochs=2, frames=(10, 20))  # another horizon
        fake_run(root, "tau:no-sa", seed, metrics(2.0 + seed), epochs=2, tiny=True)  # tiny model
    fake_run(root, "plasm:base", 0, metrics(3.0), epochs=3)  # same label, seeds run with different budgets
    fake_run(root, "plasm:base", 1, metrics(4.0), epochs=4)
    md = write_report(root, tmp_path / "out", figures=False)[0].read_text()
    heads = [h for h in headings(md) if h.startswith("#### mmnist[")]
    assert len(heads) == 7, heads
    by_rows = {}
    for h in heads:
        t = table_after(md, h)
        by_rows.setdefault(tuple(sorted(k for k in t if k != "__header__" and "paper" not in k)), []).append((h, t))
    [(h, t)] = by_rows[("simvp", "tau")]
    assert "2 epochs" in h and "digits: mnist-idx" in h and "10→10" in h and "paper-size" in h
    assert "data info" not in h  # identical everywhere: not shown
    assert t["tau"][2].startswith("**") and t["simvp"][2].startswith("<u>")
    [(h, t)] = by_rows[("convlstm", "predrnn")]
    assert "5 epochs" in h
    assert t["convlstm"][2].startswith("**") and t["predrnn"][2].startswith("<u>")
    [(h, t)] = by_rows[("plasm",)]
    assert "sklearn-digits" in h and not t["plasm"][2].startswith("**")  # alone: not ranked
    assert "10→20" in by_rows[("tau:no-ddr",)][0][0]
    assert "tiny models" in by_rows[("tau:no-sa",)][0][0]
    base = by_rows[("plasm:base",)]
    assert sorted(h.split(" · ")[2] for h, _ in base) == ["3 epochs", "4 epochs"]
    assert sorted(t["plasm:base"][1:3] for _, t in base) == [["1", "3.00"], ["1", "4.00"]]  # never averaged
    section = md.split(by_rows[("plasm",)][0][0], 1)[1].split("####", 1)[0]
    assert "not MNIST: not comparable" in section and "differ from this one in: frames, budget, model, data;" in section
    tiny_section = md.split(by_rows[("tau:no-sa",)][0][0], 1)[1].split("####", 1)[0]
    assert "Tiny smoke-test models" in tiny_section
    assert "7 groups of runs that are not comparable" in md


def test_corrupted_results_are_listed_as_skipped(three_methods: Path, tmp_path: Path) -> None:
    broken = store.run_dir(three_methods, "mmnist", "predrnn", 0) / store.RESULT_FILE
    broken.parent.mkdir(parents=True)
    broken.write_text('{"schema": 1, "status": "complete", "key": ')  # truncated by hand
    edited = fake_run(three_methods, "tau:no-ddr", 0, metrics(1.0)) / store.RESULT_FILE
    data = json.loads(edited.read_text())
    data["test"]["mse"] = "small"
    edited.write_text(json.dumps(data))
    md = write_report(three_methods, tmp_path / "out", figures=False)[0].read_text()
    skipped = md.split("## Skipped files", 1)[1].split("\n## ", 1)[0]
    assert "predrnn" in skipped and "not valid JSON" in skipped
    assert "tau+no-ddr" in skipped and "'mse'" in skipped
    t = table_after(md, "mmnist[1]")
    assert "predrnn" not in t and "tau:no-ddr" not in t and "tau" in t


def test_display_scales_and_published_rows(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in (0, 1):
        fake_run(root, "tau", seed, metrics(0.344, mae=15.6, ssim=0.98), dataset="taxibj", frames=(4, 4),
                 shape=(2, 8, 8), digit_source=None)
        fake_run(root, "plasm", seed, metrics(286.0, mae=1230.0, ssim=0.9), dataset="human36m", frames=(4, 4),
                 shape=(3, 8, 8), digit_source=None)
    md = write_report(root, tmp_path / "out", figures=False)[0].read_text()
    t = table_after(md, "taxibj[1]")
    header = t["__header__"]
    assert t["tau"][header.index("MSE↓")] == "34.40 ± 0.00"  # x100 as TAU Table 3 prints it
    assert t["tau"][header.index("MAE↓")] == "15.60 ± 0.00"
    assert t["*tau — paper (TAU Table 3)*"][header.index("MSE↓")] == "34.4"
    assert "MSE ×100" in md.split("taxibj[1]", 1)[1]
    t = table_after(md, "human36m[1]")
    header = t["__header__"]
    assert t["plasm"][header.index("MSE↓")] == "28.60 ± 0.00"  # /10 as PLA-SM Table II prints it
    assert t["plasm"][header.index("MAE↓")] == "12.30 ± 0.00"  # /100
    paper = t["*plasm — paper (PLA-SM Table II)*"]
    assert paper[header.index("MSE↓")] == "28.6" and paper[header.index("MAE↓")] == "12.3"
    assert "MAE /100, MSE /10" in md.split("human36m[1]", 1)[1]


def test_ablation_sweep_and_efficiency_tables(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in (0, 1):
        fake_run(root, "plasm", seed, metrics(18.0 + seed), hparams={"r0": 0.96}, flops=9.6e9)
        fake_run(root, "plasm:base", seed, metrics(23.0 + seed), hparams={"r0": 0.96}, flops=9.0e9)
        fake_run(root, "plasm:pla", seed, metrics(21.0 + seed), hparams={"r0": 0.96}, flops=9.5e9)
        fake_run(root, "plasm:r0=0.5", seed, metrics(20.0 + seed), flops=9.6e9)
        fake_run(root, "plasm:r0=0.9", seed, metrics(19.0 + seed), flops=9.6e9)
        fake_run(root, "simvp", seed, metrics(24.0 + seed), flops=19.4e9, fps=50.0 + seed, train_s=80.0 + seed)
    audit = {"dataset": "mmnist", "label": "simvp", "method": "simvp", "tiny": False, "params": 58_000_000,
             "flops": 19_430_000_000, "flops_skipped": {"aten::gelu": 3}, "fps": 123.4, "fps_batch": 16,
             "device": "cuda", "device_name": "FakeGPU", "environment": {}, "measured": "2024-01-01T00:00:00"}
    store.atomic_write_json(store.audit_path(root, "mmnist", "simvp"), audit)
    md = write_report(root, tmp_path / "out", figures=False)[0].read_text()
    # variants of plasm (TAU Table 6 / PLA-SM Table VI layout), with the papers' rows
    t = table_after(md, "plasm: variants")
    header = t["__header__"]
    mse = header.index("mmnist[1] MSE↓")
    assert t["plasm"][mse] == f"**{ms([18.0, 19.0])}**" and t["plasm:pla"][mse] == f"<u>{ms([21.0, 22.0])}</u>"
    assert t["plasm:base"][mse] == ms([23.0, 24.0])
    assert t["plasm:base"][header.index("mmnist[1] FLOPs (G)")] == "9.000"
    assert t["*plasm:base — paper (PLA-SM Table VI: (no Mask, no SM, no PLA))*"][mse] == "22.8"
    assert t["*plasm:no-convnext — paper (PLA-SM Table X: PLA (no ConvNeXt))*"][mse] == "24.6"
    assert "simvp" not in t and "plasm:r0=0.5" not in t
    # the r0 sweep (PLA-SM Table VIII layout): the default row comes from the run without override
    t = table_after(md, "plasm: sweep of r0")
    rows = [k for k in t if k != "__header__"]
    assert rows[:3] == ["r0 = 0.5 (plasm:r0=0.5)", "r0 = 0.9 (plasm:r0=0.9)", "r0 = 0.96 (default: plasm)"]
    assert t["r0 = 0.9 (plasm:r0=0.9)"][1] == f"<u>{ms([19.0, 20.0])}</u>"
    assert t["r0 = 0.96 (default: plasm)"][1] == f"**{ms([18.0, 19.0])}**"
    assert t["*r0 = 0.9 — paper (PLA-SM Table VIII)*"][1] == "19.5"
    # efficiency (PLA-SM Table V layout): audit figures for simvp, run figures for the others
    t = table_after(md, "Efficiency, mmnist[1]")
    header = t["__header__"]
    assert t["simvp"][header.index("FLOPs (G)↓")] == "19.430"
    assert t["simvp"][header.index("Test (fps)↑")] == "123.4"
    assert t["simvp"][header.index("#Params (M)↓")] == "58.000"
    assert t["simvp"][header.index("Train (s/epoch)↓")] == ms([80.0, 81.0])
    assert "audit (FakeGPU)" in t["simvp"][-1] and "runs" in t["plasm"][-1]
    assert t["*simvp — paper (PLA-SM Table V)*"][header.index("Train (s/epoch)↓")] == "86"
    assert "aten::gelu ×3" in md.split("Cost audit", 1)[1]


def test_csv_and_tex_outputs(three_methods: Path, tmp_path: Path) -> None:
    paths = write_report(three_methods, tmp_path / "out", formats=("md", "csv", "tex"), figures=False)
    names = [p.name for p in paths]
    assert names[:3] == ["report.md", "report.csv", "report.tex"]
    with open(paths[1], newline="") as fh:
        rows = list(csv.DictReader(fh))
    tau = [r for r in rows if r["method"] == "tau" and r["metric"] == "mse" and r["table"].startswith("cmp-")
           and r["row_kind"] == "ours"]
    assert len(tau) == 1 and math.isclose(float(tau[0]["raw_mean"]), 21.25)
    assert math.isclose(float(tau[0]["raw_std"]), statistics.stdev([20.0, 22.5])) and tau[0]["n"] == "2"
    assert tau[0]["rank"] == "1"
    assert any(r["row_kind"] == "paper" and r["source"] == "TAU Table 2" and r["text"] == "19.8" for r in rows)
    tex = paths[2].read_text()
    assert r"\textbf{21.25 $\pm$ 1.77}" in tex and r"\underline{30.50 $\pm$ 0.71}" in tex and r"\toprule" in tex


def test_markdown_is_deterministic(three_methods: Path, tmp_path: Path) -> None:
    a = write_report(three_methods, tmp_path / "a", formats=("md", "csv", "tex"))
    b = write_report(three_methods, tmp_path / "b", formats=("md", "csv", "tex"))
    for pa, pb in zip(a[:3], b[:3]):
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def test_errors_for_missing_or_empty_results(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="does not exist") as err:
        write_report(tmp_path / "nope", tmp_path / "out")
    assert "\n" not in str(err.value) and "bench run" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match=r"no results in .*empty/: run `bench run") as err:
        write_report(tmp_path / "empty", tmp_path / "out")
    assert "\n" not in str(err.value)
    bad = tmp_path / "bad" / "mmnist" / "tau" / "seed0" / store.RESULT_FILE
    bad.parent.mkdir(parents=True)
    bad.write_text("{")
    with pytest.raises(BenchError, match="no readable results") as err:
        write_report(tmp_path / "bad", tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------ figures


def _check_png(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4) and img.shape[0] >= 200 and img.shape[1] >= 300
    assert float(img[..., :3].std()) > 0.01
    return img


def test_figures_are_real_pngs_with_one_line_per_method(three_methods: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = write_report(three_methods, out, mse_line=35.0)
    md = paths[0].read_text()
    pngs = [p for p in paths if p.suffix == ".png"]
    assert {p.name.split("_mmnist")[0] for p in pngs} == {"curves", "mse_flops", "samples"}
    for p in pngs:
        assert f"]({p.relative_to(out).as_posix()})" in md
    curves = _check_png(next(p for p in pngs if p.name.startswith("curves")))
    assert curves.shape[:2] == (420, 700)  # 7 x 4.2 inches at 100 dpi
    samples = _check_png(next(p for p in pngs if p.name.startswith("samples")))
    assert samples.shape[0] > samples.shape[1] / 2  # 8 rows: inputs, truth, 3 x (prediction, error)
    ctx, _, _ = build_context(three_methods, out, mse_line=35.0)
    fig = curves_figure(ctx, ctx.groups[0])
    assert method_lines(fig) == ["convlstm", "simvp", "tau"]
    ref = [ln for ln in fig.axes[0].lines if ln.get_gid() == REFERENCE_LINE_GID]
    assert len(ref) == 1 and list(ref[0].get_ydata()) == [35.0, 35.0]
    tau_line = next(ln for ln in fig.axes[0].lines if ln.get_label() == "tau")
    expected = [np.mean([m * (1.5 - 0.5 * e / 2) for m in (20.0, 22.5)]) for e in (1, 2)]
    assert np.allclose(tau_line.get_ydata(), expected) and list(tau_line.get_xdata()) == [1, 2]


def test_unreadable_predictions_are_reported_not_fatal(three_methods: Path, tmp_path: Path) -> None:
    (store.run_dir(three_methods, "mmnist", "tau", 0) / "predictions.npz").write_bytes(b"not a zip")
    md = write_report(three_methods, tmp_path / "out")[0].read_text()
    skipped = md.split("## Skipped files", 1)[1].split("\n## ", 1)[0]
    assert "predictions.npz" in skipped and "tau" in skipped


# ------------------------------------------------------------------------------------ published numbers


def test_published_numbers_transcription() -> None:
    pub = load_published()
    tables = {(p, t) for p, t, _ in pub.tables()}
    assert tables == {("TAU", str(i)) for i in range(2, 7)} | {("PLA-SM", t) for t in
                                                                ("II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI")}
    one = {(e.paper, e.table, e.method, e.dataset, e.pred_len): e for e in pub.entries}
    assert one[("TAU", "2", "tau", "mmnist", 10)].text == {"mse": "19.8", "mae": "60.3", "ssim": "0.957"}
    assert one[("TAU", "3", "tau", "taxibj", 4)].scale == {"mse": 100.0}
    assert one[("TAU", "5", "tau", "kth", 40)].text == {"ssim": "0.897", "psnr": "33.01"}
    assert one[("TAU", "6", "tau:conv", "mmnist", 10)].text == {"mse": "58.9", "flops_g": "6.11"}
    stam = one[("PLA-SM", "II", "STAM", "human36m", 4)]
    assert stam.text == {"mae": "13.2", "ssim": "0.875"} and stam.scale == {"mae": 0.01}
    assert one[("PLA-SM", "II", "MAU", "taxibj", 4)].starred == ("mae", "mse", "ssim")
    assert one[("PLA-SM", "III", "plasm", "kitti_caltech", 1)].scale == {"mse": None}
    assert one[("PLA-SM", "V", "plasm", "mmnist", 10)].text == {"flops_g": "9.6", "train_s": "70", "fps": "310",
                                                               "params_m": "19.3", "mse": "18.4"}
    assert one[("PLA-SM", "VIII", "plasm:r0=0.96", "mmnist", 10)].value("mse") == 18.4
    assert one[("PLA-SM", "IX", "plasm:mask-sm:r=0.05", "kth", 20)].text == {"ssim": "0.905", "psnr": "33.59"}
    assert one[("PLA-SM", "XI", "plasm:heads=16", "taxibj", 4)].raw("mse") == pytest.approx(0.402)
    assert len(pub.find("mmnist", 10, kind="comparison")) == 13 + 11
    assert len(pub.find(paper="PLA-SM", kind="sweep")) == (12 + 4 + 5) * 5
    assert pub.display_scale("human36m") == {"mse": 0.1, "mae": 0.01}


def test_published_method_keys_are_registry_keys() -> None:
    from bench.registry import parse_method_key

    pub = load_published()
    for key in sorted({e.method for e in pub.entries if e.ours}):
        assert parse_method_key(key).label == key


# ------------------------------------------------------------------------------------ real runs


@pytest.fixture(scope="module")
def real_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bench.registry import get_dataset, parse_method_key
    from bench.runner import RunOptions, run_one

    root = tmp_path_factory.mktemp("real") / "results"
    data = get_dataset("mmnist").with_frames(4, 4)  # real Moving MNIST sequences, shorter for speed
    opts = RunOptions(results=root, quick=True, tiny=True, epochs=2, sizes={"train": 4, "val": 2, "test": 2},
                      efficiency=True, fps_batch=2, log=lambda s: None)
    for method in ("simvp", "tau"):
        for seed in (0, 1):
            run_one(parse_method_key(method), data, seed, opts)
    return root


def test_real_runs(real_results: Path, tmp_path: Path) -> None:
    runs, problems = store.load_results(real_results)
    assert len(runs) == 4 and not problems
    # the synthesized results above have exactly the runner's schema
    fake = json.loads((fake_run(tmp_path / "fake", "tau", 0, metrics(1.0)) / store.RESULT_FILE).read_text())
    real = runs[0]
    assert set(fake) == set(real) - {"_dir"}
    for part in ("key", "config", "dataset", "efficiency"):
        assert set(fake[part]) <= set(real[part]), part
    assert set(fake["test"]) == set(real["test"])
    assert set(fake["history"][0]) <= set(real["history"][0])

    out = tmp_path / "out"
    paths = write_report(real_results, out, formats=("md", "csv"), mse_line=300.0)
    md = paths[0].read_text()
    heads = [h for h in headings(md) if h.startswith("#### mmnist[")]
    assert len(heads) == 1 and "4→4" in heads[0] and "2 epochs" in heads[0] and "tiny models" in heads[0]
    digit_source = real["dataset"]["info"]["digit_source"]
    assert f"digits: {digit_source}" in heads[0]
    t = table_after(md, "mmnist[1]")
    header = t["__header__"]
    for label in ("simvp", "tau"):
        mine = [r for r in runs if r["key"]["label"] == label]
        for metric, col, d in (("mse", "MSE↓", 2), ("ssim", "SSIM↑", 4), ("psnr", "PSNR↑", 2)):
            text = t[label][header.index(col)].replace("**", "").replace("<u>", "").replace("</u>", "")
            assert text == ms([r["test"][metric] for r in mine], d), (label, metric)
    mses = {label: statistics.mean(r["test"]["mse"] for r in runs if r["key"]["label"] == label)
            for label in ("simvp", "tau")}
    best = min(mses, key=mses.get)
    assert t[best][header.index("MSE↓")].startswith("**")
    assert "No published numbers" in md  # 4 -> 4 frames: no paper table matches
    pngs = [p for p in paths if p.suffix == ".png"]
    assert len(pngs) == 3
    for p in pngs:
        _check_png(p)
    ctx, _, _ = build_context(real_results, out)
    assert method_lines(curves_figure(ctx, ctx.groups[0])) == ["simvp", "tau"]
