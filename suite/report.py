"""Paper-style result tables: seed statistics, baseline comparisons, and Markdown / LaTeX / CSV renderings.

The pipeline has three pure steps (DataFrames in, DataFrames or strings out; no I/O):

1. :func:`summarize` turns the store's long metrics frame into per ``(group, arm, metric)`` seed statistics:
   mean, sample std (ddof = 1), n, standard error and the half-width of a 95 % Student-t interval.
2. :func:`compare` pairs every compared arm with its baseline arm (Table 5(b) against 5(a): the arm of the
   baseline group with the same loss set; or one baseline arm for the whole table) and estimates the difference
   from the seeds both arms ran: arms that share a seed share the initialisation and the data order, so their
   per-seed differences are paired (:func:`paired_difference`: mean difference, 95 % paired t interval, a BCa
   bootstrap interval from 10 paired seeds up). A difference is marked improved / degraded only when its interval
   excludes 0.
3. :func:`build_table` assembles one :class:`ReportTable` (columns, sub-tables, rows, cells with their flags);
   :func:`render_markdown`, :func:`render_latex` and :func:`render_csv` are pure functions of that model, so the
   three formats can never disagree.

Conventions (see ``docs/reports.md``):

- δ metrics are fractions in the store and in the CSV; the Markdown and LaTeX tables show them in percent with one
  decimal (as the paper does); every other metric is shown with three decimals.
- "Best" (bold) is decided on the means *as displayed*: two values that print alike are a tie (all tied best are
  bold). "Improved / degraded" (red / blue, Markdown ``(+)`` / ``(−)``) needs more than a better mean: the 95 %
  interval of the paired difference must exclude 0 (and the means must print differently). The differences and
  their intervals are printed under the table, and the CSV carries them with the test's p-value.
- An arm with fewer than ``MIN_SEEDS`` finished seeds is flagged (‡): its spread and intervals rest on too little.
- The paper's numbers are rendered as italic rows under the measured row of the same arm, with the paper's own
  red / blue against the paper's baseline row; they are never bold (bold marks our best measured mean).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from mlrd_core.errors import ExpressionError, MLRDError
from mlrd_core.losses.expr import parse as parse_expression
from mlrd_core.metrics import HIGHER_IS_BETTER, METRIC_LABELS, METRIC_LATEX, METRIC_NAMES


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

#: Confidence level of the ``ci95`` column.
CONFIDENCE = 0.95

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

MISSING = "–"  # an en dash, as in the paper's tables
_MARKERS: dict[str, str] = {"improved": "(+)", "degraded": "(−)"}
_LATEX_COLOURS: dict[str, str] = {"improved": "red", "degraded": "blue"}
#: An arm with fewer finished seeds than this is flagged in every table.
MIN_SEEDS = 3
#: From this many paired seeds on, the interval of a difference is a BCa bootstrap (enough distinct resamples).
BOOTSTRAP_MIN_N = 10
BOOTSTRAP_RESAMPLES = 10_000
_FEW_SEEDS = "‡"
_LATEX_PACKAGES = r"\usepackage{booktabs,xcolor,amssymb}"


# ----------------------------------------------------------------------------------------------------------------
# Layout (the lead maps the spec's table layout onto this)


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
        """How the legend names a part: its letter "(a)" when it is one of ``groups``, else its name."""
        return f"({_part_letter(self.groups.index(group))})" if group in self.groups else group

    def group_title(self, group: str) -> str:
        """The sub-table title of ``group``: "(a) <title>" with the part letter from the group's position."""
        title = self.group_titles.get(group, group)
        if title.startswith("("):
            return title
        if group in self.groups:
            return f"({_part_letter(self.groups.index(group))}) {title}"
        return title


def _part_letter(index: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return letters[index] if index < len(letters) else str(index + 1)


# ----------------------------------------------------------------------------------------------------------------
# 1. Seed statistics


def summarize(metrics: pd.DataFrame, *, split: str = "test", epoch: int | Literal["last"] = "last") -> pd.DataFrame:
    """Seed statistics per ``(group, arm, metric)`` of one split.

    ``metrics`` is the store's long frame (one row per run × metric × epoch, columns ``METRICS_FRAME_COLUMNS``).
    ``epoch="last"`` keeps, for each run, that run's last epoch evaluated on ``split``; an integer keeps that
    epoch. Non-finite values are dropped (n counts the finite ones).

    Returns the columns ``SUMMARY_COLUMNS``: ``n`` (seeds), ``mean``, ``std`` (sample, ddof = 1; NaN for n = 1),
    ``sem`` = std / √n and ``ci95`` = t₀.₉₇₅(n − 1) · sem, the half-width of the 95 % t-interval of the mean, and
    ``seeds``, the per-seed values ``{seed: value}`` that :func:`compare` pairs.
    Rows follow the first appearance of groups and arms; metrics follow ``METRIC_NAMES``.

    Raises :class:`ReportError` on missing columns, on one run with two different values of a metric, on two runs
    of one arm with the same seed, and on one arm evaluated under two protocols.
    """
    missing = [c for c in METRICS_FRAME_COLUMNS if c not in metrics.columns]
    if missing:
        raise ReportError(
            f"metrics frame: expected columns {list(METRICS_FRAME_COLUMNS)}, missing {missing} "
            f"(got {list(metrics.columns)})"
        )
    frame = metrics.loc[metrics["split"] == split, list(METRICS_FRAME_COLUMNS)]
    if epoch == "last":
        last = frame.groupby("run_id")["epoch"].transform("max")
        # a run evaluated once without an epoch number (epoch missing) keeps that evaluation
        frame = frame[(frame["epoch"] == last) | (last.isna() & frame["epoch"].isna())]
    else:
        frame = frame[frame["epoch"] == epoch]
    frame = frame[np.isfinite(frame["value"].to_numpy(dtype=float))]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=_SUMMARY_DTYPES[c]) for c in SUMMARY_COLUMNS})

    keys = ["group", "arm", "run_id", "metric"]
    frame = frame.drop_duplicates(subset=[*keys, "value", "protocol"])
    clash = frame[frame.duplicated(subset=keys, keep=False)]
    if not clash.empty:
        first = clash.iloc[0]
        raise ReportError(
            f"run {first['run_id']} ({first['group']}/{first['arm']}) has "
            f"{int((clash['run_id'] == first['run_id']).sum())} different values of {first['metric']!r} "
            f"at epoch {first['epoch']} of split {split!r}; "
            "expected one (check the ingest of that run)"
        )
    runs = frame.drop_duplicates(subset=["group", "arm", "run_id"])
    twins = runs[runs.duplicated(subset=["group", "arm", "seed"], keep=False)]
    if not twins.empty:
        first = twins.iloc[0]
        ids = sorted(twins.loc[(twins["group"] == first["group"]) & (twins["arm"] == first["arm"]), "run_id"])
        raise ReportError(
            f"arm {first['group']}/{first['arm']} has {len(ids)} runs with seed {first['seed']} ({', '.join(ids)}); "
            "expected one run per seed (filter the metrics frame to the runs of one plan / code version)"
        )

    order = _metric_order(frame["metric"])
    rows: list[dict[str, Any]] = []
    for (group, arm, metric), cell in frame.groupby(["group", "arm", "metric"], sort=False):
        protocols = sorted(set(cell["protocol"].astype(str)))
        if len(protocols) > 1:
            raise ReportError(
                f"arm {group}/{arm}, metric {metric!r}: runs were evaluated under different protocols {protocols}; "
                "expected one (values under different protocols are not comparable)"
            )
        n, mean, std, sem, ci = seed_statistics(cell["value"].to_numpy(dtype=float))
        rows.append(
            {
                "group": group,
                "arm": arm,
                "metric": metric,
                "split": split,
                "protocol": protocols[0],
                "n": n,
                "mean": mean,
                "std": std,
                "sem": sem,
                "ci95": ci,
                "seeds": {int(s): float(v) for s, v in zip(cell["seed"], cell["value"], strict=True)},
            }
        )
    out = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    arm_order = {ga: i for i, ga in enumerate(dict.fromkeys(zip(frame["group"], frame["arm"], strict=True)))}
    out["_arm"] = [arm_order[(g, a)] for g, a in zip(out["group"], out["arm"], strict=True)]
    out["_metric"] = out["metric"].map(order)
    return out.sort_values(["_arm", "_metric"], kind="stable").drop(columns=["_arm", "_metric"]).reset_index(drop=True)


