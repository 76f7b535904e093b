"""Tests of the NYUv2 loaders on tiny files written in the real formats.

``nyuv2``: an HDF5 file with MATLAB's 512-byte v7.3 header and MATLAB's transposed storage (an H×W×3×N
MATLAB array is the C-order (N, 3, W, H) dataset), plus a v5 ``splits.mat`` with 1-based column vectors. Where
the layout comes from: the dataset page (cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html) lists the labelled
file's variables (``images`` 480×640×3×N uint8, ``depths`` / ``rawDepths`` 480×640×N in metres); MATLAB's
documentation of ``-v7.3`` MAT-files (HDF5 with a 512-byte user block, column-major storage) gives the on-disk
form; ``splits.mat`` of the indoor segmentation page holds ``trainNdxs`` / ``testNdxs``, 1-based.
``nyuv2-zip``: zips in the authors' and DenseDepth's layouts (CSV + PNG/JPG + 8/16-bit PNG depth). Where the
layouts come from: the authors' ``train.py`` and ``utils/get_data.py`` (github.com/jaehanlee-mcl/
multi-loss-rebalancing-depth) read ``train795.zip`` / ``train_reduced05.zip`` / ``test654.zip`` with the CSVs
``train795/train.csv``, ``train_reduced05/train.csv``, ``test654/test.csv``, rows ``rgb_member,depth_member``
without a header, 16-bit PNG depth read as ``v / (2^16 - 1) · 10`` (``utils/data.py``); DenseDepth's README and
``data.py`` (github.com/ialhashim/DenseDepth) describe ``nyu_data.zip`` with ``data/nyu2_train.csv`` (JPG + 8-bit
PNG under ``data/nyu2_train/<scene>/``) and ``data/nyu2_test.csv`` (PNG + 16-bit PNG in millimetres). The member
names inside the authors' zips are not published; the tests use plausible ones.
"""

from __future__ import annotations

import io
import math
import pickle
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torch.utils.data import DataLoader

from mlrd_core.data import make_dataset
from mlrd_core.data import nyuv2 as nyu
from mlrd_core.data.colorization import fill_depth_colorization
from mlrd_core.errors import DataError

N, H, W = 5, 6, 8  # tiny frames; H != W so that a wrong transpose cannot go unnoticed


# ------------------------------------------------------------------------------------------- fixtures
def matlab_v73_header() -> bytes:
    """The 128-byte header MATLAB writes into the 512-byte HDF5 user block of a v7.3 file."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2012 HDF5 schema 1.00 ."
    return text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"


def write_v73(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write MATLAB arrays (given in MATLAB's own H×W×… order) the way MATLAB -v7.3 stores them."""
    classes = {np.dtype(np.uint8): b"uint8", np.dtype(np.float32): b"single", np.dtype(np.float64): b"double"}
    with h5py.File(path, "w", userblock_size=512) as handle:
        for name, array in arrays.items():
            # Column-major MATLAB data == C-order data with the dimensions reversed.
            dataset = handle.create_dataset(name, data=array.T, chunks=True, compression="gzip")
            dataset.attrs["MATLAB_class"] = np.bytes_(classes[array.dtype])
    with open(path, "r+b") as stream:
        stream.write(matlab_v73_header())


