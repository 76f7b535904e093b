"""Running trials: up to K trials at once, their planned runs fed to one executor call (:func:`suite.execution.run_plan`
with a :class:`suite.execution.Steer`), the per-epoch reports to Optuna from checkpoints and the store, pruning, and
the objective."""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import Trial, TrialState

from mlrd_core.checkpoint import CHECKPOINT_NAME, metric_history
from mlrd_core.errors import ConfigError
from suite.execution.protocol import ExecutionSummary, Steer
from suite.plan import PlannedRun
from suite.search.rendering import _pm
from suite.search.space import require_search, suggest_point, trial_runs
from suite.search.study import HEARTBEAT_INTERVAL_S, _point_attrs, fail_stale_trials, record_heartbeat, trials_counted
from suite.spec import SearchSpec, Spec


def _store_values(
    store: Any, spec: str, split: str, metric: str, run_ids: Sequence[str]
) -> dict[str, dict[int, float]]:
    """``{run_id: {epoch: value}}`` of ``metric`` on ``split`` for ``run_ids`` from the store (DONE runs)."""
    frame = store.metrics_frame(spec=spec, split=split)
    frame = frame[frame["run_id"].isin(list(run_ids)) & (frame["metric"] == metric)]
    out: dict[str, dict[int, float]] = {run_id: {} for run_id in run_ids}
    for run_id, epoch, value in zip(frame["run_id"], frame["epoch"], frame["value"], strict=True):
        out[str(run_id)][int(epoch)] = float(value)
    return out


class _EpochReporter:
    """Reports the seed mean of the validation metric of every epoch that all of a trial's runs have validated,
    in epoch order, and asks the pruner after each live report."""

    def __init__(self, trial: Trial, run_ids: Sequence[str], metric: str, checkpoint_of: Callable[[str], Path]) -> None:
        self.trial = trial
        self.run_ids = list(run_ids)
        self.metric = metric
        self.checkpoint_of = checkpoint_of
        self.history: dict[str, dict[int, float]] = {run_id: {} for run_id in run_ids}
        self.reported: set[int] = set()
        self.pruned_at: int | None = None
        self._mtimes: dict[str, float] = {}

    def add(self, values: Mapping[str, Mapping[int, float]]) -> None:
        for run_id, by_epoch in values.items():
            self.history.setdefault(run_id, {}).update(by_epoch)

    def refresh(self, run_ids: Sequence[str]) -> None:
        """Read the checkpoints of ``run_ids`` that changed since the last look."""
        for run_id in run_ids:
            path = self.checkpoint_of(run_id)
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue
            if self._mtimes.get(run_id) != mtime:
                self._mtimes[run_id] = mtime
                self.history[run_id].update(metric_history(path, self.metric))

    def report(self, *, prune: bool) -> bool:
        """Report the newly complete epochs; True when ``prune`` and the pruner says stop."""
        common = set.intersection(*(set(h) for h in self.history.values())) if self.history else set()
        for epoch in sorted(common - self.reported):
            self.reported.add(epoch)
            self.trial.report(statistics.fmean(self.history[r][epoch] for r in self.run_ids), epoch)
            if prune and self.trial.should_prune():
                self.pruned_at = epoch
                return True
        return False

    def poll(self) -> bool:
        """At each poll of the executor (the search's ``steer``): read changed checkpoints, report, prune."""
        self.refresh(self.run_ids)
        return self.report(prune=True)


# ------------------------------------------------------------------------------------------------ the search


@dataclass
class _Live:
    """A trial whose runs are in the executor."""

    trial: Trial
    ids: list[str]
    #: The runs handed to the executor (those that were not DONE when the trial started).
    runs: list[PlannedRun]
    reporter: _EpochReporter

    @property
    def todo(self) -> set[str]:
        return {r.run_id for r in self.runs}