_SUMMARY_DTYPES: dict[str, str] = {
    "group": "object",
    "arm": "object",
    "metric": "object",
    "split": "object",
    "protocol": "object",
    "n": "int64",
    "mean": "float64",
    "std": "float64",
    "sem": "float64",
    "ci95": "float64",
    "seeds": "object",
}


def seed_statistics(values: Sequence[float] | np.ndarray) -> tuple[int, float, float, float, float]:
    """``(n, mean, std, sem, ci95)`` of per-seed values: sample std (ddof = 1), std / √n, and the half-width of
    the 95 % Student-t interval of the mean. std, sem and ci95 are NaN for n < 2; everything is NaN for n = 0."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    if n == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return n, mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    sem = std / math.sqrt(n)
    ci = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sem
    return n, mean, std, sem, ci


#: Columns of the store's timings frame that :func:`summarize_timings` reads.
TIMINGS_FRAME_COLUMNS: tuple[str, ...] = ("run_id", "spec", "group", "arm", "seed", "name", "value")


def summarize_timings(timings: pd.DataFrame, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Seed statistics per ``(group, arm, timing)`` of the store's timings frame (``TIMINGS_FRAME_COLUMNS``), in
    :func:`summarize`'s columns (``metric`` holds the timing name; ``split`` and ``protocol`` are empty), so that
    :func:`build_table` lays a timing table out like any other. ``names``: keep only these timings."""
    missing = [c for c in ("group", "arm", "seed", "name", "value") if c not in timings.columns]
    if missing:
        raise ReportError(f"timings frame: expected columns {list(TIMINGS_FRAME_COLUMNS)}, missing {missing}")
    frame = timings if names is None else timings[timings["name"].isin(list(names))]
    frame = frame[np.isfinite(frame["value"].to_numpy(dtype=float))]
    rows: list[dict[str, Any]] = []
    for (group, arm, name), cell in frame.groupby(["group", "arm", "name"], sort=False):
        n, mean, std, sem, ci = seed_statistics(cell["value"].to_numpy(dtype=float))
        seeds = {int(s): float(v) for s, v in zip(cell["seed"], cell["value"], strict=True)}
        rows.append(dict(zip(SUMMARY_COLUMNS, (group, arm, name, "", None, n, mean, std, sem, ci, seeds), strict=True)))
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=_SUMMARY_DTYPES[c]) for c in SUMMARY_COLUMNS})
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _metric_order(metrics: Iterable[str]) -> dict[str, int]:
    """Known metrics in ``METRIC_NAMES`` order, then the others in order of appearance."""
    order = {m: i for i, m in enumerate(METRIC_NAMES)}
    for m in dict.fromkeys(metrics):
        order.setdefault(m, len(order))
    return order


# ----------------------------------------------------------------------------------------------------------------
# Display precision (shared by the renderers and by the best / improved decisions)


def _is_delta(metric: str) -> bool:
    return metric.startswith("delta")


def format_value(metric: str, value: float) -> str:
    """A metric value as the tables print it: δ in percent with one decimal (0.8691 → "86.9"), every other metric
    with three decimals, ``MISSING`` for NaN."""
    if not math.isfinite(value):
        return MISSING
    if _is_delta(metric):
        return f"{100.0 * value:.1f}"
    return f"{value:.3f}"


def format_difference(metric: str, value: float) -> str:
    """A signed difference as the tables print it: δ in percentage points with one decimal (0.031 → "+3.1"), every
    other metric with three decimals, ``MISSING`` for NaN."""
    if not math.isfinite(value):
        return MISSING
    text = f"{100.0 * value:+.1f}" if _is_delta(metric) else f"{value:+.3f}"
    return text.replace("-", "−")


def difference_text(metric: str, cell: Cell) -> str:
    """``"+3.1 [−0.8, +7.0]"``: a compared cell's difference and its interval (``MISSING`` when there is none)."""
    if not cell.compared:
        return MISSING
    low, high = format_difference(metric, cell.diff_low), format_difference(metric, cell.diff_high)
    return f"{format_difference(metric, cell.diff)} [{low}, {high}]"


def _direction(metric: str) -> bool | None:
    return HIGHER_IS_BETTER.get(metric)


