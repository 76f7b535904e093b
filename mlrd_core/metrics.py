"""The depth metrics of Table 2 (Lee & Kim, ECCV 2020), named and streaming.

With p the (clamped) prediction and g the ground truth at the N valid pixels of an evaluation region (chosen by
an evaluation protocol, :mod:`mlrd_core.protocols`), and d = ln p − ln g:

============ ============ ========================================================== =========
key          label        formula                                                    better
============ ============ ========================================================== =========
``delta1``   δ1           (1/N) Σ [max(p/g, g/p) < 1.25]   (a fraction, not a %)     higher
``delta2``   δ2           (1/N) Σ [max(p/g, g/p) < 1.25²]                            higher
``delta3``   δ3           (1/N) Σ [max(p/g, g/p) < 1.25³]                            higher
``rmse``     RMSE lin     sqrt((1/N) Σ (p − g)²)                                     lower
``abs_rel``  ARD          (1/N) Σ |p − g| / g                                        lower
``log10``    log10        (1/N) Σ |log10 p − log10 g|                                lower
``rmse_log`` RMSE log     sqrt((1/N) Σ d²)                                           lower
``rmse_si``  RMSE si      sqrt((1/N) Σ d² − ((1/N) Σ d)²)  (Eigen et al. 2014)       lower
``sq_rel``   SRD          (1/N) Σ (p − g)² / g                                       lower
============ ============ ========================================================== =========

Aggregation (the protocol's ``aggregation``):

- ``"per-image"``: each metric is computed per image over that image's valid pixels, then averaged over images
  with equal weight. In particular RMSE is the mean of per-image RMSEs (not the root of the mean square), and
  RMSE si removes the global scale of each image separately. This is what the authors' evaluation.py does
  (their ``test_metrics.mean(axis=0)``) and what BTS / AdaBins do on NYUv2.
- ``"pooled"``: each metric is computed once over all valid pixels of the whole set (N = their total count);
  RMSE is the root of the global mean square and RMSE si removes one global scale for the set.

An image without a valid pixel (after crop and mask) contributes nothing; it is counted in
``count.skipped``. Computing metrics when no image had a valid pixel is an error.

Streaming keeps float64 accumulators on the device of the first batch: per image, the sum of per-image metric
values; pooled, the sums of each pixel term plus the mean and centred second moment of d, merged batch by batch
with Chan et al.'s update (no catastrophic cancellation in ``mean d² − (mean d)²``). Streaming over any split of
the images into batches gives the one-shot result to float64 rounding.

The δ threshold is strict, as in Table 2 (``<``); the authors' code uses ``<=``, which differs only on pixels
whose ratio is exactly 1.25ⁿ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from mlrd_core.errors import ShapeError
from mlrd_core.protocols import Prepared, Protocol, get_protocol

#: Base of the δ thresholds, Table 2: δ_n counts pixels with max(p/g, g/p) < 1.25**n.
DELTA_BASE = 1.25


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its key, its table labels, its direction and its formula (for docs and ``--help``)."""

    name: str
    label: str
    latex: str
    higher_is_better: bool
    formula: str


#: The metrics of Table 2 in the column order of Tables 3 and 6.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("delta1", "δ1", r"$\delta_1$", True, "mean[max(p/g, g/p) < 1.25]"),
    MetricSpec("delta2", "δ2", r"$\delta_2$", True, "mean[max(p/g, g/p) < 1.25^2]"),
    MetricSpec("delta3", "δ3", r"$\delta_3$", True, "mean[max(p/g, g/p) < 1.25^3]"),
    MetricSpec("rmse", "RMSE lin", r"RMSE$_{\mathrm{lin}}$", False, "sqrt(mean (p - g)^2)"),
    MetricSpec("abs_rel", "ARD", "ARD", False, "mean |p - g| / g"),
    MetricSpec("log10", "log10", r"$\log_{10}$", False, "mean |log10 p - log10 g|"),
    MetricSpec("rmse_log", "RMSE log", r"RMSE$_{\log}$", False, "sqrt(mean d^2), d = ln p - ln g"),
    MetricSpec("rmse_si", "RMSE si", r"RMSE$_{\mathrm{si}}$", False, "sqrt(mean d^2 - (mean d)^2)"),
    MetricSpec("sq_rel", "SRD", "SRD", False, "mean (p - g)^2 / g"),
)
METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
HIGHER_IS_BETTER: dict[str, bool] = {m.name: m.higher_is_better for m in METRICS}
METRIC_LABELS: dict[str, str] = {m.name: m.label for m in METRICS}
METRIC_LATEX: dict[str, str] = {m.name: m.latex for m in METRICS}
METRIC_BY_NAME: dict[str, MetricSpec] = {m.name: m for m in METRICS}

