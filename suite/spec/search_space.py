"""The ``[search]`` table: the λ-schedule template, its distributions, the searched arm settings and the enqueued
points (consumed by ``suite.search``)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from mlrd_core.errors import ConfigError, MLRDError, ScheduleError
from mlrd_core.metrics import HIGHER_IS_BETTER, METRIC_NAMES
from mlrd_core.weighting import (
    parse_schedule,
)
from suite.spec.records import Arm, Distribution, Group, SearchSpec
from suite.spec.resolution import _find_arm, _find_group, apply_settings
from suite.spec.values import _coerce, _Ctx, _fmt, _jsonable, _near, _show, normalize_weighting_option
from suite.spec.vocabulary import (
    _RUN_TYPES,
    DISTRIBUTION_KEYS,
    DISTRIBUTION_KINDS,
    PRUNERS,
    SAMPLERS,
    SEARCH_KEYS,
    SEARCH_SETTING_KEYS,
    SHORTHANDS,
    SPEC_NAME_RE,
    TABLE_SPLITS,
)


def _load_distribution(ctx: _Ctx, draw: Mapping[str, Any], path: str) -> Distribution:
    ctx.check_keys(draw, DISTRIBUTION_KEYS, path)
    kind = ctx.choice(draw.get("kind", ""), f"{path}.kind", "kind", DISTRIBUTION_KINDS)
    if kind == "categorical":
        extra = [k for k in ("low", "high", "log", "step") if k in draw]
        if extra:
            raise ctx.error(path, f"a categorical parameter takes choices only, got {extra}")
        choices = draw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ctx.error(f"{path}.choices", f"expected a non-empty list, got {_show(choices)}")
        return Distribution(kind=kind, choices=tuple(choices))
    if "choices" in draw:
        raise ctx.error(path, f"a {kind} parameter takes low/high (log, step), not choices")
    if "low" not in draw or "high" not in draw:
        raise ctx.error(path, f"a {kind} parameter needs low and high")
    low: float
    high: float
    if kind == "int":
        low = ctx.integer(draw["low"], f"{path}.low", -(2**62))
        high = ctx.integer(draw["high"], f"{path}.high", -(2**62))
    else:
        low, high = ctx.number(draw["low"], f"{path}.low"), ctx.number(draw["high"], f"{path}.high")
    if not low < high:
        raise ctx.error(path, f"low < high must hold, but got (low={_fmt(low)}, high={_fmt(high)})")
    log = ctx.boolean(draw.get("log", False), f"{path}.log")
    if log and low <= 0:
        raise ctx.error(path, f"log = true needs low > 0, got low={_fmt(low)}")
    step = None
    if "step" in draw:
        step = ctx.number(draw["step"], f"{path}.step")
        if step <= 0 or log:
            raise ctx.error(f"{path}.step", f"step must be > 0 and cannot be combined with log, got {_fmt(step)}")
    return Distribution(kind=kind, low=low, high=high, log=log, step=step)


def _load_search(
    ctx: _Ctx, sraw: Mapping[str, Any], spec_name: str, seeds: tuple[int, ...], groups: Sequence[Group]
) -> SearchSpec:
    path = "search"
    ctx.check_keys(sraw, SEARCH_KEYS, path)
    for key in ("group", "arm", "objective", "schedule"):
        if key not in sraw:
            raise ctx.error(path, f"the search needs {key!r}; keys: {', '.join(SEARCH_KEYS)}")
    group = _find_group(ctx, groups, sraw["group"], f"{path}.group")
    arm = _find_arm(ctx, group, sraw["arm"], f"{path}.arm")
    if arm.config.weighting != "lee-kim":
        raise ctx.error(
            f"{path}.arm", f"the λ search needs a lee-kim arm, but {arm.label!r} uses {arm.config.weighting!r}"
        )
    objective = ctx.string(sraw["objective"], f"{path}.objective")
    if objective not in METRIC_NAMES:
        raise ctx.error(
            f"{path}.objective",
            f"unknown metric {objective!r}{_near(objective, METRIC_NAMES)}; valid: {', '.join(METRIC_NAMES)}",
        )
    split = ctx.choice(sraw.get("split", "val"), f"{path}.split", "split", TABLE_SPLITS)
    timeout = ctx.number(sraw["timeout_s"], f"{path}.timeout_s") if "timeout_s" in sraw else None
    if timeout is not None and timeout <= 0:
        raise ctx.error(f"{path}.timeout_s", f"expected a positive number of seconds, got {_fmt(timeout)}")
    sampler = ctx.choice(sraw.get("sampler", "tpe"), f"{path}.sampler", "sampler", SAMPLERS)
    pruner = ctx.choice(sraw.get("pruner", "median"), f"{path}.pruner", "pruner", PRUNERS)

    template: dict[str, Any] = {}
    for key, value in ctx.table(sraw["schedule"], f"{path}.schedule").items():
        spath = f"{path}.schedule.{key}"
        template[key] = _load_distribution(ctx, value, spath) if isinstance(value, Mapping) else value
    _check_template(ctx, template, f"{path}.schedule")
    settings = _load_search_settings(ctx, ctx.table(sraw.get("settings", {}), f"{path}.settings"), arm, template)
    enqueue: list[Mapping[str, Any]] = []
    if "enqueue" in sraw:
        if not isinstance(sraw["enqueue"], list):
            raise ctx.error(
                f"{path}.enqueue", f"expected a list of λ schedules or points, got {_show(sraw['enqueue'])}"
            )
        for i, value in enumerate(sraw["enqueue"]):
            enqueue.append(_load_search_point(ctx, value, f"{path}.enqueue[{i}]", arm, settings))
    return SearchSpec(
        study=ctx.name(sraw.get("study", spec_name), f"{path}.study", SPEC_NAME_RE, "study name"),
        group=group.name,
        arm=arm.label,
        objective=objective,
        direction="maximize" if HIGHER_IS_BETTER[objective] else "minimize",
        split=split,
        n_trials=ctx.integer(sraw.get("n_trials", 20), f"{path}.n_trials", 1),
        timeout_s=timeout,
        seeds=ctx.seeds(sraw["seeds"], f"{path}.seeds") if "seeds" in sraw else seeds,
        sampler=sampler,
        pruner=pruner,
        enqueue=tuple(enqueue),
        schedule=template,
        settings=settings,
    )


def _search_setting_value(ctx: _Ctx, key: str, value: object, path: str) -> Any:
    try:
        return search_setting_value(key, value)
    except TypeError as exc:
        raise ctx.error(path, f"{key} must be {exc}, got {_show(value)}") from None
    except MLRDError as exc:
        raise ctx.located(exc, path) from exc


def search_setting_value(key: str, value: object) -> Any:
    """A searched setting's value in its canonical form: weighting options normalised (clip ``[0.25, 4]`` →
    ``[0.25, 4.0]``), run-config values coerced to the field's type (an int Optuna sampled for a float field → a
    float; None or ``false`` → None for an optional one). TypeError names the expected type."""
    if key in SHORTHANDS:
        return normalize_weighting_option(key, value)
    return _jsonable(_coerce(False if value is None else value, _RUN_TYPES[key]))


#: The parameter kind of each numeric run-config type (other settings are searched by categorical choices only).
_NUMERIC_KINDS: dict[Any, str] = {int: "int", int | None: "int", float: "float", float | None: "float"}


def _load_search_settings(
    ctx: _Ctx, table: Mapping[str, Any], arm: Arm, template: Mapping[str, Any]
) -> dict[str, Distribution]:
    """``[search.settings]``: a :class:`Distribution` per searched arm setting. Every choice (and both ends of a
    numeric range) must give a valid config of the searched arm."""
    path = "search.settings"
    settings: dict[str, Distribution] = {}
    for key, value in table.items():
        spath = f"{path}.{key}"
        if key == "schedule":
            raise ctx.error(spath, "the schedule is searched through its template, [search.schedule]")
        if key not in SEARCH_SETTING_KEYS:
            raise ctx.error(
                spath,
                f"{key!r} cannot be searched{_near(str(key), SEARCH_SETTING_KEYS)}; searchable: "
                f"{', '.join(SEARCH_SETTING_KEYS)}",
            )
        if isinstance(template.get(key), Distribution):
            raise ctx.error(spath, f"{key!r} is also a parameter of [search.schedule]; Optuna needs distinct names")
        if not isinstance(value, Mapping):
            raise ctx.error(
                spath,
                f"expected a parameter table ({{kind = ...}}), got {_show(value)}; a fixed value belongs on the "
                f"arm ({arm.where})",
            )
        dist = _load_distribution(ctx, value, spath)
        field_kind = None if key in SHORTHANDS else _NUMERIC_KINDS.get(_RUN_TYPES[key])
        if dist.kind != "categorical" and field_kind is None:
            raise ctx.error(spath, f'{key} is not numeric: use {{kind = "categorical", choices = [...]}}')
        if dist.kind == "float" and field_kind == "int":
            raise ctx.error(spath, f'{key} is an integer: use kind = "int" (or "categorical")')
        if dist.kind == "categorical":
            choices = tuple(
                _search_setting_value(ctx, key, choice, f"{spath}.choices[{i}]")
                for i, choice in enumerate(dist.choices)
            )
            dist = dataclasses.replace(dist, choices=choices)
            points: tuple[Any, ...] = choices
        else:
            assert dist.low is not None and dist.high is not None
            points = (dist.low, dist.high) if dist.kind == "float" else (int(dist.low), int(dist.high))
        for i, point in enumerate(points):
            where = f"{spath}.choices[{i}]" if dist.kind == "categorical" else f"{spath}.{('low', 'high')[i]}"
            try:
                apply_settings(arm.config, {key: point}, source=ctx.source, where=where)
            except MLRDError as exc:
                raise ConfigError(f"{exc} (a point of the search space of arm {arm.label!r})") from exc
        settings[key] = dist
    return settings


def _load_search_point(
    ctx: _Ctx, value: object, path: str, arm: Arm, settings: Mapping[str, Distribution]
) -> dict[str, Any]:
    """An ``enqueue`` entry: a schedule (any form), or ``{schedule = ..., <setting> = ...}`` for a search with
    settings; searched settings it leaves out take the arm's value."""
    if isinstance(value, Mapping) and "schedule" in value:
        given = dict(value)
        schedule = given.pop("schedule")
    else:
        given, schedule = {}, value
    try:
        point: dict[str, Any] = {"schedule": parse_schedule(schedule).to_spec()}
    except ScheduleError as exc:
        raise ctx.located(exc, path) from exc
    for key in given:
        if key not in settings:
            raise ctx.error(
                f"{path}.{key}",
                f"{key!r} is not searched (searched settings: {', '.join(settings) or 'none'}); set it on the arm",
            )
    for key in settings:
        if key in given:
            point[key] = _search_setting_value(ctx, key, given[key], f"{path}.{key}")
        else:
            current = arm.config.weighting_options.get(key) if key in SHORTHANDS else getattr(arm.config, key)
            point[key] = _search_setting_value(ctx, key, current, f"{path}.{key}")
    return point


