"""Resizing and the training augmentations of the paper's reference [16] (Hu et al., WACV 2019), as pure
functions on items plus a dataset wrapper that seeds them per (seed, epoch, index).

Items follow :mod:`mlrd_core.data`'s contract (``image`` float32 ``[3, H, W]`` in [0, 1], ``depth`` float32
``[1, H, W]`` metres with 0 where unknown, ``mask`` bool ``[1, H, W]``, ``index`` int). Other keys pass through
unchanged (they are *not* resized or flipped).

Resizing (:func:`resize_sample`)
    ``image``: bilinear with antialiasing when shrinking (a triangle filter, as PIL does), half-pixel-centre
    aligned. ``depth`` and ``mask``: ``nearest-exact`` (pixel-centre nearest neighbour) from the same source pixel,
    so depths are never blended across object edges or with invalid zeros and ``mask`` stays exactly
    ``depth > 0`` when it was. This is the choice of Hu et al.'s and the authors' ``Scale`` (PIL NEAREST for
    depth); ``nearest-exact`` avoids the half-pixel shift of legacy ``nearest``.

Augmentation (:func:`augment_sample`, defaults in :class:`AugmentConfig`), in this order:
    1. horizontal flip, p = 0.5, of image, depth and mask (Hu et al.);
    2. rotation by an angle uniform in [-5°, 5°] about the image centre (Hu et al.'s ``RandomRotate(5)``), image
       bilinear, depth and mask nearest; the corners that come from outside the frame get image 0 (black, as
       ``scipy.ndimage.rotate`` in Hu's code) and depth 0 / mask False (Hu's code fills depth with 0 without a
       mask; the authors' fills it with the mean depth, which invents depth; we mark it unknown instead);
    3. colour-channel permutation with p = 0.25, a uniformly drawn non-identity permutation of RGB (the "channel
       swap" of Alhashim & Wonka 2018, whose paper states p = 0.25; their and the authors' code use a
       ``RandomChannelSwap`` class that may also draw the identity);
    4. PCA lighting noise (AlexNet style) with ``alphastd = 0.1`` and ImageNet's eigenvalues/eigenvectors, as in
       Hu's ``Lighting(0.1, ...)``;
    5. colour jitter in a random order of brightness, contrast and saturation, each a blend with black, the
       grey mean, and the greyscale image with factor ``c ~ U[1 − 0.4, 1 + 0.4]`` (Hu's ``ColorJitter(0.4, 0.4,
       0.4)``; his ``img.lerp(target, α)``, α ~ U[−0.4, 0.4], is a blend with factor 1 − α). We use
       torchvision's ``adjust_brightness/contrast/saturation`` (same ITU-R 601 grey weights 0.299/0.587/0.114),
       which clamp to [0, 1] after each step where Hu's code does not clamp at all; the result is clamped to
       [0, 1] to keep the item contract.

Resizing happens before augmentation (rotating the smaller image is cheaper; Hu's pipeline also scales first).
Every random draw comes from a ``numpy.random.Generator`` seeded by ``SeedSequence([seed, epoch, index])``, so an
item's augmentation does not depend on the order of access, on other items, or on the DataLoader's worker count.
All parameters are drawn up front (:func:`sample_augment_params`), always the same number of draws, so the stream
stays aligned whichever augmentations fire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf
from torch.utils.data import Dataset

from mlrd_core.data.epoch import EpochDataset

# Importing this module imports mlrd_core first, which installs the torchvision shim; torchvision itself is imported
# lazily inside the functions that use it, so that ``import mlrd_core.data.transforms`` stays cheap.
from mlrd_core.errors import DataError

__all__ = [
    "IMAGENET_PCA_EIGVAL",
    "IMAGENET_PCA_EIGVEC",
    "AugmentConfig",
    "AugmentParams",
    "TransformedDataset",
    "apply_augment",
    "augment_sample",
    "item_generator",
    "resize_sample",
    "sample_augment_params",
]

#: ImageNet RGB PCA (AlexNet; the values in Hu et al.'s ``loaddata.py``): eigenvalues and eigenvectors (columns).
IMAGENET_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)

_IDENTITY = (0, 1, 2)
#: The five non-identity permutations of (R, G, B).
_SWAPS: tuple[tuple[int, int, int], ...] = ((0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the training augmentations (defaults: Hu et al. + channel swap p = 0.25).

    Set a probability or range to 0 to switch that augmentation off."""

    flip_p: float = 0.5
    max_rotation_deg: float = 5.0
    channel_swap_p: float = 0.25
    lighting_std: float = 0.1
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4

    def __post_init__(self) -> None:
        for name in ("flip_p", "channel_swap_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DataError(f"{name} must be a probability in [0, 1], got {value}")
        for name in ("max_rotation_deg", "lighting_std"):
            if getattr(self, name) < 0.0:
                raise DataError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise DataError(f"{name} must be in [0, 1) (factor 1 ± {name}), got {getattr(self, name)}")


@dataclass(frozen=True)
class AugmentParams:
    """One draw of every augmentation parameter; :func:`apply_augment` is a pure function of it."""

    flip: bool = False
    angle_deg: float = 0.0
    permutation: tuple[int, int, int] = _IDENTITY
    lighting_alpha: tuple[float, float, float] = (0.0, 0.0, 0.0)
    jitter_order: tuple[int, int, int] = (0, 1, 2)  # indices into (brightness, contrast, saturation)
    jitter_factors: tuple[float, float, float] = (1.0, 1.0, 1.0)  # (brightness, contrast, saturation)


def item_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of item ``index`` in ``epoch`` for run ``seed`` (all must be >= 0)."""
    if min(seed, epoch, index) < 0:
        raise DataError(f"seed, epoch and index must be >= 0, got seed={seed}, epoch={epoch}, index={index}")
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, index]))


def sample_augment_params(rng: np.random.Generator, config: AugmentConfig | None = None) -> AugmentParams:
    """Draw :class:`AugmentParams` from ``rng`` (always 12 draws, whatever the config)."""
    cfg = config or AugmentConfig()
    u_flip, u_angle, u_swap, u_perm = rng.random(4)
    alpha = rng.normal(0.0, 1.0, size=3)
    order = rng.permutation(3)
    u_jitter = rng.random(3)
    ranges = np.array([cfg.brightness, cfg.contrast, cfg.saturation])
    factors = 1.0 + ranges * (2.0 * u_jitter - 1.0)
    return AugmentParams(
        flip=bool(u_flip < cfg.flip_p),
        angle_deg=float((2.0 * u_angle - 1.0) * cfg.max_rotation_deg),
        permutation=_SWAPS[int(u_perm * len(_SWAPS)) % len(_SWAPS)] if u_swap < cfg.channel_swap_p else _IDENTITY,
        lighting_alpha=(
            float(alpha[0] * cfg.lighting_std),
            float(alpha[1] * cfg.lighting_std),
            float(alpha[2] * cfg.lighting_std),
        ),
        jitter_order=(int(order[0]), int(order[1]), int(order[2])),
        jitter_factors=(float(factors[0]), float(factors[1]), float(factors[2])),
    )


def _check_sample(sample: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    try:
        image, depth, mask = sample["image"], sample["depth"], sample["mask"]
    except KeyError as exc:
        raise DataError(f"an item needs 'image', 'depth' and 'mask'; got keys {sorted(sample)}") from exc
    if image.ndim != 3 or image.shape[0] != 3:
        raise DataError(f"expected image (3, H, W), got {tuple(image.shape)}")
    if depth.shape != (1, *image.shape[1:]) or mask.shape != depth.shape:
        raise DataError(
            f"expected depth and mask (1, {image.shape[1]}, {image.shape[2]}), "
            f"got depth {tuple(depth.shape)} and mask {tuple(mask.shape)}"
        )
    return image, depth, mask


def resize_sample(sample: dict[str, Any], size: Sequence[int]) -> dict[str, Any]:
    """Resize an item to ``size`` = (H, W): image bilinear (antialiased when shrinking), depth and mask
    pixel-centre nearest neighbour. Returns a new dict; other keys are passed through."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as tvf

    image, depth, mask = _check_sample(sample)
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise DataError(f"size must be (H, W) with H, W >= 1, got {tuple(size)}")
    out = dict(sample)
    if tuple(image.shape[1:]) == (h, w):
        return out
    img = tvf.resize(image, [h, w], interpolation=InterpolationMode.BILINEAR, antialias=True)
    out["image"] = img.clamp_(0.0, 1.0)
    out["depth"] = nnf.interpolate(depth[None], size=(h, w), mode="nearest-exact")[0]
    out["mask"] = nnf.interpolate(mask[None].to(torch.uint8), size=(h, w), mode="nearest-exact")[0].bool()
    return out


def _rotate(x: torch.Tensor, angle: float, bilinear: bool) -> torch.Tensor:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as tvf

    mode = InterpolationMode.BILINEAR if bilinear else InterpolationMode.NEAREST
    return tvf.rotate(x, angle, interpolation=mode, expand=False, fill=0.0)


def apply_augment(sample: dict[str, Any], params: AugmentParams) -> dict[str, Any]:
    """Apply one draw of the augmentations (flip, rotation, channel permutation, lighting, colour jitter) to an
    item. Pure: returns a new dict and leaves ``sample`` untouched."""
    from torchvision.transforms.v2 import functional as tvf

    image, depth, mask = _check_sample(sample)
    depth = depth * mask  # enforce "0 where unknown" before any geometric resampling
    if params.flip:
        image, depth, mask = image.flip(-1), depth.flip(-1), mask.flip(-1)
    if params.angle_deg != 0.0:
        image = _rotate(image, params.angle_deg, bilinear=True)
        valid = _rotate(mask.to(torch.float32), params.angle_deg, bilinear=False) > 0.5
        depth = _rotate(depth, params.angle_deg, bilinear=False) * valid
        mask = valid
    if params.permutation != _IDENTITY:
        image = image[list(params.permutation)]
    if any(a != 0.0 for a in params.lighting_alpha):
        eigvec = torch.tensor(IMAGENET_PCA_EIGVEC, dtype=image.dtype)
        eigval = torch.tensor(IMAGENET_PCA_EIGVAL, dtype=image.dtype)
        alpha = torch.tensor(params.lighting_alpha, dtype=image.dtype)
        image = image + (eigvec @ (alpha * eigval))[:, None, None]
    image = image.clamp(0.0, 1.0)
    adjust = (tvf.adjust_brightness, tvf.adjust_contrast, tvf.adjust_saturation)
    for j in params.jitter_order:
        if params.jitter_factors[j] != 1.0:
            image = adjust[j](image, params.jitter_factors[j])
    out = dict(sample)
    out["image"] = image.clamp(0.0, 1.0).contiguous()
    out["depth"] = depth.contiguous()
    out["mask"] = mask.contiguous()
    return out


def augment_sample(
    sample: dict[str, Any], rng: np.random.Generator, config: AugmentConfig | None = None
) -> dict[str, Any]:
    """Draw parameters from ``rng`` with :func:`sample_augment_params` and apply them (:func:`apply_augment`)."""
    return apply_augment(sample, sample_augment_params(rng, config))


class TransformedDataset(EpochDataset):
    """Wrap a dataset: resize items to ``size`` and, when ``augment`` is true, augment them with a generator seeded
    by ``(seed, epoch, index)``.

    Call :meth:`set_epoch` at the start of every epoch (it also calls the wrapped dataset's ``set_epoch``, if any).
    The epoch is shared with DataLoader workers started earlier (:class:`~mlrd_core.data.epoch.EpochDataset`).
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        size: Sequence[int] | None = None,
        augment: bool = False,
        seed: int = 0,
        config: AugmentConfig | None = None,
    ) -> None:
        self.size: tuple[int, int] | None = None
        if size is not None:
            if len(size) != 2 or min(int(s) for s in size) < 1:
                raise DataError(f"size must be (H, W) with H, W >= 1, got {size!r}")
            self.size = (int(size[0]), int(size[1]))
        if seed < 0:
            raise DataError(f"seed must be >= 0, got {seed}")
        super().__init__()
        self.dataset = dataset
        self.augment = bool(augment)
        self.seed = int(seed)
        self.config = config or AugmentConfig()

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (>= 0), and the wrapped dataset's epoch."""
        super().set_epoch(epoch)
        inner = getattr(self.dataset, "set_epoch", None)
        if inner is not None:  # a dataset whose items depend on the epoch (a weighted mixture)
            inner(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of length {n}")
        index %= n
        sample = self.dataset[index]
        if self.size is not None:
            sample = resize_sample(sample, self.size)
        if self.augment:
            sample = augment_sample(sample, item_generator(self.seed, self.epoch, index), self.config)
        return sample

    def __repr__(self) -> str:
        return (
            f"TransformedDataset({self.dataset!r}, size={self.size}, augment={self.augment}, seed={self.seed}, "
            f"epoch={self.epoch})"
        )