def _outcome(metric: str, value: float, baseline: float) -> Outcome | None:
    """Improved / degraded / tie of ``value`` against ``baseline``, at the displayed precision."""
    higher = _direction(metric)
    if higher is None or not (math.isfinite(value) and math.isfinite(baseline)):
        return None
    if format_value(metric, value) == format_value(metric, baseline):
        return "tie"
    return "improved" if (value > baseline) == higher else "degraded"


# ----------------------------------------------------------------------------------------------------------------
# 2. Baseline comparison


def compare(summary: pd.DataFrame, layout: TableLayout, descriptors: pd.DataFrame) -> pd.DataFrame:
    """Each compared arm of ``layout`` against its baseline arm, metric by metric.

    The pairs are ``layout.pairs`` when given (resolved by the spec loader), else the arm of group
    ``layout.baseline`` whose descriptor ``layout.baseline_key`` has the same value (Table 5(b) vs 5(a): the same
    loss set). Per metric in ``layout.metrics`` measured on both sides, returns the columns ``COMPARISON_COLUMNS``:
    both means, stds and n; ``diff`` (arm − baseline), ``diff_low`` / ``diff_high`` (its 95 % interval),
    ``n_paired`` and ``test`` from :func:`paired_difference` on the per-seed values; ``outcome``
    ("improved" / "degraded" / "tie", direction-aware and at the displayed precision) only where the interval
    excludes 0 (None otherwise, and for a metric without a known direction); ``p_value`` of the same test. Arms
    without a baseline, and metrics missing on either side, give no row.

    Raises :class:`ReportError` when the descriptors lack ``baseline_key`` or two baseline arms share a key.
    """
    empty = pd.DataFrame({c: pd.Series(dtype="object") for c in COMPARISON_COLUMNS})
    if layout.baseline is None:
        return empty
    matches = _baseline_matches(layout, descriptors)
    stats_by_key = _summary_lookup(summary, layout.split)
    rows: list[dict[str, Any]] = []
    for (group, arm), (base_group, base_arm) in matches.items():
        for metric in layout.metrics:
            a = stats_by_key.get((group, arm, metric))
            b = stats_by_key.get((base_group, base_arm, metric))
            if a is None or b is None or not (math.isfinite(a.mean) and math.isfinite(b.mean)):
                continue
            d = paired_difference(a.seeds, b.seeds)
            rows.append(
                {
                    "group": group,
                    "arm": arm,
                    "metric": metric,
                    "baseline_group": base_group,
                    "baseline_arm": base_arm,
                    "mean": a.mean,
                    "std": a.std,
                    "n": a.n,
                    "baseline_mean": b.mean,
                    "baseline_std": b.std,
                    "baseline_n": b.n,
                    "diff": d.mean,
                    "n_paired": d.n,
                    "diff_low": d.low,
                    "diff_high": d.high,
                    "test": d.test,
                    "outcome": _outcome(metric, a.mean, b.mean) if d.excludes_zero else None,
                    "p_value": d.p_value,
                }
            )
    if not rows:
        return empty
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


