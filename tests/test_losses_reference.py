"""The fused losses against a direct, per-term transcription of their formulas, in float64.

The reference below is written for clarity, not speed: every loss resizes ``P`` and ``T`` itself, differences
are plain slicing into zero-initialized full-size maps, local means are replicate pad + ``avg_pool2d`` of ``P`` and
of ``T`` separately, and normals follow eq. 7-8 literally.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from mlrd_core.losses import LOSS_BY_NAME, LOSS_NAMES, compute_losses
from mlrd_core.losses.functional import box_mean

F64 = torch.float64


# ----------------------------------------------------------------------------------------------------------------
# Reference transcription.


def ref_scale(x: Tensor, k: int) -> Tensor:
    if k == 0:
        return x
    if min(x.shape[-2:]) < 2**k:
        return F.interpolate(x, size=(1, 1), mode="bicubic", align_corners=False)
    return F.interpolate(x, scale_factor=0.5**k, mode="bicubic", align_corners=False)


def ref_dr(y: Tensor) -> Tensor:
    """∇_r: y[i, j] - y[i, j+1], last column 0."""
    out = torch.zeros_like(y)
    out[..., :, :-1] = y[..., :, :-1] - y[..., :, 1:]
    return out


def ref_dc(y: Tensor) -> Tensor:
    """∇_c: y[i, j] - y[i+1, j], last row 0."""
    out = torch.zeros_like(y)
    out[..., :-1, :] = y[..., :-1, :] - y[..., 1:, :]
    return out


def ref_box(y: Tensor, n: int) -> Tensor:
    r = (n - 1) // 2
    return F.avg_pool2d(F.pad(y, (r, r, r, r), mode="replicate"), n, stride=1)


def ref_cos(a: Tensor, b: Tensor, a_: Tensor, b_: Tensor) -> Tensor:
    return (a * a_ + b * b_ + 1) / (torch.sqrt(a**2 + b**2 + 1) * torch.sqrt(a_**2 + b_**2 + 1) + 1e-8)


def ref_loss(pred: Tensor, target: Tensor, name: str) -> Tensor:
    """One loss, per image, straight from its definition."""
    spec = LOSS_BY_NAME[name]
    p, t = ref_scale(pred, spec.scale), ref_scale(target, spec.scale)
    term = spec.term

    def l1(a: Tensor, b: Tensor) -> Tensor:
        return (a - b).abs().mean(dim=(1, 2, 3))

    def mean_removed(y: Tensor) -> Tensor:
        return y - y.mean(dim=(1, 2, 3), keepdim=True)

    ops = {
        "r": ref_dr,
        "c": ref_dc,
        "rr": lambda y: ref_dr(ref_dr(y)),
        "rc": lambda y: ref_dr(ref_dc(y)),  # ∇_c∇_r D = ∇_r(∇_c D)
        "cc": lambda y: ref_dc(ref_dc(y)),
    }
    if term == "D":
        return l1(p, t)
    if term == "M":
        return l1(mean_removed(p), mean_removed(t))
    if term in ("M5", "M17", "M65"):
        n = int(term[1:])
        return l1(p - ref_box(p, n), t - ref_box(t, n))
    if term in ops:
        return l1(ops[term](p), ops[term](t))
    pairs = {
        "N": (ref_dr, ref_dc),
        "Nr": (lambda y: ref_dr(ref_dr(y)), lambda y: ref_dc(ref_dr(y))),
        "Nc": (lambda y: ref_dr(ref_dc(y)), lambda y: ref_dc(ref_dc(y))),
    }
    fa, fb = pairs[term]
    return (1 - ref_cos(fa(p), fb(p), fa(t), fb(t))).mean(dim=(1, 2, 3))


def ref_losses(pred: Tensor, target: Tensor, names: tuple[str, ...] = LOSS_NAMES) -> Tensor:
    return torch.stack([ref_loss(pred, target, n) for n in names], dim=1)


# ----------------------------------------------------------------------------------------------------------------
# Inputs: random maps and smooth depth-like maps.


def random_maps(batch: int, height: int, width: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        1 + torch.rand(batch, 1, height, width, generator=g, dtype=F64),
        1 + torch.rand(batch, 1, height, width, generator=g, dtype=F64),
    )


def smooth_maps(batch: int, height: int, width: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, height, dtype=F64).view(1, 1, -1, 1)
    x = torch.linspace(0, 1, width, dtype=F64).view(1, 1, 1, -1)
    ph = torch.rand(batch, 4, 1, 1, generator=g, dtype=F64) * 2 * math.pi
    target = 4 + torch.sin(4 * x + ph[:, :1]) * torch.cos(3 * y + ph[:, 1:2]) + 2 * y
    pred = target + 0.2 * torch.sin(9 * x + ph[:, 2:3]) * torch.sin(7 * y + ph[:, 3:]) + 0.05
    return pred, target


def assert_close_rel(actual: Tensor, expected: Tensor, rel: float = 1e-6, atol: float = 1e-12) -> None:
    err = (actual - expected).abs()
    bound = rel * expected.abs() + atol
    bad = err > bound
    if bad.any():
        b, i = (int(v) for v in bad.nonzero()[0])
        name = LOSS_NAMES[i] if actual.shape[1] == len(LOSS_NAMES) else f"column {i}"
        raise AssertionError(
            f"{int(bad.sum())} values differ, e.g. {name} image {b}: {actual[b, i].item()!r} vs "
            f"{expected[b, i].item()!r} (max rel {float((err / expected.abs().clamp_min(1e-30)).max()):.2e})"
        )


# ----------------------------------------------------------------------------------------------------------------
# Tests.


def test_paper_resolution_random_and_smooth() -> None:
    """288 x 384 (the paper's training size), one random and one smooth image in one batch: all 78."""
    pr, tr = random_maps(1, 288, 384, seed=1)
    ps, ts = smooth_maps(1, 288, 384, seed=2)
    pred, target = torch.cat([pr, ps]), torch.cat([tr, ts])
    assert_close_rel(compute_losses(pred, target), ref_losses(pred, target))


@pytest.mark.parametrize(("height", "width"), [(144, 192), (96, 128), (37, 53), (65, 31), (33, 40), (20, 24)])
@pytest.mark.parametrize("kind", ["random", "smooth"])
def test_all_losses_match_reference(height: int, width: int, kind: str) -> None:
    maps = random_maps if kind == "random" else smooth_maps
    pred, target = maps(2, height, width, seed=height * width)
    assert_close_rel(compute_losses(pred, target), ref_losses(pred, target))


@pytest.mark.parametrize(("height", "width"), [(37, 53), (96, 128)])
def test_gradients_match_reference(height: int, width: int) -> None:
    """The hand-written backward passes against autograd through the reference, for a random weighting."""
    pred, target = random_maps(2, height, width, seed=7)
    weights = torch.rand(2, len(LOSS_NAMES), dtype=F64, generator=torch.Generator().manual_seed(3))
    grads = []
    for fn in (compute_losses, ref_losses):
        p, t = pred.clone().requires_grad_(True), target.clone().requires_grad_(True)
        (fn(p, t) * weights).sum().backward()
        assert p.grad is not None and t.grad is not None
        grads.append((p.grad, t.grad))
    for fused, ref in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(fused, ref, rtol=1e-9, atol=1e-12)


def test_second_differences_commute() -> None:
    """∇_c∇_r D = ∇_r∇_c D with the replicate border, so l_rc and the Nr/Nc pairs are well defined."""
    y = torch.rand(2, 1, 13, 17, dtype=F64)
    torch.testing.assert_close(ref_dc(ref_dr(y)), ref_dr(ref_dc(y)), rtol=0, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("height", "width"), [(288, 384), (37, 53), (9, 12), (3, 2), (1, 1)])
def test_box_mean_matches_avg_pool(height: int, width: int, dtype: torch.dtype) -> None:
    """The integral-image box mean equals replicate pad + avg_pool2d to rounding, padding wider than the map too."""
    x = (5 + torch.rand(2, 1, height, width, dtype=F64, generator=torch.Generator().manual_seed(0))).to(dtype)
    got = box_mean(x, (5, 17, 65))
    for n, value in zip((5, 17, 65), got, strict=True):
        expected = ref_box(x.to(F64), n)
        assert value.dtype == dtype and value.shape == x.shape
        # float32: within a few units of float32 rounding of values around 5 (cumulative sums taken in float32
        # would miss by orders of magnitude more at 288 x 384). float64: the float64 integral image's four-corner
        # cancellation, eps64 * (sum of the padded map) / n², about 1e-11 here.
        tol = 1e-11 if dtype == F64 else 4 * torch.finfo(torch.float32).eps * 6
        assert (value.to(F64) - expected).abs().max().item() <= tol


def test_box_mean_gradcheck() -> None:
    x = torch.rand(1, 1, 5, 7, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda y: box_mean(y, (3, 5, 65)), (x,))


def test_box_mean_rejects_even_sizes() -> None:
    from mlrd_core.errors import ShapeError

    with pytest.raises(ShapeError, match="odd and positive"):
        box_mean(torch.zeros(1, 1, 4, 4), (4,))


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(1, 48),
    width=st.integers(1, 48),
    seed=st.integers(0, 2**16),
)
def test_any_shape_matches_reference(height: int, width: int, seed: int) -> None:
    """Property: for any map size (1 x 1 up), every loss equals its definition."""
    pred, target = random_maps(1, height, width, seed=seed)
    assert_close_rel(compute_losses(pred, target), ref_losses(pred, target), rel=1e-9, atol=1e-12)
