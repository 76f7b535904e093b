"""SLURM's view of runs: job ids in the store, job states from ``squeue`` / ``sacct``, cancellation, and the
settling of RUNNING runs whose SLURM job outlived their coordinator. Needs only the SLURM commands (not submitit),
so ``status`` and recovery work without the ``slurm`` extra; :mod:`suite.execution.slurm` submits and drives jobs.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mlrd_core.errors import MLRDError

#: The store's ``worker`` of a run in a SLURM job: ``slurm:<job id>`` (``slurm:123_4`` for array task 4 of job 123).
WORKER_PREFIX = "slurm:"
#: Written into the run folder at submission: job id, log file, submission time.
JOB_FILE = "slurm.json"
#: States after which a job does nothing more (``squeue --states=all`` keeps them for MinJobAge, 300 s by default).
#: Every other state (PENDING, RUNNING, REQUEUED, COMPLETING, SUSPENDED, ...) is alive.
TERMINAL_STATES: frozenset[str] = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
    }
)
QUERY_TIMEOUT_S = 30.0


class SlurmError(MLRDError, RuntimeError):
    """SLURM or submitit is missing, or refused a submission."""


# --------------------------------------------------------------------------------------------------- job states


def is_slurm_worker(worker: str | None) -> bool:
    return bool(worker) and str(worker).startswith(WORKER_PREFIX)


def job_id_of(worker: str | None) -> str | None:
    """``"slurm:123_4"`` -> ``"123_4"``; None for a local worker."""
    return str(worker)[len(WORKER_PREFIX) :] if is_slurm_worker(worker) else None


def parse_job_table(text: str) -> dict[str, str]:
    """``{job id: state}`` from ``squeue --format=%i|%T`` or ``sacct -P -o JobID,State`` lines. A state is its first
    word (sacct writes ``CANCELLED by 0``); job steps (``123.batch``) and bracketed pending ranges are skipped."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        job, sep, state = line.strip().partition("|")
        if not sep or not job or "." in job or "[" in job or not state.strip():
            continue
        states[job] = state.split()[0].rstrip("+").upper()
    return states


def _query(command: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def job_states(job_ids: Iterable[str]) -> dict[str, str | None] | None:
    """The SLURM state of each job id (``"123"`` or array task ``"123_4"``).

    A state is ``"PENDING"``, ``"RUNNING"``, ``"COMPLETED"``, ...; ``None`` means SLURM no longer lists the job (it
    ended: squeue forgets finished jobs after MinJobAge, and sacct knows them only with accounting on). The whole
    answer is ``None`` when SLURM cannot be asked (no ``squeue`` on PATH, controller unreachable).
    """
    wanted = sorted(set(job_ids))
    if not wanted:
        return {}
    if shutil.which("squeue") is None:
        return None
    # the user's jobs, not --jobs: one unknown id makes `squeue --jobs` fail for all ("Invalid job id specified")
    user = pwd.getpwuid(os.getuid()).pw_name
    text = _query(["squeue", f"--user={user}", "--noheader", "--array", "--states=all", "--format=%i|%T"])
    if text is None:
        return None
    known = parse_job_table(text)
    missing = [j for j in wanted if j not in known]
    if missing and shutil.which("sacct") is not None:
        arrays = sorted({j.split("_")[0] for j in missing})
        text = _query(["sacct", "-X", "--noheader", "--parsable2", "-o", "JobID,State", "-j", ",".join(arrays)])
        if text is not None:  # accounting off: "Slurm accounting storage is disabled", exit code 1
            known.update({j: s for j, s in parse_job_table(text).items() if j not in known})
    return {j: known.get(j) for j in wanted}


def is_alive(state: str | None) -> bool:
    return state is not None and state not in TERMINAL_STATES


def describe_state(job_id: str, states: Mapping[str, str | None] | None) -> str:
    """What ``status`` shows: ``123_4 RUNNING``, ``123_4 ended`` or ``123_4 (state unknown)``."""
    if states is None or job_id not in states:
        return f"{job_id} (state unknown)"
    state = states[job_id]
    return f"{job_id} {state}" if state is not None else f"{job_id} ended (no longer listed)"


def cancel(job_ids: Iterable[str]) -> None:
    """``scancel`` the jobs (array tasks); errors (already gone, no SLURM) are ignored."""
    ids = sorted(set(job_ids))
    if ids and shutil.which("scancel") is not None:
        _query(["scancel", *ids])


def settle_slurm_runs(store: Any, running: Sequence[Any]) -> dict[str, str]:
    """Settle RUNNING runs of SLURM jobs that have no result on disk: a job that ended makes its run LOST
    (resumable from its checkpoint); a job still alive, or whose state SLURM cannot tell now, keeps its run
    RUNNING. Returns ``{run id: job id}`` of the runs left RUNNING."""
    from suite.store import ClaimLostError

    jobs = {info.run_id: job_id_of(info.worker) or "" for info in running}
    tokens = {info.run_id: getattr(info, "token", None) for info in running}
    states = job_states(jobs.values())
    alive: dict[str, str] = {}
    for run_id, job in jobs.items():
        if states is None or is_alive(states.get(job)):
            alive[run_id] = job
        else:
            state = states.get(job) or "no longer listed"
            with contextlib.suppress(ClaimLostError):
                store.mark_lost(
                    run_id,
                    f"its SLURM job {job} ended ({state}) without a result; resumes on the next run",
                    token=tokens.get(run_id),
                )
    return alive


def require_slurm() -> None:
    """Raise :class:`SlurmError` unless SLURM's commands and submitit are available."""
    missing = [c for c in ("sbatch", "squeue", "scancel", "srun") if shutil.which(c) is None]
    if missing:
        raise SlurmError(
            f"--executor slurm needs SLURM's commands on PATH, but {', '.join(missing)} are missing: run on a login "
            "node of the cluster (a local test cluster: bash tools/slurm_single_node.sh start, then "
            'eval "$(bash tools/slurm_single_node.sh env)")'
        )
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise SlurmError('--executor slurm needs submitit: pip install -e ".[slurm]"') from None
