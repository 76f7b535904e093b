"""The SLURM executor: every run is one task of a SLURM job array, submitted through submitit.

It has the interface of :class:`suite.execution.local.LocalExecutor` (``execute``, ``recover``, ``run_dir``) and the
same file protocol: the coordinator writes ``run.json`` into each run folder, a task runs the worker
(:func:`suite.worker.run_worker`) on that folder, the worker writes ``heartbeat.json``, ``checkpoint.pt`` and finally
``result.json`` (or ``error.json``), and the coordinator, the only database writer, polls the folders and ingests.
So the results folder must be on a file system that the login node and the compute nodes share.

- **One array per submission.** The runs to do are one ``sbatch --array=0-N%P`` (``array_parallelism`` = P) with the
  resources of the spec's ``[slurm]`` table (partition, time, CPUs, GPUs, memory, any other sbatch option). A run's
  store ``worker`` is ``slurm:<array id>_<task>``; retries go out as a new array.
- **Timeouts and preemption requeue and resume.** SLURM signals ``USR2`` before the time limit (and on preemption);
  submitit's handler calls :meth:`WorkerTask.checkpoint`, requeues the task with ``scontrol requeue`` and exits. The
  requeued task runs the worker again on the same folder, and the trainer resumes from its last period checkpoint,
  so the result is the one an uninterrupted run gives. ``max_timeouts`` bounds the requeues after real timeouts.
- **Job states come from squeue**, which needs no accounting database; ``sacct`` is asked only for jobs squeue no
  longer lists, and its absence ("accounting storage is disabled") is fine. A task that ends without a result is
  FAILED with the worker's trace (or the tail of its log); a task SLURM reports RUNNING whose heartbeat stops for
  ``stale_after_s`` is cancelled and LOST. Failed and lost runs are retried up to the attempt budget.
- **The coordinator can die.** Its tasks keep running; the next ``run --executor slurm`` finds their runs RUNNING,
  ingests what finished and re-attaches to the jobs still queued or running (no second submission). Ctrl-C cancels
  the tasks it drives; their runs are LOST and resume from their checkpoints the next time.

submitit is imported only when jobs are submitted (the ``slurm`` extra: ``pip install -e ".[slurm]"``); job states
and cancellation use the SLURM commands directly, so ``status`` works without it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite.execution import slurm_jobs
from suite.execution.protocol import (
    STALE_AFTER_S,
    STOPPED_BY_COORDINATOR,
    Event,
    ExecutionSummary,
    Steering,
    WaitsForOthers,
    apply_steer,
    check_steering,
    failure_message,
    new_owner,
    new_token,
    prepare_run_dir,
    settle_running,
    take_result,
)
from suite.execution.slurm_jobs import (
    JOB_FILE,
    WORKER_PREFIX,
    SlurmError,
    cancel,
    is_alive,
    require_slurm,
)
from suite.worker import ERROR_FILE, HEARTBEAT_FILE, peek_json, run_worker, write_json_atomic

if TYPE_CHECKING:
    from suite.spec import SlurmSettings


# --------------------------------------------------------------------------------------------------- the task


class WorkerTask:
    """What a SLURM task runs: the worker on one run folder (picklable: it holds only the folder's path).

    submitit calls :meth:`checkpoint` on ``USR2`` (timeout or preemption) before it requeues the task; resubmitting
    the same task is enough, because the trainer's own period checkpoint in the folder makes the next start resume.
    """

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir

    def __call__(self) -> str:
        code = run_worker(Path(self.run_dir))
        if code != 0:
            error = peek_json(Path(self.run_dir) / ERROR_FILE) or {}
            raise RuntimeError(
                f"the worker failed with exit code {code}: {error.get('type', '?')}: {error.get('message', '')}"
            )
        return self.run_dir

    def checkpoint(self) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(WorkerTask(self.run_dir))

    def __repr__(self) -> str:
        return f"WorkerTask({self.run_dir!r})"


def sbatch_parameters(settings: SlurmSettings, *, job_name: str) -> dict[str, Any]:
    """``submitit.SlurmExecutor.update_parameters`` arguments for ``settings`` (names as submitit spells them)."""
    params: dict[str, Any] = {
        "job_name": job_name,
        "time": settings.timeout_min,
        "cpus_per_task": settings.cpus_per_task,
        "ntasks_per_node": 1,
        "array_parallelism": settings.array_parallelism,
        "signal_delay_s": settings.signal_delay_s,
        "stderr_to_stdout": True,
        # the worker uses cpus_per_task threads; OpenMP/MKL pools outside torch follow
        "setup": [
            f"export OMP_NUM_THREADS={settings.cpus_per_task} MKL_NUM_THREADS={settings.cpus_per_task}",
            *settings.setup,
        ],
    }
    if settings.partition is not None:
        params["partition"] = settings.partition
    if settings.mem_gb is not None:
        mem = settings.mem_gb
        params["mem"] = f"{int(mem)}GB" if mem == int(mem) else f"{round(mem * 1024)}MB"
    extra = {key: value for key, value in settings.sbatch.items() if value is not False}  # false: option left out
    if settings.gpus_per_task and "gres" not in extra:
        extra["gres"] = f"gpu:{settings.gpus_per_task}"
    if extra:
        params["additional_parameters"] = extra
    return params


# --------------------------------------------------------------------------------------------------- executor


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Hold SIGINT back (it arrives when the block ends): a submission and its bookkeeping happen as a whole, so a
    Ctrl-C never leaves submitted tasks that the store does not know about."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _raise_on_ctrl_c() -> Callable[[], None]:
    """Make Ctrl-C raise KeyboardInterrupt even when the coordinator inherited SIGINT ignored (a coordinator started in
    the background by a script does), so that the tasks it submitted are cancelled, as the local executor's are.
    Returns the function that restores the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def restore() -> None:
        signal.signal(signal.SIGINT, previous)

    return restore


@dataclass
class _Task:
    """A run the coordinator watches: its job id, folder, and what it has seen of it (coordinator clock)."""

    run: Any
    job_id: str
    run_dir: Path
    log: Path | None
    submitted: float
    started: float | None = None
    last_beat: float = 0.0
    last_beat_seen: float = 0.0
    worker_pid: tuple[str, int] | None = None
    ended: float | None = None
    #: The token of the run's claim (None for runs marked RUNNING without one).
    token: str | None = None


class SlurmExecutor(WaitsForOthers):
    """Runs workers as tasks of SLURM job arrays and is the single writer of the store.

    ``poll_s``: how often run folders are read; ``query_every_s``: how often squeue is asked; ``grace_s``: how long
    a task that SLURM reports ended may take to show its result file (shared file systems cache).
    """

    def __init__(
        self,
        store: Any,
        *,
        runs_dir: Path,
        settings: SlurmSettings,
        folder: Path,
        job_name: str = "mlrd",
        max_attempts: int = 3,
        stale_after_s: float = STALE_AFTER_S,
        poll_s: float = 1.0,
        query_every_s: float = 5.0,
        grace_s: float = 10.0,
        on_event: Event | None = None,
    ) -> None:
        require_slurm()
        self.store = store
        self.runs_dir = runs_dir
        self.settings = settings
        self.folder = folder.absolute()
        self.job_name = job_name
        self.max_attempts = max_attempts
        self.stale_after_s = stale_after_s
        self.poll_s = poll_s
        self.query_every_s = query_every_s
        self.grace_s = grace_s
        self.on_event = on_event or (lambda kind, info: None)
        #: RUNNING runs whose SLURM job outlived an earlier coordinator: {run id: job id}; ``execute`` watches them
        #: instead of submitting them again.
        self.adopted: dict[str, str] = {}
        #: This coordinator's name in the store's claims (:func:`suite.execution.protocol.new_owner`).
        self.owner = new_owner()
        self._fresh: set[str] = set()

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id[:16]

    # ------------------------------------------------------------------------------------------ recovery
    def recover(self, running: Sequence[Any]) -> list[str]:
        """Settle RUNNING runs left by an earlier coordinator (:func:`suite.execution.protocol.settle_running`); those
        whose SLURM job is still queued or running are adopted. Returns the ids ingested."""
        ingested, alive = settle_running(self.store, running, self.run_dir, stale_after_s=self.stale_after_s)
        self.adopted.update(alive)
        return ingested

    # ------------------------------------------------------------------------------------------ execution
    def execute(
        self,
        runs: Sequence[Any],
        on_event: Event | None = None,
        *,
        should_stop: Callable[[], bool] | None = None,
        fresh: Iterable[str] = (),
        steer: Steering | None = None,
    ) -> ExecutionSummary:
        """Run ``runs`` to completion (or failure past the retry budget), as in ``LocalExecutor.execute``. Adopted
        runs are watched, the others claimed in the store and submitted as one job array; a run another coordinator
        holds is waited for (``waiting`` event) and claimed once it lets it go, as locally. Runs in ``fresh``
        (``--force``) start without their checkpoints. Ctrl-C (or ``should_stop``) cancels the tasks; their runs
        become LOST and resume from their checkpoints the next time. ``steer`` adds runs (each batch of new runs is
        one more job array) and cancels some, as in ``LocalExecutor.execute``."""
        check_steering(steer, should_stop)
        self._fresh = set(fresh)
        if on_event is not None:
            self.on_event = on_event
        summary = ExecutionSummary()
        attempts: dict[str, int] = {}
        watched: dict[str, _Task] = {}
        queue: list[Any] = []
        for run in runs:
            job = self.adopted.pop(run.run_id, None)
            if job is None:
                queue.append(run)
            else:
                attempts[run.run_id] = 1
                watched[run.run_id] = self._adopt(run, job)
                watched[run.run_id].token = self.store.get_run(run.run_id).token
        states: dict[str, str | None] | None = {}
        last_query = last_waiting = float("-inf")
        restore_ctrl_c = _raise_on_ctrl_c()
        open_ = steer is not None
        waiting: dict[str, Any] = {}  # runs another coordinator holds: waited for, claimed once free
        try:
            while queue or watched or waiting or open_:
                if open_ and steer is not None:
                    with _ctrl_c_deferred():  # the search's Optuna and store writes, and the books, as a whole
                        order = steer(summary)
                        open_ = not order.closed
                        stop = apply_steer(order, queue, watched, waiting, attempts, summary)
                        if stop:
                            self._cancel_all(stop, STOPPED_BY_COORDINATOR)
                if queue:
                    with _ctrl_c_deferred():  # the submitted tasks are in the books before a Ctrl-C lands
                        submitted = self._submit(queue, waiting)
                        queue.clear()
                        for run_id in submitted:
                            attempts[run_id] = attempts.get(run_id, 0) + 1
                        watched.update(submitted)
                time.sleep(self.poll_s)
                now = time.time()
                if now - last_query >= self.query_every_s:
                    states = slurm_jobs.job_states(t.job_id for t in watched.values())
                    last_query = now
                if waiting and now - last_waiting >= self.query_every_s:  # as often as squeue is asked
                    self._check_waiting(waiting, queue, summary)
                    last_waiting = now
                for run_id, task in list(watched.items()):
                    outcome = self._check(task, states, now)
                    if outcome is None:
                        continue
                    del watched[run_id]
                    if outcome == "done":
                        summary.done.append(run_id)
                    elif outcome != "cancelled" and attempts[run_id] < self.max_attempts:
                        self.on_event("retry", {"run": task.run, "attempt": attempts[run_id] + 1})
                        queue.append(task.run)
                    else:
                        summary.failed[run_id] = self.store.get_run(run_id).error or outcome
                if should_stop is not None and (queue or watched or waiting) and should_stop():
                    summary.stopped = True
                    queue.clear()
                    waiting.clear()
                    self._cancel_all(list(watched.values()), STOPPED_BY_COORDINATOR)
                    watched.clear()
        except KeyboardInterrupt:
            summary.interrupted = True
            self._cancel_all(list(watched.values()), "interrupted by the user (Ctrl-C); its SLURM job was cancelled")
        except Exception as exc:  # e.g. raised by steer or should_stop: no task outlives the batch that started it
            self._cancel_all(list(watched.values()), f"the coordinator failed ({type(exc).__name__}: {exc})")
            raise
        finally:
            restore_ctrl_c()
        return summary

    def _cancel_all(self, tasks: Sequence[_Task], why: str, *, wait_s: float = 60.0) -> None:
        """Cancel the tasks, mark their runs LOST, and wait (up to ``wait_s``) until SLURM has stopped them, so that
        no old worker still writes into a run folder when the next coordinator starts."""
        ids = [t.job_id for t in tasks]
        cancel(ids)
        from suite.store import ClaimLostError

        for task in tasks:
            with contextlib.suppress(ClaimLostError):
                self.store.mark_lost(task.run.run_id, f"{why}; resumes on the next run", token=task.token)
            self.on_event("stopped", {"run": task.run, "why": why})
        deadline = time.time() + wait_s
        while ids and time.time() < deadline:
            states = slurm_jobs.job_states(ids)
            if states is None or not any(is_alive(state) for state in states.values()):
                return
            time.sleep(1.0)

    def _submit(self, runs: Sequence[Any], waiting: dict[str, Any]) -> dict[str, _Task]:
        """Claim ``runs`` and submit those claimed as one job array; a run another coordinator holds goes into
        ``waiting`` (claimed once that one lets it go, as in the local executor)."""
        import submitit

        self.folder.mkdir(parents=True, exist_ok=True)
        # a flat folder: sbatch opens the log files before submitit could create a per-job folder
        executor = submitit.SlurmExecutor(folder=self.folder, max_num_timeout=self.settings.max_timeouts)
        executor.update_parameters(**sbatch_parameters(self.settings, job_name=self.job_name))
        device = "cuda" if self.settings.gpus_per_task else "cpu"
        claimed: list[tuple[Any, Path, str]] = []
        for run in runs:
            run_dir = self.run_dir(run.run_id).absolute()
            token = new_token()
            won = self.store.claim(
                run.run_id,
                owner=self.owner,
                token=token,
                worker=f"{WORKER_PREFIX}pending",
                workdir=str(run_dir),
                stale_after_s=self.stale_after_s,
                force=run.run_id in self._fresh,
            )
            if won is None:  # another coordinator holds it: its folder is not ours to touch
                self.on_event("waiting", {"run": run, "owner": self.store.get_run(run.run_id).owner})
                waiting[run.run_id] = run
                continue
            prepare_run_dir(
                run_dir,
                run,
                device=device,
                threads=self.settings.cpus_per_task,
                attempt=token,
                fresh=run.run_id in self._fresh,
            )
            self._fresh.discard(run.run_id)
            (run_dir / JOB_FILE).unlink(missing_ok=True)
            claimed.append((run, run_dir, token))
        if not claimed:
            return {}
        try:
            jobs = executor.submit_array([WorkerTask(str(d)) for _, d, _ in claimed])
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:  # submitit's FailedJobError included
            for run, _, token in claimed:
                self.store.mark_failed(run.run_id, f"sbatch refused the job array: {exc}", token=token)
            raise SlurmError(f"sbatch refused the job array of {len(claimed)} run(s): {exc}") from exc
        now = time.time()
        tasks: dict[str, _Task] = {}
        for (run, run_dir, token), job in zip(claimed, jobs, strict=True):
            log = Path(job.paths.stdout)
            write_json_atomic(run_dir / JOB_FILE, {"job_id": job.job_id, "log": str(log), "submitted": now})
            self.store.heartbeat(run.run_id, token=token, worker=f"{WORKER_PREFIX}{job.job_id}")
            tasks[run.run_id] = _Task(run=run, job_id=job.job_id, run_dir=run_dir, log=log, submitted=now, token=token)
        array = jobs[0].job_id.split("_")[0]
        self.on_event(
            "submit",
            {"job": array, "count": len(jobs), "partition": self.settings.partition, "folder": str(self.folder)},
        )
        return tasks

    def _adopt(self, run: Any, job_id: str) -> _Task:
        info = peek_json(self.run_dir(run.run_id) / JOB_FILE) or {}
        log = Path(info["log"]) if info.get("log") else None
        now = time.time()
        self.on_event("adopt", {"run": run, "job": job_id})
        return _Task(run=run, job_id=job_id, run_dir=self.run_dir(run.run_id), log=log, submitted=now)

    def _check(self, task: _Task, states: Mapping[str, str | None] | None, now: float) -> str | None:
        """Read the task's folder and state; settle it when it is over: "done", "failed", "lost", "cancelled"."""
        self._pulse(task, now)
        run = task.run
        result, problem = take_result(
            task.run_dir, run_id=run.run_id, config=run.config.to_dict(), seed=run.seed, attempt=task.token
        )
        if result is not None:
            self.store.ingest_result(task.run.run_id, result, token=task.token)
            self.on_event("done", {"run": task.run, "seconds": now - (task.started or task.submitted)})
            return "done"
        if problem is not None:
            cancel([task.job_id])
            message = f"{problem}; the run resumes from its checkpoint on its next attempt"
            self.store.mark_failed(task.run.run_id, message, token=task.token)
            self.on_event("failed", {"run": task.run, "error": message})
            return "failed"
        known = states is not None and task.job_id in states
        state = states.get(task.job_id) if states is not None else None
        if not known or is_alive(state):
            task.ended = None  # PREEMPTED can be a passing state when the cluster requeues preempted jobs
        else:
            task.ended = task.ended or now
            if (task.run_dir / ERROR_FILE).exists() or now - task.ended >= self.grace_s:
                return self._ended(task, state)
            return None
        if state == "RUNNING" and task.started is None:
            self._start(task, now)
        if task.started is not None and state in ("RUNNING", None):
            silent = now - max(task.last_beat_seen, task.started)
            if silent > self.stale_after_s:
                cancel([task.job_id])
                hint = "" if task.last_beat else " (none ever arrived: is the results folder shared with the nodes?)"
                reason = f"SLURM job {task.job_id} sent no heartbeat for {silent:.0f}s{hint}; cancelled"
                self.store.mark_lost(task.run.run_id, reason, token=task.token)
                self.on_event("lost", {"run": task.run, "error": reason})
                return "lost"
        return None

    def _start(self, task: _Task, now: float) -> None:
        task.started = now
        self.on_event("start", {"run": task.run, "slot": task.job_id})

    def _pulse(self, task: _Task, now: float) -> None:
        beat = peek_json(task.run_dir / HEARTBEAT_FILE)
        if not beat or not isinstance(beat.get("time"), int | float) or float(beat["time"]) <= task.last_beat:
            return
        if task.started is None:
            self._start(task, now)
        pid = (str(beat.get("host")), int(beat.get("pid", 0)))
        if task.worker_pid is not None and pid != task.worker_pid:
            self.on_event("requeue", {"run": task.run, "job": task.job_id})
        task.worker_pid = pid
        task.last_beat = float(beat["time"])
        task.last_beat_seen = now
        self.store.heartbeat(task.run.run_id, token=task.token)
        self.on_event("progress", {"run": task.run, "slot": task.job_id, "info": beat, "started": task.started})

    def _ended(self, task: _Task, state: str | None) -> str:
        shown = state or "no longer listed"
        if state == "CANCELLED" and not (task.run_dir / ERROR_FILE).exists():
            reason = f"SLURM job {task.job_id} was cancelled outside the suite (scancel?); resumes on the next run"
            self.store.mark_lost(task.run.run_id, reason, token=task.token)
            self.on_event("lost", {"run": task.run, "error": reason})
            return "cancelled"
        tail = ""
        if task.log is not None and task.log.exists():
            tail = f"\nlast lines of {task.log}:\n" + task.log.read_bytes()[-4000:].decode(errors="replace")
        message = failure_message(task.run_dir, f"SLURM job {task.job_id} ended ({shown}) without a result{tail}")
        self.store.mark_failed(task.run.run_id, message, token=task.token)
        self.on_event("failed", {"run": task.run, "error": message.splitlines()[0]})
        return "failed"


def default_folder(results: Path) -> Path:
    """Where submitit's job files and logs go when ``[slurm] folder`` is not set."""
    return results / "slurm"


def folder_for(settings: SlurmSettings, results: Path) -> Path:
    return Path(os.path.expanduser(settings.folder)) if settings.folder else default_folder(results)
