"""One self-contained HTML page per spec: ``<results>/<spec>/report.html`` (docs/reports.md, "The HTML report").

The page gathers what the other commands write separately: the spec's title and description, every table, every
figure, the run matrix, what differs between the arms, the environment the runs ran in, the best trials of the
spec's search and the spec text itself. It is one file that opens from disk: inline CSS, figures embedded as
``data:`` URIs of the PNGs that ``python -m suite figures`` wrote, and a Content-Security-Policy that forbids the
browser any fetch (``default-src 'none'``). Every text is HTML-escaped. Tables scroll sideways on a narrow screen;
a few lines of optional JavaScript sort the run matrix, nothing else needs it.

The tables are rendered from the same model as the Markdown, LaTeX and CSV files
(:func:`suite.tables.table_model`, :class:`suite.report.ReportTable`): :func:`render_html` prints every
cell of every row with the Markdown renderer's text for that row (same numbers, bold, (+)/(−) and any other mark),
adds the model's flags as classes and its statistics as attributes, and converts what
:func:`suite.report.render_markdown` writes under the tables (the legend and any further block) to HTML. Nothing
is recomputed here.

:func:`build_report` is pure apart from reading the store, the figure files, the spec file and the run folders;
:func:`write_report` writes the page atomically.

Modules: ``tables`` (the report model's tables as HTML), ``sections`` (figures, runs, settings, environment, search,
spec) and ``page`` (the page itself, :func:`build_report`, :func:`write_report`).
"""

from __future__ import annotations

from suite.html_report.page import REPORT_NAME, build_report, report_path, write_report
from suite.html_report.sections import FIGURE_CAPTIONS
from suite.html_report.tables import (
    esc,
    inline_markdown,
    markdown_blocks_html,
    markdown_cell_html,
    markdown_trailer,
    render_html,
)

__all__ = [
    "FIGURE_CAPTIONS",
    "REPORT_NAME",
    "build_report",
    "esc",
    "inline_markdown",
    "markdown_blocks_html",
    "markdown_cell_html",
    "markdown_trailer",
    "render_html",
    "report_path",
    "write_report",
]
