"""The Middlebury 2014 "Motorcycle" stereo pair shipped with scikit-image, as one metric RGB-D sample
(registered as ``"middlebury"``).

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
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mlrd_core.data import register_dataset
from mlrd_core.errors import DataError

__all__ = [
    "BASELINE_MM",
    "DOFFS_PX",
    "FOCAL_PX",
    "PRINCIPAL_POINT_PX",
    "SPLITS",
    "MiddleburyMotorcycle",
    "build_middlebury",
    "disparity_to_depth",
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


@register_dataset("middlebury")
def build_middlebury(*, split: str = "test") -> MiddleburyMotorcycle:
    """Builder for ``make_dataset("middlebury", ...)``; see :class:`MiddleburyMotorcycle`."""
    return MiddleburyMotorcycle(split)
