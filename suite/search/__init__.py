"""The Optuna search over λ-schedule shapes (the spec's ``[search]`` section, docs/search.md).

A **trial** is one λ schedule, sampled from the spec's schedule template (and the searched settings, if any), run
on the search's seeds:

1. the schedule, with the values of the searched settings (``[search.settings]``: ``clip``, ``init``, ``lr``, ...;
   together a :class:`TrialPoint`), becomes one :class:`~suite.plan.PlannedRun` per seed: the searched arm's
   config with the trial's schedule and settings applied like one more spec level, content-hashed like every
   planned run, recorded in the results store under the spec's name, group :data:`SEARCH_GROUP` and the point's
   ``describe()`` text as arm label. A point that was run before (by an earlier trial, or by ``suite run`` of the
   same arm) has the same run ids: its DONE runs are reused, its LOST runs resume from their checkpoints;
2. the runs that are not DONE go through the executor (seeds in parallel on the executor's slots; up to K trials at
   once share the slots, ``LambdaSearch(parallel=K)``, ``search --parallel K``); while they
   train, every epoch that all seeds have validated is reported to Optuna as the seed mean of the objective
   metric on the validation split (``trial.report(mean, epoch)``) and the pruner is asked; a pruned trial stops
   its workers (their runs become LOST, resumable) and ends PRUNED;
3. the objective is the seed mean of the objective metric on the search's split at each run's last epoch, read
   back from the store; the seed standard deviation, the per-seed values and the run ids are trial attributes.

The study lives in the results database itself (Optuna's tables beside the store's), named by ``[search].study``;
the same command loads it and continues. See docs/search.md for the resume rules and optuna-dashboard.

Modules: :mod:`~suite.search.space` (points, parameters, the runs of a point), :mod:`~suite.search.study` (sampler,
pruner, storage, enqueued points, budget), :mod:`~suite.search.runner` (:class:`LambdaSearch`: trials through
:func:`suite.execution.run_plan`, epoch reports, pruning), :mod:`~suite.search.rendering` (the best-trials table).
"""

from __future__ import annotations

from suite.search.rendering import best_trials_table, log_to_stderr
from suite.search.runner import LambdaSearch
from suite.search.space import (
    SEARCH_GROUP,
    TrialPoint,
    as_point,
    params_for_point,
    params_for_schedule,
    point_from_params,
    require_search,
    schedule_from_params,
    search_arm,
    suggest_point,
    suggest_schedule,
    trial_config,
    trial_runs,
)
from suite.search.study import enqueue_points, make_pruner, make_sampler, open_study, trials_counted

__all__ = [
    "SEARCH_GROUP",
    "LambdaSearch",
    "TrialPoint",
    "as_point",
    "best_trials_table",
    "enqueue_points",
    "log_to_stderr",
    "make_pruner",
    "make_sampler",
    "open_study",
    "params_for_point",
    "params_for_schedule",
    "point_from_params",
    "require_search",
    "schedule_from_params",
    "search_arm",
    "suggest_point",
    "suggest_schedule",
    "trial_config",
    "trial_runs",
    "trials_counted",
]
