"""The records a spec loads into: :class:`Spec`, :class:`Group`, :class:`Arm`, :class:`Reference`, :class:`Table`,
:class:`Distribution`, :class:`SearchSpec`, :class:`SlurmSettings` (frozen dataclasses)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlrd_core.config import RunConfig


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
