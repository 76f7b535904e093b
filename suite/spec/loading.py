"""Loading: TOML → :class:`~suite.spec.records.Spec`: the spec head, groups and their arms, references and tables
(with their baseline pairs)."""

from __future__ import annotations

import copy
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlrd_core.config import RunConfig
from mlrd_core.errors import ConfigError, ExpressionError, MLRDError, ScheduleError
from mlrd_core.metrics import METRIC_NAMES
from suite.spec.records import Arm, Group, Reference, Spec, Table
from suite.spec.resolution import _derive_label, _expand_arm, _find_arm, _find_group, _resolve, _settings_of
from suite.spec.search_space import _load_search
from suite.spec.slurm_settings import _load_slurm
from suite.spec.validation import _check_level, _mixture_value
from suite.spec.values import (
    _canonical_weighting,
    _coerce,
    _Ctx,
    _jsonable,
    _level,
    _selection,
    _show,
    normalize_weighting_option,
)
from suite.spec.vocabulary import (
    _FRACTION_METRICS,
    _RUN_TYPES,
    ARM_KEYS,
    DEFAULT_SEEDS,
    DESCRIBE_COLUMNS,
    GROUP_KEYS,
    MIXTURE_KEYS,
    REFERENCE_KEYS,
    SETTING_KEYS,
    SHORTHANDS,
    SPEC_KEYS,
    SPEC_NAME_RE,
    TABLE_KEYS,
    TABLE_SPLITS,
    TIMING_NAMES,
    TOP_KEYS,
)


def load_spec(path: str | os.PathLike[str]) -> Spec:
    """Read and validate the spec file ``path``. TOML syntax errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"spec file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read spec file {path}: {exc}") from exc
    return loads_spec(text, source=str(path), default_name=path.stem, path=path)


def loads_spec(
    text: str, *, source: str = "<string>", default_name: str | None = None, path: Path | None = None
) -> Spec:
    """Parse and validate spec ``text``; ``source`` names it in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        line = found.group(1) if found else str(max(len(text.splitlines()), 1))  # "at end of document"
        where = f"{source}:{line}"
        raise ConfigError(f"{where}: TOML syntax error: {exc}") from exc
    return spec_from_dict(data, source=source, default_name=default_name, path=path)


def spec_from_dict(
    data: Mapping[str, Any], *, source: str = "<dict>", default_name: str | None = None, path: Path | None = None
) -> Spec:
    """Validate a spec document (the TOML data) and resolve every arm. All errors happen here."""
    ctx = _Ctx(source)
    raw = copy.deepcopy(dict(data))
    ctx.check_keys(raw, TOP_KEYS, "top level")

    head = ctx.table(raw.get("spec", {}), "spec")
    ctx.check_keys(head, SPEC_KEYS, "spec")
    if "name" in head:
        name = ctx.name(head["name"], "spec.name", SPEC_NAME_RE, "spec name")
    elif default_name is not None:
        name = ctx.name(default_name, "spec.name (from the file name)", SPEC_NAME_RE, "spec name")
    else:
        raise ctx.error("spec", "a spec read from a string needs spec.name")
    title = ctx.string(head.get("title", name), "spec.title")
    description = ctx.string(head.get("description", ""), "spec.description")
    seeds = ctx.seeds(head["seeds"], "spec.seeds") if "seeds" in head else DEFAULT_SEEDS

    defaults = ctx.table(raw.get("defaults", {}), "defaults")
    ctx.check_keys(defaults, SETTING_KEYS, "defaults")
    _check_level(ctx, _level(defaults, "defaults"))
    overrides = ctx.table(raw.get("overrides", {}), "overrides")
    ctx.check_keys(overrides, SETTING_KEYS, "overrides")
    _check_level(ctx, _level(overrides, "overrides"))

    if "groups" not in raw:
        raise ctx.error("top level", "a spec needs at least one [[groups]] with [[groups.arms]]")
    groups: list[Group] = []
    for gi, graw in enumerate(ctx.tables(raw["groups"], "groups")):
        groups.append(_load_group(ctx, graw, f"groups[{gi}]", defaults, overrides, groups))
    if not groups:
        raise ctx.error("groups", "a spec needs at least one [[groups]]")

    references = tuple(
        _load_reference(ctx, r, f"reference[{i}]", groups)
        for i, r in enumerate(ctx.tables(raw.get("reference", []), "reference"))
    )
    tables: list[Table] = []
    for i, traw in enumerate(ctx.tables(raw.get("tables", []), "tables")):
        table = _load_table(ctx, traw, f"tables[{i}]", groups)
        if any(t.name == table.name for t in tables):
            raise ctx.error(f"tables[{i}].name", f"duplicate table name {table.name!r}")
        tables.append(table)
    search = _load_search(ctx, ctx.table(raw["search"], "search"), name, seeds, groups) if "search" in raw else None
    slurm = _load_slurm(ctx, ctx.table(raw.get("slurm", {}), "slurm"))

    return Spec(
        name=name,
        title=title,
        description=description,
        seeds=seeds,
        defaults=defaults,
        overrides=overrides,
        groups=tuple(groups),
        references=references,
        tables=tuple(tables),
        search=search,
        source=source,
        path=path,
        raw=raw,
        slurm=slurm,
    )


