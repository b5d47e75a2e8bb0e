"""The report: comparison, per-frame, ablation, sweep and efficiency tables and figures from stored runs.

Entry point: :func:`write_report` (``bench report``). Nothing is re-run: the report reads every
``result.json`` through the typed record :class:`bench.store.record.RunResult` (a file that does
not validate is listed with the field that is wrong), the runs' ``predictions.npz`` and the
``bench audit`` records, and writes the formats asked for (``report.md``, ``report.csv``,
``report.tex``) and, with markdown, PNG figures under ``figures/``.

Rules (the choices made where the task leaves room):

- Comparability. Runs are only ever ranked against runs with the same *comparability key*:
  dataset, frames in -> out (the spec's ``pred_len``), frame geometry, epochs, tiny vs paper-size,
  quick, split sizes, the data source (``dataset.info`` without path-like keys, e.g.
  ``digit_source``, and the content digest of the data files from the spec's ``data_source``,
  so runs on different data are never one table), the data seed, the precision and the scoring
  convention. Each key is one
  table, tagged ``<dataset>[k]`` and headed by its values; when a dataset has several, the heading
  says in which fields they differ.
- Rows. A row is one run specification (:class:`bench.spec.run_spec.RunSpec`, identified by its hash):
  labelled with the spec's label (``tau:no-ddr``), suffixed with the differing hyperparameters when
  one label has several specifications in a group (``--set``). Cells are mean ± sample standard
  deviation (n - 1) over the seeds; one seed shows the value alone.
- Ranking (:mod:`bench.report.table`): a row's rank is 1 + the number of rows better than it beyond
  the noise (non-overlapping mean ± std, or min-max for timings, as displayed); ties are marked ≈;
  ranks of one-seed rows are unqualified and the table says so. Paper rows are never ranked.
- Display scale. Metrics are shown as the papers print them (``published.json``
  ``display_scale``): TaxiBJ MSE x100 (TAU Table 3, PLA-SM IV-D), Human3.6M MSE /10 and MAE /100
  (PLA-SM IV-D); the scale is in every column header and note. CSV holds the raw values too.
- Scoring protocol (issue 12). ``mse``/``mae`` score the raw predictions as the papers' code does
  and are the columns compared with paper rows; the clipped variants (and schema-1 runs, which only
  have them) appear in their own "(clipped)" columns, never with paper values and never ranked
  against unclipped numbers.
- Published SSIM and PSNR. Each transcribed SSIM goes in the column of the convention of the code
  that produced it (legacy float data range 2, uint8 data range 255, or unknown); PSNR whose code
  wraps in uint8 or cannot be established is marked (:mod:`bench.report.paper_rows`). Where two
  tables print different values for one cell, both sources are named.
- Paper rows in a comparison table are the published *comparison* rows of the methods in the
  table; a label without any (``tau:no-ddr``) gets its rows from the other tables. Every
  transcribed table of the datasets present is listed in full in the appendix.
- Efficiency (PLA-SM Table V layout): FLOPs, params and fps come from the ``bench audit`` record
  of (dataset, label, tiny) when there is one and the runs used no ``--set``, else from the runs;
  timings are shown as median (min–max) with the device and load (:mod:`bench.report.efficiency`).
- Determinism: the same results directory gives byte-identical markdown/CSV/TeX: everything is
  sorted, floats have fixed formats, and no time or absolute output path is written.
- The output directory holds the user's files too: the report replaces or deletes only what an
  earlier report wrote there, unchanged since (a manifest, :mod:`~bench.report.outputs`), and
  refuses, before writing anything, to overwrite any other file.

Modules (one job each):

- :mod:`~bench.report.runs`: reading runs (through :class:`bench.store.record.RunResult`) and
  audits; the facts taken from one run.
- :mod:`~bench.report.groups`: comparability groups and rows (one run specification each).
- :mod:`~bench.report.context`: what every section reads (groups, audits, published numbers, options).
- :mod:`~bench.report.values`, :mod:`~bench.report.table`, :mod:`~bench.report.cells`: number
  formatting; the table model and the ranking rule; the cells of our rows.
- :mod:`~bench.report.comparison`, :mod:`~bench.report.perframe`, :mod:`~bench.report.variants`,
  :mod:`~bench.report.efficiency`, :mod:`~bench.report.appendix`: the sections' tables;
  :mod:`~bench.report.paper_rows`: paper rows; :mod:`~bench.report.notes`: notes under the tables.
- :mod:`~bench.report.figures` (what a figure shows) and :mod:`~bench.report.plots` (drawing).
- :mod:`~bench.report.render_md`, :mod:`~bench.report.render_csv`, :mod:`~bench.report.render_tex`:
  renderers; :mod:`~bench.report.document`: the whole report, written to disk;
  :mod:`~bench.report.outputs`: what the report may replace in its output directory.

Metric labels, decimals and directions are :mod:`bench.metrics.display`.
"""

from bench.report.context import Context, ReportOptions, build_context
from bench.report.document import write_report
from bench.report.figures import curves_figure, per_frame_figure, samples_figure, scatter_figure

__all__ = ["Context", "ReportOptions", "build_context", "curves_figure", "per_frame_figure", "samples_figure",
           "scatter_figure", "write_report"]
