"""Assembling the report: every section in order, written as report.md / report.csv / report.tex.

Only the formats asked for are written; the figures are drawn only with ``md`` (report.md links
them). Markdown sections: skipped files, failed runs, comparison (per dataset, per group, with its
figures), the papers' comparison tables in their layout, per-frame tables (on request), ablations, sweeps, efficiency, the cost audit, and the
published numbers. CSV and TeX hold the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench import store
from bench.errors import BenchError
from bench.report.appendix import published_appendix
from bench.report.comparison import comparison_table
from bench.report.context import Context, ReportOptions, build_context
from bench.report.efficiency import audit_table, efficiency_table
from bench.report.figures import render_figures
from bench.report.groups import Group, differing_fields
from bench.report.notes import dataset_name
from bench.report.outputs import ReportOutputs
from bench.report.perframe import per_frame_tables
from bench.report.paper_layouts import paper_tables, pretraining_tables
from bench.report.render_csv import render_csv
from bench.report.render_md import md_escape, md_table_block
from bench.report.render_tex import render_tex
from bench.report.runs import Inputs
from bench.report.table import RANK_RULE, Table
from bench.report.values import NA
from bench.report.variants import ablation_tables, sweep_tables


@dataclass
class Sections:
    """The report's tables, section by section: what report.md, report.csv and report.tex render."""

    by_dataset: dict[str, list[Group]]
    comparison: list[Table] = field(default_factory=list)
    papers: list[Table] = field(default_factory=list)  # the papers' comparison tables in their layout
    frames: list[Table] = field(default_factory=list)
    ablations: list[Table] = field(default_factory=list)
    sweeps: list[Table] = field(default_factory=list)
    efficiency: list[Table] = field(default_factory=list)
    audit: Table | None = None
    appendix: list[Table] = field(default_factory=list)

    def tables(self) -> list[Table]:
        """Every table, in the order of the report."""
        return (self.comparison + self.papers + self.frames + self.ablations + self.sweeps + self.efficiency
                + ([self.audit] if self.audit else []) + self.appendix)


def write_report(results_dir: Path, out_dir: Path, options: ReportOptions = ReportOptions(),
                 skipped: list[str] | None = None) -> list[Path]:
    """Render the report of ``results_dir`` into ``out_dir``; returns the files written.

    ``options`` (:class:`~bench.report.context.ReportOptions`, checked first): the formats (only those
    are written; report files and figures an earlier report wrote in ``out_dir``, unchanged since,
    that this one does not write are removed; a file of the user's in the way is refused, never
    overwritten: :mod:`bench.report.outputs`), the learning curves' reference line, the figures
    (only with md), the qualitative grids' samples, the per-frame tables and the clipped columns.
    ``skipped`` (optional) receives one line per file under ``results_dir`` that was not read or not
    counted (report.md lists them too; report.csv and report.tex have no place for them).
    """
    options = options.check()
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    ctx, inputs = build_context(results_dir, out_dir, options)
    if skipped is not None:
        skipped.extend(ctx.problems)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create the report directory {out_dir}: {exc.strerror}; choose another with "
                         "--out DIR") from None
    outputs = ReportOutputs(out_dir)
    outputs.check([out_dir / f"report.{fmt}" for fmt in options.formats])  # before the figures are drawn
    sections = build_sections(ctx, options)
    texts: dict[Path, bytes] = {}
    if "md" in options.formats:
        texts[out_dir / "report.md"] = render_markdown(ctx, inputs, sections).encode()
    if "csv" in options.formats:
        texts[out_dir / "report.csv"] = render_csv(sections.tables()).encode()
    if "tex" in options.formats:
        texts[out_dir / "report.tex"] = render_tex(sections.tables()).encode()
    files = {**texts, **dict(sorted(ctx.figures.items()))}
    try:  # only files an earlier report wrote are replaced or removed (bench.report.outputs)
        outputs.claim(list(files))
        for path, data in files.items():
            store.atomic_write_bytes(path, data)
        outputs.finish(list(files))
    except OSError as exc:
        raise BenchError(f"cannot write the report into {out_dir}: {exc.strerror}; choose another place with "
                         "--out DIR") from None
    return list(files)


