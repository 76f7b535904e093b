"""``python -m suite export SPEC``: write a spec's results from the store as CSV or parquet files.

Files are ``<out>/<spec>-<frame>.<csv|parquet>`` for each requested frame (metrics, timings, periods, runs), long
form, one row per value; load them with pandas for your own analysis (docs/store.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from suite.commands._common import (
    add_spec_arguments,
    load_plan,
    missing_store_message,
    open_existing_db,
    store_exists,
)
from suite.store.base import EXPORT_FRAMES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a spec's results to CSV or parquet", description=__doc__)
    add_spec_arguments(parser)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv", help="file format (default csv)")
    parser.add_argument(
        "--frames",
        nargs="+",
        choices=EXPORT_FRAMES,
        default=list(EXPORT_FRAMES),
        help="which tables to export (default: all)",
    )
    parser.add_argument("--out", type=Path, default=None, help="folder (default: <results>/<spec>/export)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec, _ = load_plan(args)
    if not store_exists(args):
        print(missing_store_message(args), file=sys.stderr)
        return 1
    store = open_existing_db(args)
    try:
        paths = store.export(
            spec.name, args.out or args.results / spec.name / "export", args.format, frames=args.frames
        )
    finally:
        store.close()
    for path in paths:
        print(path)
    return 0
