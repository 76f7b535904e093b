"""NYU Depth v2: the official labeled ``.mat`` file (``nyuv2``) and the authors' CSV + PNG zip (``nyuv2-zip``).

``nyuv2`` reads ``nyu_depth_v2_labeled.mat`` (1449 aligned RGB-D frames, 480×640) with the official
``splits.mat`` (795 train / 654 test). The labeled file is MATLAB v7.3, i.e. HDF5 behind a 512-byte MATLAB
header, so it is read with h5py. MATLAB stores arrays column-major; h5py sees every dimension reversed:

========== ======================= ================================ =========================
variable   MATLAB (whos)           HDF5 / h5py                      content
========== ======================= ================================ =========================
images     480×640×3×1449 uint8    (1449, 3, 640, 480) = (N,3,W,H)  RGB
depths     480×640×1449 single     (1449, 640, 480) = (N, W, H)     filled depth, metres
rawDepths  480×640×1449 single     (1449, 640, 480) = (N, W, H)     raw depth, metres, 0 = none
========== ======================= ================================ =========================

so the pixel at row ``r``, column ``c`` of image ``n`` is ``images[n, :, c, r]``. ``splits.mat`` is a v5
file with ``trainNdxs`` (795×1) and ``testNdxs`` (654×1), double, **1-based** indices into the 1449 frames.

``nyuv2-zip`` reads the zips of the paper's authors (``train_reduced05.zip`` with ``train_reduced05/train.csv``,
frames of the training sequences; ``train795.zip`` with ``train795/train.csv``, the 795 labelled training frames;
``test654.zip`` with ``test654/test.csv``) and of DenseDepth (``nyu_data.zip`` with ``data/nyu2_train.csv``, frames
of the training sequences, and ``data/nyu2_test.csv``): each CSV row is ``rgb_member,depth_member``; RGB is JPG or
PNG, depth a PNG. The ``train`` split reads a sequence set by default, as the paper trains ("the sequences of the
training split", §4.2); the 795 labelled frames only with ``train_set="labeled795"``.
Depth in metres is ``value · depth_scale``. Unless the known layout says otherwise, the full range of the
PNG's bit depth is 10 m: ``v / 65535 · 10`` for 16-bit PNGs (the authors' code), ``v / 255 · 10`` for
8-bit ones (DenseDepth's training maps). DenseDepth's test maps are 16-bit **millimetres**, so
``data/nyu2_test.csv`` defaults to ``depth_scale = 0.001``.

Both datasets open their file lazily, once per process: they pickle without the handle, so DataLoader
workers (fork or spawn) each open their own.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import posixpath
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io
import torch
from PIL import Image, ImageFile
from scipy.io.matlab import MatReadError
from torch.utils.data import Dataset

from mlrd_core.atomic import atomic_path
from mlrd_core.data import OptionRule, register_dataset
from mlrd_core.data.colorization import fill_depth_colorization
from mlrd_core.data.provenance import Source, file_source, zip_source
from mlrd_core.errors import DataError

#: File names of the official release (https://cs.nyu.edu/~fergus/datasets/nyu_depth_v2.html).
LABELED_FILE = "nyu_depth_v2_labeled.mat"
SPLITS_FILE = "splits.mat"

#: Depth kinds of ``nyuv2``: the toolbox-filled maps, the raw Kinect maps, or raw maps filled at load time.
DEPTH_KINDS = ("filled", "raw", "raw-filled")
#: Splits of ``nyuv2``; ``all`` needs no splits file.
SPLITS = ("train", "test", "all")

#: Metres at the top of a depth PNG's range in the authors' convention (v / (2^bits - 1) · 10).
ZIP_MAX_DEPTH = 10.0

Item = dict[str, Any]


# --------------------------------------------------------------------------------------------------- helpers
def make_item(image: np.ndarray, depth: np.ndarray, index: int, *, where: str) -> Item:
    """Build the item dict of :mod:`mlrd_core.data` from a ``[3, H, W]`` uint8 image and an ``[H, W]`` depth.

    Non-finite and non-positive depths become 0 (unknown); ``mask`` is ``depth > 0``. ``where`` names the
    source in the error raised when the shapes differ.
    """
    if image.ndim != 3 or image.shape[0] != 3 or image.shape[1:] != depth.shape:
        raise DataError(
            f"{where}: image {image.shape} and depth {depth.shape} do not match; expected [3, H, W] and [H, W]"
        )
    depth = np.asarray(depth, dtype=np.float32)
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(0.0))
    depth_t = torch.from_numpy(np.ascontiguousarray(depth))[None]
    image_t = torch.from_numpy(np.ascontiguousarray(image)).to(torch.float32).div_(255.0)
    return {"image": image_t, "depth": depth_t, "mask": depth_t > 0, "index": int(index)}


def item_position(index: int, size: int, name: str) -> int:
    """``index`` checked against a dataset of ``size`` items; negative indices count from the end."""
    if not -size <= index < size:
        raise IndexError(f"index {index} out of range for {name} of {size} items")
    return index % size


def decode_image(
    source: bytes | Path,
    *,
    where: str,
    draft: tuple[int, int] | None = None,
    allow_truncated: bool = False,
) -> Image.Image:
    """Decode an RGB image (JPG, PNG, ...) fully, with Pillow; errors become :class:`DataError`.

    ``draft`` (width, height) lets libjpeg decode a JPEG at a reduced scale (1/2, 1/4, 1/8) no smaller than
    that size, which is much faster for large photos that are resized anyway. ``allow_truncated``: a file that
    ends early is decoded as far as it goes (Pillow's ``LOAD_TRUNCATED_IMAGES``, as public loaders of Make3D
    read its truncated test photo), with a :class:`UserWarning` naming it; the missing rows are left as the
    decoder fills them.
    """

    def load() -> Image.Image:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        if draft is not None:
            image.draft("RGB", draft)
        image.load()
        return image.convert("RGB")

    try:
        return load()
    except FileNotFoundError as error:
        raise DataError(f"image {where} is missing") from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        first = error
    if allow_truncated and isinstance(first, OSError) and "truncated" in str(first):
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            image = load()
        except (OSError, SyntaxError, ValueError) as error:
            raise DataError(f"cannot decode image {where}: {error} (truncated or corrupt file?)") from error
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous
        warnings.warn(f"image {where} is truncated ({first}); loaded the part that is there", stacklevel=2)
        return image
    raise DataError(f"cannot decode image {where}: {first} (truncated or corrupt file?)") from first


def image_chw(image: Image.Image) -> np.ndarray:
    """``[3, H, W]`` uint8 array of an RGB Pillow image."""
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


class _PerProcessHandle(Dataset):
    """Base of datasets that read through one open file handle per process.

    The handle is opened on first access in each process (the pid is checked, so a forked DataLoader worker
    never reuses its parent's handle) and is left out when the dataset is pickled (spawned workers).
    """

    _handle: Any = None
    _handle_pid: int = -1

    def _open_handle(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _file(self) -> Any:
        """The handle of this process, opened on first use."""
        if self._handle is None or self._handle_pid != os.getpid():
            self._handle = self._open_handle()
            self._handle_pid = os.getpid()
        return self._handle

    def close(self) -> None:
        """Close this process's handle (it is reopened on the next access)."""
        if self._handle is not None and self._handle_pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_handle_pid"] = -1
        return state

    def _position(self, index: int) -> int:
        return item_position(index, len(self), type(self).__name__)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- labeled .mat
def _open_labeled(path: Path) -> h5py.File:
    """Open the labeled NYUv2 ``.mat`` (v7.3 = HDF5) read-only, with clear errors for the usual mistakes."""
    if not path.is_file():
        raise DataError(
            f"NYUv2 labeled file not found: {path}; expected {LABELED_FILE} (MATLAB v7.3) from "
            "http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat"
        )
    try:
        return h5py.File(path, "r")
    except OSError as error:
        with open(path, "rb") as stream:
            header = stream.read(128)
        if header.startswith(b"MATLAB 5.0 MAT-file"):
            raise DataError(
                f"{path} is a MATLAB v5 .mat file; expected the MATLAB v7.3 (HDF5) labeled NYUv2 file {LABELED_FILE}"
            ) from error
        raise DataError(
            f"cannot open {path} as HDF5 (MATLAB v7.3): {error}; the file may be truncated or not "
            f"the labeled NYUv2 file"
        ) from error


def _dataset(handle: h5py.File, name: str, path: Path, expected: str) -> h5py.Dataset:
    """HDF5 dataset ``name`` of ``handle``, or a DataError naming the file and the expected layout."""
    node = handle.get(name)
    if not isinstance(node, h5py.Dataset):
        found = ", ".join(sorted(handle.keys())) or "nothing"
        raise DataError(f"expected HDF5 dataset {name!r} of shape {expected} in {path}, found only: {found}")
    return node


def check_labeled_layout(handle: h5py.File, path: Path, depth_names: tuple[str, ...]) -> tuple[int, int, int]:
    """Check ``images`` and the depth datasets against MATLAB's transposed layout; return ``(N, H, W)``."""
    images = _dataset(handle, "images", path, "(N, 3, W, H)")
    if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
        raise DataError(
            f"expected HDF5 dataset 'images' of shape (N, 3, W, H) uint8 (MATLAB H×W×3×N, "
            f"(1449, 3, 640, 480) in the official file) in {path}, got {images.shape} {images.dtype}"
        )
    count, _, width, height = images.shape
    for name in depth_names:
        depth = _dataset(handle, name, path, "(N, W, H)")
        if depth.shape != (count, width, height) or depth.dtype.kind != "f":
            raise DataError(
                f"expected HDF5 dataset {name!r} of shape (N, W, H) = {(count, width, height)} "
                f"float (MATLAB H×W×N single) in {path}, got {depth.shape} {depth.dtype}"
            )
    return count, height, width


def mat_variables(path: Path) -> str:
    """Comma-separated names of the variables in a v5 or v7.3 ``.mat`` file, for error messages."""
    try:
        names = [name for name, _, _ in scipy.io.whosmat(path)]
    except NotImplementedError:
        with h5py.File(path, "r") as handle:
            names = [name for name in handle if not name.startswith("#")]
    return ", ".join(sorted(names)) or "nothing"


def load_splits(path: Path, num_images: int) -> dict[str, np.ndarray]:
    """Read the official ``splits.mat``: ``{"train": ..., "test": ...}`` as **0-based** int64 indices.

    The file holds ``trainNdxs`` and ``testNdxs`` (column vectors of 1-based doubles). A v7.3 (HDF5) copy is
    read with h5py too.
    """
    if not path.is_file():
        raise DataError(
            f"NYUv2 splits file not found: {path}; expected {SPLITS_FILE} (trainNdxs, testNdxs) "
            "from http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat"
        )
    variables = {"train": "trainNdxs", "test": "testNdxs"}
    try:
        content: dict[str, Any] = scipy.io.loadmat(path, variable_names=list(variables.values()))
    except NotImplementedError:  # v7.3: scipy asks for an HDF5 reader
        with h5py.File(path, "r") as handle:
            content = {name: handle[name][()] for name in variables.values() if name in handle}
    except (MatReadError, ValueError, TypeError, IndexError, OSError, EOFError) as error:
        raise DataError(f"cannot read {path} as a MATLAB .mat file: {error} (truncated or corrupt?)") from error
    splits = {}
    for split, name in variables.items():
        if name not in content:
            raise DataError(f"expected variable {name!r} in splits file {path}, found: {mat_variables(path)}")
        values = np.asarray(content[name], dtype=np.float64).ravel()
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise DataError(f"{path}: {name} must hold whole numbers (1-based image indices)")
        bad = values[(values < 1) | (values > num_images)]
        if bad.size:
            raise DataError(
                f"splits.mat index {int(bad[0])} out of range for {num_images} images "
                f"({name} in {path} holds 1-based indices 1..{num_images})"
            )
        splits[split] = values.astype(np.int64) - 1
    return splits


def _resolve(
    explicit: str | os.PathLike[str] | None, root: str | os.PathLike[str] | None, name: str, option: str
) -> Path:
    """``explicit`` if given, else ``root / name``."""
    if explicit is not None:
        return Path(explicit)
    if root is None:
        raise DataError(f"nyuv2 needs root= (a folder with {LABELED_FILE} and {SPLITS_FILE}) or {option}=")
    return Path(root) / name


class NYUv2Labeled(_PerProcessHandle):
    """The official labeled NYUv2 frames (``nyuv2``), items at the native 480×640.

    Args:
        root: folder holding ``nyu_depth_v2_labeled.mat`` and ``splits.mat`` (either may be overridden).
        split: ``train`` (795), ``test`` (654) or ``all`` (1449, no splits file needed).
        depth: ``filled`` (the toolbox's colorization-filled ``depths``), ``raw`` (``rawDepths``, 0 where the
            Kinect gave nothing) or ``raw-filled`` (``rawDepths`` filled here by
            :func:`~mlrd_core.data.colorization.fill_depth_colorization` with ``fill_alpha``; cached).
        mat_path, splits_path: explicit file paths.
        fill_alpha: ``alpha`` of the colorization for ``raw-filled`` (the toolbox's default 1).
        cache_dir: where ``raw-filled`` maps are cached as ``.npy`` (shared by workers and runs); without it
            they are cached in memory, per process (about 1.2 MB per 480×640 map).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        split: str = "train",
        depth: str = "filled",
        mat_path: str | os.PathLike[str] | None = None,
        splits_path: str | os.PathLike[str] | None = None,
        fill_alpha: float = 1.0,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise DataError(f"unknown NYUv2 split {split!r}; valid splits: {', '.join(SPLITS)}")
        if depth not in DEPTH_KINDS:
            raise DataError(f"unknown NYUv2 depth kind {depth!r}; valid kinds: {', '.join(DEPTH_KINDS)}")
        self.mat_path = _resolve(mat_path, root, LABELED_FILE, "mat_path")
        self.split = split
        self.depth_kind = depth
        self.fill_alpha = float(fill_alpha)
        self._depth_name = "depths" if depth == "filled" else "rawDepths"
        with _open_labeled(self.mat_path) as handle:
            self.num_images, self.height, self.width = check_labeled_layout(handle, self.mat_path, (self._depth_name,))
        if split == "all":
            self.file_indices = np.arange(self.num_images, dtype=np.int64)
        else:
            splits = load_splits(_resolve(splits_path, root, SPLITS_FILE, "splits_path"), self.num_images)
            self.file_indices = splits[split]
        self._cache_dir: Path | None = None
        if cache_dir is not None and depth == "raw-filled":
            size = self.mat_path.stat().st_size
            key = f"nyuv2-raw-filled-{self.mat_path.stem}-{size}-alpha{self.fill_alpha:g}"
            self._cache_dir = Path(cache_dir) / key
        self._memory_cache: dict[int, np.ndarray] = {}
        self._splits_path = None if split == "all" else _resolve(splits_path, root, SPLITS_FILE, "splits_path")
        self._sources: list[Source] | None = None

    @property
    def sources(self) -> list[Source]:
        """The labelled ``.mat`` (and ``splits.mat``) read, with sizes, item counts and hashes."""
        if self._sources is None:
            settings = {"split": self.split, "depth": self.depth_kind}
            if self.depth_kind == "raw-filled":
                settings["fill_alpha"] = self.fill_alpha  # type: ignore[assignment]
            self._sources = [file_source(self.mat_path, len(self), settings=settings)]
            if self._splits_path is not None:
                self._sources.append(file_source(self._splits_path, len(self)))
        return [dict(s) for s in self._sources]

    def _open_handle(self) -> h5py.File:
        return _open_labeled(self.mat_path)

    def __len__(self) -> int:
        return len(self.file_indices)

    def __getitem__(self, index: int) -> Item:
        position = self._position(index)
        frame = int(self.file_indices[position])
        handle = self._file()
        try:
            image = handle["images"][frame].transpose(0, 2, 1)  # (3, W, H) -> (3, H, W)
            depth = handle[self._depth_name][frame].T  # (W, H) -> (H, W)
        except (OSError, KeyError, ValueError, RuntimeError) as error:
            raise DataError(
                f"cannot read frame {frame} (0-based) of {self.mat_path}: {error}; the file may be truncated"
            ) from error
        if self.depth_kind == "raw-filled":
            depth = self._raw_filled(frame, image, depth)
        return make_item(image, depth, position, where=f"{self.mat_path} frame {frame}")

    def _raw_filled(self, frame: int, image: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """``raw`` filled by colorization, from the memory or disk cache when it was computed before."""
        if frame in self._memory_cache:
            return self._memory_cache[frame]
        path = self._cache_dir / f"{frame:04d}.npy" if self._cache_dir is not None else None
        if path is not None and path.is_file():
            with contextlib.suppress(OSError, ValueError):  # a broken cache file is recomputed
                cached = np.load(path)
                if cached.shape == raw.shape:
                    return cached
        try:
            filled = fill_depth_colorization(image.transpose(1, 2, 0), raw, self.fill_alpha)
        except DataError as error:
            raise DataError(f"{self.mat_path} frame {frame}: {error}") from error
        if path is None:
            self._memory_cache[frame] = filled
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as partial, open(partial, "wb") as fh:  # workers never read a half-written file
                np.save(fh, filled)
        return filled


def _missing_labeled(
    *,
    split: str,
    root: str | os.PathLike[str] | None = None,
    mat_path: str | os.PathLike[str] | None = None,
    splits_path: str | os.PathLike[str] | None = None,
    **_: object,
) -> list[str]:
    """Existence check of the files ``nyuv2`` reads (see :func:`mlrd_core.data.missing_files`)."""
    if root is not None and not Path(root).is_dir():
        return [f"NYUv2 folder not found: {root} (option root)"]
    wanted = [(mat_path, LABELED_FILE, "mat_path")]
    if split != "all":
        wanted.append((splits_path, SPLITS_FILE, "splits_path"))
    missing = []
    for explicit, name, option in wanted:
        if explicit is None and root is None:
            continue
        path = Path(explicit) if explicit is not None else Path(root) / name  # type: ignore[arg-type]
        if not path.is_file():
            missing.append(f"NYUv2 file not found: {path} (option {option if explicit is not None else 'root'})")
    return missing


register_dataset(
    "nyuv2",
    splits=SPLITS,
    options={"depth": OptionRule(choices=DEPTH_KINDS), "fill_alpha": OptionRule(positive=True)},
    needs=[("root", "mat_path")],
    files=_missing_labeled,
)(NYUv2Labeled)


# -------------------------------------------------------------------------------------------------- zip
#: Training sets of ``nyuv2-zip`` (option ``train_set``): frames of the training *sequences* (the paper's data,
#: the default) or the 795 labelled training frames.
TRAIN_SETS = ("sequences", "labeled795")
#: How a spec asks for the 795 labelled frames; named in the error when only they are present.
LABELED795_OPTION = 'train_set = "labeled795"'


@dataclass(frozen=True)
class ZipLayout:
    """A known CSV inside a NYUv2 zip: its split, training set (None for test), depth scale (None: full PNG
    range = 10 m) and where it comes from."""

    csv: str
    split: str
    train_set: str | None
    depth_scale: float | None
    source: str


#: CSVs looked for, in this order, when ``csv`` is not given.
KNOWN_ZIP_LAYOUTS = (
    ZipLayout(
        "train_reduced05/train.csv",
        "train",
        "sequences",
        None,
        "Lee & Kim train_reduced05.zip, training-sequence frames, 16-bit PNG, v/65535·10 m",
    ),
    ZipLayout(
        "data/nyu2_train.csv", "train", "sequences", None, "DenseDepth nyu_data.zip, 50K sequence frames, 8-bit PNG"
    ),
    ZipLayout("train795/train.csv", "train", "labeled795", None, "Lee & Kim train795.zip, 16-bit PNG, v/65535·10 m"),
    ZipLayout("test654/test.csv", "test", None, None, "Lee & Kim test654.zip, 16-bit PNG, v/65535·10 m"),
    ZipLayout("data/nyu2_test.csv", "test", None, 0.001, "DenseDepth nyu_data.zip, 16-bit PNG in millimetres"),
)

#: Zip names looked for in ``root`` when ``zip_path`` is not given, per split and training set, in this order.
#: The authors' README labels the sequence zip's download ``train7_reduced05.zip``; their train.py reads it as
#: ``train_reduced05.zip``: both names are found.
ZIP_NAMES = {
    ("train", "sequences"): ("train_reduced05.zip", "train7_reduced05.zip", "nyu_data.zip"),
    ("train", "labeled795"): ("train795.zip",),
    ("test", None): ("test654.zip", "nyu_data.zip"),
}
SPLITS_ZIP = ("train", "test")


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise DataError(f"NYUv2 zip not found: {path}")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(f"cannot open {path} as a zip file: {error} (truncated download?)") from error


def decode_depth_png(data: bytes, *, where: str) -> tuple[np.ndarray, int]:
    """``(values, bits)`` of a single-channel 8- or 16-bit depth PNG, values as an unsigned integer array."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"cannot decode depth image {where}: {error} (truncated or corrupt file?)") from error
    if image.mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16), 16
    if image.mode == "I":  # 16-bit greyscale PNGs as older Pillow versions open them
        return np.asarray(image).astype(np.uint32), 16
    if image.mode == "L":
        return np.asarray(image), 8
    raise DataError(
        f"expected a single-channel 8- or 16-bit PNG depth map in {where}, got mode {image.mode} {image.size}"
    )