def search_point(
    value: object, arm: Arm, settings: Mapping[str, Distribution], *, source: str = "<search>", path: str = "point"
) -> dict[str, Any]:
    """A point of a search over ``arm`` as an ``enqueue`` entry reads: a schedule (any form), or ``{schedule = ...,
    <setting> = ...}``; the result is ``{"schedule": <canonical table>, <setting>: <canonical value>, ...}`` with
    every setting of ``settings``, those that ``value`` leaves out at the arm's own values. Errors name
    ``source: path``."""
    return _load_search_point(_Ctx(source), value, path, arm, settings)


def _check_template(ctx: _Ctx, template: Mapping[str, Any], path: str) -> None:
    """Every categorical combination, with numeric parameters at their low and at their high end, must be a valid
    λ schedule (catches unknown schedule keys and impossible ranges before a study starts)."""
    if "kind" not in template:
        raise ctx.error(path, 'the schedule template needs kind (e.g. kind = "linear" or a categorical parameter)')
    cats = [k for k, v in template.items() if isinstance(v, Distribution) and v.kind == "categorical"]
    for combo in itertools.product(*(template[k].choices for k in cats)):
        for end in ("low", "high"):
            sample: dict[str, Any] = {}
            for key, value in template.items():
                if not isinstance(value, Distribution):
                    sample[key] = value
                elif value.kind == "categorical":
                    sample[key] = combo[cats.index(key)]
                else:
                    x = value.low if end == "low" else value.high
                    sample[key] = int(x) if value.kind == "int" else x  # type: ignore[arg-type]
            try:
                parse_schedule(sample)
            except ScheduleError as exc:
                raise ScheduleError(f"{ctx.source}: {path}: the template at {sample} is not a schedule: {exc}") from exc
