"""Evaluation protocols: registry, validation, crop geometry and the resize → crop → mask → cap → clamp steps."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlrd_core.errors import ConfigError, MLRDError, ShapeError
from mlrd_core.protocols import (
    PROTOCOLS,
    Crop,
    Protocol,
    get_protocol,
    list_protocols,
    register_protocol,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def registry() -> Iterator[dict[str, Protocol]]:
    """The protocol registry, restored after the test."""
    saved = dict(PROTOCOLS)
    yield PROTOCOLS
    PROTOCOLS.clear()
    PROTOCOLS.update(saved)


def plain(**changes: object) -> Protocol:
    """A protocol without crop, range (0, ∞) and a tiny clamp, with some fields changed."""
    base = Protocol(
        name="test-plain",
        description="test",
        source="test",
        gt_size=None,
        input_size=(8, 8),
        resize_mode="bilinear",
        crop=None,
        min_depth=0.0,
        max_depth=None,
        clamp=(1e-6, None),
        aggregation="per-image",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------


def test_builtin_protocols_are_registered() -> None:
    assert {"nyu-lee-kim", "nyu-eigen", "make3d-c1", "make3d-c2", "synthetic"} <= set(list_protocols())
    assert list(list_protocols()) == sorted(PROTOCOLS)
    for name, protocol in PROTOCOLS.items():
        assert protocol.name == name
        assert protocol.description and protocol.source


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_protocols_are_frozen_and_hashable(name: str) -> None:
    protocol = get_protocol(name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        protocol.name = "x"  # type: ignore[misc]
    assert hash(protocol) == hash(get_protocol(name))


def test_nyu_lee_kim_is_the_authors_evaluation() -> None:
    p = get_protocol("nyu-lee-kim")
    assert p.crop is not None and p.gt_size == (480, 640)
    assert p.crop_bounds((480, 640)) == (20, 460, 24, 616)
    assert (p.min_depth, p.max_depth, p.gt_cap) == (0.0, None, None)
    assert p.clamp == (1e-4, None)
    assert p.aggregation == "per-image"
    assert p.resize_mode == "bicubic"
    assert p.input_size == (288, 384)


def test_nyu_eigen_constants() -> None:
    p = get_protocol("nyu-eigen")
    assert p.crop_bounds((480, 640)) == (45, 471, 41, 601)
    assert (p.min_depth, p.max_depth) == (1e-3, 10.0)
    assert p.clamp == (1e-3, 10.0)
    assert p.aggregation == "per-image"


def test_make3d_and_synthetic_constants() -> None:
    m = get_protocol("make3d-c1")
    assert m.crop is None and m.max_depth == 70.0 and m.clamp == (1e-3, 70.0)
    s = get_protocol("synthetic")
    assert s.crop is None and (s.min_depth, s.max_depth) == (0.1, 20.0)
    assert s.min_depth < 0.5 and s.max_depth is not None and s.max_depth > 10.0  # the rendered 0.5–10 m fits


def test_make3d_c2_evaluates_every_depth_and_c1_only_below_70_m() -> None:
    c1, c2 = get_protocol("make3d-c1"), get_protocol("make3d-c2")
    assert c2.crop is None and c2.max_depth is None and c2.clamp == (1e-3, None)
    target = torch.tensor([[5.0, 69.9, 75.0, 81.92, 0.0]])
    pred = torch.full_like(target, 10.0)
    assert c1.prepare(pred, target).valid.tolist() == [[[True, True, False, False, False]]]
    assert c2.prepare(pred, target).valid.tolist() == [[[True, True, True, True, False]]]


def test_nyu_lee_kim_resizes_the_input_as_the_authors_evaluation() -> None:
    """evaluation.py: ``nn.Upsample(size=[288, 384], mode='bicubic')`` on the 480x640 test image."""
    image = torch.rand(2, 3, 480, 640, generator=torch.Generator().manual_seed(0))
    authors = torch.nn.Upsample(size=(288, 384), mode="bicubic")(image)
    ours = get_protocol("nyu-lee-kim").resize_input(image, (288, 384))
    torch.testing.assert_close(ours, authors, rtol=0, atol=0)
    others = get_protocol("nyu-eigen").resize_input(image, (288, 384))  # the default: antialiased bilinear
    expected = torch.nn.functional.interpolate(image, size=(288, 384), mode="bilinear", antialias=True)
    torch.testing.assert_close(others, expected, rtol=0, atol=0)
    assert (ours - others).abs().max() > 0.05  # not the same resize
    assert get_protocol("nyu-lee-kim").resize_input(authors, (288, 384)) is authors  # right size: untouched
    with pytest.raises(ConfigError, match="input_resize_mode must be one of"):
        plain().variant("x", input_resize_mode="lanczos")


def test_get_protocol_passes_a_protocol_through() -> None:
    p = plain()
    assert get_protocol(p) is p


def test_unknown_protocol_lists_valid_names_and_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        get_protocol("nyu-eigne")
    message = str(info.value)
    assert "unknown evaluation protocol 'nyu-eigne'" in message
    assert "valid protocols: make3d-c1, make3d-c2, nyu-eigen, nyu-lee-kim, synthetic" in message
    assert "did you mean 'nyu-eigen'" in message
    assert isinstance(info.value, MLRDError) and isinstance(info.value, ValueError)


def test_unknown_protocol_without_near_name_has_no_suggestion() -> None:
    with pytest.raises(ConfigError, match="valid protocols") as info:
        get_protocol("zzzzzzzz")
    assert "did you mean" not in str(info.value)


def test_register_protocol(registry: dict[str, Protocol]) -> None:
    pooled = get_protocol("nyu-lee-kim").variant("nyu-lee-kim-pooled", aggregation="pooled")
    assert register_protocol(pooled) is pooled
    assert get_protocol("nyu-lee-kim-pooled").aggregation == "pooled"
    register_protocol(pooled)  # identical record: accepted (modules may be imported twice)
    other = pooled.variant("nyu-lee-kim-pooled", crop=None)
    with pytest.raises(ConfigError, match="already registered"):
        register_protocol(other)
    register_protocol(other, overwrite=True)
    assert get_protocol("nyu-lee-kim-pooled").crop is None
    with pytest.raises(ConfigError, match="expected a Protocol"):
        register_protocol("nyu-eigen")  # type: ignore[arg-type]


def test_variant_rejects_unknown_fields_with_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="valid fields: name, description"):
        get_protocol("nyu-eigen").variant("x", cropp=None)


# ---------------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"clamp": (0.0, None)}, "low bound must be > 0"),
        ({"clamp": (1.0, 0.5)}, "clamp low < high"),
        ({"clamp": (1.0,)}, "clamp must be (low, high)"),
        ({"min_depth": 1.0, "max_depth": 1.0}, "min_depth < max_depth"),
        ({"min_depth": -1.0}, "min_depth >= 0"),
        ({"aggregation": "mean"}, "aggregation must be one of per-image, pooled"),
        ({"resize_mode": "lanczos"}, "resize_mode must be one of"),
        ({"input_size": (0, 8)}, "input_size must be (H, W) > 0"),
        ({"name": ""}, "non-empty"),
        ({"gt_cap": 0.0}, "gt_cap > min_depth"),
        ({"gt_size": (480, 640), "crop": Crop(0, 10, 0, 10, (240, 320))}, "reference size must equal gt_size"),
    ],
)
def test_protocol_validation(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        plain(**changes)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    "args",
    [(10, 10, 0, 5, (20, 20)), (0, 21, 0, 5, (20, 20)), (0, 5, 7, 3, (20, 20)), (-1, 5, 0, 5, (20, 20))],
)
def test_crop_validation(args: tuple[int, int, int, int, tuple[int, int]]) -> None:
    with pytest.raises(ConfigError, match="0 <= top < bottom <= H"):
        Crop(*args)


# ---------------------------------------------------------------------------------------------------------------
# Crop geometry on other sizes
# ---------------------------------------------------------------------------------------------------------------


def test_crop_scales_proportionally_with_round_half_up() -> None:
    # 45/2 = 22.5 -> 23, 471/2 = 235.5 -> 236, 41/2 = 20.5 -> 21, 601/2 = 300.5 -> 301
    assert get_protocol("nyu-eigen").crop_bounds((240, 320)) == (23, 236, 21, 301)
    assert get_protocol("nyu-lee-kim").crop_bounds((240, 320)) == (10, 230, 12, 308)
    assert get_protocol("nyu-lee-kim").crop_bounds((960, 1280)) == (40, 920, 48, 1232)


def test_crop_on_another_aspect_ratio_is_an_error() -> None:
    with pytest.raises(ShapeError, match="same aspect ratio"):
        get_protocol("nyu-eigen").crop_bounds((288, 288))


def test_crop_policy_error_refuses_other_sizes() -> None:
    crop = Crop(1, 9, 1, 9, (10, 10), on_other_size="error")
    assert crop.bounds((10, 10)) == (1, 9, 1, 9)
    with pytest.raises(ShapeError, match="expected ground truth of that size, got 20x20"):
        crop.bounds((20, 20))


def test_crop_that_vanishes_when_scaled_is_an_error() -> None:
    crop = Crop(4, 5, 0, 10, (10, 10))
    with pytest.raises(ShapeError, match="keeps no pixel"):
        crop.bounds((2, 2))


def test_no_crop_keeps_everything() -> None:
    assert plain().crop_bounds((7, 9)) == (0, 7, 0, 9)


# ---------------------------------------------------------------------------------------------------------------
# prepare(): resize -> crop -> mask -> cap -> clamp
# ---------------------------------------------------------------------------------------------------------------


def test_prepare_crops_prediction_target_and_mask() -> None:
    protocol = get_protocol("nyu-lee-kim")
    g = torch.full((1, 1, 480, 640), 2.0)
    p = torch.full((1, 1, 480, 640), 2.0)
    m = torch.ones(1, 480, 640, dtype=torch.bool)
    g[..., 25, 30] = 3.0
    prepared = protocol.prepare(p, g, m)
    assert prepared.pred.shape == prepared.target.shape == prepared.valid.shape == (1, 440, 592)
    assert prepared.pred.dtype == prepared.target.dtype == torch.float64
    assert prepared.valid.dtype == torch.bool
    assert prepared.target[0, 25 - 20, 30 - 24] == 3.0


def test_validity_mask_rule_is_strict_and_finite() -> None:
    protocol = plain(min_depth=1.0, max_depth=5.0)
    g = torch.tensor([[0.0, 1.0, 1.5, 5.0, 6.0, float("nan"), float("inf"), 4.9]], dtype=torch.float64)
    m = torch.tensor([[True, True, True, True, True, True, True, False]])
    valid = protocol.prepare(torch.ones_like(g), g).valid
    assert valid.tolist() == [[[False, False, True, False, False, False, False, True]]]
    valid = protocol.prepare(torch.ones_like(g), g, m).valid
    assert valid.tolist() == [[[False, False, True, False, False, False, False, False]]]


def test_no_max_depth_keeps_far_pixels() -> None:
    g = torch.tensor([[0.0, 1e-5, 10.0, 80.0]])
    valid = get_protocol("nyu-lee-kim").variant("t", crop=None).prepare(torch.ones_like(g), g).valid
    assert valid.tolist() == [[[False, True, True, True]]]


def test_prediction_clamp() -> None:
    g = torch.full((1, 5), 5.0)
    p = torch.tensor([[-3.0, 0.0, 1e-5, 4.0, 12.0]])
    eigen = get_protocol("nyu-eigen").variant("t", crop=None, gt_size=None)
    assert eigen.prepare(p, g).pred.tolist() == [[[1e-3, 1e-3, 1e-3, 4.0, 10.0]]]
    lee_kim = get_protocol("nyu-lee-kim").variant("t", crop=None, gt_size=None)
    assert lee_kim.prepare(p, g).pred.tolist() == [[[1e-4, 1e-4, 1e-4, 4.0, 12.0]]]


def test_gt_cap_applies_to_valid_pixels_after_the_range_test() -> None:
    protocol = plain(max_depth=80.0, gt_cap=50.0)
    g = torch.tensor([[10.0, 60.0, 90.0]])
    prepared = protocol.prepare(torch.ones_like(g), g)
    assert prepared.valid.tolist() == [[[True, True, False]]]
    assert prepared.target[prepared.valid].tolist() == [10.0, 50.0]


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest", "area"])
def test_prediction_is_resized_to_the_ground_truth_with_the_protocol_mode(mode: str) -> None:
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(2, 1, 6, 8, generator=gen, dtype=torch.float64) + 1.0
    g = torch.ones(2, 12, 16, dtype=torch.float64)
    protocol = plain(resize_mode=mode)
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    expected = F.interpolate(p, size=(12, 16), mode=mode, **kwargs)[:, 0]
    torch.testing.assert_close(protocol.prepare(p, g).pred, expected.clamp(min=1e-6))


def test_same_size_prediction_is_not_resized() -> None:
    p = torch.rand(1, 4, 4, dtype=torch.float64) + 1
    torch.testing.assert_close(plain(resize_mode="bicubic").prepare(p, torch.ones(1, 4, 4)).pred, p)


def test_shapes_and_numpy_inputs_are_equivalent() -> None:
    g = np.linspace(1.0, 3.0, 20).reshape(4, 5)
    p = g * 1.1
    protocol = plain()
    a = protocol.prepare(p, g)
    b = protocol.prepare(torch.from_numpy(p)[None, None], torch.from_numpy(g)[None])
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize(
    ("pred_shape", "target_shape", "needle"),
    [
        ((2, 3, 4, 4), (2, 1, 4, 4), "expected pred of shape (B, 1, H, W), got (2, 3, 4, 4)"),
        ((1, 1, 1, 4, 4), (1, 4, 4), "expected pred of shape (B, 1, H, W), (B, H, W) or (H, W), got"),
        ((4,), (4, 4), "got (4,)"),
        ((3, 4, 4), (2, 4, 4), "expected pred batch 2, got pred (3, 4, 4) and target (2, 4, 4)"),
        ((2, 4, 4), (2, 0, 4), "expected a non-empty target"),
    ],
)
def test_bad_shapes(pred_shape: tuple[int, ...], target_shape: tuple[int, ...], needle: str) -> None:
    with pytest.raises(ShapeError) as info:
        plain().prepare(torch.ones(pred_shape), torch.ones(target_shape))
    assert needle in str(info.value)


def test_bad_dtypes_and_masks() -> None:
    protocol = plain()
    with pytest.raises(ShapeError, match=r"expected a floating-point target in metres, got dtype torch\.int32"):
        protocol.prepare(torch.ones(4, 4), torch.ones(4, 4, dtype=torch.int32))
    with pytest.raises(ShapeError, match=r"expected a bool mask, got dtype torch\.float32"):
        protocol.prepare(torch.ones(4, 4), torch.ones(4, 4), torch.ones(4, 4))
    with pytest.raises(ShapeError, match=r"expected mask of the target's shape \(1, 4, 4\)"):
        protocol.prepare(torch.ones(4, 4), torch.ones(4, 4), torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"expected pred as a torch\.Tensor or numpy array, got list"):
        protocol.prepare([[1.0]], torch.ones(1, 1))  # type: ignore[arg-type]


def test_non_finite_predictions_are_an_error_naming_the_count() -> None:
    p = torch.ones(2, 4, 4)
    p[0, 0, 0] = float("nan")
    p[1, 2, 3] = float("nan")
    p[1, 0, 1] = float("inf")
    with pytest.raises(ShapeError, match=r"expected finite predictions, got 3 non-finite value\(s\)"):
        plain().prepare(p, torch.ones(2, 4, 4))


def test_non_finite_ground_truth_is_only_invalid() -> None:
    g = torch.tensor([[float("nan"), 2.0]])
    assert plain().prepare(torch.ones(1, 2), g).valid.tolist() == [[[False, True]]]
