"""Figures (suite.figures, `python -m suite figures`): the data behind each figure on hand-computed numbers, the
files written by the command, graceful skips, and the depth maps of a real tiny run."""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_spec import write_spec as write_tiny_spec

from mlrd_core.config import RunConfig
from mlrd_core.losses import select
from suite import figures
from suite.cli import main
from suite.figures import (
    FigureDataError,
    arm_table,
    contributions_by_epoch,
    depth_samples,
    load_run_model,
    pca_trajectories,
    predict_depth,
    validation_curves,
    weight_trajectories,
)
from suite.plan import PlannedRun, plan, planned_rows
from suite.spec import load_spec
from suite.store import Store, open_store

Value = Callable[[int, int, int], float]  # (loss position, epoch, period) -> value

# ------------------------------------------------------------------------------------------------ helpers


def make_result(
    seed: int,
    losses: Sequence[str],
    *,
    epochs: int,
    periods: int,
    mean: Value,
    weight: Value | None = None,
    contribution: Value | None = None,
    val: Callable[[int], float] | None = None,
) -> dict[str, Any]:
    """A result shaped like ``RunResult.to_dict()`` with the given per-loss period values."""
    k = len(losses)
    weight = weight or (lambda i, e, p: 1.0 / k)
    contribution = contribution or (lambda i, e, p: 1.0 / k)
    metrics = []
    for e in range(epochs):
        for name, base in (("delta1", 0.5), ("rmse", 1.0), ("abs_rel", 0.3), ("rmse_log", 0.4)):
            value = base + (val(e) if val else 0.0) + 0.01 * seed
            metrics.append({"split": "val", "epoch": e, "protocol": "synthetic", "name": name, "value": value})
            if e == epochs - 1:
                metrics.append({"split": "test", "epoch": e, "protocol": "synthetic", "name": name, "value": value})
    records = [
        {
            "epoch": e,
            "period": p,
            "action": "rebalance",
            "lam": 1.0,
            "total": 1.0,
            "images": 4,
            "losses": [
                {"name": n, "mean": mean(i, e, p), "weight": weight(i, e, p), "contribution": contribution(i, e, p)}
                for i, n in enumerate(losses)
            ],
        }
        for e in range(epochs)
        for p in range(periods)
    ]
    return {
        "config": {},
        "seed": seed,
        "loss_names": list(losses),
        "metrics": metrics,
        "periods": records,
        "timings": {"s_per_iter": 0.1},
        "environment": {"device": "cpu"},
        "resumed_from": None,
    }


def ingest(store: Store, rows: Sequence[dict[str, Any]], results: Sequence[dict[str, Any]]) -> None:
    """Plan ``rows`` (run_id, spec, group, arm, seed, config) and ingest ``results`` for their unique run ids."""
    store.add_planned(rows)
    done: set[str] = set()
    for row, result in zip(rows, results, strict=True):
        if row["run_id"] in done:
            continue
        done.add(row["run_id"])
        store.mark_running(row["run_id"], worker="test")
        assert store.ingest_result(row["run_id"], result)


def planned(run_id: str, arm: str, seed: int = 0, group: str = "g") -> dict[str, Any]:
    return {"run_id": run_id, "spec": "s", "group": group, "arm": arm, "seed": seed, "config": {"losses": "L"}}


@pytest.fixture
def store() -> Iterator[Store]:
    with open_store("sqlite://") as s:
        yield s


def periods_with_arms(store: Store) -> pd.DataFrame:
    runs = store.runs_frame(spec="s")[["run_id", "arm", "seed"]]
    return store.periods_frame(spec="s").merge(runs, on="run_id")


# ------------------------------------------------------------------------------------------------ Fig. 2


TRAJECTORIES = {
    "l_D^0": [2.0, 1.0, 0.5, 0.25],
    "l_D^1": [4.0, 2.0, 1.0, 0.5],  # l_D^0 times 2: the same normalised trajectory
    "l_rr^0": [1.0, 0.9, 0.8, 0.7],
    "l_N^2": [0.5, 0.6, 0.3, 0.25],
}


