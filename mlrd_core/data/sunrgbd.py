"""SUN RGB-D (Song, Lichtenberg & Xiao, CVPR 2015): 10,335 RGB-D frames of four sensors (``sunrgbd``).

Layout of the public release (``SUNRGBD.zip`` and ``SUNRGBDtoolbox.zip`` from https://rgbd.cs.princeton.edu),
unpacked side by side in ``root``::

    root/SUNRGBD/<sensor>/.../<scene>/image/<name>.jpg          RGB
    root/SUNRGBD/<sensor>/.../<scene>/depth/<name>.png          raw depth, uint16, 3-bit circular shift, 0 = none
    root/SUNRGBD/<sensor>/.../<scene>/depth_bfx/<name>.png      the dataset's filled depth, same encoding
    root/SUNRGBD/<sensor>/.../<scene>/intrinsics.txt            3×3 camera matrix, row-major
    root/SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat           alltrain (5285) / alltest (5050) scene paths

``<sensor>`` is ``kv1`` (Kinect v1, including ``kv1/NYUdata``: the 1449 labelled NYUv2 frames), ``kv2``,
``realsense`` and ``xtion``; scene folders sit at different depths below it. The sensors' images differ in size
(e.g. 730×530 for kv2, 681×531 for realsense, 640×480 for xtion, 561×427 for the NYU frames), and items keep
their native size (``make_dataset(..., size=...)`` resizes).

**Depth.** The toolbox (``read3dPoints.m``) decodes a depth PNG ``v`` (uint16) as
``bitor(bitshift(v, -3), bitshift(v, 16 - 3))`` in uint16, i.e. a 3-bit circular right shift,
``((v >> 3) | (v << 13)) & 0xFFFF``, in millimetres, then ``/ 1000`` to metres, and sets depths above 8 m to 8 m.
The loader does the same (``max_depth=8.0``; ``None`` keeps every value). A decoded 0 is a hole: depth 0, mask
False. ``depth="raw"`` (default) reads ``depth/`` with its holes masked; ``depth="bfx"`` reads the dataset's own
filled ``depth_bfx/``.

**Splits.** ``allsplit.mat`` (MATLAB v5) holds ``alltrain`` and ``alltest``, cell arrays of absolute paths from
the authors' machine (``/n/fs/sun3d/data/SUNRGBD/kv2/kinect2data/000065_...``); the part after ``SUNRGBD/`` is
the scene folder. ``split="all"`` needs no split file and takes every scene folder found (one with ``image/``
and ``depth/``). Scenes are sorted by their relative path (``dataset.scenes``).

**NYUv2 frames.** ``kv1/NYUdata`` holds NYUv2's 1449 labelled frames, one scene folder each, named ``NYU0001`` ..
``NYU1449``. The loader reads the four digits as the 1-based frame index of ``nyu_depth_v2_labeled.mat`` (the
numbering of ``splits.mat``): a scene ``kv1/NYUdata/NYU<dddd>`` is labelled frame ``<dddd>``. That the release
numbers the frames in the labelled file's order is our reading of the folder names (the count, 1449, matches),
not a statement of the release. ``exclude_nyuv2="test"`` leaves out the frames of NYUv2's official test split
(``testNdxs`` of ``splits.mat``, given as ``nyuv2_splits``); ``"all"`` leaves out every ``kv1/NYUdata`` scene,
which depends on no numbering. A mixture evaluated on NYUv2 sets ``"test"`` itself (``mlrd_core.data.mixture``);
the number left out is ``dataset.excluded_nyuv2`` and is recorded in :attr:`SUNRGBD.sources`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError
from torch.utils.data import Dataset

from mlrd_core.data import OptionRule, register_dataset
from mlrd_core.data.nyuv2 import decode_depth_png, decode_image, image_chw, item_position, make_item, mat_variables
from mlrd_core.data.provenance import Source, file_source, folder_source
from mlrd_core.errors import DataError

DATA_FOLDER = "SUNRGBD"
SPLIT_FILE = Path("SUNRGBDtoolbox") / "traintestSUNRGBD" / "allsplit.mat"
SPLITS = ("train", "test", "all")
SPLIT_VARIABLES = {"train": "alltrain", "test": "alltest"}
#: depth kind -> folder in a scene.
DEPTH_FOLDERS = {"raw": "depth", "bfx": "depth_bfx"}
SENSORS = ("kv1", "kv2", "realsense", "xtion")
#: A scene of NYUv2's labelled frames: ``kv1/NYUdata/NYU<dddd>``, ``<dddd>`` the 1-based labelled frame index.
NYU_SCENE = re.compile(r"^kv1/NYUdata/NYU(?P<frame>\d{4})$")
#: Frames of ``nyu_depth_v2_labeled.mat`` (the range of ``splits.mat``'s indices).
NYU_LABELED_FRAMES = 1449
#: Values of the ``exclude_nyuv2`` option.
EXCLUDE_NYUV2 = ("none", "test", "all")
#: The toolbox's cap (read3dPoints.m: ``depthInpaint(depthInpaint > 8) = 8``), metres.
TOOLBOX_MAX_DEPTH = 8.0

Item = dict[str, Any]


def decode_sunrgbd_depth(values: np.ndarray, *, max_depth: float | None = TOOLBOX_MAX_DEPTH) -> np.ndarray:
    """Metres (float32) of a SUN RGB-D depth PNG's uint16 ``values``: 3-bit circular right shift, / 1000, capped."""
    v = np.asarray(values).astype(np.uint32)
    millimetres = ((v >> 3) | (v << 13)) & 0xFFFF
    metres = millimetres.astype(np.float32) / np.float32(1000.0)
    if max_depth is not None:
        metres = np.minimum(metres, np.float32(max_depth))
    return metres


