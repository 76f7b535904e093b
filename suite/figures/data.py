"""The data functions of the figures (pure: DataFrames in, a DataFrame out; tested on hand-computed numbers):
:func:`arm_table`, :func:`pca_trajectories` (Fig. 2), :func:`contributions_by_epoch` (Fig. 3),
:func:`weight_trajectories` and :func:`group_shares`, :func:`validation_curves`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlrd_core.errors import MLRDError
from mlrd_core.losses.registry import LOSS_BY_NAME, LOSS_NAMES

if TYPE_CHECKING:
    from suite.plan import PlannedRun


Log = Callable[[str], None]


class FigureDataError(MLRDError, ValueError):
    """The data cannot make this figure (too few losses, periods, seeds...); :func:`make_figures` skips it."""


#: Relative change below which a contribution counts as unchanged (green) in Fig. 3.
SAME_RTOL = 1e-3


def loss_table(names: Iterable[str]) -> pd.DataFrame:
    """``[loss, term, scale, group]`` of loss names, in canonical order (unknown names raise)."""
    order = {n: i for i, n in enumerate(LOSS_NAMES)}
    unique = sorted(set(names), key=lambda n: order.get(n, len(order)))
    unknown = [n for n in unique if n not in LOSS_BY_NAME]
    if unknown:
        raise FigureDataError(f"unknown loss name(s) {unknown} in the periods")
    rows = [(n, LOSS_BY_NAME[n].term, LOSS_BY_NAME[n].scale, LOSS_BY_NAME[n].group) for n in unique]
    return pd.DataFrame(rows, columns=["loss", "term", "scale", "group"]).astype({"scale": "int64"})


def _loss_order(names: pd.Series) -> pd.Series:
    order = {n: i for i, n in enumerate(LOSS_NAMES)}
    return names.map(lambda n: order.get(n, len(order)))


def _with_arm(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with an ``arm`` column (the run id when the caller gave none)."""
    if "arm" in frame.columns:
        return frame
    return frame.assign(arm=frame["run_id"])


def _arm_order(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["arm"].tolist()))


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FigureDataError(f"{what} needs columns {list(columns)}; missing {missing}")


def arm_table(runs: Sequence[PlannedRun]) -> pd.DataFrame:
    """One row per (run, displayed arm): ``[run_id, group, arm, key, seed, weighting, lam, n_losses]``.

    ``key`` is what the figures call the arm: its label, prefixed by the group (``"b: L"``) when the same label
    names different runs in several groups. Arms whose runs are exactly an earlier arm's (Table 5's ``L`` in parts
    (b), (c), (d)) are the same curves and are dropped, keeping the first.
    """
    arms: dict[tuple[str, str], list[PlannedRun]] = {}
    for run in runs:
        arms.setdefault((run.group, run.arm), []).append(run)
    kept: dict[tuple[str, str], list[PlannedRun]] = {}
    seen: set[frozenset[str]] = set()
    for key, members in arms.items():
        ids = frozenset(r.run_id for r in members)
        if ids not in seen:
            seen.add(ids)
            kept[key] = members
    labels = [arm for _, arm in kept]
    rows: list[dict[str, Any]] = []
    for (group, arm), members in kept.items():
        display = arm if labels.count(arm) == 1 else f"{group}: {arm}"
        rows.extend(
            {
                "run_id": r.run_id,
                "group": group,
                "arm": arm,
                "key": display,
                "seed": r.seed,
                "weighting": r.weighting,
                "lam": r.lam,
                "n_losses": r.n_losses,
            }
            for r in members
        )
    columns = ["run_id", "group", "arm", "key", "seed", "weighting", "lam", "n_losses"]
    return pd.DataFrame(rows, columns=columns)


def normalized_trajectories(periods: pd.DataFrame) -> pd.DataFrame:
    """Each loss's per-period mean ℓ̄_i over training divided by its first period's, averaged over the runs.

    Rows: losses (canonical order); columns: ``(epoch, period)`` present in every run. Dividing by the first value
    takes out the orders of magnitude between losses (as the rebalancing's init, eq. 9, does) and keeps how fast and
    how far each loss falls, which is what the rebalancing reacts to (docs/figures.md). A loss whose first mean is
    not a positive finite number (an identically-zero loss) cannot be normalised and is dropped.
    """
    _require(periods, ("run_id", "epoch", "period", "loss", "mean"), "normalized_trajectories")
    rows = periods.dropna(subset=["loss"])
    if rows.empty:
        raise FigureDataError("no per-loss period records")
    wide = rows.pivot_table(index=["run_id", "loss"], columns=["epoch", "period"], values="mean", aggfunc="first")
    wide = wide.sort_index(axis=1).dropna(axis=1, how="any")
    if wide.shape[1] < 2:
        raise FigureDataError(f"a loss trajectory needs at least 2 periods common to all runs, got {wide.shape[1]}")
    first = wide.iloc[:, 0]
    ok = np.isfinite(first.to_numpy(dtype=float)) & (first.to_numpy(dtype=float) > 0)
    normalized = wide[ok].div(first[ok], axis=0)
    out = normalized.groupby(level="loss").mean()
    return out.iloc[np.argsort(_loss_order(out.index.to_series()).to_numpy(), kind="stable")]


