"""Loss-space benchmark: the fused :func:`~mlrd_core.losses.compute_losses` against the authors' operations.

Target (docs/performance.md): forward + backward of all 78 losses at least 10x faster than a direct transcription of the
authors' released code on the same tensors (B = 4, 1 x 288 x 384, float32, CPU), with values equal to float32
rounding. :func:`authors_losses` is that transcription (``utils/loss.py`` and ``compute_multi_loss`` of
github.com/jaehanlee-mcl/multi-loss-rebalancing-depth, operation for operation: a bicubic pyramid of ``P`` and of
``T`` at every scale, ``conv2d`` differences with freshly built ``1 x 2`` / ``2 x 1`` kernels, the normal loss
recomputed from the difference maps per term, and replicate pad + ``avg_pool2d`` for the 5/17/65 windows, each
window and each of ``P`` and ``T`` filtered separately). It is also the second reference of the loss tests.

:func:`run_losses_benchmark` times the cases in interleaved rounds (each round runs every case once, so machine
noise hits all of them alike) after warm-up rounds, and reports medians and ratios measured in the same run.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from rich.table import Table
from torch import Tensor

from mlrd_core.errors import ConfigError
from mlrd_core.losses import LOSS_BY_NAME, LOSS_NAMES, LOSS_SETS, canonical, compute_losses

__all__ = [
    "AUTHORS_TERMS",
    "BenchCase",
    "LossBenchmark",
    "authors_losses",
    "bench_inputs",
    "losses_summary",
    "render_losses_table",
    "run_losses_benchmark",
]

# ----------------------------------------------------------------------------------------------------------------
# The authors' operations (utils/loss.py), transcribed. Kernels take the input dtype instead of ``.float()`` so
# that float64 works; everything else is kept as released, including per-call kernel construction.


def _gradient_dx(img: Tensor) -> Tensor:
    """Authors' ``gradient_dx``: replicate-pad one column on the right, conv2d with ``[1, -1]`` (``∇_r``)."""
    channel = img.shape[1]
    kernel = torch.zeros((channel, 1, 1, 2), dtype=img.dtype, device=img.device)
    kernel[:, :, :, 0] = 1
    kernel[:, :, :, 1] = -1
    return F.conv2d(F.pad(img, pad=(0, 1, 0, 0), mode="replicate"), kernel, padding=0, groups=channel)


def _gradient_dy(img: Tensor) -> Tensor:
    """Authors' ``gradient_dy``: replicate-pad one row at the bottom, conv2d with ``[1, -1]ᵀ`` (``∇_c``)."""
    channel = img.shape[1]
    kernel = torch.zeros((channel, 1, 2, 1), dtype=img.dtype, device=img.device)
    kernel[:, :, 0, :] = 1
    kernel[:, :, 1, :] = -1
    return F.conv2d(F.pad(img, pad=(0, 0, 0, 1), mode="replicate"), kernel, padding=0, groups=channel)


def _loss_l1_by_channel(pred: Tensor, gt: Tensor) -> Tensor:
    """Authors' ``loss_L1_by_channel``: per-image mean absolute difference, ``(B, C, H, W) -> (B,)``."""
    return torch.mean(torch.abs(pred - gt), dim=[1, 2, 3])


def _norm_loss(pred_dx: Tensor, pred_dy: Tensor, gt_dx: Tensor, gt_dy: Tensor) -> Tensor:
    """Authors' ``norm_loss``: ``mean(1 - cos)`` of normals ``(-dx, -dy, 1)``, ``+1e-8`` in the denominator."""
    height = min(gt_dx.shape[2], gt_dy.shape[2])
    width = min(gt_dx.shape[3], gt_dy.shape[3])
    pdx, pdy = pred_dx[:, :, 0:height, 0:width], pred_dy[:, :, 0:height, 0:width]
    gdx, gdy = gt_dx[:, :, 0:height, 0:width], gt_dy[:, :, 0:height, 0:width]
    inner_pred = pdx * pdx + pdy * pdy + 1
    inner_gt = gdx * gdx + gdy * gdy + 1
    inner_gt_pred = pdx * gdx + pdy * gdy + 1
    norm_loss_map = 1 - inner_gt_pred / (torch.pow(inner_pred, 0.5) * torch.pow(inner_gt, 0.5) + 0.00000001)
    return torch.mean(norm_loss_map, dim=[1, 2, 3])


