"""Execution: planned runs become worker processes, and their results rows of the store.

- :mod:`suite.execution.protocol`: the run-folder protocol between coordinator and worker (claims, ``run.json``,
  heartbeats, ``result.json`` / ``error.json``, settling abandoned runs, runs held by another coordinator), the
  :class:`Executor` interface and :class:`Steer`, how a coordinator feeds an executor as it goes (parallel trials);
- :mod:`suite.execution.local`: :class:`LocalExecutor`, one subprocess per slot (GPU or CPU);
  :mod:`suite.execution.workers`: its slots and pre-started spare workers;
- :mod:`suite.execution.slurm_jobs` and :mod:`suite.execution.slurm`: SLURM job states, and
  :class:`~suite.execution.slurm.SlurmExecutor` (job arrays through submitit);
- :mod:`suite.execution.resume`: :func:`run_plan`, the resume and ``--force`` rules of ``run`` and ``search``.

Imports go one way: slurm_jobs ← protocol ← workers ← local; protocol, slurm_jobs ← slurm; protocol ← resume.
"""

from __future__ import annotations

from suite.execution.local import LocalExecutor, Slot, local_slots
from suite.execution.protocol import ExecutionSummary, Executor, Steer
from suite.execution.resume import Pending, pending_runs, run_plan

__all__ = [
    "ExecutionSummary",
    "Executor",
    "LocalExecutor",
    "Pending",
    "Slot",
    "Steer",
    "local_slots",
    "pending_runs",
    "run_plan",
]