class NYUv2Zip(_PerProcessHandle):
    """NYUv2 pairs listed in a CSV inside a zip (``nyuv2-zip``), read straight from the zip.

    Args:
        root: folder holding the zips. ``train`` looks for ``train_reduced05.zip`` (or ``train7_reduced05.zip``),
            else ``nyu_data.zip``; with ``train_set="labeled795"``, ``train795.zip``. ``test`` looks for
            ``test654.zip``, else ``nyu_data.zip``.
        split: ``train`` or ``test``; picks the zip and CSV when they are not given.
        train_set: ``sequences`` (default: frames of the training sequences, what the paper trains on) or
            ``labeled795`` (the 795 labelled training frames). Ignored by ``test``. With only the 795 set present,
            the default is an error that names this option.
        zip_path: the zip file.
        csv: the CSV member listing ``rgb_member,depth_member`` rows; by default the first of
            :data:`KNOWN_ZIP_LAYOUTS` present for ``split`` (and ``train_set``), else the zip's only CSV.
        depth_scale: metres per PNG unit. Default: the known layout's (0.001 for DenseDepth's test maps in mm),
            else ``10 / (2^bits - 1)``: ``v / 65535 · 10`` for 16-bit PNGs, ``v / 255 · 10`` for 8-bit ones.

    Member paths in the CSV are looked up as written, then relative to the CSV's folder. :attr:`sources` records
    the zip read (see :mod:`mlrd_core.data.provenance`).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        split: str = "train",
        train_set: str = "sequences",
        zip_path: str | os.PathLike[str] | None = None,
        csv: str | None = None,
        depth_scale: float | None = None,
    ) -> None:
        if split not in SPLITS_ZIP:
            raise DataError(f"unknown NYUv2 zip split {split!r}; valid splits: {', '.join(SPLITS_ZIP)}")
        if train_set not in TRAIN_SETS:
            raise DataError(f"unknown NYUv2 train_set {train_set!r}; valid: {', '.join(TRAIN_SETS)}")
        self.split = split
        self.train_set: str | None = train_set if split == "train" else None
        if zip_path is None:
            if root is None:
                raise DataError("nyuv2-zip needs root= (a folder with the zip) or zip_path=")
            zip_path = self._find_zip(Path(root))
        self.zip_path = Path(zip_path)
        if depth_scale is not None and not (math.isfinite(depth_scale) and depth_scale > 0):
            raise DataError(f"depth_scale must be a positive number of metres per unit, got {depth_scale}")
        with _open_zip(self.zip_path) as archive:
            members = set(archive.namelist())
            self.csv, layout_scale = self._pick_csv(csv, members)
            self.depth_scale = depth_scale if depth_scale is not None else layout_scale
            self.pairs = self._read_pairs(archive, members)
        self._sources: list[Source] | None = None

    def _find_zip(self, root: Path) -> Path:
        """The first zip of :data:`ZIP_NAMES` for this split and training set present in ``root``."""
        names = ZIP_NAMES[(self.split, self.train_set)]
        for name in names:
            if (root / name).is_file():
                return root / name
        if self.train_set == "sequences" and (root / "train795.zip").is_file():
            raise DataError(
                f"{root} holds only train795.zip, the 795 labelled NYUv2 frames; the paper trains on the "
                f"training sequences ({' or '.join(names)}, not found). To train on the 795 frames, set "
                f"{LABELED795_OPTION} in the dataset options"
            )
        raise DataError(
            f"no NYUv2 zip for split {self.split!r}"
            + (f" (train_set {self.train_set!r})" if self.train_set else "")
            + f" in {root}; expected one of {', '.join(names)}"
        )

    def _pick_csv(self, csv_name: str | None, members: set[str]) -> tuple[str, float | None]:
        """The CSV member to read and its layout's default depth scale."""
        if csv_name is not None:
            if csv_name not in members:
                raise DataError(f"CSV {csv_name} is not in {self.zip_path}; CSVs there: {self._csvs(members)}")
            known = [layout for layout in KNOWN_ZIP_LAYOUTS if layout.csv == csv_name]
            if known and self.split == "train" and known[0].train_set not in (None, self.train_set):
                raise DataError(
                    f"CSV {csv_name} in {self.zip_path} is the {known[0].train_set} training set, but train_set is "
                    f'{self.train_set!r}; set train_set = "{known[0].train_set}" to read it'
                )
            return csv_name, known[0].depth_scale if known else None
        wanted = [
            layout for layout in KNOWN_ZIP_LAYOUTS if layout.split == self.split and layout.train_set == self.train_set
        ]
        for layout in wanted:
            if layout.csv in members:
                return layout.csv, layout.depth_scale
        others = [
            layout
            for layout in KNOWN_ZIP_LAYOUTS
            if layout.split == self.split and layout.train_set != self.train_set and layout.csv in members
        ]
        if others:
            other = others[0]
            hint = (
                f"; to train on the 795 labelled frames set {LABELED795_OPTION}"
                if other.train_set == "labeled795"
                else f'; set train_set = "{other.train_set}" to read it'
            )
            raise DataError(
                f"{self.zip_path} holds {other.csv} ({other.source}), not the {self.train_set} training set "
                f"({', '.join(layout.csv for layout in wanted)}){hint}"
            )
        candidates = [name for name in members if name.lower().endswith(".csv")]
        if len(candidates) == 1:
            return candidates[0], None
        expected = ", ".join(layout.csv for layout in wanted)
        raise DataError(
            f"no {self.split} CSV in {self.zip_path}: expected one of {expected}, or pass csv=; "
            f"CSVs there: {self._csvs(members)}"
        )

    @property
    def sources(self) -> list[Source]:
        """The zip read: name, path, size, items, a hash of its entries and the loader's settings."""
        if self._sources is None:
            settings: dict[str, Any] = {"split": self.split, "csv": self.csv, "depth_scale": self.depth_scale}
            if self.train_set is not None:
                settings["train_set"] = self.train_set
            self._sources = [zip_source(self.zip_path, len(self.pairs), settings=settings)]
        return [dict(s) for s in self._sources]

    @staticmethod
    def _csvs(members: set[str]) -> str:
        return ", ".join(sorted(name for name in members if name.lower().endswith(".csv"))) or "none"

    def _read_pairs(self, archive: zipfile.ZipFile, members: set[str]) -> list[tuple[str, str]]:
        """The ``(rgb, depth)`` members listed in the CSV, each checked to exist in the zip."""
        try:
            text = archive.read(self.csv).decode("utf-8-sig")
        except (zipfile.BadZipFile, UnicodeDecodeError, OSError) as error:
            raise DataError(f"cannot read {self.csv} in {self.zip_path}: {error}") from error
        pairs = []
        for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            fields = [field.strip() for field in row]
            if not any(fields):
                continue
            if len(fields) != 2:
                raise DataError(
                    f"{self.csv} line {line} in {self.zip_path}: expected 'rgb_path,depth_path', got {','.join(row)!r}"
                )
            pairs.append((self._member(fields[0], members, line), self._member(fields[1], members, line)))
        if not pairs:
            raise DataError(f"{self.csv} in {self.zip_path} lists no image pairs")
        return pairs

    def _member(self, name: str, members: set[str], line: int) -> str:
        """Zip member for a CSV path: as written, else relative to the CSV's folder."""
        name = name.replace("\\", "/").removeprefix("./")
        for candidate in (name, posixpath.join(posixpath.dirname(self.csv), name)):
            if candidate in members:
                return candidate
        raise DataError(
            f"zip member {name} listed in {self.csv} is missing (line {line} of the CSV; zip {self.zip_path})"
        )

    def _open_handle(self) -> zipfile.ZipFile:
        return _open_zip(self.zip_path)

    def __len__(self) -> int:
        return len(self.pairs)

    def _read(self, member: str) -> bytes:
        try:
            return self._file().read(member)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise DataError(f"cannot read zip member {member} of {self.zip_path}: {error} (corrupt zip?)") from error

    def __getitem__(self, index: int) -> Item:
        position = self._position(index)
        rgb_member, depth_member = self.pairs[position]
        image = decode_image(self._read(rgb_member), where=f"{rgb_member} in {self.zip_path}")
        values, bits = decode_depth_png(self._read(depth_member), where=f"{depth_member} in {self.zip_path}")
        scale = self.depth_scale if self.depth_scale is not None else ZIP_MAX_DEPTH / (2**bits - 1)
        depth = values.astype(np.float64) * scale
        return make_item(image_chw(image), depth, position, where=f"{rgb_member} / {depth_member} in {self.zip_path}")


def _missing_zip(
    *,
    split: str,
    root: str | os.PathLike[str] | None = None,
    train_set: str = "sequences",
    zip_path: str | os.PathLike[str] | None = None,
    **_: object,
) -> list[str]:
    """Existence check of the zip ``nyuv2-zip`` reads (see :func:`mlrd_core.data.missing_files`)."""
    if zip_path is not None:
        return [] if Path(zip_path).is_file() else [f"NYUv2 zip not found: {zip_path} (option zip_path)"]
    if root is None:
        return []
    if not Path(root).is_dir():
        return [f"NYUv2 folder not found: {root} (option root)"]
    names = ZIP_NAMES.get((split, train_set if split == "train" else None), ())
    if any((Path(root) / name).is_file() for name in names):
        return []
    return [f"no NYUv2 zip for split {split!r} in {root}; expected one of {', '.join(names)}"]


register_dataset(
    "nyuv2-zip",
    splits=SPLITS_ZIP,
    options={"train_set": OptionRule(choices=TRAIN_SETS), "depth_scale": OptionRule(positive=True)},
    needs=[("root", "zip_path")],
    files=_missing_zip,
)(NYUv2Zip)
