"""The store's interface: run states and their legal transitions, the records it hands out, and its errors.

Everything here is independent of SQL. :class:`Store` is the contract the planner, the executors, the
reports and notebooks program against (as optuna's ``BaseStorage``); :class:`suite.store.storage.RDBStore` is
the SQLAlchemy implementation. Records leave a store as frozen dataclasses, never as ORM rows, so nothing outside
``suite.store`` can touch a database session by accident.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlrd_core.errors import MLRDError

if TYPE_CHECKING:
    import pandas as pd

# --------------------------------------------------------------------------------------------------- errors


class StoreError(MLRDError, RuntimeError):
    """The results database refused an operation or could not be used."""


class SchemaVersionError(StoreError):
    """The database was written by a newer suite, or by an older one this suite cannot migrate."""


class UnknownRunError(StoreError):
    """No run with the given id is in the store."""


class IllegalTransitionError(StoreError):
    """A state change that the run state machine does not allow (the message names run id, from and to)."""


class ClaimLostError(StoreError):
    """A write on behalf of a claim (``token=``) found the run no longer held by that claim: another coordinator
    took it over (its lease went stale) or it was settled meanwhile. Nothing was written."""


# --------------------------------------------------------------------------------------------------- states


class RunState(enum.StrEnum):
    """Where a run is in its life. The values are what the ``runs.state`` column holds."""

    PLANNED = "PLANNED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    LOST = "LOST"


#: The state machine. ``reset`` (``--force``) is the one way out of DONE and is not listed here.
TRANSITIONS: Mapping[RunState, frozenset[RunState]] = {
    RunState.PLANNED: frozenset({RunState.RUNNING}),
    RunState.RUNNING: frozenset({RunState.DONE, RunState.FAILED, RunState.LOST}),
    RunState.FAILED: frozenset({RunState.RUNNING}),
    RunState.LOST: frozenset({RunState.RUNNING}),
    RunState.DONE: frozenset(),
}

#: States ``reset`` accepts: a RUNNING run has a live worker, so it must be marked failed or lost first.
RESETTABLE: frozenset[RunState] = frozenset({RunState.PLANNED, RunState.DONE, RunState.FAILED, RunState.LOST})


def check_transition(run_id: str, current: RunState, target: RunState) -> None:
    """Raise :class:`IllegalTransitionError` unless ``current -> target`` is an edge of :data:`TRANSITIONS`."""
    if target in TRANSITIONS[current]:
        return
    allowed = ", ".join(sorted(TRANSITIONS[current])) or "none"
    hint = "; DONE is final: reset the run (--force) to run it again" if current is RunState.DONE else ""
    raise IllegalTransitionError(
        f"run {run_id}: illegal state transition {current} -> {target} (allowed from {current}: {allowed}){hint}"
    )


# --------------------------------------------------------------------------------------------------- records


class PlannedRunLike(Protocol):
    """What :meth:`Store.add_planned` reads from each planned run (the planner's row type fits it)."""

    @property
    def run_id(self) -> str: ...
    @property
    def spec(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def arm(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def config(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class PlannedRun:
    """One run of a plan as the store needs it: identity, where a spec uses it, and its resolved config."""

    run_id: str
    spec: str
    group: str
    arm: str
    seed: int
    config: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True)
class Membership:
    """One use of a run by a spec: the (spec, group, arm) cell it fills."""

    spec: str
    group: str
    arm: str


@dataclass(frozen=True)
class RunInfo:
    """A run as stored. ``spec``/``group``/``arm`` are those of the plan that created the run; every spec cell
    that uses it (identical configs share a run id) is in ``memberships``. Timestamps are timezone-aware UTC."""

    run_id: str
    spec: str
    group: str
    arm: str
    seed: int
    config: dict[str, Any] = field(hash=False)
    state: RunState
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    worker: str | None
    workdir: str | None
    error: str | None
    resumed_from: dict[str, Any] | None = field(hash=False)
    memberships: tuple[Membership, ...]
    #: The coordinator holding the run's claim (``host:pid:nonce``; None for runs marked RUNNING without a claim).
    owner: str | None = None
    #: The token of the claim's attempt; the worker writes it into ``result.json``.
    token: str | None = None


EXPORT_FRAMES: tuple[str, ...] = ("metrics", "timings", "periods", "runs")
EXPORT_FORMATS: tuple[str, ...] = ("csv", "parquet")


# --------------------------------------------------------------------------------------------------- interface


class Store(abc.ABC):
    """The results store: runs and their state machine, ingest of finished results, and long-form frames."""

    # runs -------------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def add_planned(self, runs: Iterable[PlannedRunLike | Mapping[str, Any]]) -> int:
        """Record planned runs; idempotent. A run id already present is left untouched (only its missing spec
        memberships are added). Returns the number of runs that were new."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunInfo | None:
        """The run, or ``None`` when the id is unknown."""

    @abc.abstractmethod
    def runs(self, spec: str | None = None, states: Iterable[RunState | str] | None = None) -> list[RunInfo]:
        """Runs used by ``spec`` (all runs when ``None``), optionally only those in ``states``; plan order."""

    @abc.abstractmethod
    def specs(self) -> list[str]:
        """Names of the specs that have planned runs, sorted."""

    @abc.abstractmethod
    def counts(self, spec: str | None = None) -> dict[RunState, int]:
        """Number of runs in each state (every state is a key, zeros included)."""

    @abc.abstractmethod
    def environment(self, run_id: str) -> dict[str, str]:
        """The recorded environment of a finished run (strings as written, other values as JSON)."""

    # state machine ----------------------------------------------------------------------------------------

    @abc.abstractmethod
    def mark_running(self, run_id: str, worker: str, workdir: str | Path | None = None) -> RunInfo:
        """PLANNED/FAILED/LOST -> RUNNING; counts an attempt and starts the heartbeat clock."""

    @abc.abstractmethod
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
        """Take the run for one attempt, atomically (one compare-and-set): PLANNED/FAILED/LOST -> RUNNING, or a
        RUNNING run whose lease (``heartbeat_at``) is older than ``stale_after_s`` (taken over), or with ``force``
        also DONE -> RUNNING (its results stay until the new attempt's are ingested). Records ``owner`` and
        ``token``, counts an attempt. Returns None, writing nothing, when another claim holds the run."""

    @abc.abstractmethod
    def heartbeat(
        self, run_id: str, at: datetime | None = None, *, token: str | None = None, worker: str | None = None
    ) -> None:
        """Record that a RUNNING run is alive (at ``at``, default now): this renews its claim's lease. With
        ``token``: only for that claim (:class:`ClaimLostError` otherwise); ``worker`` updates the worker record."""

    @abc.abstractmethod
    def mark_failed(self, run_id: str, error: str, *, token: str | None = None) -> RunInfo:
        """RUNNING -> FAILED, keeping ``error`` (the failure trace). With ``token``: only for that claim."""

    @abc.abstractmethod
    def mark_lost(self, run_id: str, reason: str, *, token: str | None = None) -> RunInfo:
        """RUNNING -> LOST (the worker vanished), keeping ``reason``. With ``token``: only for that claim."""

    @abc.abstractmethod
    def stale_runs(self, older_than_s: float, *, now: datetime | None = None) -> list[RunInfo]:
        """RUNNING runs whose last heartbeat is more than ``older_than_s`` seconds before ``now``."""

    @abc.abstractmethod
    def ingest_result(self, run_id: str, result: Mapping[str, Any], *, token: str | None = None) -> bool:
        """Write a finished run's records and mark it DONE, in one transaction. Returns ``False`` (and writes
        nothing) when the run is already DONE. With ``token``: only for that claim (:class:`ClaimLostError`
        otherwise), and records an earlier attempt left (a ``--force`` rerun) are replaced in the same transaction."""

    @abc.abstractmethod
    def reset(self, run_id: str) -> RunInfo:
        """Back to PLANNED (``--force``), deleting the run's results; refused for a RUNNING run."""

    # frames -----------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def metrics_frame(self, spec: str | None = None, split: str | None = None) -> pd.DataFrame:
        """Columns run_id, spec, group, arm, seed, split, epoch, protocol, metric, value."""

    @abc.abstractmethod
    def timings_frame(self, spec: str | None = None) -> pd.DataFrame:
        """Columns run_id, spec, group, arm, seed, name, value."""

    @abc.abstractmethod
    def periods_frame(self, run_id: str | None = None, *, spec: str | None = None) -> pd.DataFrame:
        """Columns run_id, epoch, period, action, lam, total, images, loss, mean, weight, contribution."""

    @abc.abstractmethod
    def runs_frame(self, spec: str | None = None) -> pd.DataFrame:
        """One row per (spec, group, arm, run): identity, state and bookkeeping columns."""

    @abc.abstractmethod
    def export(
        self, spec: str, path: str | Path, format: str = "csv", *, frames: Sequence[str] = ("metrics",)
    ) -> list[Path]:
        """Write ``frames`` of ``spec`` as ``<path>/<spec>-<frame>.<format>``; returns the files written."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The schema version recorded in the database."""

    # lifecycle --------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
