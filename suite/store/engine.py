"""Opening a database: URLs, the SQLAlchemy engine (SQLite's WAL, busy timeout and ``BEGIN IMMEDIATE``; one shared
connection for ``sqlite://``), and the schema's migration steps (:data:`_MIGRATIONS`, docs/store.md "Version
policy").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, inspect, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from suite.store._models import SCHEMA_VERSION, Base, Meta
from suite.store.base import SchemaVersionError, StoreError
from suite.store.payload import _now

DEFAULT_URL = "sqlite:///results/mlrd.db"


#: How long a SQLite connection waits for another one's lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0


_BEGIN_OPTION = "mlrd_sqlite_begin"


_SCHEMA_VERSION_KEY = "schema_version"


#: PostgreSQL advisory locks (transaction-scoped) that serialize, between processes, what row locks cannot: creating
#: or migrating the schema, and planning (two planners inserting the same new run id or the same spec's ordinals).
#: SQLite needs none: its write transactions are serialized by BEGIN IMMEDIATE.
_PG_SCHEMA_LOCK = 0x4D4C5244  # "MLRD"


_PG_PLAN_LOCK = 0x4D4C5245


def _add_claim_columns(conn: Connection) -> None:
    """Schema 1 -> 2: the runs' claim (``owner``, ``token``), for one writer per run."""
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN owner VARCHAR")
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN token VARCHAR(64)")


#: Migration steps: ``_MIGRATIONS[v]`` upgrades a database from schema version ``v`` to ``v + 1`` in place, inside
#: the transaction that then records the new version.
_MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _add_claim_columns}


def _parse_url(url: str | URL) -> URL:
    if isinstance(url, URL):
        return url
    if "://" not in url:
        return URL.create("sqlite", database=url)
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"cannot parse database URL {url!r}: {exc}; expected e.g. {DEFAULT_URL!r} or "
            "'postgresql+psycopg://user:password@host/dbname'"
        ) from exc


def _is_sqlite_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory"


def _describe(url: URL) -> str:
    """How messages name the database: the file for SQLite, the URL without password otherwise."""
    if url.get_backend_name() == "sqlite":
        return "the in-memory SQLite database" if _is_sqlite_memory(url) else str(url.database)
    return url.render_as_string(hide_password=True)


def _sqlite_hooks(engine: Engine, *, wal: bool) -> None:
    """Pragmas on every new connection, and SQLAlchemy (not the sqlite3 module) in charge of BEGIN."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 must not emit its own BEGIN; _on_begin does
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")  # persistent in the file; readers see committed data
                cursor.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe with WAL
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock at BEGIN (waiting up to the busy timeout); a deferred transaction that
        # reads and then writes can instead fail at once when another writer committed in between.
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _make_engine(url: URL, *, create: bool = True) -> Engine:
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if _is_sqlite_memory(url):
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        _sqlite_hooks(engine, wal=False)
        return engine
    database = url.database or ""
    if not database.startswith("file:"):
        path = Path(database).expanduser()
        if not create:
            if not path.is_file():
                raise StoreError(f"no results store at {path}: nothing has run there yet (python -m suite run SPEC)")
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of the results store {path}: {exc}") from exc
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})
    _sqlite_hooks(engine, wal=True)
    return engine


def _suite_version() -> str:
    from suite import __version__

    return __version__


class SchemaVersioning:
    """Opening and versioning the schema, a part of :class:`~suite.store.storage.RDBStore`: Core connections in a
    transaction (before any session exists), the stored version, creation of an empty database, and migration of
    an older one in one transaction (docs/store.md, "Version policy")."""

    if TYPE_CHECKING:
        where: str
        _create: bool
        _engine: Engine
        _is_sqlite: bool
        _lock: contextlib.AbstractContextManager[Any]

    @contextlib.contextmanager
    def _connection(self, *, write: bool) -> Iterator[Connection]:
        """A Core connection in a transaction (schema work happens before any session exists)."""
        with self._lock, self._engine.connect() as conn:
            if self._is_sqlite:
                conn = conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE" if write else "DEFERRED"})
            with conn.begin():
                if write and conn.dialect.name == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
                yield conn

    # -----------------------------------------------------------------------------------------------

    def _read_version(self, conn: Connection) -> int | None:
        """The stored schema version; ``None`` for an empty database. Refuses foreign or damaged databases."""
        tables = set(inspect(conn).get_table_names())
        if Meta.__tablename__ not in tables:
            ours = sorted(tables & set(Base.metadata.tables))
            if ours:
                raise StoreError(
                    f"{self.where} has tables {ours} but no 'meta' table: it was not created by mlrd-suite or is "
                    "damaged; point --db at another database"
                )
            return None
        raw = conn.scalar(select(Meta.value).where(Meta.key == _SCHEMA_VERSION_KEY))
        if raw is None or not raw.strip().isdigit():
            raise StoreError(f"{self.where} has a 'meta' table without a valid schema_version (got {raw!r})")
        return int(raw)

    def _ensure_schema(self) -> None:
        try:
            with self._connection(write=False) as conn:
                version = self._read_version(conn)
            if version == SCHEMA_VERSION:
                return
            if version is None and not self._create:
                raise StoreError(f"{self.where} holds no results store (no mlrd-suite tables): nothing has run there")
            self._refuse_newer(version)
            with self._connection(write=True) as conn:
                version = self._read_version(conn)  # again, under the write lock: another process may have won
                self._refuse_newer(version)
                if version is None:
                    Base.metadata.create_all(conn)
                    now = _now().isoformat()
                    conn.execute(
                        insert(Meta),
                        [
                            {"key": _SCHEMA_VERSION_KEY, "value": str(SCHEMA_VERSION)},
                            {"key": "created_at", "value": now},
                            {"key": "created_by", "value": f"mlrd-suite {_suite_version()}"},
                        ],
                    )
                elif version < SCHEMA_VERSION:
                    self._migrate(conn, version)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open {self.where}: {getattr(exc, 'orig', None) or exc}") from exc

    def _refuse_newer(self, version: int | None) -> None:
        if version is not None and version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.where} has schema version {version}, this suite understands up to {SCHEMA_VERSION}; "
                "upgrade mlrd-suite"
            )

    def _migrate(self, conn: Connection, version: int) -> None:
        for step_from in range(version, SCHEMA_VERSION):
            step = _MIGRATIONS.get(step_from)
            if step is None:
                raise SchemaVersionError(
                    f"{self.where} has schema version {version}, this suite needs {SCHEMA_VERSION} and has no "
                    f"migration from version {step_from}; read it with the mlrd-suite release that wrote it "
                    "(export) or start a new database"
                )
            step(conn)
        conn.execute(update(Meta).where(Meta.key == _SCHEMA_VERSION_KEY).values(value=str(SCHEMA_VERSION)))
