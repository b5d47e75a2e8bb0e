"""The report's figures: real PNGs, learning curves, metric vs predicted frame, coinciding curves,
non-overlapping scatter labels, chosen qualitative sequences with a colour bar; and a report of
real tiny runs through the runner."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest

from bench import store
from bench.report import build_context, curves_figure, per_frame_figure, samples_figure, write_report
from bench.report.context import ReportOptions
from bench.report.plots import COINCIDE_GID, REFERENCE_LINE_GID, method_lines, mse_flops_scatter
from bench.store.record import load_results
from report_builders import fake_run, metrics, ramp, spec_of
from test_report import ms, section, table_after


def _check_png(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4) and img.shape[0] >= 200 and img.shape[1] >= 300
    assert float(img[..., :3].std()) > 0.01
    return img


@pytest.fixture()
def three_methods(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    for label, base in (("tau", 20.0), ("simvp", 30.0), ("convlstm", 100.0)):
        for seed in (0, 1):
            fake_run(root, label, seed, metrics(base + 2.5 * seed), per_frame={"mse": ramp(base + 2.5 * seed, 10),
                                                                               "ssim": ramp(0.8, 10)})
    return root


def test_figures_are_real_pngs_with_one_line_per_method(three_methods: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = write_report(three_methods, out, ReportOptions(mse_line=35.0))
    md = paths[0].read_text()
    pngs = [p for p in paths if p.suffix == ".png"]
    assert {p.name.split("_mmnist")[0] for p in pngs} == {"curves", "per_frame", "mse_flops", "samples"}
    for p in pngs:
        assert f"]({p.relative_to(out).as_posix()})" in md
        _check_png(p)
    ctx, _ = build_context(three_methods, out, 35.0)
    fig = curves_figure(ctx, ctx.groups[0])
    assert method_lines(fig) == ["convlstm", "simvp", "tau"]
    ref = [ln for ln in fig.axes[0].lines if ln.get_gid() == REFERENCE_LINE_GID]
    assert len(ref) == 1 and list(ref[0].get_ydata()) == [35.0, 35.0]
    tau_line = next(ln for ln in fig.axes[0].lines if ln.get_label() == "tau")
    expected = [np.mean([m * (1.5 - 0.5 * e / 2) for m in (20.0, 22.5)]) for e in (1, 2)]
    assert np.allclose(tau_line.get_ydata(), expected) and list(tau_line.get_xdata()) == [1, 2]
    # overlapping curves stay visible: every method has its own marker and line style
    lines = [ln for ln in fig.axes[0].lines if ln.get_gid() != REFERENCE_LINE_GID]
    assert len({(ln.get_marker(), ln.get_linestyle()) for ln in lines}) == len(lines)


def test_metric_per_predicted_frame(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in (0, 1):
        fake_run(root, "tau", seed, metrics(0.3), dataset="taxibj", frames=(4, 4), shape=(2, 8, 8), digit_source=None,
                 per_frame={"mse": [0.1 + seed, 0.2, 0.3, 0.4 + seed], "psnr": [30.0, 29.0, 28.0, 27.0]})
        fake_run(root, "simvp", seed, metrics(0.5), dataset="taxibj", frames=(4, 4), shape=(2, 8, 8),
                 digit_source=None, per_frame={"mse": [0.5, 0.5, 0.6, 0.7], "psnr": [25.0, 24.0, 23.0, 22.0]})
    ctx, _ = build_context(root, tmp_path / "out")
    fig, coinciding = per_frame_figure(ctx, ctx.groups[0])
    assert len(fig.axes) == 2 and coinciding == {"MSE↓ (×100)": [], "PSNR↑": []}
    assert fig.axes[0].get_ylabel() == "MSE↓ (×100)"  # TaxiBJ MSE x100, as the tables
    tau = next(ln for ln in fig.axes[0].lines if ln.get_label() == "tau")
    assert list(tau.get_xdata()) == [1, 2, 3, 4]
    assert np.allclose(tau.get_ydata(), [100 * statistics.mean([0.1, 1.1]), 20.0, 30.0, 100 * statistics.mean([0.4, 1.4])])
    # the per-frame table (on request)
    md = write_report(root, tmp_path / "out", ReportOptions(figures=False, per_frame_tables=True))[0].read_text()
    t = table_after(md, "Per-frame MSE↓ (×100)")
    assert t["__header__"][2:] == ["t'=1", "t'=2", "t'=3", "t'=4"]
    assert t["tau"][2] == ms([10.0, 110.0]) and t["simvp"][5] == "70.00 ± 0.00"
    assert "every predicted frame" in section(md, "Per-frame MSE↓ (×100)")
    from bench.report.perframe import frame_columns

    assert frame_columns(40)[:3] == [0, 2, 4] and frame_columns(40)[-1] == 39 and len(frame_columns(40)) == 20


def test_coinciding_curves_are_named(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in (0, 1):
        same = {"mse": [10.0, 20.0, 30.0], "ssim": [0.9, 0.8, 0.7]}
        fake_run(root, "tau", seed, metrics(20.0), frames=(10, 3), per_frame=same)
        fake_run(root, "tau:no-ddr", seed, metrics(20.0), frames=(10, 3), per_frame=same)
        fake_run(root, "simvp", seed, metrics(30.0), frames=(10, 3), per_frame={"mse": [30.0, 40.0, 50.0],
                                                                               "ssim": [0.5, 0.4, 0.3]})
    ctx, _ = build_context(root, tmp_path / "out")
    fig, coinciding = per_frame_figure(ctx, ctx.groups[0])
    assert coinciding == {"MSE↓": [("tau", "tau:no-ddr")], "SSIM↑": [("tau", "tau:no-ddr")]}
    notes = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == COINCIDE_GID]
    assert notes == ["coinciding: tau = tau:no-ddr"] * 2
    md = write_report(root, tmp_path / "out")[0].read_text()
    assert "these curves coincide and hide each other: tau and tau:no-ddr" in section(md, "mmnist[1]")


def test_scatter_labels_do_not_overlap() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    points = [(f"method-{i}", 10.0 + 0.01 * i, 20.0 + 0.01 * i, False) for i in range(6)] + \
             [(f"paper-{i} (X Table {i})", 10.0 + 0.02 * i, 20.0, True) for i in range(3)]
    fig = mse_flops_scatter(points, "crowded")
    renderer = FigureCanvasAgg(fig).get_renderer()
    ax = fig.axes[0]
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(boxes) == len(points)
    for i, a in enumerate(boxes):
        assert a.x0 >= fig.bbox.x0 and a.x1 <= fig.bbox.x1
        for b in boxes[i + 1:]:
            assert not (a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1), "labels overlap"
        assert not a.overlaps(ax.get_legend().get_window_extent(renderer))


def test_chosen_sequences_and_colour_bar(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for label in ("tau", "simvp"):
        fake_run(root, label, 0, metrics(20.0))
        fake_run(root, label, 0, metrics(0.3), dataset="taxibj", frames=(4, 4), shape=(2, 8, 8), digit_source=None)
    out = tmp_path / "out"
    paths = write_report(root, out, ReportOptions(samples=(1,)))
    names = sorted(p.name for p in paths if p.name.startswith("samples"))
    assert len(names) == 2 and all(n.endswith("_seq1.png") for n in names)
    ctx, _ = build_context(root, out, ReportOptions(samples=(0, 1)))
    mnist = next(g for g in ctx.groups if g.dataset == "mmnist")
    fig = samples_figure(ctx, mnist, 1)
    assert len(fig.axes) == 2 and "|error|" in fig.axes[1].get_ylabel()  # the mosaic and the error colour bar
    stored = np.load(store.run_dir(root, spec_of("tau", 0)) / "predictions.npz")
    image = fig.axes[0].get_images()[0].get_array()
    truth_tile = stored["truth"][1, 0, 0].astype(np.float32) / 255.0  # ground truth row, first frame, sequence 1
    zoomless = image[18:34, 0:16, 0]  # second row of tiles (pad 2), 16x16 frames
    assert np.allclose(zoomless, truth_tile)
    taxibj = next(g for g in ctx.groups if g.dataset == "taxibj")
    assert len(samples_figure(ctx, taxibj, 0).axes) == 3  # 2 channels drawn with a colour map: a value bar too
    assert samples_figure(ctx, mnist, 5) is None
    assert any("test sequence 5 is not stored" in p for p in ctx.problems)


def test_unreadable_predictions_are_reported_not_fatal(three_methods: Path, tmp_path: Path) -> None:
    (store.run_dir(three_methods, spec_of("tau", 0)) / "predictions.npz").write_bytes(b"not a zip")
    md = write_report(three_methods, tmp_path / "out")[0].read_text()
    skipped = md.split("## Skipped files", 1)[1].split("\n## ", 1)[0]
    assert "predictions.npz" in skipped and "tau" in skipped


# ------------------------------------------------------------------------------------ real runs


@pytest.fixture(scope="module")
def real_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bench.spec.registry import get_dataset, parse_method_key
    from bench.spec.run_spec import SpecOptions, resolve_run_spec
    from bench.run.options import RunOptions
    from bench.run.runner import run_one
    from run_helpers import efficiency_measured

    root = tmp_path_factory.mktemp("real") / "results"
    data = get_dataset("mmnist").with_frames(4, 4)  # real Moving MNIST sequences, shorter for speed
    opts = RunOptions(results=root, efficiency=True, fps_batch=2, log=lambda s: None)
    spec_opts = SpecOptions(epochs=2, quick=True, tiny=True, sizes={"train": 4, "val": 2, "test": 2})
    with efficiency_measured():  # the FLOPs of the MSE-FLOPs figure
        for method in ("simvp", "tau"):
            for seed in (0, 1):
                run_one(resolve_run_spec(parse_method_key(method), data, seed, spec_opts), data, opts)
    return root


def t_text(md: str, tag: str) -> str:
    """The markdown of the comparison table headed by ``tag`` (up to the next heading)."""
    start = md.index(f"#### {tag}")
    end = md.find("\n#", start + 1)
    return md[start:end if end > 0 else None]


def test_real_runs(real_results: Path, tmp_path: Path) -> None:
    runs, problems = load_results(real_results)
    assert len(runs) == 4 and not problems
    out = tmp_path / "out"
    paths = write_report(real_results, out, ReportOptions(formats=("md", "csv"), mse_line=300.0))
    md = paths[0].read_text()
    heads = [h for h in md.splitlines() if h.startswith("#### mmnist[")]
    assert len(heads) == 1 and "4→4" in heads[0] and "2 epochs" in heads[0] and "tiny models" in heads[0]
    t = table_after(md, "mmnist[1]")
    header = t["__header__"]
    for label in ("simvp", "tau"):
        mine = [r for r in runs if r.label == label]
        for metric, col, d in (("mse", "MSE↓", 2), ("ssim", "SSIM↑", 4), ("psnr", "PSNR↑", 2)):
            text = t[label][header.index(col)].replace("**", "").replace("<u>", "").replace("</u>", "")
            assert text.removesuffix(" ≈") == ms([r.test[metric] for r in mine], d), (label, metric)
    assert "Published numbers are not shown beside these runs" in md  # tiny and quick: never beside paper rows
    assert "— paper (" not in t_text(md, "mmnist[1]")
    pngs = [p for p in paths if p.suffix == ".png"]
    assert {p.name.split("_mmnist")[0] for p in pngs} == {"curves", "per_frame", "mse_flops", "samples"}
    for p in pngs:
        _check_png(p)
    ctx, _ = build_context(real_results, out)
    fig, _ = per_frame_figure(ctx, ctx.groups[0])
    simvp = next(ln for ln in fig.axes[0].lines if ln.get_label() == "simvp")
    expected = np.mean([r.test_per_frame["mse"] for r in runs if r.label == "simvp"], axis=0)
    assert np.allclose(simvp.get_ydata(), expected) and list(simvp.get_xdata()) == [1, 2, 3, 4]


def test_scatter_names_every_source_of_a_published_point(tmp_path: Path) -> None:
    from bench.report import scatter_figure

    root = tmp_path / "results"
    for seed in (0, 1):
        fake_run(root, "simvp", seed, metrics(25.0 + seed), flops=19.4e9)
        fake_run(root, "predrnn", seed, metrics(60.0 + seed), flops=116e9)
    ctx, _ = build_context(root, tmp_path / "out")
    labels = sorted(t.get_text() for t in scatter_figure(ctx, ctx.groups[0]).axes[0].texts)
    # SimVP: one point printed by two tables (19.4 / 19.43 GFLOPs, MSE 23.8); PredRNN: two different FLOPs
    assert "simvp (TAU Table 6; PLA-SM Table V)" in labels
    assert "predrnn (PLA-SM Table V)" in labels and "predrnn (TAU Table 6)" in labels