def test_pca_puts_identical_normalised_trajectories_on_one_point_and_keeps_distances(store: Store) -> None:
    names = list(TRAJECTORIES)
    values = [TRAJECTORIES[n] for n in names]
    ingest(
        store,
        [planned("r0", "all", 0), planned("r1", "all", 1)],
        [
            make_result(s, names, epochs=2, periods=2, mean=lambda i, e, p, s=s: values[i][2 * e + p] * (1 + s))
            for s in (0, 1)
        ],
    )
    pca = pca_trajectories(periods_with_arms(store))
    assert list(pca["loss"]) == ["l_D^0", "l_rr^0", "l_D^1", "l_N^2"]  # canonical order (scale-major)
    assert list(pca["term"]) == ["D", "rr", "D", "N"]
    assert list(pca["scale"]) == [0, 0, 1, 2]
    assert list(pca["group"]) == ["D", "G", "D", "N"]
    points = pca.set_index("loss")[["pc1", "pc2"]]
    np.testing.assert_allclose(points.loc["l_D^0"], points.loc["l_D^1"], atol=1e-12)
    # three distinct points span a plane: the projection keeps every distance between normalised trajectories
    normalised = {n: np.array(v) / v[0] for n, v in TRAJECTORIES.items()}
    for a in names:
        for b in names:
            expected = np.linalg.norm(normalised[a] - normalised[b])
            got = np.linalg.norm(points.loc[a].to_numpy() - points.loc[b].to_numpy())
            assert got == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(points.mean(axis=0), 0.0, atol=1e-12)  # centred
    assert sum(pca.attrs["explained_variance_ratio"]) == pytest.approx(1.0)
    assert pca.attrs["n_periods"] == 4


def test_pca_averages_the_normalised_trajectories_of_seeds() -> None:
    rows = []
    for run, scale in (("a", 1.0), ("b", 3.0)):
        for t, (x, y) in enumerate(zip([1.0, 0.8, 0.6], [1.0, 0.5, 0.2], strict=True)):
            rows.append({"run_id": run, "epoch": t, "period": 0, "loss": "l_D^0", "mean": x * scale})
            rows.append(
                {"run_id": run, "epoch": t, "period": 0, "loss": "l_r^0", "mean": y * (1.0 if run == "a" else 5)}
            )
    trajectories = figures.normalized_trajectories(pd.DataFrame(rows))
    np.testing.assert_allclose(trajectories.loc["l_D^0"], [1.0, 0.8, 0.6])
    np.testing.assert_allclose(trajectories.loc["l_r^0"], [1.0, 0.5, 0.2])


def test_pca_needs_two_losses_and_two_periods() -> None:
    one_loss = pd.DataFrame(
        [{"run_id": "a", "epoch": e, "period": 0, "loss": "l_D^0", "mean": 1.0 / (e + 1)} for e in range(3)]
    )
    with pytest.raises(FigureDataError, match="at least 2 losses"):
        pca_trajectories(one_loss)
    one_period = pd.DataFrame(
        [{"run_id": "a", "epoch": 0, "period": 0, "loss": n, "mean": 1.0} for n in ("l_D^0", "l_M^0")]
    )
    with pytest.raises(FigureDataError, match="at least 2 periods"):
        pca_trajectories(one_period)


# ------------------------------------------------------------------------------------------------ Fig. 3

# contribution of (loss, epoch) at the LAST period of each epoch (period 1); period 0 holds decoys
LAST = {0: [0.5, 0.3, 0.2], 1: [0.6, 0.3, 0.1], 2: [0.6, 0.2, 0.2]}


