"""Evaluation protocols as data: how a predicted depth map meets its ground truth before any metric is computed.

A :class:`Protocol` is a frozen record. Applying it (:meth:`Protocol.prepare`) runs five steps, always in this
order; every step is a field, so two numbers computed under two protocol names differ only by what the records
say:

1. **resize** the prediction to the ground-truth resolution when the sizes differ
   (``F.interpolate(pred, size=gt_hw, mode=resize_mode, align_corners=False)``; a network predicts at
   ``input_size``, the ground truth is usually larger);
2. **crop** prediction, ground truth and external mask to ``crop`` (rows ``top:bottom``, columns ``left:right``,
   half-open, in pixels of ``crop.reference_size``; see :meth:`Crop.bounds` for other sizes);
3. **validity mask** ``valid = isfinite(g) & (g > min_depth) & (g < max_depth) & mask`` (``max_depth=None``
   drops the upper test, ``mask=None`` the external one);
4. **ground-truth cap** ``g ← min(g, gt_cap)`` on valid pixels, when ``gt_cap`` is set (none of the built-in
   protocols caps);
5. **prediction clamp** ``p ← clip(p, clamp[0], clamp[1])`` (``clamp[1] = None``: no upper bound). The lower bound
   is always positive, so every logarithm of the metrics is finite.

The sixth field that matters to the numbers, ``aggregation``, is read by :mod:`mlrd_core.metrics`:
``"per-image"`` averages per-image metrics over images (the authors' evaluation and the common NYUv2 practice),
``"pooled"`` computes each metric once over all valid pixels of the set.

Built-in protocols (``PROTOCOLS``; the decisions behind each are listed in ``docs/evaluation.md``):

================ ============ ======================== ============== ================ ==========
name             crop         valid ground truth       clamp p        resize           aggregate
================ ============ ======================== ============== ================ ==========
``nyu-lee-kim``  20:460,      g > 0 (no upper bound)   [1e-4, ∞)      bicubic          per-image
                 24:616
                 on 480×640
``nyu-eigen``    45:471,      1e-3 < g < 10 m          [1e-3, 10]     bilinear         per-image
                 41:601
                 on 480×640
``make3d-c1``    none         0 < g < 70 m             [1e-3, 70]     bilinear (AA)    per-image
``make3d-c2``    none         g > 0 (all depths)       [1e-3, ∞)      bilinear (AA)    per-image
``synthetic``    none         0.1 < g < 20 m           [0.1, 20]      bilinear         per-image
================ ============ ======================== ============== ================ ==========

New protocols are registered with :func:`register_protocol`, usually as a variant of a built-in one:
``register_protocol(get_protocol("nyu-lee-kim").variant("nyu-pooled", aggregation="pooled"))``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mlrd_core.errors import ConfigError, ShapeError

Aggregation = Literal["per-image", "pooled"]
ResizeMode = Literal["bilinear", "bicubic", "nearest", "nearest-exact", "area"]
CropPolicy = Literal["scale", "error"]

AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)
CROP_POLICIES: tuple[str, ...] = get_args(CropPolicy)

#: Relative aspect-ratio difference up to which a crop is scaled to a ground truth of another size (policy
#: ``"scale"``). Beyond it the ground truth is not a resized version of the reference frame, and scaling would
#: crop a different region: an error.
CROP_ASPECT_TOLERANCE = 0.01

# --------------------------------------------------------------------------------------------------------------
# Named constants, each with its source.
# --------------------------------------------------------------------------------------------------------------

#: Network input (H, W) of the paper, §4.1: "The spatial resolution of an input image to the encoder is 288×384".
PAPER_INPUT_SIZE: tuple[int, int] = (288, 384)

#: NYUv2 ground-truth resolution (H, W): the 640×480 Kinect frames of Silberman et al. (ECCV 2012); also
#: ``original_image_size = [480, 640]`` in the authors' evaluation.py.
NYU_GT_SIZE: tuple[int, int] = (480, 640)

#: The authors' NYUv2 evaluation crop: ``depth_gt[:, :, 0 + 20:480 - 20, 0 + 24:640 - 24]`` in evaluation.py of
#: github.com/jaehanlee-mcl/multi-loss-rebalancing-depth (20 rows top and bottom, 24 columns left and right).
LEE_KIM_CROP_ROWS: tuple[int, int] = (20, 460)
LEE_KIM_CROP_COLS: tuple[int, int] = (24, 616)

#: The authors' prediction floor: ``relu(pred - 0.0001) + 0.0001`` (= max(pred, 1e-4)) before and after the
#: bicubic upsampling in evaluation.py. They have no upper clamp and no ground-truth range test.
LEE_KIM_PRED_MIN = 1e-4

#: Eigen et al. (NIPS 2014) crop of the region where the Kinect depth is registered to the RGB frame, as the
#: community evaluates it: ``eval_mask[45:471, 41:601] = 1`` in BTS's bts_eval.py (Lee et al., 2019), AdaBins
#: and their descendants.
EIGEN_CROP_ROWS: tuple[int, int] = (45, 471)
EIGEN_CROP_COLS: tuple[int, int] = (41, 601)

#: NYUv2 evaluation depth range of the same code (``min_depth_eval = 1e-3``, ``max_depth_eval = 10``): valid
#: ground truth is ``1e-3 < g < 10`` and predictions are clamped to ``[1e-3, 10]``.
NYU_MIN_DEPTH = 1e-3
NYU_MAX_DEPTH = 10.0

#: Make3D criterion C1 (Liu, Salzmann & He, CVPR 2014; used by Fu et al. [10] and the paper's Table 4, "Evaluated
#: in 0-70m depth range"): only pixels whose ground truth is below 70 m are evaluated. Criterion C2 of the same
#: works evaluates every pixel with ground truth (the laser's range ends near 81.9 m, the value of the sky).
MAKE3D_C1_MAX_DEPTH = 70.0

#: Network input (H, W) we use for Make3D (our decision): the paper's pixel count (288·384) in the portrait 3:4
#: aspect of the Make3D photographs (1704 wide × 2272 high).
MAKE3D_INPUT_SIZE: tuple[int, int] = (384, 288)

#: Our synthetic rooms have depth in 0.5–10 m. The evaluation range (our decision) leaves a 5× margin on the near
#: side and 2× on the far side, so it only drops unknown pixels (stored as 0) and bounds runaway predictions.
SYNTHETIC_MIN_DEPTH = 0.1
SYNTHETIC_MAX_DEPTH = 20.0


# --------------------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------------------


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


@dataclass(frozen=True)
class Crop:
    """An evaluation crop: ground truth ``g[top:bottom, left:right]`` on a ``reference_size`` (H, W) frame.

    ``bottom`` and ``right`` are exclusive stops, exactly as in the slice, so ``Crop(20, 460, 24, 616, (480,
    640))`` keeps 440 rows and 592 columns. ``on_other_size`` says what happens when the ground truth has another
    size: ``"scale"`` maps every bound proportionally, ``"error"`` refuses (see :meth:`bounds`).
    """

    top: int
    bottom: int
    left: int
    right: int
    reference_size: tuple[int, int]
    on_other_size: CropPolicy = "scale"

    def __post_init__(self) -> None:
        ref_h, ref_w = self.reference_size
        if ref_h <= 0 or ref_w <= 0:
            raise ConfigError(f"crop reference size must be positive, but got {self.reference_size}")
        if not (0 <= self.top < self.bottom <= ref_h and 0 <= self.left < self.right <= ref_w):
            raise ConfigError(
                "a crop needs 0 <= top < bottom <= H and 0 <= left < right <= W on its reference frame, but got "
                f"rows {self.top}:{self.bottom}, cols {self.left}:{self.right} on {ref_h}x{ref_w}"
            )
        if self.on_other_size not in CROP_POLICIES:
            raise ConfigError(
                f"crop on_other_size must be one of {', '.join(CROP_POLICIES)}, but got {self.on_other_size!r}"
            )

    def bounds(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)`` for a ground truth of ``size`` (H, W).

        On the reference size the bounds are returned unchanged. On another size, policy ``"scale"`` maps each
        bound b of an axis of reference length R to ``floor(b · n / R + 1/2)`` (round half up) on length n, which
        keeps the same fraction of the frame (the crop exists to drop the unregistered border of the Kinect
        frame, which scales with the image); e.g. the Eigen crop 45:471, 41:601 on 480×640 becomes 23:236,
        21:301 on 240×320. It requires the aspect ratio to match the reference within
        ``CROP_ASPECT_TOLERANCE``; otherwise, and under policy ``"error"``, a :class:`ShapeError` is raised.
        """
        h, w = size
        ref_h, ref_w = self.reference_size
        if (h, w) == (ref_h, ref_w):
            return self.top, self.bottom, self.left, self.right
        where = f"crop rows {self.top}:{self.bottom}, cols {self.left}:{self.right} is defined on {ref_h}x{ref_w}"
        if self.on_other_size == "error":
            raise ShapeError(f"{where}; expected ground truth of that size, got {h}x{w}")
        if abs((h / w) / (ref_h / ref_w) - 1.0) > CROP_ASPECT_TOLERANCE:
            raise ShapeError(
                f"{where}; it scales to another size only with the same aspect ratio "
                f"(H/W = {ref_h / ref_w:.4f}), got {h}x{w} (H/W = {h / w:.4f})"
            )
        sy, sx = h / ref_h, w / ref_w
        top, bottom = _round_half_up(self.top * sy), _round_half_up(self.bottom * sy)
        left, right = _round_half_up(self.left * sx), _round_half_up(self.right * sx)
        if bottom <= top or right <= left:
            raise ShapeError(f"{where}; scaled to {h}x{w} it keeps no pixel (rows {top}:{bottom}, cols {left}:{right})")
        return top, bottom, left, right


