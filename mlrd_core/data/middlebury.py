"""Middlebury stereo scenes as metric RGB-D (registered as ``"middlebury"``): the 2014 "Motorcycle" pair shipped with
scikit-image (no files needed), or the benchmark's own files with ``root=``.

**From files** (``make_dataset("middlebury", root=...)``): ``root`` is one scene folder of the 2014 (or 2021)
dataset, or a folder of them (e.g. ``Motorcycle-perfect/``, ``Piano-perfect/``), each holding

- ``im0.png``: the left view, RGB;
- ``disp0.pfm``: its ground-truth disparity in pixels, a PFM file: the line ``Pf`` (one channel), the line
  ``<width> <height>``, a scale line whose sign gives the byte order (negative: little-endian, as Middlebury writes
  it), then float32 rows from the **bottom** row up; ``inf`` marks unknown disparity;
- ``calib.txt``: ``cam0=[f 0 cx; 0 f cy; 0 0 1]``, ``doffs``, ``baseline`` (mm), ``width``, ``height``, ...

Depth is ``baseline · f / (d + doffs)`` in millimetres, stored in metres (:func:`disparity_to_depth`), items at the
files' full resolution, scenes sorted by folder name. ``disparity_file`` picks another disparity (``disp0GT.pfm``
of the MiddEval3 training set).

**The scikit-image sample** (no ``root``):

``skimage.data.stereo_motorcycle()`` returns the left and right images (500x741 RGB, uint8) and the left view's
ground-truth disparity (float32, pixels), all downsampled by 4 from the benchmark's full resolution. Depth follows
from the calibration given in its docstring, which is the benchmark's ``calib.txt`` of the full-size scene
(``cam0 = [3979.911 0 1244.772; 0 3979.911 1019.507; 0 0 1]``, ``doffs = 124.343``, ``baseline = 193.001``)
divided by 4 (the baseline is a length and does not change)::

    depth_mm = baseline · f / (disparity + doffs),   f = 994.978 px, baseline = 193.001 mm, doffs = 31.086 px

(``doffs`` is the x-difference of the two principal points, which the disparity map does not include.) The
result is converted to metres: valid depths span about 2.11 to 5.02 m, median 2.75 m. Pixels without ground
truth are **infinite** in the array scikit-image ships (7.3 % of them; its docstring says NaN, so both are
treated as invalid): their ``depth`` is 0 and ``mask`` False.

This is a single real image: a qualitative demo and a real-data sanity check for evaluation code, not a
benchmark. Its splits are ``"test"`` (default) and ``"val"``, both the same single item; ``"train"`` is rejected
so that a spec cannot train and evaluate on the same image by accident.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mlrd_core.data import register_dataset
from mlrd_core.data.nyuv2 import decode_image, image_chw
from mlrd_core.data.provenance import Source, folder_source
from mlrd_core.errors import DataError

__all__ = [
    "BASELINE_MM",
    "DOFFS_PX",
    "FOCAL_PX",
    "PRINCIPAL_POINT_PX",
    "SPLITS",
    "MiddleburyFiles",
    "MiddleburyMotorcycle",
    "build_middlebury",
    "disparity_to_depth",
    "read_calib",
    "read_pfm",
]

#: Calibration of scikit-image's 4x-downsampled Motorcycle pair (``skimage.data.stereo_motorcycle`` docstring;
#: the Middlebury 2014 ``calib.txt`` values divided by 4).
FOCAL_PX = 994.978
PRINCIPAL_POINT_PX = (311.193, 254.877)  # (cx, cy)
DOFFS_PX = 31.086
BASELINE_MM = 193.001

#: Valid splits; both hold the same single item.
SPLITS: tuple[str, ...] = ("test", "val")


def disparity_to_depth(
    disparity: np.ndarray,
    *,
    focal_px: float = FOCAL_PX,
    baseline_mm: float = BASELINE_MM,
    doffs_px: float = DOFFS_PX,
) -> tuple[np.ndarray, np.ndarray]:
    """Metric depth from a Middlebury disparity map: ``baseline · f / (d + doffs)``, millimetres to metres.

    Returns ``(depth, mask)``: float32 depth in metres with 0 where the disparity is not finite (or would give a
    non-positive denominator), and the boolean mask of valid pixels. Computed in float64, then rounded once.
    """
    disp = np.asarray(disparity, dtype=np.float64)
    denom = disp + doffs_px
    mask = np.isfinite(disp) & (denom > 0)
    depth = np.zeros(disp.shape, dtype=np.float64)
    depth[mask] = baseline_mm * focal_px / denom[mask] / 1000.0
    return depth.astype(np.float32), mask


@functools.lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image ``[3, H, W]`` float32 in [0, 1], depth ``[H, W]`` float32 metres, mask ``[H, W]`` bool), cached."""
    try:
        from skimage.data import stereo_motorcycle
    except ImportError as exc:  # pragma: no cover - scikit-image is a dependency
        raise DataError("the 'middlebury' dataset needs scikit-image (pip install scikit-image)") from exc
    left, _right, disparity = stereo_motorcycle()
    if left.ndim != 3 or left.shape[2] != 3 or disparity.shape != left.shape[:2]:
        raise DataError(
            f"unexpected skimage stereo_motorcycle layout: image {left.shape}, disparity {disparity.shape}; "
            "expected (H, W, 3) and (H, W)"
        )
    image = np.ascontiguousarray(left.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
    depth, mask = disparity_to_depth(disparity)
    for array in (image, depth, mask):
        array.setflags(write=False)
    return image, depth, mask


class MiddleburyMotorcycle(Dataset):
    """One item: the left Motorcycle image with metric depth from its ground-truth disparity (see module doc)."""

    def __init__(self, split: str = "test") -> None:
        if split not in SPLITS:
            hint = (
                "; it is a single real image meant for evaluation and demos, so it has no training split"
                if split == "train"
                else ""
            )
            raise DataError(f"unknown split {split!r} for 'middlebury'; valid splits: {', '.join(SPLITS)}{hint}")
        self.split = split

    @property
    def intrinsics(self) -> np.ndarray:
        """Camera matrix ``K`` (3x3, float64) of the left view."""
        cx, cy = PRINCIPAL_POINT_PX
        return np.array([[FOCAL_PX, 0.0, cx], [0.0, FOCAL_PX, cy], [0.0, 0.0, 1.0]])

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index not in (0, -1):
            raise IndexError(f"index {index} out of range for 'middlebury' (one item)")
        image, depth, mask = _load()
        return {
            "image": torch.from_numpy(image.copy()),
            "depth": torch.from_numpy(depth.copy())[None],
            "mask": torch.from_numpy(mask.copy())[None],
            "index": 0,
        }

    def __repr__(self) -> str:
        return f"MiddleburyMotorcycle(split={self.split!r})"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        hint = "; it is meant for evaluation and demos, so it has no training split" if split == "train" else ""
        raise DataError(f"unknown split {split!r} for 'middlebury'; valid splits: {', '.join(SPLITS)}{hint}")


def read_pfm(path: Path) -> np.ndarray:
    """A one-channel PFM (``Pf``) as a float32 ``[H, W]`` array, top row first.

    PFM: ``Pf`` (``PF`` is three-channel), ``<width> <height>``, a scale whose sign is the byte order (negative:
    little-endian), then ``height`` rows of ``width`` float32 from the bottom row up.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"cannot read disparity file {path}: {error}") from error
    header = re.match(rb"(P[Ff])\s+(\d+)\s+(\d+)\s+([-+0-9.eE]+)\s", data)
    if header is None:
        raise DataError(f"{path} is not a PFM file: expected the header 'Pf', '<width> <height>', '<scale>'")
    kind, width, height, scale = header[1], int(header[2]), int(header[3]), float(header[4])
    if kind != b"Pf":
        raise DataError(f"{path} is a three-channel PFM ('PF'); expected a one-channel disparity map ('Pf')")
    if scale == 0:
        raise DataError(f"{path}: the PFM scale is 0; its sign must give the byte order (negative: little-endian)")
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    body = data[header.end() :]
    if len(body) < width * height * 4:
        raise DataError(
            f"{path} is truncated: {width}x{height} float32 need {width * height * 4} bytes, found {len(body)}"
        )
    rows = np.frombuffer(body, dtype=dtype, count=width * height).reshape(height, width)
    return np.ascontiguousarray(rows[::-1]).astype(np.float32)  # stored bottom-up


def read_calib(path: Path) -> dict[str, Any]:
    """``calib.txt`` as a dict: ``cam0`` / ``cam1`` as 3×3 arrays, the other keys as numbers."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise DataError(f"cannot read calibration file {path}: {error}") from error
    calib: dict[str, Any] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise DataError(f"{path} line {number}: expected 'key=value', got {line!r}")
        key, value = key.strip(), value.strip()
        try:
            if value.startswith("["):
                rows = [row.split() for row in value.strip("[]").split(";")]
                calib[key] = np.array(rows, dtype=np.float64)
            else:
                calib[key] = float(value)
        except ValueError as error:
            raise DataError(f"{path} line {number}: cannot read {key} = {value!r} as numbers") from error
    for key in ("cam0", "doffs", "baseline"):
        if key not in calib:
            raise DataError(f"{path} has no {key}= line; expected Middlebury's calib.txt (cam0, doffs, baseline, ...)")
    if calib["cam0"].shape != (3, 3):
        raise DataError(f"{path}: cam0 must be a 3x3 matrix [f 0 cx; 0 f cy; 0 0 1], got shape {calib['cam0'].shape}")
    return calib


class MiddleburyFiles(Dataset):
    """Middlebury scenes read from the benchmark's files (``im0.png``, ``disp0.pfm``, ``calib.txt``).

    Args:
        root: one scene folder, or a folder of scene folders.
        split: ``test`` (default) or ``val``: both all the scenes found (no training split, as the sample).
        disparity_file: the disparity map's name in each scene (``disp0.pfm``; ``disp0GT.pfm`` for MiddEval3).
    """

    FILES = ("im0.png", "calib.txt")

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        split: str = "test",
        disparity_file: str = "disp0.pfm",
    ) -> None:
        _check_split(split)
        self.root = Path(root)
        self.split = split
        self.disparity_file = disparity_file
        needed = (*self.FILES, disparity_file)
        if not self.root.is_dir():
            raise DataError(f"Middlebury folder {self.root} does not exist")
        if all((self.root / name).is_file() for name in needed):
            self.scenes = [self.root]
        else:
            self.scenes = sorted(p for p in self.root.iterdir() if p.is_dir() and (p / "im0.png").is_file())
        if not self.scenes:
            raise DataError(
                f"no Middlebury scene in {self.root}: expected a folder with {', '.join(needed)}, or folders of them"
            )
        for scene in self.scenes:
            missing = [name for name in needed if not (scene / name).is_file()]
            if missing:
                raise DataError(f"Middlebury scene {scene} lacks {', '.join(missing)}")
        self.names = [scene.name for scene in self.scenes]
        self._sources: list[Source] | None = None

    def __len__(self) -> int:
        return len(self.scenes)

    def intrinsics(self, index: int) -> np.ndarray:
        """``cam0`` of scene ``index`` (3×3, float64)."""
        return np.array(read_calib(self.scenes[index] / "calib.txt")["cam0"])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for 'middlebury' ({len(self)} scenes)")
        position = index % len(self)
        scene = self.scenes[position]
        calib = read_calib(scene / "calib.txt")
        disparity = read_pfm(scene / self.disparity_file)
        image = image_chw(decode_image(scene / "im0.png", where=str(scene / "im0.png")))
        if image.shape[1:] != disparity.shape:
            raise DataError(
                f"{scene}: im0.png is {image.shape[1]}x{image.shape[2]} but {self.disparity_file} is "
                f"{disparity.shape[0]}x{disparity.shape[1]} (H x W); they must match"
            )
        size = (calib.get("height"), calib.get("width"))
        if None not in size and size != disparity.shape:
            raise DataError(
                f"{scene / 'calib.txt'} says width={size[1]:g}, height={size[0]:g}, but the images are "
                f"{disparity.shape[1]}x{disparity.shape[0]} (W x H)"
            )
        depth, mask = disparity_to_depth(
            disparity, focal_px=float(calib["cam0"][0, 0]), baseline_mm=calib["baseline"], doffs_px=calib["doffs"]
        )
        return {
            "image": torch.from_numpy(image.astype(np.float32) / np.float32(255.0)),
            "depth": torch.from_numpy(depth)[None],
            "mask": torch.from_numpy(mask)[None],
            "index": position,
        }

    @property
    def sources(self) -> list[Source]:
        """The folder read (names and sizes of every scene's three files) and the disparity file's name."""
        if self._sources is None:
            files = [scene / name for scene in self.scenes for name in (*self.FILES, self.disparity_file)]
            settings = {"split": self.split, "disparity_file": self.disparity_file}
            self._sources = [folder_source(self.root, files, len(self), settings=settings)]
        return [dict(s) for s in self._sources]

    def __repr__(self) -> str:
        return f"MiddleburyFiles({str(self.root)!r}, split={self.split!r}, {len(self)} scenes)"


def _missing_files(*, split: str, root: str | os.PathLike[str] | None = None, **_: object) -> list[str]:
    """Existence check of the benchmark folder (see :func:`mlrd_core.data.missing_files`); without ``root`` the
    scikit-image sample is used."""
    return [] if root is None or Path(root).is_dir() else [f"Middlebury folder not found: {root} (option root)"]


@register_dataset("middlebury", splits=SPLITS, files=_missing_files)
def build_middlebury(
    *, split: str = "test", root: str | os.PathLike[str] | None = None, disparity_file: str = "disp0.pfm"
) -> MiddleburyMotorcycle | MiddleburyFiles:
    """Builder for ``make_dataset("middlebury", ...)``: the benchmark's files under ``root``
    (:class:`MiddleburyFiles`), else scikit-image's Motorcycle sample (:class:`MiddleburyMotorcycle`)."""
    if root is not None:
        return MiddleburyFiles(root, split=split, disparity_file=disparity_file)
    if disparity_file != "disp0.pfm":
        raise DataError("middlebury: disparity_file needs root= (a folder with the benchmark's files)")
    return MiddleburyMotorcycle(split)
