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
transaction by the steps in :data:`suite.store.engine._MIGRATIONS`, and refused when a step is missing.

Modules beside this one: ``engine`` (URLs, the engine, migrations), ``payload`` (a result payload and planned runs
into rows), ``frames`` (the DataFrame reads and the export, :class:`~suite.store.frames.FrameQueries`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import URL, CursorResult
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from suite.store._models import (
    RESULT_TABLES,
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
    RESETTABLE,
    ClaimLostError,
    IllegalTransitionError,
    Membership,
    PlannedRunLike,
    RunInfo,
    RunState,
    Store,
    StoreError,
    UnknownRunError,
    check_transition,
)
from suite.store.engine import (
    _BEGIN_OPTION,
    _PG_PLAN_LOCK,
    _SCHEMA_VERSION_KEY,
    DEFAULT_URL,
    SchemaVersioning,
    _describe,
    _is_sqlite_memory,
    _make_engine,
    _parse_url,
)
from suite.store.frames import FrameQueries
from suite.store.payload import _chunks, _info, _now, _parse_result, _planned_fields


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """Open (and create on first use) the results store at ``url``.

    ``url`` is any SQLAlchemy URL; ``None`` means ``sqlite:///results/mlrd.db`` relative to the working directory.
    A bare path (no ``://``) is taken as a SQLite file. The parent folder of a SQLite file is created.
    Raises :class:`SchemaVersionError` when the database was written by a newer suite. With ``create=False`` (the
    read-only commands) nothing is created: a missing SQLite file, or a database without the store's tables, is a
    :class:`StoreError` that says so.
    """
    return RDBStore(url or DEFAULT_URL, create=create)


class RDBStore(SchemaVersioning, FrameQueries, Store):
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
        return self._transition(run_id, RunState.RUNNING, **_attempt_values(worker, workdir, _now()))

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
                attempts=Run.attempts + 1,
                **_attempt_values(worker, workdir, now, owner=owner, token=token),
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


def _attempt_values(
    worker: str, workdir: str | Path | None, now: datetime, *, owner: str | None = None, token: str | None = None
) -> dict[str, Any]:
    """The columns a RUNNING attempt starts with (``mark_running`` and ``claim``): its worker and folder, the clock
    and heartbeat at ``now``, no end or error yet, and its claim (none for ``mark_running``)."""
    return {
        "worker": worker,
        "workdir": None if workdir is None else str(workdir),
        "started_at": now,
        "heartbeat_at": now,
        "finished_at": None,
        "error": None,
        "owner": owner,
        "token": token,
    }
