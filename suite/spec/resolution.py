"""Resolution: levels of settings (defaults, group, arm, overrides) merged into one validated RunConfig per arm,
arm grids, and groups and arms found by name."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mlrd_core.config import RunConfig
from mlrd_core.errors import ConfigError, ExpressionError, MLRDError, ScheduleError, WeightingOptionError
from mlrd_core.weighting import (
    WEIGHTINGS,
    WeightingOptions,
    make_weighting,
    options_class,
)
from suite.spec.records import Arm, Group
from suite.spec.validation import _check_before_training, _check_protocol, _mixture_value
from suite.spec.values import (
    _canonical_weighting,
    _coerce,
    _Ctx,
    _deep_merge,
    _fmt,
    _input_multiple,
    _Level,
    _level,
    _near,
    _selection,
    _show,
)
from suite.spec.vocabulary import _RUN_DEFAULTS, _RUN_TYPES, MAPPING_KEYS, MIXTURE_KEYS, SEQUENCE_KEYS, SHORTHANDS


def _resolve_mixture(
    ctx: _Ctx,
    found: Mapping[str, tuple[Any, str]],
    dataset_options: Mapping[str, Any],
    options_path: str | None,
    where: str,
) -> dict[str, Any]:
    """The resolved data keys of an arm (``dataset``, and for a mixture ``dataset_weights`` / ``eval_dataset``),
    checked together with their key paths: every name known; a mixture of at least two distinct datasets that
    names its ``eval_dataset``; weights one per dataset; ``dataset_options`` keyed by the mixture's datasets. A
    one-dataset config gets no mixture keys, so its canonical JSON (and run id) is what it was before mixtures."""
    value, path = found.get("dataset", (_RUN_DEFAULTS["dataset"], where))
    dataset = _mixture_value(ctx, "dataset", value, path)
    out: dict[str, Any] = {}
    if isinstance(dataset, str):
        for key in ("dataset_weights", "eval_dataset"):
            if key in found and not (key == "eval_dataset" and found[key][0] == dataset):
                raise ctx.error(
                    found[key][1],
                    f'{key} is for a mixture (dataset = ["a", "b", ...]); this arm trains on one dataset, '
                    f"{dataset!r} (set at {path})",
                )
        return {"dataset": dataset}
    if len(dataset) < 2:
        raise ctx.error(
            path,
            f"a mixture needs at least two datasets, got {dataset}; for one write dataset = {dataset[0]!r}"
            if dataset
            else "dataset = [] names no dataset",
        )
    repeated = sorted({n for n in dataset if dataset.count(n) > 1})
    if repeated:
        raise ctx.error(path, f"a mixture names each dataset once; repeated: {', '.join(repeated)}")
    if "eval_dataset" not in found:
        raise ctx.error(
            path,
            f"a mixture ({' + '.join(dataset)}) needs eval_dataset: the dataset whose val/test splits evaluate the "
            f"runs (the test split of that dataset alone, under the run's protocol), e.g. eval_dataset = "
            f"{dataset[0]!r}",
        )
    eval_value, eval_path = found["eval_dataset"]
    eval_dataset = _mixture_value(ctx, "eval_dataset", eval_value, eval_path)
    out = {"dataset": tuple(dataset), "eval_dataset": eval_dataset}
    if "dataset_weights" in found:
        wvalue, wpath = found["dataset_weights"]
        weights = _mixture_value(ctx, "dataset_weights", wvalue, wpath)
        if isinstance(weights, list):
            if len(weights) != len(dataset):
                raise ctx.error(
                    wpath,
                    f"{len(weights)} weights for the {len(dataset)} datasets of the mixture ({', '.join(dataset)}, set "
                    f"at {path}); give one weight per dataset, in its order, or a table {{dataset = weight}}",
                )
            weights = dict(zip(dataset, weights, strict=True))
        extra = [n for n in weights if n not in dataset]
        missing = [n for n in dataset if n not in weights]
        if extra or missing:
            parts = ([f"{', '.join(extra)} not in the mixture"] if extra else []) + (
                [f"no weight for {', '.join(missing)}"] if missing else []
            )
            raise ctx.error(
                wpath,
                f"dataset_weights must weigh each dataset of the mixture ({', '.join(dataset)}): {'; '.join(parts)}",
            )
        out["dataset_weights"] = {n: weights[n] for n in dataset}
    from mlrd_core.data import list_datasets

    named = list(dict.fromkeys([*dataset, eval_dataset]))
    kept: dict[str, Any] = {}
    for key, table in dataset_options.items():
        opath = f"{options_path or 'dataset_options'}.{key}"
        if key not in list_datasets():
            raise ctx.error(
                opath,
                f"a mixture's dataset_options hold one table per dataset ({', '.join(named)}); {key!r} is no "
                f"dataset{_near(str(key), named)} (for a dataset's option write dataset_options.<dataset>.{key})",
            )
        if not isinstance(table, Mapping):
            raise ctx.error(opath, f"the options of dataset {key!r} must be a table, got {_show(table)}")
        if key in named:  # tables of datasets this arm does not read (shared defaults) stay out of its run id
            kept[key] = table
    out["dataset_options"] = kept
    return out


def _resolve(ctx: _Ctx, levels: Sequence[_Level], where: str) -> RunConfig:
    """Merge levels (outer to inner: defaults, group, arm, overrides) into a validated RunConfig.

    Plain keys: the innermost level wins. dataset_options: merged recursively. Weighting options (the table and
    the shorthands): merged key by key while the weighting method stays the same; a level that switches the
    method drops the options inherited from outer levels.
    """
    values: dict[str, Any] = {}
    paths: dict[str, str] = {}
    dataset_options: dict[str, Any] = {}
    mixture: dict[str, tuple[Any, str]] = {}
    weighting, weighting_path = _RUN_DEFAULTS["weighting"], "RunConfig default"
    options: dict[str, tuple[Any, str]] = {}
    for level in levels:
        if "weighting" in level:
            value, path = level["weighting"]
            if not isinstance(value, str):
                raise ctx.error(path, f"weighting must be a string, got {_show(value)}; valid: {', '.join(WEIGHTINGS)}")
            try:
                name = _canonical_weighting(value)
            except MLRDError as exc:
                raise ctx.error(path, str(exc)) from exc
            if name != weighting:
                options = {}
            weighting, weighting_path = name, path
        here: dict[str, tuple[Any, str]] = {}
        if "weighting_options" in level:
            value, path = level["weighting_options"]
            here = _level(ctx.table(value, path), path)
        for key in SHORTHANDS:
            if key in level:
                value, path = level[key]
                if key in here:
                    raise ctx.error(
                        path,
                        f"{key!r} is given both as a shorthand and in weighting_options ({here[key][1]}); keep one",
                    )
                here[key] = (value, path)
        options.update(here)
        if "dataset_options" in level:
            value, path = level["dataset_options"]
            dataset_options = _deep_merge(dataset_options, ctx.table(value, path))
            paths["dataset_options"] = path
        for key, (value, path) in level.items():
            if key in MIXTURE_KEYS:
                mixture[key] = (value, path)
                paths[key] = path
                continue
            if key in SHORTHANDS or key in MAPPING_KEYS or key == "weighting":
                continue
            try:
                values[key] = _coerce(value, _RUN_TYPES[key])
            except TypeError as exc:
                grid = "; lists expand as a grid only in [[groups.arms]]" if isinstance(value, list) else ""
                raise ctx.error(path, f"{key} must be {exc}, got {_show(value)}{grid}") from None
            paths[key] = path

    losses = values.get("losses", _RUN_DEFAULTS["losses"])
    try:
        names = _selection(losses)
    except ExpressionError as exc:
        raise ctx.located(exc, paths.get("losses", where)) from exc

    resolved_options = _resolve_weighting(ctx, weighting, weighting_path, options, names, where)

    encoder = values.get("encoder", _RUN_DEFAULTS["encoder"])
    try:
        multiple = _input_multiple(encoder)
    except MLRDError as exc:
        raise ctx.error(paths.get("encoder", where), str(exc)) from exc
    size = values.get("input_size", tuple(_RUN_DEFAULTS["input_size"]))
    if any(s % multiple for s in size):
        raise ctx.error(
            paths.get("input_size", where),
            f"input_size {list(size)} must be multiples of {multiple} (the deepest reduction of {encoder!r}) so that "
            "the prediction has the input's size",
        )
    _check_protocol(ctx, values.get("protocol", _RUN_DEFAULTS["protocol"]), paths.get("protocol", where))

    data = {**values, "weighting": weighting, "weighting_options": resolved_options}
    data["dataset_options"] = dataset_options
    data.update(_resolve_mixture(ctx, mixture, dataset_options, paths.get("dataset_options"), where))
    try:
        config = RunConfig.from_dict(data, where=f"{ctx.source}: {where}")
    except ConfigError as exc:
        match = re.search(r"invalid run config: (\w+)", str(exc))
        origin = f" (set at {paths[match.group(1)]})" if match and match.group(1) in paths else ""
        raise ConfigError(f"{ctx.source}: {where}: {exc}{origin}") from exc
    _check_before_training(ctx, config, levels, paths, where)
    return config


def _resolve_weighting(
    ctx: _Ctx,
    weighting: str,
    weighting_path: str,
    options: Mapping[str, tuple[Any, str]],
    names: tuple[str, ...],
    where: str,
) -> WeightingOptions:
    """The method's typed options record (defaults filled, values parsed once), built on the losses once to check
    what depends on them; errors name the key path of the bad option."""
    cls = options_class(weighting)
    valid = list(cls.keys_with_defaults())
    for key, (_, path) in options.items():
        if key not in valid:
            shown = ", ".join(valid) or "(none)"
            raise ctx.error(
                path,
                f"unknown option {key!r} for weighting {weighting!r} (set at {weighting_path})"
                f"{_near(key, valid)}; valid options: {shown}",
            )
    try:
        record = cls.from_spec({key: value for key, (value, _) in options.items()})
    except WeightingOptionError as exc:
        value, path = options.get(exc.key, (None, where))
        cause = exc.__cause__
        if isinstance(cause, ScheduleError):
            raise ctx.located(cause, path) from exc
        if isinstance(cause, TypeError):
            raise ctx.error(path, f"{exc.key} must be {cause}, got {_show(value)}") from None
        raise ctx.error(path, str(cause or exc)) from exc
    try:
        make_weighting(weighting, names, record)
    except MLRDError as exc:
        raise ctx.error(where, f"weighting {weighting!r}: {exc}") from exc
    return record


def _is_grid(key: str, value: object) -> bool:
    if not isinstance(value, list):
        return False
    if key in SEQUENCE_KEYS:
        return any(isinstance(v, list) for v in value)
    return True


def _expand_arm(ctx: _Ctx, arm: Mapping[str, Any], path: str) -> list[tuple[_Level, list[str]]]:
    """Grid points of an arm: (level, varying keys) in row-major order of the list-valued keys."""
    settings = {k: v for k, v in arm.items() if k != "label"}
    grid = [k for k, v in settings.items() if _is_grid(k, v)]
    for key in grid:
        if not settings[key]:
            raise ctx.error(f"{path}.{key}", "an empty list expands to no arms")
    base = _level(settings, path)
    points: list[tuple[_Level, list[str]]] = []
    for combo in itertools.product(*(list(enumerate(settings[k])) for k in grid)):
        level = dict(base)
        for key, (i, value) in zip(grid, combo, strict=True):
            level[key] = (value, f"{path}.{key}[{i}]")
        points.append((level, grid))
    return points


def _derive_label(label: str | None, level: _Level, grid: Sequence[str]) -> str:
    def part(key: str) -> str:
        value = level[key][0]
        return value if key == "losses" and isinstance(value, str) else f"{key}={_fmt(value)}"

    if label is not None:
        return f"{label} [{', '.join(part(k) for k in grid)}]" if grid else label
    parts = [part(k) for k in level]
    return ", ".join(parts) if parts else "(defaults)"


def _settings_of(level: _Level) -> dict[str, Any]:
    return {k: v for k, (v, _) in level.items()}


def _find_group(ctx: _Ctx, groups: Sequence[Group], name: object, path: str) -> Group:
    text = ctx.string(name, path)
    names = [g.name for g in groups]
    for group in groups:
        if group.name == text:
            return group
    raise ctx.error(path, f"unknown group {text!r}{_near(text, names)}; groups: {', '.join(names)}")


def _find_arm(ctx: _Ctx, group: Group, label: object, path: str) -> Arm:
    text = ctx.string(label, path)
    labels = [a.label for a in group.arms]
    for arm in group.arms:
        if arm.label == text:
            return arm
    raise ctx.error(path, f"group {group.name!r} has no arm {text!r}{_near(text, labels)}; arms: {', '.join(labels)}")


def apply_settings(
    base: RunConfig, settings: Mapping[str, Any], *, source: str = "<search>", where: str = "search"
) -> RunConfig:
    """``base`` with arm ``settings`` (run-config keys and the weighting shorthands ``schedule``, ``init``,
    ``rebalance``, ``clip``) applied on top, resolved and checked exactly like one more spec level: the result of a
    setting equal to ``base``'s own value is ``base`` itself (same run id). Errors name ``source: where``."""
    ctx = _Ctx(source)
    values = base.to_dict()
    options = dict(values["weighting_options"])
    paths: dict[str, str] = {}
    for key, value in settings.items():
        (options if key in SHORTHANDS else values)[key] = value
        paths[key] = where if len(settings) == 1 else f"{where}.{key}"
    # None is written false in a spec (TOML has no null); _resolve reads it back as None
    level = {
        key: (False if value is None else value, paths.get(key, where))
        for key, value in values.items()
        if key != "weighting_options"
    }
    level["weighting_options"] = (options, where)
    return _resolve(ctx, [level], where)
