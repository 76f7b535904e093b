"""Tests of suite.report: seed statistics, baseline comparisons, bold / red-blue decisions, and the renderers.

Golden files: ``tests/golden/report_table5.{md,tex,csv}`` are the three renderings of a fixed, hand-made
Table 5-like frame (parts (a) and (b), 3 seeds, the paper's numbers as references). A rendering that changes on
purpose is accepted by regenerating them and reviewing the diff::

    MLRD_UPDATE_GOLDEN=1 python -m pytest -p no:xdist -q tests/test_report.py -k golden
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from suite.report import (
    COMPARISON_COLUMNS,
    PAIRED_BOOTSTRAP,
    PAIRED_T,
    SUMMARY_COLUMNS,
    WELCH_T,
    Cell,
    ReportError,
    ReportTable,
    TableLayout,
    build_table,
    compare,
    format_value,
    paired_difference,
    render_csv,
    render_latex,
    render_markdown,
    summarize,
    summarize_timings,
    table_frame,
)
from suite.report.latex import _latex_descriptor

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("MLRD_UPDATE_GOLDEN") == "1"

METRICS = ("delta1", "rmse", "rmse_log", "abs_rel")
SEEDS = (0, 1, 2)

# Per-seed test values at the last epoch, hand-made near the paper's Table 5 numbers. (a) has a displayed tie on
# RMSE log (ld_lg and all: 0.154); (b) improves on (a) for most metrics and degrades ARD of L_D ∪ L_G.
MEASURED: dict[tuple[str, str], dict[str, tuple[float, float, float]]] = {
    ("combination", "ld0"): {
        "delta1": (0.841, 0.846, 0.850),
        "rmse": (0.481, 0.476, 0.470),
        "rmse_log": (0.166, 0.165, 0.163),
        "abs_rel": (0.129, 0.131, 0.127),
    },
    ("combination", "ld_lg"): {
        "delta1": (0.861, 0.866, 0.858),
        "rmse": (0.449, 0.452, 0.444),
        "rmse_log": (0.154, 0.155, 0.153),
        "abs_rel": (0.119, 0.117, 0.121),
    },
    ("combination", "all"): {
        "delta1": (0.863, 0.860, 0.868),
        "rmse": (0.445, 0.441, 0.447),
        "rmse_log": (0.153, 0.156, 0.153),
        "abs_rel": (0.122, 0.120, 0.125),
    },
    ("rebalancing", "ld_lg_rb"): {
        "delta1": (0.866, 0.871, 0.869),
        "rmse": (0.438, 0.441, 0.436),
        "rmse_log": (0.152, 0.151, 0.153),
        "abs_rel": (0.121, 0.118, 0.123),
    },
    ("rebalancing", "all_rb"): {
        "delta1": (0.870, 0.872, 0.866),
        "rmse": (0.433, 0.437, 0.432),
        "rmse_log": (0.150, 0.151, 0.149),
        "abs_rel": (0.122, 0.121, 0.120),
    },
}

# group, arm, losses, # losses, I, R, λ
DESCRIPTORS = pd.DataFrame(
    [
        ("combination", "ld0", "{l_D^0}", 1, False, False, "0"),
        ("combination", "ld_lg", "L_D ∪ L_G", 36, False, False, "0"),
        ("combination", "all", "L", 78, False, False, "0"),
        ("rebalancing", "ld_lg_rb", "L_D ∪ L_G", 36, True, True, "3 -> -3"),
        ("rebalancing", "all_rb", "L", 78, True, True, "3 -> -3"),
        ("rebalancing", "l0_rb", "L^0", 13, True, True, "3 -> -3"),
    ],
    columns=["group", "arm", "losses", "n_losses", "init", "rebalance", "lambda"],
)

# The paper's Table 5 values of the same settings (δ as fractions).
PAPER: dict[tuple[str, str], tuple[float, float, float, float]] = {
    ("combination", "ld0"): (0.848, 0.474, 0.164, 0.128),
    ("combination", "ld_lg"): (0.865, 0.445, 0.153, 0.117),
    ("combination", "all"): (0.864, 0.440, 0.153, 0.122),
    ("rebalancing", "ld_lg_rb"): (0.869, 0.437, 0.151, 0.118),
    ("rebalancing", "all_rb"): (0.870, 0.434, 0.150, 0.117),
    ("rebalancing", "l0_rb"): (0.848, 0.466, 0.161, 0.126),
}

LAYOUT = TableLayout(
    name="table5",
    title="Table 5. Ablation studies (synthetic demo)",
    groups=("combination", "rebalancing"),
    metrics=METRICS,
    columns=("losses", "n_losses", "init", "rebalance", "lambda"),
    split="test",
    baseline="combination",
    baseline_key="losses",
    group_titles={
        "combination": "Combination of loss functions",
        "rebalancing": "Effectiveness of loss rebalancing algorithm",
    },
)


def metrics_frame(measured: Mapping[tuple[str, str], Mapping[str, Sequence[float]]] = MEASURED) -> pd.DataFrame:
    """The store's long frame: epochs 0 and 1 of split test (epoch 0 worse), plus a val split that must be ignored."""
    rows = []
    for (group, arm), by_metric in measured.items():
        for metric, values in by_metric.items():
            for seed, value in zip(SEEDS, values, strict=False):
                run = f"{group}-{arm}-s{seed}"
                base = dict(run_id=run, spec="table5", group=group, arm=arm, seed=seed, protocol="synthetic")
                rows.append(base | dict(split="test", epoch=1, metric=metric, value=value))
                rows.append(base | dict(split="test", epoch=0, metric=metric, value=value * 1.5))
                rows.append(base | dict(split="val", epoch=1, metric=metric, value=value * 0.5))
    return pd.DataFrame(rows)


