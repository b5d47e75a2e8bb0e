"""The papers' tables in their own layout (bench.report.paper_layouts): the comparison tables (TAU Table 2 ...)
with our rows for the methods we run, and PLA-SM Table VII whole (SimVP, PhyDNet and MAU without and with SM
pretraining)."""

from __future__ import annotations

import re
from pathlib import Path

from bench.report import ReportOptions, write_report
from report_builders import fake_run, metrics
from test_report import section, table_after


def num(cell: str) -> float:
    """The number in a cell, without the rank marks (bold, underline)."""
    return float(re.sub(r"</?u>|[*]", "", cell))


KEYS = ("phydnet", "phydnet:sm", "mau", "mau:sm", "simvp", "simvp:sm")  # the paper's row order


def test_table_vii_shows_every_method_without_and_with_sm_beside_the_paper(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for i, key in enumerate(reversed(KEYS)):  # written in another order than the paper's
        fake_run(root, key, 0, metrics(30.0 + i))
        if key.startswith("mau"):
            fake_run(root, key, 0, metrics(0.45 + i / 100, mae=16.0), dataset="taxibj", frames=(4, 4),
                     shape=(2, 8, 8), digit_source=None)
    md = write_report(root, tmp_path / "out", ReportOptions(figures=False))[0].read_text()
    t = table_after(md, "PLA-SM Table VII: spatial-masking")
    header = t["__header__"]
    mse, tmse = header.index("mmnist[1] MSE↓"), header.index("taxibj[1] MSE↓ (×100)")
    ours = [k for k in t if k in KEYS]
    assert ours == list(KEYS) and list(t)[1:7] == list(KEYS)  # our six rows first, in the paper's order
    assert [num(t[k][mse]) for k in KEYS] == [35.0, 34.0, 33.0, 32.0, 31.0, 30.0]
    assert num(t["mau:sm"][tmse]) == 47.0 and num(t["mau"][tmse]) == 48.0 and t["phydnet"][tmse] == "–"
    paper = {k: v for k, v in t.items() if k.startswith("*")}
    assert paper["*phydnet:sm — paper (PLA-SM Table VII: PhyDNet [14] + pretraining)*"][mse] == "23.2"
    assert paper["*mau:sm — paper (PLA-SM Table VII: MAU [9] + pretraining)*"][tmse] == "41.4"
    assert paper["*mau — paper (PLA-SM Table VII: MAU [9] (no pretraining))*"][mse] == "27.6"
    assert paper["*simvp:sm — paper (PLA-SM Table VII: SimVP [10] + pretraining)*"][mse] == "22.3"
    assert "*plasm — paper (PLA-SM Table VII: PLA-SM + pretraining)*" in paper  # no run: paper row only
    assert "repeat its Table II" in section(md, "PLA-SM Table VII: spatial-masking")
    # the per-method variant tables are still there
    assert "### phydnet: variants" in md and "### mau: variants" in md and "### simvp: variants" in md


def test_no_table_vii_without_a_run_of_its_methods(tmp_path: Path) -> None:
    root = tmp_path / "results"
    fake_run(root, "tau", 0, metrics(20.0))
    md = write_report(root, tmp_path / "out", ReportOptions(figures=False))[0].read_text()
    assert "PLA-SM Table VII: spatial-masking" not in md


def test_every_phydnet_and_mau_row_of_the_papers_is_ours() -> None:
    """TAU Tables 2-3, PLA-SM Tables II, III, V and VII: the rows are our registry keys."""
    from bench.report.published import load_published

    rows = [e for e in load_published().entries if e.row.startswith(("PhyDNet", "MAU"))]
    assert len(rows) == 25 and all(e.ours for e in rows)
    assert {e.method for e in rows} == {"phydnet", "phydnet:sm", "mau", "mau:sm"}
    assert {e.method for e in rows if "pretraining" in e.row and "no pretraining" not in e.row} == \
        {"phydnet:sm", "mau:sm"}


TABLE_2 = ("convlstm", "predrnn", "predrnnpp", "mim", "e3dlstm", "phydnet", "simvp", "crevnet", "tau")  # paper order


def test_tau_table_2_has_our_rows_in_the_papers_order_and_every_printed_row(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for i, key in enumerate(sorted(TABLE_2)):  # written in another order than the paper's
        fake_run(root, key, 0, metrics(40.0 + i))
    fake_run(root, "mau", 0, metrics(30.0))  # not a row of TAU Table 2 (PLA-SM Table II's)
    fake_run(root, "simvp", 0, metrics(0.45, mae=16.0), dataset="taxibj", frames=(4, 4), shape=(2, 8, 8),
             digit_source=None)  # a group on a dataset Table 2 does not print
    md = write_report(root, tmp_path / "out", ReportOptions(figures=False))[0].read_text()
    t = table_after(md, "TAU Table 2: Quantitative results")
    header = t["__header__"]
    assert [c for c in header if c.endswith("MSE↓")] == ["mmnist[1] MSE↓"]  # the taxibj group is not a block
    ours = [k for k in t if not k.startswith("*") and k != "__header__"]
    assert ours == list(TABLE_2)  # mau is not a row of this table
    assert [num(t[k][header.index("mmnist[1] MSE↓")]) for k in TABLE_2] == [40.0 + sorted(TABLE_2).index(k)
                                                                           for k in TABLE_2]
    paper = [k for k in t if k.startswith("*")]
    assert len(paper) == 13 and paper[1] == "*VPN — paper (TAU Table 2: VPN [44])*"
    assert t["*tau — paper (TAU Table 2: Ours)*"][header.index("mmnist[1] MSE↓")] == "19.8"
    assert t["*mim — paper (TAU Table 2: MIM [98])*"][header.index("mmnist[1] SSIM (paper, code unknown)↑")] == "0.910"
    assert "Coverage: 9 of its 9 implemented methods measured here; the paper prints 13 rows." in \
        section(md, "TAU Table 2: Quantitative results")
    # TaxiBJ's comparison tables get the taxibj group, and only it
    t3 = table_after(md, "TAU Table 3: Quantitative results")
    assert [c for c in t3["__header__"] if "MSE" in c] == ["taxibj[1] MSE↓ (×100)"]
    assert [k for k in t3 if not k.startswith("*") and k != "__header__"] == ["simvp"]
    assert "TAU Table 4" not in md and "TAU Table 5" not in md  # no Caltech or KTH run


def test_the_papers_tables_are_their_own_section(tmp_path: Path) -> None:
    root = tmp_path / "results"
    fake_run(root, "simvp", 0, metrics(20.0))  # a row of both (tau is not one of PLA-SM Table II)
    md = write_report(root, tmp_path / "out", ReportOptions(figures=False))[0].read_text()
    heads = [line for line in md.splitlines() if line.startswith("## ")]
    assert heads.index("## The papers' comparison tables") == heads.index("## Comparison") + 1
    assert "### TAU Table 2: Quantitative results" in md and "### PLA-SM Table II: Comparison results" in md