class Prepared(NamedTuple):
    """What :meth:`Protocol.prepare` hands to the metrics: all ``(B, h, w)`` on the ground truth's cropped grid.

    ``pred`` and ``target`` are float64; ``valid`` is bool. Pixels outside ``valid`` carry unspecified (finite or
    not) values and must not be read.
    """

    pred: Tensor
    target: Tensor
    valid: Tensor


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol (see the module docstring for the order of the steps).

    Fields:
        name: registry key, stored with every metric.
        description: one line for tables and ``--help``.
        source: where the protocol comes from (paper, code, or "ours" with the reason).
        gt_size: the benchmark's ground-truth resolution (H, W), or None when it varies; the crop's reference.
        input_size: network input (H, W) that the protocol's published numbers assume. It documents the
            evaluation pipeline; the metric computation itself never reads it (predictions of any size are
            resized to the ground truth).
        resize_mode: ``F.interpolate`` mode bringing the prediction to the ground-truth size
            (``align_corners=False`` for the linear modes).
        resize_antialias: antialias when the resize shrinks (bilinear / bicubic only).
        crop: the evaluation crop, or None.
        min_depth, max_depth: valid ground truth is ``min_depth < g < max_depth`` (strict; ``max_depth=None``:
            no upper bound).
        gt_cap: ground truth above it is set to it (after the validity test), or None.
        clamp: prediction bounds ``(low, high)``, ``low > 0``; ``high=None``: no upper bound.
        aggregation: ``"per-image"`` (mean over images of per-image metrics) or ``"pooled"`` (one metric over
            all valid pixels of the set).
        input_resize_mode, input_antialias: how the evaluation brings a test image to ``input_size`` before the
            network (:meth:`resize_input`; ``align_corners=False``). Default bilinear, antialiased when shrinking;
            ``nyu-lee-kim`` uses the authors' non-antialiased bicubic.
    """

    name: str
    description: str
    source: str
    gt_size: tuple[int, int] | None
    input_size: tuple[int, int]
    resize_mode: ResizeMode
    crop: Crop | None
    min_depth: float
    max_depth: float | None
    clamp: tuple[float, float | None]
    aggregation: Aggregation
    gt_cap: float | None = None
    resize_antialias: bool = False
    input_resize_mode: ResizeMode = "bilinear"
    input_antialias: bool = True

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip():
            raise ConfigError(f"a protocol name must be a non-empty word, but got {self.name!r}")
        for field, size in (("gt_size", self.gt_size), ("input_size", self.input_size)):
            if size is not None and (len(size) != 2 or min(size) <= 0):
                raise ConfigError(f"protocol {self.name!r}: {field} must be (H, W) > 0, but got {size}")
        if self.input_resize_mode not in RESIZE_MODES:
            raise ConfigError(
                f"protocol {self.name!r}: input_resize_mode must be one of {', '.join(RESIZE_MODES)}, "
                f"but got {self.input_resize_mode!r}"
            )
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(
                f"protocol {self.name!r}: resize_mode must be one of {', '.join(RESIZE_MODES)}, "
                f"but got {self.resize_mode!r}"
            )
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(
                f"protocol {self.name!r}: aggregation must be one of {', '.join(AGGREGATIONS)}, "
                f"but got {self.aggregation!r}"
            )
        if self.crop is not None and self.gt_size is not None and self.crop.reference_size != self.gt_size:
            raise ConfigError(
                f"protocol {self.name!r}: the crop's reference size must equal gt_size, but got "
                f"{self.crop.reference_size} and {self.gt_size}"
            )
        if not (math.isfinite(self.min_depth) and self.min_depth >= 0):
            raise ConfigError(f"protocol {self.name!r}: min_depth >= 0 must hold, but got {self.min_depth}")
        if self.max_depth is not None and not self.max_depth > self.min_depth:
            raise ConfigError(
                f"protocol {self.name!r}: min_depth < max_depth must hold, "
                f"but got (min_depth={self.min_depth}, max_depth={self.max_depth})"
            )
        if len(self.clamp) != 2:
            raise ConfigError(f"protocol {self.name!r}: clamp must be (low, high), but got {self.clamp}")
        low, high = self.clamp
        if not (math.isfinite(low) and low > 0):
            raise ConfigError(
                f"protocol {self.name!r}: the prediction clamp's low bound must be > 0 (logarithms follow), "
                f"but got {low}"
            )
        if high is not None and not high > low:
            raise ConfigError(f"protocol {self.name!r}: clamp low < high must hold, but got (low={low}, high={high})")
        if self.gt_cap is not None and not self.gt_cap > self.min_depth:
            raise ConfigError(
                f"protocol {self.name!r}: gt_cap > min_depth must hold, "
                f"but got (gt_cap={self.gt_cap}, min_depth={self.min_depth})"
            )

    def variant(self, name: str, **changes: object) -> Protocol:
        """A copy under a new ``name`` with some fields changed (validated like any protocol).

        ``get_protocol("nyu-lee-kim").variant("nyu-nocrop-pooled", crop=None, aggregation="pooled")``
        """
        try:
            return dataclasses.replace(self, name=name, **changes)  # type: ignore[arg-type]
        except TypeError as exc:
            valid = ", ".join(f.name for f in dataclasses.fields(self))
            raise ConfigError(f"protocol variant {name!r}: {exc}; valid fields: {valid}") from None

    def crop_bounds(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)`` of the evaluation region on a ground truth of ``size`` (H, W)."""
        if self.crop is None:
            return 0, size[0], 0, size[1]
        return self.crop.bounds(size)

    def valid_mask(self, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """``isfinite(g) & (g > min_depth) & (g < max_depth) & mask`` (elementwise; no crop)."""
        valid = torch.isfinite(target) & (target > self.min_depth)
        if self.max_depth is not None:
            valid &= target < self.max_depth
        if mask is not None:
            valid &= mask
        return valid

    def prepare(
        self,
        pred: Tensor | np.ndarray,
        target: Tensor | np.ndarray,
        mask: Tensor | np.ndarray | None = None,
    ) -> Prepared:
        """Apply resize → crop → validity mask → ground-truth cap → prediction clamp.

        Shapes: ``pred`` and ``target`` are ``(B, 1, H, W)``, ``(B, H, W)`` or ``(H, W)`` (ranks may differ;
        batch sizes must match); ``pred`` may have another H, W than ``target``. ``mask`` (bool) has the
        ground truth's shape. Returns float64 ``pred``, ``target`` and a bool ``valid``, all ``(B, h, w)`` on the
        cropped ground-truth grid. Non-finite predictions are an error (a :class:`ShapeError` naming their count);
        non-finite ground truth is only invalid.
        """
        p = as_depth_batch(pred, "pred")
        g = as_depth_batch(target, "target")
        if p.shape[0] != g.shape[0]:
            raise ShapeError(
                f"pred and target must hold the same number of images: expected pred batch {g.shape[0]}, "
                f"got pred {tuple(p.shape)} and target {tuple(g.shape)}"
            )
        if p.device != g.device:
            raise ShapeError(f"expected pred and target on the same device, got {p.device} and {g.device}")
        n_bad = int((~torch.isfinite(p)).sum())
        if n_bad:
            raise ShapeError(
                f"expected finite predictions, got {n_bad} non-finite value(s) (NaN or ±inf) out of {p.numel()} "
                f"in pred {tuple(p.shape)}"
            )
        m: Tensor | None = None
        if mask is not None:
            m = as_mask_batch(mask, g)

        h, w = g.shape[-2:]
        # float64 for numerical honesty; MPS has no float64, so it stays in float32 there.
        work = torch.float64 if p.device.type != "mps" else torch.float32
        p = p.to(work)
        g = g.to(work)
        if p.shape[-2:] != g.shape[-2:]:
            p = self.resize(p, (h, w))
        top, bottom, left, right = self.crop_bounds((h, w))
        p = p[:, top:bottom, left:right]
        g = g[:, top:bottom, left:right]
        if m is not None:
            m = m[:, top:bottom, left:right]
        valid = self.valid_mask(g, m)
        if self.gt_cap is not None:
            g = g.clamp(max=self.gt_cap)
        low, high = self.clamp
        p = p.clamp(min=low, max=high)
        return Prepared(p, g, valid)

    def resize_input(self, image: Tensor, size: tuple[int, int]) -> Tensor:
        """Resize a ``(B, C, h, w)`` test image batch to the network input ``size`` (H, W) with this protocol's
        ``input_resize_mode`` / ``input_antialias`` (unchanged when it already has that size). Values are not
        clamped: bicubic may overshoot [0, 1] slightly, as in the authors' evaluation."""
        if tuple(image.shape[-2:]) == tuple(size):
            return image
        if self.input_resize_mode in ("bilinear", "bicubic"):
            return F.interpolate(
                image, size=size, mode=self.input_resize_mode, align_corners=False, antialias=self.input_antialias
            )
        return F.interpolate(image, size=size, mode=self.input_resize_mode)

    def resize(self, pred: Tensor, size: tuple[int, int]) -> Tensor:
        """Resize a ``(B, h, w)`` prediction to ``size`` (H, W) with this protocol's mode."""
        x = pred[:, None]
        if self.resize_mode in ("bilinear", "bicubic"):
            x = F.interpolate(x, size=size, mode=self.resize_mode, align_corners=False, antialias=self.resize_antialias)
        else:
            x = F.interpolate(x, size=size, mode=self.resize_mode)
        return x[:, 0]


# --------------------------------------------------------------------------------------------------------------
# Shape normalization (public: metrics and visualization use it)
# --------------------------------------------------------------------------------------------------------------

_SHAPES = "(B, 1, H, W), (B, H, W) or (H, W)"


def _as_tensor(x: Tensor | np.ndarray, what: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise ShapeError(f"expected {what} as a torch.Tensor or numpy array, got {type(x).__name__}")


def as_depth_batch(x: Tensor | np.ndarray, what: str = "depth") -> Tensor:
    """View a depth map of shape ``(B, 1, H, W)``, ``(B, H, W)`` or ``(H, W)`` as ``(B, H, W)`` (no copy).

    Raises :class:`ShapeError` on another rank, a channel count other than 1, an empty map or a non-floating
    dtype (integer depth is usually raw sensor units: convert it to metres first).
    """
    t = _as_tensor(x, what)
    if t.dim() == 2:
        t = t[None]
    elif t.dim() == 4:
        if t.shape[1] != 1:
            raise ShapeError(f"expected {what} of shape (B, 1, H, W), got {tuple(t.shape)}")
        t = t[:, 0]
    elif t.dim() != 3:
        raise ShapeError(f"expected {what} of shape {_SHAPES}, got {tuple(t.shape)}")
    if t.numel() == 0:
        raise ShapeError(f"expected a non-empty {what}, got shape {tuple(x.shape)}")
    if not t.is_floating_point():
        raise ShapeError(f"expected a floating-point {what} in metres, got dtype {t.dtype}")
    return t


def as_mask_batch(mask: Tensor | np.ndarray, target: Tensor) -> Tensor:
    """View a bool mask with the ground truth's shape as ``(B, H, W)`` like ``target`` (already ``(B, H, W)``)."""
    m = _as_tensor(mask, "mask")
    if m.dtype != torch.bool:
        raise ShapeError(f"expected a bool mask, got dtype {m.dtype}")
    if m.dim() == 2:
        m = m[None]
    elif m.dim() == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.shape != target.shape:
        raise ShapeError(
            f"expected mask of the target's shape {tuple(target.shape)} (or with a channel axis of 1), "
            f"got {tuple(mask.shape)}"
        )
    return m.to(target.device)


# --------------------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------------------

NYU_LEE_KIM = Protocol(
    name="nyu-lee-kim",
    description="NYUv2, the authors' evaluation: crop 20:460, 24:616; all g > 0; p >= 1e-4; per-image mean",
    source=(
        "Lee & Kim, ECCV 2020, evaluation.py of github.com/jaehanlee-mcl/multi-loss-rebalancing-depth "
        "(the 480x640 image resized bicubically, not antialiased, to the 288x384 input; bicubic upsampling of "
        "the output to 480x640, crop, relu(p - 1e-4) + 1e-4, per-image metrics averaged over the 654 test images)"
    ),
    gt_size=NYU_GT_SIZE,
    input_size=PAPER_INPUT_SIZE,
    resize_mode="bicubic",
    crop=Crop(*LEE_KIM_CROP_ROWS, *LEE_KIM_CROP_COLS, reference_size=NYU_GT_SIZE),
    # The authors test on densely filled maps and use no mask; g > 0 only drops pixels whose log would be -inf.
    min_depth=0.0,
    max_depth=None,
    clamp=(LEE_KIM_PRED_MIN, None),
    aggregation="per-image",
    # evaluation.py: nn.Upsample(size=[288, 384], mode='bicubic') on the 480x640 test image (no antialiasing)
    input_resize_mode="bicubic",
    input_antialias=False,
)

NYU_EIGEN = Protocol(
    name="nyu-eigen",
    description="NYUv2, Eigen crop 45:471, 41:601; valid 1e-3 < g < 10 m; p clamped to [1e-3, 10]; per-image",
    source=(
        "Eigen, Puhrsch & Fergus, NIPS 2014 (crop); range, clamp and per-image averaging as in bts_eval.py of "
        "BTS (Lee et al., 2019) and AdaBins (Bhat et al., CVPR 2021)"
    ),
    gt_size=NYU_GT_SIZE,
    input_size=PAPER_INPUT_SIZE,
    resize_mode="bilinear",
    crop=Crop(*EIGEN_CROP_ROWS, *EIGEN_CROP_COLS, reference_size=NYU_GT_SIZE),
    min_depth=NYU_MIN_DEPTH,
    max_depth=NYU_MAX_DEPTH,
    clamp=(NYU_MIN_DEPTH, NYU_MAX_DEPTH),
    aggregation="per-image",
)

MAKE3D_C1 = Protocol(
    name="make3d-c1",
    description="Make3D criterion C1: pixels with 0 < g < 70 m, no crop; p clamped to [1e-3, 70]; per-image",
    source=(
        "Saxena et al., TPAMI 2009 (data); criterion C1 of Liu et al., CVPR 2014, as reported by Fu et al. [10] "
        "and the paper's Table 4 ('Evaluated in 0-70m'); clamp, resize and per-image mean are our decisions"
    ),
    gt_size=None,
    input_size=MAKE3D_INPUT_SIZE,
    resize_mode="bilinear",
    resize_antialias=True,
    crop=None,
    min_depth=0.0,
    max_depth=MAKE3D_C1_MAX_DEPTH,
    clamp=(NYU_MIN_DEPTH, MAKE3D_C1_MAX_DEPTH),
    aggregation="per-image",
)

MAKE3D_C2 = MAKE3D_C1.variant(
    "make3d-c2",
    description="Make3D criterion C2: every pixel with ground truth (g > 0), no crop; p >= 1e-3; per-image",
    source=(
        "Saxena et al., TPAMI 2009 (data); criterion C2 (all depths) of Liu et al., CVPR 2014, also reported by "
        "Liu et al. [34] (TPAMI 2016) and Fu et al. [10]; clamp, resize and per-image mean are our decisions"
    ),
    max_depth=None,
    clamp=(NYU_MIN_DEPTH, None),
)

SYNTHETIC = Protocol(
    name="synthetic",
    description="our synthetic rooms: no crop; valid 0.1 < g < 20 m; p clamped to [0.1, 20]; per-image",
    source="ours (mlrd_core.data.synthetic renders depth in 0.5-10 m; the range only drops unknown pixels)",
    gt_size=None,
    input_size=PAPER_INPUT_SIZE,
    resize_mode="bilinear",
    crop=None,
    min_depth=SYNTHETIC_MIN_DEPTH,
    max_depth=SYNTHETIC_MAX_DEPTH,
    clamp=(SYNTHETIC_MIN_DEPTH, SYNTHETIC_MAX_DEPTH),
    aggregation="per-image",
)

#: name -> protocol. Extend with :func:`register_protocol`.
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (NYU_LEE_KIM, NYU_EIGEN, MAKE3D_C1, MAKE3D_C2, SYNTHETIC)}


def list_protocols() -> tuple[str, ...]:
    """Registered protocol names, sorted."""
    return tuple(sorted(PROTOCOLS))


def get_protocol(name: str | Protocol) -> Protocol:
    """The protocol registered as ``name`` (a :class:`Protocol` passes through unchanged).

    An unknown name raises :class:`ConfigError` listing the valid names, with ``difflib`` suggestions.
    """
    if isinstance(name, Protocol):
        return name
    if not isinstance(name, str):
        raise ConfigError(f"expected a protocol name or Protocol, got {type(name).__name__}")
    try:
        return PROTOCOLS[name]
    except KeyError:
        near = difflib.get_close_matches(name, list(PROTOCOLS), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        raise ConfigError(
            f"unknown evaluation protocol {name!r}; valid protocols: {', '.join(list_protocols())}{hint}"
        ) from None


def register_protocol(protocol: Protocol, *, overwrite: bool = False) -> Protocol:
    """Add ``protocol`` to :data:`PROTOCOLS` under its name and return it.

    Registering a name twice is an error unless ``overwrite`` is true or the record is identical (so a module
    that registers its protocols can be imported twice).
    """
    if not isinstance(protocol, Protocol):
        raise ConfigError(f"expected a Protocol, got {type(protocol).__name__}")
    existing = PROTOCOLS.get(protocol.name)
    if existing is not None and existing != protocol and not overwrite:
        raise ConfigError(
            f"protocol {protocol.name!r} is already registered with other settings; "
            "pick another name (Protocol.variant) or pass overwrite=True"
        )
    PROTOCOLS[protocol.name] = protocol
    return protocol


__all__ = [
    "AGGREGATIONS",
    "MAKE3D_C1",
    "MAKE3D_C2",
    "NYU_EIGEN",
    "NYU_LEE_KIM",
    "PROTOCOLS",
    "RESIZE_MODES",
    "SYNTHETIC",
    "Aggregation",
    "Crop",
    "Prepared",
    "Protocol",
    "as_depth_batch",
    "as_mask_batch",
    "get_protocol",
    "list_protocols",
    "register_protocol",
]