def pca_trajectories(periods: pd.DataFrame) -> pd.DataFrame:
    """Fig. 2: the losses projected on the first two principal axes of their normalised training trajectories.

    ``periods`` holds the period records (``run_id, epoch, period, loss, mean``) of one arm, any number of seeds.
    Each loss is one sample whose features are its :func:`normalized_trajectories` values; the samples are centred
    (per period) and projected with an SVD (``pc = U·S``). Signs are fixed so that the largest-magnitude score of
    each component is positive. Returns ``[loss, term, scale, group, pc1, pc2]`` (canonical order) with
    ``attrs["explained_variance_ratio"] = (r1, r2)`` and ``attrs["n_periods"]``.
    """
    trajectories = normalized_trajectories(periods)
    if len(trajectories) < 2:
        raise FigureDataError(f"a PCA of loss trajectories needs at least 2 losses, got {len(trajectories)}")
    x = trajectories.to_numpy(dtype=float)
    centred = x - x.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    scores = u * s
    for j in range(scores.shape[1]):
        if scores[np.argmax(np.abs(scores[:, j])), j] < 0:
            scores[:, j] = -scores[:, j]
    if scores.shape[1] < 2:
        scores = np.pad(scores, ((0, 0), (0, 2 - scores.shape[1])))
    variance = s**2
    ratio = variance / variance.sum() if variance.sum() > 0 else np.zeros_like(variance)
    ratio = np.pad(ratio, (0, max(0, 2 - len(ratio))))
    out = loss_table(trajectories.index)
    out["pc1"] = scores[:, 0]
    out["pc2"] = scores[:, 1]
    out.attrs["explained_variance_ratio"] = (float(ratio[0]), float(ratio[1]))
    out.attrs["n_periods"] = int(x.shape[1])
    return out


def contributions_by_epoch(
    periods: pd.DataFrame, *, epochs: Sequence[int] | None = None, rtol: float = SAME_RTOL
) -> pd.DataFrame:
    """Fig. 3: each loss's contribution w_i·P_i at the end of each epoch, and its change vs the previous one.

    ``periods``: period records (``run_id, epoch, period, loss, contribution`` and optionally ``arm``; without
    ``arm`` each run is its own arm). The contribution of an epoch is the one recorded at its last period end
    (the weights that period produced times that period's P_i); with several runs (seeds) per arm it is their
    mean. ``epochs`` restricts the epochs shown, and then "previous" means the previous one shown. ``change`` is
    ``increase`` / ``decrease`` when the contribution moved by more than ``rtol`` relative to the previous epoch,
    else ``same``; the first epoch, having no previous one, is ``same``.

    Returns ``[arm, epoch, loss, term, scale, group, contribution, change, n_runs]``, arms in order of appearance,
    then losses in canonical order, then epochs.
    """
    _require(periods, ("run_id", "epoch", "period", "loss", "contribution"), "contributions_by_epoch")
    rows = _with_arm(periods).dropna(subset=["loss"])
    if rows.empty:
        raise FigureDataError("no per-loss period records")
    arms = _arm_order(rows)
    last_period = rows.groupby(["run_id", "epoch"])["period"].transform("max")
    last = rows[rows["period"] == last_period]
    if epochs is not None:
        last = last[last["epoch"].isin(list(epochs))]
        if last.empty:
            raise FigureDataError(f"none of the epochs {list(epochs)} has period records")
    agg = (
        last.groupby(["arm", "epoch", "loss"], sort=False)
        .agg(contribution=("contribution", "mean"), n_runs=("run_id", "nunique"))
        .reset_index()
    )
    agg["_arm"] = agg["arm"].map({a: i for i, a in enumerate(arms)})
    agg["_loss"] = _loss_order(agg["loss"])
    agg = agg.sort_values(["_arm", "_loss", "epoch"], kind="stable").reset_index(drop=True)
    prev = agg.groupby(["arm", "loss"], sort=False)["contribution"].shift(1)
    delta = agg["contribution"] - prev
    tol = rtol * prev.abs()
    agg["change"] = np.where(prev.isna() | (delta.abs() <= tol), "same", np.where(delta > 0, "increase", "decrease"))
    info = loss_table(agg["loss"].unique())
    out = agg.merge(info, on="loss", how="left")
    columns = ["arm", "epoch", "loss", "term", "scale", "group", "contribution", "change", "n_runs"]
    return out[columns].reset_index(drop=True)


