"""Paper-style result tables: seed statistics, baseline comparisons, and Markdown / LaTeX / CSV renderings.

The pipeline has three pure steps (DataFrames in, DataFrames or strings out; no I/O):

1. :func:`summarize` turns the store's long metrics frame into per ``(group, arm, metric)`` seed statistics:
   mean, sample std (ddof = 1), n, standard error and the half-width of a 95 % Student-t interval
   (:func:`summarize_timings` does the same for the timings frame of a timing table, Table 7).
2. :func:`compare` pairs every compared arm with its baseline arm (Table 5(b) against 5(a): the arm of the
   baseline group with the same loss set; or one baseline arm for the whole table) and estimates the difference
   from the seeds both arms ran: arms that share a seed share the initialisation and the data order, so their
   per-seed differences are paired (:func:`paired_difference`: mean difference, 95 % paired t interval, a BCa
   bootstrap interval from 10 paired seeds up). A difference is marked improved / degraded only when its interval
   excludes 0.
3. :func:`build_table` assembles one :class:`ReportTable` (columns, sub-tables, rows, cells with their flags);
   :func:`render_markdown`, :func:`render_latex` and :func:`render_csv` are pure functions of that model, so the
   three formats can never disagree.

Modules: ``model`` (the frames' columns, :class:`TableLayout`, :class:`ReportTable` and its rows and cells),
``statistics`` (steps 1 and 2), ``build`` (step 3), ``formatting`` (display precision, escaping), ``legend``,
``markdown``, ``latex`` and ``csv`` (the renderers). Every public name is importable from ``suite.report``.

Conventions (see ``docs/reports.md``):

- δ metrics are fractions in the store and in the CSV; the Markdown and LaTeX tables show them in percent with one
  decimal (as the paper does); every other metric is shown with three decimals.
- "Best" (bold) is decided on the means *as displayed*: two values that print alike are a tie (all tied best are
  bold). "Improved / degraded" (red / blue, Markdown ``(+)`` / ``(−)``) needs more than a better mean: the 95 %
  interval of the paired difference must exclude 0 (and the means must print differently). The differences and
  their intervals are printed under the table, and the CSV carries them with the test's p-value.
- An arm with fewer than ``MIN_SEEDS`` finished seeds is flagged (‡): its spread and intervals rest on too little.
- The paper's numbers are rendered as italic rows under the measured row of the same arm, with the paper's own
  red / blue against the paper's baseline row; they are never bold (bold marks our best measured mean).
"""

from __future__ import annotations

from suite.report.build import build_table
from suite.report.csv import render_csv, table_frame, timing_table_frame
from suite.report.formatting import MISSING, difference_text, format_difference, format_timing, format_value
from suite.report.latex import LOSS_COLUMNS, render_latex
from suite.report.legend import difference_legend
from suite.report.markdown import markdown_row, render_markdown
from suite.report.model import (
    COLUMN_LABELS,
    COMPARISON_COLUMNS,
    METRICS_FRAME_COLUMNS,
    MIN_SEEDS,
    REFERENCE_COLUMNS,
    SUMMARY_COLUMNS,
    TIMINGS_FRAME_COLUMNS,
    Cell,
    Column,
    ReportError,
    ReportTable,
    Row,
    Section,
    TableLayout,
)
from suite.report.statistics import (
    BOOTSTRAP_MIN_N,
    BOOTSTRAP_RESAMPLES,
    CONFIDENCE,
    PAIRED_BOOTSTRAP,
    PAIRED_T,
    WELCH_T,
    Difference,
    compare,
    paired_difference,
    seed_statistics,
    summarize,
    summarize_timings,
)

__all__ = [
    "BOOTSTRAP_MIN_N",
    "BOOTSTRAP_RESAMPLES",
    "COLUMN_LABELS",
    "COMPARISON_COLUMNS",
    "CONFIDENCE",
    "LOSS_COLUMNS",
    "METRICS_FRAME_COLUMNS",
    "MIN_SEEDS",
    "MISSING",
    "PAIRED_BOOTSTRAP",
    "PAIRED_T",
    "REFERENCE_COLUMNS",
    "SUMMARY_COLUMNS",
    "TIMINGS_FRAME_COLUMNS",
    "WELCH_T",
    "Cell",
    "Column",
    "Difference",
    "ReportError",
    "ReportTable",
    "Row",
    "Section",
    "TableLayout",
    "build_table",
    "compare",
    "difference_legend",
    "difference_text",
    "format_difference",
    "format_timing",
    "format_value",
    "markdown_row",
    "paired_difference",
    "render_csv",
    "render_latex",
    "render_markdown",
    "seed_statistics",
    "summarize",
    "summarize_timings",
    "table_frame",
    "timing_table_frame",
]
