"""The results store (suite.store), parametrized over storage modes: in-memory SQLite, SQLite file, and
PostgreSQL when MLRD_TEST_POSTGRES_URL is set (the nox ``postgres`` session sets it)."""

from __future__ import annotations

import importlib.util
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from mlrd_core.errors import MLRDError
from suite.store import (
    SCHEMA_VERSION,
    ClaimLostError,
    IllegalTransitionError,
    PlannedRun,
    RunState,
    SchemaVersionError,
    Store,
    StoreError,
    UnknownRunError,
    _models,
    engine,
    open_store,
    storage,
)

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("MLRD_TEST_POSTGRES_URL")
NO_POSTGRES = "PostgreSQL mode needs MLRD_TEST_POSTGRES_URL (e.g. postgresql+psycopg://user@localhost/mlrd_test)"
LOSSES = ("l_D^0", "l_M^0", "l_r^1")


# ------------------------------------------------------------------------------------------------ fixtures


def _clean_postgres(url: str) -> None:
    engine = create_engine(url)
    try:
        _models.Base.metadata.drop_all(engine)
    finally:
        engine.dispose()


def _url_for(mode: str, tmp_path: Path) -> str:
    if mode == "memory":
        return "sqlite://"
    if mode == "file":
        return f"sqlite:///{tmp_path / 'results' / 'mlrd.db'}"
    if POSTGRES_URL is None:
        pytest.skip(NO_POSTGRES)
    _clean_postgres(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture(params=["memory", "file", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each storage mode."""
    return _url_for(request.param, tmp_path)


@pytest.fixture(params=["file", "postgres"])
def persistent_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Modes whose database outlives a store (so it can be reopened)."""
    return _url_for(request.param, tmp_path)


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with open_store(url) as s:
        yield s


def planned(run_id: str, spec: str = "demo", group: str = "g", arm: str = "a", seed: int = 0) -> PlannedRun:
    return PlannedRun(run_id=run_id, spec=spec, group=group, arm=arm, seed=seed, config={"losses": "L", "lr": 1e-4})


def make_result(seed: int = 0, epochs: int = 2, periods: int = 2, losses: tuple[str, ...] = LOSSES) -> dict[str, Any]:
    """A result shaped like ``RunResult.to_dict()``."""
    metrics = [
        {"split": split, "epoch": e, "protocol": "synthetic", "name": name, "value": 0.1 * (e + 1) + i}
        for split, epochs_of_split in (("val", range(epochs)), ("test", [epochs - 1]))
        for e in epochs_of_split
        for i, name in enumerate(("rmse", "abs_rel", "delta1"))
    ]
    records = [
        {
            "epoch": e,
            "period": p,
            "action": "init" if (e, p) == (0, 0) else "rebalance",
            "lam": None if (e, p) == (0, 0) else 3.0 - e,
            "total": 1.5,
            "images": 8,
            "losses": [
                {"name": n, "mean": 0.5 + k, "weight": 1.0 / len(losses), "contribution": (0.5 + k) / len(losses)}
                for k, n in enumerate(losses)
            ],
        }
        for e in range(epochs)
        for p in range(periods)
    ]
    return {
        "config": {"losses": "L", "lr": 1e-4},
        "seed": seed,
        "loss_names": list(losses),
        "metrics": metrics,
        "periods": records,
        "timings": {"s_per_iter": 0.25, "data_s_per_iter": 0.01, "peak_memory_mb": 512.0, "timed_steps": 7.0},
        "environment": {"python": "3.11.7", "torch": "2.4.0", "device": "cpu", "threads": 2},
        "resumed_from": None,
    }


def run_done(store: Store, run_id: str, **kw: Any) -> None:
    store.add_planned([planned(run_id, **kw)])
    store.mark_running(run_id, worker="host:1:slot0", workdir=f"/tmp/{run_id}")
    assert store.ingest_result(run_id, make_result(seed=kw.get("seed", 0)))


def row_counts(store: Store) -> dict[str, int]:
    return {
        "metrics": len(store.metrics_frame()),
        "periods": len(store.periods_frame()),
        "timings": len(store.timings_frame()),
    }


# ------------------------------------------------------------------------------------------------ schema


def test_schema_created_with_version(store: Store) -> None:
    assert isinstance(store, storage.RDBStore)
    assert store.schema_version() == SCHEMA_VERSION
    tables = set(inspect(store._engine).get_table_names())
    assert {"meta", "runs", "spec_runs", "metrics", "periods", "period_losses", "timings", "environment"} <= tables
    assert store.counts() == dict.fromkeys(RunState, 0)


def test_reopen_keeps_data(persistent_url: str) -> None:
    with open_store(persistent_url) as s:
        run_done(s, "r1")
    with open_store(persistent_url) as s:
        info = s.get_run("r1")
        assert info is not None and info.state is RunState.DONE
        assert len(s.metrics_frame("demo")) == len(make_result()["metrics"])


def _set_meta_version(url: str, version: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = :v WHERE key = 'schema_version'"), {"v": version})
    engine.dispose()


def test_newer_schema_version_is_refused(persistent_url: str) -> None:
    open_store(persistent_url).close()
    _set_meta_version(persistent_url, str(SCHEMA_VERSION + 2))
    with pytest.raises(SchemaVersionError, match=f"has schema version {SCHEMA_VERSION + 2}, this suite understands"):
        open_store(persistent_url)


def test_version_message_names_the_default_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    open_store().close()  # the default URL, parent folder created
    assert (tmp_path / "results" / "mlrd.db").is_file()
    _set_meta_version(storage.DEFAULT_URL, "3")
    with pytest.raises(SchemaVersionError) as info:
        open_store()
    assert str(info.value) == (
        f"results/mlrd.db has schema version 3, this suite understands up to {SCHEMA_VERSION}; upgrade mlrd-suite"
    )
    assert isinstance(info.value, StoreError) and isinstance(info.value, MLRDError)
    assert isinstance(info.value, RuntimeError)


def test_older_schema_without_migration_is_refused(persistent_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(persistent_url).close()
    _set_meta_version(persistent_url, str(SCHEMA_VERSION - 1))
    monkeypatch.delitem(engine._MIGRATIONS, SCHEMA_VERSION - 1)
    with pytest.raises(SchemaVersionError, match="has no migration from version"):
        open_store(persistent_url)


def test_older_schema_is_migrated_by_registered_steps(persistent_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(persistent_url).close()
    _set_meta_version(persistent_url, str(SCHEMA_VERSION - 1))
    calls: list[int] = []
    monkeypatch.setitem(engine._MIGRATIONS, SCHEMA_VERSION - 1, lambda conn: calls.append(SCHEMA_VERSION - 1))
    with open_store(persistent_url) as s:
        assert s.schema_version() == SCHEMA_VERSION
    assert calls == [SCHEMA_VERSION - 1]
    open_store(persistent_url).close()  # migrated once, not again
    assert calls == [SCHEMA_VERSION - 1]


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY)")
    with pytest.raises(StoreError, match=r"has tables \['runs'\] but no 'meta' table"):
        open_store(f"sqlite:///{path}")


def test_unrelated_tables_are_left_alone(tmp_path: Path) -> None:
    """An Optuna study (or anything else without our table names) can share the database."""
    path = tmp_path / "shared.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE studies (study_id INTEGER PRIMARY KEY)")
    with open_store(str(path)) as s:  # a bare path means a SQLite file
        assert s.schema_version() == SCHEMA_VERSION


def test_sqlite_file_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "mlrd.db"
    with open_store(f"sqlite:///{path}") as s:
        assert isinstance(s, storage.RDBStore)
        with s.session_scope() as session:
            assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert session.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # persistent in the file


def test_postgres_ddl_compiles() -> None:
    """The schema is portable: it compiles for PostgreSQL without a server (the full suite runs with one)."""
    dialect = postgresql.dialect()
    ddl = [str(CreateTable(t).compile(dialect=dialect)) for t in _models.Base.metadata.sorted_tables]
    ddl += [
        str(CreateIndex(i).compile(dialect=dialect)) for t in _models.Base.metadata.tables.values() for i in t.indexes
    ]
    joined = "\n".join(ddl)
    assert "TIMESTAMP WITH TIME ZONE" in joined and "DOUBLE PRECISION" in joined
    assert "ON DELETE CASCADE" in joined


def test_bad_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot parse database URL"):
        open_store("not a url://x")


@pytest.mark.skipif(importlib.util.find_spec("psycopg") is not None, reason="psycopg is installed")
def test_missing_driver_says_what_to_install() -> None:
    with pytest.raises(StoreError, match=r"driver is not installed.*pip install 'psycopg\[binary\]'") as info:
        open_store("postgresql+psycopg://me:secret@localhost/mlrd")
    assert "secret" not in str(info.value)  # passwords never reach messages


def test_closed_store_refuses(url: str) -> None:
    s = open_store(url)
    s.close()
    with pytest.raises(StoreError, match="is closed"):
        s.runs()


# ------------------------------------------------------------------------------------------------ state machine


def test_legal_lifecycle_with_retries(store: Store) -> None:
    store.add_planned([planned("r1")])
    info = store.get_run("r1")
    assert info is not None
    assert (info.state, info.attempts, info.started_at) == (RunState.PLANNED, 0, None)
    assert info.created_at.tzinfo is not None and info.created_at.utcoffset() == timedelta(0)

    info = store.mark_running("r1", worker="node7:4242:gpu0", workdir=Path("/scratch/r1"))
    assert (info.state, info.attempts, info.worker, info.workdir) == (
        RunState.RUNNING,
        1,
        "node7:4242:gpu0",
        "/scratch/r1",
    )
    assert info.heartbeat_at is not None and info.started_at is not None

    info = store.mark_failed("r1", "Traceback ...\nNonFiniteLossError: loss is nan")
    assert info.state is RunState.FAILED and info.error is not None and "NonFiniteLossError" in info.error
    assert info.finished_at is not None

    info = store.mark_running("r1", worker="slurm:123456_7")
    assert (info.state, info.attempts, info.error, info.finished_at) == (RunState.RUNNING, 2, None, None)
    info = store.mark_lost("r1", "no heartbeat for 600 s")
    assert (info.state, info.error) == (RunState.LOST, "no heartbeat for 600 s")

    store.mark_running("r1", worker="slurm:123457_7")
    assert store.ingest_result("r1", make_result())
    info = store.get_run("r1")
    assert info is not None and (info.state, info.attempts, info.error) == (RunState.DONE, 3, None)


@pytest.mark.parametrize(
    ("setup", "action", "expected"),
    [
        ([], "failed", "PLANNED -> FAILED"),
        ([], "lost", "PLANNED -> LOST"),
        ([], "ingest", "PLANNED -> DONE"),
        (["running"], "running", "RUNNING -> RUNNING"),
        (["running", "failed"], "failed", "FAILED -> FAILED"),
        (["running", "failed"], "ingest", "FAILED -> DONE"),
        (["running", "lost"], "ingest", "LOST -> DONE"),
        (["running", "ingest"], "running", "DONE -> RUNNING"),
        (["running", "ingest"], "failed", "DONE -> FAILED"),
        (["running", "ingest"], "lost", "DONE -> LOST"),
    ],
)
def test_illegal_transitions(store: Store, setup: list[str], action: str, expected: str) -> None:
    store.add_planned([planned("run-abc")])
    actions = {
        "running": lambda: store.mark_running("run-abc", worker="w"),
        "failed": lambda: store.mark_failed("run-abc", "boom"),
        "lost": lambda: store.mark_lost("run-abc", "gone"),
        "ingest": lambda: store.ingest_result("run-abc", make_result()),
    }
    for step in setup:
        actions[step]()
    before = store.get_run("run-abc")
    with pytest.raises(IllegalTransitionError, match=expected) as info:
        actions[action]()
    assert "run-abc" in str(info.value)
    assert store.get_run("run-abc") == before  # nothing changed


def test_done_is_final_unless_reset(store: Store) -> None:
    run_done(store, "r1")
    with pytest.raises(IllegalTransitionError, match="DONE is final"):
        store.mark_running("r1", worker="w")
    info = store.reset("r1")
    assert (info.state, info.attempts, info.worker, info.finished_at) == (RunState.PLANNED, 0, None, None)
    assert row_counts(store) == {"metrics": 0, "periods": 0, "timings": 0}
    assert store.environment("r1") == {}
    store.mark_running("r1", worker="w")
    assert store.ingest_result("r1", make_result())  # a fresh ingest after reset writes again
    assert len(store.metrics_frame()) == len(make_result()["metrics"])


def test_reset_refuses_running(store: Store) -> None:
    store.add_planned([planned("r1")])
    store.mark_running("r1", worker="w")
    with pytest.raises(IllegalTransitionError, match="RUNNING -> PLANNED"):
        store.reset("r1")


def test_unknown_run(store: Store) -> None:
    assert store.get_run("nope") is None
    with pytest.raises(UnknownRunError, match="unknown run id 'nope'"):
        store.mark_running("nope", worker="w")
    with pytest.raises(UnknownRunError):
        store.ingest_result("nope", make_result())


def test_heartbeat_needs_running(store: Store) -> None:
    store.add_planned([planned("r1")])
    with pytest.raises(IllegalTransitionError, match="heartbeat for a run in state PLANNED"):
        store.heartbeat("r1")


def test_stale_heartbeats(store: Store) -> None:
    store.add_planned([planned(f"r{i}") for i in range(4)])
    for i in range(4):
        store.mark_running(f"r{i}", worker=f"w{i}")
    now = datetime.now(UTC)
    store.heartbeat("r0", at=now - timedelta(seconds=600))
    store.heartbeat("r1", at=now - timedelta(seconds=30))
    store.heartbeat("r2", at=now - timedelta(seconds=900))
    store.mark_failed("r2", "crashed")  # not RUNNING: never stale
    assert [r.run_id for r in store.stale_runs(120, now=now)] == ["r0"]
    assert [r.run_id for r in store.stale_runs(10, now=now)] == ["r0", "r1"]
    assert [r.run_id for r in store.stale_runs(3600)] == []
    time.sleep(0.05)
    assert "r3" in {r.run_id for r in store.stale_runs(0.01)}  # real clock
    store.mark_lost("r0", "no heartbeat for 600 s")
    assert store.get_run("r0").state is RunState.LOST  # type: ignore[union-attr]


def test_naive_heartbeat_time_is_refused(store: Store) -> None:
    store.add_planned([planned("r1")])
    store.mark_running("r1", worker="w")
    with pytest.raises(StoreError, match="naive datetime"):
        store.heartbeat("r1", at=datetime(2024, 1, 1, 12, 0))


# ------------------------------------------------------------------------------------------------ planning


def test_add_planned_is_idempotent(store: Store) -> None:
    runs = [planned("r1"), planned("r2", seed=1)]
    assert store.add_planned(runs) == 2
    store.mark_running("r1", worker="w")
    assert store.add_planned(runs) == 0
    assert store.add_planned([]) == 0
    info = store.get_run("r1")
    assert info is not None and info.state is RunState.RUNNING  # existing runs untouched
    assert len(store.runs_frame("demo")) == 2
    assert [r.run_id for r in store.runs("demo")] == ["r1", "r2"]
    assert [r.run_id for r in store.runs(states=["PLANNED"])] == ["r2"]
    assert store.counts("demo") == {**dict.fromkeys(RunState, 0), RunState.PLANNED: 1, RunState.RUNNING: 1}


def test_add_planned_accepts_mappings(store: Store) -> None:
    row = {"run_id": "r1", "spec": "s", "group": "g", "arm": "a", "seed": 3, "config": {"x": [1, 2]}}
    assert store.add_planned([row]) == 1
    info = store.get_run("r1")
    assert info is not None and (info.seed, info.config) == (3, {"x": [1, 2]})
    with pytest.raises(StoreError, match=r"lacks \['seed'\]"):
        store.add_planned([{k: v for k, v in row.items() if k != "seed"}])


def test_same_run_id_with_other_config_is_refused(store: Store) -> None:
    store.add_planned([planned("r1")])
    other = PlannedRun(run_id="r1", spec="demo", group="g", arm="a", seed=0, config={"lr": 1.0})
    with pytest.raises(StoreError, match="already stored with a different seed or config"):
        store.add_planned([other])


def test_shared_run_id_across_specs(store: Store) -> None:
    """Identical configs from two specs share one run; each spec sees the run under its own group and arm."""
    assert store.add_planned([planned("shared", spec="table3", group="encoders", arm="resnet18")]) == 1
    assert store.add_planned([planned("shared", spec="table5", group="lambda", arm="3 -> -3")]) == 0
    store.add_planned([planned("shared", spec="table5", group="baseline", arm="ours")])  # twice in one spec
    store.mark_running("shared", worker="w")
    store.ingest_result("shared", make_result())

    info = store.get_run("shared")
    assert info is not None
    assert (info.spec, info.group, info.arm) == ("table3", "encoders", "resnet18")  # the plan that created it
    assert [(m.spec, m.group, m.arm) for m in info.memberships] == [
        ("table3", "encoders", "resnet18"),
        ("table5", "lambda", "3 -> -3"),
        ("table5", "baseline", "ours"),
    ]
    n = len(make_result()["metrics"])
    t3 = store.metrics_frame("table3")
    assert len(t3) == n and set(t3["group"]) == {"encoders"} and set(t3["arm"]) == {"resnet18"}
    t5 = store.metrics_frame("table5", split="test")
    assert set(zip(t5["group"], t5["arm"], strict=True)) == {("lambda", "3 -> -3"), ("baseline", "ours")}
    assert len(store.metrics_frame()) == 3 * n  # one row per association
    assert len(store.runs("table5")) == 1  # runs are unique
    assert store.counts("table5")[RunState.DONE] == 1 and store.counts()[RunState.DONE] == 1
    assert store.specs() == ["table3", "table5"]
    assert len(store.periods_frame(spec="table5")) == len(store.periods_frame("shared"))


# ------------------------------------------------------------------------------------------------ ingest


def test_ingest_writes_everything(store: Store) -> None:
    run_done(store, "r1")
    result = make_result()
    metrics = store.metrics_frame("demo")
    assert len(metrics) == len(result["metrics"])
    row = metrics[(metrics.split == "val") & (metrics.epoch == 1) & (metrics.metric == "abs_rel")]
    assert row["value"].tolist() == pytest.approx([1.2])
    periods = store.periods_frame("r1")
    assert len(periods) == len(result["periods"]) * len(LOSSES)
    first = periods[(periods.epoch == 0) & (periods.period == 0)]
    assert first["loss"].tolist() == list(LOSSES)  # the weighting's order, not alphabetical
    assert math.isnan(first["lam"].iloc[0]) and first["action"].iloc[0] == "init"
    timings = store.timings_frame("demo")
    assert dict(zip(timings["name"], timings["value"], strict=True))["s_per_iter"] == 0.25
    assert store.environment("r1") == {"python": "3.11.7", "torch": "2.4.0", "device": "cpu", "threads": "2"}


def test_ingest_accepts_a_run_result(store: Store) -> None:
    from mlrd_core.trainer import RunResult

    store.add_planned([planned("r1", seed=5)])
    store.mark_running("r1", worker="w")
    data = make_result(seed=5)
    result = RunResult(
        config=data["config"],
        seed=5,
        loss_names=data["loss_names"],
        metrics=data["metrics"],
        periods=data["periods"],
        timings=data["timings"],
        environment=data["environment"],
        resumed_from={"epoch": 1, "batch": 3, "step": 11},
    )
    assert store.ingest_result("r1", result)  # type: ignore[arg-type]
    info = store.get_run("r1")
    assert info is not None and info.resumed_from == {"epoch": 1, "batch": 3, "step": 11}


def test_duplicate_ingest_is_a_noop(store: Store) -> None:
    run_done(store, "r1")
    before = row_counts(store)
    finished = store.get_run("r1")
    assert store.ingest_result("r1", make_result()) is False
    assert store.ingest_result("r1", {"seed": 0, "metrics": [{"bad": 1}]}) is False  # not even parsed into rows
    assert row_counts(store) == before
    assert store.get_run("r1") == finished


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda r: r["metrics"][-1].update(value="abc"), r"result\['metrics'\]\[\d+\]\['value'\] must be a number"),
        (lambda r: r["periods"][-1]["losses"][-1].pop("mean"), r"lacks key 'mean'"),
        (lambda r: r["metrics"].append(dict(r["metrics"][0])), r"result\['metrics'\] has two rows"),
        (lambda r: r["timings"].update(s_per_iter="fast"), r"result\['timings'\]\['s_per_iter'\]"),
        (lambda r: r.update(seed=99), r"it has seed 99, the run has seed 0"),
    ],
)
def test_ingest_is_all_or_nothing_on_bad_rows(store: Store, corrupt: Any, message: str) -> None:
    store.add_planned([planned("r1")])
    store.mark_running("r1", worker="w")
    result = make_result()
    corrupt(result)
    with pytest.raises(StoreError, match=message) as info:
        store.ingest_result("r1", result)
    assert "r1" in str(info.value) and "nothing was written" in str(info.value)
    assert row_counts(store) == {"metrics": 0, "periods": 0, "timings": 0}
    assert store.environment("r1") == {}
    assert store.get_run("r1").state is RunState.RUNNING  # type: ignore[union-attr]


def test_ingest_rolls_back_a_database_failure_midway(store: Store) -> None:
    """Metrics and periods are already inserted when the timings insert fails: all of it is rolled back."""
    assert isinstance(store, storage.RDBStore)
    store.add_planned([planned("r1")])
    store.mark_running("r1", worker="w")

    def fail_on_timings(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO TIMINGS"):
            raise RuntimeError("disk full (simulated)")

    event.listen(store._engine, "before_cursor_execute", fail_on_timings)
    try:
        with pytest.raises((StoreError, RuntimeError), match="disk full"):
            store.ingest_result("r1", make_result())
    finally:
        event.remove(store._engine, "before_cursor_execute", fail_on_timings)
    assert row_counts(store) == {"metrics": 0, "periods": 0, "timings": 0}
    assert store.get_run("r1").state is RunState.RUNNING  # type: ignore[union-attr]
    assert store.ingest_result("r1", make_result())  # and the store is usable afterwards


def test_nan_and_inf_values(store: Store) -> None:
    store.add_planned([planned("r1")])
    store.mark_running("r1", worker="w")
    result = make_result()
    result["metrics"][0]["value"] = float("nan")
    result["metrics"][1]["value"] = float("inf")
    store.ingest_result("r1", result)
    values = store.metrics_frame("demo")["value"]
    assert math.isnan(values.iloc[0]) or values.isna().sum() == 1
    assert values.isna().sum() == 1 and (values == math.inf).sum() == 1


# ------------------------------------------------------------------------------------------------ frames


FRAME_DTYPES = {
    "metrics": {"seed": "int64", "epoch": "int64", "value": "float64"},
    "timings": {"seed": "int64", "value": "float64"},
    "periods": {"epoch": "int64", "period": "int64", "lam": "float64", "total": "float64", "images": "int64"},
    "runs": {"seed": "int64", "attempts": "int64"},
}
FRAME_COLUMNS = {
    "metrics": ["run_id", "spec", "group", "arm", "seed", "split", "epoch", "protocol", "metric", "value"],
    "timings": ["run_id", "spec", "group", "arm", "seed", "name", "value"],
    "periods": [
        "run_id",
        "epoch",
        "period",
        "action",
        "lam",
        "total",
        "images",
        "loss",
        "mean",
        "weight",
        "contribution",
    ],
    "runs": [
        "run_id",
        "spec",
        "group",
        "arm",
        "seed",
        "state",
        "attempts",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "worker",
        "workdir",
        "error",
    ],
}


def _frames(store: Store) -> dict[str, pd.DataFrame]:
    return {
        "metrics": store.metrics_frame(),
        "timings": store.timings_frame(),
        "periods": store.periods_frame(),
        "runs": store.runs_frame(),
    }


@pytest.mark.parametrize("populated", [False, True], ids=["empty", "populated"])
def test_frame_columns_and_dtypes(store: Store, populated: bool) -> None:
    if populated:
        run_done(store, "r1")
        store.add_planned([planned("r2", seed=1)])  # planned: NULL times and worker in runs_frame
    for name, df in _frames(store).items():
        assert list(df.columns) == FRAME_COLUMNS[name], name
        assert (len(df) > 0) == populated, name
        for column in df.columns:
            expected = FRAME_DTYPES[name].get(column)
            if expected is not None:
                assert str(df[column].dtype) == expected, (name, column)
            elif column.endswith("_at"):
                assert isinstance(df[column].dtype, pd.DatetimeTZDtype) and str(df[column].dt.tz) == "UTC"
            elif name == "periods" and column in ("mean", "weight", "contribution"):
                assert str(df[column].dtype) == "float64"
            else:
                assert pd.api.types.is_string_dtype(df[column]), (name, column, df[column].dtype)
    if populated:
        runs = store.runs_frame("demo")
        assert runs["state"].tolist() == ["DONE", "PLANNED"] and runs["started_at"].isna().tolist() == [False, True]


def test_metrics_frame_filters(store: Store) -> None:
    run_done(store, "r1")
    run_done(store, "r2", spec="other", seed=1)
    assert set(store.metrics_frame("demo")["run_id"]) == {"r1"}
    assert set(store.metrics_frame(split="test")["split"]) == {"test"}
    assert store.metrics_frame("missing").empty
    summary = store.metrics_frame(split="test").groupby(["spec", "metric"])["value"].mean()
    assert summary.loc[("demo", "rmse")] == pytest.approx(0.2)


# ------------------------------------------------------------------------------------------------ export


def test_export_csv(store: Store, tmp_path: Path) -> None:
    run_done(store, "r1")
    files = store.export("demo", tmp_path / "out", frames=("metrics", "periods", "runs", "timings"))
    assert [f.name for f in files] == ["demo-metrics.csv", "demo-periods.csv", "demo-runs.csv", "demo-timings.csv"]
    back = pd.read_csv(files[0])
    assert list(back.columns) == FRAME_COLUMNS["metrics"]
    assert len(back) == len(store.metrics_frame("demo"))
    assert back["value"].tolist() == pytest.approx(store.metrics_frame("demo")["value"].tolist())
    assert not list((tmp_path / "out").glob(".*tmp"))  # no temporary files left


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="parquet export needs pyarrow")
def test_export_parquet(store: Store, tmp_path: Path) -> None:
    run_done(store, "r1")
    (path,) = store.export("demo", tmp_path, format="parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), store.metrics_frame("demo"), check_dtype=False)


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow is installed")
def test_export_parquet_without_pyarrow_says_how_to_get_it(store: Store, tmp_path: Path) -> None:
    run_done(store, "r1")
    with pytest.raises(StoreError, match="pip install pyarrow"):
        store.export("demo", tmp_path, format="parquet")


def test_export_errors(store: Store, tmp_path: Path) -> None:
    run_done(store, "r1")
    with pytest.raises(StoreError, match=r"valid formats: \['csv', 'parquet'\]"):
        store.export("demo", tmp_path, format="xlsx")
    with pytest.raises(StoreError, match=r"unknown frames \['losses'\]"):
        store.export("demo", tmp_path, frames=("losses",))
    with pytest.raises(StoreError, match=r"no runs are planned for spec 'dem'.*\['demo'\]"):
        store.export("dem", tmp_path)


# ------------------------------------------------------------------------------------------------ concurrency

WRITER = textwrap.dedent(
    """
    import sys
    from suite.store import PlannedRun, open_store
    sys.path.insert(0, {tests!r})
    from test_store import make_result

    n = int(sys.argv[2])
    with open_store(sys.argv[1]) as store:
        store.add_planned(
            [PlannedRun(f"w{{i}}", "conc", "g", f"arm{{i}}", 0, {{"i": i}}) for i in range(n)]
        )
        print("planned", flush=True)
        losses = tuple(f"l_t{{j}}^{{k}}" for k in range(6) for j in range(13))  # 78, like the real space
        for i in range(n):
            store.mark_running(f"w{{i}}", worker="writer", workdir=None)
            store.heartbeat(f"w{{i}}")
            store.ingest_result(f"w{{i}}", make_result(epochs=4, periods=4, losses=losses))
    """
)


def test_readers_while_a_writer_process_writes(tmp_path: Path) -> None:
    """The coordinator writes (a separate process here) while status/notebooks read: no 'database is locked'."""
    url = f"sqlite:///{tmp_path / 'mlrd.db'}"
    n = 40
    open_store(url).close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = WRITER.format(tests=str(ROOT / "tests"))
    writer = subprocess.Popen(
        [sys.executable, "-c", script, url, str(n)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[int] = []
    with open_store(url) as reader:
        deadline = time.monotonic() + 120
        while writer.poll() is None and time.monotonic() < deadline:
            done = reader.counts("conc")[RunState.DONE]
            frame = reader.metrics_frame("conc")
            assert len(frame) % len(make_result(epochs=4)["metrics"]) == 0  # whole runs only, never half a run
            seen.append(done)
        _, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        final = reader.counts("conc")
    assert final[RunState.DONE] == n
    assert seen == sorted(seen), "a reader saw the DONE count go down"
    assert len(seen) >= 5 and any(0 < d < n for d in seen), f"reads did not overlap the writes: {seen[:20]}"


def test_two_writers_do_not_lock_each_other_out(persistent_url: str) -> None:
    """Two writers (e.g. a coordinator and a `--force` reset from a shell) serialize on the write lock."""
    url = persistent_url
    with open_store(url) as s:
        s.add_planned([planned(f"r{i}", seed=i) for i in range(40)])
    errors: list[BaseException] = []

    def work(ids: range) -> None:
        try:
            with open_store(url) as s:
                for i in ids:
                    s.mark_running(f"r{i}", worker=threading.current_thread().name)
                    s.heartbeat(f"r{i}")
                    s.ingest_result(f"r{i}", make_result(seed=i))
                    s.counts()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(range(k, 40, 2),)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with open_store(url) as s:
        assert s.counts()[RunState.DONE] == 40


def test_concurrent_planning_of_overlapping_plans(persistent_url: str) -> None:
    """Two planners adding overlapping runs at once: every run and membership exactly once, no error."""
    open_store(persistent_url).close()
    errors: list[BaseException] = []
    added: list[int] = []

    def plan(spec: str) -> None:
        try:
            with open_store(persistent_url) as s:
                for i in range(0, 30, 3):
                    added.append(s.add_planned([planned(f"r{j}", spec=spec, seed=j) for j in range(i, i + 6)]))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=plan, args=(spec,)) for spec in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with open_store(persistent_url) as s:
        assert sum(added) == 33 == len(s.runs())
        for spec in ("a", "b"):
            assert s.runs_frame(spec)["run_id"].tolist() == [f"r{j}" for j in range(33)]


# ------------------------------------------------------------------------------------------------ claims


def _claim(store: Store, run_id: str, owner: str, *, stale_after_s: float = 60.0, force: bool = False) -> Any:
    return store.claim(
        run_id, owner=owner, token=f"tok-{owner}", worker=f"{owner}:slot", stale_after_s=stale_after_s, force=force
    )


def test_a_claim_is_won_once_and_guards_every_write(store: Store) -> None:
    store.add_planned([planned("r1")])
    won = _claim(store, "r1", "A")
    assert won is not None and won.state == RunState.RUNNING and won.owner == "A" and won.token == "tok-A"
    assert won.attempts == 1
    assert _claim(store, "r1", "B") is None  # held, lease fresh: B gets nothing and writes nothing
    assert store.get_run("r1").owner == "A"  # type: ignore[union-attr]
    for write in (
        lambda: store.heartbeat("r1", token="tok-B"),
        lambda: store.mark_failed("r1", "x", token="tok-B"),
        lambda: store.mark_lost("r1", "x", token="tok-B"),
        lambda: store.ingest_result("r1", make_result(), token="tok-B"),
    ):
        with pytest.raises(ClaimLostError, match=r"claim on it is gone \(held by A"):
            write()
    assert row_counts(store)["metrics"] == 0
    store.heartbeat("r1", token="tok-A", worker="host:77:slot")
    assert store.get_run("r1").worker == "host:77:slot"  # type: ignore[union-attr]
    assert store.ingest_result("r1", make_result(), token="tok-A")
    assert _claim(store, "r1", "B") is None  # DONE is not claimable without force


def test_a_stale_lease_is_taken_over_and_the_old_claim_can_no_longer_write(store: Store) -> None:
    store.add_planned([planned("r1")])
    assert _claim(store, "r1", "A") is not None
    store.heartbeat("r1", at=datetime.now(UTC) - timedelta(seconds=120), token="tok-A")
    assert _claim(store, "r1", "B", stale_after_s=300) is None  # not stale yet under a longer lease
    taken = _claim(store, "r1", "B", stale_after_s=60)
    assert taken is not None and taken.owner == "B" and taken.attempts == 2
    with pytest.raises(ClaimLostError):
        store.ingest_result("r1", make_result(), token="tok-A")
    assert store.mark_lost("r1", "stopped", token="tok-B").state == RunState.LOST
    assert _claim(store, "r1", "A") is not None  # LOST is claimable again


def test_force_claims_a_done_run_and_its_results_are_replaced_only_at_ingest(store: Store) -> None:
    run_done(store, "r1")
    before = row_counts(store)
    assert _claim(store, "r1", "A", force=True) is not None
    assert row_counts(store) == before  # the old results stay while the new attempt runs
    store.mark_lost("r1", "interrupted", token="tok-A")
    assert row_counts(store) == before  # an interrupted --force keeps them
    assert _claim(store, "r1", "B") is not None
    changed = make_result()
    changed["metrics"][0]["value"] = 42.0
    assert store.ingest_result("r1", changed, token="tok-B")
    assert row_counts(store) == before  # replaced, not duplicated
    assert 42.0 in set(store.metrics_frame()["value"])


def test_claims_from_two_processes_have_one_winner(persistent_url: str) -> None:
    """Eight processes race for the same three runs: each run is won exactly once."""
    with open_store(persistent_url) as s:
        s.add_planned([planned(f"r{i}") for i in range(3)])
    script = textwrap.dedent(
        f"""
        import sys
        from suite.store import open_store
        store = open_store({persistent_url!r})
        won = [r for r in ("r0", "r1", "r2")
               if store.claim(r, owner=sys.argv[1], token=sys.argv[1], worker="w", stale_after_s=600) is not None]
        print(",".join(won))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, f"p{i}"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for i in range(8)
    ]
    won = [r for p in procs for r in p.communicate(timeout=120)[0].strip().split(",") if r]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(won) == ["r0", "r1", "r2"]
    with open_store(persistent_url) as s:
        assert all(s.get_run(f"r{i}").attempts == 1 for i in range(3))  # type: ignore[union-attr]


def test_schema_1_is_migrated_to_claims_keeping_the_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with open_store(url) as s:
        run_done(s, "r1")
    con = sqlite3.connect(tmp_path / "old.db")
    con.execute("ALTER TABLE runs DROP COLUMN owner")
    con.execute("ALTER TABLE runs DROP COLUMN token")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with open_store(url) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.get_run("r1").state == RunState.DONE  # type: ignore[union-attr]
        assert row_counts(s)["metrics"] == 9


def test_read_only_open_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    with pytest.raises(StoreError, match=r"no results store at .*x\.db"):
        open_store(f"sqlite:///{missing}", create=False)
    assert not (tmp_path / "nonexistent").exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(StoreError, match="holds no results store"):
        open_store(f"sqlite:///{empty}", create=False)
    with sqlite3.connect(empty) as con:
        assert con.execute("SELECT name FROM sqlite_master").fetchall() == []
