"""``python -m suite table SPEC``: render the spec's tables from the results store.

Writes ``<results>/<spec>/<table>.md``, ``.tex`` and ``.csv`` and prints the chosen format. Cells are mean ± std
over seeds with n; see docs/reports.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from suite.commands._common import (
    add_spec_arguments,
    load_plan,
    missing_store_message,
    open_existing_db,
    store_exists,
)
from suite.plan import PlannedRun
from suite.spec import Spec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("table", help="render a spec's tables (md, latex, csv)", description=__doc__)
    add_spec_arguments(parser)
    parser.add_argument("--format", choices=("md", "latex", "csv"), default="md", help="what to print (default md)")
    parser.set_defaults(func=run)


def render_and_write(
    spec: Spec, runs: list[PlannedRun], store: Any | None, results: Path, *, fmt: str
) -> tuple[list[Path], str]:
    """Render every table of ``spec`` from ``store`` (None: no results yet), write them, return paths and text.

    Tables without a single result are not written over files already there (an empty table never replaces
    rendered numbers); the text is still returned."""
    from suite.report import METRICS_FRAME_COLUMNS
    from suite.tables import TIMINGS_FRAME_COLUMNS, data_sources, render_spec_tables, write_tables

    sources = {}
    if store is None:
        metrics = pd.DataFrame(columns=list(METRICS_FRAME_COLUMNS))
        timings = pd.DataFrame(columns=list(TIMINGS_FRAME_COLUMNS))
    else:
        metrics = store.metrics_frame(spec=spec.name)
        timings = store.timings_frame(spec=spec.name)
        done = metrics["run_id"].unique() if "run_id" in metrics else []
        sources = data_sources({run_id: store.environment(run_id) for run_id in done})
    rendered = render_spec_tables(spec, runs, metrics, timings, sources)
    folder = results / spec.name
    if metrics.empty and folder.is_dir() and any(folder.iterdir()):
        print(f"no results for {spec.name} yet: the tables in {folder}/ are left as they are", file=sys.stderr)
        return [], "\n".join(formats[fmt] for formats in rendered.values())
    paths = write_tables(rendered, folder)
    return paths, "\n".join(formats[fmt] for formats in rendered.values())


def run(args: argparse.Namespace) -> int:
    spec, runs = load_plan(args)
    if not store_exists(args):
        print(missing_store_message(args), file=sys.stderr)
        return 1
    store = open_existing_db(args)
    try:
        paths, text = render_and_write(spec, runs, store, args.results, fmt=args.format)
    finally:
        store.close()
    print(text)
    print(f"written: {', '.join(str(p) for p in paths) or 'nothing (no results yet)'}")
    return 0