# Columns of the per-image moment rows: valid count, δ counts, and the sums of the pixel terms; _SD and _M2 are
# the sum of d and the centred sum of squares Σ (d − mean d)².
_N, _C1, _C2, _C3, _SE, _ARE, _L10, _SL, _SQR, _SD, _M2 = range(11)
_N_MOMENTS = 11


class MetricCount(NamedTuple):
    """What a result was computed from: ``images`` with a valid pixel, their valid ``pixels``, and the number
    of ``skipped`` images (no valid pixel after crop and mask)."""

    images: int
    pixels: int
    skipped: int


class MetricResult(dict[str, float]):
    """The 9 metrics by name (a plain ``dict`` to every consumer), plus two attributes that are not keys:
    ``protocol`` (the protocol's name, to be stored with every metric) and ``count`` (a :class:`MetricCount`)."""

    protocol: str
    count: MetricCount

    def __init__(self, values: dict[str, float], protocol: str, count: MetricCount) -> None:
        super().__init__(values)
        self.protocol = protocol
        self.count = count

    def __repr__(self) -> str:
        return f"MetricResult({dict(self)!r}, protocol={self.protocol!r}, count={tuple(self.count)})"


def image_moments(prepared: Prepared) -> Tensor:
    """Per-image sums of every pixel term over the valid pixels: float64 ``(B, 11)``.

    Columns: N, the three δ counts, Σ(p−g)², Σ|p−g|/g, Σ|log10 p − log10 g|, Σd², Σ(p−g)²/g, Σd and
    Σ(d − d̄)² (d̄ the image's mean of d; two-pass, so the centred moment is exact to rounding).
    """
    p, g, v = prepared
    one = torch.ones((), dtype=p.dtype, device=p.device)
    # Invalid pixels become p = g = 1: every term is then finite and zero, except the δ counts and the centred
    # moment, which are masked explicitly.
    p = torch.where(v, p, one)
    g = torch.where(v, g, one)
    vf = v.to(p.dtype)
    dims = (1, 2)
    diff = p - g
    sq = diff * diff
    ratio = torch.maximum(p / g, g / p)
    d = torch.log(p) - torch.log(g)
    n = vf.sum(dims)
    sd = d.sum(dims)
    mean_d = sd / n.clamp(min=1)
    centred = (d - mean_d[:, None, None]) * vf
    cols = [n]
    cols += [((ratio < DELTA_BASE**k) & v).sum(dims).to(p.dtype) for k in (1, 2, 3)]
    cols += [
        sq.sum(dims),
        (diff.abs() / g).sum(dims),
        (torch.log10(p) - torch.log10(g)).abs().sum(dims),
        (d * d).sum(dims),
        (sq / g).sum(dims),
        sd,
        (centred * centred).sum(dims),
    ]
    return torch.stack(cols, dim=1)


def metrics_from_moments(m: Tensor) -> Tensor:
    """The 9 metrics (``METRIC_NAMES`` order) from moment rows ``(..., 11)``; rows with N = 0 give garbage."""
    n = m[..., _N].clamp(min=1)
    return torch.stack(
        [
            m[..., _C1] / n,
            m[..., _C2] / n,
            m[..., _C3] / n,
            torch.sqrt(m[..., _SE] / n),
            m[..., _ARE] / n,
            m[..., _L10] / n,
            torch.sqrt(m[..., _SL] / n),
            torch.sqrt((m[..., _M2] / n).clamp(min=0)),
            m[..., _SQR] / n,
        ],
        dim=-1,
    )


def combine_moments(rows: Tensor) -> Tensor:
    """Merge moment rows ``(K, 11)`` of disjoint pixel groups into one row ``(11,)``.

    Sums add; the centred moment follows Chan et al. (1979): M2 = Σ_k M2_k + Σ_k N_k (d̄_k − d̄)², with d̄ the
    pooled mean. Groups with N_k = 0 contribute nothing.
    """
    total = rows.sum(0)
    n_k = rows[:, _N]
    mean = total[_SD] / total[_N].clamp(min=1)
    mean_k = rows[:, _SD] / n_k.clamp(min=1)
    total[_M2] = rows[:, _M2].sum() + (n_k * (mean_k - mean) ** 2).sum()
    return total


