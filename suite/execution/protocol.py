"""The run-folder protocol between a coordinator and its workers, whatever starts them (local processes or SLURM
tasks), and the :class:`Executor` interface both executors have.

The coordinator is the only database writer. Each attempt first claims its run in the store
(:meth:`suite.store.Store.claim`, one compare-and-set recording the coordinator, :func:`new_owner`, and a token for
the attempt, :func:`new_token`) and only then touches the run's folder (:func:`prepare_run_dir` writes ``run.json``).
The worker (:mod:`suite.worker`) writes ``heartbeat.json``, the trainer's checkpoints, and finally an atomic
``result.json`` or ``error.json``. A result is ingested only after :func:`mlrd_core.result.validate_result` accepted
it for this run, config, seed and attempt; a bad one is moved aside (:func:`take_result`) and fails the attempt.
A run whose holder is gone (dead pid here, a stale lease, an ended SLURM job) is settled under its old claim
(:func:`settle_running`).
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from suite.execution.slurm_jobs import is_slurm_worker, settle_slurm_runs
from suite.worker import (
    ERROR_FILE,
    HEARTBEAT_FILE,
    RESULT_FILE,
    RUN_FILE,
    DamagedFileError,
    peek_json,
    read_json,
    write_json_atomic,
)

STALE_AFTER_S = 120.0
#: Errors a worker records that the same config raises again on every attempt: such a run is not retried.
DETERMINISTIC_ERRORS = frozenset(
    {"ConfigError", "DataError", "ModelError", "ExpressionError", "ScheduleError", "WeightingError", "ShapeError"}
)
#: Checkpoint files a ``--force`` rerun removes before its first attempt (so it starts from scratch).
CHECKPOINT_FILES = ("checkpoint.pt", "checkpoint.prev.pt")


class RunLike(Protocol):
    """What an executor needs of a planned run (``suite.plan.PlannedRun`` provides it)."""

    @property
    def run_id(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def config(self) -> Any: ...


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DeferredInterrupt:
    """Turn Ctrl-C into a flag the coordinator checks between database writes.

    A KeyboardInterrupt raised in the middle of a SQLite transaction can leave that connection holding the write
    lock, so the coordinator's own cleanup then fails with "database is locked". Inside this context the first
    SIGINT only sets :attr:`requested`; :meth:`check` raises KeyboardInterrupt at a safe point. A second Ctrl-C
    raises at once, for a user who insists. Outside the main thread (no signal handlers there) it does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> DeferredInterrupt:
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


@dataclass
class ExecutionSummary:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    #: ``should_stop`` asked to stop: active workers were stopped (their runs are LOST), queued runs not started.
    stopped: bool = False
    #: Runs another coordinator held when this one reached them, and that it finished (this one waited for them).
    elsewhere: list[str] = field(default_factory=list)


Event = Callable[[str, Mapping[str, Any]], None]


@dataclass
class Steer:
    """What a coordinator that feeds an executor as it goes (``execute(..., steer=...)``) tells it at each poll.

    The λ search runs several trials at once this way: each finished or pruned trial makes room for the next one's
    runs, on the slots the others leave free, in one ``execute`` call (one set of slots, spares, claims and Ctrl-C
    handling). ``steer(summary)`` is called before the first runs start and once per poll after the finished workers
    were settled, so ``summary`` says which runs are done, failed past their retries, or were finished by another
    coordinator.
    """

    #: More runs to train (none ``fresh``). A run already queued, running or waited for is not added twice; one that
    #: failed earlier in this ``execute`` starts again with a new attempt budget.
    add: Sequence[Any] = ()
    #: Runs to stop: a running worker is stopped as by ``should_stop`` (the run becomes LOST, resumable from its
    #: checkpoints), a queued or waited-for run is dropped.
    stop: Collection[str] = ()
    #: Nothing more will be added: ``execute`` returns once the runs it has are settled. Until then it keeps polling
    #: (and calling ``steer``) even with nothing to run.
    closed: bool = False


