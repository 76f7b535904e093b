"""Fused computation of the 78-loss space of Lee & Kim (ECCV 2020, §3.1, Table 1, eqs. 3-8).

``compute_losses(pred, target, names)`` returns a ``[B, len(names)]`` tensor: one column per requested loss, one
row per image. The numerical conventions follow the authors' released code (docs/loss-space.md lists the terms):

* **Pyramid.** Scale ``k`` is ``F.interpolate(x, scale_factor=0.5**k, mode="bicubic", align_corners=False)`` of
  the full-resolution map (not a cascade, no antialias). A scale whose map would be smaller than one pixel on a
  side (``min(H, W) < 2**k``) is resized to ``1 x 1`` with the same bicubic kernel, as the authors do; on a
  ``1 x 1`` map every term except ``D`` is zero (the normal terms are ``1 - 1/(1 + 1e-8)``, see below).
* **Differences** are "current minus next" with a replicate border, so maps keep their size:
  ``∇_r D[i, j] = D[i, j] - D[i, j+1]`` (last column 0), ``∇_c D[i, j] = D[i, j] - D[i+1, j]`` (last row 0),
  ``∇_r∇_r = ∇_r(∇_r D)``, ``∇_c∇_c = ∇_c(∇_c D)``, ``∇_c∇_r = ∇_r(∇_c D) = ∇_c(∇_r D)``. No pixel spacing.
* **Normals** (eqs. 7-8): ``cos = (a a* + b b* + 1) / (sqrt(a² + b² + 1) sqrt(a*² + b*² + 1) + 1e-8)``; the
  ``1e-8`` is the authors', so identical inputs give ``1 - 1/(1 + 1e-8) ≈ 1e-8`` in float64 (0 in float32).
* **Local means** (eq. 5): replicate-pad by ``r = (n - 1)/2``, then an ``n x n`` box mean with stride 1 (the
  padding may be wider than the map, e.g. 9 x 12 with ``n = 65``).
* **Reduction**: per image, mean over ``C·H·W`` (``C = 1``); results keep the input dtype.

How it is fast (docs/performance.md, "The 78 losses"):

* Bicubic resizing, mean removal, box filters and finite differences are linear, so each of the 10 non-normal
  terms is ``mean |A_t E|`` for a linear operator ``A_t`` and the error map ``E = P - T``. The pyramid of ``E`` is
  built once per scale, the first differences are shared by the second ones (``∇_c∇_r E`` is the column
  difference of ``∇_r E``), and one autograd node per scale (:class:`_LinearTerms`) returns all of them with
  the hand-written gradient ``Σ_t (g_t / hw) A_tᵀ sign(A_t E)``, where the adjoints share work the same way.
* The three box means of a scale come from one float64 integral image of the replicate-padded map (float64 so
  that the four-corner differences do not cancel float32 digits); the adjoint of a box filter applied to a sign
  map is again an integral image, of small integers, exact in float32.
* Only the normals need ``P`` and ``T`` apart; :class:`_NormalTerms` stacks them as two channels so every
  difference is one operation for both, and differentiates the cosine in closed form.
* Everything is lazy: a subset such as ``{l_D^0}`` costs one subtraction and one mean.

The optional ``mask`` (an extension) takes a plain-autograd path written term by term; with an all-ones mask it
reproduces the fused values, which the tests use as one more cross-check.
"""

from __future__ import annotations

import contextlib
import difflib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from mlrd_core.errors import ExpressionError, ShapeError
from mlrd_core.losses.registry import LOSS_BY_NAME, LOSS_NAMES, TERMS, loss_name

__all__ = [
    "NORMAL_EPS",
    "WINDOWS",
    "box_mean",
    "compute_losses",
    "deferred_target_check",
    "scale_map",
    "scale_size",
    "vanishing_losses",
    "zero_terms",
]

#: The ``+ 1e-8`` of the authors' cosine denominator (see "Normals" above).
NORMAL_EPS: float = 1e-8

#: Window size ``n`` of each local-mean-removed term (paper eq. 5, Table 1).
WINDOWS: dict[str, int] = {"M5": 5, "M17": 17, "M65": 65}

#: Terms that are ``mean |A_t E|`` for a linear operator ``A_t`` of the error map; the rest are the normals.
LINEAR_TERMS: tuple[str, ...] = ("D", "M", "M5", "M17", "M65", "r", "c", "rr", "rc", "cc")
NORMAL_TERMS: tuple[str, ...] = ("N", "Nr", "Nc")

#: Integral images of sign maps are exact in float32 while every partial sum stays below 2**24.
_FLOAT32_EXACT_INT = 2**24


# ----------------------------------------------------------------------------------------------------------------
# Building blocks.


def scale_map(x: Tensor, k: int, *, mode: str = "bicubic") -> Tensor:
    """The map at scale ``k``: ``x`` resized by ``0.5**k`` (see "Pyramid" above; paper §3.1 "repeatedly halve").

    ``F.interpolate(x, scale_factor=0.5**k, mode="bicubic", align_corners=False)`` of the full-resolution map,
    no antialias, exactly as the authors' code. When ``min(H, W) < 2**k`` the map would be smaller than one pixel
    on a side and is resized to ``1 x 1`` instead (the authors' rule). ``k = 0`` returns ``x`` itself.
    ``mode="nearest"`` resizes masks the same way.

    Shapes: ``(B, C, H, W) -> (B, C, floor(H / 2**k), floor(W / 2**k))``, or ``(B, C, 1, 1)``.
    """
    if k == 0:
        return x
    height, width = x.shape[-2:]
    corners: dict[str, Any] = {"align_corners": False} if mode == "bicubic" else {}
    if min(height, width) < 2**k:
        return F.interpolate(x, size=(1, 1), mode=mode, **corners)
    return F.interpolate(x, scale_factor=0.5**k, mode=mode, **corners)


