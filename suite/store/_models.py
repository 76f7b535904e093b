"""The private SQLAlchemy layer: tables of the results database (schema version :data:`SCHEMA_VERSION`).

Only :mod:`suite.store.storage` imports this module. Types are portable (``String``, ``Text``, ``Integer``,
``Double``, a UTC ``DateTime``), names avoid reserved words (``group_name``, not ``group``), every child table
cascades on the deletion of its run, and constraint names follow one naming convention so that a later migration
can refer to them on every backend.

Changing a table here means bumping :data:`SCHEMA_VERSION` and registering a migration step in
``suite.store.engine._MIGRATIONS`` (see docs/store.md, "Version policy").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    CheckConstraint,
    Dialect,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator

from suite.store.base import RunState

#: The schema this code writes and understands. Bump it (and add a migration) whenever a table changes.
SCHEMA_VERSION = 2

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as naive UTC (ISO text, which
    sorts and compares correctly) and come back with ``tzinfo=UTC`` attached. Naive datetimes are rejected on the
    way in, so local time can never be mistaken for UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps UTC, pass an aware datetime")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), float: Double(), str: String()}


def _run_fk() -> ForeignKey:
    """A fresh foreign key to ``runs`` (a ForeignKey object belongs to exactly one column)."""
    return ForeignKey("runs.run_id", ondelete="CASCADE")


_STATES = ", ".join(f"'{s.value}'" for s in RunState)


class Meta(Base):
    """Key/value facts about the database itself; ``schema_version`` is the one the store checks on open."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Run(Base):
    """One run: a resolved config and a seed, identified by their content hash, and its life so far."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(f"state IN ({_STATES})", name="state"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_runs_state_heartbeat_at", "state", "heartbeat_at"),
    )

    run_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    spec: Mapped[str]
    group_name: Mapped[str]
    arm: Mapped[str]
    seed: Mapped[int]
    config_json: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    worker: Mapped[str | None]
    workdir: Mapped[str | None]
    error: Mapped[str | None] = mapped_column(Text)
    resumed_from_json: Mapped[str | None] = mapped_column(Text)
    #: The coordinator that holds the run's claim (``host:pid:nonce``) and the token of its current attempt (schema 2).
    owner: Mapped[str | None]
    token: Mapped[str | None] = mapped_column(String(64))


class SpecRun(Base):
    """Which (spec, group, arm) cells use a run. Identical configs share a run id, so one run may fill cells of
    several specs or groups; ``ordinal`` keeps the plan order within a spec."""

    __tablename__ = "spec_runs"
    __table_args__ = (Index("ix_spec_runs_run_id", "run_id"),)

    spec: Mapped[str] = mapped_column(primary_key=True)
    group_name: Mapped[str] = mapped_column(primary_key=True)
    arm: Mapped[str] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(String(128), _run_fk(), primary_key=True)
    ordinal: Mapped[int] = mapped_column(Integer)


class Metric(Base):
    """One metric value (long form). NaN is stored as NULL (SQLite cannot store NaN) and read back as NaN."""

    __tablename__ = "metrics"

    run_id: Mapped[str] = mapped_column(String(128), _run_fk(), primary_key=True)
    split: Mapped[str] = mapped_column(primary_key=True)
    epoch: Mapped[int] = mapped_column(primary_key=True)
    protocol: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[float | None]


class Period(Base):
    """One weighting period: what the method did, λ and the weighted total L_all (eq. 10)."""

    __tablename__ = "periods"

    run_id: Mapped[str] = mapped_column(String(128), _run_fk(), primary_key=True)
    epoch: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str]
    lam: Mapped[float | None]
    total: Mapped[float | None]
    images: Mapped[int]


class PeriodLoss(Base):
    """One loss within one period: its mean per-image value, its weight and its weighted contribution."""

    __tablename__ = "period_losses"
    __table_args__ = (
        ForeignKeyConstraint(
            ["run_id", "epoch", "period"],
            ["periods.run_id", "periods.epoch", "periods.period"],
            ondelete="CASCADE",
        ),
    )

    run_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    epoch: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[int] = mapped_column(primary_key=True)
    loss: Mapped[str] = mapped_column(primary_key=True)
    position: Mapped[int]  # index of the loss in the period record (the weighting's name order)
    mean: Mapped[float | None]
    weight: Mapped[float | None]
    contribution: Mapped[float | None]


class Timing(Base):
    """One timing figure of a run (``s_per_iter``, ``peak_memory_mb``, ...)."""

    __tablename__ = "timings"

    run_id: Mapped[str] = mapped_column(String(128), _run_fk(), primary_key=True)
    name: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[float | None]


class Environment(Base):
    """One fact about the environment a run ran in (python, torch, device, ..., code_version)."""

    __tablename__ = "environment"

    run_id: Mapped[str] = mapped_column(String(128), _run_fk(), primary_key=True)
    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str] = mapped_column(Text)


#: Child tables of a run, children before parents (the order deletes must follow without cascades).
RESULT_TABLES = (PeriodLoss, Period, Metric, Timing, Environment)