def references_frame() -> pd.DataFrame:
    rows = [
        dict(group=g, arm=a, source="paper", metric=m, value=v)
        for (g, a), values in PAPER.items()
        for m, v in zip(METRICS, values, strict=True)
    ]
    return pd.DataFrame(rows)


def golden_table() -> ReportTable:
    summary = summarize(metrics_frame())
    return build_table(summary, LAYOUT, DESCRIPTORS, references_frame())


def cell_of(table: ReportTable, group: str, arm: str, metric: str, source: str | None = None) -> Cell:
    section = next(s for s in table.sections if s.group == group)
    row = next(r for r in section.rows if r.arm == arm and r.source == source)
    return row.cells[metric]


# ----------------------------------------------------------------------------------------------------------------
# summarize


def test_summary_statistics_match_numpy() -> None:
    summary = summarize(metrics_frame())
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert len(summary) == len(MEASURED) * len(METRICS)
    for rec in summary.to_dict("records"):
        x = np.array(MEASURED[(rec["group"], rec["arm"])][rec["metric"]])
        sem = x.std(ddof=1) / np.sqrt(3)
        assert rec["n"] == 3
        assert rec["split"] == "test" and rec["protocol"] == "synthetic"
        assert rec["mean"] == pytest.approx(x.mean(), rel=1e-12)
        assert rec["std"] == pytest.approx(x.std(ddof=1), rel=1e-12)
        assert rec["sem"] == pytest.approx(sem, rel=1e-12)
        assert rec["ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * sem, rel=1e-12)
    # rows follow the arms' first appearance, metrics follow METRIC_NAMES
    assert list(summary["metric"][:4]) == ["delta1", "rmse", "abs_rel", "rmse_log"]
    assert list(dict.fromkeys(summary["arm"])) == ["ld0", "ld_lg", "all", "ld_lg_rb", "all_rb"]


def test_summary_last_epoch_is_per_run() -> None:
    frame = pd.DataFrame(
        [
            # run a stopped after epoch 1, run b reached epoch 2: each run's own last epoch counts
            dict(run_id="a", seed=0, epoch=0, value=9.0),
            dict(run_id="a", seed=0, epoch=1, value=1.0),
            dict(run_id="b", seed=1, epoch=1, value=9.0),
            dict(run_id="b", seed=1, epoch=2, value=3.0),
            dict(run_id="b", seed=1, epoch=5, value=7.0, split="val"),  # other split: not b's last test epoch
        ]
    ).assign(spec="s", group="g", arm="x", protocol="p", metric="rmse")
    frame["split"] = frame["split"].fillna("test")
    last = summarize(frame)
    assert last.loc[0, "n"] == 2 and last.loc[0, "mean"] == pytest.approx(2.0)
    at1 = summarize(frame, epoch=1)
    assert at1.loc[0, "n"] == 2 and at1.loc[0, "mean"] == pytest.approx(5.0)
    val = summarize(frame, split="val")
    assert val.loc[0, "n"] == 1 and val.loc[0, "mean"] == 7.0


def test_summary_keeps_a_final_evaluation_without_epoch() -> None:
    frame = metrics_frame({("g", "x"): {"rmse": (0.4, 0.6)}})
    frame = frame[frame["epoch"] == 1].assign(epoch=math.nan)  # one final evaluation per run, no epoch number
    summary = summarize(frame)
    assert summary.loc[0, "n"] == 2 and summary.loc[0, "mean"] == pytest.approx(0.5)


def test_summary_single_seed_has_nan_spread_and_drops_non_finite() -> None:
    frame = metrics_frame({("g", "x"): {"rmse": (0.5, math.nan, math.inf)}})
    summary = summarize(frame)
    rec = summary.iloc[0]
    assert rec["n"] == 1 and rec["mean"] == 0.5
    assert math.isnan(rec["std"]) and math.isnan(rec["sem"]) and math.isnan(rec["ci95"])


def test_summary_of_nothing_is_an_empty_frame() -> None:
    summary = summarize(metrics_frame(), split="train")
    assert summary.empty and list(summary.columns) == list(SUMMARY_COLUMNS)


def test_summary_rejects_inconsistent_frames() -> None:
    frame = metrics_frame()
    with pytest.raises(ReportError, match="missing"):
        summarize(frame.drop(columns=["seed"]))
    twin = frame[frame["run_id"] == "combination-ld0-s0"].assign(run_id="combination-ld0-s0-v2")
    with pytest.raises(ReportError, match="runs with seed 0"):
        summarize(pd.concat([frame, twin]))
    other = frame.copy()
    other.loc[other["run_id"] == "combination-ld0-s1", "protocol"] = "nyu-eigen"
    with pytest.raises(ReportError, match="different protocols"):
        summarize(other)
    clash = frame[(frame["run_id"] == "combination-ld0-s0") & (frame["epoch"] == 1)].assign(value=0.1)
    with pytest.raises(ReportError, match="different values"):
        summarize(pd.concat([frame, clash]))
    # an identical duplicate row (the same run ingested twice) is harmless
    again = summarize(pd.concat([frame, frame]))
    assert (again["n"] == 3).all()


# ----------------------------------------------------------------------------------------------------------------
# best (bold)


def test_bold_best_is_direction_aware() -> None:
    table = golden_table()
    # δ1: higher is better → all (86.4) in (a), all_rb (86.9) in (b)
    assert cell_of(table, "combination", "all", "delta1").best
    assert not cell_of(table, "combination", "ld_lg", "delta1").best
    assert cell_of(table, "rebalancing", "all_rb", "delta1").best
    # RMSE: lower is better → all (0.444) in (a)
    assert cell_of(table, "combination", "all", "rmse").best
    assert not cell_of(table, "combination", "ld0", "rmse").best
    # ARD: lower → ld_lg (0.119) in (a)
    assert cell_of(table, "combination", "ld_lg", "abs_rel").best
    # references are never bold
    assert not any(c.best for s in table.sections for r in s.rows if r.source for c in r.cells.values())


def test_ties_at_displayed_precision_are_all_bold() -> None:
    table = golden_table()
    # RMSE log: ld_lg 0.15400 and all 0.15400 (display 0.154) tie for best in (a)
    assert cell_of(table, "combination", "ld_lg", "rmse_log").best
    assert cell_of(table, "combination", "all", "rmse_log").best
    assert not cell_of(table, "combination", "ld0", "rmse_log").best
    # exact ties too, and a difference hidden by the rounding counts as a tie
    measured: dict[tuple[str, str], dict[str, tuple[float, ...]]] = {
        ("g", "x"): {"delta1": (0.9, 0.9)},
        ("g", "y"): {"delta1": (0.9, 0.9)},
        ("g", "z"): {"delta1": (0.90004,)},
    }
    layout = TableLayout(name="t", title="T", groups=("g",), metrics=("delta1",))
    table = build_table(summarize(metrics_frame(measured)), layout)
    assert all(cell_of(table, "g", arm, "delta1").best for arm in "xyz")


def test_no_bold_with_a_single_measured_arm() -> None:
    layout = TableLayout(name="t", title="T", groups=("g",), metrics=("rmse",))
    table = build_table(summarize(metrics_frame({("g", "x"): {"rmse": (0.4, 0.5)}})), layout)
    assert not cell_of(table, "g", "x", "rmse").best


# ----------------------------------------------------------------------------------------------------------------
# baseline comparison (red / blue)


def test_compare_matches_the_baseline_row_with_the_same_key() -> None:
    summary = summarize(metrics_frame())
    cmp = compare(summary, LAYOUT, DESCRIPTORS)
    assert list(cmp.columns) == list(COMPARISON_COLUMNS)
    pairs = set(zip(cmp["arm"], cmp["baseline_arm"], strict=True))
    assert pairs == {("ld_lg_rb", "ld_lg"), ("all_rb", "all")}  # l0_rb has no L^0 arm in (a); no runs either
    assert len(cmp) == 2 * len(METRICS)
    out = {(r["arm"], r["metric"]): r for r in cmp.to_dict("records")}
    # δ1: per-seed differences +0.5, +0.5, +1.1 points: a better mean, but the 95 % paired interval
    # (−0.16, +1.56) includes 0, so no mark
    assert out[("ld_lg_rb", "delta1")]["diff"] == pytest.approx(0.007)
    assert out[("ld_lg_rb", "delta1")]["diff_low"] < 0 < out[("ld_lg_rb", "delta1")]["diff_high"]
    assert pd.isna(out[("ld_lg_rb", "delta1")]["outcome"])
    # RMSE: −0.011, −0.011, −0.008 on every seed: the interval lies below 0 → improved
    assert out[("ld_lg_rb", "rmse")]["outcome"] == "improved"
    assert out[("ld_lg_rb", "rmse")]["diff"] == pytest.approx(
        np.mean([0.438, 0.441, 0.436]) - np.mean([0.449, 0.452, 0.444])
    )
    assert out[("ld_lg_rb", "rmse")]["n_paired"] == 3 and out[("ld_lg_rb", "rmse")]["test"] == PAIRED_T
    # ARD +0.002, +0.001, +0.002: lower is better, the interval lies above 0 → degraded
    assert out[("ld_lg_rb", "abs_rel")]["outcome"] == "degraded"
    # ARD of L: 0.000, +0.001, −0.005: a better mean (0.1210 vs 0.1223) that the seeds do not support → no mark
    assert out[("all_rb", "abs_rel")]["diff"] < 0 and pd.isna(out[("all_rb", "abs_rel")]["outcome"])


def test_compare_calls_equal_displayed_means_a_tie() -> None:
    measured = {("a", "x"): {"rmse": (0.4001, 0.4002)}, ("b", "y"): {"rmse": (0.4002, 0.4003)}}
    descriptors = pd.DataFrame([("a", "x", "L"), ("b", "y", "L")], columns=["group", "arm", "losses"])
    layout = TableLayout(name="t", title="T", groups=("a", "b"), metrics=("rmse",), baseline="a")
    cmp = compare(summarize(metrics_frame(measured)), layout, descriptors)
    assert cmp["outcome"].tolist() == ["tie"]
    table = build_table(summarize(metrics_frame(measured)), layout, descriptors)
    assert "(+)" not in render_markdown(table).split("**(b)")[1].split("\n\n")[1]


def test_paired_intervals_and_p_values_match_scipy_on_the_raw_seeds() -> None:
    cmp = compare(summarize(metrics_frame()), LAYOUT, DESCRIPTORS)
    for rec in cmp.to_dict("records"):
        a = MEASURED[("rebalancing", rec["arm"])][rec["metric"]]
        b = MEASURED[("combination", rec["baseline_arm"])][rec["metric"]]
        expected = stats.ttest_rel(a, b)
        ci = expected.confidence_interval(confidence_level=0.95)
        assert rec["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
        assert (rec["diff_low"], rec["diff_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
        assert pd.isna(rec["outcome"]) or (ci.low > 0 or ci.high < 0)


# Hand-made per-seed results: arm b is arm a plus a small, consistent gain; the seeds' own spread is larger.
_A = {0: 0.71, 1: 0.64, 2: 0.78, 3: 0.69, 4: 0.75, 5: 0.62, 6: 0.73, 7: 0.80, 8: 0.66, 9: 0.70, 10: 0.77, 11: 0.68}
_GAIN = {0: 0.021, 1: 0.018, 2: 0.025, 3: 0.012, 4: 0.030, 5: 0.016, 6: 0.022, 7: 0.019, 8: 0.027, 9: 0.014,
         10: 0.024, 11: 0.020}  # fmt: skip
_B = {s: v + _GAIN[s] for s, v in _A.items()}


def test_pairing_finds_a_consistent_gain_that_an_unpaired_test_misses() -> None:
    seeds = [0, 1, 2]
    b, a = {s: _B[s] for s in seeds}, {s: _A[s] for s in seeds}
    paired = paired_difference(b, a)
    assert paired.test == PAIRED_T and paired.n == 3
    assert paired.excludes_zero and paired.low > 0
    welch = stats.ttest_ind([b[s] for s in seeds], [a[s] for s in seeds], equal_var=False)
    assert welch.confidence_interval().low < 0 < welch.confidence_interval().high  # unpaired: lost in the spread


def test_bootstrap_interval_from_ten_paired_seeds_matches_scipy() -> None:
    diff = paired_difference(_B, _A)
    assert diff.test == PAIRED_BOOTSTRAP and diff.n == 12
    d = np.array([_B[s] - _A[s] for s in sorted(_A)])
    expected = stats.bootstrap(
        (d,), np.mean, confidence_level=0.95, n_resamples=10_000, method="BCa", rng=np.random.default_rng(0)
    ).confidence_interval
    assert (diff.low, diff.high) == pytest.approx((expected.low, expected.high), rel=1e-12)
    assert diff.mean == pytest.approx(d.mean()) and diff.p_value == pytest.approx(stats.ttest_rel(d, 0 * d).pvalue)
    assert diff.low < d.mean() < diff.high and diff.excludes_zero


def test_arms_without_shared_seeds_fall_back_to_welch() -> None:
    a = {0: 0.70, 1: 0.72, 2: 0.69}
    b = {3: 0.75, 4: 0.79, 5: 0.77}
    diff = paired_difference(b, a)
    expected = stats.ttest_ind(list(b.values()), list(a.values()), equal_var=False)
    ci = expected.confidence_interval(confidence_level=0.95)
    assert diff.test == WELCH_T and diff.n == 3
    assert (diff.low, diff.high, diff.p_value) == pytest.approx((ci.low, ci.high, expected.pvalue), rel=1e-9)


def test_too_few_seeds_give_no_interval_and_identical_differences_a_point() -> None:
    assert paired_difference({0: 0.5}, {0: 0.4}).test is None
    assert math.isnan(paired_difference({0: 0.5, 1: 0.6}, {0: 0.4}).low)
    same = paired_difference({0: 0.5, 1: 0.6}, {0: 0.4, 1: 0.5})
    assert (same.low, same.mean, same.high) == pytest.approx((0.1, 0.1, 0.1)) and same.excludes_zero


def test_one_baseline_arm_for_the_whole_table() -> None:
    measured = {
        ("g", "base"): {"delta1": (0.60, 0.55, 0.65)},
        ("g", "better"): {"delta1": (0.70, 0.66, 0.74)},
        ("g", "same"): {"delta1": (0.61, 0.53, 0.66)},
    }
    layout = TableLayout(
        name="t",
        title="T",
        groups=("g",),
        metrics=("delta1",),
        baseline="g",
        pairs={("g", "better"): ("g", "base"), ("g", "same"): ("g", "base")},
        baseline_arm="base",
    )
    table = build_table(summarize(metrics_frame(measured)), layout)
    assert cell_of(table, "g", "better", "delta1").outcome == "improved"
    assert cell_of(table, "g", "same", "delta1").outcome is None
    assert cell_of(table, "g", "base", "delta1").test is None
    md = render_markdown(table)
    block = md.split("**Differences against the baseline**")[1]
    # per-seed differences +10, +11, +9 points: 10 ± t(0.975, 2) · 1 / √3 = 10 ± 2.5
    assert "| better | base     |   3 | +10.0 [+7.5, +12.5] (+) |" in block
    # +1, −2, +1 points: 0 ± 4.3, no mark
    assert "| same   | base     |   3 |       +0.0 [−4.3, +4.3] |" in block
    assert "arm base" in block and "paired Student t" in block and "n = 3" in block


def test_arms_with_fewer_than_three_seeds_are_flagged() -> None:
    measured = {("g", "x"): {"rmse": (0.4, 0.5, 0.6)}, ("g", "y"): {"rmse": (0.3, 0.35)}}
    layout = TableLayout(name="t", title="T", groups=("g",), metrics=("rmse",))
    table = build_table(summarize(metrics_frame(measured)), layout)
    md = render_markdown(table)
    assert "| y ‡ " in md and "| x " in md and "| x ‡" not in md
    assert "‡: fewer than 3 finished seeds" in md
    assert r"y$^\ddagger$" in render_latex(table)


def test_flags_reach_the_table_and_the_paper_keeps_its_own_colours() -> None:
    table = golden_table()
    assert cell_of(table, "rebalancing", "ld_lg_rb", "abs_rel").outcome == "degraded"
    assert cell_of(table, "combination", "ld_lg", "delta1").outcome is None  # baseline rows are not coloured
    assert cell_of(table, "rebalancing", "ld_lg_rb", "rmse").outcome == "improved"
    assert cell_of(table, "rebalancing", "ld_lg_rb", "delta1").outcome is None  # better mean, interval spans 0
    # paper: L_D ∪ L_G δ1 86.9 vs 86.5 improved; ARD 0.118 vs 0.117 degraded; L RMSE log 0.150 vs 0.153 improved
    assert cell_of(table, "rebalancing", "ld_lg_rb", "delta1", "paper").outcome == "improved"
    assert cell_of(table, "rebalancing", "ld_lg_rb", "abs_rel", "paper").outcome == "degraded"
    assert cell_of(table, "rebalancing", "all_rb", "rmse_log", "paper").outcome == "improved"
    md = render_markdown(table)
    assert "(+)" in md and "(−)" in md
    tex = render_latex(table)
    assert r"\textcolor{red}{" in tex and r"\textcolor{blue}{" in tex


def test_ambiguous_or_unknown_baseline_key_is_an_error() -> None:
    summary = summarize(metrics_frame())
    twice = pd.concat([DESCRIPTORS, DESCRIPTORS.iloc[[1]].assign(arm="ld_lg_copy")])
    with pytest.raises(ReportError, match="2 arms with losses"):
        compare(summary, LAYOUT, twice)
    layout = TableLayout(
        name="t", title="T", groups=LAYOUT.groups, metrics=METRICS, baseline="combination", baseline_key="nope"
    )
    with pytest.raises(ReportError, match="baseline_key 'nope'"):
        compare(summary, layout, DESCRIPTORS)


def test_no_baseline_means_no_comparison() -> None:
    layout = TableLayout(name="t", title="T", groups=LAYOUT.groups, metrics=METRICS)
    cmp = compare(summarize(metrics_frame()), layout, DESCRIPTORS)
    assert cmp.empty and list(cmp.columns) == list(COMPARISON_COLUMNS)


# ----------------------------------------------------------------------------------------------------------------
# rendering details


def test_n_of_seeds_is_shown() -> None:
    md = render_markdown(golden_table())
    header = next(line for line in md.splitlines() if line.startswith("| Arm "))
    ld0 = next(line for line in md.splitlines() if line.startswith("| ld0 "))
    n_at = [c.strip() for c in header.strip("|").split("|")].index("n")
    assert [c.strip() for c in ld0.strip("|").split("|")][n_at] == "3"
    assert r"& $n$ &" in render_latex(golden_table())
    # a metric with fewer seeds than its row says so in the cell
    measured = {("g", "x"): {"rmse": (0.4, 0.5, 0.6), "abs_rel": (0.1, 0.2)}}
    layout = TableLayout(name="t", title="T", groups=("g",), metrics=("rmse", "abs_rel"))
    table = build_table(summarize(metrics_frame(measured)), layout)
    assert "0.150 ± 0.071 (n=2)" in render_markdown(table)
    assert "($n$=2)" in render_latex(table)


def test_missing_values_render_as_dashes() -> None:
    measured = {("g", "x"): {"rmse": (0.4, 0.5, 0.6)}, ("g", "y"): {"rmse": (0.3, 0.3, 0.3)}}
    descriptors = pd.DataFrame([("g", "x", 4)], columns=["group", "arm", "n_losses"])
    layout = TableLayout(name="t", title="T", groups=("g",), metrics=("rmse", "abs_rel"), columns=("n_losses",))
    table = build_table(summarize(metrics_frame(measured)), layout, descriptors)
    md = render_markdown(table)
    y = next(line for line in md.splitlines() if line.startswith("| y "))
    assert [c.strip() for c in y.strip("|").split("|")] == ["y", "–", "3", "**0.300 ± 0.000**", "–"]
    tex = render_latex(table)
    assert r"y & -- & 3 & \textbf{0.300 $\pm$ 0.000} & -- \\" in tex
    frame = pd.read_csv(io.StringIO(render_csv(table)))
    assert frame.loc[(frame["arm"] == "x") & (frame["metric"] == "abs_rel"), "mean"].isna().all()


def test_a_table_without_runs_still_shows_the_paper() -> None:
    empty = summarize(metrics_frame().iloc[:0])
    table = build_table(empty, LAYOUT, DESCRIPTORS, references_frame())
    assert not table.has_runs
    md = render_markdown(table)
    assert md.count("no finished runs yet") == 2
    assert "*86.9*" in md and "*0.434*" in md
    tex = render_latex(table)
    assert "no finished runs yet" in tex and r"\textit{0.434}" in tex
    frame = table_frame(table)
    assert (frame["n"] == 0).all() and frame["paper"].notna().all()


def test_percent_references_are_rejected() -> None:
    refs = references_frame()
    refs.loc[0, "value"] = 84.8
    with pytest.raises(ReportError, match="looks like a percentage"):
        build_table(summarize(metrics_frame()), LAYOUT, DESCRIPTORS, refs)


def test_headers_carry_directions_and_units() -> None:
    table = golden_table()
    labels = [c.label for c in table.columns]
    assert labels == ["Arm", "Losses", "# Losses", "I", "R", "λ", "n", "δ1 (%) ↑", "RMSE lin ↓", "RMSE log ↓", "ARD ↓"]
    tex = render_latex(table)
    assert r"$\delta_1$ (\%) $\uparrow$" in tex and r"RMSE$_{\mathrm{lin}}$ $\downarrow$" in tex
    assert format_value("delta1", 0.8691) == "86.9" and format_value("rmse", 0.43449) == "0.434"


def test_latex_is_booktabs_with_the_packages_named() -> None:
    tex = render_latex(golden_table())
    assert tex.startswith("% Requires \\usepackage{booktabs,xcolor,amssymb}")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\textbf{", r"\checkmark"):
        assert rule in tex
    # loss sets in the paper's notation, schedules in math mode, other text escaped
    assert r"ld\_lg & $\mathcal{L}_{D} \cup \mathcal{L}_{G}$ & 36 & -- & -- & 0 & 3 &" in tex
    assert r"$\{ \ell_{D}^{0} \}$" in tex and r"$3 \rightarrow -3$" in tex
    main, differences = tex.split(r"\par\medskip")
    assert main.count("&") == main.count(r"\\") * 10 - main.count(r"\multicolumn") * 10 + main.count(r"\&")
    assert differences.count("&") == differences.count(r"\\") * 6  # arm, baseline, n and 4 metrics


@pytest.mark.parametrize(
    ("expression", "latex"),
    [
        # spellings the specs use: the output the old token-by-token typesetter gave, kept
        ("L", r"$\mathcal{L}$"),
        ("L_D | L_G", r"$\mathcal{L}_{D} \cup \mathcal{L}_{G}$"),
        ("L^3 | L^4 | L^5", r"$\mathcal{L}^{3} \cup \mathcal{L}^{4} \cup \mathcal{L}^{5}$"),
        ("{l_D^0, l_M^0, l_r^0, l_c^0}", r"$\{ \ell_{D}^{0} , \ell_{M}^{0} , \ell_{r}^{0} , \ell_{c}^{0} \}$"),
        # from the parser's tree: Unicode and LaTeX-brace spellings, globs, parentheses that disambiguate
        ("ℒ^{0} ∪ ℒ_G", r"$\mathcal{L}^{0} \cup \mathcal{L}_{G}$"),
        ("{l_M*^2, l_D^0}", r"$\{ \ell_{M*}^{2} , \ell_{D}^{0} \}$"),
        ("L_D | L_G & L^0", r"$\mathcal{L}_{D} \cup ( \mathcal{L}_{G} \cap \mathcal{L}^{0} )$"),
        ("(L - L_N) | L_N", r"$( \mathcal{L} \setminus \mathcal{L}_{N} ) \cup \mathcal{L}_{N}$"),
        ("L - L_N - L_D", r"$\mathcal{L} \setminus \mathcal{L}_{N} \setminus \mathcal{L}_{D}$"),
        # not an expression: escaped as text
        ("L_D | L_X", r"L\_D $|$ L\_X"),
        ("custom", "custom"),
    ],
)
def test_loss_expressions_are_typeset_from_the_parse_tree(expression: str, latex: str) -> None:
    assert _latex_descriptor("losses", expression) == latex


def test_timing_tables_go_through_the_report_model() -> None:
    """Table 7: mean ± std per arm over seeds, the ratio to one arm (the paper's rows to the paper's), the spec's
    columns, escaped LaTeX, and a CSV in long form; all from the one ReportTable."""
    values = {"one": (1.0, 1.2, 1.1), "all": (2.2, 2.4, 2.3)}
    timings = pd.DataFrame(
        [
            {"run_id": f"{arm}{seed}", "spec": "t", "group": "timing", "arm": arm, "seed": seed, "name": name,
             "value": v * (1 if name == "s_per_iter" else 0.01)}
            for arm, vs in values.items()
            for seed, v in enumerate(vs)
            for name in ("s_per_iter", "test_s_per_scene")
        ]
    )  # fmt: skip
    layout = TableLayout(
        "t7", "Times", ("timing",), ("s_per_iter", "test_s_per_scene"), ("n_losses",), timings=True, ratio_to="one"
    )
    descriptors = pd.DataFrame([{"group": "timing", "arm": a, "n_losses": n} for a, n in (("one", "1"), ("all", "78"))])
    refs = pd.DataFrame(
        [
            {"group": "timing", "arm": arm, "source": "paper", "metric": "s_per_iter", "value": value}
            for arm, value in (("one", 1.6), ("all", 2.0))
        ]
    )
    table = build_table(summarize_timings(timings), layout, descriptors, refs)
    assert table.timings and table.metrics == ("s_per_iter", "test_s_per_scene")
    md = render_markdown(table)
    assert "| all       | 78       |   3 | 2.3 ± 0.1 (×2.09) | 0.023 ± 0.001 (×2.09) |" in md
    assert "| ↳ *paper* |" in md and "*2 (×1.25)*" in md
    assert "seconds, mean ± std over seeds; (×r): ratio of the mean to arm 'one'; *paper* rows" in md
    tex = render_latex(table)
    assert r"Arm & \# Losses & $n$ & s\_per\_iter & test\_s\_per\_scene \\" in tex
    assert r"all & 78 & 3 & 2.3 $\pm$ 0.1 ($\times$2.09)" in tex
    frame = pd.read_csv(io.StringIO(render_csv(table)))
    assert list(frame.columns) == ["group", "arm", "name", "n", "mean", "std", "ratio", "n_losses", "paper"]
    row = frame[(frame["arm"] == "all") & (frame["name"] == "s_per_iter")].iloc[0]
    assert (row["n"], row["mean"], row["ratio"], row["paper"]) == (3, pytest.approx(2.3), pytest.approx(2.3 / 1.1), 2.0)


def test_csv_has_mean_std_n_and_paper_columns() -> None:
    frame = pd.read_csv(io.StringIO(render_csv(golden_table())))
    for column in ("mean", "std", "n", "sem", "ci95", "best", "outcome", "p_value", "paper", "paper_outcome"):
        assert column in frame.columns
    row = frame[(frame["arm"] == "ld_lg_rb") & (frame["metric"] == "delta1")].iloc[0]
    assert row["mean"] == pytest.approx(np.mean(MEASURED[("rebalancing", "ld_lg_rb")]["delta1"]))
    assert row["paper"] == 0.869 and row["n"] == 3 and row["baseline_arm"] == "ld_lg"
    assert len(frame) == len(DESCRIPTORS) * len(METRICS)


def test_rendering_is_pure() -> None:
    metrics = metrics_frame()
    before = metrics.copy()
    table = golden_table()
    assert render_markdown(table) == render_markdown(table)
    assert render_latex(table) == render_latex(table)
    assert render_csv(table) == render_csv(table)
    summarize(metrics)
    pd.testing.assert_frame_equal(metrics, before)


# ----------------------------------------------------------------------------------------------------------------
# golden files


@pytest.mark.parametrize(
    ("suffix", "render"),
    [("md", render_markdown), ("tex", render_latex), ("csv", render_csv)],
    ids=["md", "tex", "csv"],
)
def test_golden(suffix: str, render: Callable[[ReportTable], str]) -> None:
    path = GOLDEN / f"report_table5.{suffix}"
    text = render(golden_table())
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    assert path.exists(), f"{path} is missing; create it with MLRD_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{path.name} differs from the rendering; if the change is intended, rerun with MLRD_UPDATE_GOLDEN=1 "
        "and review the diff"
    )


def test_the_footnote_names_the_files_the_runs_read() -> None:
    from types import SimpleNamespace

    from suite.tables import data_note, data_sources

    record = {"name": "train_reduced05.zip", "items": 47584, "hash": "ab" * 32, "hash_kind": "zip-entries-sha256"}
    test_record = {"name": "nyu_test.zip", "items": 654, "hash": "cd" * 32, "hash_kind": "zip-entries-sha256"}
    envs = {
        "r1": {"data_sources": json.dumps({"train": [record], "test": [test_record]}), "torch": "2.13.0"},
        "r2": {"data_sources": json.dumps({"train": [record | {"hash": "ef" * 32}], "test": [test_record]})},
        "r3": {"torch": "2.13.0"},  # generated data: nothing recorded
        "r4": {"data_sources": "{not json"},
    }
    sources = data_sources(envs)
    assert set(sources) == {"r1", "r2"}
    runs = [SimpleNamespace(run_id=r) for r in ("r1", "r2", "r3")]
    note = data_note(runs, sources)  # type: ignore[arg-type]
    assert note is not None and note.startswith("Data read by the runs: train: ")
    # two runs read different train zips: each is named with its hash prefix and how many runs read it
    assert "train_reduced05.zip (47,584 items, zip-entries-sha256 abababababab) [1 of 2 runs]" in note
    assert "train_reduced05.zip (47,584 items, zip-entries-sha256 efefefefefef) [1 of 2 runs]" in note
    assert "test: nyu_test.zip (654 items, zip-entries-sha256 cdcdcdcdcdcd)" in note and "cdcd) [" not in note
    assert data_note(runs[2:], sources) is None
    table = build_table(summarize(metrics_frame()), LAYOUT, DESCRIPTORS)
    noted = render_markdown(dataclasses.replace(table, data_note=note))
    assert note.replace("|", "\\|") in noted
    assert "train\\_reduced05.zip" in render_latex(dataclasses.replace(table, data_note=note))


def test_one_part_tables_are_not_lettered_and_a_baseline_from_elsewhere_is_named() -> None:
    measured = {("paper", "x"): {"rmse": (0.40, 0.42, 0.41)}, ("ours", "x"): {"rmse": (0.38, 0.41, 0.385)}}
    descriptors = pd.DataFrame([("paper", "x", "L"), ("ours", "x", "L")], columns=["group", "arm", "losses"])
    titles = {"paper": "The paper's setting", "ours": "Our setting"}
    # one part, compared with a group the table does not show: no "(a)", and the legend names that group
    layout = TableLayout(
        name="t", title="T", groups=("ours",), metrics=("rmse",), baseline="paper", group_titles=titles
    )
    md = render_markdown(build_table(summarize(metrics_frame(measured)), layout, descriptors))
    assert "(a)" not in md and "**Our setting**" in md
    assert 'the row of group "paper" (The paper\'s setting) with the same losses' in md
    # two parts: lettered, and the baseline part is named by its letter
    both = TableLayout(
        name="t", title="T", groups=("paper", "ours"), metrics=("rmse",), baseline="paper", group_titles=titles
    )
    md = render_markdown(build_table(summarize(metrics_frame(measured)), both, descriptors))
    assert "**(a) The paper's setting**" in md and "**(b) Our setting**" in md
    assert "the row of (a) with the same losses" in md
