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

The package, by concern (each module imports only those above it)::

    vocabulary       the keys of every table, the settings an arm may set (RUN_KEYS, SHORTHANDS, ...)
    records          Spec, Group, Arm, Reference, Table, Distribution, SearchSpec, SlurmSettings
    values           the error context (file + key path), coercion to RunConfig types, option normal forms
    validation       shared levels checked on their own; errors before training; check_files / require_files
    resolution       levels merged into one RunConfig per arm, arm grids, groups and arms by name, apply_settings
    search_space     the [search] table: template, distributions, searched settings, enqueued points
    slurm_settings   the [slurm] table
    loading          load_spec / loads_spec / spec_from_dict: head, groups, references, tables and baseline pairs
    overrides        apply_overrides (--set key=value)

Every public name is importable from ``suite.spec`` itself.
"""

from __future__ import annotations

from suite.spec.loading import load_spec, loads_spec, spec_from_dict
from suite.spec.overrides import apply_overrides
from suite.spec.records import Arm, Distribution, Group, Reference, SearchSpec, SlurmSettings, Spec, Table
from suite.spec.resolution import apply_settings
from suite.spec.search_space import search_point, search_setting_value
from suite.spec.validation import check_files, require_files
from suite.spec.values import normalize_weighting_option
from suite.spec.vocabulary import (
    ARM_KEYS,
    DEFAULT_SEEDS,
    DESCRIBE_COLUMNS,
    DISTRIBUTION_KINDS,
    GROUP_KEYS,
    REFERENCE_KEYS,
    RUN_KEYS,
    SEARCH_KEYS,
    SEARCH_SETTING_KEYS,
    SEQUENCE_KEYS,
    SETTING_KEYS,
    SHORTHANDS,
    SLURM_KEYS,
    SPEC_KEYS,
    TABLE_KEYS,
    TIMING_NAMES,
    TOP_KEYS,
    UNSEARCHABLE_KEYS,
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