@dataclass
class LambdaSearch:
    """Runs trials of a spec's λ search through an executor into a store (both owned by the caller).

    Up to ``parallel`` trials run at once, all through one ``execute`` call of the executor (one set of slots,
    claims and Ctrl-C handling): the search asks Optuna for a trial whenever fewer than ``parallel`` are running
    and the budget allows, hands its runs to the executor (:class:`suite.execution.Steer`), and tells Optuna each
    trial's outcome as soon as its runs are settled, so the next one starts on the slots it freed. TPE samples with
    a constant liar (:func:`suite.search.study.make_sampler`), so trials running at once do not pile onto one
    point. With ``parallel = 1`` trials run one after another, as Optuna's ``study.optimize`` would run them.

    ``progress(total, already_done)`` returns the context manager whose ``event`` method receives the executor's
    events (:class:`suite.progress.SuiteProgress`; entered once, each trial's runs added with ``add_runs``); None
    shows nothing.
    """

    spec: Spec
    store: Any
    executor: Any
    study: optuna.Study
    progress: Callable[[int, int], AbstractContextManager[Any]] | None = None
    log: Callable[[str], None] | None = None
    parallel: int = 1
    search: SearchSpec = field(init=False)

    def __post_init__(self) -> None:
        self.search = require_search(self.spec)
        if self.parallel < 1:
            raise ConfigError(f"parallel trials must be >= 1, got {self.parallel}")

    def optimize(self, n_trials: int | None = None, timeout_s: float | None = None) -> int:
        """Run ``n_trials`` more trials (default: what is left of the spec's ``n_trials`` budget, see
        :func:`trials_counted`); ``timeout_s`` (default: the spec's ``timeout_s``) stops starting new trials after
        that many seconds. Returns the number of trials asked for. Ctrl-C propagates (as KeyboardInterrupt) after
        the running trials are recorded as interrupted and enqueued again (their runs resume from checkpoints)."""
        from suite.execution import run_plan

        todo = max(0, self.search.n_trials - trials_counted(self.study)) if n_trials is None else n_trials
        if todo <= 0:
            return todo
        timeout = timeout_s if timeout_s is not None else self.search.timeout_s
        pool = _TrialPool(self, budget=todo, timeout_s=timeout)
        context = self.progress(0, 0) if self.progress is not None else nullcontext(None)
        try:
            with context as shown:
                pool.shown = shown
                _, summary = run_plan(
                    self.spec.name,
                    self.store,
                    self.executor,
                    [],
                    progress=lambda total, done: nullcontext(shown),
                    steer=pool,
                )
            if summary is not None and summary.interrupted:
                raise KeyboardInterrupt
            # otherwise execute returned after the pool said closed, which it says only with no trial left running
        except BaseException as exc:
            pool.abandon(interrupted=isinstance(exc, KeyboardInterrupt))
            raise
        return todo

    # -------------------------------------------------------------------------------------------- one trial
    def say(self, text: str, shown: Any = None) -> None:
        if self.log is None:
            return
        if shown is not None and hasattr(shown, "note"):
            shown.note(text)  # above a live display
        else:
            self.log(text)

    def begin(self, trial: Trial, shown: Any) -> _Live | None:
        """Sample the trial's point and plan its runs (:func:`suite.execution.pending_runs`, the resume rules of
        ``run``). Returns the live trial, or None when it ended at once (told to Optuna): all its runs were done,
        its point is not a valid config, or the pruner stops it on the history of its runs' checkpoints."""
        from suite.execution import pending_runs

        search = self.search
        point = suggest_point(trial, search)
        attrs = _point_attrs(point)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("label", point.describe())
        try:
            runs = trial_runs(self.spec, point)
        except ConfigError as exc:  # each setting was checked alone at load time; this combination is invalid
            self._fail(trial, f"the point is not a valid run config: {exc}", shown)
            return None
        ids = [r.run_id for r in runs]
        trial.set_user_attr("run_ids", ids)
        trial.set_user_attr("seeds", [r.seed for r in runs])
        pending = pending_runs(self.spec.name, self.store, self.executor, runs)
        trial.set_user_attr("reused", pending.reused)
        self.say(
            f"trial {trial.number}: λ {point.describe()} on seeds {list(search.seeds)}"
            + (f" ({pending.reused} finished run(s) reused)" if pending.reused else ""),
            shown,
        )
        todo = {r.run_id for r in pending.todo}
        reporter = _EpochReporter(
            trial, ids, search.objective, lambda run_id: self.executor.run_dir(run_id) / CHECKPOINT_NAME
        )
        done = [run_id for run_id in ids if run_id not in todo]
        reporter.add(_store_values(self.store, self.spec.name, "val", search.objective, done))
        reporter.refresh(sorted(todo))  # LOST runs of an earlier trial resume with their history
        live = _Live(trial=trial, ids=ids, runs=list(pending.todo), reporter=reporter)
        if not todo:
            self.conclude(live, failed={}, shown=shown)
            return None
        if reporter.report(prune=True):
            self._pruned(live, shown)
            return None
        return live

    def conclude(self, live: _Live, *, failed: Mapping[str, str], shown: Any) -> None:
        """Tell Optuna the outcome of a trial whose runs are settled: FAIL when a run failed past its retries or
        recorded no objective, else the seed mean of the objective at each run's last epoch."""
        trial, ids, search = live.trial, live.ids, self.search
        if self._failed_elsewhere(trial, shown):
            return
        bad = [failed[i] for i in ids if i in failed]
        if bad:
            self._fail(trial, f"{len(bad)} run(s) failed: {bad[0].splitlines()[0]}", shown)
            return
        live.reporter.add(_store_values(self.store, self.spec.name, "val", search.objective, ids))
        live.reporter.report(prune=False)  # epochs the live reports missed, so that later trials compare with all
        final = _store_values(self.store, self.spec.name, search.split, search.objective, ids)
        missing = [run_id[:12] for run_id in ids if not final[run_id]]
        if missing:
            self._fail(trial, f"run(s) {', '.join(missing)} recorded no {search.split} {search.objective}", shown)
            return
        values = [final[run_id][max(final[run_id])] for run_id in ids]
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        trial.set_user_attr("values", values)
        trial.set_user_attr("std", std)
        trial.set_user_attr("n_seeds", len(values))
        self.say(f"trial {trial.number}: {search.objective} ({search.split}) = {_pm(mean, std, len(values))}", shown)
        self.study.tell(trial, mean)

    def _failed_elsewhere(self, trial: Trial, shown: Any) -> bool:
        """Whether another coordinator failed the trial as stale (this one stalled past the grace period): then it
        is not told again; its retry, already enqueued, runs the same point and reuses its runs."""
        if _running(self.study, trial):
            return False
        self.say(f"trial {trial.number}: failed as stale by another coordinator; its retry runs the point", shown)
        return True

    def _pruned(self, live: _Live, shown: Any) -> None:
        if self._failed_elsewhere(live.trial, shown):
            return
        epoch = live.reporter.pruned_at
        live.trial.set_user_attr("pruned_at_epoch", epoch)
        self.say(f"trial {live.trial.number}: pruned after epoch {epoch}", shown)
        self.study.tell(live.trial, state=TrialState.PRUNED)

    def _fail(self, trial: Trial, message: str, shown: Any) -> None:
        """Record why the trial failed (it then counts against the budget), say it, and tell Optuna."""
        trial.set_user_attr("error", message)
        self.say(
            f"trial {trial.number}: FAILED: {message} (python -m suite status SPEC --failed shows the traces)", shown
        )
        self.study.tell(trial, state=TrialState.FAIL)