@dataclass(frozen=True)
class Difference:
    """The difference arm − baseline of one metric: its estimate ``mean``, the ``confidence`` interval
    [``low``, ``high``], the two-sided ``p_value`` of ``test`` and ``n`` (paired seeds; for Welch's test, the
    smaller of the two arms' seed counts)."""

    mean: float
    low: float
    high: float
    p_value: float
    n: int
    test: str | None

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely above or below 0 (the difference is distinguishable from none)."""
        return math.isfinite(self.low) and math.isfinite(self.high) and (self.low > 0.0 or self.high < 0.0)


#: ``Difference.test`` values, as the legends name them.
PAIRED_T = "paired t"
PAIRED_BOOTSTRAP = "paired BCa bootstrap"
WELCH_T = "Welch t (unpaired)"


def paired_difference(
    values: Mapping[int, float], baseline: Mapping[int, float], *, confidence: float = CONFIDENCE
) -> Difference:
    """The difference ``values − baseline`` of per-seed results ``{seed: value}``.

    Seeds that both arms ran are paired (same initialisation and data order): the estimate is the mean of the
    per-seed differences, the interval the paired Student t interval (n − 1 degrees of freedom) and the p-value
    that of ``scipy.stats.ttest_rel``. From ``BOOTSTRAP_MIN_N`` paired seeds on, the interval is a BCa bootstrap of
    the mean difference (``BOOTSTRAP_RESAMPLES`` resamples, a fixed generator, so tables are reproducible). With
    fewer than 2 shared seeds but at least 2 seeds on each side, the arms are compared unpaired with Welch's t
    (difference of the means, Welch–Satterthwaite degrees of freedom). Otherwise everything is NaN.
    Differences that are all equal give a zero-width interval at their value.
    """
    shared = sorted(set(values) & set(baseline))
    if len(shared) >= 2:
        d = np.array([values[s] - baseline[s] for s in shared], dtype=float)
        n, mean = d.size, float(d.mean())
        sd = float(d.std(ddof=1))
        if sd == 0.0:
            return Difference(mean, mean, mean, 0.0 if mean != 0.0 else 1.0, n, PAIRED_T)
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
        p_value = float(stats.ttest_rel([values[s] for s in shared], [baseline[s] for s in shared]).pvalue)
        if n < BOOTSTRAP_MIN_N:
            return Difference(mean, mean - half, mean + half, p_value, n, PAIRED_T)
        boot = stats.bootstrap(
            (d,),
            np.mean,
            confidence_level=confidence,
            n_resamples=BOOTSTRAP_RESAMPLES,
            method="BCa",
            rng=np.random.default_rng(0),
        )
        low, high = boot.confidence_interval
        return Difference(mean, float(low), float(high), p_value, n, PAIRED_BOOTSTRAP)
    a = np.array(list(values.values()), dtype=float)
    b = np.array(list(baseline.values()), dtype=float)
    if a.size < 2 or b.size < 2 or (a.std() == 0.0 and b.std() == 0.0):
        return Difference(math.nan, math.nan, math.nan, math.nan, len(shared), None)
    result = stats.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(confidence_level=confidence)
    mean = float(a.mean() - b.mean())
    return Difference(mean, float(ci.low), float(ci.high), float(result.pvalue), min(a.size, b.size), WELCH_T)


@dataclass(frozen=True)
class _Stat:
    n: int
    mean: float
    std: float
    sem: float
    ci95: float
    protocol: str | None
    seeds: Mapping[int, float]


def _summary_lookup(summary: pd.DataFrame, split: str | None) -> dict[tuple[str, str, str], _Stat]:
    required = ("group", "arm", "metric", "n", "mean", "std")
    missing = [c for c in required if c not in summary.columns]
    if missing:
        raise ReportError(f"summary frame: expected columns {list(required)}, missing {missing}")
    frame = summary
    if split is not None and "split" in frame.columns:
        frame = frame[frame["split"] == split]
    out: dict[tuple[str, str, str], _Stat] = {}
    for rec in frame.to_dict("records"):
        out[(str(rec["group"]), str(rec["arm"]), str(rec["metric"]))] = _Stat(
            n=int(rec["n"]),
            mean=float(rec["mean"]),
            std=float(rec["std"]),
            sem=float(rec.get("sem", math.nan)),
            ci95=float(rec.get("ci95", math.nan)),
            protocol=None if _is_missing(rec.get("protocol")) else str(rec.get("protocol")),
            seeds=rec.get("seeds") if isinstance(rec.get("seeds"), Mapping) else {},
        )
    return out


def _descriptor_lookup(descriptors: pd.DataFrame | None) -> dict[tuple[str, str], dict[str, Any]]:
    if descriptors is None or descriptors.empty:
        return {}
    missing = [c for c in ("group", "arm") if c not in descriptors.columns]
    if missing:
        raise ReportError(f"descriptors frame: expected columns ['group', 'arm', ...], missing {missing}")
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in descriptors.to_dict("records"):
        key = (str(rec.pop("group")), str(rec.pop("arm")))
        if key in out:
            raise ReportError(f"descriptors frame: arm {key[0]}/{key[1]} appears twice; expected one row per arm")
        out[key] = rec
    return out


def _baseline_matches(layout: TableLayout, descriptors: pd.DataFrame | None) -> dict[tuple[str, str], tuple[str, str]]:
    """``(group, arm) -> (baseline group, baseline arm)`` for every compared arm that has a baseline."""
    if layout.baseline is None:
        return {}
    if layout.pairs is not None:
        return dict(layout.pairs)
    lookup = _descriptor_lookup(descriptors)
    key = layout.baseline_key
    if lookup and not any(key in values for values in lookup.values()):
        raise ReportError(
            f"table {layout.name!r}: baseline_key {key!r} is not a descriptor column; "
            f"got {sorted({c for values in lookup.values() for c in values})}"
        )
    by_value: dict[Any, list[str]] = {}
    for (group, arm), values in lookup.items():
        if group == layout.baseline and not _is_missing(values.get(key)):
            by_value.setdefault(_hashable(values[key]), []).append(arm)
    for value, arms in by_value.items():
        if len(arms) > 1:
            raise ReportError(
                f"table {layout.name!r}: baseline group {layout.baseline!r} has {len(arms)} arms with "
                f"{key} = {value!r} ({', '.join(arms)}); expected at most one"
            )
    matches: dict[tuple[str, str], tuple[str, str]] = {}
    for (group, arm), values in lookup.items():
        if group == layout.baseline or group not in layout.groups or _is_missing(values.get(key)):
            continue
        base = by_value.get(_hashable(values[key]))
        if base:
            matches[(group, arm)] = (layout.baseline, base[0])
    return matches


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple | np.ndarray):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


# ----------------------------------------------------------------------------------------------------------------
# 3. The table model


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


def build_table(
    summary: pd.DataFrame,
    layout: TableLayout,
    descriptors: pd.DataFrame | None = None,
    references: pd.DataFrame | None = None,
    comparisons: pd.DataFrame | None = None,
) -> ReportTable:
    """Assemble the table model of ``layout`` from a :func:`summarize` frame, the arms' descriptive values
    (``[group, arm, <column>...]``), the paper's numbers (``[group, arm, source, metric, value]``, δ as fractions)
    and the baseline comparisons (default: :func:`compare` of the same inputs).

    Arms appear in the order of ``descriptors``, then of ``summary``, then of ``references``. Each measured row is
    followed by one italic row per reference source of the same arm. Bold best: per metric within a part, among
    at least two measured means, direction-aware, ties (at the displayed precision) all bold.
    """
    stats_by_key = _summary_lookup(summary, None if layout.timings else layout.split)
    described = _descriptor_lookup(descriptors)
    refs = _reference_lookup(references)
    if comparisons is None:
        comparisons = compare(summary, layout, descriptors if descriptors is not None else pd.DataFrame())
    matches = _baseline_matches(layout, descriptors)
    outcome_of = {(str(r["group"]), str(r["arm"]), str(r["metric"])): r for r in comparisons.to_dict("records")}
    sources = tuple(dict.fromkeys(src for (_, _, src) in refs))
    ref_outcomes = _reference_outcomes(refs, sources, layout, matches)

    columns = _columns(layout)
    sections: list[Section] = []
    protocols: dict[str, None] = {}
    for group in layout.groups:
        arms = dict.fromkeys(
            [a for (g, a) in described if g == group]
            + [a for (g, a, _) in stats_by_key if g == group]
            + [a for (g, a, _) in refs if g == group]
        )
        best = _best_means(layout.metrics, [{m: stats_by_key.get((group, a, m)) for m in layout.metrics} for a in arms])
        rows: list[Row] = []
        for arm in arms:
            values = described.get((group, arm), {})
            shown = {c: values.get(c) for c in layout.columns}
            cells: dict[str, Cell] = {}
            for metric in layout.metrics:
                st = stats_by_key.get((group, arm, metric))
                if st is None:
                    cells[metric] = Cell()
                    continue
                if st.protocol is not None:
                    protocols[st.protocol] = None
                cmp = outcome_of.get((group, arm, metric))
                cells[metric] = Cell(
                    mean=st.mean,
                    std=st.std,
                    n=st.n,
                    sem=st.sem,
                    ci95=st.ci95,
                    best=metric in best and format_value(metric, st.mean) == best[metric],
                    outcome=None if cmp is None or _is_missing(cmp["outcome"]) else cmp["outcome"],
                    diff=math.nan if cmp is None else float(cmp["diff"]),
                    p_value=math.nan if cmp is None else float(cmp["p_value"]),
                    diff_low=math.nan if cmp is None else float(cmp["diff_low"]),
                    diff_high=math.nan if cmp is None else float(cmp["diff_high"]),
                    n_paired=0 if cmp is None else int(cmp["n_paired"]),
                    test=None if cmp is None or _is_missing(cmp["test"]) else str(cmp["test"]),
                )
            n = max((c.n for c in cells.values()), default=0)
            base = matches.get((group, arm))
            base_arm = None if base is None else base[1]
            rows.append(Row(arm, None, shown, n, cells, base_arm))
            for source in sources:
                ref = refs.get((group, arm, source))
                if ref is None:
                    continue
                ref_cells = {
                    m: Cell(mean=ref.get(m, math.nan), outcome=ref_outcomes.get((group, arm, source, m)))
                    for m in layout.metrics
                }
                rows.append(Row(arm, source, shown, 0, ref_cells, base_arm))
        if layout.ratio_to is not None:
            rows = _with_ratios(rows, layout.ratio_to)
        sections.append(Section(group, layout.group_title(group), tuple(rows)))

    return ReportTable(
        name=layout.name,
        title=layout.title,
        split=layout.split,
        columns=columns,
        sections=tuple(sections),
        baseline=layout.baseline,
        baseline_part=None if layout.baseline is None else layout.part(layout.baseline),
        baseline_key=layout.baseline_key,
        protocols=tuple(protocols),
        sources=sources,
        baseline_arm=layout.baseline_arm,
        ratio_to=layout.ratio_to,
    )


def _with_ratios(rows: Sequence[Row], ratio_to: str) -> list[Row]:
    """Each cell's ``ratio``: its mean over the mean of the ``ratio_to`` arm's row of the same source (measured
    rows against the measured row, the paper's against the paper's); rows stay as they are without that arm."""
    base = {r.source: r for r in rows if r.arm == ratio_to}
    out = []
    for row in rows:
        ref = base.get(row.source)
        if ref is None:
            out.append(row)
            continue
        cells = {m: dataclasses.replace(c, ratio=_ratio(c.mean, ref.cells[m].mean)) for m, c in row.cells.items()}
        out.append(dataclasses.replace(row, cells=cells))
    return out


def _ratio(value: float, base: float) -> float:
    return value / base if base != 0.0 and math.isfinite(base) else math.nan


def _columns(layout: TableLayout) -> tuple[Column, ...]:
    cols = [Column("arm", "Arm", "Arm", "arm")]
    for c in layout.columns:
        label, latex = COLUMN_LABELS.get(c, (c, _latex_escape(c)))
        cols.append(Column(c, label, latex, "descriptor"))
    cols.append(Column("n", "n", "$n$", "n"))
    if layout.timings:
        return (*cols, *(Column(t, t, _latex_escape(t), "timing") for t in layout.metrics))
    for m in layout.metrics:
        higher = _direction(m)
        label = METRIC_LABELS.get(m, m)
        latex = METRIC_LATEX.get(m, _latex_escape(m))
        if _is_delta(m):
            label += " (%)"
            latex += r" (\%)"
        if higher is not None:
            label += " ↑" if higher else " ↓"
            latex += r" $\uparrow$" if higher else r" $\downarrow$"
        cols.append(Column(m, label, latex, "metric", higher))
    return tuple(cols)


def _best_means(metrics: Sequence[str], arms: Sequence[Mapping[str, _Stat | None]]) -> dict[str, str]:
    """Per metric with a direction, the displayed best mean among at least two measured arms."""
    best: dict[str, str] = {}
    for metric in metrics:
        higher = _direction(metric)
        means = [s.mean for arm in arms if (s := arm.get(metric)) is not None and math.isfinite(s.mean)]
        if higher is None or len(means) < 2:
            continue
        best[metric] = format_value(metric, max(means) if higher else min(means))
    return best


def _reference_lookup(references: pd.DataFrame | None) -> dict[tuple[str, str, str], dict[str, float]]:
    if references is None or references.empty:
        return {}
    missing = [c for c in REFERENCE_COLUMNS if c not in references.columns]
    if missing:
        raise ReportError(f"references frame: expected columns {list(REFERENCE_COLUMNS)}, missing {missing}")
    out: dict[tuple[str, str, str], dict[str, float]] = {}
    for rec in references.to_dict("records"):
        metric = str(rec["metric"])
        value = float(rec["value"])
        if _is_delta(metric) and value > 1.0:
            raise ReportError(
                f"reference {rec['group']}/{rec['arm']} ({rec['source']}): {metric} = {value} looks like a "
                f"percentage; expected a fraction ({value / 100:g})"
            )
        cells = out.setdefault((str(rec["group"]), str(rec["arm"]), str(rec["source"])), {})
        if metric in cells and cells[metric] != value:
            raise ReportError(
                f"reference {rec['group']}/{rec['arm']} ({rec['source']}) gives {metric} twice "
                f"({cells[metric]} and {value}); expected once"
            )
        cells[metric] = value
    return out


def _reference_outcomes(
    refs: Mapping[tuple[str, str, str], Mapping[str, float]],
    sources: Sequence[str],
    layout: TableLayout,
    matches: Mapping[tuple[str, str], tuple[str, str]],
) -> dict[tuple[str, str, str, str], Outcome | None]:
    """The paper's own red / blue: each reference row against the same source's row of the baseline arm."""
    out: dict[tuple[str, str, str, str], Outcome | None] = {}
    for (group, arm), (base_group, base_arm) in matches.items():
        for source in sources:
            mine = refs.get((group, arm, source))
            theirs = refs.get((base_group, base_arm, source))
            if mine is None or theirs is None:
                continue
            for metric in layout.metrics:
                if metric in mine and metric in theirs:
                    out[(group, arm, source, metric)] = _outcome(metric, mine[metric], theirs[metric])
    return out


# ----------------------------------------------------------------------------------------------------------------
# Descriptor values


def _describe(value: Any) -> str:
    """A descriptive value as text: ✓ / – for flags (as the paper), "3 → -3" for schedules, – when missing."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "✓" if value else MISSING
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(_describe(v) for v in value)
    return str(value).replace("->", "→")


