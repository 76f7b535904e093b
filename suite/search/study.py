"""The Optuna study of a search: sampler, pruner, RDB storage in the results database, the study's identity and
space checks, enqueued points and the trial budget."""

from __future__ import annotations

import hashlib
import inspect
import warnings
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from mlrd_core.errors import ConfigError
from suite.plan import canonical_json
from suite.search.space import (
    TrialPoint,
    _optuna_distribution,
    _show_value,
    as_point,
    params_for_point,
    require_search,
    search_arm,
)
from suite.spec import SHORTHANDS, Distribution, SearchSpec, Spec

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


# ------------------------------------------------------------------------------------------------ study


def make_sampler(name: str, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """``tpe`` (Optuna's TPE with a constant liar: trials still running count as if they had the worst value seen,
    so trials sampled while others run, in this coordinator or another, spread out instead of repeating one point;
    with nothing running it samples as plain TPE) or ``random``."""
    if name == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
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


def record_heartbeat(study: optuna.Study, trial: optuna.trial.BaseTrial) -> None:
    """Beat the trial's Optuna heartbeat (the search beats its running trials every :data:`HEARTBEAT_INTERVAL_S`
    from its coordinating loop, as ``study.optimize`` does from a thread)."""
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    storage = study._storage  # open_study's RDBStorage (Optuna wraps it in a cache that passes heartbeats on)
    if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage):
        storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the trials whose coordinator stopped beating their heartbeat for :data:`GRACE_PERIOD_S` (they are retried,
    up to :data:`MAX_RETRY` times), as ``study.optimize`` does before each trial."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


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
