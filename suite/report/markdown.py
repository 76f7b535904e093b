"""The Markdown rendering of a :class:`~suite.report.model.ReportTable` (GitHub pipe tables); :func:`markdown_row`
is also what the HTML page prints for each row.
"""

from __future__ import annotations

from collections.abc import Sequence

from suite.report.formatting import (
    _FEW_SEEDS,
    _MARKERS,
    MISSING,
    CellMarkup,
    _describe,
    _md_escape,
    format_timing,
    metric_cell_text,
)
from suite.report.legend import _difference_table, _legend, difference_legend
from suite.report.model import ReportTable, Row

#: Markdown's marks of a metric cell (:func:`~suite.report.formatting.metric_cell_text`).
MARKDOWN_CELL = CellMarkup(
    missing=MISSING,
    pm="±",
    n=lambda n: f" (n={n})",
    bold=lambda text: f"**{text}**",
    italic=lambda text: f"*{text}*",
    outcome=lambda text, outcome: f"{text} {_MARKERS[outcome]}",
)


def markdown_row(table: ReportTable, row: Row) -> list[str]:
    """The Markdown text of every cell of ``row``, in column order (what :func:`render_markdown` prints, and
    what the HTML page prints for the same row)."""
    out: list[str] = []
    for col in table.columns:
        if col.kind == "arm":
            label = _md_escape(row.arm) + (f" {_FEW_SEEDS}" if row.few_seeds else "")
            out.append(label if row.source is None else f"↳ *{_md_escape(row.source)}*")
        elif col.kind == "descriptor":
            out.append(_md_escape(_describe(row.descriptors.get(col.key))) if row.source is None else "")
        elif col.kind == "n":
            out.append(str(row.n) if row.source is None else "")
        elif col.kind == "timing":
            text = format_timing(row.cells[col.key])
            out.append(text if row.source is None or text == MISSING else f"*{text}*")
        else:
            out.append(metric_cell_text(col.key, row.cells[col.key], row, MARKDOWN_CELL))
    return out


def _pipe_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max([len(h), 3, *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w + 1) + ":" if r else ":" + "-" * (w + 1) for w, r in zip(widths, right, strict=True)]
    return [line(header), "|" + "|".join(rule) + "|", *(line(r) for r in rows)]


def render_markdown(table: ReportTable) -> str:
    """The table as GitHub Markdown: a title, one pipe table per part, and a legend line."""
    lines = [f"### {table.title}", ""]
    header = [c.label for c in table.columns]
    right = [c.kind in ("n", "metric", "timing") for c in table.columns]
    for section in table.sections:
        lines.append(f"**{_md_escape(section.title)}**")
        lines.append("")
        if not section.rows:
            lines.append("*no arms in this part*")
        else:
            if not section.has_runs:
                lines += ["*no finished runs yet*", ""]
            lines += _pipe_table(header, [markdown_row(table, r) for r in section.rows], right)
        lines.append("")
    lines.append(_legend(table, latex=False))
    header, diff_rows = _difference_table(table)
    if diff_rows:
        lines += ["", "**Differences against the baseline**", ""]
        escaped = [[_md_escape(c) if i < 2 else c for i, c in enumerate(r)] for r in diff_rows]
        lines += _pipe_table(header, escaped, [i >= 2 for i in range(len(header))])
        lines += ["", difference_legend(table)]
    return "\n".join(lines) + "\n"
