"""Benchmark specs: TOML files that declare groups of arms, seeds, the paper's numbers and table layouts.

A spec is read with :mod:`tomllib` into frozen dataclasses (:class:`Spec`, :class:`Group`, :class:`Arm`,
:class:`Reference`, :class:`Table`, :class:`SearchSpec`). Loading is strict and complete: unknown keys at every
level are rejected with the valid keys and the file + key path, and every value is checked (loss expressions,
λ schedules, weighting methods and their options, encoders, datasets, protocols, metric names, reference rows)
before anything runs or writes. Every arm carries its fully resolved :class:`~mlrd_core.config.RunConfig`.

The format, its precedence rules and every decision are documented in ``docs/specs.md``::

    [spec]            name, title, description, seeds
    [defaults]        RunConfig keys + weighting shorthands, for every arm
    [[groups]]        name, title, description, defaults = {...}
    [[groups.arms]]   label, RunConfig keys + shorthands (a list value expands as a grid)
    [[reference]]     group, arm | match | label, source, note, metric / timing values
    [[tables]]        name, title, groups, metrics, timings, columns, split, baseline, baseline_match, ratio_to
    [search]          the λ-schedule search (suite.search)
    [slurm]           resources of the SLURM executor (``run --executor slurm``); no effect on run ids
    [overrides]       settings forced on every arm (what ``--set key=value`` writes)

No ``eval`` or ``exec``: values are TOML data, read by the parsers of :mod:`mlrd_core`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import itertools
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlrd_core.config import RunConfig
from mlrd_core.errors import ConfigError, ExpressionError, MLRDError, ScheduleError, WeightingOptionError
from mlrd_core.losses import select
from mlrd_core.metrics import HIGHER_IS_BETTER, METRIC_NAMES
from mlrd_core.trainer import TIMING_PHASES
from mlrd_core.weighting import (
    WEIGHTINGS,
    LeeKimOptions,
    Schedule,
    WeightingOptions,
    canonical_name,
    make_weighting,
    options_class,
    parse_schedule,
)

__all__ = [
    "ARM_KEYS",
    "DEFAULT_SEEDS",
    "DESCRIBE_COLUMNS",
    "DISTRIBUTION_KINDS",
    "GROUP_KEYS",
    "REFERENCE_KEYS",
    "RUN_KEYS",
    "SEARCH_KEYS",
    "SEARCH_SETTING_KEYS",
    "SEQUENCE_KEYS",
    "SETTING_KEYS",
    "SHORTHANDS",
    "SLURM_KEYS",
    "SPEC_KEYS",
    "TABLE_KEYS",
    "TIMING_NAMES",
    "TOP_KEYS",
    "UNSEARCHABLE_KEYS",
    "Arm",
    "Distribution",
    "Group",
    "Reference",
    "SearchSpec",
    "SlurmSettings",
    "Spec",
    "Table",
    "apply_overrides",
    "apply_settings",
    "check_files",
    "load_spec",
    "loads_spec",
    "normalize_weighting_option",
    "require_files",
    "search_point",
    "search_setting_value",
    "spec_from_dict",
]

# ---------------------------------------------------------------------------------------------------- vocabulary

#: Spec names become file and database names: no path separators, no "..".
SPEC_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Group and table names: as spec names but without "." (``--set groups.<name>.<key>=...`` splits on dots).
GROUP_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

#: The keys of :class:`RunConfig`, in its field order.
RUN_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RunConfig))
#: Weighting shorthands: ``schedule = "3 -> -3"`` is ``weighting_options = {schedule = "3 -> -3"}``.
SHORTHANDS: tuple[str, ...] = ("schedule", "init", "rebalance", "clip")
#: Keys accepted in [defaults], group defaults, arms and [overrides].
SETTING_KEYS: tuple[str, ...] = (*RUN_KEYS, *SHORTHANDS)
#: Keys whose value is itself a list: in an arm, such a list is a value; a list of lists (or, for ``clip``, a list
#: holding any list) is a grid.
SEQUENCE_KEYS: frozenset[str] = frozenset({"input_size", "clip", "dataset", "dataset_weights"})
#: The data keys of a mixture, checked and resolved by :func:`_check_mixture_level` / :func:`_resolve_mixture`:
#: ``dataset`` (a name, or a list of names: a mixture), ``dataset_weights`` and ``eval_dataset``.
MIXTURE_KEYS: frozenset[str] = frozenset({"dataset", "dataset_weights", "eval_dataset"})
#: Table-valued settings; they merge key by key across levels (dataset_options recursively).
MAPPING_KEYS: frozenset[str] = frozenset({"dataset_options", "weighting_options"})

#: Timing names a run reports (mlrd_core.trainer.fit's ``RunResult.timings``), usable in tables and references.
TIMING_NAMES: tuple[str, ...] = (
    "s_per_iter",
    *(f"{phase}_s_per_iter" for phase in TIMING_PHASES),
    "test_s_per_scene",
    "peak_memory_mb",
)
#: Descriptive columns a table may show (see suite.plan.PlannedRun.describe).
DESCRIBE_COLUMNS: tuple[str, ...] = (
    "losses",
    "n_losses",
    "weighting",
    "init",
    "rebalance",
    "lambda",
    "encoder",
    "dataset",
    "input_size",
    "batch_size",
    "epochs",
)
#: Metric splits a table can show (the trainer records "val" every epoch and "test" at the end).
TABLE_SPLITS: tuple[str, ...] = ("test", "val")
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)

TOP_KEYS: tuple[str, ...] = ("spec", "defaults", "groups", "reference", "tables", "search", "overrides", "slurm")
SPEC_KEYS: tuple[str, ...] = ("name", "title", "description", "seeds")
GROUP_KEYS: tuple[str, ...] = ("name", "title", "description", "defaults", "arms")
ARM_KEYS: tuple[str, ...] = ("label", *SETTING_KEYS)
REFERENCE_KEYS: tuple[str, ...] = ("group", "arm", "match", "label", "source", "note", *METRIC_NAMES, *TIMING_NAMES)
TABLE_KEYS: tuple[str, ...] = (
    "name",
    "title",
    "groups",
    "metrics",
    "timings",
    "columns",
    "split",
    "baseline",
    "baseline_match",
    "baseline_arm",
    "ratio_to",
    "references",
)
SEARCH_KEYS: tuple[str, ...] = (
    "study",
    "group",
    "arm",
    "objective",
    "split",
    "n_trials",
    "timeout_s",
    "seeds",
    "sampler",
    "pruner",
    "enqueue",
    "schedule",
    "settings",
)
#: Run-config keys a search may not sample: the weighting method and the tables (the search is about Lee-Kim's
#: rebalancing of one arm), the data and its splits (trials must be measured on the same data) and settings that
#: only change speed or hardware.
UNSEARCHABLE_KEYS: frozenset[str] = frozenset(
    {
        "weighting",
        "weighting_options",
        "dataset",
        "dataset_options",
        "dataset_weights",
        "eval_dataset",
        "input_size",
        "train_split",
        "val_split",
        "test_split",
        "protocol",
        "num_workers",
        "eval_batch_size",
        "amp",
        "channels_last",
        "compile",
    }
)
#: Arm settings a search may sample besides the schedule (``[search.settings]``): the Lee-Kim options other than the
#: schedule, and the run-config keys of the model, the losses and the optimisation.
SEARCH_SETTING_KEYS: tuple[str, ...] = (
    *(k for k in SHORTHANDS if k != "schedule"),
    *(k for k in RUN_KEYS if k not in UNSEARCHABLE_KEYS),
)
SLURM_KEYS: tuple[str, ...] = (
    "partition",
    "timeout_min",
    "gpus_per_task",
    "cpus_per_task",
    "mem_gb",
    "array_parallelism",
    "folder",
    "max_timeouts",
    "signal_delay_s",
    "setup",
    "sbatch",
)
#: sbatch option names accepted in ``[slurm] sbatch = {...}`` (the long option without "--").
SBATCH_OPTION_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
DISTRIBUTION_KINDS: tuple[str, ...] = ("float", "int", "categorical")
DISTRIBUTION_KEYS: tuple[str, ...] = ("kind", "low", "high", "log", "step", "choices")
SAMPLERS: tuple[str, ...] = ("tpe", "random")
PRUNERS: tuple[str, ...] = ("median", "none")

_RUN_TYPES: dict[str, Any] = typing.get_type_hints(RunConfig)
_RUN_DEFAULTS: dict[str, Any] = RunConfig().to_dict()
_FRACTION_METRICS = frozenset(m for m in METRIC_NAMES if m.startswith("delta"))


# ---------------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Arm:
    """One arm of a group: a fully resolved run config (before the seed).

    ``settings`` holds the arm's own keys (one grid point when the arm was a grid); ``where`` is its key path in
    the spec (``groups[1].arms[0]``, plus ``[grid i/n]`` for a grid point).
    """

    label: str
    group: str
    where: str
    settings: Mapping[str, Any]
    config: RunConfig


@dataclass(frozen=True)
class Group:
    """A part of a table, e.g. Table 5(a): a title, group-level defaults and its arms in spec order."""

    name: str
    title: str
    description: str
    defaults: Mapping[str, Any]
    arms: tuple[Arm, ...]

    def arm(self, label: str) -> Arm:
        """The arm labelled ``label`` (KeyError listing the labels otherwise)."""
        for arm in self.arms:
            if arm.label == label:
                return arm
        raise KeyError(f"group {self.name!r} has no arm {label!r}; arms: {', '.join(a.label for a in self.arms)}")


@dataclass(frozen=True)
class Reference:
    """A published row: beside a measured arm (``arm`` set) or another method's row (``arm`` is None).

    ``values`` maps metric names (fractions for δ) and timing names to numbers; ``label`` is the row label (the
    arm's label when the row belongs to an arm).
    """

    group: str
    arm: str | None
    label: str
    source: str
    values: Mapping[str, float]
    note: str = ""


@dataclass(frozen=True)
class Table:
    """A table layout: which groups, which metrics or timings, which descriptive columns.

    ``baseline`` names a group whose arms are paired with this table's arms by ``baseline_match`` keys (Table
    5(b) against 5(a), same losses) for better/worse marks; ``baseline_arm`` instead names one arm of the table
    that every other arm is compared with. ``pairs`` holds the resolved comparisons, ``((group, arm, baseline
    group, baseline arm), ...)``, computed once at load on every ``baseline_match`` key; reports use them as they
    are. ``ratio_to`` names an arm whose timings divide every row's (Table 7).
    """

    name: str
    title: str
    groups: tuple[str, ...]
    metrics: tuple[str, ...]
    timings: tuple[str, ...]
    columns: tuple[str, ...]
    split: str = "test"
    baseline: str | None = None
    baseline_match: tuple[str, ...] = ("losses",)
    ratio_to: str | None = None
    references: bool = True
    baseline_arm: str | None = None
    pairs: tuple[tuple[str, str, str, str], ...] = ()


@dataclass(frozen=True)
class Distribution:
    """A search parameter: ``float`` / ``int`` in [low, high] (``log``, ``step``) or ``categorical`` choices."""

    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class SearchSpec:
    """The Optuna search over λ-schedule shapes of one arm (consumed by the search command).

    ``schedule`` is a template of a λ-schedule table: each value is a literal or a :class:`Distribution`;
    ``settings`` maps other arm settings (:data:`SEARCH_SETTING_KEYS`: ``clip``, ``init``, ``rebalance``, ``lr``,
    ...) to a :class:`Distribution` each (categorical choices in their canonical form). A trial runs the arm
    ``(group, arm)`` with the sampled schedule and settings on ``seeds``; the objective is the seed mean of metric
    ``objective`` on ``split`` and its direction follows the metric (``direction``). ``enqueue`` holds the points
    tried first: ``{"schedule": <canonical table>, <setting>: <value>, ...}`` with every searched setting (the
    arm's own value where the spec gave none).
    """

    study: str
    group: str
    arm: str
    objective: str
    direction: str
    split: str
    n_trials: int
    timeout_s: float | None
    seeds: tuple[int, ...]
    sampler: str
    pruner: str
    enqueue: tuple[Mapping[str, Any], ...]
    schedule: Mapping[str, Any]
    settings: Mapping[str, Distribution] = field(default_factory=dict)


@dataclass(frozen=True)
class SlurmSettings:
    """Resources of ``run --executor slurm`` (the ``[slurm]`` table). They never change a run's id.

    Every run is one task of a job array: ``cpus_per_task`` CPUs (also the worker's torch threads),
    ``gpus_per_task`` GPUs (0 or 1: the trainer uses one device), ``mem_gb`` of memory (None: the partition's
    default) and a ``timeout_min`` limit per start; at the limit SLURM sends ``USR2`` ``signal_delay_s`` seconds
    early, the task requeues itself at most ``max_timeouts`` times and resumes from its last period checkpoint.
    ``folder`` holds submitit's job files and logs (None: ``<results>/slurm``); ``setup`` lines run in the batch
    script before the worker (``module load ...``); ``sbatch`` passes any other option (``account``, ``qos``,
    ``constraint``, ``gres``, ...) verbatim.
    """

    partition: str | None = None
    timeout_min: int = 60
    gpus_per_task: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None
    array_parallelism: int = 256
    folder: str | None = None
    max_timeouts: int = 3
    signal_delay_s: int = 90
    setup: tuple[str, ...] = ()
    sbatch: Mapping[str, str | int | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    """A loaded, validated spec. ``raw`` is the TOML document it came from (apply_overrides edits a copy)."""

    name: str
    title: str
    description: str
    seeds: tuple[int, ...]
    defaults: Mapping[str, Any]
    overrides: Mapping[str, Any]
    groups: tuple[Group, ...]
    references: tuple[Reference, ...]
    tables: tuple[Table, ...]
    search: SearchSpec | None
    source: str
    path: Path | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)

    def group(self, name: str) -> Group:
        """The group called ``name`` (KeyError listing the groups otherwise)."""
        for group in self.groups:
            if group.name == name:
                return group
        raise KeyError(f"spec {self.name!r} has no group {name!r}; groups: {', '.join(g.name for g in self.groups)}")

    def arms(self) -> Iterator[Arm]:
        """Every arm, in spec order."""
        for group in self.groups:
            yield from group.arms

    def table(self, name: str) -> Table:
        """The table called ``name`` (KeyError listing the tables otherwise)."""
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(f"spec {self.name!r} has no table {name!r}; tables: {', '.join(t.name for t in self.tables)}")


# ---------------------------------------------------------------------------------------------------- helpers


class _Ctx:
    """Where messages point: the source (file) and the key path inside it."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {path}: {message}")

    def check_keys(self, table: Mapping[str, Any], valid: Sequence[str], path: str) -> None:
        for key in table:
            if key not in valid:
                near = difflib.get_close_matches(str(key), valid, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise self.error(path, f"unknown key {key!r}{hint}; valid keys: {', '.join(valid)}")

    def table(self, value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(path, f"expected a table, got {_show(value)}")
        return dict(value)

    def tables(self, value: object, path: str) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.error(path, f"expected an array of tables ([[{path}]]), got {_show(value)}")
        return [dict(v) for v in value]

    def string(self, value: object, path: str, *, empty: bool = True) -> str:
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self.error(path, f"expected {'a' if empty else 'a non-empty'} string, got {_show(value)}")
        return value

    def strings(self, value: object, path: str, valid: Sequence[str] | None = None) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(path, f"expected a list of strings, got {_show(value)}")
        if valid is not None:
            for i, item in enumerate(value):
                if item not in valid:
                    raise self.error(
                        f"{path}[{i}]", f"unknown name {item!r}{_near(item, valid)}; valid: {', '.join(valid)}"
                    )
        return tuple(value)

    def boolean(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {_show(value)}")
        return value

    def integer(self, value: object, path: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(path, f"expected an integer >= {minimum}, got {_show(value)}")
        return value

    def number(self, value: object, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(path, f"expected a finite number, got {_show(value)}")
        return float(value)

    def name(self, value: object, path: str, pattern: re.Pattern[str], what: str) -> str:
        text = self.string(value, path)
        if not pattern.fullmatch(text) or ".." in text:
            raise self.error(
                path, f"invalid {what} {text!r}: it must match {pattern.pattern} (no path separators, no '..')"
            )
        return text

    def seeds(self, value: object, path: str) -> tuple[int, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(path, f"expected a non-empty list of integer seeds, got {_show(value)}")
        seeds = tuple(self.integer(v, f"{path}[{i}]", 0) for i, v in enumerate(value))
        if len(set(seeds)) != len(seeds):
            raise self.error(path, f"seeds must be distinct, got {list(seeds)}")
        return seeds


def _near(word: str, valid: Sequence[str]) -> str:
    near = difflib.get_close_matches(word, valid, n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _show(value: object) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (str, list, dict)) else repr(value)


def _fmt(value: object) -> str:
    """TOML-like text of a value, for derived arm labels."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def _deep_merge(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _jsonable(value: object) -> Any:
    """Plain JSON data (what a run id hashes): Schedules as their table form, tuples as lists."""
    if isinstance(value, Schedule):
        return value.to_spec()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ConfigError(f"value {value!r} of type {type(value).__name__} cannot be stored in a run config")


def _canonical_weighting(name: str) -> str:
    return canonical_name(name)  # raises WeightingError with the valid names and a suggestion


@functools.lru_cache(maxsize=64)
def _encoder_info(encoder: str) -> Any:
    from mlrd_core.model import encoder_info  # timm import: only when a spec is checked

    return encoder_info(encoder)


def _input_multiple(encoder: str) -> int:
    return int(_encoder_info(encoder).input_multiple)


@functools.lru_cache(maxsize=256)
def _selection(expr: str) -> tuple[str, ...]:
    return select(expr)


# ------------------------------------------------------------------------------------------ values and types


def _type_text(tp: Any) -> str:
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is types.NoneType:
        return "false (none)"
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_text(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {len(typing.get_args(tp))} {_type_text(typing.get_args(tp)[0]).split(' ', 1)[1]}s"
    return "a table"


def _coerce(value: object, tp: Any) -> Any:
    """``value`` read as the RunConfig type ``tp``; raises TypeError when it does not fit.

    ``false`` stands for None in optional fields (TOML has no null); ints become floats in float fields (so that
    ``lr = 1`` and ``lr = 1.0`` hash alike).
    """
    if tp is str and isinstance(value, str):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if types.NoneType in args and value is False:
            return None
        for arg in args:
            if arg is types.NoneType:
                continue
            try:
                return _coerce(value, arg)
            except TypeError:
                continue
    elif origin is tuple and isinstance(value, list) and len(value) == len(args):
        return tuple(_coerce(v, a) for v, a in zip(value, args, strict=True))
    elif origin is not None and issubclass(origin, Mapping) and isinstance(value, Mapping):
        return dict(value)
    raise TypeError(_type_text(tp))


def normalize_weighting_option(key: str, value: object) -> Any:
    """The canonical stored form of a weighting shorthand (:data:`SHORTHANDS`, the Lee-Kim options: schedule → its
    table form, clip → [lo, hi] or "none"), as :class:`~mlrd_core.weighting.LeeKimOptions` stores it.

    Used for matching (``match = {schedule = "3 -> -3"}``) and searched settings. Raises ScheduleError for a bad
    schedule, TypeError (the expected type) for a bad clip / flag and WeightingError for clip bounds.
    """
    if key in SHORTHANDS:
        return LeeKimOptions.canonical(key, value)
    return _jsonable(value)


# ---------------------------------------------------------------------------------------------------- resolution

# A level of settings: key -> (value, key path of the value).
_Level = dict[str, tuple[Any, str]]


def _level(table: Mapping[str, Any], path: str) -> _Level:
    return {k: (v, f"{path}.{k}") for k, v in table.items()}


def _check_level(ctx: _Ctx, level: _Level) -> None:
    """Check the values of a shared level ([defaults], group defaults, [overrides]) on their own, so that a value
    every arm overrides is still checked: types, loss expressions, schedules and the names of weighting methods,
    encoders, datasets and protocols. What depends on other keys (options vs method, input size vs encoder) is
    checked on each resolved arm."""
    for key, (value, path) in level.items():
        if key in SHORTHANDS or key in MAPPING_KEYS or key in MIXTURE_KEYS:
            continue
        try:
            _coerce(value, _RUN_TYPES[key])
        except TypeError as exc:
            grid = "; lists expand as a grid only in [[groups.arms]]" if isinstance(value, list) else ""
            raise ctx.error(path, f"{key} must be {exc}, got {_show(value)}{grid}") from None
    checks: dict[str, Callable[[str], object]] = {
        "losses": _selection,
        "weighting": _canonical_weighting,
        "encoder": _input_multiple,
    }
    for key, check in checks.items():
        if key in level:
            value, path = level[key]
            try:
                check(value)
            except ExpressionError as exc:
                raise ExpressionError(f"{ctx.source}: {path}: {exc}") from exc
            except MLRDError as exc:
                raise ctx.error(path, str(exc)) from exc
    _check_mixture_level(ctx, level)
    if "protocol" in level:
        _check_protocol(ctx, *level["protocol"])
    schedules = [level["schedule"]] if "schedule" in level else []
    if "weighting_options" in level:
        value, path = level["weighting_options"]
        options = ctx.table(value, path)
        if "schedule" in options:
            schedules.append((options["schedule"], f"{path}.schedule"))
    for value, path in schedules:
        try:
            parse_schedule(value)
        except ScheduleError as exc:
            raise ScheduleError(f"{ctx.source}: {path}: {exc}") from exc


def _check_dataset(ctx: _Ctx, dataset: str, path: str) -> None:
    from mlrd_core.data import list_datasets  # cheap registry (modules load lazily)

    known = list_datasets()
    if dataset not in known:
        raise ctx.error(path, f"unknown dataset {dataset!r}{_near(dataset, known)}; valid datasets: {', '.join(known)}")


def _check_protocol(ctx: _Ctx, protocol: str, path: str) -> None:
    from mlrd_core.protocols import get_protocol

    try:
        get_protocol(protocol)
    except MLRDError as exc:
        raise ctx.error(path, str(exc)) from exc


# ---------------------------------------------------------------------------------------------------- mixtures


def _mixture_value(ctx: _Ctx, key: str, value: object, path: str, *, check_names: bool = True) -> Any:
    """One data key of a level in its stored form: ``dataset`` a name or a list of names (a mixture),
    ``eval_dataset`` a name, ``dataset_weights`` a table ``{name = weight}`` or a list of weights in the order of
    ``dataset`` (made a table by :func:`_resolve_mixture`). Names are checked against the registry."""
    if key in ("dataset", "eval_dataset"):
        names = value if key == "dataset" and isinstance(value, list) else [value]
        if not names or not all(isinstance(n, str) for n in names):
            shape = "a dataset name or a list of names (a mixture)" if key == "dataset" else "a dataset name"
            raise ctx.error(path, f"{key} must be {shape}, got {_show(value)}")
        if check_names:
            for i, name in enumerate(names):
                _check_dataset(ctx, name, f"{path}[{i}]" if isinstance(value, list) else path)
        return list(value) if isinstance(value, list) else value
    # dataset_weights
    if isinstance(value, Mapping):
        items = [(str(k), v, f"{path}.{k}") for k, v in value.items()]
    elif isinstance(value, list):
        items = [(str(i), v, f"{path}[{i}]") for i, v in enumerate(value)]
    else:
        raise ctx.error(path, f"dataset_weights must be a table {{dataset = weight}} or a list, got {_show(value)}")
    for _, weight, where in items:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise ctx.error(where, f"a dataset weight must be a number > 0, got {_show(weight)}")
    return {k: float(v) for k, v, _ in items} if isinstance(value, Mapping) else [float(v) for _, v, _ in items]


def _check_mixture_level(ctx: _Ctx, level: _Level) -> None:
    """The data keys of a shared level on their own (names known, shapes right)."""
    for key in sorted(MIXTURE_KEYS):
        if key in level:
            value, path = level[key]
            _mixture_value(ctx, key, value, path)


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
        raise ExpressionError(f"{ctx.source}: {paths.get('losses', where)}: {exc}") from exc

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
            raise ScheduleError(f"{ctx.source}: {path}: {cause}") from exc
        if isinstance(cause, TypeError):
            raise ctx.error(path, f"{exc.key} must be {cause}, got {_show(value)}") from None
        raise ctx.error(path, str(cause or exc)) from exc
    try:
        make_weighting(weighting, names, record)
    except MLRDError as exc:
        raise ctx.error(where, f"weighting {weighting!r}: {exc}") from exc
    return record


# ------------------------------------------------------------------------------------- errors before training
# What a worker would otherwise find only when it builds the run (docs/specs.md, "What is checked at load time"):
# the dataset's options and splits against its builder's declaration (mlrd_core.data.dataset_info), the decoder
# width against the encoder, and losses that are identically zero at the input size. check_files() adds the
# existence checks of data and weights files, which depend on the machine and so are not part of loading.


def _option_origins(levels: Sequence[_Level]) -> dict[tuple[str, ...], str]:
    """The key path that set each leaf of the merged ``dataset_options`` (merged as :func:`_deep_merge` does)."""
    origins: dict[tuple[str, ...], str] = {}

    def walk(table: Mapping[str, Any], prefix: tuple[str, ...], path: str) -> None:
        for key, value in table.items():
            here = (*prefix, str(key))
            if isinstance(value, Mapping):
                origins.pop(here, None)  # a table merges into a table and replaces a value
                walk(value, here, f"{path}.{key}")
            else:
                for stale in [k for k in origins if k[: len(here)] == here]:
                    del origins[stale]
                origins[here] = f"{path}.{key}"

    for level in levels:
        if "dataset_options" in level:
            value, path = level["dataset_options"]
            if isinstance(value, Mapping):
                walk(value, (), path)
    return origins


def _origin(levels: Sequence[_Level], key: str) -> str | None:
    """The key path of option ``key`` (``"train.length"``) of the merged ``dataset_options``, or of the table
    ``key`` names (``"trian"``)."""
    parts = tuple(key.split("."))
    for leaf, path in _option_origins(levels).items():
        if leaf[: len(parts)] == parts:
            return path.rsplit(".", len(leaf) - len(parts))[0] if len(leaf) > len(parts) else path
    return None


def _dataset_uses(config: RunConfig) -> list[tuple[str, Mapping[str, Any], str, dict[str, str]]]:
    """Each dataset a run builds: ``(name, its options table, key prefix inside dataset_options, {split key: split})``.
    One dataset uses all of ``dataset_options`` and the three splits; a mixture (``dataset`` a list) trains on each
    part with ``dataset_options.<name>`` and evaluates on ``eval_dataset``."""
    splits = {k: getattr(config, k) for k in ("train_split", "val_split", "test_split") if getattr(config, k)}
    if isinstance(config.dataset, str):
        return [(config.dataset, config.dataset_options, "", splits)]
    evaluated = getattr(config, "eval_dataset", None)
    uses = []
    for name in dict.fromkeys([*config.dataset, *([evaluated] if evaluated else [])]):
        table = config.dataset_options.get(name, {})
        used = {
            k: v for k, v in splits.items() if (name in config.dataset if k == "train_split" else name == evaluated)
        }
        uses.append((name, table if isinstance(table, Mapping) else {}, f"{name}.", used))
    return uses


def _check_before_training(
    ctx: _Ctx, config: RunConfig, levels: Sequence[_Level], paths: Mapping[str, str], where: str
) -> None:
    """Refuse, with the key path, a resolved run that would fail deterministically once built."""
    from mlrd_core.data import DatasetOptionError, check_dataset_options, dataset_info
    from mlrd_core.losses.functional import vanishing_losses

    for name, table, prefix, splits in _dataset_uses(config):
        info = dataset_info(name)
        for key, split in splits.items():
            if split not in info.splits:
                none = "" if key == "train_split" else f"; {key} = false runs without it"
                raise ctx.error(
                    paths.get(key, f"{where} ({key}, default {split!r})"),
                    f"unknown split {split!r} of dataset {name!r}{_near(split, info.splits)}; valid splits: "
                    f"{', '.join(info.splits)}{none}",
                )
        try:
            check_dataset_options(info, table, list(dict.fromkeys(splits.values())))
        except DatasetOptionError as exc:
            whole = paths.get("dataset_options", f"{where}.dataset_options")
            if not exc.key:
                raise ctx.error(f"{whole}{'.' + prefix[:-1] if prefix else ''}", exc.reason) from None
            key = prefix + exc.key
            raise ctx.error(_origin(levels, key) or f"{whole}.{key}", exc.reason) from None

    encoder = _encoder_info(config.encoder)
    blocks = int(encoder.num_up_blocks)
    if config.decoder_width // 2**blocks < 1:
        raise ctx.error(
            paths.get("decoder_width", f"{where}.decoder_width"),
            f"decoder_width must be an integer >= {2**blocks} for encoder {config.encoder!r} (it halves in each of "
            f"the decoder's {blocks} up-blocks), got {config.decoder_width}",
        )

    vanishing = vanishing_losses(_selection(config.losses), config.input_size)
    if vanishing:
        height, width = config.input_size
        k_max = max(vanishing)
        names = [n for _, found in vanishing.values() for n in found]
        scales = "; ".join(
            f"scale {k} is a {h}×{w} map, where {', '.join(found)} "
            f"{'is' if len(found) == 1 else 'are'} identically zero"
            for k, ((h, w), found) in vanishing.items()
        )
        side = 2 * 2**k_max
        subset = (
            f' or a subset without them, e.g. "({config.losses}) - {{{", ".join(names)}}}"'
            if len(names) < len(_selection(config.losses))
            else ""
        )
        raise ctx.error(
            paths.get("losses", f"{where}.losses"),
            f"losses {config.losses!r} at input_size {height}×{width} "
            f"(set at {paths.get('input_size', 'the RunConfig default')}): {scales}. Use a larger input "
            f"(both sides >= {side}){subset}",
        )


def check_files(spec: Spec) -> list[str]:
    """Messages for the files and folders the spec's runs would read and that do not exist on this machine: each
    arm's dataset files for its train / val / test splits (existence only, nothing is read) and local pretrained
    weights files. Empty when everything is there. ``run`` and ``search`` refuse to start on any (before anything is
    written); ``plan`` prints them. Not part of loading: a spec loads (and renders its tables) without its data."""
    from mlrd_core.data import dataset_info, missing_files
    from mlrd_core.data.mixture import missing_guard_files

    found: dict[str, tuple[list[str], list[str]]] = {}  # message -> (splits, arms)
    for arm in spec.arms():
        config = arm.config
        problems: list[tuple[str, str | None]] = []
        for name, table, prefix, splits in _dataset_uses(config):
            info = dataset_info(name)
            where = f"dataset_options{'.' + prefix[:-1] if prefix else ''}"
            for split in dict.fromkeys(splits.values()):
                problems += [(f"{where}: {m}", split) for m in missing_files(info, table, split)]
        problems += [(f"dataset_options.sunrgbd: {m}", config.train_split) for m in missing_guard_files(config)]
        if isinstance(config.pretrained, str) and not Path(config.pretrained).is_file():
            problems.append((f"pretrained: weights file not found: {config.pretrained}", None))
        for problem, problem_split in problems:
            splits_seen, arms = found.setdefault(problem, ([], []))
            if problem_split is not None and problem_split not in splits_seen:
                splits_seen.append(problem_split)
            if f"{arm.group}/{arm.label}" not in arms:
                arms.append(f"{arm.group}/{arm.label}")
    out = []
    for problem, (splits_seen, arms) in found.items():
        shown = ", ".join(arms[:3]) + (f" and {len(arms) - 3} more" if len(arms) > 3 else "")
        used = f"split{'s' if len(splits_seen) > 1 else ''} {', '.join(splits_seen)}; " if splits_seen else ""
        out.append(f"{spec.source}: {problem} ({used}arm{'s' if len(arms) > 1 else ''} {shown})")
    return out


def require_files(spec: Spec) -> None:
    """:class:`ConfigError` listing :func:`check_files`'s messages, if any."""
    problems = check_files(spec)
    if problems:
        raise ConfigError(
            "missing files, nothing was started:\n  "
            + "\n  ".join(problems)
            + "\n(set paths in the spec or with --set, e.g. --set dataset_options.root=/data/nyu)"
        )


# ---------------------------------------------------------------------------------------------------- arms


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


# ---------------------------------------------------------------------------------------------------- loading


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
    if "name" not in graw:
        raise ctx.error(path, 'a group needs a name (e.g. name = "a")')
    name = ctx.name(graw["name"], f"{path}.name", GROUP_NAME_RE, "group name")
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
    except ExpressionError as exc:
        raise ExpressionError(f"{ctx.source}: {path}: {exc}") from exc
    except ScheduleError as exc:
        raise ScheduleError(f"{ctx.source}: {path}: {exc}") from exc
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
    if "name" not in traw:
        raise ctx.error(path, 'a table needs a name (e.g. name = "table5a")')
    name = ctx.name(traw["name"], f"{path}.name", GROUP_NAME_RE, "table name")
    all_groups = [g.name for g in groups]
    group_names = ctx.strings(traw["groups"], f"{path}.groups", all_groups) if "groups" in traw else tuple(all_groups)
    if not group_names:
        raise ctx.error(f"{path}.groups", "a table needs at least one group")
    metrics = ctx.strings(traw.get("metrics", []), f"{path}.metrics", METRIC_NAMES)
    timings = ctx.strings(traw.get("timings", []), f"{path}.timings", TIMING_NAMES)
    if not metrics and not timings:
        raise ctx.error(path, f"a table needs metrics (from {', '.join(METRIC_NAMES)}) or timings")
    columns = ctx.strings(traw.get("columns", []), f"{path}.columns", DESCRIBE_COLUMNS)
    split = ctx.string(traw.get("split", "test"), f"{path}.split")
    if split not in TABLE_SPLITS:
        raise ctx.error(f"{path}.split", f"split must be one of {', '.join(TABLE_SPLITS)}, got {split!r}")
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


def _load_distribution(ctx: _Ctx, draw: Mapping[str, Any], path: str) -> Distribution:
    ctx.check_keys(draw, DISTRIBUTION_KEYS, path)
    kind = ctx.string(draw.get("kind", ""), f"{path}.kind")
    if kind not in DISTRIBUTION_KINDS:
        raise ctx.error(f"{path}.kind", f"kind must be one of {', '.join(DISTRIBUTION_KINDS)}, got {kind!r}")
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
    split = ctx.string(sraw.get("split", "val"), f"{path}.split")
    if split not in TABLE_SPLITS:
        raise ctx.error(f"{path}.split", f"split must be one of {', '.join(TABLE_SPLITS)}, got {split!r}")
    timeout = ctx.number(sraw["timeout_s"], f"{path}.timeout_s") if "timeout_s" in sraw else None
    if timeout is not None and timeout <= 0:
        raise ctx.error(f"{path}.timeout_s", f"expected a positive number of seconds, got {_fmt(timeout)}")
    sampler = ctx.string(sraw.get("sampler", "tpe"), f"{path}.sampler")
    if sampler not in SAMPLERS:
        raise ctx.error(f"{path}.sampler", f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    pruner = ctx.string(sraw.get("pruner", "median"), f"{path}.pruner")
    if pruner not in PRUNERS:
        raise ctx.error(f"{path}.pruner", f"pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")

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
    except ScheduleError:
        raise
    except MLRDError as exc:
        raise ctx.error(path, str(exc)) from exc


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
        raise ScheduleError(f"{ctx.source}: {path}: {exc}") from exc
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


def _load_slurm(ctx: _Ctx, sraw: Mapping[str, Any]) -> SlurmSettings:
    path = "slurm"
    ctx.check_keys(sraw, SLURM_KEYS, path)
    default = SlurmSettings()

    def optional_string(key: str) -> str | None:
        return ctx.string(sraw[key], f"{path}.{key}", empty=False) if key in sraw else None

    mem_gb = ctx.number(sraw["mem_gb"], f"{path}.mem_gb") if "mem_gb" in sraw else None
    if mem_gb is not None and mem_gb <= 0:
        raise ctx.error(f"{path}.mem_gb", f"expected a positive number of GB, got {_fmt(mem_gb)}")
    gpus = ctx.integer(sraw.get("gpus_per_task", default.gpus_per_task), f"{path}.gpus_per_task", 0)
    if gpus > 1:
        raise ctx.error(f"{path}.gpus_per_task", f"expected 0 (CPU) or 1 (the trainer uses one device), got {gpus}")
    setup = ctx.strings(sraw.get("setup", []), f"{path}.setup")
    sbatch: dict[str, str | int | bool] = {}
    for key, value in ctx.table(sraw.get("sbatch", {}), f"{path}.sbatch").items():
        if not SBATCH_OPTION_RE.fullmatch(key):
            raise ctx.error(
                f"{path}.sbatch", f"invalid sbatch option {key!r}: use the long name without '--', e.g. account"
            )
        if not isinstance(value, (str, int, bool)):
            raise ctx.error(f"{path}.sbatch.{key}", f"expected a string, an integer or true, got {_show(value)}")
        sbatch[key] = value
    return SlurmSettings(
        partition=optional_string("partition"),
        timeout_min=ctx.integer(sraw.get("timeout_min", default.timeout_min), f"{path}.timeout_min", 1),
        gpus_per_task=gpus,
        cpus_per_task=ctx.integer(sraw.get("cpus_per_task", default.cpus_per_task), f"{path}.cpus_per_task", 1),
        mem_gb=mem_gb,
        array_parallelism=ctx.integer(
            sraw.get("array_parallelism", default.array_parallelism), f"{path}.array_parallelism", 1
        ),
        folder=optional_string("folder"),
        max_timeouts=ctx.integer(sraw.get("max_timeouts", default.max_timeouts), f"{path}.max_timeouts", 0),
        signal_delay_s=ctx.integer(sraw.get("signal_delay_s", default.signal_delay_s), f"{path}.signal_delay_s", 0),
        setup=setup,
        sbatch=sbatch,
    )


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


# ---------------------------------------------------------------------------------------------------- overrides


def _parse_literal(text: str) -> Any:
    """A TOML literal (``1``, ``1e-4``, ``true``, ``"x"``, ``[0, 1]``, ``{a = 1}``); anything that is not valid TOML
    is taken as a bare string, so ``encoder=resnet50`` and ``losses=L_D | L_G`` work without quotes."""
    if "\n" in text or "\r" in text:
        raise ConfigError(f"an override value must be on one line, got {text!r}")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _override_target(spec: Spec, raw: Mapping[str, Any], parts: list[str], text: str) -> list[str | int]:
    """Where in the document ``--set`` writes (see docs/specs.md, "Overrides")."""
    usage = (
        f"cannot apply override {text!r}: use a run setting ({', '.join(SETTING_KEYS)}), seeds, spec.<field>, "
        "defaults.<key>, groups.<name>.<key>, overrides.<key>, search.<key> or slurm.<key>"
    )
    head, rest = parts[0], parts[1:]
    if head == "seeds" and not rest:
        return ["spec", "seeds"]
    if head in SETTING_KEYS:
        return ["overrides", *parts]
    if head == "spec" and len(rest) == 1:
        return ["spec", rest[0]]
    if head in ("defaults", "overrides", "search", "slurm") and rest:
        return [head, *rest]
    if head == "groups" and len(rest) >= 2:
        names = [g.get("name") for g in raw.get("groups", []) if isinstance(g, Mapping)]
        if rest[0] not in names:
            raise ConfigError(
                f"{usage}; spec {spec.name!r} has no group {rest[0]!r} (groups: {', '.join(map(str, names))})"
            )
        index = names.index(rest[0])
        tail = rest[2:] if rest[1] == "defaults" else rest[1:]
        if not tail:
            raise ConfigError(usage)
        if tail[0] in ("title", "description") and len(tail) == 1:
            return ["groups", index, tail[0]]
        return ["groups", index, "defaults", *tail]
    raise ConfigError(usage)


def _deep_set(doc: dict[str, Any], keys: Sequence[str | int], value: Any, text: str) -> None:
    node: Any = doc
    for i, key in enumerate(keys[:-1]):
        if isinstance(node, list):
            node = node[key]  # type: ignore[index]
            continue
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, (dict, list)):
            shown = ".".join(str(k) for k in keys[: i + 1])
            raise ConfigError(f"cannot apply override {text!r}: {shown} is {child!r}, not a table")
        node = child
    node[keys[-1]] = value


def apply_overrides(spec: Spec, assignments: Sequence[str]) -> Spec:
    """A new spec with ``--set`` assignments applied, validated like a file.

    Each assignment is ``KEY=VALUE``; VALUE is a TOML literal (or a bare string). KEY is a run setting (forced on
    every arm: written to [overrides], the highest precedence), ``seeds``, or a dotted path: ``spec.seeds``,
    ``defaults.batch_size``, ``groups.a.epochs`` (group defaults), ``overrides.dataset_options.root``,
    ``search.n_trials``, ``slurm.partition``. Table-valued settings take dotted sub-keys
    (``dataset_options.train.length=64``).
    """
    raw: dict[str, Any] = copy.deepcopy(dict(spec.raw))
    for text in assignments:
        key, sep, value_text = text.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.strip() for p in parts):
            raise ConfigError(f"an override is KEY=VALUE (e.g. epochs=1 or defaults.batch_size=4), got {text!r}")
        target = _override_target(spec, raw, [p.strip() for p in parts], text)
        _deep_set(raw, target, _parse_literal(value_text.strip()), text)
    source = f"{spec.source} (with --set {' '.join(assignments)})" if assignments else spec.source
    return spec_from_dict(raw, source=source, default_name=spec.name, path=spec.path)
