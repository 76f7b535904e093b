"""From a spec and the store to rendered tables: the glue between :mod:`suite.spec`, :mod:`suite.store` and the pure
renderers of :mod:`suite.report`.

Metric tables go through :func:`suite.report.build_table`. Timing tables (a spec table with ``timings``, Table 7)
show mean ± std per arm over seeds and the ratio of each mean to the ``ratio_to`` arm's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from suite.plan import PlannedRun
from suite.report import (
    ReportTable,
    TableLayout,
    build_table,
    render_csv,
    render_latex,
    render_markdown,
    summarize,
)
from suite.spec import Spec, Table

FORMATS = ("md", "latex", "csv")
TIMINGS_FRAME_COLUMNS = ("run_id", "spec", "group", "arm", "seed", "name", "value")
_SUFFIX = {"md": ".md", "latex": ".tex", "csv": ".csv"}


@dataclass(frozen=True)
class Rendered:
    table: str
    format: str
    text: str


def descriptors_frame(runs: Sequence[PlannedRun]) -> pd.DataFrame:
    """One row per (group, arm) with the descriptive columns of the paper's tables."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for run in runs:
        rows.setdefault((run.group, run.arm), {"group": run.group, "arm": run.arm, **run.describe()})
    return pd.DataFrame(list(rows.values()))


def references_frame(spec: Spec, names: Sequence[str]) -> pd.DataFrame:
    """The spec's published rows as ``[group, arm, source, metric, value]`` for the given metric/timing names."""
    rows = [
        {"group": ref.group, "arm": ref.arm or ref.label, "source": "paper", "metric": k, "value": float(v)}
        for ref in spec.references
        for k, v in ref.values.items()
        if k in names
    ]
    return pd.DataFrame(rows, columns=["group", "arm", "source", "metric", "value"])


def layout_for(spec: Spec, table: Table) -> TableLayout:
    return TableLayout(
        name=table.name,
        title=table.title,
        groups=table.groups,
        metrics=table.metrics,
        columns=table.columns,
        split=table.split,
        baseline=table.baseline,
        baseline_key=table.baseline_match[0] if table.baseline_match else "losses",
        group_titles={g.name: g.title for g in spec.groups if g.title},
        pairs={(g, a): (bg, ba) for g, a, bg, ba in table.pairs} if table.baseline else None,
        baseline_arm=table.baseline_arm,
    )


def metric_table_model(spec: Spec, table: Table, runs: Sequence[PlannedRun], metrics: pd.DataFrame) -> ReportTable:
    """The report model of a metric table: what every rendering (Markdown, LaTeX, CSV, HTML) prints."""
    layout = layout_for(spec, table)
    summary = summarize(metrics, split=table.split)
    refs = references_frame(spec, table.metrics) if table.references else None
    return build_table(summary, layout, descriptors_frame(runs), refs)


def _render_metric_table(spec: Spec, table: Table, runs: Sequence[PlannedRun], metrics: pd.DataFrame) -> dict[str, str]:
    model = metric_table_model(spec, table, runs, metrics)
    return {"md": render_markdown(model), "latex": render_latex(model), "csv": render_csv(model)}


def timing_frame(table: Table, runs: Sequence[PlannedRun], timings: pd.DataFrame) -> pd.DataFrame:
    """Per (group, arm, timing): n, mean, std over seeds and the ratio of the mean to the ``ratio_to`` arm's."""
    wanted = timings[timings["name"].isin(table.timings) & timings["group"].isin(table.groups)]
    stats = (
        wanted.groupby(["group", "arm", "name"], sort=False)["value"]
        .agg(n="count", mean="mean", std="std")
        .reset_index()
    )
    if table.ratio_to is not None:
        base = stats[stats["arm"] == table.ratio_to].set_index(["group", "name"])["mean"]
        stats["ratio"] = [
            row.mean / base.get((row.group, row.name), float("nan")) for row in stats.itertuples(index=False)
        ]
    order = {(r.group, r.arm): i for i, r in enumerate(runs)}
    stats["_order"] = [order.get((g, a), len(order)) for g, a in zip(stats["group"], stats["arm"], strict=True)]
    return stats.sort_values(["_order", "name"]).drop(columns="_order").reset_index(drop=True)


def timing_table_display(table: Table, stats: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The shown cells of a timing table (one row per arm: ``Arm``, ``n``, one column per timing, Markdown-escaped
    arm labels) from :func:`timing_frame`'s ``stats``, and its legend."""
    wide_rows = []
    for (_group, arm), part in stats.groupby(["group", "arm"], sort=False):
        row: dict[str, str] = {"Arm": str(arm).replace("|", "\\|"), "n": str(int(part["n"].max()))}
        for name in table.timings:
            match = part[part["name"] == name]
            if match.empty:
                row[name] = "–"
                continue
            rec = match.iloc[0]
            cell = f"{rec['mean']:.4g} ± {rec['std']:.2g}" if rec["n"] > 1 else f"{rec['mean']:.4g}"
            if "ratio" in rec and pd.notna(rec["ratio"]):
                cell += f" (×{rec['ratio']:.2f})"
            row[name] = cell
        wide_rows.append(row)
    legend = "seconds, mean ± std over seeds"
    if table.ratio_to:
        legend += f"; (×r): ratio of the mean to arm {table.ratio_to!r}"
    return pd.DataFrame(wide_rows), legend


def _render_timing_table(table: Table, runs: Sequence[PlannedRun], timings: pd.DataFrame) -> dict[str, str]:
    stats = timing_frame(table, runs, timings)
    if stats.empty:
        note = f"{table.title}: no finished runs yet"
        return {"md": f"### {table.title}\n\nno finished runs yet\n", "latex": f"% {note}\n", "csv": "group,arm,name\n"}
    wide, legend = timing_table_display(table, stats)
    md = f"### {table.title}\n\n{wide.to_markdown(index=False)}\n\n{legend}\n"
    wide["Arm"] = wide["Arm"].str.replace("\\|", "|", regex=False)
    latex = wide.to_latex(index=False, caption=f"{table.title} ({legend})").replace("±", r"$\pm$")
    return {"md": md, "latex": latex, "csv": stats.to_csv(index=False)}


def render_spec_tables(
    spec: Spec, runs: Sequence[PlannedRun], metrics: pd.DataFrame, timings: pd.DataFrame
) -> dict[str, dict[str, str]]:
    """``{table name: {format: text}}`` for every table of the spec (pure: no I/O)."""
    out: dict[str, dict[str, str]] = {}
    for table in spec.tables:
        if table.timings:
            out[table.name] = _render_timing_table(table, runs, timings)
        else:
            out[table.name] = _render_metric_table(spec, table, runs, metrics)
    return out


def write_tables(rendered: dict[str, dict[str, str]], folder: Path) -> list[Path]:
    """Write every rendered table under ``folder`` (``<table>.md``, ``.tex``, ``.csv``); returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, formats in rendered.items():
        for fmt, text in formats.items():
            path = folder / f"{name}{_SUFFIX[fmt]}"
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
            paths.append(path)
    return paths