class Frames:
    """Ground truth of the tiny labeled file, in MATLAB order: images H×W×3×N, depths H×W×N."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (H, W, 3, N), dtype=np.uint8)
        self.depths = (0.5 + 9 * rng.random((H, W, N))).astype(np.float32)
        self.raw = self.depths.copy()
        self.raw[rng.random((H, W, N)) < 0.3] = 0.0


@pytest.fixture(scope="module")
def frames() -> Frames:
    return Frames()


@pytest.fixture
def nyu_root(tmp_path: Path, frames: Frames) -> Path:
    write_v73(
        tmp_path / nyu.LABELED_FILE,
        {"images": frames.images, "depths": frames.depths, "rawDepths": frames.raw},
    )
    scipy.io.savemat(
        tmp_path / nyu.SPLITS_FILE,
        {"trainNdxs": np.array([[1.0], [3.0], [5.0]]), "testNdxs": np.array([[2.0], [4.0]])},
    )
    return tmp_path


def expected_image(frames: Frames, frame: int) -> torch.Tensor:
    return torch.from_numpy(frames.images[:, :, :, frame].transpose(2, 0, 1).astype(np.float32) / 255)


# ------------------------------------------------------------------------------------------- nyuv2
def test_layout_round_trips_exactly(nyu_root: Path, frames: Frames) -> None:
    dataset = make_dataset("nyuv2", root=nyu_root, split="train")
    assert isinstance(dataset, nyu.NYUv2Labeled)
    assert len(dataset) == 3 and (dataset.height, dataset.width) == (H, W)
    for position, frame in enumerate((0, 2, 4)):  # trainNdxs 1, 3, 5 are 1-based
        item = dataset[position]
        assert set(item) == {"image", "depth", "mask", "index"} and item["index"] == position
        assert item["image"].dtype == torch.float32 and item["image"].shape == (3, H, W)
        assert item["depth"].dtype == torch.float32 and item["depth"].shape == (1, H, W)
        assert item["mask"].dtype == torch.bool and bool(item["mask"].all())
        torch.testing.assert_close(item["image"], expected_image(frames, frame), rtol=0, atol=0)
        torch.testing.assert_close(item["depth"][0], torch.from_numpy(frames.depths[:, :, frame]), rtol=0, atol=0)
    # pixel (row 1, column 6) of frame 2, read back by hand
    assert dataset[1]["image"][2, 1, 6] == frames.images[1, 6, 2, 2] / 255.0


def test_test_split_all_split_and_negative_index(nyu_root: Path, frames: Frames) -> None:
    test = nyu.NYUv2Labeled(nyu_root, split="test")
    assert test.file_indices.tolist() == [1, 3]
    torch.testing.assert_close(test[-1]["image"], expected_image(frames, 3), rtol=0, atol=0)
    everything = nyu.NYUv2Labeled(mat_path=nyu_root / nyu.LABELED_FILE, split="all")
    assert len(everything) == N
    with pytest.raises(IndexError):
        everything[N]


def test_raw_depth_is_masked_where_zero(nyu_root: Path, frames: Frames) -> None:
    item = nyu.NYUv2Labeled(nyu_root, split="all", depth="raw")[2]
    raw = torch.from_numpy(frames.raw[:, :, 2])
    torch.testing.assert_close(item["depth"][0], raw, rtol=0, atol=0)
    assert torch.equal(item["mask"][0], raw > 0) and not bool(item["mask"].all())


def test_raw_filled_is_colorization_and_cached(
    nyu_root: Path, frames: Frames, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    dataset = nyu.NYUv2Labeled(nyu_root, split="all", depth="raw-filled", cache_dir=cache)
    item = dataset[1]
    rgb = frames.images[:, :, :, 1]  # H×W×3
    expected = fill_depth_colorization(rgb, frames.raw[:, :, 1])
    torch.testing.assert_close(item["depth"][0], torch.from_numpy(expected), rtol=0, atol=0)
    assert bool(item["mask"].all())
    assert len(list(cache.rglob("0001.npy"))) == 1

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached map should have been used")

    monkeypatch.setattr(nyu, "fill_depth_colorization", fail)
    again = nyu.NYUv2Labeled(nyu_root, split="all", depth="raw-filled", cache_dir=cache)
    torch.testing.assert_close(again[1]["depth"], item["depth"], rtol=0, atol=0)
    with pytest.raises(AssertionError, match="cached"):
        again[0]  # not computed before


def test_raw_filled_memory_cache(nyu_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = nyu.NYUv2Labeled(nyu_root, split="all", depth="raw-filled", fill_alpha=math.inf)
    first = dataset[0]["depth"]
    monkeypatch.setattr(nyu, "fill_depth_colorization", None)
    torch.testing.assert_close(dataset[0]["depth"], first, rtol=0, atol=0)


def test_pickles_without_handle_and_loads_in_workers(nyu_root: Path, frames: Frames) -> None:
    dataset = nyu.NYUv2Labeled(nyu_root, split="all")
    dataset[0]  # opens the file in this process
    assert dataset._handle is not None
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone._handle is None
    torch.testing.assert_close(clone[3]["image"], expected_image(frames, 3), rtol=0, atol=0)
    loader = DataLoader(dataset, batch_size=2, num_workers=2)
    batches = list(loader)
    assert torch.cat([batch["index"] for batch in batches]).tolist() == list(range(N))
    images = torch.cat([batch["image"] for batch in batches])
    torch.testing.assert_close(images, torch.stack([expected_image(frames, n) for n in range(N)]), rtol=0, atol=0)
    dataset.close()


def test_spawned_workers(nyu_root: Path) -> None:
    loader = DataLoader(
        nyu.NYUv2Labeled(nyu_root, split="test"), batch_size=1, num_workers=1, multiprocessing_context="spawn"
    )
    assert [int(batch["index"]) for batch in loader] == [0, 1]


# --------------------------------------------------------------------------------------- nyuv2 errors
def test_missing_files_and_bad_options(tmp_path: Path, nyu_root: Path) -> None:
    with pytest.raises(DataError, match="NYUv2 labeled file not found"):
        nyu.NYUv2Labeled(tmp_path / "nowhere")
    with pytest.raises(DataError, match="needs root="):
        nyu.NYUv2Labeled()
    with pytest.raises(DataError, match="NYUv2 splits file not found"):
        nyu.NYUv2Labeled(mat_path=nyu_root / nyu.LABELED_FILE, splits_path=tmp_path / "splits-missing.mat")
    with pytest.raises(DataError, match="unknown NYUv2 split 'val'"):
        nyu.NYUv2Labeled(nyu_root, split="val")
    with pytest.raises(DataError, match="unknown NYUv2 depth kind 'dense'; valid kinds: filled, raw, raw-filled"):
        nyu.NYUv2Labeled(nyu_root, depth="dense")


def test_v5_mat_where_v73_is_expected(tmp_path: Path) -> None:
    path = tmp_path / "v5.mat"
    scipy.io.savemat(path, {"depths": np.zeros((2, 3))})
    with pytest.raises(DataError, match=r"v5.mat is a MATLAB v5 .mat file; expected the MATLAB v7.3 \(HDF5\)"):
        nyu.NYUv2Labeled(mat_path=path, split="all")


def test_truncated_labeled_file(nyu_root: Path) -> None:
    path = nyu_root / nyu.LABELED_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cannot open .*nyu_depth_v2_labeled.mat as HDF5.*truncated"):
        nyu.NYUv2Labeled(nyu_root)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"depths": np.zeros((H, W, N), np.float32)}, r"expected HDF5 dataset 'images' .* found only: depths"),
        (
            {"images": np.zeros((H, W, 3, N), np.float32), "depths": np.zeros((H, W, N), np.float32)},
            r"expected HDF5 dataset 'images' of shape \(N, 3, W, H\) uint8 .* got \(5, 3, 8, 6\) float32",
        ),
        (
            {"images": np.zeros((H, W, 3, N), np.uint8), "depths": np.zeros((W, H, N), np.float32)},
            r"expected HDF5 dataset 'depths' of shape \(N, W, H\) = \(5, 8, 6\) .* in .*bad.mat, got \(5, 6, 8\)",
        ),
        (
            {"images": np.zeros((H, W, 3, N), np.uint8), "depths": np.zeros((H, W, N - 1), np.float32)},
            r"expected HDF5 dataset 'depths' of shape \(N, W, H\) = \(5, 8, 6\) .* got \(4, 8, 6\)",
        ),
    ],
)
def test_wrong_layouts(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    write_v73(tmp_path / "bad.mat", arrays)
    with pytest.raises(DataError, match=message):
        nyu.NYUv2Labeled(mat_path=tmp_path / "bad.mat", split="all")


def test_missing_raw_depths(tmp_path: Path, frames: Frames) -> None:
    write_v73(tmp_path / "filled-only.mat", {"images": frames.images, "depths": frames.depths})
    nyu.NYUv2Labeled(mat_path=tmp_path / "filled-only.mat", split="all")  # filled depth needs no rawDepths
    with pytest.raises(DataError, match="expected HDF5 dataset 'rawDepths' of shape"):
        nyu.NYUv2Labeled(mat_path=tmp_path / "filled-only.mat", split="all", depth="raw")


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (np.array([[1.0], [900.0]]), r"splits.mat index 900 out of range for 5 images \(trainNdxs .* 1-based"),
        (np.array([[0.0], [2.0]]), "splits.mat index 0 out of range for 5 images"),
        (np.array([[1.5]]), "trainNdxs must hold whole numbers"),
    ],
)
def test_bad_split_indices(nyu_root: Path, train: np.ndarray, message: str) -> None:
    scipy.io.savemat(nyu_root / nyu.SPLITS_FILE, {"trainNdxs": train, "testNdxs": np.array([[2.0]])})
    with pytest.raises(DataError, match=message):
        nyu.NYUv2Labeled(nyu_root)


def test_splits_variables_truncation_and_v73(nyu_root: Path, tmp_path: Path) -> None:
    path = nyu_root / nyu.SPLITS_FILE
    scipy.io.savemat(path, {"trainNdxs": np.array([[1.0]])})
    with pytest.raises(DataError, match=r"expected variable 'testNdxs' in splits file .*, found: trainNdxs"):
        nyu.NYUv2Labeled(nyu_root)
    path.write_bytes(b"not a mat file at all" * 3)
    with pytest.raises(DataError, match=r"cannot read .*splits.mat as a MATLAB .mat file"):
        nyu.NYUv2Labeled(nyu_root)
    # A v7.3 copy of the splits is read with h5py.
    write_v73(path, {"trainNdxs": np.array([[2.0], [5.0]]), "testNdxs": np.array([[1.0]])})
    assert nyu.NYUv2Labeled(nyu_root).file_indices.tolist() == [1, 4]


# ------------------------------------------------------------------------------------------- nyuv2-zip
def png_bytes(array: np.ndarray) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(array).save(stream, "PNG")
    return stream.getvalue()


def jpg_bytes(array: np.ndarray) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(array).save(stream, "JPEG", quality=90)
    return stream.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


class ZipFrames:
    """Two RGB frames and their depth in metres (with one unknown pixel each)."""

    def __init__(self) -> None:
        rng = np.random.default_rng(3)
        self.rgb = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(2)]
        self.depth16 = [rng.integers(1, 65536, (H, W), dtype=np.uint16) for _ in range(2)]
        for depth in self.depth16:
            depth[0, 1] = 0


@pytest.fixture(scope="module")
def zframes() -> ZipFrames:
    return ZipFrames()


@pytest.fixture
def authors_zip(tmp_path: Path, zframes: ZipFrames) -> Path:
    """``train795.zip`` in the authors' layout, CSV paths relative to the zip root."""
    members = {
        "train795/train.csv": b"train795/rgb/0.png,train795/depth/0.png\r\ntrain795/rgb/1.png,train795/depth/1.png\r\n"
    }
    for n in range(2):
        members[f"train795/rgb/{n}.png"] = png_bytes(zframes.rgb[n])
        members[f"train795/depth/{n}.png"] = png_bytes(zframes.depth16[n])
    write_zip(tmp_path / "train795.zip", members)
    return tmp_path / "train795.zip"


