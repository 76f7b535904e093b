"""Developer sessions. `nox` runs tests, lint and typecheck; `nox -s bench` (and later gpu/slurm/postgres) on demand.

Every install goes through constraints.txt: an unpinned torch pulls a multi-GB CUDA stack.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"


def _install(session: nox.Session) -> None:
    session.install("-c", "constraints.txt", "-e", ".[dev]")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """CPU unit and integration tests (pass pytest options after --)."""
    _install(session)
    session.run("pytest", "-n", "2", "-q", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy over mlrd_core and suite."""
    _install(session)
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: fused losses vs the authors' per-term operations (ratios measured in one run)."""
    _install(session)
    session.run("python", "-m", "suite", "bench", *(session.posargs or ["losses"]))
