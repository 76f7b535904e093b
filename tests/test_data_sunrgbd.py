"""Tests of the SUN RGB-D loader on a miniature of the public release.

Where the layout comes from (public descriptions, not our own writer):

- the release's tree, as ``SUNRGBD.zip`` unpacks (rgbd.cs.princeton.edu, and the paths listed in the toolbox's
  ``SUNRGBDMeta.mat``): ``SUNRGBD/<sensor>/.../<scene>/{image/<name>.jpg, depth/<name>.png,
  depth_bfx/<name>.png, intrinsics.txt}`` with scene folders at different depths per sensor
  (``kv1/NYUdata/NYU0001``, ``kv2/kinect2data/000002_2014-05-26_14-23-37_260595134347_rgbf000103-resize``,
  ``realsense/lg/2014_10_24-15_46_05-1311000073``, ``xtion/sun3ddata/mit_32_d507/d507_2/...``) and the sensors'
  image sizes differing;
- the depth encoding of the toolbox's ``read3dPoints.m``: ``bitor(bitshift(v, -3), bitshift(v, 16 - 3))`` on
  uint16, ``/ 1000``, ``(> 8) = 8``;
- ``SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat``: MATLAB v5 with ``alltrain`` / ``alltest`` cell arrays of
  absolute paths of the authors' machine (``/n/fs/sun3d/data/SUNRGBD/...``).

The images are tiny; the stored depth values are chosen by hand and decoded independently in the test.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from mlrd_core.data import make_dataset
from mlrd_core.data.sunrgbd import SUNRGBD, decode_sunrgbd_depth
from mlrd_core.errors import DataError

#: scene folder -> (H, W): the sensors' aspect ratios, scaled down.
SCENES = {
    "kv1/NYUdata/NYU0001": (6, 8),
    "kv2/kinect2data/000002_2014-05-26_14-23-37_260595134347_rgbf000103-resize": (5, 7),
    "realsense/lg/2014_10_24-15_46_05-1311000073": (5, 6),
    "xtion/sun3ddata/mit_32_d507/d507_2/d507_2_2014-09-07_17.26.34-b93cdb9d": (6, 8),
}
TRAIN = ("kv1/NYUdata/NYU0001", "xtion/sun3ddata/mit_32_d507/d507_2/d507_2_2014-09-07_17.26.34-b93cdb9d")
TEST = (
    "kv2/kinect2data/000002_2014-05-26_14-23-37_260595134347_rgbf000103-resize",
    "realsense/lg/2014_10_24-15_46_05-1311000073",
)


def rotate_left_3(millimetres: np.ndarray) -> np.ndarray:
    """How the release stores millimetres: the inverse of the toolbox's 3-bit circular right shift."""
    mm = millimetres.astype(np.uint32)
    return (((mm << 3) | (mm >> 13)) & 0xFFFF).astype(np.uint16)