# ----------------------------------------------------------------------------------------------------------------
# Markdown


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")


def _md_cell(metric: str, cell: Cell, row: Row) -> str:
    if not math.isfinite(cell.mean):
        return MISSING
    text = format_value(metric, cell.mean)
    if row.source is None:
        if math.isfinite(cell.std):
            text += f" ± {format_value(metric, cell.std)}"
        if cell.n != row.n:
            text += f" (n={cell.n})"
        if cell.best:
            text = f"**{text}**"
    else:
        text = f"*{text}*"
    if cell.outcome in _MARKERS:
        text += f" {_MARKERS[cell.outcome]}"
    return text


def format_timing(cell: Cell) -> str:
    """A timing cell's text: ``mean ± std`` (four and two significant digits; the mean alone from one seed or on a
    reference row) and `` (×r)``, the ratio to the ``ratio_to`` arm; ``MISSING`` without a value."""
    if not math.isfinite(cell.mean):
        return MISSING
    text = f"{cell.mean:.4g} ± {cell.std:.2g}" if cell.n > 1 else f"{cell.mean:.4g}"
    if math.isfinite(cell.ratio):
        text += f" (×{cell.ratio:.2f})"
    return text


def markdown_row(table: ReportTable, row: Row) -> list[str]:
    """The Markdown text of every cell of ``row``, in column order (what :func:`render_markdown` prints, and
    what the HTML page prints for the same row)."""
    out: list[str] = []
    for col in table.columns:
        if col.kind == "arm":
            label = _md_escape(row.arm) + (f" {_FEW_SEEDS}" if row.few_seeds else "")
            out.append(label if row.source is None else f"↳ *{_md_escape(row.source)}*")
        elif col.kind == "descriptor":
            out.append(_md_escape(_describe(row.descriptors.get(col.key))) if row.source is None else "")
        elif col.kind == "n":
            out.append(str(row.n) if row.source is None else "")
        elif col.kind == "timing":
            text = format_timing(row.cells[col.key])
            out.append(text if row.source is None or text == MISSING else f"*{text}*")
        else:
            out.append(_md_cell(col.key, row.cells[col.key], row))
    return out


