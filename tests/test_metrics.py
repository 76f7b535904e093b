"""Depth metrics (Table 2) against a numpy transcription of the formulas, streaming, aggregation, bad inputs.

The reference below is written from Table 2 and the protocol definitions, not from mlrd_core: it indexes the
valid pixels with boolean numpy masks and applies each formula literally.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlrd_core.errors import ShapeError
from mlrd_core.metrics import (
    HIGHER_IS_BETTER,
    METRIC_LABELS,
    METRIC_LATEX,
    METRIC_NAMES,
    DepthMetrics,
    MetricCount,
    compute_metrics,
)
from mlrd_core.protocols import Protocol, get_protocol

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------------------------------------------
# Numpy reference
# ---------------------------------------------------------------------------------------------------------------


def ref_pixel_metrics(p: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """Table 2 on 1-D arrays of valid pixels."""
    ratio = np.maximum(p / g, g / p)
    d = np.log(p) - np.log(g)
    return {
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "abs_rel": float(np.mean(np.abs(p - g) / g)),
        "log10": float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
        "rmse_log": float(np.sqrt(np.mean(d**2))),
        "rmse_si": float(np.sqrt(max(np.mean(d**2) - np.mean(d) ** 2, 0.0))),
        "sq_rel": float(np.mean((p - g) ** 2 / g)),
    }


def ref_evaluate(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    rows: tuple[int, int] | None = None,
    cols: tuple[int, int] | None = None,
    valid_range: tuple[float, float] = (0.0, math.inf),
    clamp: tuple[float, float] = (1e-6, math.inf),
    aggregation: str = "per-image",
    mask: np.ndarray | None = None,
) -> dict[str, float]:
    """pred, gt: (B, H, W) at the same resolution. Crop -> valid -> clamp -> aggregate."""
    r0, r1 = rows if rows else (0, gt.shape[1])
    c0, c1 = cols if cols else (0, gt.shape[2])
    pred = np.clip(pred[:, r0:r1, c0:c1], clamp[0], clamp[1])
    gt = gt[:, r0:r1, c0:c1]
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(gt) & (gt > valid_range[0]) & (gt < valid_range[1])
    if mask is not None:
        valid &= mask[:, r0:r1, c0:c1]
    if aggregation == "pooled":
        return ref_pixel_metrics(pred[valid], gt[valid])
    per_image = [ref_pixel_metrics(pred[i][valid[i]], gt[i][valid[i]]) for i in range(len(gt)) if valid[i].any()]
    return {k: float(np.mean([m[k] for m in per_image])) for k in per_image[0]}


def plain(aggregation: str = "per-image", **changes: object) -> Protocol:
    """No crop, g > 0, p >= 1e-6: the numpy reference's defaults."""
    return (
        get_protocol("synthetic")
        .variant("test-plain", min_depth=0.0, max_depth=None, clamp=(1e-6, None), aggregation=aggregation)
        .variant("test-plain", **changes)
    )


def assert_metrics_close(
    actual: dict[str, float], expected: dict[str, float], rel: float = 1e-9, abs: float = 1e-12
) -> None:
    assert list(actual) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert actual[name] == pytest.approx(expected[name], rel=rel, abs=abs), name