def test_contributions_use_each_epochs_last_period_and_colour_the_change(store: Store) -> None:
    losses = ["l_D^0", "l_M^0", "l_N^0"]
    # seed 1 is seed 0 shifted by ±0.02 around it: the seed mean is seed 0's value
    ingest(
        store,
        [planned("r0", "lk", 0), planned("r1", "lk", 1), planned("r2", "lk", 2)],
        [
            make_result(
                s,
                losses,
                epochs=3,
                periods=2,
                mean=lambda i, e, p: 1.0,
                contribution=lambda i, e, p, d=d: LAST[e][i] + d if p == 1 else 9.0,
            )
            for s, d in ((0, 0.0), (1, 0.02), (2, -0.02))
        ],
    )
    got = contributions_by_epoch(periods_with_arms(store))
    assert list(got.columns) == ["arm", "epoch", "loss", "term", "scale", "group", "contribution", "change", "n_runs"]
    table = got.set_index(["loss", "epoch"])
    for e, values in LAST.items():
        for i, loss in enumerate(losses):
            assert table.loc[(loss, e), "contribution"] == pytest.approx(values[i])
    assert set(got["n_runs"]) == {3}
    change = {(r.loss, r.epoch): r.change for r in got.itertuples()}
    assert change == {
        ("l_D^0", 0): "same",  # first epoch: nothing to compare with
        ("l_M^0", 0): "same",
        ("l_N^0", 0): "same",
        ("l_D^0", 1): "increase",  # 0.5 -> 0.6: red
        ("l_M^0", 1): "same",  # 0.3 -> 0.3: green
        ("l_N^0", 1): "decrease",  # 0.2 -> 0.1: blue
        ("l_D^0", 2): "same",
        ("l_M^0", 2): "decrease",
        ("l_N^0", 2): "increase",
    }
    # epochs shown: epoch 2 is compared with epoch 0, the previous one shown
    shown = contributions_by_epoch(periods_with_arms(store), epochs=[0, 2]).set_index(["loss", "epoch"])
    assert list(shown.loc[(slice(None), 2), "change"]) == ["increase", "decrease", "same"]
    assert figures.CHANGE_COLORS["increase"] != figures.CHANGE_COLORS["decrease"] != figures.CHANGE_COLORS["same"]


def test_contribution_changes_below_the_tolerance_are_unchanged() -> None:
    rows = [
        {"run_id": "a", "epoch": e, "period": 0, "loss": "l_D^0", "contribution": c}
        for e, c in enumerate([0.5, 0.5 * (1 + 1e-4), 0.5 * (1 + 1e-4) * 1.01])
    ]
    got = contributions_by_epoch(pd.DataFrame(rows))
    assert list(got["arm"]) == ["a"] * 3  # no arm column: each run is its own arm
    assert list(got["change"]) == ["same", "same", "increase"]
    assert list(contributions_by_epoch(pd.DataFrame(rows), rtol=0.0)["change"]) == ["same", "increase", "increase"]


def test_evenly_spaced_keeps_first_and_last() -> None:
    assert figures.evenly_spaced(range(5), 10) == [0, 1, 2, 3, 4]
    picks = figures.evenly_spaced(range(30), 10)
    assert len(picks) == 10 and picks[0] == 0 and picks[-1] == 29 and picks == sorted(picks)


# ------------------------------------------------------------------------------------------------ weights