def test_authors_zip_round_trip_and_scale(authors_zip: Path, zframes: ZipFrames) -> None:
    dataset = make_dataset("nyuv2-zip", root=authors_zip.parent, split="train", train_set="labeled795")
    assert isinstance(dataset, nyu.NYUv2Zip) and dataset.csv == "train795/train.csv" and len(dataset) == 2
    for n in range(2):
        item = dataset[n]
        assert set(item) == {"image", "depth", "mask", "index"} and item["index"] == n
        expected_rgb = torch.from_numpy(zframes.rgb[n].transpose(2, 0, 1).astype(np.float32) / 255)
        torch.testing.assert_close(item["image"], expected_rgb, rtol=0, atol=0)
        metres = (zframes.depth16[n].astype(np.float64) / 65535 * 10).astype(np.float32)
        torch.testing.assert_close(item["depth"][0], torch.from_numpy(metres), rtol=0, atol=0)
        assert torch.equal(item["mask"][0], torch.from_numpy(zframes.depth16[n] > 0))
        assert not item["mask"][0, 0, 1] and item["depth"][0, 0, 1] == 0
    assert float(dataset[0]["depth"].max()) <= 10.0
    scaled = nyu.NYUv2Zip(zip_path=authors_zip, train_set="labeled795", depth_scale=0.001)
    assert scaled[0]["depth"][0, 2, 3] == pytest.approx(zframes.depth16[0][2, 3] * 0.001)


