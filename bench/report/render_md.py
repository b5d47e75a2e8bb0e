"""Markdown rendering of one table (with its notes, details and figure links)."""

from __future__ import annotations

from bench.report.table import TIE_MARK, Cell, Table, numeric_columns


def md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_") \
        .replace("<", "&lt;").replace(">", "&gt;")


def _md_cell(cell: Cell) -> str:
    text = md_escape(cell.text) + (f" {TIE_MARK}" if cell.tied else "")
    if cell.rank == 1:
        return f"**{text}**"
    if cell.rank == 2:
        return f"<u>{text}</u>"
    return text


def render_md_table(table: Table) -> list[str]:
    align = ["---:" if num else "---" for num in numeric_columns(table)]
    lines = ["| " + " | ".join(md_escape(c) for c in table.columns) + " |", "|" + "|".join(align) + "|"]
    for row in table.rows:
        cells = [_md_cell(c) for c in row.cells]
        if row.kind == "paper":
            cells[0] = f"*{cells[0]}*"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def md_table_block(table: Table, level: str) -> list[str]:
    """Heading, table, notes (bullets), details (collapsed preformatted text) and figure links."""
    lines = [f"{level} {md_escape(table.title)}", ""] + render_md_table(table) + [""]
    for note in table.notes:
        lines.append(f"- {note}")
    if table.notes:
        lines.append("")
    for summary, text in table.details:
        lines += ["<details>", f"<summary>{md_escape(summary)}</summary>", "", "```text", text.rstrip("\n"), "```",
                  "", "</details>", ""]
    for caption, rel in table.figures:
        lines += [f"![{caption}]({rel})", ""]
    return lines
