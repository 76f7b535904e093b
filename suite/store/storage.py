"""The SQLAlchemy implementation of :class:`~suite.store.base.Store`, and :func:`open_store`.

One engine per store, one :meth:`RDBStore.session_scope` for every transaction, and only portable SQLAlchemy
constructs, so the same code runs on SQLite (the default, ``sqlite:///results/mlrd.db``) and PostgreSQL
(``postgresql+psycopg://user@host/db``).

SQLite is set up for one writer (the coordinator) and any number of readers (``status``, notebooks, reports):
WAL journal (readers never block the writer and see the last committed state), foreign keys on, a 30 s busy
timeout, and write transactions opened with ``BEGIN IMMEDIATE`` so that a write waits for the lock up front
instead of failing half way with "database is locked". An in-memory database (``sqlite://``) lives on one
connection shared by all sessions (``StaticPool``) behind a lock.

Version policy (docs/store.md): the ``meta`` table holds ``schema_version``. An empty database gets the current
schema; a newer version is refused with :class:`SchemaVersionError`; an older one is migrated forward in one
transaction by the steps in :data:`_MIGRATIONS`, and refused when a step is missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import numbers
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Engine, create_engine, delete, event, func, insert, inspect, select, update
from sqlalchemy.engine import URL, CursorResult, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from suite.store._models import (
    RESULT_TABLES,
    SCHEMA_VERSION,
    Base,
    Environment,
    Meta,
    Metric,
    Period,
    PeriodLoss,
    Run,
    SpecRun,
    Timing,
)
from suite.store.base import (
    EXPORT_FORMATS,
    EXPORT_FRAMES,
    RESETTABLE,
    ClaimLostError,
    IllegalTransitionError,
    Membership,
    PlannedRunLike,
    RunInfo,
    RunState,
    SchemaVersionError,
    Store,
    StoreError,
    UnknownRunError,
    check_transition,
)

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_URL = "sqlite:///results/mlrd.db"
#: How long a SQLite connection waits for another one's lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Bound parameters per ``IN (...)`` list (SQLite and PostgreSQL both cap the parameters of one statement).
_CHUNK = 500
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


# ------------------------------------------------------------------------------------------------ opening


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """Open (and create on first use) the results store at ``url``.

    ``url`` is any SQLAlchemy URL; ``None`` means ``sqlite:///results/mlrd.db`` relative to the working directory.
    A bare path (no ``://``) is taken as a SQLite file. The parent folder of a SQLite file is created.
    Raises :class:`SchemaVersionError` when the database was written by a newer suite. With ``create=False`` (the
    read-only commands) nothing is created: a missing SQLite file, or a database without the store's tables, is a
    :class:`StoreError` that says so.
    """
    return RDBStore(url or DEFAULT_URL, create=create)


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


# ------------------------------------------------------------------------------------------------ values


def _now() -> datetime:
    return datetime.now(UTC)


def _canonical_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON-serializable: {exc}") from exc


def _number(value: Any, where: str) -> float | None:
    """A float for the database: ``None`` and NaN become NULL, strings and other objects are refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise StoreError(f"{where} must be a number or null, got {value!r} ({type(value).__name__})")
    number = float(value)
    return None if math.isnan(number) else number


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise StoreError(f"{where} must be an integer, got {value!r} ({type(value).__name__})")
    return int(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise StoreError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _field(row: Any, key: str, where: str) -> Any:
    if not isinstance(row, Mapping):
        raise StoreError(f"{where} must be a mapping, got {type(row).__name__}")
    if key not in row:
        raise StoreError(f"{where} lacks key {key!r} (it has {sorted(row)})")
    return row[key]


def _rows(result: Mapping[str, Any], key: str) -> list[Any]:
    rows = result.get(key) or []
    if not isinstance(rows, Sequence) or isinstance(rows, str):
        raise StoreError(f"result[{key!r}] must be a list, got {type(rows).__name__}")
    return list(rows)


def _unique(keys: Iterable[tuple[Any, ...]], what: str) -> None:
    seen: set[tuple[Any, ...]] = set()
    for key in keys:
        if key in seen:
            raise StoreError(f"{what} has two rows for {key}")
        seen.add(key)


@dataclass(frozen=True)
class _Parsed:
    """A result mapping checked and flattened into the rows of each table (``run_id`` added at insert)."""

    seed: int | None
    metrics: list[dict[str, Any]]
    periods: list[dict[str, Any]]
    period_losses: list[dict[str, Any]]
    timings: list[dict[str, Any]]
    environment: list[dict[str, Any]]
    resumed_from_json: str | None


def _parse_result(result: Mapping[str, Any]) -> _Parsed:
    """Check every row of a ``RunResult.to_dict()`` before anything touches the database."""
    seed = result.get("seed")
    metrics = []
    for i, row in enumerate(_rows(result, "metrics")):
        where = f"result['metrics'][{i}]"
        metrics.append(
            {
                "split": _text(_field(row, "split", where), f"{where}['split']"),
                "epoch": _integer(_field(row, "epoch", where), f"{where}['epoch']"),
                "protocol": _text(_field(row, "protocol", where), f"{where}['protocol']"),
                "name": _text(_field(row, "name", where), f"{where}['name']"),
                "value": _number(_field(row, "value", where), f"{where}['value']"),
            }
        )
    _unique(((m["split"], m["epoch"], m["protocol"], m["name"]) for m in metrics), "result['metrics']")

    periods, period_losses = [], []
    for i, row in enumerate(_rows(result, "periods")):
        where = f"result['periods'][{i}]"
        epoch = _integer(_field(row, "epoch", where), f"{where}['epoch']")
        period = _integer(_field(row, "period", where), f"{where}['period']")
        periods.append(
            {
                "epoch": epoch,
                "period": period,
                "action": _text(_field(row, "action", where), f"{where}['action']"),
                "lam": _number(_field(row, "lam", where), f"{where}['lam']"),
                "total": _number(_field(row, "total", where), f"{where}['total']"),
                "images": _integer(_field(row, "images", where), f"{where}['images']"),
            }
        )
        losses = _field(row, "losses", where)
        if not isinstance(losses, Sequence) or isinstance(losses, str):
            raise StoreError(f"{where}['losses'] must be a list, got {type(losses).__name__}")
        for j, loss in enumerate(losses):
            lwhere = f"{where}['losses'][{j}]"
            period_losses.append(
                {
                    "epoch": epoch,
                    "period": period,
                    "loss": _text(_field(loss, "name", lwhere), f"{lwhere}['name']"),
                    "position": j,
                    "mean": _number(_field(loss, "mean", lwhere), f"{lwhere}['mean']"),
                    "weight": _number(_field(loss, "weight", lwhere), f"{lwhere}['weight']"),
                    "contribution": _number(_field(loss, "contribution", lwhere), f"{lwhere}['contribution']"),
                }
            )
    _unique(((p["epoch"], p["period"]) for p in periods), "result['periods']")
    _unique(((p["epoch"], p["period"], p["loss"]) for p in period_losses), "result['periods'] losses")

    timings_in = result.get("timings") or {}
    environment_in = result.get("environment") or {}
    for key, value in (("timings", timings_in), ("environment", environment_in)):
        if not isinstance(value, Mapping):
            raise StoreError(f"result[{key!r}] must be a mapping, got {type(value).__name__}")
    timings = [
        {"name": _text(name, "a result['timings'] key"), "value": _number(value, f"result['timings'][{name!r}]")}
        for name, value in timings_in.items()
    ]
    environment = [
        {
            "key": _text(key, "a result['environment'] key"),
            "value": value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str),
        }
        for key, value in environment_in.items()
    ]
    resumed = result.get("resumed_from")
    return _Parsed(
        seed=None if seed is None else _integer(seed, "result['seed']"),
        metrics=metrics,
        periods=periods,
        period_losses=period_losses,
        timings=timings,
        environment=environment,
        resumed_from_json=None if resumed is None else _canonical_json(resumed, "result['resumed_from']"),
    )


def _planned_fields(run: PlannedRunLike | Mapping[str, Any]) -> dict[str, Any]:
    """``run_id, spec, group, arm, seed, config`` of a planned run given as an object or a mapping."""
    names = ("run_id", "spec", "group", "arm", "seed", "config")
    if isinstance(run, Mapping):
        missing = [n for n in names if n not in run]
        if missing:
            raise StoreError(f"planned run {dict(run)!r} lacks {missing}; a planned run has {list(names)}")
        values = {n: run[n] for n in names}
    else:
        try:
            values = {n: getattr(run, n) for n in names}
        except AttributeError as exc:
            raise StoreError(f"planned run {run!r} has no {exc.name!r}; a planned run has {list(names)}") from exc
    run_id = _text(values["run_id"], "planned run_id")
    where = f"planned run {run_id}"
    config = values["config"]
    if not isinstance(config, Mapping):
        raise StoreError(f"{where}: config must be a mapping, got {type(config).__name__}")
    return {
        "run_id": run_id,
        "spec": _text(values["spec"], f"{where}: spec"),
        "group_name": _text(values["group"], f"{where}: group"),
        "arm": _text(values["arm"], f"{where}: arm"),
        "seed": _integer(values["seed"], f"{where}: seed"),
        "config_json": _canonical_json(dict(config), f"{where}: config"),
    }


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _info(run: Run, memberships: Sequence[Membership]) -> RunInfo:
    return RunInfo(
        run_id=run.run_id,
        spec=run.spec,
        group=run.group_name,
        arm=run.arm,
        seed=run.seed,
        config=json.loads(run.config_json),
        state=RunState(run.state),
        attempts=run.attempts,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        heartbeat_at=run.heartbeat_at,
        worker=run.worker,
        workdir=run.workdir,
        error=run.error,
        resumed_from=None if run.resumed_from_json is None else json.loads(run.resumed_from_json),
        memberships=tuple(memberships),
        owner=run.owner,
        token=run.token,
    )


# ------------------------------------------------------------------------------------------------ frames

_Schema = Sequence[tuple[str, str]]  # (column, kind) with kind in str, int, float, time

METRICS_COLUMNS: _Schema = (
    ("run_id", "str"),
    ("spec", "str"),
    ("group", "str"),
    ("arm", "str"),
    ("seed", "int"),
    ("split", "str"),
    ("epoch", "int"),
    ("protocol", "str"),
    ("metric", "str"),
    ("value", "float"),
)
TIMINGS_COLUMNS: _Schema = (
    ("run_id", "str"),
    ("spec", "str"),
    ("group", "str"),
    ("arm", "str"),
    ("seed", "int"),
    ("name", "str"),
    ("value", "float"),
)
PERIODS_COLUMNS: _Schema = (
    ("run_id", "str"),
    ("epoch", "int"),
    ("period", "int"),
    ("action", "str"),
    ("lam", "float"),
    ("total", "float"),
    ("images", "int"),
    ("loss", "str"),
    ("mean", "float"),
    ("weight", "float"),
    ("contribution", "float"),
)
RUNS_COLUMNS: _Schema = (
    ("run_id", "str"),
    ("spec", "str"),
    ("group", "str"),
    ("arm", "str"),
    ("seed", "int"),
    ("state", "str"),
    ("attempts", "int"),
    ("created_at", "time"),
    ("started_at", "time"),
    ("finished_at", "time"),
    ("heartbeat_at", "time"),
    ("worker", "str"),
    ("workdir", "str"),
    ("error", "str"),
)


def _frame(rows: Sequence[Sequence[Any]], schema: _Schema) -> pd.DataFrame:
    """A DataFrame with fixed dtypes, the same whether or not there are rows: strings in pandas' string dtype
    (``str`` on pandas 3), ints int64, floats float64 (NULL -> NaN), times ``datetime64[us, UTC]``."""
    import pandas as pd

    string_dtype: Any = "str" if int(pd.__version__.split(".")[0]) >= 3 else object
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    data: dict[str, pd.Series] = {}
    for (name, kind), values in zip(schema, columns, strict=True):
        if kind == "str":
            data[name] = pd.Series(list(values), dtype=string_dtype)
        elif kind == "int":
            data[name] = pd.Series(list(values), dtype="int64")
        elif kind == "float":
            data[name] = pd.Series([math.nan if v is None else v for v in values], dtype="float64")
        else:
            data[name] = pd.Series(pd.to_datetime(list(values), utc=True)).astype("datetime64[us, UTC]")
    return pd.DataFrame(data, columns=[name for name, _ in schema])


# ------------------------------------------------------------------------------------------------ the store


class RDBStore(Store):
    """The results store on any SQLAlchemy database. Use :func:`open_store` rather than this class directly."""

    def __init__(self, url: str | URL, *, create: bool = True) -> None:
        self.url = _parse_url(url)
        self._create = create
        self.where = _describe(self.url)
        self._is_sqlite = self.url.get_backend_name() == "sqlite"
        # one shared connection (in-memory SQLite) must not be used by two threads at once
        shared = self._is_sqlite and _is_sqlite_memory(self.url)
        self._lock: contextlib.AbstractContextManager[Any] = threading.RLock() if shared else contextlib.nullcontext()
        try:
            self._engine = _make_engine(self.url, create=create)
        except ImportError as exc:
            raise StoreError(
                f"cannot open {self.where}: its database driver is not installed ({exc}); for "
                "postgresql+psycopg:// URLs: pip install 'psycopg[binary]'"
            ) from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open {self.where}: {exc}") from exc
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._closed = False
        try:
            self._ensure_schema()
        except BaseException:
            self._engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"RDBStore({self.url.render_as_string(hide_password=True)!r})"

    # transactions -----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def session_scope(self, *, write: bool = False, what: str = "query") -> Iterator[Session]:
        """One transaction: commit on success, roll back on any error. Database errors become
        :class:`StoreError` naming ``what`` and the database. ``write=True`` takes SQLite's write lock at BEGIN."""
        if self._closed:
            raise StoreError(f"the store on {self.where} is closed")
        with self._lock, self._sessions() as session:
            try:
                if self._is_sqlite:
                    session.connection(execution_options={_BEGIN_OPTION: "IMMEDIATE" if write else "DEFERRED"})
                yield session
                session.commit()
            except SQLAlchemyError as exc:
                session.rollback()
                cause = getattr(exc, "orig", None) or exc
                raise StoreError(f"{what} failed on {self.where}; the transaction was rolled back: {cause}") from exc
            except BaseException:
                session.rollback()
                raise

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

    # schema -----------------------------------------------------------------------------------------------

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

    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        with self.session_scope(what="reading the schema version") as s:
            return int(s.scalar(select(Meta.value).where(Meta.key == _SCHEMA_VERSION_KEY)) or 0)

    # runs -------------------------------------------------------------------------------------------------

    def add_planned(self, runs: Iterable[PlannedRunLike | Mapping[str, Any]]) -> int:
        items = [_planned_fields(r) for r in runs]
        if not items:
            return 0
        now = _now()
        with self.session_scope(write=True, what="adding planned runs") as s:
            if s.get_bind().dialect.name == "postgresql":
                s.execute(select(func.pg_advisory_xact_lock(_PG_PLAN_LOCK)))
            ids = list(dict.fromkeys(item["run_id"] for item in items))
            known: dict[str, tuple[int, str]] = {}
            for chunk in _chunks(ids):
                for run_id, seed, config_json in s.execute(
                    select(Run.run_id, Run.seed, Run.config_json).where(Run.run_id.in_(chunk))
                ):
                    known[run_id] = (seed, config_json)
            new_runs = []
            for item in items:
                identity = (item["seed"], item["config_json"])
                previous = known.get(item["run_id"])
                if previous is None:
                    known[item["run_id"]] = identity
                    new_runs.append({**item, "state": RunState.PLANNED.value, "attempts": 0, "created_at": now})
                elif previous != identity:
                    raise StoreError(
                        f"run {item['run_id']} is already stored with a different seed or config; a run id must be "
                        "the content hash of config + seed (+ code version), so the planner or the store is wrong"
                    )
            if new_runs:
                s.execute(insert(Run), new_runs)

            specs = sorted({item["spec"] for item in items})
            links: set[tuple[str, str, str, str]] = set()
            next_ordinal: dict[str, int] = dict.fromkeys(specs, 0)
            for spec, group, arm, run_id, ordinal in s.execute(
                select(SpecRun.spec, SpecRun.group_name, SpecRun.arm, SpecRun.run_id, SpecRun.ordinal).where(
                    SpecRun.spec.in_(specs)
                )
            ):
                links.add((spec, group, arm, run_id))
                next_ordinal[spec] = max(next_ordinal[spec], ordinal + 1)
            new_links = []
            for item in items:
                key = (item["spec"], item["group_name"], item["arm"], item["run_id"])
                if key in links:
                    continue
                links.add(key)
                new_links.append(dict(zip(("spec", "group_name", "arm", "run_id"), key, strict=True)))
                new_links[-1]["ordinal"] = next_ordinal[item["spec"]]
                next_ordinal[item["spec"]] += 1
            if new_links:
                s.execute(insert(SpecRun), new_links)
        return len(new_runs)

    def _memberships(self, s: Session, run_ids: Sequence[str]) -> dict[str, list[Membership]]:
        found: dict[str, list[Membership]] = {run_id: [] for run_id in run_ids}
        for chunk in _chunks(list(run_ids)):
            stmt = (
                select(SpecRun.run_id, SpecRun.spec, SpecRun.group_name, SpecRun.arm)
                .where(SpecRun.run_id.in_(chunk))
                .order_by(SpecRun.spec, SpecRun.ordinal)
            )
            for run_id, spec, group, arm in s.execute(stmt):
                found[run_id].append(Membership(spec=spec, group=group, arm=arm))
        return found

    def _infos(self, s: Session, rows: Sequence[Run]) -> list[RunInfo]:
        memberships = self._memberships(s, [r.run_id for r in rows])
        return [_info(r, memberships[r.run_id]) for r in rows]

    def get_run(self, run_id: str) -> RunInfo | None:
        with self.session_scope(what=f"reading run {run_id}") as s:
            row = s.get(Run, run_id)
            return None if row is None else self._infos(s, [row])[0]

    def runs(self, spec: str | None = None, states: Iterable[RunState | str] | None = None) -> list[RunInfo]:
        stmt = select(Run)
        if spec is not None:
            first = (
                select(SpecRun.run_id, func.min(SpecRun.ordinal).label("ordinal"))
                .where(SpecRun.spec == spec)
                .group_by(SpecRun.run_id)
                .subquery()
            )
            stmt = stmt.join(first, first.c.run_id == Run.run_id).order_by(first.c.ordinal)
        else:
            stmt = stmt.order_by(Run.created_at, Run.run_id)
        if states is not None:
            stmt = stmt.where(Run.state.in_([_state(x).value for x in states]))
        with self.session_scope(what="listing runs") as s:
            return self._infos(s, list(s.scalars(stmt)))

    def specs(self) -> list[str]:
        with self.session_scope(what="listing specs") as s:
            return list(s.scalars(select(SpecRun.spec).distinct().order_by(SpecRun.spec)))

    def counts(self, spec: str | None = None) -> dict[RunState, int]:
        stmt = select(Run.state, func.count()).group_by(Run.state)
        if spec is not None:
            stmt = stmt.where(Run.run_id.in_(select(SpecRun.run_id).where(SpecRun.spec == spec)))
        out = dict.fromkeys(RunState, 0)
        with self.session_scope(what="counting runs") as s:
            for state, n in s.execute(stmt):
                out[RunState(state)] = int(n)
        return out

    def environment(self, run_id: str) -> dict[str, str]:
        with self.session_scope(what=f"reading the environment of run {run_id}") as s:
            rows = s.execute(select(Environment.key, Environment.value).where(Environment.run_id == run_id))
            return {key: value for key, value in rows}

    # state machine ----------------------------------------------------------------------------------------

    @staticmethod
    def _locked(s: Session, run_id: str) -> Run:
        """The run's row, locked for this transaction (``FOR UPDATE`` on PostgreSQL; SQLite's write lock is
        already held by ``BEGIN IMMEDIATE``)."""
        row = s.get(Run, run_id, with_for_update=True)
        if row is None:
            raise UnknownRunError(f"unknown run id {run_id!r}: plan it first (add_planned)")
        return row

    def _transition(self, run_id: str, target: RunState, *, token: str | None = None, **values: Any) -> RunInfo:
        with self.session_scope(write=True, what=f"marking run {run_id} {target}") as s:
            row = self._locked(s, run_id)
            if token is not None:
                _check_claim(row, token)
            check_transition(run_id, RunState(row.state), target)
            row.state = target.value
            for key, value in values.items():
                setattr(row, key, value)
            if target is RunState.RUNNING:
                row.attempts += 1
            s.flush()
            return self._infos(s, [row])[0]

    def mark_running(self, run_id: str, worker: str, workdir: str | Path | None = None) -> RunInfo:
        now = _now()
        return self._transition(
            run_id,
            RunState.RUNNING,
            worker=worker,
            workdir=None if workdir is None else str(workdir),
            started_at=now,
            heartbeat_at=now,
            finished_at=None,
            error=None,
            owner=None,
            token=None,
        )

    def claim(
        self,
        run_id: str,
        *,
        owner: str,
        token: str,
        worker: str,
        workdir: str | Path | None = None,
        stale_after_s: float,
        force: bool = False,
    ) -> RunInfo | None:
        now = _now()
        free = [RunState.PLANNED.value, RunState.FAILED.value, RunState.LOST.value]
        if force:
            free.append(RunState.DONE.value)
        cutoff = now - timedelta(seconds=stale_after_s)
        stale = (Run.state == RunState.RUNNING.value) & (Run.heartbeat_at.is_(None) | (Run.heartbeat_at < cutoff))
        # One UPDATE ... WHERE <still claimable>: a compare-and-set that two coordinators cannot both win (SQLite
        # serializes writers, PostgreSQL re-checks the WHERE on the locked row after a concurrent update).
        stmt = (
            update(Run)
            .where(Run.run_id == run_id)
            .where(Run.state.in_(free) | stale)
            .values(
                state=RunState.RUNNING.value,
                owner=owner,
                token=token,
                worker=worker,
                workdir=None if workdir is None else str(workdir),
                started_at=now,
                heartbeat_at=now,
                finished_at=None,
                error=None,
                attempts=Run.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        with self.session_scope(write=True, what=f"claiming run {run_id}") as s:
            won = cast("CursorResult[Any]", s.execute(stmt)).rowcount == 1
            row = s.get(Run, run_id, populate_existing=True)
            if row is None:
                raise UnknownRunError(f"unknown run id {run_id!r}: plan it first (add_planned)")
            return self._infos(s, [row])[0] if won else None

    def heartbeat(
        self, run_id: str, at: datetime | None = None, *, token: str | None = None, worker: str | None = None
    ) -> None:
        with self.session_scope(write=True, what=f"heartbeat of run {run_id}") as s:
            row = self._locked(s, run_id)
            if token is not None:
                _check_claim(row, token)
            if row.state != RunState.RUNNING:
                raise IllegalTransitionError(f"run {run_id}: heartbeat for a run in state {row.state}, not RUNNING")
            row.heartbeat_at = at or _now()
            if worker is not None:
                row.worker = worker

    def mark_failed(self, run_id: str, error: str, *, token: str | None = None) -> RunInfo:
        return self._transition(run_id, RunState.FAILED, token=token, error=error, finished_at=_now())

    def mark_lost(self, run_id: str, reason: str, *, token: str | None = None) -> RunInfo:
        return self._transition(run_id, RunState.LOST, token=token, error=reason, finished_at=_now())

    def stale_runs(self, older_than_s: float, *, now: datetime | None = None) -> list[RunInfo]:
        cutoff = (now or _now()) - timedelta(seconds=older_than_s)
        stmt = (
            select(Run)
            .where(Run.state == RunState.RUNNING.value)
            .where((Run.heartbeat_at.is_(None)) | (Run.heartbeat_at < cutoff))
            .order_by(Run.heartbeat_at, Run.run_id)
        )
        with self.session_scope(what="looking for stale runs") as s:
            return self._infos(s, list(s.scalars(stmt)))

    def ingest_result(self, run_id: str, result: Mapping[str, Any], *, token: str | None = None) -> bool:
        if not isinstance(result, Mapping) and callable(getattr(result, "to_dict", None)):
            result = result.to_dict()  # a RunResult itself
        if not isinstance(result, Mapping):
            raise StoreError(f"run {run_id}: a result must be a mapping (RunResult.to_dict()), got {type(result)}")
        with self.session_scope(what=f"reading run {run_id}") as s:
            state = s.scalar(select(Run.state).where(Run.run_id == run_id))
        if state == RunState.DONE and token is None:
            return False  # already ingested, whatever this copy holds (checked again under the lock below)
        try:
            parsed = _parse_result(result)
        except StoreError as exc:
            raise StoreError(f"cannot ingest the result of run {run_id}, nothing was written: {exc}") from exc
        with self.session_scope(write=True, what=f"ingest of run {run_id}") as s:
            row = self._locked(s, run_id)
            if token is not None:
                _check_claim(row, token)
            if row.state == RunState.DONE:
                return False  # already ingested: writing again would duplicate rows
            check_transition(run_id, RunState(row.state), RunState.DONE)
            for model in RESULT_TABLES:  # what an earlier attempt left (a --force rerun): replaced, not duplicated
                s.execute(delete(model).where(model.run_id == run_id))
            if parsed.seed is not None and parsed.seed != row.seed:
                raise StoreError(
                    f"cannot ingest the result of run {run_id}: it has seed {parsed.seed}, the run has seed "
                    f"{row.seed}; nothing was written"
                )
            for model, rows in (
                (Metric, parsed.metrics),
                (Period, parsed.periods),
                (PeriodLoss, parsed.period_losses),
                (Timing, parsed.timings),
                (Environment, parsed.environment),
            ):
                if rows:
                    s.execute(insert(model), [{"run_id": run_id, **r} for r in rows])
            now = _now()
            row.state = RunState.DONE.value
            row.finished_at = now
            row.heartbeat_at = now
            row.error = None
            row.resumed_from_json = parsed.resumed_from_json
        return True

    def reset(self, run_id: str) -> RunInfo:
        with self.session_scope(write=True, what=f"reset of run {run_id}") as s:
            row = self._locked(s, run_id)
            state = RunState(row.state)
            if state not in RESETTABLE:
                raise IllegalTransitionError(
                    f"run {run_id}: illegal state transition {state} -> {RunState.PLANNED} (reset); a RUNNING run "
                    "has a live worker: mark it failed or lost first"
                )
            for model in RESULT_TABLES:  # explicit, not only ON DELETE CASCADE: the run row itself stays
                s.execute(delete(model).where(model.run_id == run_id))
            row.state = RunState.PLANNED.value
            row.attempts = 0
            for column in ("started_at", "finished_at", "heartbeat_at", "worker", "workdir", "error", "owner", "token"):
                setattr(row, column, None)
            row.resumed_from_json = None
            s.flush()
            return self._infos(s, [row])[0]

    # frames -----------------------------------------------------------------------------------------------

    def metrics_frame(self, spec: str | None = None, split: str | None = None) -> pd.DataFrame:
        stmt = (
            select(
                SpecRun.run_id,
                SpecRun.spec,
                SpecRun.group_name,
                SpecRun.arm,
                Run.seed,
                Metric.split,
                Metric.epoch,
                Metric.protocol,
                Metric.name,
                Metric.value,
            )
            .join(Run, Run.run_id == SpecRun.run_id)
            .join(Metric, Metric.run_id == SpecRun.run_id)
            .order_by(SpecRun.spec, SpecRun.ordinal, Metric.split, Metric.epoch, Metric.protocol, Metric.name)
        )
        if spec is not None:
            stmt = stmt.where(SpecRun.spec == spec)
        if split is not None:
            stmt = stmt.where(Metric.split == split)
        with self.session_scope(what="reading metrics") as s:
            rows = [tuple(r) for r in s.execute(stmt)]
        return _frame(rows, METRICS_COLUMNS)

    def timings_frame(self, spec: str | None = None) -> pd.DataFrame:
        stmt = (
            select(SpecRun.run_id, SpecRun.spec, SpecRun.group_name, SpecRun.arm, Run.seed, Timing.name, Timing.value)
            .join(Run, Run.run_id == SpecRun.run_id)
            .join(Timing, Timing.run_id == SpecRun.run_id)
            .order_by(SpecRun.spec, SpecRun.ordinal, Timing.name)
        )
        if spec is not None:
            stmt = stmt.where(SpecRun.spec == spec)
        with self.session_scope(what="reading timings") as s:
            rows = [tuple(r) for r in s.execute(stmt)]
        return _frame(rows, TIMINGS_COLUMNS)

    def periods_frame(self, run_id: str | None = None, *, spec: str | None = None) -> pd.DataFrame:
        stmt = (
            select(
                Period.run_id,
                Period.epoch,
                Period.period,
                Period.action,
                Period.lam,
                Period.total,
                Period.images,
                PeriodLoss.loss,
                PeriodLoss.mean,
                PeriodLoss.weight,
                PeriodLoss.contribution,
            )
            .outerjoin(
                PeriodLoss,
                (PeriodLoss.run_id == Period.run_id)
                & (PeriodLoss.epoch == Period.epoch)
                & (PeriodLoss.period == Period.period),
            )
            .order_by(Period.run_id, Period.epoch, Period.period, PeriodLoss.position)
        )
        if run_id is not None:
            stmt = stmt.where(Period.run_id == run_id)
        if spec is not None:
            stmt = stmt.where(Period.run_id.in_(select(SpecRun.run_id).where(SpecRun.spec == spec)))
        with self.session_scope(what="reading periods") as s:
            rows = [tuple(r) for r in s.execute(stmt)]
        return _frame(rows, PERIODS_COLUMNS)

    def runs_frame(self, spec: str | None = None) -> pd.DataFrame:
        stmt = (
            select(
                SpecRun.run_id,
                SpecRun.spec,
                SpecRun.group_name,
                SpecRun.arm,
                Run.seed,
                Run.state,
                Run.attempts,
                Run.created_at,
                Run.started_at,
                Run.finished_at,
                Run.heartbeat_at,
                Run.worker,
                Run.workdir,
                Run.error,
            )
            .join(Run, Run.run_id == SpecRun.run_id)
            .order_by(SpecRun.spec, SpecRun.ordinal)
        )
        if spec is not None:
            stmt = stmt.where(SpecRun.spec == spec)
        with self.session_scope(what="reading runs") as s:
            rows = [tuple(r) for r in s.execute(stmt)]
        return _frame(rows, RUNS_COLUMNS)

    def export(
        self, spec: str, path: str | Path, format: str = "csv", *, frames: Sequence[str] = ("metrics",)
    ) -> list[Path]:
        if format not in EXPORT_FORMATS:
            raise StoreError(f"unknown export format {format!r}; valid formats: {list(EXPORT_FORMATS)}")
        unknown = [f for f in frames if f not in EXPORT_FRAMES]
        if unknown or not frames:
            raise StoreError(f"unknown frames {unknown} to export; valid frames: {list(EXPORT_FRAMES)}")
        if format == "parquet" and not any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
            raise StoreError("parquet export needs pyarrow: pip install pyarrow (or export with format='csv')")
        known = self.specs()
        if spec not in known:
            raise StoreError(f"no runs are planned for spec {spec!r}; specs in {self.where}: {known}")
        readers: dict[str, Callable[[], pd.DataFrame]] = {
            "metrics": lambda: self.metrics_frame(spec),
            "timings": lambda: self.timings_frame(spec),
            "periods": lambda: self.periods_frame(spec=spec),
            "runs": lambda: self.runs_frame(spec),
        }
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^\w.-]+", "_", spec)
        written = []
        for name in dict.fromkeys(frames):
            df = readers[name]()
            target = out / f"{stem}-{name}.{format}"
            tmp = target.with_name(f".{target.name}.tmp")
            if format == "csv":
                df.to_csv(tmp, index=False)
            else:
                df.to_parquet(tmp, index=False)
            os.replace(tmp, target)  # atomic: a reader never sees half a file
            written.append(target)
        return written

    # lifecycle --------------------------------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()


def _check_claim(row: Run, token: str) -> None:
    """Raise :class:`ClaimLostError` unless ``row`` is RUNNING under the claim ``token``."""
    if row.state != RunState.RUNNING.value or row.token != token:
        holder = f"held by {row.owner}" if row.state == RunState.RUNNING.value else f"now {row.state}"
        raise ClaimLostError(
            f"run {row.run_id}: this coordinator's claim on it is gone ({holder}); nothing was written"
        )


def _state(value: RunState | str) -> RunState:
    try:
        return RunState(value)
    except ValueError:
        raise StoreError(f"unknown run state {value!r}; valid states: {[s.value for s in RunState]}") from None


def _suite_version() -> str:
    from suite import __version__

    return __version__