def test_densedepth_layout(tmp_path: Path, zframes: ZipFrames) -> None:
    depth8 = (zframes.depth16[0] >> 8).astype(np.uint8)
    depth_mm = np.minimum(zframes.depth16[1], 10000)
    members = {
        "data/nyu2_train.csv": b"data/nyu2_train/kitchen_0001_out/1.jpg,data/nyu2_train/kitchen_0001_out/1.png\n",
        "data/nyu2_train/kitchen_0001_out/1.jpg": jpg_bytes(zframes.rgb[0]),
        "data/nyu2_train/kitchen_0001_out/1.png": png_bytes(depth8),
        "data/nyu2_test.csv": b"data/nyu2_test/00000_colors.png,data/nyu2_test/00000_depth.png\n",
        "data/nyu2_test/00000_colors.png": png_bytes(zframes.rgb[1]),
        "data/nyu2_test/00000_depth.png": png_bytes(depth_mm),
    }
    write_zip(tmp_path / "nyu_data.zip", members)
    train = make_dataset("nyuv2-zip", root=tmp_path, split="train")
    item = train[0]
    decoded = np.asarray(Image.open(io.BytesIO(members["data/nyu2_train/kitchen_0001_out/1.jpg"])).convert("RGB"))
    torch.testing.assert_close(item["image"], torch.from_numpy(decoded.transpose(2, 0, 1) / 255.0).float())
    expected8 = (depth8.astype(np.float64) / 255 * 10).astype(np.float32)  # 8-bit maps: v / 255 · 10 m
    torch.testing.assert_close(item["depth"][0], torch.from_numpy(expected8), rtol=0, atol=0)
    test = nyu.NYUv2Zip(tmp_path, split="test")
    assert test.csv == "data/nyu2_test.csv" and test.depth_scale == 0.001  # DenseDepth's test maps are in mm
    expected_mm = (depth_mm.astype(np.float64) * 0.001).astype(np.float32)
    torch.testing.assert_close(test[0]["depth"][0], torch.from_numpy(expected_mm), rtol=0, atol=0)