def build_sections(ctx: Context, options: ReportOptions) -> Sections:
    """Every table of the report (and, with md, the figures of each comparison: drawn into ``ctx.figures``)."""
    by_dataset: dict[str, list[Group]] = {}
    for g in ctx.groups:
        by_dataset.setdefault(g.dataset, []).append(g)
    sections = Sections(by_dataset)
    draw = options.figures and "md" in options.formats
    for ds in sorted(by_dataset):
        groups = by_dataset[ds]
        for g in groups:
            others = [o for o in groups if o is not g]
            diff = [n for n in differing_fields(groups) if any(o.key.fields[n] != g.key.fields[n] for o in others)]
            t = comparison_table(ctx, g, diff)
            if draw:
                drawn = render_figures(ctx, g)
                t.figures, t.notes = drawn.links, t.notes + drawn.notes
            sections.comparison.append(t)
            if options.per_frame_tables:
                sections.frames += per_frame_tables(ctx, g)
    sections.papers = paper_tables(ctx)
    sections.ablations = pretraining_tables(ctx) + ablation_tables(ctx)  # PLA-SM Table VII whole, then per method
    sections.sweeps = sweep_tables(ctx)
    sections.efficiency = [efficiency_table(ctx, g) for g in ctx.groups]
    sections.audit = audit_table(ctx)
    sections.appendix = published_appendix(ctx, sorted(by_dataset))
    return sections


def _failed_lines(inputs: Inputs) -> list[str]:
    kept = {(r.spec.hash, r.spec.seed) for r in inputs.complete}
    lines = ["| Dataset | Method | Spec | Seed | Last good epoch | Error |", "|---|---|---|---:|---:|---|"]
    for r in inputs.failed:
        note = " (a failed re-run; the complete result of this run is kept)" if (r.spec.hash, r.spec.seed) in kept \
            else ""
        epoch = NA if r.last_good_epoch is None else str(r.last_good_epoch)
        lines.append(f"| {md_escape(r.spec.dataset)} | {md_escape(r.label)} | {r.spec.hash} | {r.spec.seed} | "
                     f"{epoch} | {md_escape(str(r.error or 'unrecorded'))}{note} |")
    return lines


def render_markdown(ctx: Context, inputs: Inputs, sections: Sections) -> str:
    """report.md: the summary and how to read it, skipped files, failed runs, then every section."""
    by_dataset = sections.by_dataset
    out: list[str] = ["# Benchmark report", ""]
    specs = {r.spec.hash for r in inputs.complete}
    out += [f"Results directory: `{ctx.results_dir}`. {len(inputs.complete)} complete run(s) of {len(specs)} run "
            f"specification(s) on {len(by_dataset)} dataset(s) in {len(ctx.groups)} comparability group(s); "
            f"{len(inputs.failed)} failed run(s); {len(ctx.problems)} file(s) skipped.", "",
            "How to read the tables: runs are grouped by everything that makes numbers comparable (dataset, "
            "horizon, frame size, epochs, tiny vs paper-size model, quick, split sizes, data source, data seed, "
            "precision, scoring convention); each group is one table and ranks never cross tables. A row is one "
            "run specification (method, variant and every resolved hyperparameter; its hash names the run "
            "directory) over its seeds. Published numbers appear as italic \"paper\" rows beside ours and are "
            "never ranked. " + RANK_RULE, ""]
    if ctx.problems:
        out += ["## Skipped files", "",
                "These files could not be trusted and were left out of every table and figure (each line names the "
                "file and the field that is wrong):", ""]
        out += [f"- {md_escape(p)}" for p in sorted(set(ctx.problems))] + [""]
    if inputs.failed:
        out += ["## Failed runs", ""] + _failed_lines(inputs) + [""]
    out += ["## Comparison", ""]
    for ds in sorted(by_dataset):
        out += [f"### {dataset_name(ds)} (`{ds}`)", ""]
        if len(by_dataset[ds]) > 1:
            out += [f"{len(by_dataset[ds])} groups of runs that are not comparable with each other (they differ in: "
                    f"{', '.join(differing_fields(by_dataset[ds]))}); each has its own table.", ""]
        for t in [t for t in sections.comparison if t.dataset == ds]:
            out += md_table_block(t, "####")
    for title, tables in (("The papers' comparison tables", sections.papers), ("Per-frame metrics", sections.frames), ("Ablations", sections.ablations),
                          ("Hyperparameter sweeps", sections.sweeps)):
        if tables:
            out += [f"## {title}", ""]
            for t in tables:
                out += md_table_block(t, "###")
    out += ["## Efficiency", ""]
    for t in sections.efficiency:
        out += md_table_block(t, "###")
    if sections.audit:
        out += md_table_block(sections.audit, "###")
    out += ["## Published numbers", "",
            "Every transcribed table of the datasets above (bench/data/published.json; TAU Tables 2-6 and PLA-SM "
            "Tables II-XI), as printed, with the SSIM/PSNR convention of the code behind each row. Registry keys "
            "name the methods this harness implements.", ""]
    for t in sections.appendix:
        out += md_table_block(t, "###")
    return "\n".join(out).rstrip("\n") + "\n"