def _data_folder(root: Path) -> Path:
    """``root/SUNRGBD``, or ``root`` itself when it is the SUNRGBD folder (holds a sensor folder)."""
    if (root / DATA_FOLDER).is_dir():
        return root / DATA_FOLDER
    if any((root / sensor).is_dir() for sensor in SENSORS):
        return root
    raise DataError(
        f"no SUN RGB-D data in {root}: expected {root / DATA_FOLDER} (the unpacked SUNRGBD.zip) holding "
        f"{', '.join(SENSORS)}"
    )


def scene_of(path: str) -> str:
    """The scene folder of an ``allsplit.mat`` path: what follows ``SUNRGBD/`` (no trailing slash)."""
    text = path.strip().replace("\\", "/")
    marker = f"{DATA_FOLDER}/"
    if marker not in text:
        raise DataError(f"split path {path!r} does not contain {marker!r}")
    return text.split(marker, 1)[1].strip("/")


def load_split(path: Path, split: str) -> list[str]:
    """Scene folders (relative to ``SUNRGBD/``) of ``split`` in the toolbox's ``allsplit.mat``."""
    name = SPLIT_VARIABLES[split]
    if not path.is_file():
        raise DataError(
            f"SUN RGB-D split file not found: {path}; expected {SPLIT_FILE.as_posix()} of SUNRGBDtoolbox.zip "
            "(or pass split_path=, or split='all')"
        )
    try:
        content = scipy.io.loadmat(path, variable_names=[name])
    except NotImplementedError as error:
        raise DataError(f"{path} is a MATLAB v7.3 (HDF5) file; expected the toolbox's v5 allsplit.mat") from error
    except (MatReadError, ValueError, TypeError, IndexError, OSError, EOFError) as error:
        raise DataError(f"cannot read {path} as a MATLAB .mat file: {error} (truncated or corrupt?)") from error
    if name not in content:
        raise DataError(
            f"expected variable {name!r} (a cell array of scene paths) in {path}, found: {mat_variables(path)}"
        )
    cells = np.asarray(content[name], dtype=object).ravel()
    scenes = []
    for index, cell in enumerate(cells):
        text = np.asarray(cell).ravel()
        if text.size != 1 or not isinstance(text[0], str):
            raise DataError(f"{path}: {name}{{{index + 1}}} is not a path string (got {cell!r})")
        scenes.append(scene_of(text[0]))
    if not scenes:
        raise DataError(f"{path}: {name} lists no scenes")
    return scenes


def _only_file(folder: Path, suffixes: tuple[str, ...], what: str) -> Path:
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)
    except FileNotFoundError as error:
        raise DataError(f"SUN RGB-D scene folder {folder.parent} has no {folder.name}/ folder ({what})") from error
    if not files:
        raise DataError(f"no {what} ({'/'.join(suffixes)}) in {folder}")
    return files[0]