class _TrialPool:
    """The search's ``steer`` (:class:`suite.execution.Steer`): keeps up to ``parallel`` trials running, prunes,
    concludes, and keeps the running trials' Optuna heartbeats (a coordinator that dies leaves them stale; the next
    one fails and retries them, :data:`suite.search.study.MAX_RETRY` times)."""

    def __init__(self, search: LambdaSearch, *, budget: int, timeout_s: float | None) -> None:
        self.search = search
        self.budget = budget
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.asked = 0
        self.live: list[_Live] = []
        #: A trial asked for and being planned (not yet live, not yet told).
        self.starting: Trial | None = None
        self.shown: Any = None
        #: The run ids in the progress display's total.
        self.counted: set[str] = set()
        self._beaten = float("-inf")

    def _may_ask(self) -> bool:
        return (
            len(self.live) < self.search.parallel
            and self.asked < self.budget
            and (self.deadline is None or time.monotonic() < self.deadline)
        )

    def __call__(self, summary: ExecutionSummary) -> Steer:
        search = self.search
        self._beat()  # first: a stall (stopping workers, a locked database) must not make our own trials stale
        settled = {*summary.done, *summary.failed, *summary.elsewhere}
        stop: set[str] = set()
        for live in list(self.live):
            running = live.todo - settled
            if not running:
                search.conclude(live, failed=summary.failed, shown=self.shown)
                self.live.remove(live)  # only once told: an error before that leaves it to abandon()
            elif live.reporter.poll():
                search._pruned(live, self.shown)
                self.live.remove(live)
                stop |= running
                self._uncount(running)
        add: list[Any] = []
        while self._may_ask():
            started = self._ask()
            if started is not None:
                add.extend(started.runs)
        stop -= {run_id for live in self.live for run_id in live.todo}  # still needed by a running trial, new ones too
        return Steer(add=add, stop=stop, closed=not self.live and not self._may_ask())

    def _count(self, live: _Live) -> None:
        """Add a new trial's runs to the progress display, once per run however many trials share it."""
        new = [run_id for run_id in live.ids if run_id not in self.counted]
        self.counted.update(new)
        self._add_runs(len(new), sum(1 for run_id in new if run_id not in live.todo))

    def _uncount(self, stopped: set[str]) -> None:
        """A pruned trial's stopped runs will not finish in this search: out of the display's total."""
        gone = (stopped & self.counted) - {run_id for live in self.live for run_id in live.todo}
        self.counted -= gone
        if gone:
            self._add_runs(-len(gone), 0)

    def _add_runs(self, total: int, already_done: int) -> None:
        if self.shown is not None and hasattr(self.shown, "add_runs"):
            self.shown.add_runs(total, already_done)

    def _ask(self) -> _Live | None:
        study = self.search.study
        self._beat(now=True)  # our running trials are fresh before stale ones are failed
        fail_stale_trials(study)
        with warnings.catch_warnings():  # the heartbeats are kept by this loop (_beat), not by study.optimize
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            trial = study.ask()
        self.asked += 1
        record_heartbeat(study, trial)
        self.starting = trial  # from here on a Ctrl-C or an error records it as interrupted
        live = self.search.begin(trial, self.shown)
        if live is not None:
            self.live.append(live)
            self._count(live)
        self.starting = None
        return live

    def _beat(self, *, now: bool = False) -> None:
        """Beat the running trials' heartbeats (every :data:`HEARTBEAT_INTERVAL_S`, or ``now``); a trial another
        coordinator failed as stale meanwhile leaves the pool (its runs go on; its retry reuses them)."""
        if now or time.monotonic() - self._beaten >= HEARTBEAT_INTERVAL_S:
            self._beaten = time.monotonic()
            for live in list(self.live):
                if self.search._failed_elsewhere(live.trial, self.shown):
                    self.live.remove(live)
                else:
                    record_heartbeat(self.search.study, live.trial)

    def abandon(self, *, interrupted: bool) -> None:
        """The search stops with trials running: they FAIL without counting against the budget (no ``error``);
        after Ctrl-C they are marked ``interrupted`` and enqueued again, so the same command retries them first
        (their runs resume from their checkpoints)."""
        study = self.search.study
        trials = [live.trial for live in self.live] + ([self.starting] if self.starting is not None else [])
        self.live.clear()
        self.starting = None
        for trial in trials:
            if not _running(study, trial):  # told already (concluding it raised after the tell), or failed as stale
                continue
            if interrupted:
                trial.set_user_attr("interrupted", True)
                attrs = {k: v for k, v in trial.user_attrs.items() if k in ("schedule", "settings")}
                if trial.params:
                    study.enqueue_trial(
                        dict(trial.params), user_attrs={**attrs, "retry_of": trial.number, **_enqueued(trial)}
                    )
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


def _running(study: optuna.Study, trial: Trial) -> bool:
    """Whether the trial is still RUNNING in the study's storage (another coordinator may have failed it as stale)."""
    return study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING


def _enqueued(trial: Trial) -> dict[str, Any]:
    return {"enqueued": True} if trial.user_attrs.get("enqueued") else {}