class DepthMetrics:
    """Streaming depth metrics under one evaluation protocol (torchmetrics-style ``update`` / ``compute``).

    >>> metrics = DepthMetrics("nyu-lee-kim")
    >>> for pred, depth in batches:             # doctest: +SKIP
    ...     metrics.update(pred, depth)
    >>> metrics.compute()["rmse"]               # doctest: +SKIP

    ``update(pred, target, mask=None)`` takes ``(B, 1, H, W)``, ``(B, H, W)`` or ``(H, W)`` maps in metres;
    ``pred`` may have another resolution than ``target`` (the protocol resizes it). ``compute()`` returns a
    :class:`MetricResult`: exactly the keys ``METRIC_NAMES``, with ``.protocol`` and ``.count`` attributes.
    ``compute`` does not reset; ``reset()`` does.
    """

    higher_is_better: dict[str, bool] = HIGHER_IS_BETTER

    def __init__(self, protocol: str | Protocol = "nyu-lee-kim") -> None:
        self.protocol: Protocol = get_protocol(protocol)
        self.reset()

    @property
    def protocol_name(self) -> str:
        """The protocol's registry name, stored with every metric."""
        return self.protocol.name

    def reset(self) -> None:
        """Forget every update."""
        self._metric_sum: Tensor | None = None  # per-image: Σ over images of per-image metrics, (9,)
        self._moments: Tensor | None = None  # pooled: one combined moment row, (11,)
        self._images: Tensor | None = None
        self._skipped: Tensor | None = None
        self._pixels: Tensor | None = None

    @torch.no_grad()
    def update(
        self,
        pred: Tensor | np.ndarray,
        target: Tensor | np.ndarray,
        mask: Tensor | np.ndarray | None = None,
    ) -> None:
        """Add a batch: the protocol prepares it (resize, crop, mask, cap, clamp); its moments are accumulated."""
        if isinstance(pred, Tensor):
            pred = pred.detach()
        moments = image_moments(self.protocol.prepare(pred, target, mask))
        if self._pixels is not None:
            moments = moments.to(self._pixels.device)
        has = moments[:, _N] > 0
        images = has.sum()
        skipped = (~has).sum()
        pixels = moments[:, _N].sum()
        if self.protocol.aggregation == "per-image":
            batch_sum = (metrics_from_moments(moments) * has[:, None]).sum(0)
            self._metric_sum = batch_sum if self._metric_sum is None else self._metric_sum + batch_sum
        else:
            rows = moments if self._moments is None else torch.cat([self._moments[None], moments])
            self._moments = combine_moments(rows)
        self._images = images if self._images is None else self._images + images
        self._skipped = skipped if self._skipped is None else self._skipped + skipped
        self._pixels = pixels if self._pixels is None else self._pixels + pixels

    @property
    def count(self) -> MetricCount:
        """Images with a valid pixel, valid pixels, and skipped images seen since the last reset."""
        if self._images is None or self._pixels is None or self._skipped is None:
            return MetricCount(0, 0, 0)
        return MetricCount(int(self._images), round(float(self._pixels)), int(self._skipped))

    def compute(self) -> MetricResult:
        """The 9 metrics over everything seen since the last reset.

        Raises :class:`ShapeError` when no image had a valid pixel (the metrics would be 0/0).
        """
        count = self.count
        if count.images == 0:
            raise ShapeError(
                f"no valid pixel to evaluate under protocol {self.protocol.name!r}: expected at least one image "
                f"with a valid ground-truth pixel, got {count.skipped} image(s), all without one "
                f"(check the depth range {self.protocol.min_depth}..{self.protocol.max_depth}, the crop and the mask)"
            )
        if self.protocol.aggregation == "per-image":
            assert self._metric_sum is not None
            values = self._metric_sum / count.images
        else:
            assert self._moments is not None
            values = metrics_from_moments(self._moments)
        floats = values.tolist()
        result = MetricResult(dict(zip(METRIC_NAMES, floats, strict=True)), self.protocol.name, count)
        if not all(math.isfinite(x) for x in floats):  # pragma: no cover - guarded by the prepare() checks
            raise ShapeError(f"metrics are not finite: {dict(result)}")
        return result

    def __repr__(self) -> str:
        return f"DepthMetrics(protocol={self.protocol.name!r}, count={tuple(self.count)})"


def compute_metrics(
    pred: Tensor | np.ndarray,
    target: Tensor | np.ndarray,
    protocol: str | Protocol = "nyu-lee-kim",
    *,
    mask: Tensor | np.ndarray | None = None,
) -> MetricResult:
    """One-shot metrics of a batch: ``DepthMetrics(protocol)``, one ``update``, ``compute``.

    Returns a dict with exactly the keys of ``METRIC_NAMES`` (δ as fractions), plus ``.protocol`` / ``.count``
    attributes (see :class:`MetricResult`).
    """
    metrics = DepthMetrics(protocol)
    metrics.update(pred, target, mask)
    return metrics.compute()


__all__ = [
    "DELTA_BASE",
    "HIGHER_IS_BETTER",
    "METRICS",
    "METRIC_BY_NAME",
    "METRIC_LABELS",
    "METRIC_LATEX",
    "METRIC_NAMES",
    "DepthMetrics",
    "MetricCount",
    "MetricResult",
    "MetricSpec",
    "combine_moments",
    "compute_metrics",
    "image_moments",
    "metrics_from_moments",
]
