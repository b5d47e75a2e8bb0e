"""Published numbers in the report: the transcription, SSIM/PSNR per code convention, two printed
values for one cell, and the ablation, pretraining (PLA-SM Table VII) and sweep layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.report.published import PUBLISHED_PATH, load_published
from bench.report import ReportOptions, write_report
from report_builders import fake_run, metrics, write_audit
from test_report import ms, section, table_after

# ------------------------------------------------------------------------------------ transcription


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
    assert one[("PLA-SM", "II", "mau", "taxibj", 4)].starred == ("mae", "mse", "ssim")
    assert one[("PLA-SM", "III", "plasm", "kitti_caltech", 1)].scale == {"mse": None}
    assert one[("PLA-SM", "V", "plasm", "mmnist", 10)].text == {"flops_g": "9.6", "train_s": "70", "fps": "310",
                                                               "params_m": "19.3", "mse": "18.4"}
    assert one[("PLA-SM", "VII", "simvp:sm", "mmnist", 10)].text == {"mse": "22.3", "mae": "66.4", "ssim": "0.950"}
    assert one[("PLA-SM", "VIII", "plasm:r0=0.96", "mmnist", 10)].value("mse") == 18.4
    assert one[("PLA-SM", "IX", "plasm:mask-sm:r=0.05", "kth", 20)].text == {"ssim": "0.905", "psnr": "33.59"}
    assert one[("PLA-SM", "XI", "plasm:heads=16", "taxibj", 4)].raw("mse") == pytest.approx(0.402)
    assert len(pub.find("mmnist", 10, kind="comparison")) == 13 + 11
    assert len(pub.find(paper="PLA-SM", kind="sweep")) == (12 + 4 + 5) * 5
    assert pub.display_scale("human36m") == {"mse": 0.1, "mae": 0.01}


def test_published_method_keys_are_registry_keys() -> None:
    from bench.spec.registry import parse_method_key

    pub = load_published()
    keys = sorted({e.method for e in pub.entries if e.ours})
    assert {"tau", "simvp", "plasm", "convlstm", "predrnn"} <= set(keys)  # never an empty loop
    for key in keys:
        assert parse_method_key(key).label == key


def test_every_ssim_and_psnr_is_tagged_with_its_code_convention(tmp_path: Path) -> None:
    pub = load_published()
    one = {(e.paper, e.table, e.method, e.dataset, e.pred_len): e for e in pub.entries}
    assert all(e.ssim_convention in ("legacy", "uint8", "unknown") for e in pub.entries if "ssim" in e.text)
    assert all(e.psnr_convention in ("float", "uint8", "uint8-wrap", "unknown") for e in pub.entries if "psnr" in e.text)
    # SimVP/OpenSTL family: float frames (legacy); PredRNN family: uint8 frames; cited elsewhere: unknown
    assert one[("TAU", "2", "simvp", "mmnist", 10)].ssim_convention == "legacy"
    assert one[("PLA-SM", "II", "predrnn", "mmnist", 10)].ssim_convention == "uint8"
    assert one[("PLA-SM", "II", "predrnnv2", "taxibj", 4)].ssim_convention == "unknown"  # re-run, code not stated
    assert one[("TAU", "2", "convlstm", "mmnist", 10)].ssim_convention == "unknown"
    # SimVP's and PLA-SM's released metric code wraps PSNR in uint8; TAU's code version is not stated
    assert one[("PLA-SM", "IV", "simvp", "kth", 20)].psnr_convention == "uint8-wrap"
    assert one[("PLA-SM", "IV", "plasm", "kth", 20)].psnr_convention == "uint8-wrap"
    assert one[("TAU", "5", "tau", "kth", 20)].psnr_convention == "unknown"
    # an untagged SSIM is refused
    doc = json.loads(PUBLISHED_PATH.read_text(encoding="utf-8"))
    del next(e for e in doc["entries"] if "ssim" in e["values"])["ssim_convention"]
    bad = tmp_path / "published.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(BenchError, match="ssim_convention"):
        load_published(bad)


def test_two_printed_values_for_one_cell() -> None:
    pub = load_published()
    found = {(d.method, d.metric): d.values for d in pub.disagreements("mmnist", 10, ["simvp", "tau", "convlstm"])}
    assert found == {("simvp", "mae"): (("68.9", ("TAU Table 2", "PLA-SM Table VII")), ("69.9", ("PLA-SM Table II",)))}
    # 33.1 (TAU Table 4, PLA-SM Table III) and 33.12 (PLA-SM Table VII) agree at the coarser precision
    assert pub.disagreements("kitti_caltech", 1, ["simvp"]) == []


def test_synthetic_disagreement_and_agreement(tmp_path: Path) -> None:
    doc = json.loads(PUBLISHED_PATH.read_text(encoding="utf-8"))
    base = {"caption": "c", "dataset": "mmnist", "kind": "comparison", "method": "tau", "ours": True, "paper": "X",
            "pred_len": 10, "row": "r", "scale": {}, "ssim_convention": "legacy"}
    doc["entries"] = [{**base, "table": "1", "values": {"mse": "20.0", "ssim": "0.95"}},
                      {**base, "table": "2", "values": {"mse": "20.04", "ssim": "0.96"}},
                      {**base, "table": "3", "values": {"mse": "19.96"}, "scale": {"mse": 1}}]
    path = tmp_path / "published.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    ds = load_published(path).disagreements("mmnist", 10, ["tau"])
    assert [(d.metric, d.values) for d in ds] == [("ssim", (("0.95", ("X Table 1",)), ("0.96", ("X Table 2",))))]


# ------------------------------------------------------------------------------------ in the report


def test_paper_ssim_and_psnr_go_where_their_code_convention_says(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in (0, 1):
        for label in ("predrnn", "convlstm", "simvp"):
            fake_run(root, label, seed, metrics(50.0 + seed))
        for label in ("simvp", "tau"):
            fake_run(root, label, seed, metrics(5.0, ssim=0.8), dataset="kth", frames=(10, 20), shape=(1, 8, 8),
                     digit_source=None)
    md = write_report(root, tmp_path / "out", ReportOptions(figures=False))[0].read_text()
    t = table_after(md, "mmnist[1]")
    header = t["__header__"]
    plain, legacy, unknown = header.index("SSIM↑"), header.index("SSIM (legacy)↑"), \
        header.index("SSIM (paper, code unknown)↑")
    predrnn = t["*predrnn — paper (TAU Table 2)*"]
    assert (predrnn[plain], predrnn[legacy], predrnn[unknown]) == ("0.867", "–", "–")
    simvp = t["*simvp — paper (TAU Table 2)*"]
    assert (simvp[plain], simvp[legacy], simvp[unknown]) == ("–", "0.948", "–")
    convlstm = t["*convlstm — paper (TAU Table 2)*"]
    assert (convlstm[plain], convlstm[legacy], convlstm[unknown]) == ("–", "–", "0.707")
    assert t["predrnn"][unknown] == "–"  # a column of paper values only
    notes = section(md, "mmnist[1]")
    assert "\"SSIM\": uint8 frames" in notes and "\"SSIM (legacy)\": float frames" in notes
    t = table_after(md, "kth[1]")
    psnr = t["__header__"].index("PSNR↑")
    assert t["*simvp — paper (PLA-SM Table IV)*"][psnr] == "33.72‡"
    assert t["*tau — paper (TAU Table 5)*"][psnr] == "34.13§"
    notes = section(md, "kth[1]")
    assert "‡ uint8-wrap (simvp)" in notes and "§ unknown (tau)" in notes and "wrap modulo 256" in notes


def test_report_names_both_sources_of_a_cell(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in (0, 1):
        fake_run(root, "simvp", seed, metrics(30.0 + seed))
    md = write_report(root, tmp_path / "out", ReportOptions(figures=False))[0].read_text()
    t = table_after(md, "mmnist[1]")
    mae = t["__header__"].index("MAE↓")
    assert t["*simvp — paper (TAU Table 2)*"][mae] == "68.9" and t["*simvp — paper (PLA-SM Table II)*"][mae] == "69.9"
    assert "two values for simvp MAE on mmnist (→10): 68.9 (TAU Table 2, PLA-SM Table VII) vs 69.9 (PLA-SM Table II)" \
        in section(md, "mmnist[1]")


# ------------------------------------------------------------------------------------ layouts


def test_pretraining_ablation_in_the_layout_of_table_vii(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in (0, 1):
        fake_run(root, "simvp", seed, metrics(24.0 + seed))
        fake_run(root, "simvp:sm", seed, metrics(21.0 + seed))
        fake_run(root, "simvp", seed, metrics(0.42, mae=16.3), dataset="taxibj", frames=(4, 4), shape=(2, 8, 8),
                 digit_source=None)
        fake_run(root, "simvp:sm", seed, metrics(0.40, mae=15.8), dataset="taxibj", frames=(4, 4), shape=(2, 8, 8),
                 digit_source=None)
    md = write_report(root, tmp_path / "out", ReportOptions(figures=False))[0].read_text()
    t = table_after(md, "simvp: variants")
    header = t["__header__"]
    mse, tmse = header.index("mmnist[1] MSE↓"), header.index("taxibj[1] MSE↓ (×100)")
    assert list(t)[1:3] == ["simvp", "simvp:sm"]
    assert t["simvp:sm"][mse] == f"**{ms([21.0, 22.0])}**" and t["simvp"][mse] == f"<u>{ms([24.0, 25.0])}</u>"
    assert t["simvp:sm"][tmse].startswith("**40.00")
    no_pre = t["*simvp — paper (PLA-SM Table VII: SimVP [10] (no pretraining))*"]
    pre = t["*simvp:sm — paper (PLA-SM Table VII: SimVP [10] + pretraining)*"]
    assert (no_pre[mse], pre[mse], no_pre[tmse], pre[tmse]) == ("23.8", "22.3", "41.4", "40.8")
    assert pre[header.index("mmnist[1] SSIM (legacy)↑")] == "0.950"
    notes = section(md, "simvp: variants")
    assert "layout of PLA-SM Table VII" in notes and "two values for simvp MAE" in notes


def test_ablation_sweep_and_efficiency_tables(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in (0, 1):
        fake_run(root, "plasm", seed, metrics(18.0 + 0.2 * seed), hparams={"r0": 0.96}, flops=9.6e9)
        fake_run(root, "plasm:base", seed, metrics(23.0 + seed), hparams={"r0": 0.96}, flops=9.0e9)
        fake_run(root, "plasm:pla", seed, metrics(21.0 + seed), hparams={"r0": 0.96}, flops=9.5e9)
        fake_run(root, "plasm:r0=0.5", seed, metrics(20.0 + 0.2 * seed), flops=9.6e9)
        fake_run(root, "plasm:r0=0.9", seed, metrics(19.0 + 0.2 * seed), flops=9.6e9)
        fake_run(root, "simvp", seed, metrics(24.0 + seed), flops=19.4e9, fps=(50.0 + seed,),
                 epoch_seconds=[80.0 + seed])
    write_audit(root, "mmnist", "simvp", params=58_000_000, flops=19_430_000_000, flops_skipped={"aten::gelu": 3},
                fps=123.4, fps_repeats=[120.0, 123.4, 125.0], fps_batch=16, device="cuda", device_name="FakeGPU",
                load_average=0.1)
    md = write_report(root, tmp_path / "out", ReportOptions(figures=False))[0].read_text()
    t = table_after(md, "plasm: variants")
    header = t["__header__"]
    mse = header.index("mmnist[1] MSE↓")
    assert t["plasm"][mse] == f"**{ms([18.0, 18.2])}**" and t["plasm:pla"][mse] == f"<u>{ms([21.0, 22.0])}</u>"
    assert t["plasm:base"][mse] == ms([23.0, 24.0])
    assert t["plasm:base"][header.index("mmnist[1] FLOPs (G)")] == "9.000"
    assert t["*plasm:base — paper (PLA-SM Table VI: (no Mask, no SM, no PLA))*"][mse] == "22.8"
    assert t["*plasm:no-convnext — paper (PLA-SM Table X: PLA (no ConvNeXt))*"][mse] == "24.6"
    assert "simvp" not in t and "plasm:r0=0.5" not in t
    assert not any("Table VII" in k for k in t)  # one pretraining row of plasm is no with/without pair
    t = table_after(md, "plasm: sweep of r0")
    rows = [k for k in t if k != "__header__"]
    assert rows[:3] == ["r0 = 0.5 (plasm:r0=0.5)", "r0 = 0.9 (plasm:r0=0.9)", "r0 = 0.96 (default: plasm)"]
    assert t["r0 = 0.9 (plasm:r0=0.9)"][1] == f"<u>{ms([19.0, 19.2])}</u>"
    assert t["r0 = 0.96 (default: plasm)"][1] == f"**{ms([18.0, 18.2])}**"
    assert t["*r0 = 0.9 — paper (PLA-SM Table VIII)*"][1] == "19.5"
    t = table_after(md, "Efficiency, mmnist[1]")
    header = t["__header__"]
    assert t["simvp"][header.index("FLOPs (G)↓")] == "19.430"
    assert t["simvp"][header.index("Test (fps)↑")] == "123.4 (120.0–125.0)"
    assert t["simvp"][header.index("#Params (M)↓")] == "58.000"
    assert t["simvp"][header.index("Train (s/epoch)↓")] == "80.50 (80.00–81.00)"
    assert "audit (FakeGPU; load 0.10)" in t["simvp"][-1] and "runs" in t["plasm"][-1]
    assert t["*simvp — paper (PLA-SM Table V)*"][header.index("Train (s/epoch)↓")] == "86"
    assert "aten::gelu ×3" in md.split("Cost audit", 1)[1]


def test_a_sweep_holds_only_runs_that_differ_in_its_hyperparameter(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in (0, 1):
        fake_run(root, "plasm", seed, metrics(18.0 + 0.2 * seed), hparams={"r0": 0.96, "lr": 0.001})
        fake_run(root, "plasm:r0=0.9", seed, metrics(19.0 + 0.2 * seed), hparams={"lr": 0.001})
        # --set lr=0.005 changed another value: neither the default row nor a member of the r0 sweep
        fake_run(root, "plasm", seed, metrics(30.0 + seed), hparams={"r0": 0.96}, sets={"lr": 0.005})
    md = write_report(root, tmp_path / "out", ReportOptions(figures=False))[0].read_text()
    t = table_after(md, "plasm: sweep of r0")
    ours = [k for k in t if k != "__header__" and "paper" not in k]
    assert ours == ["r0 = 0.9 (plasm:r0=0.9)", "r0 = 0.96 (default: plasm [lr=0.001])"], ours
    assert "runs with --set are left out" in section(md, "plasm: sweep of r0")