def _loss_for_derivative(pred: Tensor, gt: Tensor) -> tuple[Tensor, ...]:
    """Authors' ``loss_for_derivative``: the 9 terms ``D, r, c, N, rr, rc, cc, Nr, Nc`` of one scale."""
    pred_dx = _gradient_dx(pred)
    pred_dy = _gradient_dy(pred)
    pred_dx2 = _gradient_dx(pred_dx)
    pred_dxy = _gradient_dx(pred_dy)
    pred_dy2 = _gradient_dy(pred_dy)
    gt_dx = _gradient_dx(gt)
    gt_dy = _gradient_dy(gt)
    gt_dx2 = _gradient_dx(gt_dx)
    gt_dxy = _gradient_dx(gt_dy)
    gt_dy2 = _gradient_dy(gt_dy)
    return (
        _loss_l1_by_channel(pred, gt),
        _loss_l1_by_channel(pred_dx, gt_dx),
        _loss_l1_by_channel(pred_dy, gt_dy),
        _norm_loss(pred_dx, pred_dy, gt_dx, gt_dy),
        _loss_l1_by_channel(pred_dx2, gt_dx2),
        _loss_l1_by_channel(pred_dxy, gt_dxy),
        _loss_l1_by_channel(pred_dy2, gt_dy2),
        _norm_loss(pred_dx2, pred_dxy, gt_dx2, gt_dxy),
        _norm_loss(pred_dxy, pred_dy2, gt_dxy, gt_dy2),
    )


def _normalized_depth(img: Tensor, radius: int = 0) -> Tensor:
    """Authors' ``normalized_depth``: remove the global mean (radius 0) or the replicate-padded box mean."""
    if radius == 0:
        return img - torch.mean(img, dim=[1, 2, 3], keepdim=True)
    kernel_size = 2 * radius + 1
    img_padded = F.pad(img, (radius, radius, radius, radius), mode="replicate")
    return img - F.avg_pool2d(img_padded, kernel_size, stride=(1, 1))


def _loss_for_normalized_depth(pred: Tensor, gt: Tensor, radius: int = 0) -> Tensor:
    """Authors' ``loss_for_normalized_depth``."""
    return _loss_l1_by_channel(_normalized_depth(pred, radius), _normalized_depth(gt, radius))


def _authors_resize(x: Tensor, k: int) -> Tensor:
    """Authors' pyramid level: ``nn.Upsample(scale_factor=1/2**k, mode="bicubic")``, or ``size=[1, 1]``."""
    if k == 0:
        return x
    if min(x.shape[2], x.shape[3]) >= 2**k:
        return F.interpolate(x, scale_factor=1 / 2**k, mode="bicubic", align_corners=False)
    return F.interpolate(x, size=[1, 1], mode="bicubic", align_corners=False)


#: Output order of ``loss_for_derivative`` and of the four ``loss_for_normalized_depth`` calls, in our term names.
AUTHORS_TERMS: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("D", "r", "c", "N", "rr", "rc", "cc", "Nr", "Nc"),
    ("M", "M5", "M17", "M65"),
)
_AUTHORS_RADII: tuple[int, ...] = (0, 2, 8, 32)


def authors_losses(pred: Tensor, target: Tensor, names: Sequence[str] | None = None) -> Tensor:
    """The requested losses computed with the authors' released operations. ``(B, 1, H, W) x 2 -> (B, K)``.

    As ``compute_multi_loss``: the pyramid of ``P`` and of ``T`` is built at every scale; at a scale, the
    9 derivative terms are computed together when any of them is requested, and the 4 mean-removed terms
    (four separate calls, each filtering ``P`` and ``T``) when any of them is. Columns follow ``names``
    (default all 78). A baseline and a reference, not an API: no input checks beyond name lookup.
    """
    wanted = LOSS_NAMES if names is None else tuple(names)
    by_scale: dict[int, set[str]] = {}
    for name in wanted:
        spec = LOSS_BY_NAME[name]
        by_scale.setdefault(spec.scale, set()).add(spec.term)
    pyramid = [(_authors_resize(pred, k), _authors_resize(target, k)) for k in range(6)]
    values: dict[str, Tensor] = {}
    for k, terms in by_scale.items():
        p, t = pyramid[k]
        if terms & set(AUTHORS_TERMS[0]):
            values.update({f"l_{n}^{k}": v for n, v in zip(AUTHORS_TERMS[0], _loss_for_derivative(p, t), strict=True)})
        if terms & set(AUTHORS_TERMS[1]):
            for n, radius in zip(AUTHORS_TERMS[1], _AUTHORS_RADII, strict=True):
                values[f"l_{n}^{k}"] = _loss_for_normalized_depth(p, t, radius)
    return torch.stack([values[name] for name in wanted], dim=1)


