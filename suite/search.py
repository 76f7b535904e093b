"""The Optuna search over λ-schedule shapes (the spec's ``[search]`` section, docs/search.md).

A **trial** is one λ schedule, sampled from the spec's schedule template (and the searched settings, if any), run
on the search's seeds:

1. the schedule, with the values of the searched settings (``[search.settings]``: ``clip``, ``init``, ``lr``, ...;
   together a :class:`TrialPoint`), becomes one :class:`~suite.plan.PlannedRun` per seed: the searched arm's
   config with the trial's schedule and settings applied like one more spec level, content-hashed like every
   planned run, recorded in the results store under the spec's name, group :data:`SEARCH_GROUP` and the point's
   ``describe()`` text as arm label. A point that was run before (by an earlier trial, or by ``suite run`` of the
   same arm) has the same run ids: its DONE runs are reused, its LOST runs resume from their checkpoints;
2. the runs that are not DONE go through the executor (seeds in parallel on the executor's slots); while they
   train, every epoch that all seeds have validated is reported to Optuna as the seed mean of the objective
   metric on the validation split (``trial.report(mean, epoch)``) and the pruner is asked; a pruned trial stops
   its workers (their runs become LOST, resumable) and ends PRUNED;
3. the objective is the seed mean of the objective metric on the search's split at each run's last epoch, read
   back from the store; the seed standard deviation, the per-seed values and the run ids are trial attributes.

The study lives in the results database itself (Optuna's tables beside the store's), named by ``[search].study``;
the same command loads it and continues. See docs/search.md for the resume rules and optuna-dashboard.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import statistics
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, Trial, TrialState

from mlrd_core.checkpoint import CHECKPOINT_NAME, metric_history
from mlrd_core.config import RunConfig
from mlrd_core.errors import ConfigError, MLRDError
from mlrd_core.weighting import Schedule, parse_schedule
from suite.plan import PlannedRun, canonical_json, describe_weighting, run_id_for
from suite.spec import (
    SHORTHANDS,
    Arm,
    Distribution,
    SearchSpec,
    Spec,
    apply_settings,
    search_point,
    search_setting_value,
)

__all__ = [
    "SEARCH_GROUP",
    "LambdaSearch",
    "TrialPoint",
    "TrialRunsFailedError",
    "as_point",
    "best_trials_table",
    "enqueue_points",
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

#: The store group of every trial run (the arm label is the schedule's ``describe()``).
SEARCH_GROUP = "search"

#: Optuna heartbeats: a RUNNING trial whose coordinator stopped beating for GRACE_PERIOD_S is failed by the next
#: coordinator and retried (same schedule, so its runs resume from their checkpoints), at most MAX_RETRY times.
HEARTBEAT_INTERVAL_S = 30
GRACE_PERIOD_S = 120
MAX_RETRY = 3

#: The study's user attribute that pins what its trials measure (checked when the study is loaded again).
STUDY_ATTR = "mlrd"

#: Seconds SQLite waits for the write lock (the store and Optuna write the same file).
SQLITE_TIMEOUT_S = 30.0

#: MedianPruner settings: compare with at least this many finished trials, never prune on the first epoch.
MEDIAN_STARTUP_TRIALS = 5
MEDIAN_WARMUP_EPOCHS = 1


class TrialRunsFailedError(MLRDError, RuntimeError):
    """A trial's run failed past the retry budget (e.g. a non-finite loss under an extreme λ): the trial FAILs and
    the study goes on (``study.optimize(catch=...)``)."""


# ------------------------------------------------------------------------------------------------ search space


def require_search(spec: Spec) -> SearchSpec:
    """The spec's ``[search]`` section, checked for what a search needs beyond the spec's own validation."""
    search = spec.search
    if search is None:
        raise ConfigError(f"{spec.source}: spec {spec.name!r} has no [search] section (see docs/search.md)")
    if any(group.name == SEARCH_GROUP for group in spec.groups):
        raise ConfigError(
            f"{spec.source}: the search records its trials under group {SEARCH_GROUP!r}; rename the spec's group "
            f"{SEARCH_GROUP!r} so that its tables do not mix with the trials"
        )
    config = search_arm(spec).config
    if config.val_split is None:
        raise ConfigError(
            f"{spec.source}: search.arm {search.arm!r} has val_split = false; the search reports per-epoch "
            "validation metrics (for pruning) and needs a validation split"
        )
    if search.split == "test" and config.test_split is None:
        raise ConfigError(f"{spec.source}: search.split = 'test' but arm {search.arm!r} has test_split = false")
    return search


def search_arm(spec: Spec) -> Arm:
    """The arm ``(search.group, search.arm)`` whose schedule each trial replaces."""
    assert spec.search is not None
    return next(
        arm
        for group in spec.groups
        if group.name == spec.search.group
        for arm in group.arms
        if arm.label == spec.search.arm
    )


@dataclass(frozen=True)
class TrialPoint:
    """One point of a search space: a λ schedule and the values of the searched settings (``[search.settings]``,
    canonical forms, in the spec's order). A search without settings has points that are just schedules."""

    schedule: Schedule
    settings: Mapping[str, Any] = field(default_factory=dict)

    def to_spec(self) -> dict[str, Any]:
        """``{"schedule": <canonical table>, <setting>: <value>, ...}`` (the ``enqueue`` and user-attribute form)."""
        return {"schedule": self.schedule.to_spec(), **self.settings}

    def describe(self) -> str:
        """The schedule's text, then each setting: ``3 → -3 @ 6, clip [0.5, 2.0], lr 0.001`` (the store's arm
        label of the point's runs)."""
        return ", ".join([self.schedule.describe(), *(f"{k} {_show_value(v)}" for k, v in self.settings.items())])


def _show_value(value: Any) -> str:
    if value is None:  # an optional setting switched off (``grad_clip = false`` in a spec)
        return "none"
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)  # distinct values, distinct labels
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _optuna_choice(value: Any) -> Any:
    """A categorical choice as Optuna stores it: None, bool, int, float and str as they are, lists and tables
    (``clip = [0.5, 2.0]``, a piecewise ``values`` list) as their JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def _same(a: Any, b: Any) -> bool:
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def _param_value(dist: Distribution, param: Any, name: str = "parameter") -> Any:
    """The value of Optuna parameter ``name`` (a categorical choice from its stored form)."""
    if dist.kind != "categorical":
        return param
    for choice in dist.choices:
        if _same(_optuna_choice(choice), param):
            return choice
    raise ConfigError(f"search: {name} = {param!r} is not one of the choices {list(dist.choices)}")


def _suggest(trial: Trial, name: str, dist: Distribution) -> Any:
    """Sample parameter ``name`` (Optuna's stored form) from its :func:`_optuna_distribution`."""
    optuna_dist = _optuna_distribution(dist, name)
    if isinstance(optuna_dist, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, optuna_dist.choices)
    if isinstance(optuna_dist, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, optuna_dist.low, optuna_dist.high, step=optuna_dist.step, log=optuna_dist.log)
    assert isinstance(optuna_dist, optuna.distributions.FloatDistribution)
    return trial.suggest_float(name, optuna_dist.low, optuna_dist.high, step=optuna_dist.step, log=optuna_dist.log)


def schedule_from_params(template: Mapping[str, Any], params: Mapping[str, Any]) -> Schedule:
    """The schedule at a point of the search space: the template's literals plus ``params`` (Optuna's parameters)
    for its parameters."""
    table = {
        key: _param_value(value, params[key], key) if isinstance(value, Distribution) else value
        for key, value in template.items()
    }
    return parse_schedule(table)


def suggest_schedule(trial: Trial, template: Mapping[str, Any]) -> Schedule:
    """Sample (or, for an enqueued trial, take the fixed) value of every template parameter, in template order."""
    params = {key: _suggest(trial, key, value) for key, value in template.items() if isinstance(value, Distribution)}
    return schedule_from_params(template, params)


def point_from_params(search: SearchSpec, params: Mapping[str, Any]) -> TrialPoint:
    """The point of ``search``'s space at Optuna's ``params`` (schedule parameters and settings)."""
    schedule = schedule_from_params(search.schedule, params)
    values = {key: _param_value(dist, params[key], key) for key, dist in search.settings.items()}
    return TrialPoint(schedule, _canonical_settings(values))


def _canonical_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """Settings in the canonical form of the spec loader (an int sampled for a float field becomes a float, a clip
    pair of ints a pair of floats), so that equal points compare and hash alike."""
    out = {}
    for key, value in values.items():
        try:
            out[key] = search_setting_value(key, value)
        except TypeError as exc:
            raise ConfigError(f"search: {key} must be {exc}, got {value!r}") from None
    return out


def suggest_point(trial: Trial, search: SearchSpec) -> TrialPoint:
    """Sample the schedule template's parameters, then the settings (in spec order)."""
    params = {k: _suggest(trial, k, v) for k, v in search.schedule.items() if isinstance(v, Distribution)}
    params.update({key: _suggest(trial, key, dist) for key, dist in search.settings.items()})
    return point_from_params(search, params)


def _contains(dist: Distribution, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` is a point of ``dist`` (with the value as Optuna stores it)."""
    if dist.kind == "categorical":
        for choice in dist.choices:
            if _same(choice, value):
                return True, _optuna_choice(choice)
        return False, value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False, value
    assert dist.low is not None and dist.high is not None
    if dist.kind == "int" and value != int(value):
        return False, value
    x = int(value) if dist.kind == "int" else float(value)
    if not dist.low <= x <= dist.high:
        return False, x
    if dist.step is not None:
        k = (x - dist.low) / dist.step
        if abs(k - round(k)) > 1e-8:
            return False, x
    return True, x


def params_for_schedule(template: Mapping[str, Any], schedule: object) -> dict[str, Any]:
    """The parameters of ``template`` that give ``schedule`` (for ``enqueue``); a ConfigError when the schedule is
    not a point of the search space (a literal differs, a value is out of range or off the step grid)."""
    target = parse_schedule(schedule)
    form = target.to_spec()
    params: dict[str, Any] = {}
    for key, dist in template.items():
        if not isinstance(dist, Distribution):
            continue
        ok, value = _contains(dist, form.get(key))
        if not ok:
            raise ConfigError(
                f"schedule {target.describe()!r} is not in the search space: {key} = "
                f"{form.get(key)!r} is outside {_show_distribution(dist)}"
            )
        params[key] = value
    if schedule_from_params(template, params).to_spec() != form:
        literals = {k: v for k, v in template.items() if not isinstance(v, Distribution)}
        raise ConfigError(
            f"schedule {target.describe()!r} ({form}) is not in the search space: the template fixes {literals}"
        )
    return params


def params_for_point(search: SearchSpec, point: TrialPoint) -> dict[str, Any]:
    """Optuna's parameters for ``point`` (schedule and settings); a ConfigError naming the key that is outside the
    search space."""
    params = params_for_schedule(search.schedule, point.schedule)
    for key, dist in search.settings.items():
        ok, value = _contains(dist, point.settings.get(key))
        if not ok:
            raise ConfigError(
                f"point {point.describe()!r} is not in the search space: {key} = "
                f"{point.settings.get(key)!r} is outside {_show_distribution(dist)}"
            )
        params[key] = value
    return params


def _show_distribution(dist: Distribution) -> str:
    if dist.kind == "categorical":
        return f"choices [{', '.join('false' if c is None else json.dumps(c) for c in dist.choices)}]"
    extra = " (log)" if dist.log else f" step {dist.step:g}" if dist.step is not None else ""
    return f"{dist.kind} [{dist.low:g}, {dist.high:g}]{extra}"


# ------------------------------------------------------------------------------------------------ runs


def as_point(spec: Spec, value: object) -> TrialPoint:
    """A :class:`TrialPoint` as it is; ``{"schedule": ..., <setting>: ...}``; or a bare schedule. Searched settings
    that ``value`` leaves out take the searched arm's own values."""
    if isinstance(value, TrialPoint):
        return value
    search = require_search(spec)
    form = search_point(value, search_arm(spec), search.settings, source=spec.source)
    return TrialPoint(parse_schedule(form["schedule"]), {key: form[key] for key in search.settings})


def trial_config(base: RunConfig, point: object) -> RunConfig:
    """``base`` with the point's schedule and settings (a bare schedule: only the schedule) applied, resolved like
    a spec level (so a trial of the arm's own values is the arm's run, with the same id)."""
    if not isinstance(point, TrialPoint):
        point = TrialPoint(parse_schedule(point))
    return apply_settings(base, {"schedule": point.schedule.to_spec(), **point.settings}, where="search trial")


def trial_runs(spec: Spec, point: object) -> list[PlannedRun]:
    """One planned run per search seed for ``point`` (see :func:`as_point`): spec = the spec's name, group
    :data:`SEARCH_GROUP`, arm = the point's ``describe()``."""
    from mlrd_core.losses import select

    search = require_search(spec)
    target = as_point(spec, point)
    config = trial_config(search_arm(spec).config, target)
    init, rebalance, lam = describe_weighting(config)
    n_losses = len(select(config.losses))
    return [
        PlannedRun(
            run_id=run_id_for(config, seed),
            spec=spec.name,
            group=SEARCH_GROUP,
            arm=target.describe(),
            seed=seed,
            config=config,
            n_losses=n_losses,
            weighting=config.weighting,
            init=init,
            rebalance=rebalance,
            lam=lam,
        )
        for seed in search.seeds
    ]


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


# ------------------------------------------------------------------------------------------------ study


def make_sampler(name: str, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """``tpe`` (Optuna's default TPE) or ``random``."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"unknown sampler {name!r} (tpe, random)")


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """``median`` (:data:`MEDIAN_STARTUP_TRIALS` finished trials first, never on the first epoch) or ``none``."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=MEDIAN_WARMUP_EPOCHS)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r} (median, none)")


def _storage(url: str) -> optuna.storages.RDBStorage:
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        retry: Any
        try:
            from optuna.storages import RetryHeartbeatStaleTrialCallback

            retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        except ImportError:  # optuna < 4.x names it RetryFailedTrialCallback
            from optuna.storages import RetryFailedTrialCallback

            retry = RetryFailedTrialCallback(max_retry=MAX_RETRY)
        params = inspect.signature(optuna.storages.RDBStorage).parameters
        callback = (
            "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params else "failed_trial_callback"
        )
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_INTERVAL_S,
            grace_period=GRACE_PERIOD_S,
            **{callback: retry},
        )


def _identity(spec: Spec, search: SearchSpec) -> dict[str, Any]:
    """What every trial of a study must share: the objective and the searched arm's config without what is searched
    (the schedule and ``[search.settings]``)."""
    base = search_arm(spec).config.to_dict()
    searched = {"schedule", *search.settings}
    base["weighting_options"] = {k: v for k, v in base["weighting_options"].items() if k not in searched}
    for key in searched - set(SHORTHANDS):
        base.pop(key, None)
    return {
        "spec": spec.name,
        "objective": search.objective,
        "split": search.split,
        "direction": search.direction,
        "seeds": list(search.seeds),
        "base_config": base,
    }


def _sampler_seed(study_name: str, n_trials: int) -> int:
    """Deterministic for a given study state, different on every resume (a fixed seed would repeat the first
    invocation's random suggestions after a restart)."""
    digest = hashlib.sha256(f"{study_name}:{n_trials}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31)


def open_study(
    spec: Spec,
    url: str,
    *,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create or load the spec's study in the database at ``url`` (the results store's URL).

    A loaded study must measure the same thing (objective, split, seeds, the arm's config apart from its schedule);
    otherwise a ConfigError names the differences and asks for another study name (``--set search.study=NAME``).
    """
    search = require_search(spec)
    storage = _storage(url)
    study = optuna.create_study(
        study_name=search.study,
        storage=storage,
        sampler=sampler,
        pruner=pruner if pruner is not None else make_pruner(search.pruner),
        direction=StudyDirection.MAXIMIZE if search.direction == "maximize" else StudyDirection.MINIMIZE,
        load_if_exists=True,
    )
    if sampler is None:
        study.sampler = make_sampler(search.sampler, _sampler_seed(search.study, len(study.trials)))
    identity = _identity(spec, search)
    stored = study.user_attrs.get(STUDY_ATTR)
    if stored is None:
        study.set_user_attr(STUDY_ATTR, identity)
    elif stored != identity:
        raise ConfigError(
            f"study {search.study!r} in {url} was started for another experiment ({_identity_diff(stored, identity)}); "
            "its trials would not be comparable: name a new study with --set search.study=NAME"
        )
    _check_space(study, search, url)
    return study


def _identity_diff(stored: Mapping[str, Any], identity: Mapping[str, Any]) -> str:
    """What differs between two study identities, in words (settings searched now but fixed in the study's trials
    are named as such)."""
    diffs = [k for k in identity if k != "base_config" and stored.get(k) != identity[k]]
    old_base, new_base = dict(stored.get("base_config", {})), dict(identity["base_config"])
    old_options = old_base.pop("weighting_options", {}) or {}
    new_options = new_base.pop("weighting_options", {}) or {}
    newly: list[str] = []
    for prefix, old, new in (("config.", old_base, new_base), ("config.weighting_options.", old_options, new_options)):
        for key in sorted(set(old) | set(new)):
            if old.get(key) == new.get(key):
                continue
            if key in old and key not in new:
                newly.append(f"{key} (fixed at {_show_value(old[key])} in its trials)")
            else:
                diffs.append(prefix + key)
    parts = [f"differs in: {', '.join(diffs)}"] if diffs else []
    if newly:
        parts.append(f"the spec now searches {', '.join(newly)}")
    return "; ".join(parts)


def _optuna_distribution(dist: Distribution, name: str) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution parameter ``name`` is suggested with (:func:`_suggest`) and checked against
    (:func:`_check_space`)."""
    if dist.kind == "categorical":
        return optuna.distributions.CategoricalDistribution([_optuna_choice(c) for c in dist.choices])
    assert dist.low is not None and dist.high is not None
    if dist.kind == "int":
        step = 1 if dist.step is None else int(dist.step)
        if dist.step is not None and step != dist.step:
            raise ConfigError(f"search: {name}: an int parameter needs an integer step, got {dist.step}")
        return optuna.distributions.IntDistribution(int(dist.low), int(dist.high), log=dist.log, step=step)
    return optuna.distributions.FloatDistribution(dist.low, dist.high, log=dist.log, step=dist.step)


def _check_space(study: optuna.Study, search: SearchSpec, url: str) -> None:
    """The spec's parameters must be compatible with those of the study's trials (Optuna refuses, mid-trial, a
    parameter whose kind, log scale or categorical choices changed): a ConfigError naming the parameter instead."""
    ours = {k: _optuna_distribution(v, k) for k, v in search.schedule.items() if isinstance(v, Distribution)}
    ours.update({key: _optuna_distribution(dist, key) for key, dist in search.settings.items()})
    checked: set[str] = set()
    for trial in study.get_trials(deepcopy=False):
        for name, old in trial.distributions.items():
            if name in checked or name not in ours:
                continue
            checked.add(name)
            try:
                optuna.distributions.check_distribution_compatibility(old, ours[name])
            except ValueError as exc:
                raise ConfigError(
                    f"study {search.study!r} in {url}: parameter {name!r} of the spec ({ours[name]}) cannot continue "
                    f"the study's ({old}): {exc}; keep the study's choices, or name a new study with "
                    "--set search.study=NAME"
                ) from exc


def _trial_point(trial: FrozenTrial) -> dict[str, Any] | None:
    """The point form of a trial (its ``schedule`` and ``settings`` user attributes), None before it has one."""
    schedule = trial.user_attrs.get("schedule")
    return None if schedule is None else {"schedule": schedule, **trial.user_attrs.get("settings", {})}


def _point_attrs(point: TrialPoint) -> dict[str, Any]:
    return {"schedule": point.schedule.to_spec(), "settings": dict(point.settings)}


def enqueue_points(study: optuna.Study, spec: Spec) -> list[TrialPoint]:
    """Enqueue the spec's ``enqueue`` points (the paper's schedule first) unless the study already has a trial of
    that point that finished, runs, waits, or failed on its own (interrupted trials are re-enqueued as they stop).
    A point outside the search space is a ConfigError before anything is enqueued."""
    search = require_search(spec)
    points = [as_point(spec, value) for value in search.enqueue]
    params = []
    for i, point in enumerate(points):
        try:
            params.append(params_for_point(search, point))
        except ConfigError as exc:
            hint = (
                "; settings an entry leaves out take the arm's own values: give them in the entry "
                "({schedule = ..., <setting> = ...}) or widen the search space"
                if search.settings
                else ""
            )
            raise ConfigError(f"{spec.source}: search.enqueue[{i}]: {exc}{hint}") from exc
    keep = {TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING}
    known = [
        canonical_json(_trial_point(t))
        for t in study.get_trials(deepcopy=False)
        if _trial_point(t) is not None and (t.state in keep or "error" in t.user_attrs)
    ]
    added = []
    for point, fixed in zip(points, params, strict=True):
        key = canonical_json(point.to_spec())
        if key in known:
            continue
        study.enqueue_trial(fixed, user_attrs={**_point_attrs(point), "enqueued": True})
        known.append(key)
        added.append(point)
    return added


def trials_counted(study: optuna.Study) -> int:
    """Trials that use up the spec's ``n_trials`` budget: complete, pruned, or failed on their own (a run failed);
    trials stopped by Ctrl-C or by a dead coordinator are retried and do not count."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and "error" in t.user_attrs)
    )


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


def _pm(mean: float, std: float | None, n: int) -> str:
    return f"{mean:.4g} ± {std:.2g}" if std is not None and n > 1 else f"{mean:.4g}"


# ------------------------------------------------------------------------------------------------ report


def _order(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials best first, then pruned ones by their last report, then the rest by number."""
    sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
    trials = study.get_trials(deepcopy=False)

    def last(t: FrozenTrial) -> float:
        return t.intermediate_values[t.last_step] if t.last_step is not None else math.inf

    complete = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: (sign * float(t.value or 0), t.number)
    )
    pruned = sorted((t for t in trials if t.state == TrialState.PRUNED), key=lambda t: (sign * last(t), t.number))
    rest = [t for t in trials if t.state not in (TrialState.COMPLETE, TrialState.PRUNED)]
    return complete + pruned + rest


def best_trials_table(study: optuna.Study, spec: Spec, top: int = 10) -> Any:
    """A rich table of the ``top`` best trials: complete ones by value, then pruned ones, then the rest."""
    from rich.table import Table

    search = require_search(spec)
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(1 for t in trials if t.state == state) for state in TrialState}
    caption = ", ".join(f"{n} {state.name.lower()}" for state, n in counts.items() if n)
    table = Table(
        title=f"study {search.study!r}: {search.direction} {search.objective} ({search.split}), seed mean ± std",
        caption=f"{len(trials)} trial(s): {caption}" if trials else "no trials yet",
    )
    for name, justify in (
        ("#", "right"),
        (", ".join(["λ schedule", *search.settings]), "left"),
        (f"{search.objective} ({search.split})", "right"),
        ("seeds", "right"),
        ("state", "left"),
        ("reused", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for t in _order(study)[:top]:
        point = _trial_point(t)
        label = str(t.user_attrs.get("label") or (as_point(spec, point).describe() if point else t.params))
        if t.user_attrs.get("enqueued"):
            label += " (enqueued)"
        n = len(t.user_attrs.get("seeds", []))
        if t.state == TrialState.COMPLETE and t.value is not None:
            value = _pm(t.value, t.user_attrs.get("std"), int(t.user_attrs.get("n_seeds", n)))
        elif t.last_step is not None:
            value = f"{t.intermediate_values[t.last_step]:.4g} @ epoch {t.last_step} (val)"
        else:
            value = "–"
        state = t.state.name.lower()
        if t.state == TrialState.FAIL:
            state += " (interrupted)" if t.user_attrs.get("interrupted") else ""
        reused = t.user_attrs.get("reused")
        table.add_row(str(t.number), label, value, str(n or "–"), state, f"{reused}/{n}" if reused is not None else "–")
    return table


def log_to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