def test_weight_trajectories_are_seed_means_on_a_progress_axis(store: Store) -> None:
    losses = ["l_D^0", "l_r^1"]
    ingest(
        store,
        [planned("r0", "lk", 0), planned("r1", "lk", 1)],
        [
            make_result(
                s,
                losses,
                epochs=2,
                periods=4,
                mean=lambda i, e, p: 1.0,
                weight=lambda i, e, p, s=s: (i + 1) * (e * 4 + p + 1) * (1 + s),  # seed 1 = 2 x seed 0
                contribution=lambda i, e, p: 0.25 if i == 0 else 0.75,
            )
            for s in (0, 1)
        ],
    )
    traj = weight_trajectories(periods_with_arms(store))
    first = traj[traj["loss"] == "l_D^0"]
    np.testing.assert_allclose(first["progress"], [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    np.testing.assert_allclose(first["weight"], 1.5 * np.arange(1, 9))  # mean of w and 2w
    second = traj[traj["loss"] == "l_r^1"]
    np.testing.assert_allclose(second["weight"], 3.0 * np.arange(1, 9))
    assert set(second["group"]) == {"G"} and set(second["scale"]) == {1}
    shares = figures.group_shares(traj)
    np.testing.assert_allclose(shares.loc[shares["group"] == "D", "share"], 0.25)
    np.testing.assert_allclose(shares.groupby("progress")["share"].sum(), 1.0)


# ------------------------------------------------------------------------------------------------ validation


def test_validation_curves_mean_and_sample_std_over_seeds(store: Store) -> None:
    losses = ["l_D^0"]
    rows = [planned(f"r{s}", "A", s) for s in range(3)] + [planned("q0", "B", 0)]
    results = [
        make_result(s, losses, epochs=2, periods=1, mean=lambda i, e, p: 1.0, val=lambda e, s=s: 0.1 * s + e)
        for s in range(3)
    ] + [make_result(0, losses, epochs=2, periods=1, mean=lambda i, e, p: 1.0, val=lambda e: math.nan)]
    ingest(store, rows, results)
    curves = validation_curves(store.metrics_frame(spec="s"), metric_names=["rmse", "delta1"])
    assert list(curves.columns) == ["arm", "metric", "epoch", "n", "mean", "std"]
    a = curves[curves["arm"] == "A"].set_index(["metric", "epoch"])
    assert list(a.index) == [("rmse", 0), ("rmse", 1), ("delta1", 0), ("delta1", 1)]  # the order asked for
    # rmse at epoch 1: 1.0 + 1 + 0.1 s + 0.01 s for s = 0, 1, 2 -> 2.0, 2.11, 2.22
    assert a.loc[("rmse", 1), "n"] == 3
    assert a.loc[("rmse", 1), "mean"] == pytest.approx(2.11)
    assert a.loc[("rmse", 1), "std"] == pytest.approx(0.11)  # sample std (ddof = 1)
    assert curves[curves["arm"] == "B"].empty  # NaN values are dropped, not averaged
    with pytest.raises(FigureDataError, match="no 'val' metrics"):
        validation_curves(store.metrics_frame(spec="s"), metric_names=["log10"])


def test_validation_curves_one_seed_has_no_band() -> None:
    frame = pd.DataFrame(
        [
            {"arm": "A", "seed": 0, "split": "val", "epoch": 0, "metric": "rmse", "value": 1.5},
            {"arm": "A", "seed": 0, "split": "test", "epoch": 0, "metric": "rmse", "value": 9.0},
        ]
    )
    curves = validation_curves(frame)
    assert len(curves) == 1 and curves["mean"].iloc[0] == 1.5 and math.isnan(curves["std"].iloc[0])


# ------------------------------------------------------------------------------------------------ arms


def _run(run_id: str, group: str, arm: str, seed: int = 0) -> PlannedRun:
    return PlannedRun(run_id, "s", group, arm, seed, RunConfig(), 78, "lee-kim", True, True, "3 → -3")


def test_arm_table_drops_repeated_arms_and_disambiguates_labels() -> None:
    runs = [
        _run("x0", "a", "L"),
        _run("x1", "a", "L", 1),
        _run("y0", "a", "D"),
        _run("x0", "b", "L"),  # the same runs as a/L: dropped
        _run("x1", "b", "L", 1),
        _run("z0", "b", "D"),  # another D: the label needs its group
    ]
    table = arm_table(runs)
    assert list(dict.fromkeys(table["key"])) == ["L", "a: D", "b: D"]
    assert list(table.loc[table["key"] == "L", "run_id"]) == ["x0", "x1"]


# ------------------------------------------------------------------------------------------------ command

SPEC = """
[spec]
name = "figs"
title = "figures test"
seeds = [0, 1]

[defaults]
encoder = "test_resnet"
decoder_width = 32
input_size = [64, 64]  # scale 5 of 32x32 is 1x1, where L_G and L_M vanish
epochs = 3
batch_size = 4
periods_per_epoch = 2

[defaults.dataset_options]
height = 32
width = 32
train = {{ length = 8 }}
val = {{ length = 4 }}
test = {{ length = 4 }}

[[groups]]
name = "a"
title = "arms"
{arms}

[[tables]]
name = "figs"
title = "figures table"
columns = ["n_losses"]
metrics = ["rmse", "delta1"]
"""

ARMS = """
[[groups.arms]]
label = "D"
losses = "{l_D^0}"
weighting = "equal"

[[groups.arms]]
label = "DG"
losses = "L_D | L_G"
weighting = "equal"

[[groups.arms]]
label = "all"
losses = "L^0 | L^1"
weighting = "lee-kim"
schedule = "3 -> -3 @ 3"
"""


def write_spec(folder: Path, arms: str = ARMS) -> Path:
    path = folder / "figs.toml"
    path.write_text(SPEC.format(arms=arms))
    return path


def fill_store(spec_path: Path, results: Path) -> list[PlannedRun]:
    """Hand-made results for every run of the spec: decaying losses, moving lee-kim weights, val curves."""
    runs = plan(load_spec(spec_path))
    with open_store(f"sqlite:///{results / 'mlrd.db'}") as store:
        rows = planned_rows(runs)
        results_ = []
        for run in runs:
            names = select(run.config.losses)
            moving = run.weighting == "lee-kim"
            results_.append(
                make_result(
                    run.seed,
                    names,
                    epochs=3,
                    periods=2,
                    mean=lambda i, e, p: (1 + i % 5) * math.exp(-(0.1 + 0.07 * (i % 7)) * (2 * e + p)),
                    weight=(lambda i, e, p: 0.01 * (1 + 0.1 * math.sin(i + 2 * e + p))) if moving else None,
                    contribution=lambda i, e, p: 0.01 * (1 + 0.2 * math.cos(i * e + p)),
                    val=lambda e: -0.1 * e,
                )
            )
        ingest(store, rows, results_)
    return runs


def test_figures_command_writes_png_and_pdf_of_each_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec(tmp_path)
    results = tmp_path / "results"
    fill_store(spec, results)
    seen: dict[str, Any] = {}

    def spy(name: str) -> None:
        original = getattr(figures, name)

        def wrapper(data: Any, *args: Any, **kwargs: Any) -> list[Path]:
            seen[name] = (data, kwargs)
            return original(data, *args, **kwargs)

        monkeypatch.setattr(figures, name, wrapper)

    for name in ("plot_pca", "plot_contributions", "plot_weight_trajectories", "plot_validation_curves"):
        spy(name)
    assert main(["figures", str(spec), "--results", str(results)]) == 0
    out, err = capsys.readouterr()
    folder = results / "figs" / "figures"
    stems = ["fig2_loss_pca", "fig3_contributions", "weight_trajectories", "validation_curves"]
    for stem in stems:
        png, pdf = folder / f"{stem}.png", folder / f"{stem}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert pdf.read_bytes()[:5] == b"%PDF-"
        assert str(png) in out and str(pdf) in out
    assert "skipped depth_maps: no run checkpoint" in err  # hand-made results have no checkpoints

    # the data behind each figure
    pca = seen["plot_pca"][0]
    assert len(pca) == len(select("L_D | L_G"))  # the arm with the most losses (36 > 26)
    contributions = seen["plot_contributions"][0]
    assert list(dict.fromkeys(contributions["arm"])) == ["DG", "all"]  # the multi-loss arms, spec order
    assert sorted(contributions["epoch"].unique()) == [0, 1, 2]
    assert set(contributions["n_runs"]) == {2}  # both seeds
    weights = seen["plot_weight_trajectories"][0]
    assert set(weights["arm"]) == {"all"}  # equal weights do not move
    curves = seen["plot_validation_curves"][0]
    assert list(dict.fromkeys(curves["metric"])) == ["rmse", "delta1"]  # the spec table's metrics
    assert list(dict.fromkeys(curves["arm"])) == ["D", "DG", "all"]
    rmse = curves[(curves["arm"] == "D") & (curves["metric"] == "rmse")]
    np.testing.assert_allclose(rmse["mean"], [1.005, 0.905, 0.805])  # 1.0 - 0.1 e + 0.01 seed, seeds 0 and 1
    np.testing.assert_allclose(rmse["std"], np.std([0.0, 0.01], ddof=1))


def test_fig3_keeps_the_lee_kim_arms_with_the_most_losses_when_there_are_too_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    equal = [("E6", "L_D"), ("E36", "L_D | L_G"), ("E13", "L^0"), ("E24", "L_M")]
    arms = "".join(
        f'[[groups.arms]]\nlabel = "{label}"\nlosses = "{expr}"\nweighting = "equal"\n' for label, expr in equal
    )
    arms += "".join(
        f'[[groups.arms]]\nlabel = "lam{lam}"\nlosses = "L^0 | L^1"\nweighting = "lee-kim"\nschedule = "{lam}"\n'
        for lam in (0, 1, 3, -3)
    )
    spec = write_spec(tmp_path, arms=arms)
    results = tmp_path / "results"
    fill_store(spec, results)
    seen: dict[str, pd.DataFrame] = {}
    original = figures.plot_contributions

    def spy(data: pd.DataFrame, *args: Any, **kwargs: Any) -> list[Path]:
        seen["rows"] = data
        return original(data, *args, **kwargs)

    monkeypatch.setattr(figures, "plot_contributions", spy)
    assert main(["figures", str(spec), "--results", str(results)]) == 0
    # 4 lee-kim arms, then the equal arms with the most losses (36, 24); shown in spec order
    assert list(dict.fromkeys(seen["rows"]["arm"])) == ["E36", "E24", "lam0", "lam1", "lam3", "lam-3"]


def test_figures_skip_what_the_spec_has_no_data_for(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, arms='[[groups.arms]]\nlabel = "D"\nlosses = "{l_D^0}"\nweighting = "equal"')
    results = tmp_path / "results"
    assert main(["figures", str(spec), "--results", str(results)]) == 1
    assert "no results store" in capsys.readouterr().err
    assert not results.exists()  # nothing created

    fill_store(spec, results)
    assert main(["figures", str(spec), "--results", str(results)]) == 0
    err = capsys.readouterr().err
    assert sorted(p.name for p in (results / "figs" / "figures").iterdir()) == [
        "validation_curves.pdf",
        "validation_curves.png",
    ]
    assert "skipped fig2_loss_pca: no arm with at least 2 losses" in err
    assert "skipped fig3_contributions" in err and "skipped weight_trajectories" in err


# ------------------------------------------------------------------------------------------------ a real run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One real `python -m suite run` of two tiny arms (test_resnet, 32x32, one seed): (spec, results, stdout)."""
    folder = tmp_path_factory.mktemp("tiny")
    spec = write_tiny_spec(folder, seeds=(0,))
    results = folder / "results"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["run", str(spec), "--results", str(results), "--jobs", "2"]) == 0
    return spec, results, buffer.getvalue()


def test_run_points_at_its_figures_including_depth_maps(tiny_run: tuple[Path, Path, str]) -> None:
    _, results, out = tiny_run
    folder = results / "tiny" / "figures"
    line = next(line for line in out.splitlines() if line.startswith("figures:"))
    assert str(folder) in line and "depth_maps" in line and "validation_curves" in line
    for stem in ("depth_maps", "fig2_loss_pca", "fig3_contributions", "validation_curves"):
        assert (folder / f"{stem}.png").stat().st_size > 0 and (folder / f"{stem}.pdf").stat().st_size > 0


def test_depth_maps_show_the_checkpoints_predictions_on_the_test_images(tiny_run: tuple[Path, Path, str]) -> None:
    from mlrd_core.data import make_dataset
    from mlrd_core.model import create_depth_model

    spec, results, _ = tiny_run
    run = next(r for r in plan(load_spec(spec)) if r.arm == "all")
    checkpoint = results / "runs" / run.short_id / "checkpoint.pt"
    model, config = load_run_model(checkpoint)
    assert config == run.config
    samples = depth_samples(config, [0, 1, 99])  # out-of-range indices are left out
    assert [s.index for s in samples] == [0, 1]
    test_set = make_dataset("synthetic", split="test", height=32, width=32, length=4)
    for sample in samples:
        item = test_set[sample.index]
        np.testing.assert_array_equal(sample.depth, item["depth"][0].numpy())
        np.testing.assert_array_equal(sample.image, item["image"].permute(1, 2, 0).numpy())
    # an independent load of the same checkpoint predicts the same maps
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    reference = create_depth_model("test_resnet", decoder_width=32)
    reference.load_state_dict(state["model"])
    reference.eval()
    with torch.no_grad():
        expected = reference(torch.stack([test_set[i]["image"] for i in (0, 1)]))[:, 0].numpy()
    got = predict_depth(model, config, samples)
    assert all(g.shape == (32, 32) for g in got)
    np.testing.assert_allclose(np.stack(got), expected, rtol=1e-5, atol=1e-5)


def test_a_figure_failure_does_not_fail_the_run(
    tiny_run: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, results, _ = tiny_run

    def broken(*args: Any, **kwargs: Any) -> list[Path]:
        raise RuntimeError("disk full")

    monkeypatch.setattr(figures, "make_figures", broken)
    assert main(["run", str(spec), "--results", str(results)]) == 0  # every run is done: nothing trains
    out, err = capsys.readouterr()
    assert "warning: the figures failed (RuntimeError: disk full)" in err
    assert "figures:  none" in out and "tiny table" in out
