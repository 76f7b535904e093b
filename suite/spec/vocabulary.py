"""The spec vocabulary: the keys of every table, the settings an arm may set, the search's and SLURM's keys."""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

from mlrd_core.config import RunConfig
from mlrd_core.metrics import METRIC_NAMES
from mlrd_core.trainer import TIMING_PHASES

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