#: The ``steer`` callback of ``execute``.
Steering = Callable[[ExecutionSummary], Steer]


def apply_steer(
    order: Steer,
    queue: list[Any],
    running: dict[str, Any],
    waiting: dict[str, Any],
    attempts: dict[str, int],
    summary: ExecutionSummary,
) -> list[Any]:
    """Apply ``order`` to an executor's books (both executors use this): queue the new runs it does not have yet,
    drop the stopped ones from the queue, the waiting list and ``running`` (the executor's active workers or tasks).
    Returns the entries taken out of ``running``, for the executor to stop its own way."""
    stop = set(order.stop)
    queue[:] = [run for run in queue if run.run_id not in stop]
    for run_id in stop & set(waiting):
        del waiting[run_id]
    have = {run.run_id for run in queue} | set(running) | set(waiting)
    for run in order.add:
        if run.run_id in have or run.run_id in stop:
            continue
        have.add(run.run_id)
        summary.failed.pop(run.run_id, None)  # failed earlier in this batch: a new attempt budget
        attempts.pop(run.run_id, None)
        queue.append(run)
    return [running.pop(run_id) for run_id in list(running) if run_id in stop]


def check_steering(steer: Steering | None, should_stop: Callable[[], bool] | None) -> None:
    """``execute`` takes one of ``steer`` and ``should_stop``: a batch stopped as a whole would leave the steering
    coordinator waiting for runs that no longer come."""
    if steer is not None and should_stop is not None:
        raise ValueError("execute: give steer or should_stop, not both (a steer stops runs itself)")


#: Why the runs a ``steer`` or ``should_stop`` stops are LOST (recorded in the store, shown by ``status``).
STOPPED_BY_COORDINATOR = "stopped early by the coordinator (e.g. a pruned search trial)"


def new_owner() -> str:
    """A coordinator's name in the store's claims: ``host:pid:nonce`` (the nonce tells apart two coordinators of
    one process, e.g. a search beside nothing else, and a pid reused after a reboot)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def new_token() -> str:
    """The token of one attempt's claim; the worker writes it into ``result.json``."""
    return uuid.uuid4().hex


def prepare_run_dir(
    run_dir: Path, run: Any, *, device: str, threads: int | None, attempt: str | None = None, fresh: bool = False
) -> None:
    """Write the worker's ``run.json`` (with ``attempt``, the claim's token) and clear what a previous attempt left
    (result, heartbeat, error); the checkpoints stay, so the next worker resumes from them, unless ``fresh`` (a
    ``--force`` rerun, which starts from scratch). Call it only while holding the run's claim."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (RESULT_FILE, HEARTBEAT_FILE, ERROR_FILE, *(CHECKPOINT_FILES if fresh else ())):
        (run_dir / name).unlink(missing_ok=True)
    write_json_atomic(
        run_dir / RUN_FILE,
        {
            "run_id": run.run_id,
            "attempt": attempt,
            "seed": run.seed,
            "config": run.config.to_dict(),
            "device": device,
            "threads": threads,
        },
    )


def failure_message(run_dir: Path, otherwise: str) -> str:
    """The worker's recorded exception and trace (``error.json``), or ``otherwise`` when it left none (or a damaged
    one)."""
    error = peek_json(run_dir / ERROR_FILE)
    if error is None:
        return otherwise
    return f"{error.get('type', 'Error')}: {error.get('message', '')}\n{error.get('traceback', '')}"


def deterministic_failure(run_dir: Path) -> str | None:
    """The exception type the worker recorded when it is one that the same config raises on every attempt
    (:data:`DETERMINISTIC_ERRORS`: a configuration or data error), else None."""
    kind = (peek_json(run_dir / ERROR_FILE) or {}).get("type")
    return kind if kind in DETERMINISTIC_ERRORS else None


def reject_result(path: Path) -> Path:
    """Move a result file that failed its checks aside as ``result.json.rejected-<UTC time>``; returns where."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.rejected-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.rejected-{stamp}-{n}")
    os.replace(path, aside)
    return aside


