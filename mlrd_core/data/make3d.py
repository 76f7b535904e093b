"""Make3D (Saxena et al., TPAMI 2009): 400 training and 134 test outdoor photos with laser depth grids.

Layout after unpacking the official archives (http://make3d.cs.cornell.edu/data.html)::

    root/Train400Img/img-<name>.jpg                 Train400Img.tar.gz
    root/Train400Depth/depth_sph_corr-<name>.mat    Train400Depth.tgz
    root/Test134/img-<name>.jpg                     Test134.tar.gz
    root/Test134Depth/depth_sph_corr-<name>.mat     Test134Depth.tar.gz (unpacks as Gridlaserdata/; either
                                                    folder name is accepted)

Images are 1704×2272 portrait JPEGs (width × height). Each ``.mat`` is MATLAB v5 with ``Position3DGrid``,
55×305×4 (rows × columns × channel; the rows run along the image height): channels 1–3 are the laser points'
Y, X and projective Z, channel 4 the depth in metres (about 0–81 m). Images and grids pair by name.

**Working resolution.** The item contract needs image and depth of the same size, and the grid's 55×305 is
far from the photo's 4:3 aspect, so both are resized to ``resize_to`` (H, W), by default 460×345 — the
"345×460" used since Liu et al. (DCNF, TPAMI 2016) and Laina et al. (3DV 2016), a 1/4.94 scale of the photo
with its aspect ratio kept. The photo is decoded at a reduced JPEG scale and resized with Pillow's
(antialiased) bilinear filter. The depth grid is upsampled with pixel-centre nearest neighbour by default, so
every depth is a measured one: bilinear interpolation would blend the sky's 81.92 m (the laser's maximum) with
the ground below it into depths inside the < 70 m range of criterion C1. ``depth_interpolation="bilinear"``
interpolates instead, validity-aware (an output pixel whose four source samples are not all valid is unknown,
never a blend with a hole). ``resize_to=None`` keeps the photo at its native size and upsamples the grid to it.

**Truncated photos.** Test134 ships a JPEG that ends early; it is decoded as far as it goes (as public loaders
do with Pillow's truncated-image loading) with a warning that names it.

**Range.** Depths are returned as measured. The usual cap (the C1 error, depths < 70 m) belongs to the
evaluation protocol (``make3d-c1``), so C2 (all depths) remains computable. ``max_depth`` marks farther
pixels unknown at load time, for training on the capped range.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.io.matlab import MatReadError
from torch.utils.data import Dataset

from mlrd_core.data import OptionRule, register_dataset
from mlrd_core.data.nyuv2 import decode_image, image_chw, item_position, make_item, mat_variables
from mlrd_core.data.provenance import Source, folder_source
from mlrd_core.errors import DataError

#: Default working resolution (H, W): the photos' 2272×1704 (H×W) scaled by 1/4.94.
WORKING_SIZE = (460, 345)
#: The depth channel of ``Position3DGrid`` (MATLAB's ``(:, :, 4)``).
DEPTH_CHANNEL = 3
IMAGE_PREFIX = "img-"
DEPTH_PREFIX = "depth_sph_corr-"
#: Folder names per split: (image folders, depth folders), the first existing one is used.
FOLDERS = {
    "train": (("Train400Img",), ("Train400Depth",)),
    "test": (("Test134", "Test134Img"), ("Test134Depth", "Gridlaserdata")),
}
INTERPOLATIONS = ("nearest", "bilinear")


def load_depth_grid(path: Path) -> np.ndarray:
    """Depth channel (metres, float32) of the ``Position3DGrid`` in a Make3D ``depth_sph_corr-*.mat``."""
    try:
        content = scipy.io.loadmat(path, variable_names=["Position3DGrid"])
    except FileNotFoundError as error:
        raise DataError(f"Make3D depth file {path} is missing") from error
    except NotImplementedError as error:
        raise DataError(f"{path} is a MATLAB v7.3 (HDF5) file; expected the v5 .mat of Make3D") from error
    except (MatReadError, ValueError, TypeError, IndexError, OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read {path} as a MATLAB v5 .mat file: {error} (truncated or corrupt?)") from error
    if "Position3DGrid" not in content:
        raise DataError(f"expected variable 'Position3DGrid' (55×305×4) in {path}, found: {mat_variables(path)}")
    grid = content["Position3DGrid"]
    if grid.ndim != 3 or grid.shape[2] != 4 or grid.dtype.kind not in "fiu":
        raise DataError(
            f"expected 'Position3DGrid' of shape (rows, columns, 4), 55×305×4 in the official files, "
            f"in {path}, got {grid.shape} {grid.dtype}"
        )
    return np.asarray(grid[:, :, DEPTH_CHANNEL], dtype=np.float32)


def resize_depth(depth: np.ndarray, size: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """Resize an ``[h, w]`` depth map (0 = unknown) to ``size`` (H, W), never blending known with unknown.

    ``bilinear``: ``align_corners=False`` interpolation of the valid samples; an output pixel is unknown
    unless all its source samples are valid. ``nearest``: pixel-centre nearest neighbour ("nearest-exact").
    """
    tensor = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None, None]
    if mode == "nearest":
        return F.interpolate(tensor, size=size, mode="nearest-exact")[0, 0].numpy()
    valid = (tensor > 0).to(tensor.dtype)
    total = F.interpolate(tensor * valid, size=size, mode="bilinear", align_corners=False)
    weight = F.interpolate(valid, size=size, mode="bilinear", align_corners=False)
    complete = weight > 1.0 - 1e-4
    out = torch.where(complete, total / weight.clamp_min(1e-12), torch.zeros_like(total))
    return out[0, 0].numpy()


def _pair_key(name: str, prefix: str) -> str | None:
    """``<name>`` of ``<prefix><name>.<ext>``, or None when ``name`` does not follow the pattern."""
    stem = Path(name).stem
    return stem[len(prefix) :] if stem.startswith(prefix) else None


def _folder(
    explicit: str | os.PathLike[str] | None, root: str | os.PathLike[str] | None, names: tuple[str, ...], what: str
) -> Path:
    """``explicit`` if given, else the first of ``names`` that exists in ``root``."""
    if explicit is not None:
        return Path(explicit)
    if root is None:
        raise DataError(f"make3d needs root= (the folder with the unpacked archives) or {what}_dir=")
    for name in names:
        if (Path(root) / name).is_dir():
            return Path(root) / name
    raise DataError(f"no Make3D {what} folder in {root}; expected one of {', '.join(names)}")


class Make3D(Dataset):
    """Make3D photos and laser depth (``make3d``) at a common working resolution.

    Args:
        root: folder holding the unpacked archives (see the module docstring).
        split: ``train`` (Train400) or ``test`` (Test134).
        image_dir, depth_dir: explicit folders, overriding ``root``.
        resize_to: (H, W) of the items, default :data:`WORKING_SIZE` (460×345); None keeps the photo's size.
        depth_interpolation: ``nearest`` (default: measured depths only) or ``bilinear`` (validity-aware).
        max_depth: if given, depths beyond it (metres) are marked unknown; None (default) keeps them all.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        split: str = "train",
        image_dir: str | os.PathLike[str] | None = None,
        depth_dir: str | os.PathLike[str] | None = None,
        resize_to: tuple[int, int] | None = WORKING_SIZE,
        depth_interpolation: str = "nearest",
        max_depth: float | None = None,
    ) -> None:
        if split not in FOLDERS:
            raise DataError(f"unknown Make3D split {split!r}; valid splits: {', '.join(FOLDERS)}")
        if depth_interpolation not in INTERPOLATIONS:
            raise DataError(f"unknown depth_interpolation {depth_interpolation!r}; valid: {', '.join(INTERPOLATIONS)}")
        if resize_to is not None and (len(resize_to) != 2 or min(resize_to) < 1):
            raise DataError(f"resize_to must be (H, W) with positive sizes or None, got {resize_to}")
        if max_depth is not None and not max_depth > 0:
            raise DataError(f"max_depth must be a positive number of metres or None, got {max_depth}")
        image_names, depth_names = FOLDERS[split]
        self.image_dir = _folder(image_dir, root, image_names, "image")
        self.depth_dir = _folder(depth_dir, root, depth_names, "depth")
        self.split = split
        self.resize_to = tuple(resize_to) if resize_to is not None else None
        self.depth_interpolation = depth_interpolation
        self.max_depth = max_depth
        self.pairs = self._pair_files()
        self.names = [key for key, _, _ in self.pairs]
        self._sources: list[Source] | None = None

    @property
    def sources(self) -> list[Source]:
        """The photo and depth folders read (names and sizes of the paired files), with the loader's settings."""
        if self._sources is None:
            settings = {
                "split": self.split,
                "resize_to": list(self.resize_to) if self.resize_to is not None else None,
                "depth_interpolation": self.depth_interpolation,
                "max_depth": self.max_depth,
            }
            self._sources = [
                folder_source(self.image_dir, [image for _, image, _ in self.pairs], len(self), settings=settings),
                folder_source(self.depth_dir, [depth for _, _, depth in self.pairs], len(self)),
            ]
        return [dict(s) for s in self._sources]

    def _pair_files(self) -> list[tuple[str, Path, Path]]:
        """``(name, image, depth)`` for every image with its depth file, sorted by name; unpaired → error."""
        for folder in (self.image_dir, self.depth_dir):
            if not folder.is_dir():
                raise DataError(f"Make3D folder {folder} does not exist")
        images = {
            key: path
            for path in self.image_dir.iterdir()
            if path.suffix.lower() in (".jpg", ".jpeg") and (key := _pair_key(path.name, IMAGE_PREFIX)) is not None
        }
        depths = {
            key: path
            for path in self.depth_dir.iterdir()
            if path.suffix.lower() == ".mat" and (key := _pair_key(path.name, DEPTH_PREFIX)) is not None
        }
        if not images:
            raise DataError(f"no Make3D images ({IMAGE_PREFIX}<name>.jpg) in {self.image_dir}")
        for missing, have, folder, pattern in (
            (sorted(images.keys() - depths.keys()), "images", self.depth_dir, DEPTH_PREFIX + "{}.mat"),
            (sorted(depths.keys() - images.keys()), "depth files", self.image_dir, IMAGE_PREFIX + "{}.jpg"),
        ):
            if missing:
                shown = ", ".join(pattern.format(key) for key in missing[:5])
                more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                raise DataError(f"{len(missing)} Make3D {have} have no partner in {folder}: missing {shown}{more}")
        return [(key, images[key], depths[key]) for key in sorted(images)]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        position = item_position(index, len(self), "Make3D")
        _, image_path, depth_path = self.pairs[position]
        if self.resize_to is None:
            image = decode_image(image_path, where=str(image_path), allow_truncated=True)
        else:
            height, width = self.resize_to
            image = decode_image(image_path, where=str(image_path), draft=(width, height), allow_truncated=True)
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        depth = load_depth_grid(depth_path)
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(0.0))
        if self.max_depth is not None:
            depth = np.where(depth <= self.max_depth, depth, np.float32(0.0))
        depth = resize_depth(depth, (image.height, image.width), self.depth_interpolation)
        return make_item(image_chw(image), depth, position, where=f"{image_path} / {depth_path}")