def _integral(x: Tensor) -> Tensor:
    """Zero-led 2-D integral image: ``(..., H, W) -> (..., H + 1, W + 1)``, ``s[a, b] = Σ_{i<a, j<b} x[i, j]``."""
    return F.pad(x, (1, 0, 1, 0)).cumsum(-1).cumsum(-2)


def _window_sums(s: Tensor, offset: int, n: int, height: int, width: int) -> Tensor:
    """Sums over ``n x n`` windows read from an integral image ``s``.

    Window ``(i, j)`` covers rows ``offset + i .. offset + i + n - 1`` of the summed map (columns alike).
    Shapes: ``(..., Hs, Ws) -> (..., height, width)``.
    """
    lo_r, hi_r = slice(offset, offset + height), slice(offset + n, offset + n + height)
    lo_c, hi_c = slice(offset, offset + width), slice(offset + n, offset + n + width)
    return (s[..., hi_r, hi_c] - s[..., lo_r, hi_c]) - (s[..., hi_r, lo_c] - s[..., lo_r, lo_c])


def _window_adjoint(g: Tensor, offset: int, n: int, padded: tuple[int, int]) -> Tensor:
    """Adjoint of :func:`_window_sums` (without its integral image): spread each ``g[i, j]`` over its window.

    ``out[J] = Σ_{i = J - offset - n + 1}^{J - offset} g[i]`` on the padded grid ``padded = (Hp, Wp)``, read
    from the integral image of ``g`` whose edges are replicated (0 before the map, the total after it), so that
    out-of-range partial sums clamp without branches. Shapes: ``(..., H, W) -> (..., Hp, Wp)``.
    """
    height, width = g.shape[-2:]
    lead = offset + n - 1
    trail_h, trail_w = padded[0] - offset - height, padded[1] - offset - width
    ge = F.pad(_integral(g), (lead, trail_w, lead, trail_h), mode="replicate")
    return _window_sums(ge, 0, n, padded[0], padded[1])


def _fold_replicate(g: Tensor, pad: int) -> Tensor:
    """Adjoint of ``F.pad(x, (pad,) * 4, mode="replicate")``: add the border back onto the edge pixels.

    Padded rows ``[0, pad)`` map to row 0 and ``[pad + H, H + 2 pad)`` to row ``H - 1`` (the same row when
    ``H = 1``); columns alike. Shapes: ``(..., H + 2 pad, W + 2 pad) -> (..., H, W)``.
    """
    if pad == 0:
        return g
    height, width = g.shape[-2] - 2 * pad, g.shape[-1] - 2 * pad
    rows = g[..., pad : pad + height, :].clone()
    rows[..., :1, :] += g[..., :pad, :].sum(dim=-2, keepdim=True)
    rows[..., -1:, :] += g[..., pad + height :, :].sum(dim=-2, keepdim=True)
    out = rows[..., pad : pad + width].clone()
    out[..., :1] += rows[..., :pad].sum(dim=-1, keepdim=True)
    out[..., -1:] += rows[..., pad + width :].sum(dim=-1, keepdim=True)
    return out


