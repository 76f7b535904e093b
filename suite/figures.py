"""Paper-style figures from the results store (docs/figures.md).

Two layers, as for the tables:

- **data functions** (pure: DataFrames in, a DataFrame out; tested on hand-computed numbers):
  :func:`pca_trajectories` (Fig. 2), :func:`contributions_by_epoch` (Fig. 3), :func:`weight_trajectories` and
  :func:`group_shares`, :func:`validation_curves`, and :func:`depth_samples` / :func:`predict_depth` for the
  qualitative depth maps (these read a run's checkpoint and its test split);
- **plot functions** that take those frames and write one PNG and one PDF each (matplotlib's object API with the
  Agg canvas: no pyplot, no global backend state).

:func:`make_figures` is the glue used by ``python -m suite figures`` and ``python -m suite run``: it reads the
spec's frames from the store, picks what each figure needs, and skips (with a message) any figure the spec has no
data for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlrd_core.errors import MLRDError
from mlrd_core.losses.registry import LOSS_BY_NAME, LOSS_NAMES, SCALES, TERMS

if TYPE_CHECKING:
    import torch
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from mlrd_core.config import RunConfig
    from suite.plan import PlannedRun
    from suite.spec import Spec
    from suite.store import Store

__all__ = [
    "CHANGE_COLORS",
    "FIGURE_NAMES",
    "FORMATS",
    "GROUP_COLORS",
    "DepthSample",
    "FigureDataError",
    "arm_table",
    "contributions_by_epoch",
    "depth_samples",
    "group_shares",
    "load_run_model",
    "make_figures",
    "normalized_trajectories",
    "pca_trajectories",
    "plot_contributions",
    "plot_depth_maps",
    "plot_pca",
    "plot_validation_curves",
    "plot_weight_trajectories",
    "predict_depth",
    "validation_curves",
    "weight_trajectories",
]

#: Every figure is written in each of these formats.
FORMATS: tuple[str, ...] = ("png", "pdf")
#: File stems (under ``<results>/<spec>/figures/``) of the figures :func:`make_figures` can write.
FIGURE_NAMES: dict[str, str] = {
    "pca": "fig2_loss_pca",
    "contributions": "fig3_contributions",
    "weights": "weight_trajectories",
    "validation": "validation_curves",
    "depth": "depth_maps",
}
#: The paper's Fig. 3 colours: contribution up vs the previous epoch (red), down (blue), unchanged (green).
CHANGE_COLORS: dict[str, str] = {"increase": "#d62728", "decrease": "#1f77b4", "same": "#2ca02c"}
#: Loss families L_D, L_M, L_G, L_N.
GROUP_COLORS: dict[str, str] = {"D": "#1b9e77", "M": "#d95f02", "G": "#7570b3", "N": "#e7298a"}
GROUP_TITLES: dict[str, str] = {"D": "depth ℓ_D", "M": "mean-removed ℓ_M", "G": "gradient ℓ_G", "N": "normal ℓ_N"}
#: Relative change below which a contribution counts as unchanged (green) in Fig. 3.
SAME_RTOL = 1e-3
DEFAULT_CURVE_METRICS: tuple[str, ...] = ("delta1", "rmse", "abs_rel", "rmse_log")
METRIC_LABELS: dict[str, str] = {
    "delta1": "δ1 ↑",
    "delta2": "δ2 ↑",
    "delta3": "δ3 ↑",
    "rmse": "RMSE lin ↓",
    "abs_rel": "ARD ↓",
    "log10": "log10 ↓",
    "rmse_log": "RMSE log ↓",
    "rmse_si": "RMSE si ↓",
    "sq_rel": "SRD ↓",
}
MAX_ARMS = 6  # rows of Fig. 3, panels of the weight figure, prediction columns of the depth maps
MAX_EPOCH_COLUMNS = 10  # Fig. 3 shows at most this many epochs (evenly spaced, first and last included)
_TERM_MARKERS = {"D": "o", "M": "s", "M5": "D", "M17": "^", "M65": "v", "r": ">", "c": "<", "rr": "p"}
_TERM_MARKERS |= {"rc": "h", "cc": "*", "N": "P", "Nr": "X", "Nc": "d"}

Log = Callable[[str], None]


class FigureDataError(MLRDError, ValueError):
    """The data cannot make this figure (too few losses, periods, seeds...); :func:`make_figures` skips it."""


# ---------------------------------------------------------------------------------------------------- helpers


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


# ------------------------------------------------------------------------------------------- Fig. 2: PCA


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


def plot_pca(pca: pd.DataFrame, stem: Path, *, title: str = "", formats: Sequence[str] = FORMATS) -> list[Path]:
    """Fig. 2: (a) by loss type (colour = family, marker = term), (b) by scale; every point labelled ``term^k``."""
    fig = _figure(12.5, 5.6)
    axes = fig.subplots(1, 2)
    r1, r2 = pca.attrs.get("explained_variance_ratio", (math.nan, math.nan))
    scale_cmap = _colormap("viridis")
    for ax, by in zip(axes, ("type", "scale"), strict=True):
        for _, row in pca.iterrows():
            by_scale = scale_cmap(row["scale"] / max(len(SCALES) - 1, 1))
            color = GROUP_COLORS[row["group"]] if by == "type" else by_scale
            ax.scatter(row["pc1"], row["pc2"], color=color, marker=_TERM_MARKERS[row["term"]], s=36, zorder=3)
            ax.annotate(
                f"{row['term']}$^{row['scale']}$",
                (row["pc1"], row["pc2"]),
                xytext=(3, 2),
                textcoords="offset points",
                fontsize=6,
                color="0.25",
            )
        ax.set_xlabel(f"PC1 ({100 * r1:.1f} % of variance)")
        ax.set_ylabel(f"PC2 ({100 * r2:.1f} % of variance)")
        ax.grid(True, color="0.92", zorder=0)
    _legend_terms(axes[0], sorted(set(pca["term"]), key=TERMS.index))
    _legend_scales(axes[1], sorted(set(pca["scale"])), scale_cmap)
    axes[0].set_title("(a) by loss type")
    axes[1].set_title("(b) by spatial scale")
    fig.suptitle(title or "Fig. 2: losses on the first two principal axes of their normalised trajectories")
    return _save(fig, stem, formats)


def _legend_terms(ax: Axes, terms: Sequence[str]) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], linestyle="", marker=_TERM_MARKERS[t], color=GROUP_COLORS[LOSS_BY_NAME[f"l_{t}^0"].group])
        for t in terms
    ]
    ax.legend(handles, [f"ℓ_{t}" for t in terms], fontsize=7, ncol=2, loc="best", framealpha=0.8)


def _legend_scales(ax: Axes, scales: Sequence[int], cmap: Any) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], linestyle="", marker="o", color=cmap(k / max(len(SCALES) - 1, 1))) for k in scales]
    ax.legend(handles, [f"scale {k} (1/{2**k})" for k in scales], fontsize=7, loc="best", framealpha=0.8)


# ---------------------------------------------------------------------------------- Fig. 3: contributions


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


def plot_contributions(
    contributions: pd.DataFrame,
    stem: Path,
    *,
    row_labels: Mapping[str, str] | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Fig. 3: one row per arm, one column per epoch; in each cell a circle per loss on a scale (x) by term (y)
    grid, radius proportional to w·P (one scale for the whole figure), red/blue/green for up/down/unchanged."""
    from matplotlib.collections import PatchCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle

    arms = _arm_order(contributions)
    epochs = sorted(contributions["epoch"].unique().tolist())
    terms = [t for t in TERMS if t in set(contributions["term"])]
    scales = sorted(contributions["scale"].unique().tolist())
    cell_w, cell_h = 0.17 * len(scales) + 0.15, 0.17 * len(terms) + 0.3
    fig = _figure(2.2 + cell_w * len(epochs), 1.0 + cell_h * len(arms))
    axes = np.atleast_2d(fig.subplots(len(arms), len(epochs), squeeze=False))
    peak = float(contributions["contribution"].max())
    scale_r = 0.48 / peak if peak > 0 else 0.0
    x_of = {k: i for i, k in enumerate(scales)}
    y_of = {t: i for i, t in enumerate(terms)}
    for i, arm in enumerate(arms):
        for j, epoch in enumerate(epochs):
            ax = axes[i, j]
            cell = contributions[(contributions["arm"] == arm) & (contributions["epoch"] == epoch)]
            circles = [
                Circle((x_of[r.scale], y_of[r.term]), max(float(r.contribution), 0.0) * scale_r)
                for r in cell.itertuples()
            ]
            colours = [CHANGE_COLORS[c] for c in cell["change"]]
            ax.add_collection(PatchCollection(circles, facecolors=colours, edgecolors="none", alpha=0.85))
            ax.set_xlim(-0.6, len(scales) - 0.4)
            ax.set_ylim(len(terms) - 0.4, -0.6)  # canonical term order from the top
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("0.85")
            if i == 0:
                ax.set_title(f"epoch {epoch + 1}", fontsize=8)
            if j == 0:
                ax.set_yticks(range(len(terms)), terms, fontsize=5)
                ax.tick_params(length=0, pad=1)
                label = (row_labels or {}).get(arm, arm)
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center", labelpad=6)
            if i == len(arms) - 1:
                ax.set_xticks(range(len(scales)), [str(k) for k in scales], fontsize=5)
                ax.tick_params(length=0, pad=1)
                ax.set_xlabel("scale", fontsize=6, labelpad=1)
    handles = [
        Line2D([], [], linestyle="", marker="o", markersize=7, color=CHANGE_COLORS[k])
        for k in ("increase", "decrease", "same")
    ]
    fig.legend(
        handles,
        ["increased vs previous epoch", "decreased", "unchanged (or first epoch)"],
        loc="outside lower center",
        ncol=3,
        fontsize=7,
        frameon=False,
    )
    fig.suptitle("Fig. 3: loss contributions w·P at the end of each epoch (circle radius ∝ w·P)", fontsize=9)
    return _save(fig, stem, formats)


