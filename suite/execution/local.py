"""Executors: run planned runs as worker processes and feed their results into the store.

The coordinator (this module, in the ``python -m suite run`` process) is the only database writer. Workers
(:mod:`suite.worker`) get a run folder, write heartbeats and an atomic ``result.json`` there, and exit. The
coordinator ingests each result in one transaction, so a run is DONE exactly once with all its rows, or not DONE.

One writer per run: several coordinators may share a store (two terminals, a run beside a search). Each attempt
first claims its run in the store (:meth:`suite.store.Store.claim`, one compare-and-set recording this
coordinator, :func:`new_owner`, and a token for the attempt) and only then touches the run's folder; every later
write names the token, and the worker's heartbeats renew the claim's lease. A run another live coordinator holds is
waited for, never started; a holder that is gone (dead pid here, or a lease older than ``stale_after_s``) is
settled under its old claim (:func:`settle_running`). A result is ingested only after
:func:`mlrd_core.result.validate_result` accepted it for this run, config, seed and attempt; a bad one is moved
aside (:func:`take_result`) and fails the attempt.

Local execution uses one subprocess per run: one per visible GPU (pinned through ``CUDA_VISIBLE_DEVICES``) or
``--jobs N`` CPU slots. Workers are tied to the coordinator's life (Linux ``PR_SET_PDEATHSIG``, set by the worker
itself first thing: :func:`suite.worker.tie_to_coordinator`), so killing the coordinator, even with SIGKILL, leaves no
orphan training; the next ``run`` finds their runs RUNNING with a dead pid, marks them LOST and resumes them from their
last period checkpoint. Each worker runs in its own process group, so a terminal's Ctrl-C reaches the coordinator
only, which then stops its workers in order.

Warm spares. A cold worker spends most of its start-up importing torch, timm and :mod:`mlrd_core` (about 2 s of
2.3 s on a 2-core machine). So while a slot trains, the executor can keep ONE pre-started worker for it
(``python -m suite.worker --spare LOG``, started with the slot's environment less its GPU pin and the same
``PR_SET_PDEATHSIG`` tie) that imports and then blocks on its stdin. The next slot to free takes that process: the
executor writes the run folder and that slot's pin as one JSON line on its stdin (``{"run_dir": ..., "env":
{"CUDA_VISIBLE_DEVICES": "3"}}``), the spare sets the pin, and from there on the process is that run's worker,
exactly as a cold one (its pid in the store, heartbeats, result file, SIGTERM on Ctrl-C, LOST when it disappears).
Still one process per run: a spare serves one run and exits, so no state leaks from run to run. Rules:

- which slots get spares (``warm``): by default (None) GPU slots and CPU slots of two or more threads. A spare's
  imports only pay off on CPU that would otherwise idle: a cold worker imports on one core while the rest of its
  slot's cores wait, whereas a spare imports beside the running work and takes that core from it. With one thread
  per slot (``--jobs`` = cores) nothing idles, and ``python -m suite bench overhead --jobs 2`` on 2 cores measured
  no gain (docs/performance.md). ``warm=True`` / ``False`` force spares on / off for every slot;
- a spare is started right after the slot's run starts, so its imports overlap with that run's work; there are
  never more spares than queued runs, and any spare serves any slot with the same device, threads and environment
  apart from the pin (the slot it was started for first);
- the GPU pin (``CUDA_VISIBLE_DEVICES``, :data:`suite.worker.PIN_ENV`) travels with the run, not with the spare.
  Near the end of a batch on an 8-GPU box there are fewer spares than busy GPUs, and a spare bound to one GPU would
  idle while another GPU, freed first, started its run cold. A spare initialises no CUDA before its run, so it needs
  no GPU until then: it sets the pin in its environment when it gets the run, and refuses the run (it exits, and the
  run starts cold as below) if CUDA is already initialised in it, since CUDA reads the pin only once
  (:mod:`suite.worker`). The run's ``result.json`` names the pin (``worker.pinned``). The pin of CPU slots is empty
  (no GPU visible) and the same for all of them, so CPU spares keep it from the start and start exactly as before;
- the first run of each slot starts cold (there is nothing to overlap it with), and so does every run once a spare
  has failed: a spare that ended before its run (an import error, a stray kill, a refused pin) is reported
  (``spare_failed`` event, a note in the run's ``worker.log``), spares are switched off for the rest of
  :meth:`LocalExecutor.execute`, and the run starts cold at once, without using one of its attempts in this batch
  (the store's ``attempts`` column counts the extra start). A cold worker's failure is a run failure as usual;
- spares are killed when :meth:`LocalExecutor.execute` returns or raises (and die with the coordinator otherwise),
  so none outlives the batch that started it. They are started from the coordinator's main thread, as the workers
  are: ``PR_SET_PDEATHSIG`` fires when the thread that forked the child ends, not only the process.

:class:`suite.execution.slurm.SlurmExecutor` has the same interface (:class:`suite.execution.protocol.Executor`)
and shares the run-folder protocol (:mod:`suite.execution.protocol`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from suite.execution.protocol import (
    STALE_AFTER_S,
    STOPPED_BY_COORDINATOR,
    DeferredInterrupt,
    Event,
    ExecutionSummary,
    Steering,
    WaitsForOthers,
    apply_steer,
    check_steering,
    deterministic_failure,
    failure_message,
    new_owner,
    new_token,
    prepare_run_dir,
    settle_running,
    take_result,
)
from suite.execution.workers import SPARES_DIR, Slot, SparePool, _Spare, _tail, local_slots, spares_pay_off
from suite.worker import HEARTBEAT_FILE, LOG_FILE, RESULT_FILE, peek_json

__all__ = ["SPARES_DIR", "LocalExecutor", "Slot", "local_slots", "spares_pay_off"]

#: Heartbeats are read, and ``should_stop`` asked, once per poll.
POLL_S = 0.5
#: Within a poll, how often the coordinator checks whether a worker exited (to ingest and refill its slot at once).
EXIT_CHECK_S = 0.05


@dataclass
class _Active:
    run: Any
    slot: Slot
    proc: subprocess.Popen[bytes]
    run_dir: Path
    log: IO[bytes]
    started: float
    last_beat: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    #: The start-up log of the spare that became this worker (None: started cold).
    spare_log: Path | None = None
    #: The token of this attempt's claim on the run (every store write for it names the claim).
    token: str | None = None


class LocalExecutor(SparePool, WaitsForOthers):
    """Runs workers as local subprocesses, one per slot, and is the single writer of the store.

    Busy slots get a pre-started spare worker for their next run (module docstring): with ``warm=None`` (default)
    the slots where that pays off (:func:`spares_pay_off`), with ``True`` every slot; ``warm=False`` starts every
    worker cold (``python -m suite.worker RUN_DIR``).
    """

    def __init__(
        self,
        store: Any,
        *,
        runs_dir: Path,
        slots: Sequence[Slot],
        max_attempts: int = 3,
        stale_after_s: float = STALE_AFTER_S,
        on_event: Event | None = None,
        warm: bool | None = None,
    ) -> None:
        self.store = store
        self.runs_dir = runs_dir
        self.slots = list(slots)
        self.max_attempts = max_attempts
        self.stale_after_s = stale_after_s
        self.on_event = on_event or (lambda kind, info: None)
        #: Pre-started spare workers: None where they pay off (:func:`spares_pay_off`), True / False: every slot / none.
        self.warm = warm
        self._spares: list[_Spare] = []
        self._spares_on = warm is not False
        self._spare_count = 0
        #: RUNNING runs this executor drives although it did not start them: none (local workers die with their
        #: coordinator, so a new coordinator never re-attaches to them).
        self.adopted: dict[str, str] = {}
        #: This coordinator's name in the store's claims (:func:`new_owner`).
        self.owner = new_owner()
        self._fresh: set[str] = set()

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id[:16]

    # ------------------------------------------------------------------------------------------ execution
    def execute(
        self,
        runs: Sequence[Any],
        on_event: Event | None = None,
        *,
        should_stop: Callable[[], bool] | None = None,
        fresh: Collection[str] = (),
        steer: Steering | None = None,
    ) -> ExecutionSummary:
        """Run ``runs`` to completion (or failure past the retry budget). Ctrl-C stops the workers; their runs
        become LOST and resume from their checkpoints the next time.

        Every attempt first claims its run in the store (:meth:`Store.claim`) and only then touches the run folder.
        A run another coordinator holds is not started: this one waits for it (``waiting`` event) and counts it in
        ``summary.elsewhere`` once that one finished it, or claims it when that coordinator stops, dies or lets its
        lease go stale. Runs in ``fresh`` (``--force``) are claimed even when DONE, start without their checkpoints,
        and keep their old results until the new ones are ingested.

        ``should_stop`` is called once per poll (every :data:`POLL_S` seconds, sooner when a worker exits) while work
        remains; when it returns True the active workers are stopped the same way (runs LOST, resumable), queued runs
        are not started, and the summary says ``stopped`` (the λ search prunes trials with it). Spare workers
        (:attr:`warm`) are killed before this returns or raises.

        ``steer`` feeds more runs as it goes and stops some of them (:class:`~suite.execution.protocol.Steer`; the
        search's parallel trials): it is called before anything starts and after every poll, and ``execute`` returns
        once it said ``closed`` and the runs it gave are settled.
        """
        check_steering(steer, should_stop)
        if on_event is not None:
            self.on_event = on_event
        queue = list(runs)
        self._fresh = set(fresh)
        attempts: dict[str, int] = {}
        active: dict[str, _Active] = {}
        waiting: dict[str, Any] = {}
        summary = ExecutionSummary()
        interrupt = DeferredInterrupt()
        self._spares_on = self.warm is not False
        try:
            with interrupt:
                open_ = steer is not None
                while queue or active or waiting or open_:
                    interrupt.check()
                    if open_ and steer is not None:
                        order = steer(summary)
                        open_ = not order.closed
                        stop = apply_steer(order, queue, active, waiting, attempts, summary)
                        self._stop_all(stop, STOPPED_BY_COORDINATOR)
                    free = [s for s in self.slots if all(a.slot.name != s.name for a in active.values())]
                    while queue and free:
                        run = queue.pop(0)
                        started = self._start(run, free[0])
                        if started is None:  # another coordinator holds it
                            waiting[run.run_id] = run
                            continue
                        free.pop(0)
                        attempts[run.run_id] = attempts.get(run.run_id, 0) + 1
                        active[run.run_id] = started
                    self._top_up_spares(len(queue))
                    self._wait(active, interrupt)
                    interrupt.check()
                    self._poll(active, queue, attempts, summary, waiting)
                    self._check_waiting(waiting, queue, summary)
                    if should_stop is not None and (queue or active or waiting) and should_stop():
                        summary.stopped = True
                        queue.clear()
                        waiting.clear()
                        self._stop_all(list(active.values()), STOPPED_BY_COORDINATOR)
                        active.clear()
        except KeyboardInterrupt:
            summary.interrupted = True
            self._stop_all(list(active.values()), "interrupted by the user (Ctrl-C)")
        except Exception as exc:  # e.g. raised by should_stop: no worker outlives the batch that started it
            self._stop_all(list(active.values()), f"the coordinator failed ({type(exc).__name__}: {exc})")
            raise
        finally:
            self._discard_spares()
        return summary

    def _wait(self, active: Mapping[str, _Active], interrupt: DeferredInterrupt) -> None:
        """Sleep up to :data:`POLL_S`, returning early when a worker exits (so its result is ingested and its slot
        refilled at once) or Ctrl-C was pressed."""
        deadline = time.monotonic() + POLL_S
        while time.monotonic() < deadline and not interrupt.requested:
            if any(act.proc.poll() is not None for act in active.values()):
                return
            time.sleep(min(EXIT_CHECK_S, max(0.0, deadline - time.monotonic())))

    def _poll(
        self,
        active: dict[str, _Active],
        queue: list[Any],
        attempts: dict[str, int],
        summary: ExecutionSummary,
        waiting: dict[str, Any],
    ) -> None:
        """Forward heartbeats, and settle every worker that exited: ingest, retry or give up. A run whose claim this
        coordinator lost (another one took it over) is stopped and waited for like any run held elsewhere."""
        from suite.store import ClaimLostError

        for run_id, act in list(active.items()):
            try:
                self._pulse(act)
            except ClaimLostError as exc:
                del active[run_id]
                self._stop_all([act], "", record=False)
                self.on_event("claim_lost", {"run": act.run, "error": str(exc)})
                waiting[run_id] = act.run
                continue
            code = act.proc.poll()
            if code is None:
                continue
            del active[run_id]
            act.log.close()
            if act.spare_log is not None:
                took_over = self._took_over(act)
                early = "" if took_over else _tail(act.spare_log)
                self._forget_spare_log(act.spare_log)
                if not took_over:  # the spare died before it started the run: not the run's failure
                    with contextlib.suppress(ClaimLostError):
                        self.store.mark_lost(
                            run_id, "its pre-started worker ended before starting it; restarting cold", token=act.token
                        )
                    self._spare_failed(act.run, act.slot, code, why=early)
                    attempts[run_id] -= 1
                    queue.insert(0, act.run)
                    continue
            try:
                outcome = self._finish(act, code)
            except ClaimLostError as exc:
                self.on_event("claim_lost", {"run": act.run, "error": str(exc)})
                waiting[run_id] = act.run
                continue
            if outcome:
                summary.done.append(run_id)
                self._fresh.discard(run_id)
            elif attempts[run_id] < self.max_attempts and deterministic_failure(act.run_dir) is None:
                self.on_event("retry", {"run": act.run, "attempt": attempts[run_id] + 1})
                queue.append(act.run)
            else:
                summary.failed[run_id] = self.store.get_run(run_id).error or "failed"

    def _stop_all(self, acts: Sequence[_Active], why: str, *, record: bool = True) -> None:
        """SIGTERM the workers, wait for them, and mark their runs LOST (resumable from their checkpoints); with
        ``record=False`` (a claim this coordinator lost) the store is left to the run's new holder."""
        from suite.store import ClaimLostError

        for act in acts:
            act.proc.send_signal(signal.SIGTERM)
        for act in acts:
            try:
                act.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                act.proc.kill()
                act.proc.wait()
            act.log.close()
            if act.spare_log is not None:
                self._forget_spare_log(act.spare_log)
            if record:
                with contextlib.suppress(ClaimLostError):
                    self.store.mark_lost(act.run.run_id, f"{why}; resumes on the next run", token=act.token)
                self.on_event("stopped", {"run": act.run, "why": why})

    def _start(self, run: Any, slot: Slot) -> _Active | None:
        """Claim ``run`` and start it on ``slot``: on a spare of the slot's profile when there is one (if it is still
        importing, the run waits for the rest, which is sooner than a cold start would be ready), else cold. None
        (nothing touched) when another coordinator holds the run."""
        run_dir = self.run_dir(run.run_id)
        token = new_token()
        host = socket.gethostname()
        claimed = self.store.claim(
            run.run_id,
            owner=self.owner,
            token=token,
            worker=f"{host}:{os.getpid()}:{slot.name}",  # the coordinator's pid until the worker's is known
            workdir=str(run_dir),
            stale_after_s=self.stale_after_s,
            force=run.run_id in self._fresh,
        )
        if claimed is None:
            self.on_event("waiting", {"run": run, "owner": (self.store.get_run(run.run_id) or run).owner})
            return None
        prepare_run_dir(
            run_dir, run, device=slot.device, threads=slot.threads, attempt=token, fresh=run.run_id in self._fresh
        )
        self._fresh.discard(run.run_id)  # later attempts of a forced run resume from its new checkpoints
        spare = self._take_spare(slot, run)
        if spare is not None:
            proc, log, spare_log = spare.proc, spare.log, spare.log_path
        else:
            log = open(run_dir / LOG_FILE, "ab")  # noqa: SIM115 - closed when the worker ends
            proc = self._spawn([str(run_dir)], slot, stdout=log, stdin=subprocess.DEVNULL)
            spare_log = None
        self.store.heartbeat(run.run_id, token=token, worker=f"{host}:{proc.pid}:{slot.name}")
        act = _Active(
            run=run,
            slot=slot,
            proc=proc,
            run_dir=run_dir,
            log=log,
            started=time.time(),
            spare_log=spare_log,
            token=token,
        )
        self.on_event("start", {"run": run, "slot": slot.name, "pid": proc.pid, "warm": spare is not None})
        return act

    def _took_over(self, act: _Active) -> bool:
        """Whether a spare that ended had started its run (it beat the run's heartbeat, or wrote its result)."""
        beat = peek_json(act.run_dir / HEARTBEAT_FILE) or {}
        return beat.get("pid") == act.proc.pid or (act.run_dir / RESULT_FILE).exists()

    def _pulse(self, act: _Active) -> None:
        """Forward a new heartbeat of the worker to the store (renewing the claim's lease). A damaged heartbeat
        file counts as no new beat; a claim another coordinator took over raises :class:`ClaimLostError`."""
        beat = peek_json(act.run_dir / HEARTBEAT_FILE)
        when = beat.get("time") if beat else None
        if beat and beat.get("pid") == act.proc.pid and isinstance(when, int | float) and when > act.last_beat:
            act.last_beat = float(when)
            act.info = beat
            self.store.heartbeat(act.run.run_id, token=act.token)
            self.on_event("progress", {"run": act.run, "slot": act.slot.name, "info": beat, "started": act.started})

    def _finish(self, act: _Active, code: int) -> bool:
        """Ingest the exited worker's result after :func:`take_result` checked it (True), or record the attempt's
        failure (False): no result, or one that was rejected and moved aside (the message names the file)."""
        payload, problem = (None, None)
        if code == 0:
            run = act.run
            config = run.config.to_dict()
            payload, problem = take_result(
                act.run_dir, run_id=run.run_id, config=config, seed=run.seed, attempt=act.token
            )
        if payload is not None:
            self.store.ingest_result(act.run.run_id, payload, token=act.token)
            self.on_event("done", {"run": act.run, "seconds": time.time() - act.started})
            return True
        if problem is not None:
            message = f"{problem}; the run resumes from its checkpoint on its next attempt"
        else:
            tail = _tail(act.run_dir / LOG_FILE)
            message = failure_message(act.run_dir, f"worker exited with code {code} and no result\n{tail}")
        self.store.mark_failed(act.run.run_id, message, token=act.token)
        self.on_event("failed", {"run": act.run, "error": message.splitlines()[0]})
        return False

    # ------------------------------------------------------------------------------------------ recovery
    def recover(self, running: Sequence[Any]) -> list[str]:
        """Settle runs the store says are RUNNING although no coordinator is driving them (it was killed).

        See :func:`settle_running`. Runs whose SLURM job is still alive stay RUNNING: this executor leaves them to
        that job. Returns the ids ingested.
        """
        ingested, _ = settle_running(self.store, running, self.run_dir, stale_after_s=self.stale_after_s)
        return ingested