def take_result(
    run_dir: Path, *, run_id: str, config: Mapping[str, Any], seed: int, attempt: str | None
) -> tuple[dict[str, Any] | None, str | None]:
    """The run folder's ``result.json`` once it passed :func:`mlrd_core.result.validate_result` for this run,
    config, seed and attempt: ``(payload, None)``. ``(None, None)``: there is none. ``(None, message)``: it was
    empty, truncated, foreign or stale; it has been moved aside (:func:`reject_result`) and ``message`` says why
    and where it is."""
    from mlrd_core.result import ResultError, validate_result

    path = run_dir / RESULT_FILE
    try:
        payload = read_json(path)
        if payload is None:
            return None, None
        return validate_result(payload, run_id=run_id, config=config, seed=seed, attempt=attempt), None
    except (DamagedFileError, ResultError) as exc:
        why = str(exc).replace(f"{path} ", "").replace(str(path), "it")
        try:
            aside = reject_result(path)
        except FileNotFoundError:
            return None, None
        return None, f"rejected {path} ({why}); moved it to {aside}"


def _parse_pid(name: str | None) -> tuple[str, int | None]:
    """``(host, pid)`` of a ``host:pid:...`` owner or worker record (pid None when there is none)."""
    host, _, rest = (name or "").partition(":")
    first = rest.split(":")[0]
    return host, int(first) if first.isdigit() else None


def abandoned(info: Any, run_dir: Path, *, stale_after_s: float) -> str | None:
    """Why a RUNNING run is no longer driven by anyone, or None while its holder may still be at work: its claim's
    coordinator is a dead process on this host, or its lease (the store's heartbeat) is older than
    ``stale_after_s``. Runs marked RUNNING without a claim (``owner`` None) are judged by their worker's pid and
    heartbeat file, as before claims existed. A damaged heartbeat file reads as no heartbeat."""
    here = socket.gethostname()
    if info.owner:
        host, pid = _parse_pid(info.owner)
        if host == here and pid is not None and not pid_alive(pid):
            return f"its coordinator (pid {pid}) is gone"
    else:
        host, pid = _parse_pid(info.worker)
        if host == here and pid is not None and not pid_alive(pid):
            return "its worker process is gone"
    beat = peek_json(run_dir / HEARTBEAT_FILE) or {}
    last = max(
        float(beat.get("time", 0.0)) if isinstance(beat.get("time"), int | float) else 0.0,
        info.heartbeat_at.timestamp() if info.heartbeat_at is not None else 0.0,
    )
    if time.time() - last > stale_after_s:
        return f"no heartbeat for {stale_after_s:.0f}s"
    return None


def settle_abandoned(store: Any, info: Any, run_dir: Path, why: str) -> bool:
    """Settle one abandoned RUNNING run (:func:`abandoned` said ``why``) under its old claim: ingest its result when
    a valid one is on disk (True), else mark it LOST (resumed from its checkpoint by whoever claims it next). Both
    writes name the old claim's token, so when two coordinators settle the same run only one of them writes."""
    from suite.store import ClaimLostError

    payload, problem = take_result(run_dir, run_id=info.run_id, config=info.config, seed=info.seed, attempt=info.token)
    try:
        if payload is not None:
            return bool(store.ingest_result(info.run_id, payload, token=info.token))
        store.mark_lost(info.run_id, f"{why}{'; ' + problem if problem else ''}", token=info.token)
    except ClaimLostError:
        pass  # another coordinator settled it first
    return False


