"""End to end on PostgreSQL: ``python -m suite run SPEC --db postgresql+psycopg://…``, resume, status and table.

Runs only when MLRD_TEST_POSTGRES_URL is set (the nox ``postgres`` session starts a throwaway server and sets it);
the test creates its own database on that server, so it never sees the store tests' tables, and drops it again.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from tiny_spec import write_spec

from suite.cli import main
from suite.store import _models, open_store

POSTGRES_URL = os.environ.get("MLRD_TEST_POSTGRES_URL")

pytestmark = pytest.mark.skipif(
    POSTGRES_URL is None,
    reason=(
        "PostgreSQL end-to-end test needs MLRD_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:55432/"
        "mlrd_test); `nox -s postgres` starts a throwaway server and sets it"
    ),
)


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database on the server of MLRD_TEST_POSTGRES_URL, dropped afterwards. Without CREATEDB rights,
    the given database itself with the suite's tables dropped first."""
    assert POSTGRES_URL is not None
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"mlrd_e2e_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError:
        _models.Base.metadata.drop_all(admin)
        admin.dispose()
        yield POSTGRES_URL
        return
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_run_resume_status_and_table_on_postgres(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, name="pg_tiny")
    common = ["--db", database, "--results", str(tmp_path / "results")]

    assert main(["run", str(spec), *common, "--jobs", "2"]) == 0
    out = capsys.readouterr()
    assert "pg_tiny table" in out.out and "| D " in out.out
    assert "postgresql+psycopg://" in out.out  # the database line names the store that was used

    with open_store(database) as store:
        assert store.url.get_backend_name() == "postgresql"
        counts = store.counts("pg_tiny")
        metrics = store.metrics_frame(spec="pg_tiny")
    assert counts["DONE"] == 4 and sum(counts.values()) == 4, counts
    assert set(metrics["split"]) == {"val", "test"} and metrics["seed"].nunique() == 2
    assert not (tmp_path / "results" / "mlrd.db").exists()  # nothing went to the default SQLite file

    assert main(["run", str(spec), *common]) == 0  # the same command resumes: nothing runs again
    assert "4 runs, 4 done, 0 to run" in capsys.readouterr().err
    with open_store(database) as store:
        assert len(store.metrics_frame(spec="pg_tiny")) == len(metrics)

    assert main(["status", str(spec), *common]) == 0
    assert "DONE" in capsys.readouterr().out
    assert main(["table", str(spec), *common, "--format", "csv"]) == 0
    assert "delta1" in capsys.readouterr().out