def evenly_spaced(values: Sequence[int], limit: int) -> list[int]:
    """At most ``limit`` of ``values`` (sorted), evenly spaced, the first and the last always included."""
    ordered = sorted(set(values))
    if len(ordered) <= limit:
        return ordered
    picks = np.unique(np.round(np.linspace(0, len(ordered) - 1, limit)).astype(int))
    return [ordered[i] for i in picks]


def weight_trajectories(periods: pd.DataFrame) -> pd.DataFrame:
    """Every loss's weight and contribution after every period end, averaged over the runs (seeds) of each arm.

    ``progress`` is the position in training in epochs: ``epoch + (period + 1) / periods in that epoch``, so the
    end of the first epoch is 1.0. Returns ``[arm, loss, term, scale, group, epoch, period, progress, weight,
    contribution, n_runs]``.
    """
    _require(periods, ("run_id", "epoch", "period", "loss", "weight", "contribution"), "weight_trajectories")
    rows = _with_arm(periods).dropna(subset=["loss"])
    if rows.empty:
        raise FigureDataError("no per-loss period records")
    arms = _arm_order(rows)
    per_epoch = rows.groupby(["run_id", "epoch"])["period"].transform("max") + 1
    rows = rows.assign(progress=rows["epoch"] + (rows["period"] + 1) / per_epoch)
    agg = (
        rows.groupby(["arm", "loss", "epoch", "period"], sort=False)
        .agg(
            progress=("progress", "mean"),
            weight=("weight", "mean"),
            contribution=("contribution", "mean"),
            n_runs=("run_id", "nunique"),
        )
        .reset_index()
    )
    agg["_arm"] = agg["arm"].map({a: i for i, a in enumerate(arms)})
    agg["_loss"] = _loss_order(agg["loss"])
    agg = agg.sort_values(["_arm", "_loss", "epoch", "period"], kind="stable")
    out = agg.merge(loss_table(agg["loss"].unique()), on="loss", how="left")
    columns = [
        "arm", "loss", "term", "scale", "group", "epoch", "period", "progress", "weight", "contribution", "n_runs",
    ]  # fmt: skip
    return out[columns].reset_index(drop=True)


def group_shares(trajectories: pd.DataFrame) -> pd.DataFrame:
    """Share of each loss family in the total contribution after each period: ``[arm, progress, group, share]``
    (Σ over the family's w·P divided by Σ over all losses; the shares of one period sum to 1)."""
    sums = trajectories.groupby(["arm", "progress", "group"], sort=False)["contribution"].sum().reset_index()
    totals = sums.groupby(["arm", "progress"], sort=False)["contribution"].transform("sum")
    sums["share"] = np.where(totals > 0, sums["contribution"] / totals.where(totals > 0, 1.0), np.nan)
    return sums[["arm", "progress", "group", "share"]]


def validation_curves(
    metrics: pd.DataFrame, *, metric_names: Sequence[str] | None = None, split: str = "val"
) -> pd.DataFrame:
    """Mean and sample std (ddof = 1, NaN for one seed) over seeds per arm, metric and epoch of ``split``.

    ``metrics`` is the store's long metrics frame (``arm, seed, split, epoch, metric, value``); non-finite values
    are dropped. Returns ``[arm, metric, epoch, n, mean, std]``, arms in order of appearance, metrics in the order
    of ``metric_names`` (default: all, sorted).
    """
    _require(metrics, ("arm", "seed", "split", "epoch", "metric", "value"), "validation_curves")
    rows = metrics[(metrics["split"] == split) & np.isfinite(metrics["value"].to_numpy(dtype=float))]
    names = list(metric_names) if metric_names is not None else sorted(rows["metric"].unique().tolist())
    rows = rows[rows["metric"].isin(names)]
    if rows.empty:
        raise FigureDataError(f"no {split!r} metrics {names}")
    arms = _arm_order(rows)
    agg = (
        rows.groupby(["arm", "metric", "epoch"], sort=False)["value"]
        .agg(n="count", mean="mean", std=lambda v: v.std(ddof=1))
        .reset_index()
    )
    agg["_arm"] = agg["arm"].map({a: i for i, a in enumerate(arms)})
    agg["_metric"] = agg["metric"].map({m: i for i, m in enumerate(names)})
    agg = agg.sort_values(["_arm", "_metric", "epoch"], kind="stable")
    return agg[["arm", "metric", "epoch", "n", "mean", "std"]].reset_index(drop=True)
