"""The CSV rendering of a :class:`~suite.report.model.ReportTable`: :func:`table_frame` (long form, raw
statistics) written by :func:`render_csv`.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
import pandas as pd

from suite.report.formatting import _describe, _is_missing
from suite.report.model import ReportError, ReportTable


def table_frame(table: ReportTable) -> pd.DataFrame:
    """The table in long, machine-readable form: one row per (part, arm, metric) with the raw seed statistics
    (δ as fractions), the flags, the baseline comparison and one column per reference source (e.g. ``paper``) with
    its value and ``<source>_outcome``. A timing table: :func:`timing_table_frame`."""
    if table.timings:
        return timing_table_frame(table)
    reserved = ["table", "group", "group_title", "arm", "metric", "n", "mean", "std", "sem", "ci95", "best"]
    reserved += ["baseline_arm", "diff", "diff_low", "diff_high", "n_paired", "test", "outcome", "p_value"]
    reserved += ["split", "protocol", *table.descriptor_columns]
    for source in table.sources:
        if source in reserved or f"{source}_outcome" in reserved:
            raise ReportError(f"reference source {source!r} clashes with a CSV column name; rename the source")
    records: list[dict[str, Any]] = []
    for section in table.sections:
        measured = [r for r in section.rows if r.source is None]
        refs = {(r.arm, r.source): r for r in section.rows if r.source is not None}
        for row in measured:
            for metric in table.metrics:
                cell = row.cells[metric]
                rec: dict[str, Any] = {
                    "table": table.name,
                    "group": section.group,
                    "group_title": section.title,
                    "arm": row.arm,
                }
                for c in table.descriptor_columns:
                    value = row.descriptors.get(c)
                    rec[c] = _describe(value) if isinstance(value, list | tuple | np.ndarray) else value
                rec |= {
                    "split": table.split,
                    "protocol": ", ".join(table.protocols) or None,
                    "metric": metric,
                    "n": cell.n,
                    "mean": cell.mean,
                    "std": cell.std,
                    "sem": cell.sem,
                    "ci95": cell.ci95,
                    "best": cell.best,
                    "baseline_arm": row.baseline_arm,
                    "diff": cell.diff,
                    "diff_low": cell.diff_low,
                    "diff_high": cell.diff_high,
                    "n_paired": cell.n_paired if cell.compared else None,
                    "test": cell.test,
                    "outcome": cell.outcome,
                    "p_value": cell.p_value,
                }
                for source in table.sources:
                    ref = refs.get((row.arm, source))
                    rec[source] = math.nan if ref is None else ref.cells[metric].mean
                    rec[f"{source}_outcome"] = None if ref is None else ref.cells[metric].outcome
                records.append(rec)
    columns = ["table", "group", "group_title", "arm", *table.descriptor_columns, "split", "protocol", "metric"]
    columns += ["n", "mean", "std", "sem", "ci95", "best", "baseline_arm", "diff", "diff_low", "diff_high"]
    columns += ["n_paired", "test", "outcome", "p_value"]
    for source in table.sources:
        columns += [source, f"{source}_outcome"]
    return pd.DataFrame.from_records(records, columns=columns)


def timing_table_frame(table: ReportTable) -> pd.DataFrame:
    """A timing table in long form: one row per (group, arm, timing) with ``n``, ``mean``, ``std`` (seconds),
    ``ratio`` when the table has ``ratio_to``, then the descriptive columns and one column per reference source."""
    columns = ["group", "arm", "name", "n", "mean", "std", *(["ratio"] if table.ratio_to else [])]
    columns += [c for c in (*table.descriptor_columns, *table.sources) if c not in columns]
    records: list[dict[str, Any]] = []
    for section in table.sections:
        refs = {(r.arm, r.source): r for r in section.rows if r.source is not None}
        for row in (r for r in section.rows if r.source is None and r.n > 0):
            for name in table.metrics:
                cell = row.cells[name]
                if cell.n == 0:
                    continue
                rec: dict[str, Any] = {"group": section.group, "arm": row.arm, "name": name, "n": cell.n}
                rec |= {"mean": cell.mean, "std": cell.std, "ratio": cell.ratio}
                rec |= {c: row.descriptors.get(c) for c in table.descriptor_columns}
                for source in table.sources:
                    ref = refs.get((row.arm, source))
                    rec[source] = math.nan if ref is None else ref.cells[name].mean
                records.append(rec)
    return pd.DataFrame.from_records(records, columns=columns)


def _csv_value(value: Any) -> str:
    if _is_missing(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        return f"{float(value):.10g}"
    return str(value)


def render_csv(table: ReportTable) -> str:
    """:func:`table_frame` as CSV (``\\n`` line ends, floats to 10 significant digits, empty = missing)."""
    frame = table_frame(table)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(frame.columns)
    for rec in frame.itertuples(index=False):
        writer.writerow([_csv_value(v) for v in rec])
    return buffer.getvalue()