def _load_group(
    ctx: _Ctx,
    graw: Mapping[str, Any],
    path: str,
    defaults: Mapping[str, Any],
    overrides: Mapping[str, Any],
    earlier: Sequence[Group],
) -> Group:
    ctx.check_keys(graw, GROUP_KEYS, path)
    name = ctx.required_name(graw, path, "group", "a")
    if any(g.name == name for g in earlier):
        raise ctx.error(f"{path}.name", f"duplicate group name {name!r}")
    title = ctx.string(graw.get("title", name), f"{path}.title")
    description = ctx.string(graw.get("description", ""), f"{path}.description")
    gdefaults = ctx.table(graw.get("defaults", {}), f"{path}.defaults")
    ctx.check_keys(gdefaults, SETTING_KEYS, f"{path}.defaults")
    _check_level(ctx, _level(gdefaults, f"{path}.defaults"))
    arms_raw = ctx.tables(graw.get("arms", []), f"{path}.arms")
    if not arms_raw:
        raise ctx.error(path, "a group needs at least one arm ([[groups.arms]])")
    outer = [_level(defaults, "defaults"), _level(gdefaults, f"{path}.defaults")]
    forced = _level(overrides, "overrides")
    arms: list[Arm] = []
    for ai, araw in enumerate(arms_raw):
        apath = f"{path}.arms[{ai}]"
        ctx.check_keys(araw, ARM_KEYS, apath)
        label = ctx.string(araw["label"], f"{apath}.label", empty=False) if "label" in araw else None
        points = _expand_arm(ctx, araw, apath)
        for pi, (level, grid) in enumerate(points):
            where = f"{apath} [grid {pi + 1}/{len(points)}]" if len(points) > 1 else apath
            config = _resolve(ctx, [*outer, level, forced], where)
            arm_label = _derive_label(label, level, grid)
            clash = next((a for a in arms if a.label == arm_label), None)
            if clash is not None:
                raise ctx.error(
                    where,
                    f"two arms of group {name!r} have the label {arm_label!r} ({clash.where} and {where}); "
                    "labels identify arms in references and tables: set distinct labels",
                )
            arms.append(Arm(label=arm_label, group=name, where=where, settings=_settings_of(level), config=config))
    return Group(name=name, title=title, description=description, defaults=gdefaults, arms=tuple(arms))


def _comparable(key: str, config: RunConfig) -> Any:
    """The value of setting ``key`` in a resolved config, in the form match values are compared in."""
    if key in SHORTHANDS:
        return config.weighting_options.get(key)
    value = getattr(config, key)
    return _selection(value) if key == "losses" else _jsonable(value)


