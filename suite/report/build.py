""":func:`build_table`: one :class:`~suite.report.model.ReportTable` from seed statistics, descriptive values, the
paper's numbers and the baseline comparisons (bold best, red / blue, ratios of timings).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import pandas as pd

from mlrd_core.metrics import METRIC_LABELS, METRIC_LATEX
from suite.report.formatting import _direction, _is_delta, _is_missing, _latex_escape, _outcome, format_value
from suite.report.model import (
    COLUMN_LABELS,
    REFERENCE_COLUMNS,
    Cell,
    Column,
    Outcome,
    ReportError,
    ReportTable,
    Row,
    Section,
    TableLayout,
)
from suite.report.statistics import _baseline_matches, _descriptor_lookup, _Stat, _summary_lookup, compare


def build_table(
    summary: pd.DataFrame,
    layout: TableLayout,
    descriptors: pd.DataFrame | None = None,
    references: pd.DataFrame | None = None,
    comparisons: pd.DataFrame | None = None,
) -> ReportTable:
    """Assemble the table model of ``layout`` from a :func:`summarize` frame, the arms' descriptive values
    (``[group, arm, <column>...]``), the paper's numbers (``[group, arm, source, metric, value]``, δ as fractions)
    and the baseline comparisons (default: :func:`compare` of the same inputs).

    Arms appear in the order of ``descriptors``, then of ``summary``, then of ``references``. Each measured row is
    followed by one italic row per reference source of the same arm. Bold best: per metric within a part, among
    at least two measured means, direction-aware, ties (at the displayed precision) all bold.
    """
    stats_by_key = _summary_lookup(summary, None if layout.timings else layout.split)
    described = _descriptor_lookup(descriptors)
    refs = _reference_lookup(references)
    if comparisons is None:
        comparisons = compare(summary, layout, descriptors if descriptors is not None else pd.DataFrame())
    matches = _baseline_matches(layout, descriptors)
    outcome_of = {(str(r["group"]), str(r["arm"]), str(r["metric"])): r for r in comparisons.to_dict("records")}
    sources = tuple(dict.fromkeys(src for (_, _, src) in refs))
    ref_outcomes = _reference_outcomes(refs, sources, layout, matches)

    columns = _columns(layout)
    sections: list[Section] = []
    protocols: dict[str, None] = {}
    for group in layout.groups:
        arms = dict.fromkeys(
            [a for (g, a) in described if g == group]
            + [a for (g, a, _) in stats_by_key if g == group]
            + [a for (g, a, _) in refs if g == group]
        )
        best = _best_means(layout.metrics, [{m: stats_by_key.get((group, a, m)) for m in layout.metrics} for a in arms])
        rows: list[Row] = []
        for arm in arms:
            values = described.get((group, arm), {})
            shown = {c: values.get(c) for c in layout.columns}
            cells: dict[str, Cell] = {}
            for metric in layout.metrics:
                st = stats_by_key.get((group, arm, metric))
                if st is None:
                    cells[metric] = Cell()
                    continue
                if st.protocol is not None:
                    protocols[st.protocol] = None
                cmp = outcome_of.get((group, arm, metric))
                cells[metric] = Cell(
                    mean=st.mean,
                    std=st.std,
                    n=st.n,
                    sem=st.sem,
                    ci95=st.ci95,
                    best=metric in best and format_value(metric, st.mean) == best[metric],
                    outcome=None if cmp is None or _is_missing(cmp["outcome"]) else cmp["outcome"],
                    diff=math.nan if cmp is None else float(cmp["diff"]),
                    p_value=math.nan if cmp is None else float(cmp["p_value"]),
                    diff_low=math.nan if cmp is None else float(cmp["diff_low"]),
                    diff_high=math.nan if cmp is None else float(cmp["diff_high"]),
                    n_paired=0 if cmp is None else int(cmp["n_paired"]),
                    test=None if cmp is None or _is_missing(cmp["test"]) else str(cmp["test"]),
                )
            n = max((c.n for c in cells.values()), default=0)
            base = matches.get((group, arm))
            base_arm = None if base is None else base[1]
            rows.append(Row(arm, None, shown, n, cells, base_arm))
            for source in sources:
                ref = refs.get((group, arm, source))
                if ref is None:
                    continue
                ref_cells = {
                    m: Cell(mean=ref.get(m, math.nan), outcome=ref_outcomes.get((group, arm, source, m)))
                    for m in layout.metrics
                }
                rows.append(Row(arm, source, shown, 0, ref_cells, base_arm))
        if layout.ratio_to is not None:
            rows = _with_ratios(rows, layout.ratio_to)
        sections.append(Section(group, layout.group_title(group), tuple(rows)))

    return ReportTable(
        name=layout.name,
        title=layout.title,
        split=layout.split,
        columns=columns,
        sections=tuple(sections),
        baseline=layout.baseline,
        baseline_part=None if layout.baseline is None else layout.part(layout.baseline),
        baseline_key=layout.baseline_key,
        protocols=tuple(protocols),
        sources=sources,
        baseline_arm=layout.baseline_arm,
        ratio_to=layout.ratio_to,
    )


def _with_ratios(rows: Sequence[Row], ratio_to: str) -> list[Row]:
    """Each cell's ``ratio``: its mean over the mean of the ``ratio_to`` arm's row of the same source (measured
    rows against the measured row, the paper's against the paper's); rows stay as they are without that arm."""
    base = {r.source: r for r in rows if r.arm == ratio_to}
    out = []
    for row in rows:
        ref = base.get(row.source)
        if ref is None:
            out.append(row)
            continue
        cells = {m: dataclasses.replace(c, ratio=_ratio(c.mean, ref.cells[m].mean)) for m, c in row.cells.items()}
        out.append(dataclasses.replace(row, cells=cells))
    return out


def _ratio(value: float, base: float) -> float:
    return value / base if base != 0.0 and math.isfinite(base) else math.nan


def _columns(layout: TableLayout) -> tuple[Column, ...]:
    cols = [Column("arm", "Arm", "Arm", "arm")]
    for c in layout.columns:
        label, latex = COLUMN_LABELS.get(c, (c, _latex_escape(c)))
        cols.append(Column(c, label, latex, "descriptor"))
    cols.append(Column("n", "n", "$n$", "n"))
    if layout.timings:
        return (*cols, *(Column(t, t, _latex_escape(t), "timing") for t in layout.metrics))
    for m in layout.metrics:
        higher = _direction(m)
        label = METRIC_LABELS.get(m, m)
        latex = METRIC_LATEX.get(m, _latex_escape(m))
        if _is_delta(m):
            label += " (%)"
            latex += r" (\%)"
        if higher is not None:
            label += " ↑" if higher else " ↓"
            latex += r" $\uparrow$" if higher else r" $\downarrow$"
        cols.append(Column(m, label, latex, "metric", higher))
    return tuple(cols)


def _best_means(metrics: Sequence[str], arms: Sequence[Mapping[str, _Stat | None]]) -> dict[str, str]:
    """Per metric with a direction, the displayed best mean among at least two measured arms."""
    best: dict[str, str] = {}
    for metric in metrics:
        higher = _direction(metric)
        means = [s.mean for arm in arms if (s := arm.get(metric)) is not None and math.isfinite(s.mean)]
        if higher is None or len(means) < 2:
            continue
        best[metric] = format_value(metric, max(means) if higher else min(means))
    return best


def _reference_lookup(references: pd.DataFrame | None) -> dict[tuple[str, str, str], dict[str, float]]:
    if references is None or references.empty:
        return {}
    missing = [c for c in REFERENCE_COLUMNS if c not in references.columns]
    if missing:
        raise ReportError(f"references frame: expected columns {list(REFERENCE_COLUMNS)}, missing {missing}")
    out: dict[tuple[str, str, str], dict[str, float]] = {}
    for rec in references.to_dict("records"):
        metric = str(rec["metric"])
        value = float(rec["value"])
        if _is_delta(metric) and value > 1.0:
            raise ReportError(
                f"reference {rec['group']}/{rec['arm']} ({rec['source']}): {metric} = {value} looks like a "
                f"percentage; expected a fraction ({value / 100:g})"
            )
        cells = out.setdefault((str(rec["group"]), str(rec["arm"]), str(rec["source"])), {})
        if metric in cells and cells[metric] != value:
            raise ReportError(
                f"reference {rec['group']}/{rec['arm']} ({rec['source']}) gives {metric} twice "
                f"({cells[metric]} and {value}); expected once"
            )
        cells[metric] = value
    return out


def _reference_outcomes(
    refs: Mapping[tuple[str, str, str], Mapping[str, float]],
    sources: Sequence[str],
    layout: TableLayout,
    matches: Mapping[tuple[str, str], tuple[str, str]],
) -> dict[tuple[str, str, str, str], Outcome | None]:
    """The paper's own red / blue: each reference row against the same source's row of the baseline arm."""
    out: dict[tuple[str, str, str, str], Outcome | None] = {}
    for (group, arm), (base_group, base_arm) in matches.items():
        for source in sources:
            mine = refs.get((group, arm, source))
            theirs = refs.get((base_group, base_arm, source))
            if mine is None or theirs is None:
                continue
            for metric in layout.metrics:
                if metric in mine and metric in theirs:
                    out[(group, arm, source, metric)] = _outcome(metric, mine[metric], theirs[metric])
    return out
