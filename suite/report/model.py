"""The report model: the frames' columns, :class:`TableLayout` (what a table shows) and :class:`ReportTable`
(columns, parts, rows, cells with their flags), which every renderer prints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mlrd_core.errors import MLRDError


class ReportError(MLRDError, ValueError):
    """The inputs of a report are inconsistent (missing columns, duplicated runs, ambiguous baselines)."""


Outcome = Literal["improved", "degraded", "tie"]


#: Columns of the store's long metrics frame that :func:`summarize` reads.
METRICS_FRAME_COLUMNS: tuple[str, ...] = (
    "run_id",
    "group",
    "arm",
    "seed",
    "split",
    "epoch",
    "protocol",
    "metric",
    "value",
)


#: Columns of :func:`summarize`'s result, in order.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "group",
    "arm",
    "metric",
    "split",
    "protocol",
    "n",
    "mean",
    "std",
    "sem",
    "ci95",
    "seeds",
)


#: Columns of :func:`compare`'s result, in order.
COMPARISON_COLUMNS: tuple[str, ...] = (
    "group",
    "arm",
    "metric",
    "baseline_group",
    "baseline_arm",
    "mean",
    "std",
    "n",
    "baseline_mean",
    "baseline_std",
    "baseline_n",
    "diff",
    "n_paired",
    "diff_low",
    "diff_high",
    "test",
    "outcome",
    "p_value",
)


#: Columns of a reference (paper) frame.
REFERENCE_COLUMNS: tuple[str, ...] = ("group", "arm", "source", "metric", "value")


#: Columns of the store's timings frame that :func:`summarize_timings` reads.
TIMINGS_FRAME_COLUMNS: tuple[str, ...] = ("run_id", "spec", "group", "arm", "seed", "name", "value")


#: Header labels of the descriptive columns a spec can ask for (Table 5: "# Losses, I, R, λ"); (Markdown, LaTeX).
#: A column that is not listed here is headed by its own name.
COLUMN_LABELS: dict[str, tuple[str, str]] = {
    "losses": ("Losses", "Losses"),
    "n_losses": ("# Losses", r"\# Losses"),
    "init": ("I", "I"),
    "rebalance": ("R", "R"),
    "lambda": ("λ", r"$\lambda$"),
    "weighting": ("Weighting", "Weighting"),
    "encoder": ("Encoder", "Encoder"),
}


#: An arm with fewer finished seeds than this is flagged in every table.
MIN_SEEDS = 3


@dataclass(frozen=True)
class TableLayout:
    """What one table shows.

    ``groups``: the spec's groups, one sub-table each, in this order. ``metrics``: metric names, in column order.
    ``columns``: descriptive columns (keys of the descriptors frame), shown between the arm and ``n``.
    ``split``: which split's summary rows to use. ``baseline``: the group whose arm with the same value of
    ``baseline_key`` is the comparison row of every other group's arm (``None``: no comparison).
    ``group_titles``: optional titles; a title not starting with ``(`` is prefixed with the part letter, as in
    "(a) Combination of loss functions". ``pairs``: ``{(group, arm): (baseline group, baseline arm)}`` resolved by
    the spec loader (on every ``baseline_match`` key, or one ``baseline_arm`` for the whole table); when given it
    replaces the matching on ``baseline_key``. ``baseline_arm``: the single arm every other arm is compared with,
    for the legend. ``timings``: ``metrics`` are timing names (Table 7: seconds, :func:`summarize_timings`), shown
    as ``mean ± std`` with four significant digits and, with ``ratio_to`` (an arm of each group), the ratio of
    each mean to that arm's.
    """

    name: str
    title: str
    groups: tuple[str, ...]
    metrics: tuple[str, ...]
    columns: tuple[str, ...] = ()
    split: str = "test"
    baseline: str | None = None
    baseline_key: str = "losses"
    group_titles: Mapping[str, str] = field(default_factory=dict)
    pairs: Mapping[tuple[str, str], tuple[str, str]] | None = None
    baseline_arm: str | None = None
    timings: bool = False
    ratio_to: str | None = None

    def __post_init__(self) -> None:
        for name in ("groups", "metrics", "columns"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ReportError(f"TableLayout.{name} must be a sequence of names, got the string {value!r}")
            object.__setattr__(self, name, tuple(value))
        if not self.groups:
            raise ReportError(f"table {self.name!r}: expected at least one group, got none")
        if not self.metrics:
            raise ReportError(f"table {self.name!r}: expected at least one metric, got none")

    def part(self, group: str) -> str:
        """How the legend names a part: its letter "(a)" when it is one of several ``groups``; a group the table does
        not show (a baseline from elsewhere in the spec) by name and title: 'group "paper" (<title>)'."""
        if group in self.groups and len(self.groups) > 1:
            return f"({_part_letter(self.groups.index(group))})"
        title = self.group_titles.get(group)
        return f'group "{group}"' + (f" ({title})" if title and title != group else "")

    def group_title(self, group: str) -> str:
        """The sub-table title of ``group``: "(a) <title>" with the part letter from the group's position when the
        table has several parts; a table of one part is not lettered."""
        title = self.group_titles.get(group, group)
        if title.startswith("(") or group not in self.groups or len(self.groups) == 1:
            return title
        return f"({_part_letter(self.groups.index(group))}) {title}"


def _part_letter(index: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return letters[index] if index < len(letters) else str(index + 1)


@dataclass(frozen=True)
class Column:
    """A header cell: ``key`` (arm / descriptor / "n" / metric or timing name), its labels and its role."""

    key: str
    label: str
    latex: str
    kind: Literal["arm", "descriptor", "n", "metric", "timing"]
    higher_is_better: bool | None = None


@dataclass(frozen=True)
class Cell:
    """One metric of one row. Measured rows: mean, std, n, sem, ci95 over seeds; reference rows: ``mean`` is the
    published value (n = 0). ``best``: bold. Against the baseline row: ``diff`` with its interval
    [``diff_low``, ``diff_high``] over ``n_paired`` seeds by ``test`` (see :func:`paired_difference`), its
    ``p_value``, and ``outcome``, set only where that interval excludes 0 (reference rows: the paper's own).
    Timing cells: ``ratio`` of the mean to the ``ratio_to`` arm's (reference rows: to the same source's row)."""

    mean: float = math.nan
    std: float = math.nan
    n: int = 0
    sem: float = math.nan
    ci95: float = math.nan
    best: bool = False
    outcome: Outcome | None = None
    diff: float = math.nan
    p_value: float = math.nan
    diff_low: float = math.nan
    diff_high: float = math.nan
    n_paired: int = 0
    test: str | None = None
    ratio: float = math.nan

    @property
    def compared(self) -> bool:
        """Whether the cell has a difference against a baseline with an interval."""
        return self.test is not None and math.isfinite(self.diff)


@dataclass(frozen=True)
class Row:
    """One table row: the measured row of an arm (``source`` None) or one of its reference rows (``source`` e.g.
    "paper"), which follow it."""

    arm: str
    source: str | None
    descriptors: Mapping[str, Any]
    n: int
    cells: Mapping[str, Cell]
    baseline_arm: str | None = None

    @property
    def few_seeds(self) -> bool:
        """A measured row with fewer than ``MIN_SEEDS`` finished seeds (flagged ‡)."""
        return self.source is None and 0 < self.n < MIN_SEEDS


@dataclass(frozen=True)
class Section:
    """A sub-table: one group of the spec, with its title ("(a) Combination of loss functions")."""

    group: str
    title: str
    rows: tuple[Row, ...]

    @property
    def has_runs(self) -> bool:
        """Whether any arm of this part has a measured value."""
        return any(r.source is None and r.n > 0 for r in self.rows)


@dataclass(frozen=True)
class ReportTable:
    """Everything the renderers print, already decided (values, best, outcomes)."""

    name: str
    title: str
    split: str
    columns: tuple[Column, ...]
    sections: tuple[Section, ...]
    baseline: str | None = None
    baseline_part: str | None = None
    baseline_key: str = "losses"
    protocols: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    baseline_arm: str | None = None
    data_note: str | None = None
    ratio_to: str | None = None

    @property
    def timings(self) -> bool:
        """Whether this is a timing table (Table 7): its value columns are timings, not metrics."""
        return any(c.kind == "timing" for c in self.columns)

    def compared_rows(self) -> list[tuple[Section, Row]]:
        """The measured rows that have a baseline, with their part, in table order."""
        return [(s, r) for s in self.sections for r in s.rows if r.source is None and r.baseline_arm is not None]

    @property
    def few_seeds(self) -> bool:
        """Whether some arm is flagged for fewer than ``MIN_SEEDS`` finished seeds."""
        return any(r.few_seeds for s in self.sections for r in s.rows)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metric (or timing) names in column order."""
        return tuple(c.key for c in self.columns if c.kind in ("metric", "timing"))

    @property
    def descriptor_columns(self) -> tuple[str, ...]:
        """Descriptive column keys in column order."""
        return tuple(c.key for c in self.columns if c.kind == "descriptor")

    @property
    def has_runs(self) -> bool:
        """Whether any arm of the table has a measured value."""
        return any(s.has_runs for s in self.sections)