def write_release(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The miniature; returns scene -> (rgb, raw millimetres, filled millimetres)."""
    truth = {}
    for number, (scene, (h, w)) in enumerate(SCENES.items()):
        folder = root / "SUNRGBD" / scene
        for sub in ("image", "depth", "depth_bfx"):
            (folder / sub).mkdir(parents=True)
        rng = np.random.default_rng(number)
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        filled = rng.integers(500, 7000, (h, w)).astype(np.uint16)
        filled[0, 0] = 9500  # beyond the toolbox's 8 m cap
        raw = filled.copy()
        raw[1, :3] = 0  # holes of the raw map
        name = scene.rsplit("/", 1)[-1][:12]
        Image.fromarray(rgb).save(folder / "image" / f"{name}.png")  # lossless, to compare pixels exactly
        Image.fromarray(rotate_left_3(raw)).save(folder / "depth" / f"{name}.png")
        Image.fromarray(rotate_left_3(filled)).save(folder / "depth_bfx" / f"{name}.png")
        (folder / "intrinsics.txt").write_text(f"{518.857 + number} 0 {w / 2}\n0 519.469 {h / 2}\n0 0 1\n")
        truth[scene] = (rgb, raw, filled)
    toolbox = root / "SUNRGBDtoolbox" / "traintestSUNRGBD"
    toolbox.mkdir(parents=True)

    def cells(scenes: tuple[str, ...]) -> np.ndarray:
        out = np.empty((1, len(scenes)), dtype=object)
        for i, scene in enumerate(scenes):
            out[0, i] = f"/n/fs/sun3d/data/SUNRGBD/{scene}"
        return out

    scipy.io.savemat(toolbox / "allsplit.mat", {"alltrain": cells(TRAIN), "alltest": cells(TEST)})
    return truth


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    return tmp_path, write_release(tmp_path)


def test_decode_is_the_toolbox_circular_shift() -> None:
    # Stored values and their toolbox reading, by hand: 0x2710 = 10000 -> (10000 >> 3) | (10000 << 13) & 0xFFFF.
    stored = np.array([[0x2710, 0x0001, 0x0000, 0xFFFF]], dtype=np.uint16)
    expected_mm = [(10000 >> 3) | ((10000 << 13) & 0xFFFF), 1 << 13, 0, 0xFFFF]
    assert expected_mm == [1250 | 0x0000, 8192, 0, 65535]
    metres = decode_sunrgbd_depth(stored, max_depth=None)
    assert metres.tolist() == [[pytest.approx(v / 1000) for v in expected_mm]]
    assert decode_sunrgbd_depth(stored).tolist() == [[1.25, 8.0, 0.0, 8.0]]  # the toolbox's 8 m cap


def test_splits_native_sizes_and_depth(release: tuple[Path, dict]) -> None:
    root, truth = release
    train = make_dataset("sunrgbd", root=root, split="train")
    assert isinstance(train, SUNRGBD) and train.scenes == sorted(TRAIN)
    test = make_dataset("sunrgbd", root=root, split="test")
    assert test.scenes == sorted(TEST)  # type: ignore[attr-defined]
    everything = SUNRGBD(root, split="all")
    assert everything.scenes == sorted(SCENES)
    for position, scene in enumerate(everything.scenes):
        rgb, raw, _ = truth[scene]
        item = everything[position]
        assert item["image"].shape == (3, *SCENES[scene]) and item["depth"].shape == (1, *SCENES[scene])
        torch.testing.assert_close(item["image"], torch.from_numpy(rgb.transpose(2, 0, 1) / 255.0).float())
        expected = np.minimum(raw / 1000.0, 8.0).astype(np.float32)
        torch.testing.assert_close(item["depth"][0], torch.from_numpy(expected), rtol=0, atol=0)
        assert torch.equal(item["mask"][0], torch.from_numpy(raw > 0))  # holes masked
        assert item["depth"][0, 0, 0] == 8.0  # 9.5 m capped as the toolbox does


def test_filled_depth_on_request_and_no_cap(release: tuple[Path, dict]) -> None:
    root, truth = release
    bfx = SUNRGBD(root, split="all", depth="bfx", max_depth=None)
    scene = bfx.scenes[0]
    filled = truth[scene][2]
    item = bfx[0]
    torch.testing.assert_close(item["depth"][0], torch.from_numpy((filled / 1000.0).astype(np.float32)))
    assert bool(item["mask"].all()) and item["depth"][0, 0, 0] == pytest.approx(9.5)


def test_intrinsics_and_sources(release: tuple[Path, dict]) -> None:
    root, _ = release
    dataset = SUNRGBD(root, split="train")
    k = dataset.intrinsics(0)
    assert k.shape == (3, 3) and k[0, 0] == pytest.approx(518.857) and k[2, 2] == 1.0
    folder, split_file = dataset.sources
    files = [p for i in range(len(dataset)) for p in dataset.files(i)]
    assert {p.parent.name for p in files} == {"image", "depth"}
    assert (
        folder["name"] == "SUNRGBD" and folder["items"] == 2 and folder["bytes"] == sum(p.stat().st_size for p in files)
    )
    lines = sorted(f"{p.relative_to(root / 'SUNRGBD').as_posix()}\t{p.stat().st_size}\n" for p in files)
    assert folder["hash"] == hashlib.sha256("".join(lines).encode()).hexdigest()
    assert folder["settings"] == {"split": "train", "depth": "raw", "max_depth": 8.0}
    assert split_file["name"] == "allsplit.mat" and split_file["hash_kind"] == "sha256"


def test_the_sunrgbd_folder_itself_as_root(release: tuple[Path, dict]) -> None:
    root, _ = release
    assert len(SUNRGBD(root / "SUNRGBD", split="all")) == 4
    assert SUNRGBD(root / "SUNRGBD", split="train").scenes == sorted(TRAIN)  # the toolbox beside it
    with pytest.raises(DataError, match=r"no SUN RGB-D data in .*kv1: expected .*holding kv1, kv2, realsense"):
        SUNRGBD(root / "SUNRGBD" / "kv1", split="train")
    (root / "SUNRGBDtoolbox" / "traintestSUNRGBD" / "allsplit.mat").unlink()
    with pytest.raises(DataError, match=r"SUN RGB-D split file not found: .*allsplit.mat.*or split='all'"):
        SUNRGBD(root, split="test")


def test_errors_name_the_problem_and_the_file(release: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = release
    with pytest.raises(DataError, match="unknown SUN RGB-D split 'val'; valid splits: train, test, all"):
        SUNRGBD(root, split="val")
    with pytest.raises(DataError, match="unknown SUN RGB-D depth 'filled'; valid: raw, bfx"):
        SUNRGBD(root, depth="filled")
    with pytest.raises(DataError, match="no SUN RGB-D data in"):
        SUNRGBD(tmp_path / "SUNRGBDtoolbox")
    scipy.io.savemat(tmp_path / "bad.mat", {"alltrain": np.array([[1.0]])})
    with pytest.raises(DataError, match=r"expected variable 'alltest' .* found: alltrain"):
        SUNRGBD(root, split="test", split_path=tmp_path / "bad.mat")
    cells = np.empty((1, 1), dtype=object)
    cells[0, 0] = "/n/fs/sun3d/data/SUNRGBD/kv1/NYUdata/NYU9999"
    scipy.io.savemat(tmp_path / "missing.mat", {"alltrain": cells})
    with pytest.raises(DataError, match=r"1 of the 1 train scenes of .*missing.mat are not in .*: kv1/NYUdata/NYU9999"):
        SUNRGBD(root, split="train", split_path=tmp_path / "missing.mat")
    depth = next((root / "SUNRGBD" / TRAIN[0] / "depth").iterdir())
    Image.fromarray(np.zeros((6, 8), dtype=np.uint8)).save(depth)
    with pytest.raises(DataError, match=r"expected a 16-bit PNG depth map .* in .*NYU0001.*depth.*, got 8-bit"):
        SUNRGBD(root, split="train")[0]
    depth.unlink()
    with pytest.raises(DataError, match=r"no raw depth \(\.png\) in .*NYU0001/depth"):
        SUNRGBD(root, split="train")[0]