def _pipe_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max([len(h), 3, *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w + 1) + ":" if r else ":" + "-" * (w + 1) for w, r in zip(widths, right, strict=True)]
    return [line(header), "|" + "|".join(rule) + "|", *(line(r) for r in rows)]


def _legend(table: ReportTable, *, latex: bool) -> str:
    def em(text: str) -> str:
        return rf"\textit{{{text}}}" if latex else f"*{text}*"

    if table.timings:
        return _timing_legend(table, latex=latex, em=em)

    pm, n = (r"$\pm$", "$n$") if latex else ("±", "n")
    parts = [
        f"Mean {pm} sample std over the {n} seeds of each arm (split {table.split}"
        + (f", protocol {', '.join(table.protocols)}" if table.protocols else "")
        + ")",
        (r"$\uparrow$/$\downarrow$" if latex else "↑/↓") + ": higher/lower is better",
        ("bold" if latex else "**bold**") + ": best mean per metric within a part (ties all bold)",
    ]
    if table.baseline is not None:
        against = _baseline_phrase(table)
        marks = r"\textcolor{red}{red}/\textcolor{blue}{blue}" if latex else "(+)/(−)"
        parts.append(
            f"{marks}: better/worse than {_latex_escape(against) if latex else against}, marked only where the "
            f"95{pct(latex)} interval of the difference excludes 0 (differences and intervals below the table)"
        )
    if table.few_seeds:
        parts.append((r"$^\ddagger$" if latex else _FEW_SEEDS) + f": fewer than {MIN_SEEDS} finished seeds")
    if table.sources:
        names = ", ".join(table.sources)
        authors = r"Lee \& Kim" if latex else "Lee & Kim"
        parts.append(
            f"{em(names)} rows: published values ({authors}, ECCV 2020), with their own "
            + ("red/blue" if latex else "(+)/(−)")
        )
    parts.append(f"{MISSING if not latex else '--'}: not available")
    legend = "; ".join(parts) + "."
    if table.data_note:
        legend += " " + (_latex_escape(table.data_note) if latex else _md_escape(table.data_note)) + "."
    return legend


def _timing_legend(table: ReportTable, *, latex: bool, em: Callable[[str], str]) -> str:
    """A timing table's legend: units, the ratio, the paper's rows, the data note."""
    legend = "seconds, mean ± std over seeds"
    if table.ratio_to:
        legend += f"; (×r): ratio of the mean to arm {table.ratio_to!r}"
    legend = _latex_escape(legend) if latex else legend
    if table.few_seeds:
        legend += "; " + (r"$^\ddagger$" if latex else _FEW_SEEDS) + f": fewer than {MIN_SEEDS} finished seeds"
    if table.sources:
        authors = r"Lee \& Kim" if latex else "Lee & Kim"
        legend += f"; {em(', '.join(table.sources))} rows: published values ({authors}, ECCV 2020)"
    if table.data_note:
        legend += ". " + (_latex_escape(table.data_note) if latex else _md_escape(table.data_note))
    return legend


def pct(latex: bool) -> str:
    return r"\,\%" if latex else " %"


def _baseline_phrase(table: ReportTable) -> str:
    """What every compared row is compared with: one arm, or "the row of (a) with the same losses"."""
    if table.baseline_arm is not None:
        return f"arm {table.baseline_arm}"
    key_label = dict((c.key, c.label) for c in table.columns).get(
        table.baseline_key, COLUMN_LABELS.get(table.baseline_key, (table.baseline_key, ""))[0]
    )
    return f"the row of {table.baseline_part} with the same {key_label.lower()}"


def difference_legend(table: ReportTable, *, latex: bool = False) -> str:
    """How the differences were estimated: the test(s), the confidence level and n."""
    tests = sorted({c.test for _, r in table.compared_rows() for c in r.cells.values() if c.test is not None})
    ns = sorted({c.n_paired for _, r in table.compared_rows() for c in r.cells.values() if c.test is not None})
    n_text = ", ".join(str(n) for n in ns) or "0"
    described = {
        PAIRED_T: "mean of the per-seed differences over the n seeds both arms ran, with its paired Student t "
        "interval (n − 1 degrees of freedom)",
        PAIRED_BOOTSTRAP: f"mean of the per-seed differences over the n seeds both arms ran, with a BCa bootstrap "
        f"interval ({BOOTSTRAP_RESAMPLES} resamples)",
        WELCH_T: "difference of the means of arms that share fewer than 2 seeds, with Welch's t interval (n: the "
        "smaller arm)",
    }
    text = (
        f"Difference = arm − baseline ({_baseline_phrase(table)}); δ in percentage points; 95{pct(latex)} "
        f"interval in brackets. Test: "
        + ("; ".join(f"{t}: {described[t]}" for t in tests) if tests else "none (fewer than 2 seeds per arm)")
        + f"; n = {n_text}. p-values are in the CSV."
    )
    return _latex_escape(text).replace(r"$-$", "$-$") if latex else text


