"""LaTeX (booktabs) rendering of the tables: ``report.tex``.

Width: a table whose text is narrow enough for one column of a two-column paper (about
:data:`COLUMN_CHARS` characters of ``\\footnotesize`` per line) is a ``table``; a wider one spans
both columns (``table*``), and one wider than the page (:data:`PAGE_CHARS`) is also scaled to the
text width with ``\\resizebox`` (package graphicx). The estimate counts the characters of the
longest entry of each column as printed, plus the column separation.
"""

from __future__ import annotations

from typing import Sequence

from bench.report.table import TIE_MARK, Table, numeric_columns

COLUMN_CHARS = 60
PAGE_CHARS = 125

_TEX_MAP = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "↓": r"$\downarrow$",
            "↑": r"$\uparrow$", "→": r"$\rightarrow$", "×": r"$\times$", "†": r"$^\dagger$", "–": "--", "—": "---",
            "·": r"$\cdot$", "<": r"\textless{}", ">": r"\textgreater{}", "*": r"$^*$", "−": "$-$",
            "≤": r"$\leq$", "…": r"\dots{}", "≈": r"$\approx$", "‡": r"$^\ddagger$", "§": r"\S{}"}


def _plain(note: str) -> str:
    """A markdown note as plain text (for TeX)."""
    return note.replace("**", "").replace("<u>", "").replace("</u>", "").replace("\\*", "*").replace("`", "")


def tex_escape(text: str) -> str:
    return "".join(_TEX_MAP.get(ch, ch) for ch in text)


def width_chars(table: Table) -> int:
    """Estimated printed width of ``table`` in characters (longest entry per column + separation)."""
    widths = []
    for i, col in enumerate(table.columns):
        texts = [col] + [r.cells[i].text + (" ≈" if r.cells[i].tied else "") for r in table.rows if len(r.cells) > i]
        widths.append(max(len(t) for t in texts))
    return sum(widths) + 2 * len(widths)


def render_tex_table(table: Table) -> list[str]:
    chars = width_chars(table)
    env = "table" if chars <= COLUMN_CHARS else "table*"
    spec = "".join("r" if n else "l" for n in numeric_columns(table))
    lines = [rf"\begin{{{env}}}[t]", r"\centering", r"\footnotesize",
             rf"\caption{{{tex_escape(table.title)}}}", rf"\label{{tab:{table.tid}}}"]
    if chars > PAGE_CHARS:
        lines.append(r"\resizebox{\textwidth}{!}{%")
    lines += [r"\begin{tabular}{" + spec + "}", r"\toprule",
              " & ".join(tex_escape(c) for c in table.columns) + r" \\", r"\midrule"]
    previous = "ours"
    for row in table.rows:
        if row.kind != previous:
            lines.append(r"\midrule")
            previous = row.kind
        cells = []
        for i, cell in enumerate(row.cells):
            text = tex_escape(cell.text + (f" {TIE_MARK}" if cell.tied else ""))
            if cell.rank == 1:
                text = rf"\textbf{{{text}}}"
            elif cell.rank == 2:
                text = rf"\underline{{{text}}}"
            if i == 0 and row.kind == "paper":
                text = rf"\textit{{{text}}}"
            cells.append(text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if chars > PAGE_CHARS:
        lines.append("}")
    if table.notes:
        lines.append(r"\par\smallskip\parbox{\linewidth}{\scriptsize " +
                     r" \\ ".join(tex_escape(_plain(n)) for n in table.notes) + "}")
    lines.append(rf"\end{{{env}}}")
    return lines


def render_tex(tables: Sequence[Table]) -> str:
    """The whole ``report.tex``: every table, in report order."""
    lines = ["% bench report tables; needs \\usepackage{booktabs} and \\usepackage{graphicx} (\\resizebox)", ""]
    for t in tables:
        lines += render_tex_table(t) + [""]
    return "\n".join(lines)
