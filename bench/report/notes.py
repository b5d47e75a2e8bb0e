"""The notes under the tables: display scale, ranking rule, comparability, scoring convention."""

from __future__ import annotations

from typing import Sequence

from bench.errors import BenchError
from bench.metrics.display import label, scale_text
from bench.report.context import Context
from bench.report.groups import Group
from bench.report.runs import convention_of, digit_source, protocol_of
from bench.report.table import RANK_RULE, Table


def dataset_name(dataset: str) -> str:
    """The dataset's display name (``DatasetSpec.title``), or its key when it is not registered here."""
    from bench.spec.registry import get_dataset  # noqa: PLC0415 (loads the dataset plug-ins)

    try:
        return get_dataset(dataset).title
    except BenchError:
        return dataset


def scale_note(ctx: Context, dataset: str) -> str:
    sc = ctx.published.display_scale(dataset)
    if not sc:
        return "Display scale: values in our per-frame convention, unscaled (as the papers print them)."
    parts = [f"{label(m)} {scale_text(f)}" for m, f in sorted(sc.items())]
    source = ctx.published.display_scale_sources.get(dataset, "")
    return (f"Display scale as the papers print {dataset} (also in the column headers): " + ", ".join(parts)
            + (f" ({source})." if source else "."))


def ranking_notes(table: Table) -> list[str]:
    notes = [RANK_RULE]
    if table.unqualified():
        notes.append("Some ranks here are unqualified: a row has one seed (or one timing), so there is no spread to "
                     "test the difference against; run more seeds (--seeds 0,1,2) to qualify them.")
    return notes


def comparability_notes(group: Group, has_paper: bool) -> list[str]:
    notes = []
    if group.tiny:
        notes.append("Tiny models (the small --tiny configuration): not comparable with published numbers.")
    if group.quick:
        notes.append("Quick runs (reduced epochs and split sizes): not comparable with published numbers.")
    sources = {digit_source(r) for r in group.runs} - {None}
    if group.dataset == "mmnist" and sources and sources != {"mnist-idx"}:
        notes.append(f"Digits from {', '.join(sorted(sources))}, not MNIST: not comparable with published Moving "
                     "MNIST numbers.")
    if any(protocol_of(r) == "clipped" for r in group.runs):
        notes.append("These runs were scored before the published protocol (schema 1): their MSE/MAE were computed on "
                     "predictions clipped to [0, 1], so they appear only in the clipped columns and are never compared "
                     "with paper values; re-run them to get published-protocol numbers.")
    if group.tiny or group.quick:
        notes.append("Published numbers are not shown beside these runs: they are not comparable with them (the "
                     "papers' rows are listed under \"Published numbers\" at the end).")
    elif not has_paper:
        notes.append("No published numbers for these methods on this dataset and horizon.")
    return notes


def clipped_note() -> str:
    return ("MSE (clipped) / MAE (clipped): predictions clipped to [0, 1] before scoring (bench.metrics.functional); a variant "
            "of MSE/MAE, which score the raw predictions as the SimVP/TAU/OpenSTL code does (the published "
            "protocol). Clipped columns are ranked only among themselves and hold no paper values.")


def convention_text(group: Group) -> tuple[str, str]:
    """(summary, text) of the metric convention the group's runs recorded."""
    texts = sorted({convention_of(r) for r in group.runs} - {""})
    ident = group.key.fields["metric convention"]
    if texts:
        return f"Metric convention ({ident}, as recorded in the runs)", "\n\n".join(texts)
    from bench.metrics.functional import METRIC_CONVENTION  # noqa: PLC0415

    return "Metric convention (not recorded in these runs; today's bench.metrics.functional)", str(METRIC_CONVENTION)


def block_notes(ctx: Context, groups: Sequence[Group], what: str) -> list[str]:
    """Notes of a table whose column blocks are comparability groups (ablations, sweeps)."""
    notes = [f"Rows: {what}. Each column block is one comparability group (see its table above); paper rows "
             "(italic) are never ranked.",
             "Blocks: " + "; ".join(f"{g.title()}" for g in groups) + ".",
             "FLOPs (G): fvcore, one sample (from `bench audit` when recorded, else the runs)."]
    notes += list(dict.fromkeys(scale_note(ctx, ds) for ds in sorted({g.dataset for g in groups})))
    if any(g.tiny for g in groups):
        notes.append("Blocks of tiny models (the small --tiny configuration) are not comparable with published numbers.")
    return notes
