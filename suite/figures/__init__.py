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

Modules: ``data`` (the data functions), ``plots`` (the plot functions), ``depth`` (the qualitative depth maps, from
the run checkpoints through :mod:`mlrd_core.checkpoint`); this module holds :func:`make_figures` and re-exports
every public name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlrd_core.checkpoint import load_run_model
from suite.figures.data import (
    FigureDataError,
    Log,
    arm_table,
    contributions_by_epoch,
    evenly_spaced,
    group_shares,
    normalized_trajectories,
    pca_trajectories,
    validation_curves,
    weight_trajectories,
)
from suite.figures.depth import DepthSample, _checkpoints, depth_samples, plot_depth_maps, predict_depth
from suite.figures.plots import (
    CHANGE_COLORS,
    FORMATS,
    GROUP_COLORS,
    MAX_EPOCH_COLUMNS,
    plot_contributions,
    plot_pca,
    plot_validation_curves,
    plot_weight_trajectories,
)

if TYPE_CHECKING:
    import pandas as pd

    from suite.plan import PlannedRun
    from suite.spec import Spec
    from suite.store import Store

#: File stems (under ``<results>/<spec>/figures/``) of the figures :func:`make_figures` can write.
FIGURE_NAMES: dict[str, str] = {
    "pca": "fig2_loss_pca",
    "contributions": "fig3_contributions",
    "weights": "weight_trajectories",
    "validation": "validation_curves",
    "depth": "depth_maps",
}


DEFAULT_CURVE_METRICS: tuple[str, ...] = ("delta1", "rmse", "abs_rel", "rmse_log")


MAX_ARMS = 6  # rows of Fig. 3, panels of the weight figure, prediction columns of the depth maps


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
    "evenly_spaced",
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
