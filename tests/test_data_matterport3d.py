"""Tests of the Matterport3D loader on a miniature of the public release.

Where the layout comes from (public descriptions, not our own writer): the release's README (``data_organization``
in github.com/niessner/Matterport) describes ``v1/scans/<house>/undistorted_color_images/<uuid>_i<cam>_<yaw>.jpg``
and ``undistorted_depth_images/<uuid>_d<cam>_<yaw>.png`` (1280×1024, 16-bit PNG depth in 0.25 mm units, 0 = no
return); ``download_mp.py`` stores each house's images as ``v1/scans/<house>/<type>.zip`` with members
``<house>/<type>/<name>``; the benchmark's ``tasks/benchmark/scenes_{train,val,test}.txt`` list one house id a
line. House ids, uuids and the tiny image sizes are made up in that form.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from mlrd_core.data import make_dataset
from mlrd_core.data.matterport3d import Matterport3D, depth_name
from mlrd_core.errors import DataError

H, W = 8, 10  # 1024 x 1280 in the release, same 4:5 aspect
HOUSES = {"train": ["17DRP5sb8fy", "1LXtFkjw3qL"], "val": ["2azQ1b91cZZ"], "test": ["2t7WUuJeko7"]}
UUID = "0f37bd0737e349de9d536263a4bdd60d"


def png(array: np.ndarray) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(array).save(stream, "PNG")
    return stream.getvalue()


def frame(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = rng.integers(1, 40000, (H, W)).astype(np.uint16)  # up to 10 m in 0.25 mm units
    depth[2, 3] = 0  # no return
    return rgb, depth


def names(house: str) -> list[tuple[str, str]]:
    """Two frames per house: camera 0 heading 0 and camera 2 heading 5."""
    return [
        (f"{UUID[:-2]}{house[:2].lower()}_i{c}_{y}.jpg", f"{UUID[:-2]}{house[:2].lower()}_d{c}_{y}.png")
        for c, y in ((0, 0), (2, 5))
    ]


def write_release(root: Path, *, zipped: tuple[str, ...] = ()) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """The miniature: extracted folders, or per-house zips for the houses in ``zipped``."""
    truth = {}
    seed = 0
    root.mkdir(parents=True, exist_ok=True)
    for split, houses in HOUSES.items():
        (root / f"scenes_{split}.txt").write_text("".join(f"{house}\n" for house in houses))
        for house in houses:
            folder = root / "v1" / "scans" / house
            color_members, depth_members = {}, {}
            for color, depth in names(house):
                rgb, mm4 = frame(seed)
                seed += 1
                jpg = io.BytesIO()
                Image.fromarray(rgb).save(jpg, "JPEG", quality=95)
                color_members[color], depth_members[depth] = jpg.getvalue(), png(mm4)
                truth[(house, color)] = (np.asarray(Image.open(jpg).convert("RGB")), mm4)
            for kind, members in (
                ("undistorted_color_images", color_members),
                ("undistorted_depth_images", depth_members),
            ):
                if house in zipped:
                    folder.mkdir(parents=True, exist_ok=True)
                    with zipfile.ZipFile(folder / f"{kind}.zip", "w") as archive:
                        for name, data in members.items():
                            archive.writestr(f"{house}/{kind}/{name}", data)
                else:
                    (folder / kind).mkdir(parents=True)
                    for name, data in members.items():
                        (folder / kind / name).write_bytes(data)
    return truth


def test_depth_name_pairs_camera_and_heading() -> None:
    assert depth_name(f"{UUID}_i1_4.jpg") == f"{UUID}_d1_4.png"
    assert depth_name(f"{UUID}_d1_4.png") is None and depth_name("readme.txt") is None


def test_splits_items_and_units(tmp_path: Path) -> None:
    truth = write_release(tmp_path)
    train = make_dataset("matterport3d", root=tmp_path, split="train")
    assert isinstance(train, Matterport3D) and [h.name for h in train.houses] == HOUSES["train"] and len(train) == 4
    assert len(Matterport3D(tmp_path, split="val")) == 2 and len(Matterport3D(tmp_path, split="all")) == 8
    for position, (number, color, _) in enumerate(train.items):
        rgb, mm4 = truth[(train.houses[number].name, color)]
        item = train[position]
        assert item["image"].shape == (3, H, W) and item["depth"].shape == (1, H, W)
        torch.testing.assert_close(item["image"], torch.from_numpy(rgb.transpose(2, 0, 1) / 255.0).float())
        metres = (mm4.astype(np.float64) / 4000).astype(np.float32)
        torch.testing.assert_close(item["depth"][0], torch.from_numpy(metres), rtol=0, atol=0)
        assert not item["mask"][0, 2, 3] and int(item["mask"].sum()) == H * W - 1


def test_per_house_zips_read_like_the_folders(tmp_path: Path) -> None:
    folders, zips = tmp_path / "folders", tmp_path / "zips"
    write_release(folders)
    write_release(zips, zipped=("1LXtFkjw3qL",))
    a, b = Matterport3D(folders, split="train"), Matterport3D(zips, split="train")
    assert b.houses[1].zips is not None and b.houses[0].zips is None
    for i in range(len(a)):
        for key in ("image", "depth", "mask"):
            torch.testing.assert_close(a[i][key], b[i][key], rtol=0, atol=0)
    clone = pickle.loads(pickle.dumps(b))
    assert clone._handles == {}
    batches = list(DataLoader(b, batch_size=2, num_workers=2))
    torch.testing.assert_close(batches[1]["depth"][1], b[3]["depth"], rtol=0, atol=0)
    folder_source, split_source = b.sources
    assert folder_source["name"] == "scans" and folder_source["items"] == 4
    assert folder_source["settings"] == {"split": "train", "houses": 2}
    assert split_source["name"] == "scenes_train.txt"


def test_zips_unpacked_in_place(tmp_path: Path) -> None:
    """Unzipping <house>/<type>.zip inside v1/scans/<house>/ gives v1/scans/<house>/<house>/<type>/."""
    write_release(tmp_path, zipped=("2azQ1b91cZZ",))
    house = tmp_path / "v1" / "scans" / "2azQ1b91cZZ"
    for archive in house.glob("*.zip"):
        with zipfile.ZipFile(archive) as z:
            z.extractall(house)
        archive.unlink()
    assert len(Matterport3D(tmp_path, split="val")) == 2


def test_errors_name_the_problem_and_the_file(tmp_path: Path) -> None:
    write_release(tmp_path)
    with pytest.raises(DataError, match="unknown Matterport3D split 'dev'; valid splits: train, val, test, all"):
        Matterport3D(tmp_path, split="dev")
    with pytest.raises(DataError, match=r"no Matterport3D data in .*: expected .*v1/scans"):
        Matterport3D(tmp_path / "v1" / "scans")
    (tmp_path / "scenes_test.txt").write_text("2t7WUuJeko7\nzsNo4HB9uLZ\n")
    with pytest.raises(DataError, match=r"1 of the 2 houses of .*scenes_test.txt are not in .*scans: zsNo4HB9uLZ"):
        Matterport3D(tmp_path, split="test")
    (tmp_path / "scenes_val.txt").unlink()
    with pytest.raises(DataError, match=r"split list not found: .*scenes_val.txt"):
        Matterport3D(tmp_path, split="val")
    depth_dir = tmp_path / "v1" / "scans" / "17DRP5sb8fy" / "undistorted_depth_images"
    missing = sorted(depth_dir.iterdir())[0]
    missing.unlink()
    with pytest.raises(DataError, match=rf"1 color images of house 17DRP5sb8fy have no depth image .*{missing.name}"):
        Matterport3D(tmp_path, split="train")
    (depth_dir / missing.name).write_bytes(png(np.zeros((H, W), dtype=np.uint8)))
    with pytest.raises(DataError, match=r"expected a 16-bit PNG depth map \(0.25 mm units\) in .*, got 8-bit"):
        Matterport3D(tmp_path, split="train")[0]
