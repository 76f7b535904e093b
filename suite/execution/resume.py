"""The resume rules of ``run`` and ``search``, in one place: which planned runs an invocation trains.

The same command again resumes: the runs are recorded in the store (state PLANNED, and the spec's membership), DONE
runs are skipped, and every other run goes to the executor, which claims it first: RUNNING runs another coordinator
holds are waited for, LOST and FAILED ones resume from their checkpoints. ``force`` reruns every run from scratch
(``fresh``: without its checkpoints; its old results stay until the new attempt finishes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from suite.execution.protocol import ExecutionSummary, Executor, Steering
from suite.plan import planned_rows, unique_runs


@dataclass
class Pending:
    """What an invocation finds: its (unique) runs, those it trains (``todo``), the ``fresh`` ones among them."""

    runs: list[Any]
    todo: list[Any]
    fresh: set[str] = field(default_factory=set)
    #: Other specs whose runs a ``force`` rerun changes too.
    shared: list[str] = field(default_factory=list)
    #: Runs in ``todo`` that are RUNNING under another coordinator or a SLURM job this executor did not adopt.
    elsewhere: list[Any] = field(default_factory=list)

    @property
    def reused(self) -> int:
        """Runs already DONE (not rerun)."""
        return len(self.runs) - len(self.todo)


def pending_runs(
    spec: str, store: Any, executor: Executor, runs: Sequence[Any], *, force: bool = False, recover: bool = False
) -> Pending:
    """Record ``runs`` of spec ``spec`` in the store and say which of them to train (module docstring). With
    ``recover``, RUNNING runs of the spec that no live coordinator drives are settled first
    (:meth:`Executor.recover`: ingested when their result is there, else LOST)."""
    from suite.store import RunState

    unique = unique_runs(runs)
    store.add_planned(planned_rows(runs))  # every planned row: a run shared by two groups belongs to both
    if recover:
        executor.recover(store.runs(spec=spec, states=[RunState.RUNNING]))
    infos = {r.run_id: store.get_run(r.run_id) for r in unique}
    fresh = {r.run_id for r in unique} if force else set()
    shared = sorted({m.spec for i in infos.values() for m in i.memberships if m.spec != spec}) if force else []
    todo = [r for r in unique if r.run_id in fresh or infos[r.run_id].state != RunState.DONE]
    elsewhere = [r for r in todo if infos[r.run_id].state == RunState.RUNNING and r.run_id not in executor.adopted]
    return Pending(runs=unique, todo=todo, fresh=fresh, shared=shared, elsewhere=elsewhere)


def run_plan(
    spec: str,
    store: Any,
    executor: Executor,
    runs: Sequence[Any],
    *,
    force: bool = False,
    recover: bool = False,
    start: Callable[[Pending], bool] | None = None,
    progress: Callable[[int, int], AbstractContextManager[Any]] | None = None,
    should_stop: Callable[[], bool] | None = None,
    steer: Steering | None = None,
) -> tuple[Pending, ExecutionSummary | None]:
    """Record ``runs`` (and with ``recover`` settle the spec's abandoned RUNNING runs), then train those not DONE
    (all of them with ``force``) through ``executor``.

    ``start(pending)`` is called once the runs to train are known (to report them); when it returns False nothing
    is executed. ``progress(total, already_done)`` gives the context manager whose ``event`` method receives the
    executor's events. ``steer`` feeds more runs as the executor goes (:class:`~suite.execution.protocol.Steer`;
    the search's parallel trials, each planned with :func:`pending_runs`). Returns the pending runs and the
    executor's summary (None when nothing was executed).
    """
    pending = pending_runs(spec, store, executor, runs, force=force, recover=recover)
    if start is not None and not start(pending):
        return pending, None
    context = progress(len(pending.runs), pending.reused) if progress is not None else nullcontext(None)
    with context as shown:
        summary = executor.execute(
            pending.todo,
            on_event=shown.event if shown is not None else None,
            should_stop=should_stop,
            fresh=pending.fresh,
            steer=steer,
        )
    return pending, summary