def random_batch(seed: int, b: int = 3, h: int = 12, w: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth 0.5..10 m with ~10% holes, predictions ~ g·exp(N(0, 0.3)) with some outliers."""
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.5, 10.0, size=(b, h, w))
    gt[rng.random(gt.shape) < 0.1] = 0.0
    pred = rng.uniform(0.5, 10.0, size=(b, h, w)) * np.exp(rng.normal(0.0, 0.3, size=(b, h, w)))
    pred = np.where(rng.random(gt.shape) < 0.7, gt * np.exp(rng.normal(0.0, 0.2, size=gt.shape)), pred)
    return pred, gt


# ---------------------------------------------------------------------------------------------------------------
# Names and directions
# ---------------------------------------------------------------------------------------------------------------


def test_metric_names_follow_table_3() -> None:
    assert METRIC_NAMES == (
        "delta1",
        "delta2",
        "delta3",
        "rmse",
        "abs_rel",
        "log10",
        "rmse_log",
        "rmse_si",
        "sq_rel",
    )
    assert set(METRIC_LABELS) == set(METRIC_LATEX) == set(HIGHER_IS_BETTER) == set(METRIC_NAMES)
    assert METRIC_LABELS["delta1"] == "δ1" and METRIC_LABELS["rmse"] == "RMSE lin"
    assert METRIC_LABELS["abs_rel"] == "ARD" and METRIC_LABELS["sq_rel"] == "SRD"


def test_higher_is_better_directions() -> None:
    assert {k for k, v in HIGHER_IS_BETTER.items() if v} == {"delta1", "delta2", "delta3"}
    assert DepthMetrics.higher_is_better is HIGHER_IS_BETTER


def test_directions_agree_with_a_better_prediction() -> None:
    pred, gt = random_batch(1)
    worse = compute_metrics(pred * 1.3, gt, plain())
    better = compute_metrics(np.where(gt > 0, gt * 1.01, pred), gt, plain())
    for name in METRIC_NAMES:
        if HIGHER_IS_BETTER[name]:
            assert better[name] > worse[name], name
        else:
            assert better[name] < worse[name], name


# ---------------------------------------------------------------------------------------------------------------
# Against the reference
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("aggregation", ["per-image", "pooled"])
def test_matches_reference_without_crop(aggregation: str) -> None:
    pred, gt = random_batch(0)
    expected = ref_evaluate(pred, gt, aggregation=aggregation)
    assert_metrics_close(compute_metrics(pred, gt, plain(aggregation)), expected)


@pytest.mark.parametrize("aggregation", ["per-image", "pooled"])
def test_matches_reference_with_external_mask(aggregation: str) -> None:
    pred, gt = random_batch(2)
    mask = np.random.default_rng(3).random(gt.shape) < 0.6
    expected = ref_evaluate(pred, gt, aggregation=aggregation, mask=mask)
    assert_metrics_close(compute_metrics(pred, gt, plain(aggregation), mask=mask), expected)


def nyu_batch() -> tuple[np.ndarray, np.ndarray]:
    """Two 480×640 maps with holes, far pixels beyond 10 m and predictions outside [1e-3, 10]."""
    rng = np.random.default_rng(7)
    gt = rng.uniform(0.3, 11.0, size=(2, 480, 640))
    gt[rng.random(gt.shape) < 0.05] = 0.0
    gt[0, 100:110, 100:110] = np.nan
    pred = gt * np.exp(rng.normal(0.0, 0.15, size=gt.shape)) + rng.normal(0.0, 0.05, size=gt.shape)
    pred[0, 100:110, 100:110] = 2.0  # where the ground truth is NaN
    pred[0, 200:203, 300:310] = -0.5
    pred[1, :5, :] = 1e-5
    return pred, gt


def test_nyu_lee_kim_matches_reference() -> None:
    pred, gt = nyu_batch()
    expected = ref_evaluate(pred, gt, rows=(20, 460), cols=(24, 616), clamp=(1e-4, math.inf))
    assert_metrics_close(compute_metrics(pred, gt, "nyu-lee-kim"), expected)


def test_nyu_eigen_matches_reference() -> None:
    pred, gt = nyu_batch()
    expected = ref_evaluate(pred, gt, rows=(45, 471), cols=(41, 601), valid_range=(1e-3, 10.0), clamp=(1e-3, 10.0))
    assert_metrics_close(compute_metrics(pred, gt, "nyu-eigen"), expected)


def test_make3d_c1_matches_reference() -> None:
    rng = np.random.default_rng(11)
    gt = rng.uniform(1.0, 82.0, size=(2, 55, 30))  # Make3D's far/sky pixels are stored around 81.9 m
    pred = gt * np.exp(rng.normal(0.0, 0.3, size=gt.shape))
    expected = ref_evaluate(pred, gt, valid_range=(0.0, 70.0), clamp=(1e-3, 70.0))
    assert_metrics_close(compute_metrics(pred, gt, "make3d-c1"), expected)


def test_synthetic_matches_reference() -> None:
    pred, gt = random_batch(5)
    expected = ref_evaluate(pred, gt, valid_range=(0.1, 20.0), clamp=(0.1, 20.0))
    assert_metrics_close(compute_metrics(pred, gt, "synthetic"), expected)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    b=st.integers(1, 4),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    aggregation=st.sampled_from(["per-image", "pooled"]),
)
def test_matches_reference_property(seed: int, b: int, h: int, w: int, aggregation: str) -> None:
    pred, gt = random_batch(seed, b, h, w)
    gt[0, 0, 0] = 1.0  # at least one valid pixel
    expected = ref_evaluate(pred, gt, aggregation=aggregation)
    # abs: the reference's literal mean d² − (mean d)² loses ~1e-15 to cancellation, ~3e-8 after the sqrt
    assert_metrics_close(compute_metrics(pred, gt, plain(aggregation)), expected, rel=1e-7, abs=2e-7)


def test_float32_inputs_are_accumulated_in_float64() -> None:
    pred, gt = random_batch(9, b=2, h=64, w=64)
    pred32, gt32 = pred.astype(np.float32), gt.astype(np.float32)
    expected = ref_evaluate(pred32.astype(np.float64), gt32.astype(np.float64))
    assert_metrics_close(compute_metrics(torch.from_numpy(pred32), torch.from_numpy(gt32), plain()), expected)


def test_low_resolution_prediction_is_resized_before_the_metrics() -> None:
    rng = np.random.default_rng(4)
    gt = rng.uniform(1.0, 5.0, size=(2, 480, 640))
    low = rng.uniform(1.0, 5.0, size=(2, 1, 288, 384))
    up = torch.nn.functional.interpolate(torch.from_numpy(low), size=(480, 640), mode="bicubic", align_corners=False)
    expected = ref_evaluate(up[:, 0].numpy(), gt, rows=(20, 460), cols=(24, 616), clamp=(1e-4, math.inf))
    assert_metrics_close(compute_metrics(low, gt, "nyu-lee-kim"), expected)


# ---------------------------------------------------------------------------------------------------------------
# Invariants
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["nyu-lee-kim", "nyu-eigen", "make3d-c1", "synthetic"])
def test_perfect_prediction(protocol: str) -> None:
    gt = torch.linspace(0.5, 9.5, 480 * 640, dtype=torch.float64).reshape(1, 1, 480, 640)
    result = compute_metrics(gt.clone(), gt, protocol)
    for name in METRIC_NAMES:
        assert result[name] == (1.0 if HIGHER_IS_BETTER[name] else 0.0), name


def test_rmse_si_is_scale_invariant() -> None:
    pred, gt = random_batch(6)
    base = compute_metrics(pred, gt, plain())
    for c in (0.25, 2.0, 7.3):
        scaled = compute_metrics(pred * c, gt, plain())
        assert scaled["rmse_si"] == pytest.approx(base["rmse_si"], rel=1e-9)
        assert scaled["rmse_log"] != pytest.approx(base["rmse_log"], rel=1e-3)


def test_per_image_rmse_si_removes_each_image_scale_pooled_one_scale() -> None:
    pred, gt = random_batch(8)
    scales = np.array([0.5, 1.0, 3.0])[:, None, None]
    assert compute_metrics(pred * scales, gt, plain())["rmse_si"] == pytest.approx(
        compute_metrics(pred, gt, plain())["rmse_si"], rel=1e-9
    )
    assert (
        compute_metrics(pred * scales, gt, plain("pooled"))["rmse_si"]
        > 1.5 * (compute_metrics(pred, gt, plain("pooled"))["rmse_si"])
    )


def test_per_image_and_pooled_differ_on_a_designed_example() -> None:
    # Image 0: one valid pixel, p = 2, g = 1. Image 1: 99 valid pixels, all exact.
    gt = np.ones((2, 10, 10))
    gt[0] = 0.0
    gt[0, 0, 0] = 1.0
    gt[1, 0, 0] = 0.0
    pred = np.ones((2, 10, 10))
    pred[0, 0, 0] = 2.0
    per_image = compute_metrics(pred, gt, plain())
    pooled = compute_metrics(pred, gt, plain("pooled"))
    assert per_image["rmse"] == pytest.approx(0.5)  # (1 + 0) / 2: mean of per-image RMSEs
    assert pooled["rmse"] == pytest.approx(math.sqrt(1 / 100))  # one error among 100 pixels
    assert per_image["abs_rel"] == pytest.approx(0.5) and pooled["abs_rel"] == pytest.approx(0.01)
    assert per_image["delta1"] == pytest.approx(0.5) and pooled["delta1"] == pytest.approx(0.99)
    assert per_image.count == pooled.count == MetricCount(images=2, pixels=100, skipped=0)


def test_per_image_equals_pooled_for_identical_images() -> None:
    pred, gt = random_batch(12, b=1)
    pred, gt = np.repeat(pred, 4, axis=0), np.repeat(gt, 4, axis=0)
    assert_metrics_close(compute_metrics(pred, gt, plain("pooled")), compute_metrics(pred, gt, plain()))


def test_mean_metrics_agree_when_valid_counts_are_equal() -> None:
    # Equal valid counts: every mean-type metric (δ, ARD, log10, SRD) is the same under both aggregations; the
    # root-type ones (RMSE, RMSE log, RMSE si) are not, by Jensen's inequality.
    rng = np.random.default_rng(13)
    gt = rng.uniform(1.0, 5.0, size=(3, 8, 8))
    pred = gt * np.exp(rng.normal(0.0, 1.0, size=(3, 1, 1)) * rng.normal(0.0, 0.3, size=gt.shape))
    per_image = compute_metrics(pred, gt, plain())
    pooled = compute_metrics(pred, gt, plain("pooled"))
    for name in ("delta1", "delta2", "delta3", "abs_rel", "log10", "sq_rel"):
        assert per_image[name] == pytest.approx(pooled[name], rel=1e-12), name
    for name in ("rmse", "rmse_log"):
        assert per_image[name] < pooled[name], name


# ---------------------------------------------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("aggregation", ["per-image", "pooled"])
def test_streaming_equals_one_shot(aggregation: str) -> None:
    pred, gt = random_batch(21, b=7)
    gt[3] = 0.0  # a skipped image inside a batch
    metrics = DepthMetrics(plain(aggregation))
    for lo, hi in ((0, 1), (1, 4), (4, 6), (6, 7)):
        metrics.update(pred[lo:hi], gt[lo:hi])
    streamed = metrics.compute()
    one_shot = compute_metrics(pred, gt, plain(aggregation))
    assert_metrics_close(streamed, one_shot, rel=1e-12)
    assert streamed.count == one_shot.count
    assert streamed.count.images == 6 and streamed.count.skipped == 1
    assert streamed.count.pixels == int((gt > 0).sum())
    assert_metrics_close(streamed, ref_evaluate(pred, gt, aggregation=aggregation))


def test_streaming_pooled_rmse_si_is_stable_for_large_offsets() -> None:
    # d has mean ln(1000) ≈ 6.9 and spread 1e-4: the naive mean d² − (mean d)² would lose every digit.
    rng = np.random.default_rng(22)
    gt = rng.uniform(1.0, 2.0, size=(6, 32, 32))
    pred = gt * 1000.0 * np.exp(rng.normal(0.0, 1e-4, size=gt.shape))
    metrics = DepthMetrics(plain("pooled"))
    for i in range(6):
        metrics.update(pred[i], gt[i])
    d = (np.log(pred) - np.log(gt)).ravel()
    assert metrics.compute()["rmse_si"] == pytest.approx(np.std(d), rel=1e-6)


def test_compute_does_not_reset_and_reset_does() -> None:
    pred, gt = random_batch(23)
    metrics = DepthMetrics(plain())
    metrics.update(pred, gt)
    assert metrics.compute() == metrics.compute()
    metrics.reset()
    assert metrics.count == MetricCount(0, 0, 0)
    metrics.update(pred[:1], gt[:1])
    assert_metrics_close(metrics.compute(), compute_metrics(pred[:1], gt[:1], plain()), rel=1e-12)


def test_skipped_images_do_not_change_the_metrics() -> None:
    pred, gt = random_batch(24)
    with_empty = np.concatenate([gt, np.zeros_like(gt[:1])])
    pred2 = np.concatenate([pred, pred[:1]])
    result = compute_metrics(pred2, with_empty, plain())
    assert_metrics_close(result, compute_metrics(pred, gt, plain()), rel=1e-12)
    assert result.count.skipped == 1


def test_no_valid_pixel_is_an_error() -> None:
    with pytest.raises(ShapeError, match="no valid pixel to evaluate under protocol 'nyu-eigen'"):
        compute_metrics(torch.ones(2, 480, 640), torch.full((2, 480, 640), 12.0), "nyu-eigen")
    with pytest.raises(ShapeError, match="expected at least one image"):
        DepthMetrics("synthetic").compute()


# ---------------------------------------------------------------------------------------------------------------
# Result contract
# ---------------------------------------------------------------------------------------------------------------


def test_result_is_a_plain_dict_of_nine_floats_with_the_protocol_attribute() -> None:
    pred, gt = random_batch(25)
    result = compute_metrics(pred, gt, "synthetic")
    assert isinstance(result, dict)
    assert tuple(result) == METRIC_NAMES
    assert all(type(v) is float for v in result.values())
    assert result.protocol == "synthetic"
    assert json.loads(json.dumps(result)) == dict(result)
    assert DepthMetrics("synthetic").protocol_name == "synthetic"
    assert DepthMetrics().protocol_name == "nyu-lee-kim"


def test_input_shapes_are_equivalent() -> None:
    pred, gt = random_batch(26, b=1)
    reference = compute_metrics(pred, gt, plain())
    t_pred, t_gt = torch.from_numpy(pred), torch.from_numpy(gt)
    for p, g in ((t_pred[0], t_gt[0]), (t_pred[:, None], t_gt[:, None]), (t_pred[:, None], t_gt)):
        assert compute_metrics(p, g, plain()) == reference


def test_prediction_with_grad_is_accepted() -> None:
    pred, gt = random_batch(27)
    p = torch.from_numpy(pred).requires_grad_(True)
    assert compute_metrics(p, torch.from_numpy(gt), plain())["rmse"] > 0


def test_bad_inputs_raise_shape_errors() -> None:
    with pytest.raises(ShapeError, match=r"expected pred of shape \(B, 1, H, W\), got \(2, 3, 8, 8\)"):
        compute_metrics(torch.ones(2, 3, 8, 8), torch.ones(2, 1, 8, 8))
    with pytest.raises(ShapeError, match="expected pred batch 2"):
        compute_metrics(torch.ones(3, 8, 8), torch.ones(2, 8, 8), "synthetic")
    nan = torch.ones(2, 8, 8)
    nan[0, :2, :2] = float("nan")
    with pytest.raises(ShapeError, match=r"got 4 non-finite value\(s\)"):
        compute_metrics(nan, torch.ones(2, 8, 8), "synthetic")


# ---------------------------------------------------------------------------------------------------------------
# How much the protocol changes the numbers (quoted in docs/evaluation.md)
# ---------------------------------------------------------------------------------------------------------------


def protocol_example() -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, analytic (RNG-free) pair of 480×640 maps.

    Image 0, a near room: g = 1 + 3·r/479 + c/639 m; p = 1.05·g inside the Eigen crop, 1.5·g on the 41–45 px
    border outside it (network predictions are worst at the frame border).
    Image 1, a far room: g = 6 + 6·r/479 m (beyond 10 m in the lower 1/6 of the rows), with the right half
    missing (g = 0); p = 0.9·g.
    """
    r = torch.arange(480, dtype=torch.float64)[:, None]
    c = torch.arange(640, dtype=torch.float64)[None, :]
    g0 = 1.0 + 3.0 * r / 479 + c / 639
    inside = (r >= 45) & (r < 471) & (c >= 41) & (c < 601)
    p0 = torch.where(inside, 1.05 * g0, 1.5 * g0)
    g1 = (6.0 + 6.0 * r / 479).expand(480, 640).clone()
    g1[:, 320:] = 0.0
    p1 = 0.9 * g1
    return torch.stack([p0, p1])[:, None], torch.stack([g0, g1])[:, None]


def example_protocols() -> dict[str, Protocol]:
    """The authors' protocol, the Eigen protocol, and the authors' protocol without crop and/or pooled."""
    lee_kim = get_protocol("nyu-lee-kim")
    return {
        "nyu-lee-kim": lee_kim,
        "nyu-lee-kim-pooled": lee_kim.variant("nyu-lee-kim-pooled", aggregation="pooled"),
        "nyu-eigen": get_protocol("nyu-eigen"),
        "nyu-nocrop": lee_kim.variant("nyu-nocrop", crop=None),
        "nyu-nocrop-pooled": lee_kim.variant("nyu-nocrop-pooled", crop=None, aggregation="pooled"),
    }


#: Results of protocol_example() in METRIC_NAMES order (6 decimals) and valid pixel counts; docs/evaluation.md
#: quotes this table.
EXAMPLE_NUMBERS: dict[str, tuple[tuple[float, ...], int]] = {
    "nyu-lee-kim": ((0.946100, 1.0, 1.0, 0.676673, 0.099255, 0.041823, 0.123119, 0.055308, 0.079955), 390720),
    "nyu-lee-kim-pooled": ((0.928133, 1.0, 1.0, 0.638081, 0.099007, 0.040511, 0.130120, 0.128064, 0.076606), 390720),
    "nyu-eigen": ((1.000000, 1.0, 1.0, 0.497415, 0.075000, 0.033473, 0.077075, 0.000000, 0.045292), 315285),
    "nyu-nocrop": ((0.888281, 1.0, 1.0, 0.800619, 0.125273, 0.050779, 0.150892, 0.074286, 0.120717), 460800),
    "nyu-nocrop-pooled": ((0.851042, 1.0, 1.0, 0.769768, 0.133698, 0.052453, 0.171528, 0.163914, 0.130956), 460800),
}


def test_crop_and_aggregation_change_the_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    pred, gt = protocol_example()
    results = {name: compute_metrics(pred, gt, p) for name, p in example_protocols().items()}
    with capsys.disabled():  # the table of docs/evaluation.md, visible in the test log
        print("\nprotocol            " + " ".join(f"{m:>9}" for m in METRIC_NAMES) + "    pixels")
        for name, result in results.items():
            row = " ".join(f"{result[m]:9.6f}" for m in METRIC_NAMES)
            print(f"{name:<19} {row} {result.count.pixels:9d}")
    for name, (values, pixels) in EXAMPLE_NUMBERS.items():
        assert results[name].count.pixels == pixels, name
        for metric, value in zip(METRIC_NAMES, values, strict=True):
            assert results[name][metric] == pytest.approx(value, abs=6e-7), (name, metric)
    # The documented effects on this example: dropping the Lee-Kim crop raises RMSE by 18%; the Eigen protocol
    # (its crop and 10 m range) lowers it by 26%; pooling instead of per-image lowers it by 6% and multiplies
    # RMSE si by 2.3 (one global scale for the set instead of one per image).
    rmse = {name: r["rmse"] for name, r in results.items()}
    assert rmse["nyu-nocrop"] / rmse["nyu-lee-kim"] == pytest.approx(1.1832, abs=1e-4)
    assert rmse["nyu-eigen"] / rmse["nyu-lee-kim"] == pytest.approx(0.7351, abs=1e-4)
    assert rmse["nyu-lee-kim-pooled"] / rmse["nyu-lee-kim"] == pytest.approx(0.9430, abs=1e-4)
    si = results["nyu-lee-kim-pooled"]["rmse_si"] / results["nyu-lee-kim"]["rmse_si"]
    assert si == pytest.approx(2.3155, abs=1e-4)


def test_trainer_call_shapes_with_channel_mask_and_low_resolution_prediction() -> None:
    # The trainer's call: float32 (B, 1, h, w) prediction, (B, 1, H, W) depth and bool mask from the dataset.
    rng = np.random.default_rng(28)
    gt = rng.uniform(0.5, 10.0, size=(2, 1, 24, 32))
    gt[:, :, :3] = 0.0
    low = rng.uniform(0.5, 10.0, size=(2, 1, 12, 16)).astype(np.float32)
    up = torch.nn.functional.interpolate(torch.from_numpy(low).double(), size=(24, 32), mode="bilinear")
    expected = ref_evaluate(up[:, 0].numpy(), gt[:, 0], valid_range=(0.1, 20.0), clamp=(0.1, 20.0))
    metrics = DepthMetrics("synthetic")
    metrics.update(torch.from_numpy(low), torch.from_numpy(gt).float(), torch.from_numpy(gt > 0))
    assert_metrics_close(metrics.compute(), expected, rel=1e-6)