def _match_value(ctx: _Ctx, key: str, value: object, path: str) -> Any:
    """A ``match`` value in the comparable form of :func:`_comparable`."""
    try:
        if key == "losses":
            return _selection(ctx.string(value, path))
        if key in SHORTHANDS:
            return normalize_weighting_option(key, value)
        if key == "weighting":
            return _canonical_weighting(ctx.string(value, path))
        if key in MIXTURE_KEYS:
            return _mixture_value(ctx, key, value, path, check_names=False)
        return _jsonable(_coerce(value, _RUN_TYPES[key]))
    except (ExpressionError, ScheduleError) as exc:
        raise ctx.located(exc, path) from exc
    except (TypeError, MLRDError) as exc:
        raise ctx.error(path, f"{key}: {exc}, got {_show(value)}") from None


def _load_reference(ctx: _Ctx, rraw: Mapping[str, Any], path: str, groups: Sequence[Group]) -> Reference:
    ctx.check_keys(rraw, REFERENCE_KEYS, path)
    if "group" not in rraw:
        raise ctx.error(path, 'a reference row needs group = "<group name>"')
    group = _find_group(ctx, groups, rraw["group"], f"{path}.group")
    if "source" not in rraw:
        raise ctx.error(path, 'a reference row needs source = "..." (e.g. "Lee & Kim 2020, Table 5(a)")')
    source = ctx.string(rraw["source"], f"{path}.source", empty=False)
    note = ctx.string(rraw.get("note", ""), f"{path}.note")
    if "arm" in rraw and "match" in rraw:
        raise ctx.error(path, 'give either arm = "<label>" or match = {...}, not both')
    arm: Arm | None = None
    if "arm" in rraw:
        arm = _find_arm(ctx, group, rraw["arm"], f"{path}.arm")
    elif "match" in rraw:
        match = ctx.table(rraw["match"], f"{path}.match")
        if not match:
            raise ctx.error(f"{path}.match", "match needs at least one key")
        ctx.check_keys(match, SETTING_KEYS, f"{path}.match")
        wanted = {k: _match_value(ctx, k, v, f"{path}.match.{k}") for k, v in match.items()}
        hits = [a for a in group.arms if all(_comparable(k, a.config) == v for k, v in wanted.items())]
        if len(hits) != 1:
            found = ", ".join(repr(a.label) for a in hits) or "none"
            raise ctx.error(
                f"{path}.match", f"must select exactly one arm of group {group.name!r}, but selects {found}"
            )
        arm = hits[0]
    if arm is None and "label" not in rraw:
        raise ctx.error(path, 'a reference row needs arm = "<label>", match = {...} or, for another method, label')
    label = ctx.string(rraw["label"], f"{path}.label", empty=False) if "label" in rraw else arm.label  # type: ignore[union-attr]
    values: dict[str, float] = {}
    for key in (*METRIC_NAMES, *TIMING_NAMES):
        if key in rraw:
            value = ctx.number(rraw[key], f"{path}.{key}")
            if key in _FRACTION_METRICS and not 0.0 <= value <= 1.0:
                raise ctx.error(
                    f"{path}.{key}", f"{key} is a fraction in [0, 1] (write 84.8% as 0.848), got {rraw[key]!r}"
                )
            values[key] = value
    if not values:
        raise ctx.error(path, f"a reference row needs at least one value ({', '.join(METRIC_NAMES)}, or a timing)")
    return Reference(
        group=group.name, arm=arm.label if arm else None, label=label, source=source, values=values, note=note
    )