class SUNRGBD(Dataset):
    """SUN RGB-D frames (``sunrgbd``) at their native size; see the module docstring.

    Args:
        root: folder with ``SUNRGBD/`` and ``SUNRGBDtoolbox/`` (or the ``SUNRGBD`` folder itself).
        split: ``train`` (``alltrain``, 5285 scenes), ``test`` (``alltest``, 5050) or ``all`` (every scene found).
        depth: ``raw`` (``depth/``, holes masked; default) or ``bfx`` (the dataset's filled ``depth_bfx/``).
        max_depth: metres above which depth is set to it, as the toolbox does (8); None keeps every value.
        split_path: the ``allsplit.mat`` (default ``root/SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat``).
        exclude_nyuv2: ``none`` (default), ``test`` (leave out the ``kv1/NYUdata`` frames of NYUv2's test split,
            read from ``nyuv2_splits``) or ``all`` (leave out every ``kv1/NYUdata`` frame).
        nyuv2_splits: NYUv2's official ``splits.mat`` (``testNdxs``, 1-based), for ``exclude_nyuv2="test"``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        split: str = "train",
        depth: str = "raw",
        max_depth: float | None = TOOLBOX_MAX_DEPTH,
        split_path: str | os.PathLike[str] | None = None,
        exclude_nyuv2: str = "none",
        nyuv2_splits: str | os.PathLike[str] | None = None,
    ) -> None:
        if root is None:
            raise DataError("sunrgbd needs root= (the folder with SUNRGBD/ and SUNRGBDtoolbox/)")
        if split not in SPLITS:
            raise DataError(f"unknown SUN RGB-D split {split!r}; valid splits: {', '.join(SPLITS)}")
        if depth not in DEPTH_FOLDERS:
            raise DataError(f"unknown SUN RGB-D depth {depth!r}; valid: {', '.join(DEPTH_FOLDERS)}")
        if max_depth is not None and not max_depth > 0:
            raise DataError(f"max_depth must be a positive number of metres or None, got {max_depth}")
        self.root = Path(root)
        self.data_dir = _data_folder(self.root)
        self.split = split
        self.depth_kind = depth
        self.max_depth = max_depth
        self.split_path: Path | None = None
        if split == "all":
            self.scenes = self._find_scenes()
        else:
            default = self.data_dir.parent / SPLIT_FILE
            self.split_path = Path(split_path) if split_path is not None else default
            self.scenes = sorted(set(load_split(self.split_path, split)))
            missing = [scene for scene in self.scenes if not (self.data_dir / scene).is_dir()]
            if missing:
                shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                raise DataError(
                    f"{len(missing)} of the {len(self.scenes)} {split} scenes of {self.split_path} are not in "
                    f"{self.data_dir}: {shown}"
                )
        if exclude_nyuv2 not in EXCLUDE_NYUV2:
            raise DataError(f"unknown exclude_nyuv2 {exclude_nyuv2!r}; valid: {', '.join(EXCLUDE_NYUV2)}")
        self.exclude_nyuv2 = exclude_nyuv2
        self.nyuv2_splits = Path(nyuv2_splits) if nyuv2_splits is not None else None
        self.excluded_nyuv2 = 0
        if exclude_nyuv2 != "none":
            left_out = self._nyuv2_scenes_to_exclude()
            self.scenes = [scene for scene in self.scenes if scene not in left_out]
            self.excluded_nyuv2 = len(left_out)
        if not self.scenes:
            raise DataError(f"no SUN RGB-D scene folders (with image/ and depth/) under {self.data_dir}")
        self._sources: list[Source] | None = None

    def _nyuv2_scenes_to_exclude(self) -> set[str]:
        """The scenes of this split that ``exclude_nyuv2`` leaves out (see the module docstring)."""
        nyu = {scene: match for scene in self.scenes if (match := NYU_SCENE.match(scene))}
        if self.exclude_nyuv2 == "all":
            return {scene for scene in self.scenes if scene.startswith("kv1/NYUdata/")}
        if self.nyuv2_splits is None:
            raise DataError(
                'exclude_nyuv2 = "test" needs nyuv2_splits= (NYUv2\'s official splits.mat with testNdxs), '
                'or exclude_nyuv2 = "all" to leave out every kv1/NYUdata frame'
            )
        from mlrd_core.data.nyuv2 import load_splits

        test = {int(i) + 1 for i in load_splits(self.nyuv2_splits, NYU_LABELED_FRAMES)["test"]}  # 1-based
        return {scene for scene, match in nyu.items() if int(match["frame"]) in test}

    def _find_scenes(self) -> list[str]:
        scenes = []
        for folder, subfolders, _ in os.walk(self.data_dir):
            if "image" in subfolders and "depth" in subfolders:
                scenes.append(Path(folder).relative_to(self.data_dir).as_posix())
                subfolders.clear()
        return sorted(scenes)

    def __len__(self) -> int:
        return len(self.scenes)

    def files(self, index: int) -> tuple[Path, Path]:
        """``(image, depth)`` files of item ``index``."""
        scene = self.data_dir / self.scenes[item_position(index, len(self), "SUN RGB-D")]
        image = _only_file(scene / "image", (".jpg", ".jpeg", ".png"), "image")
        depth = _only_file(scene / DEPTH_FOLDERS[self.depth_kind], (".png",), f"{self.depth_kind} depth")
        return image, depth

    def intrinsics(self, index: int) -> np.ndarray:
        """The 3×3 camera matrix of item ``index`` (``intrinsics.txt``, row-major)."""
        path = self.data_dir / self.scenes[item_position(index, len(self), "SUN RGB-D")] / "intrinsics.txt"
        try:
            values = np.array(path.read_text().split(), dtype=np.float64)
        except (OSError, ValueError) as error:
            raise DataError(f"cannot read {path} as 9 numbers (a 3x3 camera matrix): {error}") from error
        if values.size != 9:
            raise DataError(f"expected 9 numbers (a 3x3 camera matrix) in {path}, got {values.size}")
        return values.reshape(3, 3)

    def __getitem__(self, index: int) -> Item:
        position = item_position(index, len(self), "SUN RGB-D")
        image_path, depth_path = self.files(position)
        image = decode_image(image_path, where=str(image_path))
        values, bits = decode_depth_png(depth_path.read_bytes(), where=str(depth_path))
        if bits != 16:
            raise DataError(f"expected a 16-bit PNG depth map (SUN RGB-D's encoding) in {depth_path}, got {bits}-bit")
        depth = decode_sunrgbd_depth(values, max_depth=self.max_depth)
        return make_item(image_chw(image), depth, position, where=f"{image_path} / {depth_path}")

    @property
    def sources(self) -> list[Source]:
        """The SUNRGBD folder (names and sizes of the image and depth files read) and the split file."""
        if self._sources is None:
            files = [path for i in range(len(self)) for path in self.files(i)]
            settings: dict[str, Any] = {"split": self.split, "depth": self.depth_kind, "max_depth": self.max_depth}
            if self.exclude_nyuv2 != "none":
                settings["exclude_nyuv2"] = self.exclude_nyuv2
                settings["excluded_nyuv2_frames"] = self.excluded_nyuv2
            self._sources = [folder_source(self.data_dir, files, len(self), settings=settings)]
            if self.split_path is not None:
                self._sources.append(file_source(self.split_path, len(self)))
            if self.exclude_nyuv2 == "test" and self.nyuv2_splits is not None:
                guard = {"use": "NYUv2 test frames left out of SUN RGB-D (kv1/NYUdata)"}
                self._sources.append(file_source(self.nyuv2_splits, self.excluded_nyuv2, settings=guard))
        return [dict(s) for s in self._sources]


def _missing_files(
    *,
    split: str,
    root: str | os.PathLike[str] | None = None,
    split_path: str | os.PathLike[str] | None = None,
    **_: object,
) -> list[str]:
    """Existence check of the folders and split file a split reads (see :func:`mlrd_core.data.missing_files`)."""
    if root is None:
        return []
    base = Path(root)
    if not base.is_dir():
        return [f"SUN RGB-D folder not found: {root} (option root)"]
    try:
        data_dir = _data_folder(base)
    except DataError as exc:
        return [str(exc)]
    if split != "all":
        listed = Path(split_path) if split_path is not None else data_dir.parent / SPLIT_FILE
        if not listed.is_file():
            return [f"SUN RGB-D split file not found: {listed}"]
    return []


register_dataset(
    "sunrgbd",
    splits=SPLITS,
    options={
        "depth": OptionRule(choices=tuple(DEPTH_FOLDERS)),
        "max_depth": OptionRule(positive=True),
        "exclude_nyuv2": OptionRule(choices=EXCLUDE_NYUV2),
    },
    needs=[("root",)],
    files=_missing_files,
)(SUNRGBD)
