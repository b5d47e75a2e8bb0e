"""Ranking that respects noise: ties within the seeds' spread, unqualified one-seed ranks, timings
ranked only beyond their min-max spread and only on one device."""

from __future__ import annotations

from pathlib import Path

from bench.report import ReportOptions, write_report
from bench.report.cells import exact_cell, seeds_cell, timing_cell
from bench.report.table import rank_cells
from report_builders import fake_run, metrics
from test_report import section, table_after


def marks(cells) -> list[tuple[int | None, bool]]:
    return [(c.rank, c.tied) for c in cells]


def test_ties_within_the_seeds_spread() -> None:
    a = seeds_cell([(0, 19.0), (1, 21.0)], "mse")  # 20.00 ± 1.41
    b = seeds_cell([(0, 20.0), (1, 22.0)], "mse")  # 21.00 ± 1.41: overlaps a
    c = seeds_cell([(0, 29.0), (1, 31.0)], "mse")  # 30.00 ± 1.41: beyond both
    rank_cells([a, b, c], higher=False, dec=2)
    assert marks([a, b, c]) == [(1, True), (1, True), (None, False)]  # a and b tie for the best, c third
    assert {x.basis for x in (a, b, c)} == {"noise"}
    # separated beyond the spread: best and second, no tie
    b2 = seeds_cell([(0, 24.0), (1, 26.0)], "mse")
    rank_cells([a, b2, c], higher=False, dec=2)
    assert marks([a, b2, c]) == [(1, False), (2, False), (None, False)]
    # higher is better (SSIM): the same rule the other way round
    s1, s2 = seeds_cell([(0, 0.90), (1, 0.91)], "ssim"), seeds_cell([(0, 0.80), (1, 0.81)], "ssim")
    rank_cells([s1, s2], higher=True, dec=4)
    assert marks([s1, s2]) == [(1, False), (2, False)]


def test_a_row_within_the_noise_of_a_better_one_gets_no_mark() -> None:
    best = seeds_cell([(0, 147.4), (1, 150.9)], "mse")  # narrow, low
    wide = seeds_cell([(0, 150.0), (1, 202.4)], "mse")  # overlaps both others
    mid = seeds_cell([(0, 168.1), (1, 194.4)], "mse")  # beaten by `best` beyond the noise, tied with `wide`
    rank_cells([best, wide, mid], higher=False, dec=2)
    assert marks([best, wide, mid]) == [(1, True), (1, True), (None, True)]


def test_all_tied_means_no_best() -> None:
    a, b = seeds_cell([(0, 1.0), (1, 3.0)], "mse"), seeds_cell([(0, 1.5), (1, 3.5)], "mse")
    rank_cells([a, b], higher=False, dec=2)
    assert marks([a, b]) == [(None, True), (None, True)]


def test_one_seed_ranks_are_unqualified() -> None:
    a, b = seeds_cell([(0, 20.0)], "mse"), seeds_cell([(0, 20.5)], "mse")
    rank_cells([a, b], higher=False, dec=2)
    assert marks([a, b]) == [(1, False), (2, False)] and {a.basis, b.basis} == {"unqualified"}
    c = seeds_cell([(0, 20.0), (1, 20.2)], "mse")  # mixed: a one-seed row makes its comparisons unqualified
    rank_cells([a, c], higher=False, dec=2)
    assert c.basis == "unqualified"
    x, y = exact_cell(9.6, "flops_g"), exact_cell(19.4, "flops_g")  # deterministic costs: no noise at all
    rank_cells([x, y], higher=False, dec=3)
    assert marks([x, y]) == [(1, False), (2, False)] and x.basis == "exact"


def test_report_marks_ties_and_states_the_rule(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed, (t, s, c) in enumerate([(19.0, 20.0, 29.0), (21.0, 22.0, 31.0)]):
        fake_run(root, "tau", seed, metrics(t))
        fake_run(root, "simvp", seed, metrics(s))
        fake_run(root, "convlstm", seed, metrics(c))
    md = write_report(root, tmp_path / "out", ReportOptions(figures=False))[0].read_text()
    t = table_after(md, "mmnist[1]")
    mse = t["__header__"].index("MSE↓")
    assert t["tau"][mse] == "**20.00 ± 1.41 ≈**" and t["simvp"][mse] == "**21.00 ± 1.41 ≈**"
    assert t["convlstm"][mse] == "30.00 ± 1.41"
    notes = section(md, "mmnist[1]")
    assert "better than it beyond the noise" in notes and "≈ marks a rank shared" in notes
    assert "unqualified" not in notes.split("Rows of one seed")[1].split("\n")[1]  # no one-seed row here
    one = tmp_path / "one"
    fake_run(one, "tau", 0, metrics(20.0))
    fake_run(one, "simvp", 0, metrics(21.0))
    md = write_report(one, tmp_path / "out1", ReportOptions(figures=False))[0].read_text()
    t = table_after(md, "mmnist[1]")
    assert t["tau"][mse] == "**20.00**" and t["simvp"][mse] == "<u>21.00</u>"
    assert "Some ranks here are unqualified" in section(md, "mmnist[1]")


def test_timings_show_their_spread_and_rank_only_beyond_it(tmp_path: Path) -> None:
    cell = timing_cell([10.0, 12.0, 11.0], "train_s")
    assert cell.text == "11.00 (10.00–12.00)" and cell.spread == (10.0, 12.0)
    root = tmp_path / "results"
    for seed in (0, 1):  # fps: tau and simvp overlap, convlstm is faster beyond the spread
        fake_run(root, "tau", seed, metrics(20.0), fps=(100.0, 104.0, 98.0), epoch_seconds=[10.0, 11.0], load=0.25)
        fake_run(root, "simvp", seed, metrics(30.0), fps=(101.0, 99.0, 103.0), epoch_seconds=[30.0, 31.0], load=0.5)
        fake_run(root, "convlstm", seed, metrics(90.0), fps=(200.0, 210.0, 205.0), epoch_seconds=[20.0, 21.0],
                 load=0.5)
    md = write_report(root, tmp_path / "out", ReportOptions(figures=False))[0].read_text()
    t = table_after(md, "Efficiency, mmnist[1]")
    header = t["__header__"]
    fps, train = header.index("Test (fps)↑"), header.index("Train (s/epoch)↓")
    assert t["convlstm"][fps] == "**205.0 (200.0–210.0)**"
    assert t["tau"][fps] == "<u>100.0 (98.0–104.0) ≈</u>"  # median of every repeat of both seeds; tied with simvp
    assert t["simvp"][fps] == "<u>101.0 (99.0–103.0) ≈</u>"
    assert t["tau"][train] == "**10.50 (10.00–11.00)**" and t["simvp"][train] == "30.50 (30.00–31.00)"
    assert "cpu (test); load 0.25" in t["tau"][header.index("Train device (load)")]
    notes = section(md, "Efficiency, mmnist[1]")
    assert "Measured on: cpu (test)" in notes and "1-minute load average" in notes
    # another device: its timings are never ranked against the others
    fake_run(root, "predrnn", 0, metrics(50.0), fps=(500.0, 501.0), device_name="GPU X")
    md = write_report(root, tmp_path / "out2", ReportOptions(figures=False))[0].read_text()
    t = table_after(md, "Efficiency, mmnist[1]")
    assert not any(c.startswith(("**", "<u>")) for c in (t[m][fps] for m in ("tau", "simvp", "convlstm", "predrnn")))
    assert "not the case here for train time and fps" in section(md, "Efficiency, mmnist[1]")
