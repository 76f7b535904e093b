"""Arguments and steps shared by the spec-driven commands (run, search, plan, status, table)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from suite.plan import PlannedRun, plan
from suite.spec import Spec, apply_overrides, load_spec

DEFAULT_RESULTS = Path("results")
#: Width of rich tables written to a file or a pipe (rich's default there is 80 columns, which folds wide tables).
PIPE_WIDTH = 140


def console(*, stderr: bool = False) -> Any:
    """A rich Console for a command's tables: the terminal's width, or :data:`PIPE_WIDTH` off a terminal."""
    from rich.console import Console

    out = Console(stderr=stderr)
    return out if out.is_terminal else Console(stderr=stderr, width=PIPE_WIDTH)


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


def add_executor_arguments(parser: argparse.ArgumentParser, *, jobs_default: str) -> None:
    """``--executor local|slurm``, ``--jobs`` and ``--max-attempts`` (run and search)."""
    parser.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default="local",
        help="local: worker subprocesses on this machine (default); slurm: a SLURM job array, resources from the "
        "spec's [slurm] table or --set slurm.<key>=<value> (docs/cluster.md)",
    )
    parser.add_argument("--jobs", type=int, default=None, help=f"local CPU slots (default: {jobs_default})")
    parser.add_argument("--max-attempts", type=int, default=2, help="attempts per run in this invocation (default 2)")


def check_executor_arguments(args: argparse.Namespace) -> None:
    """Argument errors of :func:`add_executor_arguments`, and a missing SLURM, before anything is written."""
    from mlrd_core.errors import ConfigError

    if args.executor == "slurm":
        from suite.slurm import require_slurm

        if args.jobs is not None:
            raise ConfigError("--jobs sets local CPU slots; with --executor slurm use --set slurm.array_parallelism=N")
        require_slurm()  # before the store exists: a missing SLURM is one clear error that writes nothing
    elif args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")


def make_executor(args: argparse.Namespace, spec: Spec, store: Any, *, cpu_slots: int | None = None) -> tuple[Any, str]:
    """The executor ``--executor`` names, and where it runs (for the opening line). ``cpu_slots``: the local
    executor's number of slots on a machine without GPUs when ``--jobs`` is not given (default 1)."""
    attempts = max(1, args.max_attempts)
    if args.executor == "slurm":
        from suite.slurm import SlurmExecutor, folder_for

        settings = spec.slurm
        folder = folder_for(settings, args.results)
        executor: Any = SlurmExecutor(
            store,
            runs_dir=args.results / "runs",
            settings=settings,
            folder=folder,
            job_name=f"mlrd-{spec.name}",
            max_attempts=attempts,
        )
        resources = f"{settings.cpus_per_task} CPU(s), {settings.gpus_per_task} GPU(s), {settings.timeout_min} min"
        partition = settings.partition or "default partition"
        return executor, f"on SLURM [{partition}; {resources} per run; logs in {folder}]"
    from suite.executor import LocalExecutor, local_slots

    slots = local_slots(args.jobs)
    if args.jobs is None and cpu_slots is not None and all(slot.device == "cpu" for slot in slots):
        slots = local_slots(cpu_slots)
    executor = LocalExecutor(store, runs_dir=args.results / "runs", slots=slots, max_attempts=attempts)
    return executor, f"on {len(slots)} slot(s) [{', '.join(s.name for s in slots)}]"


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


def planned_rows(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """The store's rows of planned runs: anything with ``run_id``, ``spec``, ``group``, ``arm``, ``seed`` and a
    ``config`` (a :class:`~suite.plan.PlannedRun`, or a benchmark's tiny run)."""
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