def _difference_table(table: ReportTable) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the differences block: arm, baseline arm, n paired, one column per metric."""
    metric_cols = [c for c in table.columns if c.kind == "metric"]
    header = ["Arm", "Baseline", "n", *(c.label for c in metric_cols)]
    rows: list[list[str]] = []
    for _section, row in table.compared_rows():
        cells = [row.cells[c.key] for c in metric_cols]
        n = max((c.n_paired for c in cells if c.compared), default=0)
        texts = [
            difference_text(c.key, cell) + (f" {_MARKERS[cell.outcome]}" if cell.outcome in _MARKERS else "")
            for c, cell in zip(metric_cols, cells, strict=True)
        ]
        rows.append([row.arm, str(row.baseline_arm), str(n), *texts])
    return header, rows


def render_markdown(table: ReportTable) -> str:
    """The table as GitHub Markdown: a title, one pipe table per part, and a legend line."""
    lines = [f"### {table.title}", ""]
    header = [c.label for c in table.columns]
    right = [c.kind in ("n", "metric", "timing") for c in table.columns]
    for section in table.sections:
        lines.append(f"**{_md_escape(section.title)}**")
        lines.append("")
        if not section.rows:
            lines.append("*no arms in this part*")
        else:
            if not section.has_runs:
                lines += ["*no finished runs yet*", ""]
            lines += _pipe_table(header, [markdown_row(table, r) for r in section.rows], right)
        lines.append("")
    lines.append(_legend(table, latex=False))
    header, diff_rows = _difference_table(table)
    if diff_rows:
        lines += ["", "**Differences against the baseline**", ""]
        escaped = [[_md_escape(c) if i < 2 else c for i, c in enumerate(r)] for r in diff_rows]
        lines += _pipe_table(header, escaped, [i >= 2 for i in range(len(header))])
        lines += ["", difference_legend(table)]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# LaTeX


_LATEX_CHARS: dict[str, str] = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "|": r"$|$",
    "<": r"$<$",
    ">": r"$>$",
    "→": r"$\rightarrow$",
    "✓": r"\checkmark",
    "–": "--",
    "−": "$-$",
    "±": r"$\pm$",
    "λ": r"$\lambda$",
    "δ": r"$\delta$",
    "ℓ": r"$\ell$",
    "ℒ": r"$\mathcal{L}$",
    "∪": r"$\cup$",
    "∩": r"$\cap$",
    "∖": r"$\setminus$",
    "↳": r"$\hookrightarrow$",
    "×": r"$\times$",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_CHARS.get(ch, ch) for ch in text)


#: Descriptive columns whose values are loss-set expressions, typeset as in the paper ($\mathcal{L}_D \cup ...$).
LOSS_COLUMNS: frozenset[str] = frozenset({"losses"})

_NUMERIC = re.compile(r"[-+0-9.eE\s→−]+")


def _latex_losses(text: str) -> str | None:
    r"""A loss-set expression in the paper's notation, typeset from the parser's tree ("L_D | L_G" →
    $\mathcal{L}_{D} \cup \mathcal{L}_{G}$), or None when ``text`` does not parse (then it is escaped as plain
    text)."""
    try:
        node = parse_expression(text)
    except ExpressionError:
        return None
    return f"${node.latex()}$"


def _latex_descriptor(column: str, value: Any) -> str:
    text = _describe(value)
    if text == MISSING:
        return "--"
    if column in LOSS_COLUMNS and (math_text := _latex_losses(text)) is not None:
        return math_text
    if _NUMERIC.fullmatch(text) and any(ch.isdigit() for ch in text) and any(ch in "-→−" for ch in text):
        # numbers and schedules ("3 → -3") in math mode, so that minus signs are minus signs
        return "$" + text.replace("→", r"\rightarrow").replace("−", "-") + "$"
    return _latex_escape(text)


def _tex_cell(metric: str, cell: Cell, row: Row) -> str:
    if not math.isfinite(cell.mean):
        return "--"
    text = format_value(metric, cell.mean)
    if row.source is None:
        if math.isfinite(cell.std):
            text += rf" $\pm$ {format_value(metric, cell.std)}"
        if cell.n != row.n:
            text += f" ($n$={cell.n})"
        if cell.best:
            text = rf"\textbf{{{text}}}"
    else:
        text = rf"\textit{{{text}}}"
    if cell.outcome in _LATEX_COLOURS:
        text = rf"\textcolor{{{_LATEX_COLOURS[cell.outcome]}}}{{{text}}}"
    return text


def _tex_row(table: ReportTable, row: Row) -> str:
    out: list[str] = []
    for col in table.columns:
        if col.kind == "arm":
            label = _latex_escape(row.arm) + (r"$^\ddagger$" if row.few_seeds else "")
            out.append(label if row.source is None else rf"\quad\textit{{{_latex_escape(row.source)}}}")
        elif col.kind == "descriptor":
            out.append(_latex_descriptor(col.key, row.descriptors.get(col.key)) if row.source is None else "")
        elif col.kind == "n":
            out.append(str(row.n) if row.source is None else "")
        elif col.kind == "timing":
            text = format_timing(row.cells[col.key])
            text = "--" if text == MISSING else _latex_escape(text)
            out.append(text if row.source is None or text == "--" else rf"\textit{{{text}}}")
        else:
            out.append(_tex_cell(col.key, row.cells[col.key], row))
    return " & ".join(out) + r" \\"


def render_latex(table: ReportTable) -> str:
    """The table as a LaTeX ``table`` float (booktabs rules, bold best, red/blue against the baseline, italic
    paper rows); the caption carries the title and the legend. Needs ``\\usepackage{booktabs,xcolor,amssymb}``."""
    spec = "".join(
        "r" if c.kind in ("n", "metric", "timing") else ("l" if c.kind == "arm" or c.key in LOSS_COLUMNS else "c")
        for c in table.columns
    )
    width = len(table.columns)
    lines = [
        f"% Requires {_LATEX_PACKAGES}",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_latex_escape(table.title)}. {_legend(table, latex=True)}}}",
        rf"\label{{tab:{_latex_escape(table.name)}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(c.latex for c in table.columns) + r" \\",
        r"\midrule",
    ]
    for i, section in enumerate(table.sections):
        if i:
            lines.append(r"\midrule")
        title = _latex_escape(section.title)
        if not section.has_runs:
            title += r" --- \textit{no finished runs yet}"
        lines.append(rf"\multicolumn{{{width}}}{{l}}{{{title}}} \\")
        lines += [_tex_row(table, r) for r in section.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    header, diff_rows = _difference_table(table)
    if diff_rows:
        metric_latex = [c.latex for c in table.columns if c.kind == "metric"]
        lines += [
            r"\par\medskip",
            rf"\begin{{tabular}}{{ll{'r' * (len(header) - 2)}}}",
            r"\toprule",
            " & ".join(["Arm", "Baseline", "$n$", *metric_latex]) + r" \\",
            r"\midrule",
            *(" & ".join(_latex_escape(c) for c in r) + r" \\" for r in diff_rows),
            r"\bottomrule",
            r"\end{tabular}",
            rf"\par\footnotesize {difference_legend(table, latex=True)}",
        ]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# CSV


def table_frame(table: ReportTable) -> pd.DataFrame:
    """The table in long, machine-readable form: one row per (part, arm, metric) with the raw seed statistics
    (δ as fractions), the flags, the baseline comparison and one column per reference source (e.g. ``paper``) with
    its value and ``<source>_outcome``. A timing table: :func:`timing_table_frame`."""
    if table.timings:
        return timing_table_frame(table)
    reserved = ["table", "group", "group_title", "arm", "metric", "n", "mean", "std", "sem", "ci95", "best"]
    reserved += ["baseline_arm", "diff", "diff_low", "diff_high", "n_paired", "test", "outcome", "p_value"]
    reserved += ["split", "protocol", *table.descriptor_columns]
    for source in table.sources:
        if source in reserved or f"{source}_outcome" in reserved:
            raise ReportError(f"reference source {source!r} clashes with a CSV column name; rename the source")
    records: list[dict[str, Any]] = []
    for section in table.sections:
        measured = [r for r in section.rows if r.source is None]
        refs = {(r.arm, r.source): r for r in section.rows if r.source is not None}
        for row in measured:
            for metric in table.metrics:
                cell = row.cells[metric]
                rec: dict[str, Any] = {
                    "table": table.name,
                    "group": section.group,
                    "group_title": section.title,
                    "arm": row.arm,
                }
                for c in table.descriptor_columns:
                    value = row.descriptors.get(c)
                    rec[c] = _describe(value) if isinstance(value, list | tuple | np.ndarray) else value
                rec |= {
                    "split": table.split,
                    "protocol": ", ".join(table.protocols) or None,
                    "metric": metric,
                    "n": cell.n,
                    "mean": cell.mean,
                    "std": cell.std,
                    "sem": cell.sem,
                    "ci95": cell.ci95,
                    "best": cell.best,
                    "baseline_arm": row.baseline_arm,
                    "diff": cell.diff,
                    "diff_low": cell.diff_low,
                    "diff_high": cell.diff_high,
                    "n_paired": cell.n_paired if cell.compared else None,
                    "test": cell.test,
                    "outcome": cell.outcome,
                    "p_value": cell.p_value,
                }
                for source in table.sources:
                    ref = refs.get((row.arm, source))
                    rec[source] = math.nan if ref is None else ref.cells[metric].mean
                    rec[f"{source}_outcome"] = None if ref is None else ref.cells[metric].outcome
                records.append(rec)
    columns = ["table", "group", "group_title", "arm", *table.descriptor_columns, "split", "protocol", "metric"]
    columns += ["n", "mean", "std", "sem", "ci95", "best", "baseline_arm", "diff", "diff_low", "diff_high"]
    columns += ["n_paired", "test", "outcome", "p_value"]
    for source in table.sources:
        columns += [source, f"{source}_outcome"]
    return pd.DataFrame.from_records(records, columns=columns)


def timing_table_frame(table: ReportTable) -> pd.DataFrame:
    """A timing table in long form: one row per (group, arm, timing) with ``n``, ``mean``, ``std`` (seconds),
    ``ratio`` when the table has ``ratio_to``, then the descriptive columns and one column per reference source."""
    columns = ["group", "arm", "name", "n", "mean", "std", *(["ratio"] if table.ratio_to else [])]
    columns += [c for c in (*table.descriptor_columns, *table.sources) if c not in columns]
    records: list[dict[str, Any]] = []
    for section in table.sections:
        refs = {(r.arm, r.source): r for r in section.rows if r.source is not None}
        for row in (r for r in section.rows if r.source is None and r.n > 0):
            for name in table.metrics:
                cell = row.cells[name]
                if cell.n == 0:
                    continue
                rec: dict[str, Any] = {"group": section.group, "arm": row.arm, "name": name, "n": cell.n}
                rec |= {"mean": cell.mean, "std": cell.std, "ratio": cell.ratio}
                rec |= {c: row.descriptors.get(c) for c in table.descriptor_columns}
                for source in table.sources:
                    ref = refs.get((row.arm, source))
                    rec[source] = math.nan if ref is None else ref.cells[name].mean
                records.append(rec)
    return pd.DataFrame.from_records(records, columns=columns)


def _csv_value(value: Any) -> str:
    if _is_missing(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        return f"{float(value):.10g}"
    return str(value)


def render_csv(table: ReportTable) -> str:
    """:func:`table_frame` as CSV (``\\n`` line ends, floats to 10 significant digits, empty = missing)."""
    frame = table_frame(table)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(frame.columns)
    for rec in frame.itertuples(index=False):
        writer.writerow([_csv_value(v) for v in rec])
    return buffer.getvalue()


__all__ = [
    "COLUMN_LABELS",
    "COMPARISON_COLUMNS",
    "METRICS_FRAME_COLUMNS",
    "MISSING",
    "PAIRED_BOOTSTRAP",
    "PAIRED_T",
    "REFERENCE_COLUMNS",
    "SUMMARY_COLUMNS",
    "TIMINGS_FRAME_COLUMNS",
    "WELCH_T",
    "Cell",
    "Column",
    "Difference",
    "ReportError",
    "ReportTable",
    "Row",
    "Section",
    "TableLayout",
    "build_table",
    "compare",
    "difference_legend",
    "difference_text",
    "format_difference",
    "format_timing",
    "format_value",
    "markdown_row",
    "paired_difference",
    "render_csv",
    "render_latex",
    "render_markdown",
    "seed_statistics",
    "summarize",
    "summarize_timings",
    "table_frame",
    "timing_table_frame",
]
