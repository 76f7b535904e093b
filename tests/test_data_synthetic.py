"""The procedural synthetic RGB-D dataset: item contract, determinism, splits, geometry, learnability."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from mlrd_core.data import make_dataset
from mlrd_core.data.synthetic import (
    MAX_DEPTH,
    MIN_DEPTH,
    NYU_INTRINSICS,
    SyntheticDepth,
    _Material,
    _render,
    _Room,
    _Scene,
    _Sphere,
    camera_matrix,
    render_scene,
)
from mlrd_core.data.transforms import TransformedDataset
from mlrd_core.errors import DataError


def _digest(item: dict) -> str:
    return hashlib.sha256(item["image"].numpy().tobytes() + item["depth"].numpy().tobytes()).hexdigest()


def test_item_contract() -> None:
    ds = SyntheticDepth("train", length=4, height=24, width=32)
    assert len(ds) == 4
    item = ds[2]
    assert set(item) == {"image", "depth", "mask", "index"}
    assert item["image"].shape == (3, 24, 32) and item["image"].dtype == torch.float32
    assert item["depth"].shape == (1, 24, 32) and item["depth"].dtype == torch.float32
    assert item["mask"].shape == (1, 24, 32) and item["mask"].dtype == torch.bool
    assert item["mask"].all()
    assert item["index"] == 2 and isinstance(item["index"], int)
    assert item["image"].min() >= 0.0 and item["image"].max() <= 1.0
    assert ds[-1]["index"] == 3
    with pytest.raises(IndexError):
        ds[4]


def test_default_lengths_and_size() -> None:
    assert [len(SyntheticDepth(s)) for s in ("train", "val", "test")] == [1000, 200, 200]
    assert SyntheticDepth()[0]["image"].shape == (3, 96, 128)


def test_deterministic_per_seed_and_index_in_any_access_order() -> None:
    a = SyntheticDepth("train", length=8, height=20, width=28, scene_seed=5)
    b = SyntheticDepth("train", length=8, height=20, width=28, scene_seed=5)
    forward = [_digest(a[i]) for i in range(8)]
    backward = [_digest(b[i]) for i in reversed(range(8))][::-1]
    assert forward == backward
    assert len(set(forward)) == 8  # items differ from each other


def test_different_scene_seeds_differ() -> None:
    a = SyntheticDepth("train", length=4, height=20, width=28, scene_seed=0)
    b = SyntheticDepth("train", length=4, height=20, width=28, scene_seed=1)
    for i in range(4):
        assert not torch.equal(a[i]["depth"], b[i]["depth"])


def test_splits_are_disjoint_streams() -> None:
    digests = {
        split: {_digest(SyntheticDepth(split, length=16, height=12, width=16)[i]) for i in range(16)}
        for split in ("train", "val", "test")
    }
    assert all(len(d) == 16 for d in digests.values())
    assert not digests["train"] & digests["val"]
    assert not digests["train"] & digests["test"]
    assert not digests["val"] & digests["test"]


def test_depth_range_spread_and_finite() -> None:
    ds = SyntheticDepth("val", length=60, height=24, width=32)
    depth = torch.stack([ds[i]["depth"] for i in range(60)])
    image = torch.stack([ds[i]["image"] for i in range(60)])
    assert torch.isfinite(depth).all() and torch.isfinite(image).all()
    assert depth.min() >= MIN_DEPTH and depth.max() <= MAX_DEPTH
    # The range is actually used: near objects and far walls, an NYU-like median (NYU's mean is about 2.7 m).
    assert depth.min() < 1.2 and depth.max() > 7.0
    assert 2.0 < depth.median() < 4.0
    # Images are neither black nor washed out, and vary within a scene.
    assert 0.15 < image.mean() < 0.7
    assert image.flatten(1).std(dim=1).min() > 0.02


@pytest.mark.parametrize(("height", "width"), [(1, 1), (2, 3), (7, 13), (97, 131), (64, 48)])
def test_any_size_including_odd(height: int, width: int) -> None:
    item = SyntheticDepth("test", length=2, height=height, width=width)[1]
    assert item["image"].shape == (3, height, width)
    assert item["depth"].shape == item["mask"].shape == (1, height, width)
    assert torch.isfinite(item["image"]).all() and torch.isfinite(item["depth"]).all()
    assert item["depth"].min() >= MIN_DEPTH and item["depth"].max() <= MAX_DEPTH


def test_same_scene_at_any_resolution() -> None:
    rng_hi, rng_lo = np.random.default_rng(11), np.random.default_rng(11)
    _, hi = render_scene(rng_hi, 96, 128)
    _, lo = render_scene(rng_lo, 48, 64)
    pooled = hi.reshape(48, 2, 64, 2).mean(axis=(1, 3))
    # equal up to object edges, where a low-resolution pixel sees one side only
    rel = np.abs(pooled - lo) / lo
    assert np.median(rel) < 0.01 and np.mean(rel < 0.05) > 0.9


def test_intrinsics_scale_nyu() -> None:
    k = camera_matrix(480, 640)
    fx, fy, cx, cy = NYU_INTRINSICS
    np.testing.assert_allclose(k, np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]))
    k2 = camera_matrix(240, 320)
    np.testing.assert_allclose([k2[0, 0], k2[1, 1]], [fx / 2, fy / 2])
    np.testing.assert_allclose([k2[0, 2], k2[1, 2]], [(cx + 0.5) / 2 - 0.5, (cy + 0.5) / 2 - 0.5])
    np.testing.assert_allclose(SyntheticDepth(height=96, width=128).intrinsics, camera_matrix(96, 128))
    # NYU's horizontal field of view is kept at any size
    assert math.degrees(2 * math.atan(64 / camera_matrix(96, 128)[0, 0])) == pytest.approx(63.3, abs=0.5)


def _plain(rgb: float = 0.5) -> _Material:
    c = (rgb, rgb, rgb)
    return _Material(base=c, alt=c, pattern="plain", period=1.0, angle=0.0, offset=(0.0, 0.0), grain=0.0)


def _scene(objects: tuple = ()) -> _Scene:
    """Camera at the origin looking along +z (no rotation) at a wall 3 m ahead, in a wide room."""
    return _Scene(
        cam_pos=np.zeros(3),
        cam_rot=np.diag([1.0, -1.0, 1.0]),
        room=_Room(lo=(-50.0, -50.0, -1.0), hi=(50.0, 50.0, 3.0), materials=(_plain(), _plain(), _plain())),
        objects=objects,
        light_pos=(0.0, 0.0, 0.0),
        light_rgb=(1.0, 1.0, 1.0),
        light_power=1.0,
        light_falloff=5.0,
        ambient=0.2,
        fog_distance=10.0,
        fog_grey=0.7,
        noise_std=0.0,
        lattice=np.zeros(64 * 64, dtype=np.float32),
    )


def test_depth_is_z_depth_not_ray_length() -> None:
    # a fronto-parallel wall has the same z-depth at every pixel, though the rays to the corners are longer
    _, depth = _render(_scene(), camera_matrix(24, 32), 24, 32)
    np.testing.assert_allclose(depth, 3.0, rtol=1e-5)


def test_sphere_depth_and_brightness_cue() -> None:
    sphere = _Sphere(centre=(0.0, 0.0, 2.0), radius=0.5, material=_plain())
    rgb, depth = _render(_scene((sphere,)), camera_matrix(47, 63), 47, 63)
    k = camera_matrix(47, 63)
    # the pixel nearest the principal point looks at the sphere's front point: z = 2 - 0.5
    v, u = round(k[1, 2]), round(k[0, 2])
    assert depth[v, u] == pytest.approx(1.5, abs=2e-3)
    assert depth[0, 0] == pytest.approx(3.0, rel=1e-5)
    # lit by a light at the camera with distance falloff and fog: the nearer sphere is brighter than the wall
    assert rgb[:, v, u].mean() > rgb[:, 0, 0].mean() + 0.05


def test_errors_name_the_problem() -> None:
    with pytest.raises(DataError, match="valid splits: train, val, test"):
        SyntheticDepth("training")
    with pytest.raises(DataError, match="length"):
        SyntheticDepth(length=-1)
    with pytest.raises(DataError, match="size"):
        SyntheticDepth(height=0)
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        make_dataset("nope")
    with pytest.raises(DataError, match="did you mean 'synthetic'"):
        make_dataset("synthetc")


def test_make_dataset_synthetic_with_size_and_augment() -> None:
    plain = make_dataset("synthetic", split="val", length=3, height=24, width=32, scene_seed=2)
    assert isinstance(plain, SyntheticDepth) and len(plain) == 3
    ds = make_dataset("synthetic", size=(30, 40), augment=True, seed=1, split="val", length=3, height=24, width=32)
    assert isinstance(ds, TransformedDataset) and len(ds) == 3
    item = ds[1]
    assert item["image"].shape == (3, 30, 40) and item["depth"].shape == item["mask"].shape == (1, 30, 40)
    assert item["index"] == 1
    assert torch.equal(item["depth"] > 0, item["mask"])
    loader = torch.utils.data.DataLoader(ds, batch_size=3)
    batch = next(iter(loader))
    assert batch["image"].shape == (3, 3, 30, 40) and batch["index"].tolist() == [0, 1, 2]


# ---------------------------------------------------------------------------------------------------------------
# Learnability: a tiny CNN trained for ~1000 steps beats the best constant and a per-pixel prior on held-out scenes.
# ---------------------------------------------------------------------------------------------------------------


def _delta1(pred: torch.Tensor, target: torch.Tensor) -> float:
    return (torch.maximum(pred / target, target / pred) < 1.25).float().mean().item()


class _TinyNet(nn.Module):
    """Four strided/plain 3x3 conv blocks (stride 8 overall), a 3x3 head and bilinear upsampling; predicts ln z."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out, stride in [(3, 16, 2), (16, 32, 2), (32, 64, 2), (64, 64, 1)]:
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers, nn.Conv2d(64, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x - 0.5)
        return nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Single-threaded torch for a reproducible, contention-free timing on 2 shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_tiny_cnn_learns_depth_from_images() -> None:
    h, w = 48, 64
    train = SyntheticDepth("train", length=1024, height=h, width=w)
    val = SyntheticDepth("val", length=64, height=h, width=w)
    x_train = torch.stack([train[i]["image"] for i in range(len(train))])
    y_train = torch.stack([train[i]["depth"] for i in range(len(train))])
    x_val = torch.stack([val[i]["image"] for i in range(len(val))])
    y_val = torch.stack([val[i]["depth"] for i in range(len(val))])

    torch.manual_seed(0)
    net = _TinyNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(1000):
        idx = torch.randint(0, len(x_train), (16,), generator=gen)
        loss = (net(x_train[idx]) - y_train[idx].log()).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = net(x_val).exp()

    d1_cnn = _delta1(pred, y_val)
    d1_const = _delta1(torch.full_like(y_val, y_train.median().item()), y_val)
    per_pixel_prior = y_train.log().mean(dim=0, keepdim=True).exp().expand_as(y_val)
    d1_prior = _delta1(per_pixel_prior, y_val)
    # Observed (2 shared CPU cores, torch 2.13 CPU, 1 thread; ~4 s generating, ~12 s training): delta1 of the CNN
    # 0.752 after 1000 steps (0.66/0.75/0.75 at steps 250/500/750), best constant (train median 3.10 m) 0.337,
    # per-pixel prior (mean log-depth of each pixel over the train set) 0.350. Abs rel: 0.18 vs 0.43 and 0.39.
    # (The scenes before the consistent cues of the module docstring gave 0.48 here.)
    assert d1_const < 0.40
    assert d1_cnn > 0.65
    assert d1_cnn > d1_const + 0.3
    assert d1_cnn > d1_prior + 0.3  # it reads the image, not only the pixel position


def test_cached_items_equal_fresh_renders_and_are_copies() -> None:
    ds = SyntheticDepth("train", length=3, height=24, width=32)
    first = ds[1]
    first["image"].zero_()  # a caller changing its item must not change the cache
    again = ds[1]
    fresh = SyntheticDepth("train", length=3, height=24, width=32)[1]
    assert torch.equal(again["image"], fresh["image"]) and torch.equal(again["depth"], fresh["depth"])
    assert again["image"].abs().sum() > 0
    assert 1 in ds._cache and ds._cache_bytes == sum(a.nbytes + b.nbytes for a, b in ds._cache.values())