def _load_table(ctx: _Ctx, traw: Mapping[str, Any], path: str, groups: Sequence[Group]) -> Table:
    ctx.check_keys(traw, TABLE_KEYS, path)
    name = ctx.required_name(traw, path, "table", "table5a")
    all_groups = [g.name for g in groups]
    group_names = ctx.strings(traw["groups"], f"{path}.groups", all_groups) if "groups" in traw else tuple(all_groups)
    if not group_names:
        raise ctx.error(f"{path}.groups", "a table needs at least one group")
    metrics = ctx.strings(traw.get("metrics", []), f"{path}.metrics", METRIC_NAMES)
    timings = ctx.strings(traw.get("timings", []), f"{path}.timings", TIMING_NAMES)
    if not metrics and not timings:
        raise ctx.error(path, f"a table needs metrics (from {', '.join(METRIC_NAMES)}) or timings")
    columns = ctx.strings(traw.get("columns", []), f"{path}.columns", DESCRIBE_COLUMNS)
    split = ctx.choice(traw.get("split", "test"), f"{path}.split", "split", TABLE_SPLITS)
    members = [g for g in groups if g.name in group_names]
    baseline: str | None = None
    match_keys: tuple[str, ...] = ("losses",)
    if "baseline_match" in traw:
        match_keys = ctx.strings(traw["baseline_match"], f"{path}.baseline_match", SETTING_KEYS)
        if not match_keys:
            raise ctx.error(f"{path}.baseline_match", "needs at least one key")
    pairs: list[tuple[str, str, str, str]] = []
    if "baseline" in traw and "baseline_arm" in traw:
        raise ctx.error(f"{path}.baseline_arm", "give baseline (a group, matched per arm) or baseline_arm, not both")
    if "baseline" in traw:
        base = _find_group(ctx, groups, traw["baseline"], f"{path}.baseline")
        baseline = base.name
        for arm in (a for g in members if g.name != base.name for a in g.arms):
            key = [_comparable(k, arm.config) for k in match_keys]
            hits = [b for b in base.arms if [_comparable(k, b.config) for k in match_keys] == key]
            if len(hits) > 1:
                raise ctx.error(
                    f"{path}.baseline",
                    f"arm {arm.label!r} of group {arm.group!r} matches {len(hits)} arms of baseline group "
                    f"{base.name!r} on {list(match_keys)} ({', '.join(repr(h.label) for h in hits)}); "
                    "add keys to baseline_match",
                )
            if hits:
                pairs.append((arm.group, arm.label, base.name, hits[0].label))
    elif "baseline_match" in traw:
        raise ctx.error(f"{path}.baseline_match", 'baseline_match needs baseline = "<group>"')
    baseline_arm: str | None = None
    if "baseline_arm" in traw:
        if timings:
            raise ctx.error(f"{path}.baseline_arm", "baseline_arm compares metrics; a timing table uses ratio_to")
        chosen = _table_arm(ctx, traw["baseline_arm"], f"{path}.baseline_arm", members)
        baseline, baseline_arm = chosen.group, chosen.label
        pairs += [(a.group, a.label, chosen.group, chosen.label) for g in members for a in g.arms if a is not chosen]
    ratio_to: str | None = None
    if "ratio_to" in traw:
        ratio_to = _table_arm(ctx, traw["ratio_to"], f"{path}.ratio_to", members).label
        if not timings:
            raise ctx.error(f"{path}.ratio_to", "ratio_to divides timings; the table lists none")
    return Table(
        name=name,
        title=ctx.string(traw.get("title", name), f"{path}.title"),
        groups=group_names,
        metrics=metrics,
        timings=timings,
        columns=columns,
        split=split,
        baseline=baseline,
        baseline_match=match_keys,
        ratio_to=ratio_to,
        references=ctx.boolean(traw.get("references", True), f"{path}.references"),
        baseline_arm=baseline_arm,
        pairs=tuple(pairs),
    )


def _table_arm(ctx: _Ctx, raw: object, path: str, members: Sequence[Group]) -> Arm:
    """The one arm of the table's groups labelled ``raw`` (full-string match), else an error listing the arms."""
    label = ctx.string(raw, path)
    hits = [a for g in members for a in g.arms if a.label == label]
    if len(hits) != 1:
        labels = [a.label for g in members for a in g.arms]
        raise ctx.error(
            path,
            f"must name exactly one arm of the table's groups, got {label!r} ({len(hits)} found); "
            f"arms: {', '.join(labels)}",
        )
    return hits[0]
