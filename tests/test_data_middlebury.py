"""The Middlebury 2014 Motorcycle sample from scikit-image as metric RGB-D (mlrd_core.data.middlebury)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mlrd_core.data import make_dataset
from mlrd_core.data.middlebury import (
    BASELINE_MM,
    DOFFS_PX,
    FOCAL_PX,
    MiddleburyMotorcycle,
    disparity_to_depth,
)
from mlrd_core.data.transforms import TransformedDataset
from mlrd_core.errors import DataError

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def raw() -> tuple[np.ndarray, np.ndarray]:
    left, _right, disparity = skimage_data.stereo_motorcycle()
    return left, disparity


@pytest.fixture(scope="module")
def item() -> dict:
    return MiddleburyMotorcycle()[0]


def test_calibration_matches_skimage_docstring() -> None:
    doc = skimage_data.stereo_motorcycle.__doc__
    assert "994.978px" in doc and "31.086px" in doc and "193.001mm" in doc
    assert (FOCAL_PX, DOFFS_PX, BASELINE_MM) == (994.978, 31.086, 193.001)
    # the full-resolution Middlebury 2014 calib.txt divided by 4 (baseline unchanged)
    assert pytest.approx(3979.911 / 4, abs=1e-3) == FOCAL_PX
    assert pytest.approx(124.343 / 4, abs=1e-3) == DOFFS_PX


def test_item_contract(item: dict) -> None:
    ds = MiddleburyMotorcycle()
    assert len(ds) == 1
    assert item["image"].shape == (3, 500, 741) and item["image"].dtype == torch.float32
    assert item["depth"].shape == item["mask"].shape == (1, 500, 741)
    assert item["depth"].dtype == torch.float32 and item["mask"].dtype == torch.bool
    assert item["index"] == 0
    assert item["image"].min() >= 0.0 and item["image"].max() <= 1.0
    assert torch.isfinite(item["depth"]).all()
    with pytest.raises(IndexError):
        ds[1]


def test_image_is_the_left_view(item: dict, raw: tuple[np.ndarray, np.ndarray]) -> None:
    left, _ = raw
    np.testing.assert_allclose(item["image"].numpy().transpose(1, 2, 0) * 255.0, left, atol=1e-3)


def test_mask_is_finite_disparity(item: dict, raw: tuple[np.ndarray, np.ndarray]) -> None:
    _, disparity = raw
    finite = np.isfinite(disparity)
    assert np.array_equal(item["mask"][0].numpy(), finite)
    assert (item["depth"][0].numpy()[~finite] == 0).all()
    assert (item["depth"][0].numpy()[finite] > 0).all()
    assert 0.06 < 1.0 - finite.mean() < 0.09  # about 7.3 % of the pixels have no ground truth


def test_depth_range_is_plausible(item: dict) -> None:
    valid = item["depth"][item["mask"]]
    # disparities 7.19..59.91 px give 5.02..2.11 m: the motorcycle about 2.1-3 m away, the back wall about 5 m
    assert valid.min().item() == pytest.approx(2.110, abs=0.01)
    assert valid.max().item() == pytest.approx(5.017, abs=0.01)
    assert valid.median().item() == pytest.approx(2.75, abs=0.02)


def test_metric_conversion_at_a_hand_computed_pixel(item: dict, raw: tuple[np.ndarray, np.ndarray]) -> None:
    _, disparity = raw
    d = float(disparity[250, 370])  # 48.999874 px, on the motorcycle
    assert d == pytest.approx(48.999874, abs=1e-5)
    # 193.001 mm * 994.978 px = 192031.75 mm px; / (48.999874 + 31.086) px = 2397.82 mm
    expected_m = 193.001 * 994.978 / (48.999874 + 31.086) / 1000.0
    assert expected_m == pytest.approx(2.39782, abs=1e-5)
    assert item["depth"][0, 250, 370].item() == pytest.approx(expected_m, rel=1e-6)
    assert not item["mask"][0, 0, 0]  # the top-left corner has no ground truth (inf)


def test_disparity_to_depth_handles_nan_inf_and_nonpositive() -> None:
    disp = np.array([[np.inf, np.nan, 48.999874, -40.0]], dtype=np.float32)
    depth, mask = disparity_to_depth(disp)
    assert mask.tolist() == [[False, False, True, False]]
    assert depth[0, 0] == depth[0, 1] == depth[0, 3] == 0.0
    assert depth.dtype == np.float32


def test_splits() -> None:
    assert MiddleburyMotorcycle("val").split == "val"
    with pytest.raises(DataError, match="no training split"):
        MiddleburyMotorcycle("train")
    with pytest.raises(DataError, match="valid splits: test, val"):
        MiddleburyMotorcycle("bogus")


def test_make_dataset_with_resize() -> None:
    ds = make_dataset("middlebury", size=(96, 128))
    assert isinstance(ds, TransformedDataset)
    out = ds[0]
    assert out["image"].shape == (3, 96, 128) and out["depth"].shape == out["mask"].shape == (1, 96, 128)
    assert torch.equal(out["depth"] > 0, out["mask"])
    assert out["depth"][out["mask"]].min() >= 2.1 and out["depth"].max() <= 5.02
    assert np.allclose(MiddleburyMotorcycle().intrinsics[0], [994.978, 0.0, 311.193])


# ----------------------------------------------------------------------------------------- from files
# The layout and formats come from the benchmark's own descriptions (vision.middlebury.edu/stereo/data/scenes2014/,
# "Dataset description" and its PFM notes): a scene folder holds im0.png, disp0.pfm and calib.txt; a PFM is the
# line "Pf" (greyscale), the line "<width> <height>", a scale line whose sign gives the byte order (negative:
# little-endian), then float32 rows from the bottom row to the top; infinity marks unknown disparities. The PFM
# bytes below are written with struct, from that description, not by any code of the loader.

CALIB = """cam0=[3979.911 0 1244.772; 0 3979.911 1019.507; 0 0 1]
cam1=[3979.911 0 1369.115; 0 3979.911 1019.507; 0 0 1]
doffs=124.343
baseline=193.001
width={w}
height={h}
ndisp=270
isint=0
vmin=23
vmax=245
dyavg=0
dymax=0
"""


def write_pfm(path: Path, rows_top_first: np.ndarray, *, little_endian: bool = True) -> None:
    import struct

    h, w = rows_top_first.shape
    order, scale = ("<", -1.0) if little_endian else (">", 1.0)
    body = b"".join(struct.pack(f"{order}{w}f", *row) for row in rows_top_first[::-1])  # bottom row first
    path.write_bytes(b"Pf\n" + f"{w} {h}\n{scale}\n".encode() + body)


def write_scene(folder: Path, disparity: np.ndarray, *, little_endian: bool = True) -> np.ndarray:
    from PIL import Image

    h, w = disparity.shape
    folder.mkdir(parents=True)
    rgb = (np.arange(h * w * 3).reshape(h, w, 3) % 251).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "im0.png")
    write_pfm(folder / "disp0.pfm", disparity, little_endian=little_endian)
    (folder / "calib.txt").write_text(CALIB.format(w=w, h=h))
    return rgb


def test_scenes_from_the_benchmark_files(tmp_path: Path) -> None:
    from mlrd_core.data.middlebury import MiddleburyFiles

    disparity = np.array([[200.0, 210.0, np.inf], [150.0, 160.0, 170.0]], dtype=np.float32)  # row 0 = top
    rgb = write_scene(tmp_path / "Motorcycle-perfect", disparity)
    write_scene(tmp_path / "Piano-perfect", disparity[::-1].copy(), little_endian=False)
    dataset = make_dataset("middlebury", root=tmp_path)
    assert isinstance(dataset, MiddleburyFiles) and dataset.names == ["Motorcycle-perfect", "Piano-perfect"]
    item = dataset[0]
    np.testing.assert_allclose(item["image"].numpy().transpose(1, 2, 0) * 255.0, rgb, atol=1e-4)
    # depth = baseline · f / (d + doffs) mm, top row first; inf is unknown
    expected = 193.001 * 3979.911 / (disparity.astype(np.float64) + 124.343) / 1000.0
    assert item["depth"][0, 0, 0] == pytest.approx(expected[0, 0], rel=1e-6)
    assert item["depth"][0, 1, 2] == pytest.approx(expected[1, 2], rel=1e-6)
    assert item["mask"][0].tolist() == [[True, True, False], [True, True, True]] and item["depth"][0, 0, 2] == 0
    flipped = dataset[1]  # big-endian PFM with the rows the other way up
    torch.testing.assert_close(flipped["depth"][0], item["depth"][0].flip(0))
    assert dataset.intrinsics(0)[0, 0] == 3979.911
    assert make_dataset("middlebury", root=tmp_path / "Piano-perfect").names == ["Piano-perfect"]  # type: ignore[attr-defined]
    (source,) = dataset.sources
    assert source["items"] == 2 and source["hash_kind"] == "files-sha256"
    assert source["settings"] == {"split": "test", "disparity_file": "disp0.pfm"}


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    from mlrd_core.data.middlebury import MiddleburyFiles, read_pfm

    scene = tmp_path / "Adirondack-perfect"
    write_scene(scene, np.ones((2, 3), dtype=np.float32))
    pfm = scene / "disp0.pfm"
    pfm.write_bytes(pfm.read_bytes()[:-4])
    with pytest.raises(DataError, match=r"disp0.pfm is truncated: 3x2 float32 need 24 bytes, found 20"):
        read_pfm(pfm)
    pfm.write_bytes(b"PF\n3 2\n-1.0\n" + bytes(72))
    with pytest.raises(DataError, match=r"three-channel PFM"):
        read_pfm(pfm)
    pfm.write_bytes(b"P5\n3 2\n255\n" + bytes(6))
    with pytest.raises(DataError, match=r"disp0.pfm is not a PFM file"):
        MiddleburyFiles(tmp_path)[0]
    write_pfm(pfm, np.ones((2, 4), dtype=np.float32))
    with pytest.raises(DataError, match=r"im0.png is 2x3 but disp0.pfm is 2x4"):
        MiddleburyFiles(scene)[0]
    (scene / "calib.txt").write_text("doffs=1\nbaseline=2\n")
    with pytest.raises(DataError, match=r"calib.txt has no cam0= line"):
        MiddleburyFiles(scene).intrinsics(0)
    (scene / "calib.txt").unlink()
    with pytest.raises(DataError, match=r"no Middlebury scene in .*Adirondack-perfect: expected"):
        MiddleburyFiles(scene)
    with pytest.raises(DataError, match=r"Middlebury scene .*Adirondack-perfect lacks calib.txt"):
        MiddleburyFiles(tmp_path)
    with pytest.raises(DataError, match="no training split"):
        MiddleburyFiles(tmp_path, split="train")
