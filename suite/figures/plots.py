"""The plot functions: each takes a data function's frame and writes one PNG and one PDF (matplotlib's object API
with the Agg canvas: no pyplot, no global backend state).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlrd_core.losses.registry import LOSS_BY_NAME, SCALES, TERMS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


from suite.figures.data import _arm_order, group_shares

#: Every figure is written in each of these formats.
FORMATS: tuple[str, ...] = ("png", "pdf")


#: The paper's Fig. 3 colours: contribution up vs the previous epoch (red), down (blue), unchanged (green).
CHANGE_COLORS: dict[str, str] = {"increase": "#d62728", "decrease": "#1f77b4", "same": "#2ca02c"}


#: Loss families L_D, L_M, L_G, L_N.
GROUP_COLORS: dict[str, str] = {"D": "#1b9e77", "M": "#d95f02", "G": "#7570b3", "N": "#e7298a"}


GROUP_TITLES: dict[str, str] = {"D": "depth ℓ_D", "M": "mean-removed ℓ_M", "G": "gradient ℓ_G", "N": "normal ℓ_N"}


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


MAX_EPOCH_COLUMNS = 10  # Fig. 3 shows at most this many epochs (evenly spaced, first and last included)


_TERM_MARKERS = {"D": "o", "M": "s", "M5": "D", "M17": "^", "M65": "v", "r": ">", "c": "<", "rr": "p"}
_TERM_MARKERS |= {"rc": "h", "cc": "*", "N": "P", "Nr": "X", "Nc": "d"}


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
