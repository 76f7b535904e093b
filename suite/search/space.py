"""The search space of a spec's ``[search]``: trial points (a λ schedule and the searched settings), their Optuna
parameters both ways, and the planned runs of a point."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import Trial

from mlrd_core.config import RunConfig
from mlrd_core.errors import ConfigError
from mlrd_core.weighting import Schedule, parse_schedule
from suite.plan import PlannedRun, describe_weighting, run_id_for
from suite.spec import Arm, Distribution, SearchSpec, Spec, apply_settings, search_point, search_setting_value

#: The store group of every trial run (the arm label is the schedule's ``describe()``).
SEARCH_GROUP = "search"


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
