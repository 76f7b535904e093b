"""From a spec and the store to rendered tables: the glue between :mod:`suite.spec`, :mod:`suite.store` and the pure
renderers of :mod:`suite.report`.

Every table goes through :func:`suite.report.build_table` (:func:`table_model`): metric tables from
:func:`suite.report.summarize` of the metrics frame, timing tables (a spec table with ``timings``, Table 7) from
:func:`suite.report.summarize_timings` of the timings frame, with mean ± std per arm over seeds and the ratio of
each mean to the ``ratio_to`` arm's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlrd_core.atomic import write_text_atomic
from suite.plan import PlannedRun
from suite.report import (
    TIMINGS_FRAME_COLUMNS,
    ReportTable,
    TableLayout,
    build_table,
    render_csv,
    render_latex,
    render_markdown,
    summarize,
    summarize_timings,
)
from suite.spec import Spec, Table

FORMATS = ("md", "latex", "csv")
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
    """The report layout of a spec table; a table with ``timings`` lays out its timings (and ``ratio_to``)."""
    return TableLayout(
        name=table.name,
        title=table.title,
        groups=table.groups,
        metrics=table.timings or table.metrics,
        columns=table.columns,
        split=table.split,
        baseline=table.baseline,
        baseline_key=table.baseline_match[0] if table.baseline_match else "losses",
        group_titles={g.name: g.title for g in spec.groups if g.title},
        pairs={(g, a): (bg, ba) for g, a, bg, ba in table.pairs} if table.baseline else None,
        baseline_arm=table.baseline_arm,
        timings=bool(table.timings),
        ratio_to=table.ratio_to if table.timings else None,
    )


#: The environment key under which a run records the files each split read (see mlrd_core.data.provenance).
DATA_SOURCES_KEY = "data_sources"
#: What a table's footnote says of a data source: its name, item count and the first characters of its hash.
_HASH_SHOWN = 12

RunSources = Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]]


def data_sources(environments: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{run_id: {split: [record, ...]}}`` from the store's environment facts of each run (the ``data_sources``
    fact, JSON). Runs without it (generated data), and facts that do not parse, are left out."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for run_id, env in environments.items():
        text = env.get(DATA_SOURCES_KEY)
        try:
            splits = json.loads(text) if text else None
        except ValueError:
            continue
        if not isinstance(splits, Mapping):
            continue
        out[run_id] = {
            str(split): [dict(r) if isinstance(r, Mapping) else {"name": str(r)} for r in records]
            for split, records in splits.items()
            if isinstance(records, list)
        }
    return out


def _mixture_details(record: Mapping[str, Any]) -> list[str]:
    """What a mixture part's record adds to the footnote: its share of an epoch, and what SUN RGB-D's leakage guard
    left out (the count, on the SUN RGB-D folder's record; the role of NYUv2's splits.mat on its record)."""
    out = []
    mixture = record.get("mixture")
    if isinstance(mixture, Mapping) and isinstance(mixture.get("share"), (int, float)):
        out.append(f"{float(mixture['share']):.1%} of an epoch")
    settings = record.get("settings")
    if isinstance(settings, Mapping):
        if isinstance(settings.get("excluded_nyuv2_frames"), int):
            out.append(
                f"{settings['excluded_nyuv2_frames']:,} kv1/NYUdata frames left out ({settings.get('exclude_nyuv2')})"
            )
        if isinstance(settings.get("use"), str):
            out.append(settings["use"])
    return out


def data_note(runs: Sequence[PlannedRun], sources: RunSources) -> str | None:
    """The footnote of a table: per split, each file its runs read (name, items, hash prefix) and, when the runs
    did not all read the same, how many read each. None when no run recorded a file (generated data)."""
    by_split: dict[str, dict[str, int]] = {}
    ids = dict.fromkeys(r.run_id for r in runs)
    for run_id in ids:
        for split, records in sources.get(run_id, {}).items():
            for record in records:
                text = str(record.get("name", "?"))
                if record.get("dataset"):  # a part of a mixture (mlrd_core.data.mixture)
                    text = f"{record['dataset']}: {text}"
                details = []
                if isinstance(record.get("items"), int):
                    details.append(f"{record['items']:,} items")
                details += _mixture_details(record)
                if record.get("hash"):
                    details.append(f"{record.get('hash_kind', 'sha256')} {str(record['hash'])[:_HASH_SHOWN]}")
                if details:
                    text += f" ({', '.join(details)})"
                counts = by_split.setdefault(split, {})
                counts[text] = counts.get(text, 0) + 1
    if not by_split:
        return None
    read = sum(1 for run_id in ids if run_id in sources)
    parts = []
    for split, counts in by_split.items():
        files = [text if n == read else f"{text} [{n} of {read} runs]" for text, n in counts.items()]
        parts.append(f"{split}: {'; '.join(files)}")
    return "Data read by the runs: " + " | ".join(parts)


def table_model(
    spec: Spec,
    table: Table,
    runs: Sequence[PlannedRun],
    metrics: pd.DataFrame,
    timings: pd.DataFrame,
    sources: RunSources | None = None,
) -> ReportTable:
    """The report model of a table: what every rendering (Markdown, LaTeX, CSV, HTML) prints. Metric tables read
    ``metrics`` (the store's metrics frame), timing tables ``timings`` (its timings frame). ``sources``
    (:func:`data_sources` of the store's environments) gives the footnote naming the files the runs read."""
    layout = layout_for(spec, table)
    if table.timings:
        summary = summarize_timings(timings[timings["group"].isin(table.groups)], table.timings)
    else:
        summary = summarize(metrics, split=table.split)
    refs = references_frame(spec, layout.metrics) if table.references else None
    model = build_table(summary, layout, descriptors_frame(runs), refs)
    mine = [r for r in runs if r.group in table.groups]
    note = data_note(mine, sources or {})
    return dataclasses.replace(model, data_note=note) if note else model


def metric_table_model(
    spec: Spec,
    table: Table,
    runs: Sequence[PlannedRun],
    metrics: pd.DataFrame,
    sources: RunSources | None = None,
) -> ReportTable:
    """:func:`table_model` of a metric table."""
    return table_model(spec, table, runs, metrics, pd.DataFrame(columns=list(TIMINGS_FRAME_COLUMNS)), sources)


def render_spec_tables(
    spec: Spec,
    runs: Sequence[PlannedRun],
    metrics: pd.DataFrame,
    timings: pd.DataFrame,
    sources: RunSources | None = None,
) -> dict[str, dict[str, str]]:
    """``{table name: {format: text}}`` for every table of the spec (pure: no I/O). ``sources``: the files each
    run read (:func:`data_sources`), named in the tables' footnotes."""
    out: dict[str, dict[str, str]] = {}
    for table in spec.tables:
        model = table_model(spec, table, runs, metrics, timings, sources)
        out[table.name] = {"md": render_markdown(model), "latex": render_latex(model), "csv": render_csv(model)}
    return out


def write_tables(rendered: dict[str, dict[str, str]], folder: Path) -> list[Path]:
    """Write every rendered table under ``folder`` (``<table>.md``, ``.tex``, ``.csv``); returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, formats in rendered.items():
        for fmt, text in formats.items():
            path = folder / f"{name}{_SUFFIX[fmt]}"
            write_text_atomic(path, text)  # per-process temporary name: coordinators render the same tables
            paths.append(path)
    return paths
