"""Tests of the Make3D loader on tiny files in the real layout: JPEG photos and v5 ``.mat`` laser grids.

The layout is the one of the dataset page (make3d.cs.cornell.edu/data.html, Dataset-1) and of the archives as they
unpack: ``Train400Img/img-<name>.jpg``, ``Train400Depth/depth_sph_corr-<name>.mat`` holding ``Position3DGrid``
(55×305×4, depth in metres in the 4th channel), ``Test134/`` and ``Test134Depth/`` (unpacked as
``Gridlaserdata/``). The grids here are smaller, with the same axes.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from mlrd_core.data import make_dataset
from mlrd_core.data.make3d import Make3D, resize_depth
from mlrd_core.errors import DataError

H, W = 40, 30  # portrait, like the 2272×1704 photos
GH, GW = 10, 6  # the grid; H / GH = 4 and W / GW = 5 so nearest upsampling is checkable by hand
NAMES = ("math7-p-282t0", "op1-p-015t000", "10.21op2-p-139t000")


def photo(seed: int) -> np.ndarray:
    """An asymmetric RGB photo: gradients along rows and columns plus noise."""
    rows, cols = np.mgrid[0:H, 0:W]
    noise = np.random.default_rng(seed).integers(0, 40, (H, W, 3))
    base = np.stack([rows * 5, cols * 7, (rows + cols) * 3], axis=-1)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def grid(seed: int) -> np.ndarray:
    """A Position3DGrid: channels 1-3 decoys, channel 4 depth = 1 + row + 10·column (+ seed)."""
    rows, cols = np.mgrid[0:GH, 0:GW]
    depth = 1.0 + rows + 10.0 * cols + seed
    return np.stack([-np.ones_like(depth), np.full_like(depth, 99.0), depth * 0.9, depth], axis=-1)


def write_make3d(root: Path, image_dir: str = "Train400Img", depth_dir: str = "Train400Depth") -> Path:
    (root / image_dir).mkdir(parents=True)
    (root / depth_dir).mkdir(parents=True)
    for seed, name in enumerate(NAMES):
        Image.fromarray(photo(seed)).save(root / image_dir / f"img-{name}.jpg", quality=95)
        scipy.io.savemat(
            root / depth_dir / f"depth_sph_corr-{name}.mat", {"Position3DGrid": grid(seed)}, do_compression=True
        )
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_make3d(tmp_path)


def test_native_size_round_trip(root: Path) -> None:
    dataset = make_dataset("make3d", root=root, split="train", resize_to=None, depth_interpolation="nearest")
    assert isinstance(dataset, Make3D) and len(dataset) == 3
    assert dataset.names == sorted(NAMES)
    for position, name in enumerate(dataset.names):
        item = dataset[position]
        assert set(item) == {"image", "depth", "mask", "index"} and item["index"] == position
        assert item["image"].shape == (3, H, W) and item["depth"].shape == (1, H, W) and item["mask"].shape == (1, H, W)
        decoded = np.asarray(Image.open(root / "Train400Img" / f"img-{name}.jpg").convert("RGB"))
        torch.testing.assert_close(item["image"], torch.from_numpy(decoded.transpose(2, 0, 1) / 255.0).float())
        depth = grid(NAMES.index(name))[:, :, 3]
        rows, cols = np.mgrid[0:H, 0:W]
        expected = torch.from_numpy(depth[rows // 4, cols // 5].astype(np.float32))
        torch.testing.assert_close(item["depth"][0], expected, rtol=0, atol=0)
        assert bool(item["mask"].all())


def test_default_working_resolution_nearest_and_bilinear(root: Path) -> None:
    item = Make3D(root)[0]
    assert item["image"].shape == (3, 460, 345) and item["depth"].shape == (1, 460, 345)
    source = torch.from_numpy(grid(NAMES.index(sorted(NAMES)[0]))[:, :, 3].astype(np.float32))[None, None]
    nearest = F.interpolate(source, size=(460, 345), mode="nearest-exact")[0]
    torch.testing.assert_close(item["depth"], nearest, rtol=0, atol=0)  # the default: measured values only
    bilinear = Make3D(root, depth_interpolation="bilinear")[0]
    expected = F.interpolate(source, size=(460, 345), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(bilinear["depth"], expected)
    mean_colour = photo(NAMES.index(sorted(NAMES)[0])).reshape(-1, 3).mean(axis=0) / 255
    torch.testing.assert_close(item["image"].mean(dim=(1, 2)), torch.from_numpy(mean_colour).float(), atol=0.02, rtol=0)
    small = Make3D(root, resize_to=(20, 15))[2]
    assert small["image"].shape == (3, 20, 15) and small["depth"].shape == (1, 20, 15)


def test_bilinear_never_blends_with_unknown() -> None:
    depth = np.full((GH, GW), 5.0, dtype=np.float32)
    depth[:, 3:] = 9.0
    depth[4, 1] = 0.0
    out = resize_depth(depth, (H, W))
    assert out[16:20, 5:10].max() == 0  # around the hole: unknown
    known = out[out > 0]
    assert known.min() >= 5.0 - 1e-5 and known.max() <= 9.0 + 1e-5 and (out == 0).sum() < 0.1 * out.size
    assert out[0, 0] == pytest.approx(5.0) and out[-1, -1] == pytest.approx(9.0)
    nearest = resize_depth(depth, (H, W), "nearest")
    assert set(np.unique(nearest).tolist()) == {0.0, 5.0, 9.0}


def test_max_depth_and_invalid_samples(tmp_path: Path) -> None:
    root = write_make3d(tmp_path)
    far = grid(0)
    far[0, 0, 3] = 81.9  # a laser no-return
    far[1, 0, 3] = np.nan
    scipy.io.savemat(root / "Train400Depth" / f"depth_sph_corr-{sorted(NAMES)[0]}.mat", {"Position3DGrid": far})
    kept = Make3D(root, resize_to=None, depth_interpolation="nearest")[0]
    assert kept["depth"][0, 0, 0] == pytest.approx(81.9) and kept["mask"][0, 0, 0]
    assert kept["depth"][0, 4, 0] == 0 and not kept["mask"][0, 4, 0]  # NaN -> unknown
    capped = Make3D(root, resize_to=None, depth_interpolation="nearest", max_depth=70.0)[0]
    assert capped["depth"][0, 0, 0] == 0 and not capped["mask"][0, 0, 0]
    assert capped["depth"][0, 0, 5] == pytest.approx(far[0, 1, 3])


def test_test_split_folder_names_and_workers(tmp_path: Path) -> None:
    root = write_make3d(tmp_path, "Test134", "Gridlaserdata")
    dataset = Make3D(root, split="test", resize_to=(20, 15))
    assert dataset.depth_dir.name == "Gridlaserdata" and len(dataset) == 3
    clone = pickle.loads(pickle.dumps(dataset))
    torch.testing.assert_close(clone[1]["depth"], dataset[1]["depth"], rtol=0, atol=0)
    batches = list(DataLoader(dataset, batch_size=2, num_workers=2))
    assert torch.cat([batch["index"] for batch in batches]).tolist() == [0, 1, 2]
    assert batches[0]["image"].shape == (2, 3, 20, 15)


def test_explicit_folders(root: Path) -> None:
    dataset = Make3D(image_dir=root / "Train400Img", depth_dir=root / "Train400Depth", resize_to=(8, 6))
    assert len(dataset) == 3


# ------------------------------------------------------------------------------------------------ errors
def test_pairing_errors(root: Path) -> None:
    (root / "Train400Depth" / f"depth_sph_corr-{NAMES[1]}.mat").unlink()
    with pytest.raises(
        DataError,
        match=rf"1 Make3D images have no partner in .*Train400Depth: missing "
        rf"depth_sph_corr-{NAMES[1]}\.mat",
    ):
        Make3D(root)
    (root / "Train400Img" / f"img-{NAMES[1]}.jpg").unlink()
    scipy.io.savemat(root / "Train400Depth" / "depth_sph_corr-lonely.mat", {"Position3DGrid": grid(0)})
    with pytest.raises(DataError, match=r"1 Make3D depth files have no partner in .*Train400Img: missing img-lonely"):
        Make3D(root)


def test_folder_and_option_errors(tmp_path: Path, root: Path) -> None:
    with pytest.raises(DataError, match=r"no Make3D image folder in .*; expected one of Test134, Test134Img"):
        Make3D(root, split="test")
    with pytest.raises(DataError, match="needs root="):
        Make3D()
    with pytest.raises(DataError, match="unknown Make3D split 'val'"):
        Make3D(root, split="val")
    with pytest.raises(DataError, match="unknown depth_interpolation 'cubic'"):
        Make3D(root, depth_interpolation="cubic")
    with pytest.raises(DataError, match="resize_to must be"):
        Make3D(root, resize_to=(0, 10))
    with pytest.raises(DataError, match="max_depth must be a positive number"):
        Make3D(root, max_depth=0.0)
    (tmp_path / "empty" / "Train400Img").mkdir(parents=True)
    (tmp_path / "empty" / "Train400Depth").mkdir()
    with pytest.raises(DataError, match=r"no Make3D images \(img-<name>.jpg\) in"):
        Make3D(tmp_path / "empty")


def depth_file(root: Path) -> Path:
    return root / "Train400Depth" / f"depth_sph_corr-{sorted(NAMES)[0]}.mat"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"Position3DGrid": np.zeros((55, 305, 3))},
            r"expected 'Position3DGrid' of shape \(rows, columns, 4\).*"
            r"got \(55, 305, 3\)",
        ),
        ({"Position3DGrid": np.zeros((55, 305))}, r"got \(55, 305\)"),
        ({"depth": np.zeros((55, 305, 4))}, r"expected variable 'Position3DGrid' \(55×305×4\) in .*found: depth"),
    ],
)
def test_wrong_mat_content(root: Path, content: dict[str, np.ndarray], message: str) -> None:
    scipy.io.savemat(depth_file(root), content)
    with pytest.raises(DataError, match=message):
        Make3D(root)[0]


def test_truncated_and_v73_mat(root: Path) -> None:
    path = depth_file(root)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cannot read .*\.mat as a MATLAB v5 \.mat file.*truncated"):
        Make3D(root)[0]
    path.unlink()
    header = b"MATLAB 7.3 MAT-file, HDF5 schema 1.00 .".ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM"
    with h5py.File(path, "w", userblock_size=512) as handle:
        handle["Position3DGrid"] = grid(0).T
    with open(path, "r+b") as stream:
        stream.write(header)
    with pytest.raises(DataError, match=r"is a MATLAB v7.3 \(HDF5\) file; expected the v5 .mat of Make3D"):
        Make3D(root)[0]


def test_sky_is_not_blended_into_the_70_m_range(tmp_path: Path) -> None:
    """The laser reads the sky as its maximum, 81.92 m; bilinear blending puts it inside C1's < 70 m range."""
    root = write_make3d(tmp_path)
    depth = np.full((GH, GW), 20.0)
    depth[: GH // 2] = 81.92
    scipy.io.savemat(
        root / "Train400Depth" / f"depth_sph_corr-{sorted(NAMES)[0]}.mat",
        {"Position3DGrid": np.stack([depth, depth, depth, depth], axis=-1)},
    )
    nearest = Make3D(root, resize_to=(H * 3, W * 3))[0]["depth"]
    assert torch.unique(nearest).tolist() == pytest.approx([20.0, 81.92])
    blended = Make3D(root, resize_to=(H * 3, W * 3), depth_interpolation="bilinear")[0]["depth"]
    assert bool(((blended > 20.5) & (blended < 70.0)).any())


def test_truncated_jpeg_loads_with_a_warning_naming_it(root: Path) -> None:
    path = root / "Train400Img" / f"img-{sorted(NAMES)[0]}.jpg"
    full = Make3D(root, resize_to=None)[0]["image"]
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.8)])  # ends inside the entropy-coded data, as Test134's file
    with pytest.warns(UserWarning, match=r"img-10\.21op2-p-139t000\.jpg is truncated"):
        item = Make3D(root, resize_to=None)[0]
    assert item["image"].shape == full.shape
    torch.testing.assert_close(item["image"][:, :8], full[:, :8], rtol=0, atol=0)  # the rows that are there
    assert not torch.equal(item["image"], full)
    with pytest.warns(UserWarning, match="is truncated"):
        assert Make3D(root)[0]["image"].shape == (3, 460, 345)  # and with the reduced-scale decode


def test_sources_record_both_folders_and_the_choices(root: Path) -> None:
    import hashlib

    dataset = Make3D(root, depth_interpolation="nearest")
    images, depths = dataset.sources
    assert (images["name"], images["kind"], images["items"], images["hash_kind"]) == (
        "Train400Img",
        "folder",
        3,
        "files-sha256",
    )
    files = sorted((root / "Train400Img").iterdir())
    assert images["bytes"] == sum(f.stat().st_size for f in files)
    lines = sorted(f"{f.name}\t{f.stat().st_size}\n" for f in files)
    assert images["hash"] == hashlib.sha256("".join(lines).encode()).hexdigest()
    assert images["settings"] == {
        "split": "train",
        "resize_to": [460, 345],
        "depth_interpolation": "nearest",
        "max_depth": None,
    }
    assert depths["name"] == "Train400Depth" and depths["items"] == 3


def test_truncated_photo(root: Path) -> None:
    path = root / "Train400Img" / f"img-{sorted(NAMES)[0]}.jpg"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"cannot decode image .*img-10\.21op2-p-139t000\.jpg.*truncated"):
        Make3D(root)[0]