def _centred(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(x - c, c)`` with ``c`` the per-image mean, ``(B, C, H, W) -> ((B, C, H, W), (B, 1, 1, 1))``."""
    c = x.mean(dim=(1, 2, 3), keepdim=True)
    return x - c, c


def _has_float64(device: torch.device) -> bool:
    """Whether integral images can be taken in float64 on ``device`` (Apple MPS has no float64)."""
    return device.type != "mps"


class _IntegralBoxMeans(torch.autograd.Function):
    """Box means of an already replicate-padded map for several radii, from one float64 integral image.

    Forward: ``xp`` is ``x`` replicate-padded by ``R = max(radii)``; output ``i`` is the ``n x n`` mean
    (``n = 2 r_i + 1``) centred on every pixel of ``x``, read from the integral image at offset ``R - r_i``.
    Backward: the adjoint spreads ``g / n²`` over each window (:func:`_window_adjoint`), which autograd of the
    slicing would instead do with a full-size zero tensor per corner.
    """

    @staticmethod
    def forward(ctx: Any, xp: Tensor, height: int, width: int, radii: tuple[int, ...]) -> tuple[Tensor, ...]:
        big = max(radii)
        # box(x) = c + box(x - c): centring on the per-image mean keeps the integral image small (less
        # cancellation in the four-corner differences) and makes a constant map's box mean exact.
        centred, c = _centred(xp.to(torch.float64))
        s = _integral(centred)
        ctx.meta = (radii, xp.shape, xp.dtype)
        return tuple(
            (_window_sums(s, big - r, 2 * r + 1, height, width) / (2 * r + 1) ** 2 + c).to(xp.dtype) for r in radii
        )

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, None, None, None]:
        radii, shape, dtype = ctx.meta
        big = max(radii)
        total: Tensor | None = None
        for r, g in zip(radii, grads, strict=True):
            if g is None:
                continue
            n = 2 * r + 1
            spread = _window_adjoint(g.to(torch.float64), big - r, n, shape[-2:]) / n**2
            total = spread if total is None else total + spread
        return (None if total is None else total.to(dtype)), None, None, None


def box_mean(x: Tensor, sizes: Sequence[int]) -> tuple[Tensor, ...]:
    """Local means ``x ⊛ J_n / n²`` (paper eq. 5) with a replicate border, for each odd ``n`` in ``sizes``.

    ``box_n(x)[i, j] = mean of pad_r(x)[i : i + n, j : j + n]`` with ``r = (n - 1) / 2`` and ``pad_r`` the
    replicate padding (which may be wider than the map). Equals ``F.avg_pool2d(F.pad(x, (r,) * 4,
    mode="replicate"), n, stride=1)`` to float rounding, at ``O(H W)`` cost independent of ``n``: one replicate
    pad by ``max(r)`` and one float64 integral image shared by all sizes (on devices without float64, such as
    Apple MPS, two separable ``avg_pool2d`` passes per size instead). Differentiable.

    Shapes: ``(B, C, H, W) -> tuple of (B, C, H, W)``, in the order of ``sizes``, dtype of ``x``.
    """
    if any(n < 1 or n % 2 == 0 for n in sizes):
        raise ShapeError(f"box sizes must be odd and positive, got {tuple(sizes)}")
    radii = tuple((n - 1) // 2 for n in sizes)
    if not radii:
        return ()
    big = max(radii)
    xp = F.pad(x, (big, big, big, big), mode="replicate")
    if not _has_float64(x.device):
        # Two separable avg_pool2d passes per size: O(n) per pixel, but no cumulative sums to lose digits.
        height, width = x.shape[-2:]
        outs = []
        for r in radii:
            n, o = 2 * r + 1, big - r
            window = xp[..., o : o + height + 2 * r, o : o + width + 2 * r]
            outs.append(F.avg_pool2d(F.avg_pool2d(window, (1, n), stride=1), (n, 1), stride=1))
        return tuple(outs)
    out: tuple[Tensor, ...] = _IntegralBoxMeans.apply(xp, x.shape[-2], x.shape[-1], radii)
    return out


# Differences along ``dim`` (-1: ∇_r, row direction; -2: ∇_c, column direction). ``_dr``/``_dc`` drop the zero
# border (one column/row short) and ``_full_*`` keep the map's size: both are plain autograd ops (masked path).
# The ``_k_*`` kernels are their no-grad, single-pass twins for the fused nodes: they write into a preallocated
# output instead of subtracting then padding (about 4x less memory traffic for ∇_r); ``*_t`` are adjoints.


def _dr(y: Tensor) -> Tensor:
    """``∇_r y`` without its zero last column: ``y[..., j] - y[..., j+1]``, ``(.., H, W) -> (.., H, W-1)``."""
    return y[..., :, :-1] - y[..., :, 1:]


def _dc(y: Tensor) -> Tensor:
    """``∇_c y`` without its zero last row: ``y[..., i, :] - y[..., i+1, :]``, ``(.., H, W) -> (.., H-1, W)``."""
    return y[..., :-1, :] - y[..., 1:, :]


def _full_dr(y: Tensor) -> Tensor:
    """``∇_r y`` at full size (eq. 6 with the replicate border): last column 0. ``(..., H, W) -> same``."""
    return F.pad(_dr(y), (0, 1))


def _full_dc(y: Tensor) -> Tensor:
    """``∇_c y`` at full size: last row 0. ``(..., H, W) -> same``."""
    return F.pad(_dc(y), (0, 0, 0, 1))


def _k_full(y: Tensor, dim: int) -> Tensor:
    """Full-size difference along ``dim``: ``out[j] = y[j] - y[j+1]``, ``out[n-1] = 0``. Shape kept."""
    n = y.shape[dim]
    out = torch.empty_like(y)
    torch.sub(y.narrow(dim, 0, n - 1), y.narrow(dim, 1, n - 1), out=out.narrow(dim, 0, n - 1))
    out.narrow(dim, n - 1, 1).zero_()
    return out


def _k_narrow_t(v: Tensor, dim: int) -> Tensor:
    """Adjoint of the short difference (``_dr``/``_dc``): ``out[j] = v[j] - v[j-1]`` with ``v[-1] = v[n-1] = 0``.

    Shapes: ``n - 1 -> n`` along ``dim``.
    """
    m = v.shape[dim]
    shape = list(v.shape)
    shape[dim] = m + 1
    out = v.new_empty(shape)
    if m == 0:
        return out.zero_()
    out.narrow(dim, 0, 1).copy_(v.narrow(dim, 0, 1))
    torch.sub(v.narrow(dim, 1, m - 1), v.narrow(dim, 0, m - 1), out=out.narrow(dim, 1, m - 1))
    torch.neg(v.narrow(dim, m - 1, 1), out=out.narrow(dim, m, 1))
    return out


def _k_full_t(g: Tensor, dim: int) -> Tensor:
    """Adjoint of :func:`_k_full` (its last output entry is a constant 0, so ``g`` there is ignored)."""
    return _k_narrow_t(g.narrow(dim, 0, g.shape[dim] - 1), dim)


def _k_tail(v: Tensor, dim: int) -> Tensor:
    """Short difference of ``v`` padded with one zero: ``out[j] = v[j] - v[j+1]``, ``out[m-1] = v[m-1]``.

    This is the second difference of a short first difference (whose dropped border is zero). Shape kept.
    """
    m = v.shape[dim]
    out = torch.empty_like(v)
    if m == 0:
        return out
    torch.sub(v.narrow(dim, 0, m - 1), v.narrow(dim, 1, m - 1), out=out.narrow(dim, 0, m - 1))
    out.narrow(dim, m - 1, 1).copy_(v.narrow(dim, m - 1, 1))
    return out


def _k_tail_t(s: Tensor, dim: int) -> Tensor:
    """Adjoint of :func:`_k_tail`: ``out[j] = s[j] - s[j-1]`` with ``s[-1] = 0``. Shape kept."""
    m = s.shape[dim]
    out = torch.empty_like(s)
    if m == 0:
        return out
    out.narrow(dim, 0, 1).copy_(s.narrow(dim, 0, 1))
    torch.sub(s.narrow(dim, 1, m - 1), s.narrow(dim, 0, m - 1), out=out.narrow(dim, 1, m - 1))
    return out


ROW, COL = -1, -2  # dims of ∇_r (along a row) and ∇_c (along a column)


def _l1_mean(y: Tensor, area: int) -> Tensor:
    """``Σ|y| / area`` per image, ``(B, ...) -> (B,)``. A cascade sum (``vector_norm`` loses float32 digits)."""
    return y.abs().sum(dim=tuple(range(1, y.ndim))) / area


def _add(total: Tensor | None, term: Tensor) -> Tensor:
    return term if total is None else total + term


# ----------------------------------------------------------------------------------------------------------------
# The fused terms of one scale (no mask).


class _LinearTerms(torch.autograd.Function):
    """``mean |A_t E|`` for the requested linear terms ``t`` of one scale, with a hand-written backward.

    Operators (``E`` is ``(B, 1, h, w)``, each ``A_t E`` is kept without its all-zero border):
    ``D: E``; ``M: E - mean(E)``; ``Mn: E - box_n(E)``; ``r: ∇_r E``; ``c: ∇_c E``;
    ``rr: ∇_r(∇_r E)``; ``rc: ∇_c(∇_r E)``; ``cc: ∇_c(∇_c E)``.
    Backward: ``∂/∂E = Σ_t (g_t / hw) A_tᵀ sign(A_t E)``, with the adjoints of the second differences folded into
    the adjoints of the first ones, and ``(I - box_n)ᵀ s = s - box_nᵀ s`` from the integral image of ``s``.
    Shapes: ``e (B, 1, h, w) -> (B, len(terms))``.
    """

    @staticmethod
    def forward(ctx: Any, e: Tensor, terms: tuple[str, ...]) -> Tensor:
        height, width = e.shape[-2:]
        area = height * width
        res: dict[str, Tensor] = {}
        if "D" in terms:
            res["D"] = e
        if "M" in terms:
            res["M"] = e - e.mean(dim=(1, 2, 3), keepdim=True)
        radii = tuple((WINDOWS[t] - 1) // 2 for t in terms if t in WINDOWS)
        if radii:
            # Residuals E - box_n(E) in float64; both sides shift alike, so E is centred first
            # (see _IntegralBoxMeans) and the centre of the padded map is the centred E itself.
            big = max(radii)
            ep, _ = _centred(F.pad(e, (big, big, big, big), mode="replicate").to(torch.float64))
            s = _integral(ep)
            centre = ep[..., big : big + height, big : big + width]
            for t in terms:
                if t in WINDOWS:
                    n = WINDOWS[t]
                    box_sum = _window_sums(s, big - (n - 1) // 2, n, height, width)
                    # Exact to float64, then rounded once to the input dtype (cheaper |.|, sum and sign).
                    res[t] = torch.add(centre, box_sum, alpha=-1.0 / n**2).to(e.dtype)
        if {"r", "rr", "rc"} & set(terms):
            gr = _dr(e)
            res["r"] = gr
            if "rr" in terms:  # ∇_r of ∇_r E re-padded with its zero column (= the replicate border)
                res["rr"] = _k_tail(gr, ROW)
            if "rc" in terms:  # the last row and column of ∇_c∇_r E are zero
                res["rc"] = _dc(gr)
        if {"c", "cc"} & set(terms):
            gc = _dc(e)
            res["c"] = gc
            if "cc" in terms:
                res["cc"] = _k_tail(gc, COL)
        kept = [res[t] for t in terms]
        ctx.save_for_backward(*kept)
        ctx.terms, ctx.shape = terms, e.shape
        return torch.stack([_l1_mean(y, area) for y in kept], dim=1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        terms: tuple[str, ...] = ctx.terms
        batch, _, height, width = ctx.shape
        coef = (grad / (height * width)).reshape(batch, len(terms), 1, 1)
        c = {t: coef[:, i : i + 1] for i, t in enumerate(terms)}
        s = {t: torch.sign(y) for t, y in zip(terms, ctx.saved_tensors, strict=True)}
        dtype = grad.dtype
        ge: Tensor | None = None
        if "D" in s:
            ge = _add(ge, c["D"] * s["D"])
        if "M" in s:
            ge = _add(ge, c["M"] * (s["M"] - s["M"].mean(dim=(1, 2, 3), keepdim=True)))
        windows = [t for t in terms if t in WINDOWS]
        if windows:
            big = max((WINDOWS[t] - 1) // 2 for t in windows)
            padded = (height + 2 * big, width + 2 * big)
            exact = torch.float32 if height * width < _FLOAT32_EXACT_INT else torch.float64
            acc = torch.float64 if dtype == torch.float64 else exact
            spread: Tensor | None = None
            for t in windows:
                n = WINDOWS[t]
                # box_nᵀ of an integer map (signs) is exact in ``acc``; the weights come after.
                sums = _window_adjoint(s[t].to(acc), big - (n - 1) // 2, n, padded)
                spread = _add(spread, sums * (c[t] / n**2).to(acc))
                ge = _add(ge, c[t] * s[t])
            assert spread is not None and ge is not None
            ge = ge - _fold_replicate(spread, big).to(dtype)
        g_r: Tensor | None = None
        if "r" in s:
            g_r = c["r"] * s["r"]
        if "rr" in s:
            g_r = _add(g_r, c["rr"] * _k_tail_t(s["rr"], ROW))
        if "rc" in s:
            g_r = _add(g_r, c["rc"] * _k_narrow_t(s["rc"], COL))
        if g_r is not None:
            ge = _add(ge, _k_narrow_t(g_r, ROW))
        g_c: Tensor | None = None
        if "c" in s:
            g_c = c["c"] * s["c"]
        if "cc" in s:
            g_c = _add(g_c, c["cc"] * _k_tail_t(s["cc"], COL))
        if g_c is not None:
            ge = _add(ge, _k_narrow_t(g_c, COL))
        assert ge is not None
        return ge.to(dtype), None


class _NormalTerms(torch.autograd.Function):
    """``mean(1 - cos(n̂, n))`` for the requested normal terms of one scale (eqs. 7-8), closed-form backward.

    ``P`` and ``T`` are stacked as channels 0 and 1, so each difference is one operation for both. For a pair
    ``(a, b)`` of difference maps (``(∇_r, ∇_c)`` for ``N``, ``(∇_r∇_r, ∇_c∇_r)`` for ``Nr``,
    ``(∇_r∇_c, ∇_c∇_c)`` for ``Nc``), with ``s_i = sqrt(a_i² + b_i² + 1)``, ``den = s_0 s_1 + 1e-8`` and
    ``cos = (a_0 a_1 + b_0 b_1 + 1) / den``: ``∂cos/∂a_i = (a_j - cos (s_j / s_i) a_i) / den`` (``j = 1 - i``),
    the same for ``b``; gradients are only formed for the inputs that need them.
    Shapes: ``p, t (B, 1, h, w) -> (B, len(terms))``.
    """

    @staticmethod
    def forward(ctx: Any, p: Tensor, t: Tensor, terms: tuple[str, ...]) -> Tensor:
        x = torch.cat([p, t], dim=1)
        gr = _k_full(x, ROW)
        gc = _k_full(x, COL) if {"N", "Nc"} & set(terms) else gr
        rc = _k_full(gr, COL) if {"Nr", "Nc"} & set(terms) else gr
        pairs: dict[str, Callable[[], tuple[Tensor, Tensor]]] = {
            "N": lambda: (gr, gc),
            "Nr": lambda: (_k_full(gr, ROW), rc),
            "Nc": lambda: (rc, _k_full(gc, COL)),
        }
        saved, values = {}, []
        for term in terms:
            a, b = pairs[term]()
            length = torch.addcmul(torch.addcmul(torch.ones_like(a), a, a), b, b).sqrt_()
            dot = torch.addcmul(torch.addcmul(torch.ones_like(p), a[:, :1], a[:, 1:]), b[:, :1], b[:, 1:])
            den = (length[:, :1] * length[:, 1:]).add_(NORMAL_EPS)
            cos = dot.div_(den)
            values.append(1.0 - cos.mean(dim=(1, 2, 3)))
            saved[term] = (a, b, length, den, cos)
        ctx.saved, ctx.terms = saved, terms
        return torch.stack(values, dim=1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        terms: tuple[str, ...] = ctx.terms
        need = [i for i in (0, 1) if ctx.needs_input_grad[i]]
        if not need:
            return None, None, None

        def own(y: Tensor) -> Tensor:  # the channels that need a gradient (views when only one does)
            return y if len(need) == 2 else y[:, need[0] : need[0] + 1]

        def other(y: Tensor) -> Tensor:  # their partners in the cosine
            return y.flip(1) if len(need) == 2 else y[:, 1 - need[0] : 2 - need[0]]

        grads: dict[str, tuple[Tensor, Tensor]] = {}
        for i, term in enumerate(terms):
            a, b, length, den, cos = ctx.saved[term]
            area = cos.shape[-2] * cos.shape[-1]
            # d(1 - mean cos)/d cos = -1/area per pixel.
            w = (grad[:, i].reshape(-1, 1, 1, 1) / -area) / den
            ratio = cos * other(length) / own(length)
            grads[term] = (
                w * torch.addcmul(other(a), ratio, own(a), value=-1.0),
                w * torch.addcmul(other(b), ratio, own(b), value=-1.0),
            )
        g_gr: Tensor | None = None
        g_gc: Tensor | None = None
        g_rc: Tensor | None = None
        if "N" in grads:
            g_gr, g_gc = grads["N"]
        if "Nr" in grads:
            g_gr = _add(g_gr, _k_full_t(grads["Nr"][0], ROW))
            g_rc = grads["Nr"][1]
        if "Nc" in grads:
            g_rc = _add(g_rc, grads["Nc"][0])
            g_gc = _add(g_gc, _k_full_t(grads["Nc"][1], COL))
        if g_rc is not None:
            g_gr = _add(g_gr, _k_full_t(g_rc, COL))
        gx: Tensor | None = None
        if g_gr is not None:
            gx = _k_full_t(g_gr, ROW)
        if g_gc is not None:
            gx = _add(gx, _k_full_t(g_gc, COL))
        assert gx is not None
        if len(need) == 2:
            return gx[:, :1], gx[:, 1:], None
        return (gx, None, None) if need[0] == 0 else (None, gx, None)


# ----------------------------------------------------------------------------------------------------------------
# The masked extension: plain autograd, term by term.


def _erode_r(m: Tensor) -> Tensor:
    """Validity of ``∇_r``: pixel ``j`` uses ``j`` and ``j+1`` (only itself on the last column)."""
    return torch.cat([m[..., :-1] * m[..., 1:], m[..., -1:]], dim=-1)


def _erode_c(m: Tensor) -> Tensor:
    """Validity of ``∇_c``: pixel ``i`` uses ``i`` and ``i+1`` (only itself on the last row)."""
    return torch.cat([m[..., :-1, :] * m[..., 1:, :], m[..., -1:, :]], dim=-2)


def _masked_terms(p: Tensor, t: Tensor, m: Tensor, terms: Sequence[str]) -> dict[str, Tensor]:
    """Masked values of ``terms`` at one scale; ``m`` is 0/1 in the dtype of ``p``. All ``(B, 1, h, w)``.

    Each term's map is averaged over the pixels whose whole difference stencil is valid; ``M`` and ``Mn`` remove
    the mean over valid pixels (``box_n(E m) / box_n(m)``); an image without valid pixels gives 0.
    """
    e = p - t
    dims = (1, 2, 3)

    def reduce(y: Tensor, valid: Tensor) -> Tensor:
        # y may be the top-left block of its map (the rest is zero); valid is full size.
        return (y.abs() * valid[..., : y.shape[-2], : y.shape[-1]]).sum(dim=dims) / valid.sum(dim=dims).clamp_min(1)

    def normal(a: Tensor, b: Tensor, valid: Tensor) -> Tensor:
        a0, a1, b0, b1 = a[:, :1], a[:, 1:], b[:, :1], b[:, 1:]
        cos = (a0 * a1 + b0 * b1 + 1) / (
            torch.sqrt(a0 * a0 + b0 * b0 + 1) * torch.sqrt(a1 * a1 + b1 * b1 + 1) + NORMAL_EPS
        )
        return ((1 - cos) * valid).sum(dim=dims) / valid.sum(dim=dims).clamp_min(1)

    mr, mc = _erode_r(m), _erode_c(m)
    out: dict[str, Tensor] = {}
    sizes = sorted({WINDOWS[term] for term in terms if term in WINDOWS})
    boxes = dict(zip(sizes, box_mean(torch.cat([e * m, m], dim=1), sizes), strict=True))
    x = torch.cat([p, t], dim=1)
    for term in terms:
        if term == "D":
            out[term] = reduce(e, m)
        elif term == "M":
            centre = (e * m).sum(dim=dims, keepdim=True) / m.sum(dim=dims, keepdim=True).clamp_min(1)
            out[term] = reduce(e - centre, m)
        elif term in WINDOWS:
            n = WINDOWS[term]
            both = boxes[n]
            out[term] = reduce(e - both[:, :1] / both[:, 1:].clamp_min(0.5 / n**2), m)
        elif term == "r":
            out[term] = reduce(_dr(e), mr)
        elif term == "c":
            out[term] = reduce(_dc(e), mc)
        elif term == "rr":
            out[term] = reduce(_dr(_full_dr(e)), _erode_r(mr))
        elif term == "rc":
            out[term] = reduce(_dc(_dr(e)), _erode_c(mr))
        elif term == "cc":
            out[term] = reduce(_dc(_full_dc(e)), _erode_c(mc))
        elif term == "N":
            out[term] = normal(_full_dr(x), _full_dc(x), mr * mc)
        elif term == "Nr":
            gr = _full_dr(x)
            out[term] = normal(_full_dr(gr), _full_dc(gr), _erode_r(mr) * _erode_c(mr))
        elif term == "Nc":
            gr, gc = _full_dr(x), _full_dc(x)
            out[term] = normal(_full_dc(gr), _full_dc(gc), _erode_c(mr) * _erode_c(mc))
    return out


# ----------------------------------------------------------------------------------------------------------------
# The pyramid of one call and the public entry point.


class _Pyramid:
    """Lazily built maps of one call: ``E`` at full resolution, and per scale ``P^k, T^k`` or ``E^k``."""

    def __init__(self, pred: Tensor, target: Tensor) -> None:
        self.pred, self.target = pred, target

    @cached_property
    def e(self) -> Tensor:
        """``E = P - T``, ``(B, 1, H, W)``."""
        return self.pred - self.target

    def pair(self, k: int) -> tuple[Tensor, Tensor]:
        """``(P^k, T^k)``; each resized once (bicubic, see :func:`scale_map`)."""
        return scale_map(self.pred, k), scale_map(self.target, k)

    def error(self, k: int, pair: tuple[Tensor, Tensor] | None) -> Tensor:
        """``E^k``: from ``P^k - T^k`` when those exist anyway, else the resize of ``E`` (linear, so equal)."""
        if k == 0:
            return self.e
        if pair is not None:
            return pair[0] - pair[1]
        return scale_map(self.e, k)


def _shape(t: Tensor) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def _check_map(name: str, t: object) -> Tensor:
    if not isinstance(t, Tensor):
        raise ShapeError(f"{name}: expected a torch.Tensor of shape (B, 1, H, W), got {type(t).__name__}")
    if t.ndim != 4 or t.shape[1] != 1:
        raise ShapeError(f"{name}: expected (B, 1, H, W), got {_shape(t)}")
    if t.numel() == 0:
        raise ShapeError(f"{name}: expected a non-empty (B, 1, H, W) map, got {_shape(t)}")
    if not t.is_floating_point():
        raise ShapeError(f"{name}: expected a floating-point tensor, got dtype {t.dtype}")
    return t


_TARGET_CHECK_DEFERRED: ContextVar[bool] = ContextVar("mlrd_target_check_deferred", default=False)


@contextlib.contextmanager
def deferred_target_check() -> Iterator[None]:
    """Within the block, :func:`compute_losses` on an accelerator does not check that ``target`` is finite (that
    check is a host-device sync per call); the caller checks it on the device and reports it at its next sync, as
    :func:`mlrd_core.trainer.fit` does. On CPU the check stays (it costs no sync there)."""
    token = _TARGET_CHECK_DEFERRED.set(True)
    try:
        yield
    finally:
        _TARGET_CHECK_DEFERRED.reset(token)


def _check_inputs(pred: object, target: object, mask: object) -> tuple[Tensor, Tensor, Tensor | None]:
    p, t = _check_map("pred", pred), _check_map("target", target)
    if p.shape != t.shape:
        raise ShapeError(f"pred and target must have the same shape, got {_shape(p)} and {_shape(t)}")
    if p.dtype != t.dtype:
        raise ShapeError(f"pred and target must have the same dtype, got {p.dtype} and {t.dtype}")
    if p.device != t.device:
        raise ShapeError(f"pred and target must be on the same device, got {p.device} and {t.device}")
    # A NaN target would silently poison every loss. aminmax is one reduction pass that propagates NaN (and keeps
    # ±inf), ten times cheaper than isfinite().all(); it costs a host sync on accelerators, where a caller that
    # checks the target itself (the trainer, at its sync points) defers it with deferred_target_check().
    if (t.device.type == "cpu" or not _TARGET_CHECK_DEFERRED.get()) and not bool(
        torch.isfinite(torch.stack(torch.aminmax(t))).all()
    ):
        raise ShapeError("target contains NaN or infinite values; fill them (and pass mask=...) before the loss")
    if mask is None:
        return p, t, None
    if not isinstance(mask, Tensor):
        raise ShapeError(f"mask: expected a torch.Tensor of shape {_shape(p)}, got {type(mask).__name__}")
    if mask.shape != p.shape:
        raise ShapeError(f"mask must have the shape of pred {_shape(p)}, got {_shape(mask)}")
    if mask.device != p.device:
        raise ShapeError(f"mask must be on the device of pred ({p.device}), got {mask.device}")
    return p, t, (mask != 0).to(p.dtype)


def _check_names(names: Iterable[str] | None) -> tuple[str, ...]:
    if names is None:
        return LOSS_NAMES
    if isinstance(names, str):
        raise ExpressionError(
            f"names must be a sequence of loss names, got the string {names!r}; "
            f"write ({names!r},) or use select({names!r})"
        )
    out = tuple(names)
    for name in out:
        if name not in LOSS_BY_NAME:
            by_lower = {n.lower(): n for n in LOSS_NAMES}  # 'l_d^0' -> 'l_D^0' first, then look-alikes
            near = [by_lower[n] for n in difflib.get_close_matches(str(name).lower(), by_lower, n=3)]
            hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
            raise ExpressionError(
                f"unknown loss name {name!r}{hint} (valid names look like 'l_D^0', 'l_M17^2', 'l_Nr^5')"
            )
    return out


def compute_losses(
    pred: Tensor,
    target: Tensor,
    names: Iterable[str] | None = None,
    *,
    mask: Tensor | None = None,
) -> Tensor:
    """Per-image values of the requested losses of the 78-loss space (paper §3.1, Table 1, eqs. 3-8).

    For ``l_<term>^<k>``, with ``P, T`` the maps at scale ``k`` (bicubic ``0.5**k``, see :func:`scale_map`),
    ``E = P - T`` and every mean taken over the ``h x w`` map of one image:

    * ``D``: ``mean|E|`` (eq. 3); ``M``: ``mean|E - mean(E)|`` (eq. 4);
      ``Mn``: ``mean|E - box_n(E)|`` for ``n = 5, 17, 65`` (eq. 5; replicate border, see :func:`box_mean`);
    * ``r, c, rr, rc, cc``: ``mean|∇E|`` for ``∇ = ∇_r, ∇_c, ∇_r∇_r, ∇_c∇_r, ∇_c∇_c`` (eq. 6; "current minus
      next", zero last column/row);
    * ``N, Nr, Nc``: ``mean(1 - cos)`` between the normals ``(-a, -b, 1)`` of ``P`` and of ``T``, with
      ``(a, b) = (∇_r, ∇_c)``, ``(∇_r∇_r, ∇_c∇_r)``, ``(∇_r∇_c, ∇_c∇_c)`` (eqs. 7-8, ``+1e-8`` in the
      denominator).

    Args:
        pred: predicted depth ``(B, 1, H, W)``, floating point.
        target: ground truth ``(B, 1, H, W)``, same dtype and device, finite.
        names: loss names in any order (duplicates allowed); ``None`` means all 78 in canonical order. Only the
            pyramid levels and intermediates these names need are computed.
        mask: optional validity mask ``(B, 1, H, W)`` (nonzero = valid, e.g. ``target > 0``); an extension,
            off by default. It is resized to each scale by nearest neighbour; each term is then averaged over
            the pixels whose whole difference stencil is valid (``∇_r`` at ``j`` needs ``j`` and ``j+1``), the
            global and local means of ``M``/``Mn`` are taken over valid pixels only (normalized box filter),
            and an image without valid pixels gives 0. Masked-out target values do not affect scale 0; at
            coarser scales they still enter through the bicubic kernel, so fill holes first if that matters.
            An all-ones mask gives the unmasked values (through a slower, plain-autograd path, which is also
            the path taken on devices without float64, such as Apple MPS).

    Returns:
        ``(B, len(names))`` in the dtype of ``pred``, columns in the order of ``names``; differentiable once
        with respect to ``pred`` and ``target`` (the fused nodes have hand-written, once-differentiable
        backward passes).

    Raises:
        ShapeError: wrong rank, shape, dtype or device, mismatched inputs, or a non-finite target.
        ExpressionError: an unknown loss name (with close matches).
    """
    p, t, m = _check_inputs(pred, target, mask)
    if m is None and not _has_float64(p.device):
        m = torch.ones_like(p)  # the fused nodes need float64 integral images; the masked path does not
    wanted = _check_names(names)
    if not wanted:
        return p.new_zeros((p.shape[0], 0))
    by_scale: dict[int, set[str]] = {}
    for name in wanted:
        spec = LOSS_BY_NAME[name]
        by_scale.setdefault(spec.scale, set()).add(spec.term)
    pyramid = _Pyramid(p, t)
    blocks: list[Tensor] = []  # (B, n_i) per node; `position` maps a loss name to its column in their concat
    position: dict[str, int] = {}

    def add_block(block: Tensor, terms: Sequence[str], k: int) -> None:
        position.update({loss_name(term, k): len(position) + i for i, term in enumerate(terms)})
        blocks.append(block)

    for k, term_set in sorted(by_scale.items()):
        linear = tuple(term for term in LINEAR_TERMS if term in term_set)
        normal = tuple(term for term in NORMAL_TERMS if term in term_set)
        pair = pyramid.pair(k) if normal or m is not None else None
        if m is not None:
            assert pair is not None
            masked = _masked_terms(*pair, scale_map(m, k, mode="nearest"), linear + normal)
            add_block(torch.stack(list(masked.values()), dim=1), list(masked), k)
            continue
        if linear:
            add_block(_LinearTerms.apply(pyramid.error(k, pair), linear), linear, k)
        if normal:
            assert pair is not None
            add_block(_NormalTerms.apply(*pair, normal), normal, k)
    values = torch.cat(blocks, dim=1)
    order = [position[name] for name in wanted]
    if order == list(range(values.shape[1])):  # e.g. all 78 in canonical order
        return values
    # One gather instead of a column select per loss (one autograd node, whatever the number of names).
    return values.index_select(1, torch.tensor(order, device=values.device))


# ----------------------------------------------------------------------------------------------------------------
# Which losses vanish at an input size: read off the pyramid's shapes (no computation).


def scale_size(size: tuple[int, int], k: int) -> tuple[int, int]:
    """The ``(h, w)`` of the map at scale ``k`` for a full-resolution ``size`` (H, W), as :func:`scale_map` makes
    it: ``(floor(H / 2**k), floor(W / 2**k))``, or ``(1, 1)`` when ``min(H, W) < 2**k`` (the 1×1 rule)."""
    height, width = size
    if k == 0:
        return height, width
    if min(height, width) < 2**k:
        return 1, 1
    return math.floor(height * 0.5**k), math.floor(width * 0.5**k)


def zero_terms(height: int, width: int) -> tuple[str, ...]:
    """The terms that are identically zero on an ``height × width`` map, whatever the prediction and target.

    On a single row every column difference is the zero border (``c``, ``rc``, ``cc``; ``Nc`` compares two flat
    normals, ``1 - 1/(1 + 1e-8)``); on a single column the same holds for the row differences (``r``, ``rr``,
    ``rc``, ``Nr``); on a 1×1 map also the mean removals (``M``, ``M5``, ``M17``, ``M65``: the mean of one pixel is
    the pixel) and the normal ``N``, leaving ``D`` only. Larger maps have no such term.
    """
    if height == 1 and width == 1:
        return tuple(t for t in TERMS if t != "D")
    zero: set[str] = set()
    if height == 1:
        zero |= {"c", "rc", "cc", "Nc"}
    if width == 1:
        zero |= {"r", "rr", "rc", "Nr"}
    return tuple(t for t in TERMS if t in zero)


def vanishing_losses(names: Iterable[str], size: tuple[int, int]) -> dict[int, tuple[tuple[int, int], tuple[str, ...]]]:
    """Losses of ``names`` that are identically zero for inputs of ``size`` (H, W), by scale:
    ``{k: ((h, w) of scale k, (names...))}``; empty when every loss can be non-zero. ``L`` at 32×64 gives
    ``{5: ((1, 2), ("l_c^5", "l_rc^5", "l_cc^5", "l_Nc^5"))}``. Computed from the shapes of the pyramid
    (:func:`scale_size`, :func:`zero_terms`), without running a loss."""
    by_scale: dict[int, list[str]] = {}
    for name in names:
        spec = LOSS_BY_NAME[name]
        h, w = scale_size(size, spec.scale)
        if spec.term in zero_terms(h, w):
            by_scale.setdefault(spec.scale, []).append(name)
    return {k: (scale_size(size, k), tuple(found)) for k, found in sorted(by_scale.items())}