# --------------------------------------------------------------------------------------- weight trajectories


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


def plot_weight_trajectories(
    trajectories: pd.DataFrame,
    stem: Path,
    *,
    titles: Mapping[str, str] | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """One column per arm: every loss's weight over training (log scale, coloured by family), and below it each
    family's share of the total contribution w·P."""
    arms = _arm_order(trajectories)
    shares = group_shares(trajectories)
    fig = _figure(1.0 + 4.2 * len(arms), 6.4)
    axes = np.atleast_2d(fig.subplots(2, len(arms), squeeze=False, sharex="col"))
    groups = [g for g in GROUP_COLORS if g in set(trajectories["group"])]
    for j, arm in enumerate(arms):
        top, bottom = axes[0, j], axes[1, j]
        data = trajectories[trajectories["arm"] == arm]
        for loss, line in data.groupby("loss", sort=False):
            group = str(line["group"].iloc[0])
            top.plot(line["progress"], line["weight"], color=GROUP_COLORS[group], lw=0.8, alpha=0.6, label=loss)
        top.set_yscale("log")
        top.set_title((titles or {}).get(arm, arm), fontsize=9)
        top.grid(True, color="0.92")
        share = shares[shares["arm"] == arm].pivot_table(index="progress", columns="group", values="share")
        present = [g for g in groups if g in share.columns]
        bottom.stackplot(
            share.index.to_numpy(),
            [share[g].fillna(0).to_numpy() for g in present],
            colors=[GROUP_COLORS[g] for g in present],
            labels=[GROUP_TITLES[g] for g in present],
            alpha=0.85,
        )
        bottom.set_ylim(0, 1)
        bottom.set_xlabel("epoch")
        bottom.grid(True, color="0.92")
    axes[0, 0].set_ylabel("weight w_i (one line per loss)")
    axes[1, 0].set_ylabel("share of Σ w·P")
    from matplotlib.patches import Patch

    fig.legend(
        [Patch(color=GROUP_COLORS[g]) for g in groups],
        [GROUP_TITLES[g] for g in groups],
        loc="outside lower center",
        ncol=len(groups),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle("Loss weights over training, by loss family (mean over seeds)")
    return _save(fig, stem, formats)


# ---------------------------------------------------------------------------------------- validation curves


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


def plot_validation_curves(
    curves: pd.DataFrame, stem: Path, *, title: str = "", formats: Sequence[str] = FORMATS
) -> list[Path]:
    """One panel per metric: the seed mean per arm over epochs, with a ±1 std band (no band for one seed)."""
    metric_names = list(dict.fromkeys(curves["metric"].tolist()))
    arms = _arm_order(curves)
    cmap = _colormap("tab10")
    fig = _figure(0.6 + 3.6 * len(metric_names), 3.9)
    axes = np.atleast_1d(fig.subplots(1, len(metric_names), squeeze=False)[0])
    for ax, metric in zip(axes, metric_names, strict=True):
        for k, arm in enumerate(arms):
            line = curves[(curves["arm"] == arm) & (curves["metric"] == metric)]
            if line.empty:
                continue
            x = line["epoch"].to_numpy() + 1
            mean = line["mean"].to_numpy(dtype=float)
            std = np.nan_to_num(line["std"].to_numpy(dtype=float))
            color = cmap(k % 10)
            ax.plot(x, mean, color=color, lw=1.4, marker="o", ms=3, label=arm)
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.18, lw=0)
        ax.set_title(METRIC_LABELS.get(metric, metric), fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(True, color="0.92")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=7, frameon=False)
    n = int(curves["n"].max()) if len(curves) else 0
    fig.suptitle(title or f"Validation curves: mean ± std over seeds (up to n = {n})", fontsize=10)
    return _save(fig, stem, formats)


# ------------------------------------------------------------------------------------------- depth maps


@dataclass(frozen=True)
class DepthSample:
    """One test item at its native resolution: ``image`` [H, W, 3] in [0, 1], ``depth`` and ``mask`` [H, W]."""

    index: int
    image: np.ndarray
    depth: np.ndarray
    mask: np.ndarray


def load_run_model(checkpoint: Path) -> tuple[torch.nn.Module, RunConfig]:
    """The trained model of a run checkpoint (``torch.load(weights_only=True)``) in eval mode, and its config.

    The encoder is built without pretrained weights (the checkpoint holds all of them), so no download happens.
    """
    import torch

    from mlrd_core.config import RunConfig
    from mlrd_core.model import create_depth_model

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    config = RunConfig.from_dict(state["config"], where=f"{checkpoint} config")
    model = create_depth_model(
        config.encoder,
        pretrained=False,
        decoder_width=config.decoder_width,
        skips=config.skips,
        init_depth=config.init_depth,
    )
    model.load_state_dict(state["model"])
    model.eval()
    return model, config


def depth_samples(config: RunConfig, indices: Sequence[int], *, seed: int = 0) -> list[DepthSample]:
    """Items ``indices`` of the run's test split, built exactly as the trainer builds it for the final test."""
    from mlrd_core.data import make_dataset
    from mlrd_core.data.mixture import eval_dataset_name
    from mlrd_core.trainer import split_options  # the trainer's own rule: the images the run was tested on

    if not config.test_split:
        raise FigureDataError("the run has no test split")
    dataset = make_dataset(  # a mixture is tested on its eval dataset (split_options gives that one's options)
        eval_dataset_name(config), split=config.test_split, seed=seed, **split_options(config, config.test_split)
    )
    n = len(dataset)  # type: ignore[arg-type]
    out = []
    for index in [i for i in indices if 0 <= i < n]:
        item = dataset[index]
        out.append(
            DepthSample(
                index=int(index),
                image=item["image"].permute(1, 2, 0).numpy().clip(0, 1),
                depth=item["depth"][0].numpy(),
                mask=item["mask"][0].numpy().astype(bool),
            )
        )
    if not out:
        raise FigureDataError(f"the test split {config.test_split!r} has none of the items {list(indices)}")
    return out


def predict_depth(model: torch.nn.Module, config: RunConfig, samples: Sequence[DepthSample]) -> list[np.ndarray]:
    """Predicted depth [H, W] for each sample at its native size: the image is resized to the network input as in
    the trainer's evaluation (bilinear, antialiased) and the prediction resized back (bilinear)."""
    import torch
    import torch.nn.functional as F

    out = []
    with torch.no_grad():
        for sample in samples:
            image = torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1)))[None].float()
            size = tuple(config.input_size)
            if tuple(image.shape[-2:]) != size:
                image = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
            pred = model(image).float()
            if tuple(pred.shape[-2:]) != sample.depth.shape:
                pred = F.interpolate(pred, size=sample.depth.shape, mode="bilinear", align_corners=False)
            out.append(pred[0, 0].numpy())
    return out


