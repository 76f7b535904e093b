"""Running trials: each trial's planned runs through an executor and store (:func:`suite.execution.run_plan`), the
per-epoch reports to Optuna from checkpoints and the store, pruning, and the objective."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import Trial

from mlrd_core.checkpoint import CHECKPOINT_NAME, metric_history
from mlrd_core.errors import ConfigError, MLRDError
from suite.plan import PlannedRun
from suite.search.rendering import _pm
from suite.search.space import TrialPoint, require_search, suggest_point, trial_runs
from suite.search.study import _point_attrs, trials_counted
from suite.spec import SearchSpec, Spec


class TrialRunsFailedError(MLRDError, RuntimeError):
    """A trial's run failed past the retry budget (e.g. a non-finite loss under an extreme λ): the trial FAILs and
    the study goes on (``study.optimize(catch=...)``)."""


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
        """The executor's ``should_stop``: read changed checkpoints, report, prune."""
        self.refresh(self.run_ids)
        return self.report(prune=True)


# ------------------------------------------------------------------------------------------------ the search


@dataclass
class LambdaSearch:
    """Runs trials of a spec's λ search through an executor into a store (both owned by the caller).

    ``progress(total, already_done)`` returns the context manager whose ``event`` method receives the executor's
    events for one trial (:class:`suite.progress.SuiteProgress`); None shows nothing.
    """

    spec: Spec
    store: Any
    executor: Any
    study: optuna.Study
    progress: Callable[[int, int], AbstractContextManager[Any]] | None = None
    log: Callable[[str], None] | None = None
    search: SearchSpec = field(init=False)

    def __post_init__(self) -> None:
        self.search = require_search(self.spec)

    def _say(self, text: str) -> None:
        if self.log is not None:
            self.log(text)

    def optimize(self, n_trials: int | None = None, timeout_s: float | None = None) -> int:
        """Run ``n_trials`` more trials (default: what is left of the spec's ``n_trials`` budget, see
        :func:`trials_counted`); ``timeout_s`` stops starting new trials after that many seconds. Returns the number
        of trials asked for. Ctrl-C propagates (as KeyboardInterrupt) after the trial is recorded for retry."""
        todo = max(0, self.search.n_trials - trials_counted(self.study)) if n_trials is None else n_trials
        if todo > 0:
            self.study.optimize(
                self.objective,
                n_trials=todo,
                timeout=timeout_s if timeout_s is not None else self.search.timeout_s,
                catch=(TrialRunsFailedError,),
            )
        return todo

    def objective(self, trial: Trial) -> float:
        """One trial: see the module docstring."""
        point = suggest_point(trial, self.search)
        attrs = _point_attrs(point)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("label", point.describe())
        try:
            runs = trial_runs(self.spec, point)
        except ConfigError as exc:  # each setting was checked alone at load time; this combination is invalid
            raise self._failed(trial, f"the point is not a valid run config: {exc}") from exc
        ids = [r.run_id for r in runs]
        trial.set_user_attr("run_ids", ids)
        trial.set_user_attr("seeds", [r.seed for r in runs])
        try:
            return self._run_trial(trial, point, runs)
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            self.study.enqueue_trial(
                dict(trial.params), user_attrs={**attrs, "retry_of": trial.number, **_enqueued(trial)}
            )
            raise

    def _run_trial(self, trial: Trial, point: TrialPoint, runs: Sequence[PlannedRun]) -> float:
        from suite.execution import Pending, run_plan

        search, store = self.search, self.store
        ids = [r.run_id for r in runs]
        reporter = _EpochReporter(
            trial, ids, search.objective, lambda run_id: self.executor.run_dir(run_id) / CHECKPOINT_NAME
        )
        pruned = False

        def start(pending: Pending) -> bool:
            nonlocal pruned
            trial.set_user_attr("reused", pending.reused)
            self._say(
                f"trial {trial.number}: λ {point.describe()} on seeds {list(search.seeds)}"
                + (f" ({pending.reused} finished run(s) reused)" if pending.reused else "")
            )
            todo_ids = {r.run_id for r in pending.todo}
            done_ids = [run_id for run_id in ids if run_id not in todo_ids]
            reporter.add(_store_values(store, self.spec.name, "val", search.objective, done_ids))
            reporter.refresh(sorted(todo_ids))  # LOST runs of an earlier trial resume with their history
            if pending.todo:
                pruned = reporter.report(prune=True)
            return bool(pending.todo) and not pruned

        pending, summary = run_plan(
            self.spec.name, store, self.executor, runs, start=start, progress=self.progress, should_stop=reporter.poll
        )
        if pending.todo:
            if summary is not None:
                if summary.interrupted:
                    raise KeyboardInterrupt
                pruned = summary.stopped
            if pruned:
                epoch = reporter.pruned_at
                trial.set_user_attr("pruned_at_epoch", epoch)
                self._say(f"trial {trial.number}: pruned after epoch {epoch}")
                raise optuna.TrialPruned(f"pruned after epoch {epoch} (seed mean of validation {search.objective})")
            if summary is not None and summary.failed:
                first = next(iter(summary.failed.values())).splitlines()[0]
                raise self._failed(trial, f"{len(summary.failed)} run(s) failed: {first}")

        reporter.add(_store_values(store, self.spec.name, "val", search.objective, ids))
        reporter.report(prune=False)  # epochs the live reports missed, so that later trials compare with all
        final = _store_values(store, self.spec.name, search.split, search.objective, ids)
        missing = [run_id[:12] for run_id in ids if not final[run_id]]
        if missing:
            raise self._failed(trial, f"run(s) {', '.join(missing)} recorded no {search.split} {search.objective}")
        values = [final[run_id][max(final[run_id])] for run_id in ids]
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        trial.set_user_attr("values", values)
        trial.set_user_attr("std", std)
        trial.set_user_attr("n_seeds", len(values))
        self._say(f"trial {trial.number}: {search.objective} ({search.split}) = {_pm(mean, std, len(values))}")
        return mean

    def _failed(self, trial: Trial, message: str) -> TrialRunsFailedError:
        """Record why the trial failed (it then counts against the budget) and say it."""
        trial.set_user_attr("error", message)
        self._say(f"trial {trial.number}: FAILED: {message} (python -m suite status SPEC --failed shows the traces)")
        return TrialRunsFailedError(f"trial {trial.number}: {message}")


def _enqueued(trial: Trial) -> dict[str, Any]:
    return {"enqueued": True} if trial.user_attrs.get("enqueued") else {}
