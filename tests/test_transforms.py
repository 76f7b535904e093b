"""Resizing, augmentation and the seeded dataset wrapper (mlrd_core.data.transforms)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from mlrd_core.data.transforms import (
    AugmentConfig,
    AugmentParams,
    TransformedDataset,
    apply_augment,
    augment_sample,
    item_generator,
    resize_sample,
    sample_augment_params,
)
from mlrd_core.errors import DataError


def _pattern_sample(h: int = 40, w: int = 56, index: int = 0) -> dict[str, Any]:
    """A smooth ramp (image grey = (depth - 1) / 5) with a bright, near square off-centre and an invalid strip."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    depth = 1.0 + 3.0 * xx / (w - 1) + 1.5 * yy / (h - 1)
    depth[8:18, 30:44] = 1.0  # the near square
    grey = (depth - 1.0) / 5.0
    grey[8:18, 30:44] = 0.95
    image = torch.stack([grey, 0.5 * grey, 0.25 * grey + 0.1])
    mask = torch.ones(1, h, w, dtype=torch.bool)
    mask[:, :, :3] = False  # unknown depth in the 3 leftmost columns
    depth = depth[None] * mask
    return {"image": image, "depth": depth, "mask": mask, "index": index, "name": "pattern"}


class _Pattern(Dataset):
    """Eight pattern samples, each with a different index."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict[str, Any]:
        return _pattern_sample(index=i)


def _only(**changes: Any) -> AugmentParams:
    return dataclasses.replace(AugmentParams(), **changes)


# ---- resize ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(20, 28), (33, 47), (80, 112), (40, 56)])
def test_resize_shapes_dtypes_and_mask(size: tuple[int, int]) -> None:
    s = _pattern_sample()
    out = resize_sample(s, size)
    assert out["image"].shape == (3, *size) and out["image"].dtype == torch.float32
    assert out["depth"].shape == out["mask"].shape == (1, *size)
    assert out["mask"].dtype == torch.bool
    assert torch.equal(out["depth"] > 0, out["mask"])  # nearest keeps depth and mask consistent
    assert out["index"] == 0 and out["name"] == "pattern"
    assert out["image"].min() >= 0.0 and out["image"].max() <= 1.0
    # nearest never invents depth values
    assert set(out["depth"].unique().tolist()) <= set(s["depth"].unique().tolist())


def test_resize_half_is_pixel_centre_aligned() -> None:
    s = _pattern_sample(40, 56)
    out = resize_sample(s, (20, 28))
    # On the ramp, antialiased bilinear at exactly 1/2 (symmetric taps about the output pixel's centre) equals the
    # mean of the 2x2 block under it; a half-pixel shift would break this. Away from the square and the borders.
    pooled = s["image"].reshape(3, 20, 2, 28, 2).mean(dim=(2, 4))
    assert torch.allclose(out["image"][:, 12:-1, 1:12], pooled[:, 12:-1, 1:12], atol=1e-5)
    # the same size is a passthrough
    assert resize_sample(s, (40, 56))["image"] is s["image"]


def test_resize_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="size"):
        resize_sample(_pattern_sample(), (0, 5))
    bad = _pattern_sample()
    bad["depth"] = bad["depth"][0]
    with pytest.raises(DataError, match=r"expected depth and mask \(1, 40, 56\)"):
        resize_sample(bad, (10, 10))


# ---- individual augmentations ----------------------------------------------------------------------------------


def test_flip_flips_image_depth_and_mask() -> None:
    s = _pattern_sample()
    out = apply_augment(s, _only(flip=True))
    for key in ("image", "depth", "mask"):
        assert torch.equal(out[key], s[key].flip(-1))
    assert out["mask"][:, :, -3:].logical_not().all()  # the invalid strip moved to the right
    assert s["mask"][:, :, :3].logical_not().all()  # the input is untouched


def test_rotation_keeps_image_and_depth_aligned() -> None:
    s = _pattern_sample()
    out = apply_augment(s, _only(angle_deg=5.0))
    img, depth, mask = out["image"], out["depth"][0], out["mask"][0]
    assert not torch.equal(depth, s["depth"][0])
    assert torch.equal(depth > 0, mask)
    # corners come from outside the frame: invalid depth, black image
    assert not mask[0, -1] and not mask[-1, 0]
    assert img[:, 0, -1].abs().max() < 1e-6
    # the ramp: grey == (depth - 1) / 5 away from the square and from the invalid border, where bilinear blends in
    # black fill (bilinear vs nearest differ by < 1/2 pixel of slope)
    grey = img[0]
    square = (depth < 1.05) & mask
    bad = torch.nn.functional.pad((square | ~mask).float()[None, None], (2, 2, 2, 2), value=1.0)  # frame = invalid
    interior = torch.nn.functional.max_pool2d(bad, 5, 1)[0, 0] == 0
    assert interior.sum() > 1000
    assert (grey[interior] - (depth[interior] - 1.0) / 5.0).abs().max() < 0.02
    # the near square: its centroid is at the same place in the image (bright) and in the depth (near)
    ys, xs = torch.nonzero(square, as_tuple=True)
    yi, xi = torch.nonzero(grey > 0.9, as_tuple=True)
    assert abs(ys.float().mean() - yi.float().mean()) < 0.5 and abs(xs.float().mean() - xi.float().mean()) < 0.5
    # and it moved: a 5 degree turn about the centre shifts the off-centre square by about a pixel
    y0, x0 = torch.nonzero(s["depth"][0] == 1.0, as_tuple=True)
    shift = torch.hypot(ys.float().mean() - y0.float().mean(), xs.float().mean() - x0.float().mean())
    assert shift > 0.5


def test_rotation_masks_out_of_frame_and_keeps_invalid_invalid() -> None:
    s = _pattern_sample()
    s["depth"] = torch.where(s["mask"], torch.full_like(s["depth"], 2.0), 0.0)
    out = apply_augment(s, _only(angle_deg=-4.0))
    depth, mask = out["depth"], out["mask"]
    assert set(depth[mask].unique().tolist()) == {2.0}  # nearest: no blended values
    assert (depth[~mask] == 0).all()
    assert 0.8 < mask.float().mean() < s["mask"].float().mean()


def test_channel_swap_permutes_channels() -> None:
    s = _pattern_sample()
    out = apply_augment(s, _only(permutation=(2, 0, 1)))
    assert torch.equal(out["image"], s["image"][[2, 0, 1]])
    assert torch.equal(out["depth"], s["depth"]) and torch.equal(out["mask"], s["mask"])


def test_colour_jitter_and_lighting_change_only_the_image() -> None:
    s = _pattern_sample()
    out = apply_augment(s, _only(jitter_factors=(1.3, 0.7, 1.2), lighting_alpha=(0.1, -0.1, 0.05)))
    assert not torch.allclose(out["image"], s["image"])
    assert out["image"].min() >= 0.0 and out["image"].max() <= 1.0
    assert torch.equal(out["depth"], s["depth"]) and torch.equal(out["mask"], s["mask"])
    # brightness alone is a scaling (clamped to [0, 1])
    bright = apply_augment(s, _only(jitter_factors=(0.6, 1.0, 1.0)))["image"]
    assert torch.allclose(bright, s["image"] * 0.6, atol=1e-6)


def test_identity_params_change_nothing() -> None:
    s = _pattern_sample()
    out = apply_augment(s, AugmentParams())
    for key in ("image", "depth", "mask"):
        assert torch.equal(out[key], s[key])


# ---- parameter sampling -------------------------------------------------------------------------------------------


def test_sampled_parameters_follow_the_policy() -> None:
    rng = np.random.default_rng(0)
    draws = [sample_augment_params(rng) for _ in range(4000)]
    flips = np.mean([p.flip for p in draws])
    swaps = [p.permutation for p in draws if p.permutation != (0, 1, 2)]
    angles = np.array([p.angle_deg for p in draws])
    factors = np.array([p.jitter_factors for p in draws])
    assert flips == pytest.approx(0.5, abs=0.03)
    assert len(swaps) / len(draws) == pytest.approx(0.25, abs=0.03)
    assert len(set(swaps)) == 5  # every non-identity permutation occurs
    assert -5.0 <= angles.min() < -4.9 and 4.9 < angles.max() <= 5.0
    assert 0.6 <= factors.min() < 0.61 and 1.39 < factors.max() <= 1.4
    assert {p.jitter_order for p in draws} == {
        (0, 1, 2),
        (0, 2, 1),
        (1, 0, 2),
        (1, 2, 0),
        (2, 0, 1),
        (2, 1, 0),
    }
    assert np.std([p.lighting_alpha[0] for p in draws]) == pytest.approx(0.1, rel=0.1)


def test_disabled_config_draws_identity() -> None:
    off = AugmentConfig(
        flip_p=0, max_rotation_deg=0, channel_swap_p=0, lighting_std=0, brightness=0, contrast=0, saturation=0
    )
    p = sample_augment_params(np.random.default_rng(3), off)
    assert (p.flip, p.angle_deg, p.permutation, p.lighting_alpha, p.jitter_factors) == (
        False,
        0.0,
        (0, 1, 2),
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 1.0),
    )
    with pytest.raises(DataError, match="flip_p must be a probability"):
        AugmentConfig(flip_p=1.5)


def test_augment_sample_is_deterministic_in_the_generator() -> None:
    s = _pattern_sample()
    a = augment_sample(s, item_generator(1, 2, 3))
    b = augment_sample(s, item_generator(1, 2, 3))
    for key in ("image", "depth", "mask"):
        assert torch.equal(a[key], b[key])
    with pytest.raises(DataError, match=">= 0"):
        item_generator(-1, 0, 0)


# ---- TransformedDataset -------------------------------------------------------------------------------------------


def _digests(ds: TransformedDataset) -> list[bytes]:
    return [ds[i]["image"].numpy().tobytes() + ds[i]["depth"].numpy().tobytes() for i in range(len(ds))]


def test_dataset_deterministic_per_seed_epoch_index() -> None:
    a = TransformedDataset(_Pattern(), size=(30, 42), augment=True, seed=7)
    b = TransformedDataset(_Pattern(), size=(30, 42), augment=True, seed=7)
    assert _digests(a) == _digests(b)
    assert len(set(_digests(a))) == 8  # items get different draws
    # access order does not matter
    assert [a[i]["image"].sum().item() for i in reversed(range(8))][::-1] == [
        a[i]["image"].sum().item() for i in range(8)
    ]
    # a new epoch gives new draws for every item, and going back reproduces the old ones
    e0 = _digests(a)
    a.set_epoch(1)
    assert a.epoch == 1
    e1 = _digests(a)
    assert all(x != y for x, y in zip(e0, e1, strict=True))
    a.set_epoch(0)
    assert _digests(a) == e0
    # another seed differs
    c = TransformedDataset(_Pattern(), size=(30, 42), augment=True, seed=8)
    assert all(x != y for x, y in zip(e0, _digests(c), strict=True))


def test_dataset_without_augment_only_resizes() -> None:
    ds = TransformedDataset(_Pattern(), size=(20, 28))
    item = ds[3]
    ref = resize_sample(_pattern_sample(index=3), (20, 28))
    assert torch.equal(item["image"], ref["image"]) and torch.equal(item["depth"], ref["depth"])
    assert item["index"] == 3 and item["name"] == "pattern"
    with pytest.raises(IndexError):
        ds[8]
    with pytest.raises(DataError, match="epoch"):
        ds.set_epoch(-1)


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_worker_count_does_not_change_items(workers: int) -> None:
    ds = TransformedDataset(_Pattern(), size=(24, 32), augment=True, seed=3)
    ds.set_epoch(2)
    reference = torch.stack([ds[i]["image"] for i in range(8)])
    loader = DataLoader(ds, batch_size=3, num_workers=workers, persistent_workers=workers > 0)
    got = torch.cat([batch["image"] for batch in loader])
    assert torch.equal(got, reference)
    if workers:
        # set_epoch reaches persistent workers through shared memory
        ds.set_epoch(5)
        again = torch.cat([batch["image"] for batch in loader])
        assert torch.equal(again, torch.stack([ds[i]["image"] for i in range(8)]))
        assert not torch.equal(again, reference)