def plot_depth_maps(
    samples: Sequence[DepthSample],
    predictions: Mapping[str, Sequence[np.ndarray]],
    stem: Path,
    *,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Rows: test images; columns: RGB, ground truth, each arm's prediction with its RMSE on that image (plain
    per-pixel RMSE over the valid mask, not a protocol's). One colour scale per row (its colour bar), the ground
    truth's 2nd-98th percentile; far is red, near is blue, as in the paper's Fig. 4."""
    cmap = _colormap("turbo")
    columns = 2 + len(predictions)
    h, w = samples[0].depth.shape
    panel_w = 2.0
    fig = _figure(panel_w * columns + 1.0, (panel_w * h / w + 0.35) * len(samples) + 0.6)
    axes = np.atleast_2d(fig.subplots(len(samples), columns, squeeze=False))
    for i, sample in enumerate(samples):
        valid = sample.depth[sample.mask] if sample.mask.any() else sample.depth.ravel()
        lo, hi = (float(v) for v in np.percentile(valid, [2, 98])) if valid.size else (0.0, 1.0)
        axes[i, 0].imshow(sample.image)
        shown = axes[i, 1].imshow(sample.depth, cmap=cmap, vmin=lo, vmax=hi)
        axes[i, 0].set_ylabel(f"test #{sample.index}", fontsize=8)
        axes[i, 0].set_title("image" if i == 0 else "", fontsize=8, pad=2)
        axes[i, 1].set_title("ground truth" if i == 0 else "", fontsize=8, pad=2)
        for j, (arm, preds) in enumerate(predictions.items()):
            pred = preds[i]
            err = pred[sample.mask] - sample.depth[sample.mask]
            rmse = float(np.sqrt(np.mean(err**2))) if err.size else math.nan
            axes[i, 2 + j].imshow(pred, cmap=cmap, vmin=lo, vmax=hi)
            title = f"{arm}\nRMSE {rmse:.3f} m" if i == 0 else f"RMSE {rmse:.3f} m"
            axes[i, 2 + j].set_title(title, fontsize=7, pad=2)
        bar = fig.colorbar(shown, ax=axes[i, :].tolist(), fraction=0.02, pad=0.01)
        bar.ax.tick_params(labelsize=6)
        bar.set_label("depth (m)", fontsize=6)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Test images: ground truth and predictions (far = red, near = blue)", fontsize=10)
    return _save(fig, stem, formats)


# -------------------------------------------------------------------------------------------- make_figures


def make_figures(
    spec: Spec,
    runs: Sequence[PlannedRun],
    store: Store,
    out_dir: Path,
    *,
    runs_dir: Path | None = None,
    n_images: int = 3,
    formats: Sequence[str] = FORMATS,
    log: Log | None = None,
) -> list[Path]:
    """Write every figure the spec has data for under ``out_dir``; return the written files.

    - Fig. 2: the arm with the most losses that has period records (ties: the first in spec order), all its seeds;
    - Fig. 3: the multi-loss arms with period records (needs a ``lee-kim`` one), at most :data:`MAX_EPOCH_COLUMNS`
      epochs, seed means;
    - weight trajectories: the arms whose weights change during training;
    - with more than :data:`MAX_ARMS` candidate arms, Fig. 3 and the weights keep the lee-kim arms with the most
      losses first (Table 5(c)'s λ schedules on all 78 losses), shown in spec order;
    - validation curves: the metrics of the spec's tables (else :data:`DEFAULT_CURVE_METRICS`), up to four;
    - depth maps: ``n_images`` test images, one prediction per arm from the checkpoint of its first seed that has
      one in ``runs_dir/<run id[:16]>/checkpoint.pt`` (no ``runs_dir``: skipped).

    A figure without data is skipped and ``log`` says why.
    """
    say = log or (lambda message: None)
    out_dir = Path(out_dir)
    arms = arm_table(runs)
    written: list[Path] = []
    if arms.empty:
        say("no figures: the spec has no runs")
        return written
    run_arm = arms[["run_id", "key", "seed"]].rename(columns={"key": "arm"})
    periods = store.periods_frame(spec=spec.name).merge(run_arm, on="run_id", how="inner")
    periods = periods.dropna(subset=["loss"])
    metrics = store.metrics_frame(spec=spec.name).merge(
        arms[["run_id", "group", "arm", "key"]], on=["run_id", "group", "arm"], how="inner"
    )
    metrics = metrics.drop(columns=["arm"]).rename(columns={"key": "arm"})
    info = arms.drop_duplicates("key").set_index("key")
    order = list(info.index)
    periods = periods.assign(_o=periods["arm"].map({a: i for i, a in enumerate(order)})).sort_values(
        ["_o", "seed", "epoch", "period"], kind="stable"
    )
    out_dir.mkdir(parents=True, exist_ok=True)

    def attempt(name: str, build: Callable[[Path], list[Path]]) -> None:
        try:
            written.extend(build(out_dir / FIGURE_NAMES[name]))
        except FigureDataError as exc:
            say(f"skipped {FIGURE_NAMES[name]}: {exc}")

    with_periods = [a for a in order if a in set(periods["arm"])]
    multi = [a for a in with_periods if int(info.loc[a, "n_losses"]) >= 2]

    def fig2(stem: Path) -> list[Path]:
        if not multi:
            raise FigureDataError("no arm with at least 2 losses has period records")
        arm = max(multi, key=lambda a: (int(info.loc[a, "n_losses"]), -order.index(a)))
        pca = pca_trajectories(periods[periods["arm"] == arm])
        n_seeds = periods.loc[periods["arm"] == arm, "run_id"].nunique()
        title = (
            f"Fig. 2: PCA of the normalised loss trajectories of {arm} ({len(pca)} losses, "
            f"{pca.attrs['n_periods']} periods, {n_seeds} seed(s))"
        )
        return plot_pca(pca, stem, title=title, formats=formats)

    def preferred(candidates: Sequence[str]) -> list[str]:
        """At most MAX_ARMS of ``candidates``, in spec order: lee-kim arms first, the most losses first."""
        rank = sorted(
            candidates,
            key=lambda a: (info.loc[a, "weighting"] != "lee-kim", -int(info.loc[a, "n_losses"]), order.index(a)),
        )
        keep = set(rank[:MAX_ARMS])
        return [a for a in candidates if a in keep]

    def fig3(stem: Path) -> list[Path]:
        if not any(info.loc[a, "weighting"] == "lee-kim" for a in multi):
            raise FigureDataError("no multi-loss lee-kim arm has period records")
        rows = preferred(multi)
        data = periods[periods["arm"].isin(rows)]
        shown = evenly_spaced(data["epoch"].unique().tolist(), MAX_EPOCH_COLUMNS)
        contributions = contributions_by_epoch(data, epochs=shown)
        labels = {a: _arm_caption(a, info.loc[a]) for a in rows}
        return plot_contributions(contributions, stem, row_labels=labels, formats=formats)

    def weights(stem: Path) -> list[Path]:
        trajectories = weight_trajectories(periods[periods["arm"].isin(multi)])
        spread = trajectories.groupby(["arm", "loss"])["weight"].agg(lambda w: float(w.max() - w.min()))
        moving = [a for a in multi if (spread.loc[a] > 1e-12 * trajectories["weight"].abs().max()).any()]
        if not moving:
            raise FigureDataError("no arm's loss weights change during training")
        moving = preferred(moving)
        titles = {a: _arm_caption(a, info.loc[a]) for a in moving}
        data = trajectories[trajectories["arm"].isin(moving)]
        return plot_weight_trajectories(data, stem, titles=titles, formats=formats)

    def validation(stem: Path) -> list[Path]:
        wanted = [m for t in spec.tables for m in t.metrics] or list(DEFAULT_CURVE_METRICS)
        present = set(metrics.loc[metrics["split"] == "val", "metric"])
        names = [m for m in dict.fromkeys(wanted) if m in present][:4]
        if not names:
            raise FigureDataError("no validation metrics (runs with val_split) in the store")
        return plot_validation_curves(validation_curves(metrics, metric_names=names), stem, formats=formats)

    def depth(stem: Path) -> list[Path]:
        if runs_dir is None:
            raise FigureDataError("no runs folder to read checkpoints from")
        chosen = _checkpoints(arms, order, Path(runs_dir))
        if not chosen:
            raise FigureDataError(f"no run checkpoint under {runs_dir}")
        samples: list[DepthSample] | None = None
        predictions: dict[str, list[np.ndarray]] = {}
        reference: tuple[Any, ...] | None = None
        for arm, checkpoint in chosen[:MAX_ARMS]:
            model, config = load_run_model(checkpoint)
            data_key = (config.dataset, repr(sorted(config.dataset_options.items())), config.test_split)
            if samples is None:
                samples, reference = depth_samples(config, range(n_images)), data_key
            elif data_key != reference:
                say(f"{FIGURE_NAMES['depth']}: {arm} is tested on other data than the first arm; left out")
                continue
            predictions[arm] = predict_depth(model, config, samples)
        assert samples is not None
        return plot_depth_maps(samples, predictions, stem, formats=formats)

    attempt("pca", fig2)
    attempt("contributions", fig3)
    attempt("weights", weights)
    attempt("validation", validation)
    attempt("depth", depth)
    return written


def _arm_caption(arm: str, row: pd.Series) -> str:
    lam = f", λ {row['lam']}" if row["weighting"] == "lee-kim" else ""
    return f"{arm}\n({row['n_losses']} losses, {row['weighting']}{lam})"


def _checkpoints(arms: pd.DataFrame, order: Sequence[str], runs_dir: Path) -> list[tuple[str, Path]]:
    """(arm, checkpoint of its lowest seed that has one) for every arm in ``order`` with a checkpoint."""
    from suite.plan import SHORT_ID_LENGTH

    out = []
    for arm in order:
        members = arms[arms["key"] == arm].sort_values("seed")
        for run_id in members["run_id"]:
            path = runs_dir / str(run_id)[:SHORT_ID_LENGTH] / "checkpoint.pt"
            if path.exists():
                out.append((arm, path))
                break
    return out


# ------------------------------------------------------------------------------------------- matplotlib


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _colormap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name]


def _save(fig: Figure, stem: Path, formats: Sequence[str]) -> list[Path]:
    """Write ``stem.<fmt>`` for each format (PNG at 150 dpi); returns the paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=150 if fmt == "png" else None, metadata=_metadata(fmt))
        paths.append(path)
    return paths


def _metadata(fmt: str) -> dict[str, Any] | None:
    """No creation date in the PDF, so the same data gives the same file."""
    return {"CreationDate": None} if fmt == "pdf" else None