def test_csv_paths_relative_to_csv_folder_and_zip_in_workers(tmp_path: Path, zframes: ZipFrames) -> None:
    members = {"test654/test.csv": b"rgb/0.png,depth/0.png\n\nrgb/1.png,depth/1.png\n"}
    for n in range(2):
        members[f"test654/rgb/{n}.png"] = png_bytes(zframes.rgb[n])
        members[f"test654/depth/{n}.png"] = png_bytes(zframes.depth16[n])
    write_zip(tmp_path / "test654.zip", members)
    dataset = nyu.NYUv2Zip(tmp_path, split="test")
    assert dataset.pairs[1] == ("test654/rgb/1.png", "test654/depth/1.png")
    dataset[0]
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone._handle is None
    batches = list(DataLoader(dataset, batch_size=1, num_workers=2))
    assert [int(batch["index"]) for batch in batches] == [0, 1]
    torch.testing.assert_close(batches[1]["depth"][0], dataset[1]["depth"], rtol=0, atol=0)


# ---------------------------------------------------------------------------------------- zip errors
def test_zip_missing_member(tmp_path: Path, zframes: ZipFrames) -> None:
    members = {
        "data/nyu2_train.csv": (
            b"data/nyu2_train/a.jpg,data/nyu2_train/a.png\ndata/nyu2_train/x.jpg,data/nyu2_train/x.png\n"
        ),
        "data/nyu2_train/a.jpg": jpg_bytes(zframes.rgb[0]),
        "data/nyu2_train/a.png": png_bytes(zframes.depth16[0]),
        "data/nyu2_train/x.jpg": jpg_bytes(zframes.rgb[0]),
    }
    write_zip(tmp_path / "nyu_data.zip", members)
    with pytest.raises(DataError, match=r"zip member data/nyu2_train/x\.png listed in data/nyu2_train\.csv is missing"):
        nyu.NYUv2Zip(tmp_path)