# ----------------------------------------------------------------------------------------------------------------
# The benchmark.


def bench_inputs(
    batch: int = 4, height: int = 288, width: int = 384, *, dtype: torch.dtype = torch.float32, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Depth-like test maps: a smooth target in ``[1, 9]`` m and a noisy prediction. Both ``(B, 1, H, W)``."""
    gen = torch.Generator().manual_seed(seed)
    yy = torch.linspace(0, 1, height, dtype=torch.float64).view(1, 1, height, 1)
    xx = torch.linspace(0, 1, width, dtype=torch.float64).view(1, 1, 1, width)
    phase = torch.rand(batch, 1, 1, 1, generator=gen, dtype=torch.float64) * 6.0
    target = 5.0 + 2.0 * torch.sin(3.0 * xx + phase) * torch.cos(2.0 * yy - phase) + 1.5 * yy
    target = target + 0.05 * torch.rand(batch, 1, height, width, generator=gen, dtype=torch.float64)
    pred = target + 0.3 * torch.randn(batch, 1, height, width, generator=gen, dtype=torch.float64) + 0.1
    return pred.to(dtype), target.to(dtype)


@dataclass(frozen=True)
class BenchCase:
    """One timed case: forward + backward of ``implementation`` on ``losses``."""

    label: str
    implementation: str  # "fused" | "authors"
    losses: tuple[str, ...]
    times_s: tuple[float, ...] = field(default=())

    @property
    def median_ms(self) -> float:
        return 1e3 * statistics.median(self.times_s)

    @property
    def min_ms(self) -> float:
        return 1e3 * min(self.times_s)


@dataclass(frozen=True)
class LossBenchmark:
    """Result of :func:`run_losses_benchmark`; ratios are between medians of the same run."""

    cases: tuple[BenchCase, ...]
    batch: int
    height: int
    width: int
    dtype: str
    threads: int
    repeats: int
    warmup: int
    max_abs_diff: float
    max_rel_diff: float
    worst_loss: str
    fused_rel_err: float
    authors_rel_err: float
    torch_version: str = torch.__version__
    machine: str = field(default_factory=lambda: f"{platform.machine()} {platform.processor() or ''}".strip())

    def case(self, label: str) -> BenchCase:
        return next(c for c in self.cases if c.label == label)

    @property
    def speedup(self) -> float:
        """Median authors-style time / median fused time, all 78 losses, forward + backward."""
        return self.case("authors L").median_ms / self.case("fused L").median_ms

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cases"] = [
            {
                "label": c.label,
                "implementation": c.implementation,
                "n_losses": len(c.losses),
                "median_ms": c.median_ms,
                "min_ms": c.min_ms,
                "times_s": list(c.times_s),
            }
            for c in self.cases
        ]
        out["speedup_fused_vs_authors"] = self.speedup
        return out


#: Denominator floor of the reported relative differences (losses below it count as zero).
_REL_FLOOR = 1e-4


def _step(fn: Callable[..., Tensor], pred: Tensor, target: Tensor, names: tuple[str, ...]) -> float:
    """Seconds for one forward + backward (equal weights), as in a training step."""
    pred.grad = None
    start = time.perf_counter()
    fn(pred, target, names).mean().backward()
    return time.perf_counter() - start


def run_losses_benchmark(
    repeats: int = 5,
    *,
    batch: int = 4,
    height: int = 288,
    width: int = 384,
    threads: int | None = None,
    warmup: int = 1,
    seed: int = 0,
) -> LossBenchmark:
    """Time fused vs authors-style losses (forward + backward, float32, CPU) and compare their values.

    Cases: all 78 losses fused and authors-style; fused ``{l_D^0}``, ``L^3 | L^4 | L^5`` and ``L``. Each of the
    ``repeats`` rounds runs every case once (after ``warmup`` untimed rounds). ``threads`` sets
    ``torch.set_num_threads`` for the run and restores it afterwards.
    """
    if repeats < 1 or warmup < 0 or min(batch, height, width) < 1:
        raise ConfigError(
            f"repeats >= 1, warmup >= 0 and batch, height, width >= 1 must hold, got (repeats={repeats}, "
            f"warmup={warmup}, batch={batch}, height={height}, width={width})"
        )
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    every = LOSS_SETS["L"]
    coarse = canonical(LOSS_SETS["L^3"] + LOSS_SETS["L^4"] + LOSS_SETS["L^5"])
    plan: list[tuple[str, str, tuple[str, ...]]] = [
        ("fused L", "fused", every),
        ("authors L", "authors", every),
        ("fused {l_D^0}", "fused", ("l_D^0",)),
        ("fused L^3|L^4|L^5", "fused", coarse),
    ]
    impls: dict[str, Callable[..., Tensor]] = {"fused": compute_losses, "authors": authors_losses}
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        pred, target = bench_inputs(batch, height, width, seed=seed)
        pred.requires_grad_(True)
        with torch.no_grad():
            fused = compute_losses(pred, target).double()
            authors = authors_losses(pred, target).double()
            exact = compute_losses(pred.double(), target.double())  # float64 values of the same float32 maps
        # Relative differences use max(|value|, _REL_FLOOR): on 1 x 1 scales (tiny maps) several losses are 0
        # (the normals 1e-8) in exact arithmetic, where float32 rounding leaves tiny absolute differences.
        diff = (fused - authors).abs()
        rel = diff / authors.abs().clamp_min(_REL_FLOOR)
        worst = LOSS_NAMES[int(rel.amax(dim=0).argmax())]
        fused_err = float(((fused - exact).abs() / exact.abs().clamp_min(_REL_FLOOR)).max())
        authors_err = float(((authors - exact).abs() / exact.abs().clamp_min(_REL_FLOOR)).max())
        times: dict[str, list[float]] = {label: [] for label, _, _ in plan}
        for round_ in range(warmup + repeats):
            for label, impl, names in plan:
                seconds = _step(impls[impl], pred, target, names)
                if round_ >= warmup:
                    times[label].append(seconds)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)
    return LossBenchmark(
        cases=tuple(BenchCase(label, impl, names, tuple(times[label])) for label, impl, names in plan),
        batch=batch,
        height=height,
        width=width,
        dtype="float32",
        threads=used_threads,
        repeats=repeats,
        warmup=warmup,
        max_abs_diff=float(diff.max()),
        max_rel_diff=float(rel.max()),
        worst_loss=worst,
        fused_rel_err=fused_err,
        authors_rel_err=authors_err,
    )


def render_losses_table(result: LossBenchmark) -> Table:
    """The timings as a rich table (pure: no printing)."""
    reference = result.case("fused L").median_ms
    table = Table(
        title=(
            f"losses forward+backward: B={result.batch}, 1x{result.height}x{result.width}, {result.dtype}, "
            f"CPU, {result.threads} thread(s), median of {result.repeats}"
        )
    )
    table.add_column("case")
    table.add_column("losses", justify="right")
    table.add_column("median ms", justify="right")
    table.add_column("min ms", justify="right")
    table.add_column("÷ fused L", justify="right")
    for case in result.cases:
        table.add_row(
            case.label,
            str(len(case.losses)),
            f"{case.median_ms:.2f}",
            f"{case.min_ms:.2f}",
            f"{case.median_ms / reference:.3f}",
        )
    return table


def losses_summary(result: LossBenchmark) -> str:
    """The headline ratio and the value agreement, as plain lines."""
    verdict = "meets" if result.speedup >= 10 else "MISSES"
    return (
        f"fused vs authors-style, all 78 losses: {result.speedup:.1f}x faster ({verdict} the >= 10x target)\n"
        f"values, fused vs authors (float32): max |Δ| = {result.max_abs_diff:.2e}, "
        f"max rel Δ = {result.max_rel_diff:.2e} (at {result.worst_loss})\n"
        f"max rel error vs float64 on the same maps: fused {result.fused_rel_err:.2e}, "
        f"authors-style {result.authors_rel_err:.2e}"
    )
