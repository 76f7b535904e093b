"""``python -m suite report SPEC``: write the spec's HTML report, ``<results>/<spec>/report.html``.

One self-contained page that opens from disk (no server, no network): the spec's title and description, its tables
(the same numbers and marks as the Markdown/LaTeX/CSV files), its figures embedded, the run matrix with each run's
state, attempts, duration, device and a link to its log, what differs between the arms, the environment the runs
recorded, the best trials of the spec's search, and the spec text. It embeds the figures that ``python -m suite
figures SPEC`` drew (``python -m suite run`` draws them and writes this page at its end). See docs/reports.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from suite.commands._common import add_spec_arguments, db_url, load_plan, open_db, shown_url, store_exists
from suite.plan import PlannedRun
from suite.spec import Spec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="write a spec's self-contained HTML report (tables, figures, runs)", description=__doc__
    )
    add_spec_arguments(parser)
    parser.set_defaults(func=run)


def write(spec: Spec, runs: list[PlannedRun], store: Any | None, args: argparse.Namespace) -> Path:
    from suite.html_report import write_report

    url = db_url(args) if store is not None else None
    return write_report(spec, runs, store, args.results, url=url, shown_url=shown_url(url) if url else None)


def report_summary(spec: Spec, runs: list[PlannedRun], store: Any, args: argparse.Namespace) -> str:
    """Write the page for ``python -m suite run`` and say where it is. A failure only warns: the trained runs,
    tables and figures are what matter, and ``python -m suite report SPEC`` retries."""
    try:
        return str(write(spec, runs, store, args))
    except Exception as exc:  # reporting must never fail a finished training run
        print(
            f"warning: the HTML report failed ({type(exc).__name__}: {exc}); retry with `python -m suite report SPEC`",
            file=sys.stderr,
        )
        return f"none ({type(exc).__name__}; see the warning above)"


def run(args: argparse.Namespace) -> int:
    spec, runs = load_plan(args)
    store = open_db(args) if store_exists(args) else None
    try:
        path = write(spec, runs, store, args)
    finally:
        if store is not None:
            store.close()
    if store is None:
        print(f"no results store at {args.results / 'mlrd.db'} yet: the page shows the plan only", file=sys.stderr)
    print(path)
    return 0