def _missing_files(
    *,
    split: str,
    root: str | os.PathLike[str] | None = None,
    image_dir: str | os.PathLike[str] | None = None,
    depth_dir: str | os.PathLike[str] | None = None,
    **_: object,
) -> list[str]:
    """Existence check of the folders a split reads (see :func:`mlrd_core.data.missing_files`)."""
    if root is not None and (image_dir is None or depth_dir is None) and not Path(root).is_dir():
        return [f"Make3D folder not found: {root} (option root)"]
    missing = []
    image_names, depth_names = FOLDERS.get(split, ((), ()))
    for explicit, names, what in ((image_dir, image_names, "image"), (depth_dir, depth_names, "depth")):
        if explicit is not None:
            if not Path(explicit).is_dir():
                missing.append(f"Make3D {what} folder not found: {explicit} (option {what}_dir)")
        elif root is not None and not any((Path(root) / name).is_dir() for name in names):
            missing.append(f"no Make3D {what} folder for split {split!r} in {root}; expected one of {', '.join(names)}")
    return missing


register_dataset(
    "make3d",
    splits=tuple(FOLDERS),
    options={
        "resize_to": OptionRule(minimum=1),
        "depth_interpolation": OptionRule(choices=INTERPOLATIONS),
        "max_depth": OptionRule(positive=True),
    },
    needs=[("root", "image_dir"), ("root", "depth_dir")],
    files=_missing_files,
)(Make3D)
