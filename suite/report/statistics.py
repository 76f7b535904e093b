"""Seed statistics and baseline comparisons: :func:`summarize` (metrics), :func:`summarize_timings` (timings),
:func:`seed_statistics`, :func:`compare` and :func:`paired_difference` (paired t, BCa bootstrap, Welch).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from mlrd_core.metrics import METRIC_NAMES
from suite.report.formatting import _hashable, _is_missing, _outcome
from suite.report.model import (
    COMPARISON_COLUMNS,
    METRICS_FRAME_COLUMNS,
    SUMMARY_COLUMNS,
    TIMINGS_FRAME_COLUMNS,
    ReportError,
    TableLayout,
)

#: Confidence level of the ``ci95`` column.
CONFIDENCE = 0.95


#: From this many paired seeds on, the interval of a difference is a BCa bootstrap (enough distinct resamples).
BOOTSTRAP_MIN_N = 10


BOOTSTRAP_RESAMPLES = 10_000


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
