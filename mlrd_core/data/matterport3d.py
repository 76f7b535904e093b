"""Matterport3D (Chang et al., 3DV 2017): undistorted RGB-D frames of 90 buildings (``matterport3d``).

Layout of the public release (``download_mp.py --type undistorted_color_images undistorted_depth_images``), one
folder per building ("house")::

    root/v1/scans/<house>/undistorted_color_images/<uuid>_i<cam>_<yaw>.jpg      RGB, 1280×1024 (W×H)
    root/v1/scans/<house>/undistorted_depth_images/<uuid>_d<cam>_<yaw>.png      depth, uint16, 0.25 mm units
    root/scenes_train.txt, scenes_val.txt, scenes_test.txt                      houses per split, one a line

``<cam>`` (0-2) is one of the three cameras of the tripod head and ``<yaw>`` (0-5) one of its six headings; the
depth image of ``<uuid>_i<cam>_<yaw>.jpg`` is ``<uuid>_d<cam>_<yaw>.png``. The split lists are those of the
Matterport3D benchmark (``tasks/benchmark/scenes_*.txt`` of github.com/niessner/Matterport: 61 / 11 / 18 houses).

**Depth** in metres is ``v / 4000`` (the release's README: "depth images are 16-bit PNGs ... in 0.25 mm units");
``v = 0`` means no return: depth 0, mask False. Items keep their native size.

**Zips.** The download stores each house's images as ``v1/scans/<house>/undistorted_color_images.zip`` (and
``undistorted_depth_images.zip``) whose members are ``<house>/undistorted_color_images/<name>``. The loader reads
the extracted folders (``v1/scans/<house>/undistorted_color_images/``, or ``v1/scans/<house>/<house>/...`` when the
zips were unpacked in place), else the zips directly, one open handle per zip and process.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from mlrd_core.data import register_dataset
from mlrd_core.data.nyuv2 import decode_depth_png, decode_image, image_chw, item_position, make_item
from mlrd_core.data.provenance import Source, file_source, folder_source
from mlrd_core.errors import DataError

SPLITS = ("train", "val", "test", "all")
COLOR = "undistorted_color_images"
DEPTH = "undistorted_depth_images"
#: Metres per depth unit (0.25 mm).
DEPTH_SCALE = 1.0 / 4000.0
_COLOR_NAME = re.compile(r"^(?P<uuid>.+)_i(?P<cam>\d+)_(?P<yaw>\d+)\.jpg$", re.IGNORECASE)

Item = dict[str, Any]


def depth_name(color_name: str) -> str | None:
    """``<uuid>_d<cam>_<yaw>.png`` for ``<uuid>_i<cam>_<yaw>.jpg``; None for another name."""
    match = _COLOR_NAME.match(color_name)
    return f"{match['uuid']}_d{match['cam']}_{match['yaw']}.png" if match else None


def _scans_folder(root: Path) -> Path:
    for candidate in (root / "v1" / "scans", root / "scans"):
        if candidate.is_dir():
            return candidate
    raise DataError(f"no Matterport3D data in {root}: expected {root / 'v1' / 'scans'} with one folder per house")


def read_house_list(path: Path) -> list[str]:
    """House ids listed in a ``scenes_<split>.txt`` (one a line; blank lines and ``#`` comments skipped)."""
    if not path.is_file():
        raise DataError(
            f"Matterport3D split list not found: {path}; expected the benchmark's {path.name} "
            "(tasks/benchmark/ of github.com/niessner/Matterport) at the root"
        )
    houses = [line.strip() for line in path.read_text().splitlines()]
    houses = [house for house in houses if house and not house.startswith("#")]
    if not houses:
        raise DataError(f"{path} lists no houses")
    return houses


class _House:
    """Where one house's color and depth images are: two folders, or two zips (members under ``<house>/``)."""

    def __init__(self, folder: Path) -> None:
        self.name = folder.name
        self.folder = folder
        for base in (folder, folder / folder.name):
            if (base / COLOR).is_dir():
                if not (base / DEPTH).is_dir():
                    raise DataError(f"Matterport3D house {folder} has {COLOR}/ but no {DEPTH}/")
                self.zips: tuple[Path, Path] | None = None
                self.color_dir, self.depth_dir = base / COLOR, base / DEPTH
                self.colors = sorted(p.name for p in self.color_dir.iterdir() if depth_name(p.name))
                self.depths = {p.name for p in self.depth_dir.iterdir()}
                return
        color_zip, depth_zip = folder / f"{COLOR}.zip", folder / f"{DEPTH}.zip"
        if not (color_zip.is_file() and depth_zip.is_file()):
            raise DataError(
                f"Matterport3D house {folder} has neither {COLOR}/ and {DEPTH}/ folders nor {COLOR}.zip and {DEPTH}.zip"
            )
        self.zips = (color_zip, depth_zip)
        self.color_dir, self.depth_dir = Path(self.name) / COLOR, Path(self.name) / DEPTH  # member prefixes
        self.colors = sorted(name for name in self._members(color_zip, COLOR) if depth_name(name))
        self.depths = set(self._members(depth_zip, DEPTH))

    def _members(self, path: Path, kind: str) -> list[str]:
        prefix = f"{self.name}/{kind}/"
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as error:
            raise DataError(f"cannot open {path} as a zip file: {error} (truncated download?)") from error
        inside = [name[len(prefix) :] for name in names if name.startswith(prefix) and name != prefix]
        if not inside:
            raise DataError(f"{path} holds no members under {prefix}")
        return inside


class Matterport3D(Dataset):
    """Matterport3D undistorted RGB-D frames (``matterport3d``) at their native 1280×1024; see the module doc.

    Args:
        root: folder with ``v1/scans/<house>/`` and the benchmark's ``scenes_{train,val,test}.txt``.
        split: ``train``, ``val``, ``test`` (houses from ``scenes_<split>.txt``) or ``all`` (every house found).
        split_path: an explicit house list for ``split`` (default ``root/scenes_<split>.txt``).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        split: str = "train",
        split_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if root is None:
            raise DataError("matterport3d needs root= (the folder with v1/scans/ and scenes_*.txt)")
        if split not in SPLITS:
            raise DataError(f"unknown Matterport3D split {split!r}; valid splits: {', '.join(SPLITS)}")
        self.root = Path(root)
        self.scans = _scans_folder(self.root)
        self.split = split
        self.split_path: Path | None = None
        if split == "all":
            names = sorted(p.name for p in self.scans.iterdir() if p.is_dir())
        else:
            self.split_path = Path(split_path) if split_path is not None else self.root / f"scenes_{split}.txt"
            names = read_house_list(self.split_path)
            missing = [name for name in names if not (self.scans / name).is_dir()]
            if missing:
                shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                raise DataError(
                    f"{len(missing)} of the {len(names)} houses of {self.split_path} are not in {self.scans}: {shown}"
                )
        self.houses = [_House(self.scans / name) for name in names]
        self.items: list[tuple[int, str, str]] = []  # (house, color name, depth name)
        for number, house in enumerate(self.houses):
            unpaired = []
            for color in house.colors:
                depth = depth_name(color)
                assert depth is not None
                if depth not in house.depths:
                    unpaired.append(depth)
                self.items.append((number, color, depth))
            if unpaired:
                shown = ", ".join(unpaired[:5]) + (f" and {len(unpaired) - 5} more" if len(unpaired) > 5 else "")
                raise DataError(
                    f"{len(unpaired)} color images of house {house.name} have no depth image in "
                    f"{house.zips[1] if house.zips else house.depth_dir}: missing {shown}"
                )
        if not self.items:
            raise DataError(
                f"no Matterport3D color images (<uuid>_i<cam>_<yaw>.jpg) for split {split!r} in {self.scans}"
            )
        self._handles: dict[Path, zipfile.ZipFile] = {}
        self._handles_pid = -1
        self._sources: list[Source] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        state["_handles_pid"] = -1
        return state

    def _zip(self, path: Path) -> zipfile.ZipFile:
        if self._handles_pid != os.getpid():  # a forked worker opens its own handles
            self._handles, self._handles_pid = {}, os.getpid()
        if path not in self._handles:
            self._handles[path] = zipfile.ZipFile(path)
        return self._handles[path]

    def _read(self, house: _House, kind: int, name: str) -> tuple[bytes | Path, str]:
        """The bytes (zip) or path (folder) of a color (kind 0) or depth (kind 1) image, and where it is."""
        if house.zips is None:
            path = (house.color_dir, house.depth_dir)[kind] / name
            return path, str(path)
        archive_path = house.zips[kind]
        member = f"{house.name}/{(COLOR, DEPTH)[kind]}/{name}"
        try:
            return self._zip(archive_path).read(member), f"{member} in {archive_path}"
        except (zipfile.BadZipFile, OSError, EOFError, KeyError) as error:
            raise DataError(f"cannot read {member} of {archive_path}: {error}") from error

    def __getitem__(self, index: int) -> Item:
        position = item_position(index, len(self), "Matterport3D")
        number, color, depth = self.items[position]
        house = self.houses[number]
        color_source, color_where = self._read(house, 0, color)
        depth_source, depth_where = self._read(house, 1, depth)
        image = decode_image(color_source, where=color_where)
        data = depth_source.read_bytes() if isinstance(depth_source, Path) else depth_source
        values, bits = decode_depth_png(data, where=depth_where)
        if bits != 16:
            raise DataError(f"expected a 16-bit PNG depth map (0.25 mm units) in {depth_where}, got {bits}-bit")
        metres = values.astype(np.float64) * DEPTH_SCALE
        return make_item(image_chw(image), metres, position, where=f"{color_where} / {depth_where}")

    @property
    def sources(self) -> list[Source]:
        """The scans folder (names and sizes of the images or per-house zips read) and the split list."""
        if self._sources is None:
            files: list[Path] = []
            for number, house in enumerate(self.houses):
                if house.zips is not None:
                    files.extend(house.zips)
                else:
                    files.extend(
                        path
                        for n, color, depth in self.items
                        if n == number
                        for path in (house.color_dir / color, house.depth_dir / depth)
                    )
            settings = {"split": self.split, "houses": len(self.houses)}
            self._sources = [folder_source(self.scans, files, len(self), settings=settings)]
            if self.split_path is not None:
                self._sources.append(file_source(self.split_path, len(self)))
        return [dict(s) for s in self._sources]


def _missing_files(
    *, split: str, root: str | os.PathLike[str] | None = None, split_path: str | os.PathLike[str] | None = None
) -> list[str]:
    """Existence check of the folders and split list a split reads (see :func:`mlrd_core.data.missing_files`)."""
    if root is None:
        return []
    base = Path(root)
    if not base.is_dir():
        return [f"Matterport3D folder not found: {root} (option root)"]
    missing = []
    if not any(candidate.is_dir() for candidate in (base / "v1" / "scans", base / "scans")):
        missing.append(f"no Matterport3D data in {root}: expected {base / 'v1' / 'scans'} with one folder per house")
    if split != "all":
        listed = Path(split_path) if split_path is not None else base / f"scenes_{split}.txt"
        if not listed.is_file():
            missing.append(f"Matterport3D split list not found: {listed}")
    return missing


register_dataset("matterport3d", splits=SPLITS, needs=[("root",)], files=_missing_files)(Matterport3D)

__all__ = ["DEPTH_SCALE", "Matterport3D", "depth_name", "read_house_list"]
