"""Arguments and steps shared by the spec-driven commands (run, search, plan, status, table)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from suite.plan import PlannedRun, plan
from suite.spec import Spec, apply_overrides, check_files, load_spec, require_files

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
        from suite.execution.slurm_jobs import require_slurm

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
        from suite.execution.slurm import SlurmExecutor, folder_for

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
    from suite.execution.local import LocalExecutor, local_slots

    slots = local_slots(args.jobs)
    if args.jobs is None and cpu_slots is not None and all(slot.device == "cpu" for slot in slots):
        slots = local_slots(cpu_slots)
    executor = LocalExecutor(store, runs_dir=args.results / "runs", slots=slots, max_attempts=attempts)
    return executor, f"on {len(slots)} slot(s) [{', '.join(s.name for s in slots)}]"


def load_plan(args: argparse.Namespace, *, files: str = "ignore") -> tuple[Spec, list[PlannedRun]]:
    """Load, override and validate the spec, and expand it. Every spec error is raised here, before any write.

    ``files`` says what to do about data and weights files the runs would read and that are missing on this machine
    (:func:`suite.spec.check_files`): ``"error"`` (commands that train: a ConfigError listing them), ``"warn"``
    (``plan``: one line each on stderr) or ``"ignore"`` (commands that only read results)."""
    spec = load_spec(args.spec)
    if args.overrides:
        spec = apply_overrides(spec, args.overrides)
    if files == "error":
        require_files(spec)
    elif files == "warn":
        for problem in check_files(spec):
            print(f"warning: {problem}", file=sys.stderr)
    return spec, plan(spec)


def db_url(args: argparse.Namespace) -> str:
    return args.db or f"sqlite:///{(args.results / 'mlrd.db').as_posix()}"


def shown_url(url: str) -> str:
    """``url`` for printing: a password in it is masked, so logs never carry it. Every command prints URLs through
    this one helper (search included)."""
    import re

    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: mask what looks like user:password@ and print the rest
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None: another backend, or an in-memory database)."""
    from sqlalchemy.engine import make_url

    if "://" not in url:
        return Path(url)
    try:
        parsed = make_url(url)
    except Exception:  # opening it reports the parse error clearly
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return None if parsed.database.startswith("file:") else Path(parsed.database).expanduser()


def store_exists(args: argparse.Namespace) -> bool:
    """False when the store's SQLite file does not exist (read-only commands then create nothing). Other backends
    are asked when opened (:func:`open_existing_db`)."""
    path = _sqlite_file(db_url(args))
    return path is None or path.is_file()


def missing_store_message(args: argparse.Namespace) -> str:
    """The one line a read-only command prints when there is no store."""
    where = _sqlite_file(db_url(args)) or shown_url(db_url(args))
    spec = getattr(args, "spec", None) or "SPEC"
    return f"error: no results store at {where}: nothing has run there yet (python -m suite run {spec})"


def open_db(args: argparse.Namespace) -> Any:
    """The store for commands that write (run, search): created on first use."""
    from suite.store import open_store

    return open_store(db_url(args))


def open_existing_db(args: argparse.Namespace) -> Any:
    """The store for read-only commands (plan, status, table, figures, export): never created; a missing one is a
    :class:`~suite.store.StoreError` that says so."""
    from suite.store import open_store

    return open_store(db_url(args), create=False)


def check_results_folder(results: Path) -> None:
    """One clear error when the results folder cannot be created or written (before anything runs)."""
    from mlrd_core.errors import ConfigError

    try:
        results.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the results folder {results}: {exc.strerror or exc}") from exc
    if not os.access(results, os.W_OK | os.X_OK):
        raise ConfigError(f"the results folder {results} is not writable")