def settle_running(
    store: Any, running: Sequence[Any], run_dir: Callable[[str], Path], *, stale_after_s: float
) -> tuple[list[str], dict[str, str]]:
    """Settle runs the store says are RUNNING although no live coordinator drives them.

    Runs of local workers (:func:`abandoned`): a valid finished result on disk is ingested, anything else makes the
    run LOST, to be resumed from its checkpoint; a run whose holder is alive is left to it. Runs of SLURM jobs are
    settled by their job's state (:func:`suite.execution.slurm_jobs.settle_slurm_runs`) once their coordinator is
    gone. Returns the ids ingested and, for runs whose SLURM job is still queued or running, ``{run id: job id}``.
    """
    ingested: list[str] = []
    slurm = []
    for info in running:
        folder = run_dir(info.run_id)
        if is_slurm_worker(info.worker):
            host, pid = _parse_pid(info.owner)
            if host == socket.gethostname() and pid is not None and pid_alive(pid):
                continue  # its coordinator still watches the job
            payload, _ = take_result(folder, run_id=info.run_id, config=info.config, seed=info.seed, attempt=info.token)
            if payload is not None and store.ingest_result(info.run_id, payload):
                ingested.append(info.run_id)
            elif payload is None:
                slurm.append(info)
            continue
        why = abandoned(info, folder, stale_after_s=stale_after_s)
        if why is not None and settle_abandoned(store, info, folder, why):
            ingested.append(info.run_id)
    alive = settle_slurm_runs(store, slurm)
    return ingested, alive


class WaitsForOthers:
    """What both executors share about runs another coordinator holds (a mixin: it uses the executor's ``store``,
    ``run_dir``, ``stale_after_s``, ``on_event`` and the ``_fresh`` runs of the current ``execute``)."""

    store: Any
    stale_after_s: float
    on_event: Event
    _fresh: set[str]

    def run_dir(self, run_id: str) -> Path:
        raise NotImplementedError

    def _check_waiting(self, waiting: dict[str, Any], queue: list[Any], summary: ExecutionSummary) -> None:
        """Runs held by another coordinator (both executors keep them in ``waiting``): DONE there counts as done
        here (``summary.elsewhere``, unless the run is fresh); free again (FAILED, LOST, or its holder gone: a dead
        pid on this host or a lease older than ``stale_after_s``, settled here under its claim) goes back to
        ``queue``, to be claimed. A holder with a fresh lease is left alone, wherever it runs (one on another host
        may not have its SLURM job id yet)."""
        from suite.store import RunState

        for run_id, run in list(waiting.items()):
            info = self.store.get_run(run_id)
            state = RunState(info.state)
            folder = self.run_dir(run_id)
            if state is RunState.RUNNING and abandoned(info, folder, stale_after_s=self.stale_after_s) is not None:
                # its holder is gone (a dead pid here, or a lease gone stale): settle it as a new coordinator would
                settle_running(self.store, [info], self.run_dir, stale_after_s=self.stale_after_s)
                state = RunState(self.store.get_run(run_id).state)
            if state is RunState.RUNNING:
                continue
            del waiting[run_id]
            if state is RunState.DONE and run_id not in self._fresh:
                summary.elsewhere.append(run_id)
                self.on_event("done_elsewhere", {"run": run})
            else:
                queue.append(run)


class Executor(Protocol):
    """What ``run`` and ``search`` need of an executor (:class:`suite.execution.local.LocalExecutor`,
    :class:`suite.execution.slurm.SlurmExecutor`)."""

    #: RUNNING runs this executor drives although it did not start them (``{run id: job id}``).
    adopted: Mapping[str, str]

    def run_dir(self, run_id: str) -> Path:
        """The run's folder (run.json, heartbeat, checkpoints, result)."""
        ...

    def recover(self, running: Sequence[Any]) -> list[str]:
        """Settle RUNNING runs left by an earlier coordinator; returns the ids ingested."""
        ...

    def execute(
        self,
        runs: Sequence[Any],
        on_event: Event | None = None,
        *,
        should_stop: Callable[[], bool] | None = None,
        fresh: Collection[str] = (),
        steer: Steering | None = None,
    ) -> ExecutionSummary:
        """Run ``runs`` (claiming each first); ``fresh`` ones start without their checkpoints. With ``steer``,
        more runs come (and some are stopped) as it says (:class:`Steer`)."""
        ...