def test_zip_file_errors(tmp_path: Path, authors_zip: Path) -> None:
    with pytest.raises(DataError, match=r"no NYUv2 zip for split 'test' in .*; expected one of test654.zip, nyu_data"):
        nyu.NYUv2Zip(tmp_path, split="test")
    with pytest.raises(DataError, match="NYUv2 zip not found"):
        nyu.NYUv2Zip(zip_path=tmp_path / "absent.zip")
    with pytest.raises(DataError, match="needs root="):
        nyu.NYUv2Zip()
    with pytest.raises(DataError, match="unknown NYUv2 zip split 'all'"):
        nyu.NYUv2Zip(tmp_path, split="all")
    with pytest.raises(DataError, match="depth_scale must be a positive number"):
        nyu.NYUv2Zip(zip_path=authors_zip, depth_scale=-1.0)
    with pytest.raises(DataError, match=r"CSV other.csv is not in .*; CSVs there: train795/train.csv"):
        nyu.NYUv2Zip(zip_path=authors_zip, csv="other.csv")
    write_zip(tmp_path / "two.zip", {"a.csv": b"", "b.csv": b""})
    with pytest.raises(
        DataError, match=r"no test CSV in .*two.zip: expected one of test654/test.csv.*CSVs there: a.csv"
    ):
        nyu.NYUv2Zip(zip_path=tmp_path / "two.zip", split="test")
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(authors_zip.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cannot open .*truncated.zip as a zip file"):
        nyu.NYUv2Zip(zip_path=truncated)


@pytest.mark.parametrize(
    ("csv_text", "rgb", "depth", "message"),
    [
        (b"a.png\n", None, None, r"t.csv line 1 in .*: expected 'rgb_path,depth_path', got 'a.png'"),
        (b"", None, None, "t.csv in .* lists no image pairs"),
        (b"a.png,d.png\n", b"\x89PNG\r\n\x1a\n garbage", "ok", "cannot decode image a.png in"),
        (
            b"a.png,d.png\n",
            "ok",
            "rgb",
            r"expected a single-channel 8- or 16-bit PNG depth map in d.png .*got mode RGB",
        ),
        (b"a.png,d.png\n", "ok", "small", r"image \(3, 6, 8\) and depth \(6, 7\) do not match"),
    ],
)
def test_zip_content_errors(
    tmp_path: Path, zframes: ZipFrames, csv_text: bytes, rgb: object, depth: object, message: str
) -> None:
    members = {"t.csv": csv_text}
    members["a.png"] = rgb if isinstance(rgb, bytes) else png_bytes(zframes.rgb[0])
    members["d.png"] = {
        "rgb": png_bytes(zframes.rgb[0]),
        "small": png_bytes(zframes.depth16[0][:, :7].copy()),
    }.get(str(depth), png_bytes(zframes.depth16[0]))
    write_zip(tmp_path / "t.zip", members)
    with pytest.raises(DataError, match=message):
        nyu.NYUv2Zip(zip_path=tmp_path / "t.zip", csv="t.csv")[0]


# ------------------------------------------------------------------------------- training sets, provenance
def authors_sequences_zip(path: Path, zframes: ZipFrames, csv_root: str = "train_reduced05") -> Path:
    """The authors' sequence zip: ``train_reduced05/train.csv`` (train.py's commented-out default), 16-bit depth."""
    members = {
        f"{csv_root}/train.csv": (
            f"{csv_root}/bedroom_0001/rgb_00000.jpg,{csv_root}/bedroom_0001/depth_00000.png\n"
            f"{csv_root}/bedroom_0001/rgb_00005.jpg,{csv_root}/bedroom_0001/depth_00005.png\n"
        ).encode()
    }
    for n, frame in enumerate(("00000", "00005")):
        members[f"{csv_root}/bedroom_0001/rgb_{frame}.jpg"] = jpg_bytes(zframes.rgb[n])
        members[f"{csv_root}/bedroom_0001/depth_{frame}.png"] = png_bytes(zframes.depth16[n])
    write_zip(path, members)
    return path


def test_train_reads_the_sequences_by_default(authors_zip: Path, zframes: ZipFrames) -> None:
    root = authors_zip.parent
    sequences = authors_sequences_zip(root / "train_reduced05.zip", zframes)
    dataset = make_dataset("nyuv2-zip", root=root, split="train")  # train795.zip is there too: not taken
    assert isinstance(dataset, nyu.NYUv2Zip)
    assert (dataset.zip_path, dataset.csv, dataset.train_set) == (sequences, "train_reduced05/train.csv", "sequences")
    labeled = make_dataset("nyuv2-zip", root=root, split="train", train_set="labeled795")
    assert labeled.zip_path == authors_zip and labeled.csv == "train795/train.csv"  # type: ignore[attr-defined]
    # The test split ignores train_set (a spec's dataset_options are shared by the splits).
    with pytest.raises(DataError, match="no NYUv2 zip for split 'test'"):
        nyu.NYUv2Zip(root, split="test", train_set="labeled795")


def test_only_the_795_frames_is_an_error_naming_the_option(authors_zip: Path) -> None:
    with pytest.raises(DataError, match=r'holds only train795\.zip.*set train_set = "labeled795"'):
        make_dataset("nyuv2-zip", root=authors_zip.parent, split="train")
    with pytest.raises(DataError, match=r'holds train795/train\.csv .*set train_set = "labeled795"'):
        nyu.NYUv2Zip(zip_path=authors_zip)
    with pytest.raises(DataError, match=r"is the labeled795 training set, but train_set is .sequences."):
        nyu.NYUv2Zip(zip_path=authors_zip, csv="train795/train.csv")
    with pytest.raises(DataError, match=r"unknown NYUv2 train_set 'all'; valid: sequences, labeled795"):
        nyu.NYUv2Zip(zip_path=authors_zip, train_set="all")


def test_sequence_zip_names_and_densedepth_fallback(tmp_path: Path, zframes: ZipFrames) -> None:
    # The authors' README labels the download "train7_reduced05.zip"; the zip holds train_reduced05/train.csv.
    authors_sequences_zip(tmp_path / "train7_reduced05.zip", zframes)
    assert nyu.NYUv2Zip(tmp_path).zip_path.name == "train7_reduced05.zip"
    other = tmp_path / "dense"
    other.mkdir()
    write_zip(
        other / "nyu_data.zip",
        {
            "data/nyu2_train.csv": b"data/nyu2_train/a/1.jpg,data/nyu2_train/a/1.png\n",
            "data/nyu2_train/a/1.jpg": jpg_bytes(zframes.rgb[0]),
            "data/nyu2_train/a/1.png": png_bytes((zframes.depth16[0] >> 8).astype(np.uint8)),
        },
    )
    write_zip(other / "train795.zip", {"train795/train.csv": b""})
    assert nyu.NYUv2Zip(other).zip_path.name == "nyu_data.zip"  # DenseDepth's sequences before the 795 frames


def entries_hash(path: Path) -> str:
    """The documented fingerprint, computed independently: sha256 of sorted 'name\\tcrc32\\tsize\\n' lines."""
    import hashlib

    with zipfile.ZipFile(path) as archive:
        lines = sorted(f"{i.filename}\t{i.CRC:08x}\t{i.file_size}\n" for i in archive.infolist())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def test_zip_sources_record_name_size_items_and_hash(tmp_path: Path, zframes: ZipFrames) -> None:
    from mlrd_core.data.provenance import dataset_sources

    path = authors_sequences_zip(tmp_path / "train_reduced05.zip", zframes)
    dataset = make_dataset("nyuv2-zip", root=tmp_path, size=(4, 4), augment=True)  # wrapped: still reported
    (source,) = dataset_sources(dataset)
    assert source == {
        "name": "train_reduced05.zip",
        "path": str(path.resolve()),
        "kind": "zip",
        "bytes": path.stat().st_size,
        "items": 2,
        "hash": entries_hash(path),
        "hash_kind": "zip-entries-sha256",
        "settings": {
            "split": "train",
            "csv": "train_reduced05/train.csv",
            "depth_scale": None,
            "train_set": "sequences",
        },
    }
    # The same members stored with another compression: same content, same hash; one changed member: another.
    with zipfile.ZipFile(path) as archive, zipfile.ZipFile(tmp_path / "copy.zip", "w", zipfile.ZIP_DEFLATED) as out:
        for info in archive.infolist():
            out.writestr(info.filename, archive.read(info.filename))
    assert nyu.NYUv2Zip(zip_path=tmp_path / "copy.zip").sources[0]["hash"] == source["hash"]
    authors_sequences_zip(tmp_path / "changed.zip", ZipFrames())
    with zipfile.ZipFile(tmp_path / "changed.zip", "a") as archive:
        archive.writestr("train_reduced05/extra.txt", b"x")
    assert nyu.NYUv2Zip(zip_path=tmp_path / "changed.zip").sources[0]["hash"] != source["hash"]


def test_labeled_sources_record_both_files(nyu_root: Path) -> None:
    import hashlib

    dataset = nyu.NYUv2Labeled(nyu_root, split="test", depth="raw")
    mat, splits = dataset.sources
    assert (mat["name"], mat["kind"], mat["items"], mat["hash_kind"]) == (nyu.LABELED_FILE, "file", 2, "sha256")
    assert mat["bytes"] == (nyu_root / nyu.LABELED_FILE).stat().st_size
    assert mat["hash"] == hashlib.sha256((nyu_root / nyu.LABELED_FILE).read_bytes()).hexdigest()
    assert mat["settings"] == {"split": "test", "depth": "raw"}
    assert splits["name"] == nyu.SPLITS_FILE and splits["items"] == 2
    assert [s["name"] for s in nyu.NYUv2Labeled(nyu_root, split="all").sources] == [nyu.LABELED_FILE]


def test_large_files_hash_head_tail_and_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from mlrd_core.data import provenance

    monkeypatch.setattr(provenance, "WHOLE_FILE_LIMIT", 10)
    monkeypatch.setattr(provenance, "HEAD_TAIL_BYTES", 4)
    path = tmp_path / "big.bin"
    path.write_bytes(b"0123456789abcdef")
    record = provenance.file_source(path, 1)
    assert record["hash_kind"] == "head-tail-sha256"
    assert record["hash"] == hashlib.sha256(b"16\n0123cdef").hexdigest()


def test_a_run_records_the_files_it_read(tmp_path: Path, zframes: ZipFrames) -> None:
    from tiny_spec import TINY_CONFIG

    from mlrd_core.trainer import fit

    train = authors_sequences_zip(tmp_path / "train_reduced05.zip", zframes)
    members = {"test654/test.csv": b"test654/0.png,test654/0d.png\n"}
    members["test654/0.png"] = png_bytes(zframes.rgb[0])
    members["test654/0d.png"] = png_bytes(zframes.depth16[0])
    write_zip(tmp_path / "test654.zip", members)
    config = TINY_CONFIG.replace(
        dataset="nyuv2-zip",
        dataset_options={"root": str(tmp_path)},
        val_split=None,
        protocol="nyu-lee-kim",
        epochs=1,
        batch_size=2,
        periods_per_epoch=1,
    )
    result = fit(config, seed=0)
    recorded = result.environment["data_sources"]
    assert set(recorded) == {"train", "test"}
    assert [(s["name"], s["items"], s["hash"]) for s in recorded["train"]] == [
        ("train_reduced05.zip", 2, entries_hash(train))
    ]
    assert recorded["test"][0]["name"] == "test654.zip" and recorded["test"][0]["bytes"] > 0
    assert "data_sources" not in fit(TINY_CONFIG.replace(epochs=1, val_split=None), seed=0).environment  # generated
