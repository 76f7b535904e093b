"""Arguments and steps shared by the spec-driven commands (run, plan, status, table)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from suite.plan import PlannedRun, plan
from suite.spec import Spec, apply_overrides, load_spec

DEFAULT_RESULTS = Path("results")


def add_spec_arguments(parser: argparse.ArgumentParser, *, spec_required: bool = True) -> None:
    if spec_required:
        parser.add_argument("spec", type=Path, help="spec TOML file (see docs/specs.md)")
    else:
        parser.add_argument("spec", type=Path, nargs="?", default=None, help="spec TOML file (default: all specs)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value, e.g. --set epochs=1 or --set defaults.batch_size=4 (repeatable)",
    )
    add_store_arguments(parser)


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", default=None, help="results database URL (default: sqlite:///<results>/mlrd.db; any SQLAlchemy URL)"
    )
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results folder (default: ./results)")


def load_plan(args: argparse.Namespace) -> tuple[Spec, list[PlannedRun]]:
    """Load, override and validate the spec, and expand it. Every spec error is raised here, before any write."""
    spec = load_spec(args.spec)
    if args.overrides:
        spec = apply_overrides(spec, args.overrides)
    return spec, plan(spec)


def db_url(args: argparse.Namespace) -> str:
    return args.db or f"sqlite:///{(args.results / 'mlrd.db').as_posix()}"


def shown_url(url: str) -> str:
    """``url`` for printing: a password in it is masked, so logs never carry it."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: it will fail clearly when opened; print it as given
        return url


def store_exists(args: argparse.Namespace) -> bool:
    """False when the default SQLite file does not exist yet (read-only commands then create nothing)."""
    return args.db is not None or (args.results / "mlrd.db").exists()


def open_db(args: argparse.Namespace) -> Any:
    from suite.store import open_store

    return open_store(db_url(args))


def planned_rows(runs: list[PlannedRun]) -> list[dict[str, Any]]:
    return [
        {
            "run_id": r.run_id,
            "spec": r.spec,
            "group": r.group,
            "arm": r.arm,
            "seed": r.seed,
            "config": r.config.to_dict(),
        }
        for r in runs
    ]
