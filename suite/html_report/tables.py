"""The report model's tables as HTML: :func:`render_html` prints every row with the Markdown renderer's text
(:func:`suite.report.markdown_row`), the model's flags as classes and its statistics as attributes, and converts
what :func:`suite.report.render_markdown` writes under the tables to HTML. Nothing is recomputed here.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
from collections.abc import Sequence
from typing import Any

from suite.report import Cell, Column, ReportTable, Row, markdown_row, render_markdown


def esc(value: object) -> str:
    """``value`` as text, HTML-escaped (quotes too: safe in attributes)."""
    return html.escape(str(value), quote=True)


_STRONG = re.compile(r"\*\*(.+?)\*\*")


_EM = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")


def inline_markdown(text: str) -> str:
    """The report's Markdown inline marks as HTML: the text is escaped first, then ``**x**`` → ``<strong>`` and
    ``*x*`` → ``<em>`` (the only marks the Markdown renderer uses in cells and legends)."""
    out = _STRONG.sub(r"<strong>\1</strong>", esc(text))
    return _EM.sub(r"<em>\1</em>", out)


def _number(value: Any) -> str | None:
    """A number for a ``data-`` attribute (full precision), or None when missing."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return repr(number) if math.isfinite(number) else None


def _cell_details(cell: Cell) -> str:
    """Every field the model carries for a cell (whatever statistics it holds), for the cell's tooltip."""
    parts = []
    for f in dataclasses.fields(cell):
        value = getattr(cell, f.name)
        if value is None or value is False or (isinstance(value, float) and not math.isfinite(value)):
            continue
        if f.name == "n" and value == 0:
            continue
        parts.append(f"{f.name} {value:.6g}" if isinstance(value, float) else f"{f.name} {value}")
    return ", ".join(parts)


_MD_ESCAPES = {"\\\\": "\x00", "\\|": "\x01", "\\*": "\x02"}


_MD_RESTORE = {"\x00": "\\", "\x01": "|", "\x02": "*"}


def markdown_cell_html(text: str) -> str:
    """A Markdown table cell as HTML: escaped characters (``\\|``, ``\\*``, ``\\\\``) are literal, ``**x**`` and
    ``*x*`` become ``<strong>`` / ``<em>``, everything else is HTML-escaped."""
    for escaped, mark in _MD_ESCAPES.items():
        text = text.replace(escaped, mark)
    out = inline_markdown(text)
    for mark, char in _MD_RESTORE.items():
        out = out.replace(mark, char)
    return out


def _metric_td(column: Column, cell: Cell, row: Row, text: str) -> str:
    classes = ["num"]
    if cell.best and row.source is None:
        classes.append("best")
    if cell.outcome:
        classes.append(str(cell.outcome))
    attrs = [f'class="{" ".join(classes)}"', f'data-{column.kind}="{esc(column.key)}"']
    mean = _number(cell.mean)
    if mean is not None:
        attrs.append(f'data-mean="{mean}"')
    details = _cell_details(cell)
    if details:
        attrs.append(f'title="{esc(details)}"')
    return f"<td {' '.join(attrs)}>{markdown_cell_html(text)}</td>"


def _row_html(table: ReportTable, row: Row) -> str:
    """One row: the Markdown renderer's text of every cell (:func:`suite.report.markdown_row`), as HTML with the
    model's flags as classes and the metric values as ``data-`` attributes."""
    texts = markdown_row(table, row)
    cells: list[str] = []
    for col, text in zip(table.columns, texts, strict=True):
        if col.kind == "arm":
            cells.append(f'<th scope="row">{markdown_cell_html(text)}</th>')
        elif col.kind == "descriptor":
            cells.append(f'<td data-column="{esc(col.key)}">{markdown_cell_html(text)}</td>')
        elif col.kind == "n":
            cells.append(f'<td class="num">{markdown_cell_html(text)}</td>')
        else:
            cells.append(_metric_td(col, row.cells[col.key], row, text))
    kind = "measured" if row.source is None else "reference"
    source = "" if row.source is None else f' data-source="{esc(row.source)}"'
    return f'<tr class="{kind}" data-arm="{esc(row.arm)}"{source}>{"".join(cells)}</tr>'


def markdown_trailer(markdown: str, parts: int) -> list[str]:
    """The lines that :func:`suite.report.render_markdown` writes after the tables of its ``parts`` parts (the
    legend, and whatever notes or blocks follow it): the page shows them in the model's own words."""
    lines = markdown.rstrip("\n").split("\n")
    ends = 0
    for i, line in enumerate(lines):
        table_ends = line.startswith("|") and (i + 1 == len(lines) or not lines[i + 1].startswith("|"))
        if table_ends or line.strip() == "*no arms in this part*":
            ends += 1
            if ends == parts:
                return lines[i + 1 :]
    return []


def _split_pipe_row(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip() for c in re.split(r"(?<!\\)\|", inner)]


def _pipe_table_html(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    def attrs(j: int) -> str:
        return ' class="num"' if j < len(right) and right[j] else ""

    head = "".join(f'<th scope="col"{attrs(j)}>{markdown_cell_html(c)}</th>' for j, c in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{attrs(j)}>{markdown_cell_html(c)}</td>" for j, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def markdown_blocks_html(lines: Sequence[str]) -> str:
    """Markdown blocks as the report renderer writes them, as HTML: pipe tables (first row the header; ``---:``
    columns right-aligned), a line that is all bold as a heading, any other line as a legend paragraph."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(_split_pipe_row(lines[i]))
                i += 1
            header, rows = block[0], block[1:]
            right = [False] * len(header)
            if rows and all(re.fullmatch(r":?-+:?", c) for c in rows[0]):
                right = [c.endswith(":") and not c.startswith(":") for c in rows[0]]
                rows = rows[1:]
            out.append(_pipe_table_html(header, rows, right))
            continue
        bold = re.fullmatch(r"\*\*(.+)\*\*", line.strip())
        if bold and "**" not in bold.group(1):
            out.append(f"<h4>{markdown_cell_html(bold.group(1))}</h4>")
        else:
            out.append(f'<p class="legend">{markdown_cell_html(line)}</p>')
        i += 1
    return "\n".join(out)


def render_html(table: ReportTable) -> str:
    """The table as an HTML fragment: a heading, one ``<table>`` per part, then what the Markdown rendering writes
    under its tables (the legend and any further blocks). Every cell prints the Markdown renderer's text for the
    same row of the same model; a metric cell's tooltip lists every statistic the model holds for it."""
    out = [f'<section class="report-table" id="table-{esc(table.name)}" data-table="{esc(table.name)}">']
    out.append(f"<h3>{esc(table.title)}</h3>")
    header = "".join(
        f'<th scope="col" class="num" data-column="{esc(c.key)}">{esc(c.label)}</th>'
        if c.kind in ("n", "metric")
        else f'<th scope="col" data-column="{esc(c.key)}">{esc(c.label)}</th>'
        for c in table.columns
    )
    for section in table.sections:
        out.append(f'<h4 data-group="{esc(section.group)}">{esc(section.title)}</h4>')
        if not section.rows:
            out.append('<p class="note"><em>no arms in this part</em></p>')
            continue
        if not section.has_runs:
            out.append('<p class="note"><em>no finished runs yet</em></p>')
        rows = "".join(_row_html(table, row) for row in section.rows)
        out.append(
            f'<div class="scroll"><table data-group="{esc(section.group)}">'
            f"<thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table></div>"
        )
    out.append(markdown_blocks_html(markdown_trailer(render_markdown(table), len(table.sections))))
    out.append("</section>")
    return "\n".join(out)
