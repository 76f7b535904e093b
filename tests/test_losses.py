"""compute_losses: per-loss properties over the whole registry, subsets, small maps, input errors, masks, and
agreement with the transcription of the authors' code (suite.benchmarks.losses.authors_losses)."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from mlrd_core.errors import ExpressionError, MLRDError, ShapeError
from mlrd_core.losses import LOSS_BY_NAME, LOSS_NAMES, LOSS_SETS, compute_losses
from mlrd_core.losses.functional import NORMAL_EPS, scale_map
from suite.benchmarks.losses import authors_losses, bench_inputs

F64 = torch.float64


def maps(batch: int, height: int, width: int, *, dtype: torch.dtype = F64, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    pred = 1 + torch.rand(batch, 1, height, width, generator=g, dtype=F64)
    target = 1 + torch.rand(batch, 1, height, width, generator=g, dtype=F64)
    return pred.to(dtype), target.to(dtype)


def is_normal(name: str) -> bool:
    return LOSS_BY_NAME[name].group == "N"


# ----------------------------------------------------------------------------------------------------------------
# Every loss of the registry.


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_each_loss_shape_sign_dtype(name: str) -> None:
    for dtype in (torch.float32, F64):
        pred, target = maps(3, 40, 48, dtype=dtype)
        out = compute_losses(pred, target, [name])
        assert out.shape == (3, 1)
        assert out.dtype == dtype
        assert torch.isfinite(out).all()
        assert (out >= 0).all()
        assert (out > 0).all() or LOSS_BY_NAME[name].scale >= 5  # random maps: nonzero up to 1x1 scales


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_each_loss_zero_for_identical_inputs(name: str) -> None:
    pred, _ = maps(2, 24, 40)
    out = compute_losses(pred, pred.clone(), [name])
    # Normal terms keep the authors' +1e-8 in the cosine's denominator: 1 - (q / (q + 1e-8)) <= 1e-8 for q >= 1.
    assert out.abs().max().item() <= (NORMAL_EPS if is_normal(name) else 0.0)
    assert out.abs().max().item() == 0.0 or is_normal(name)
    assert compute_losses(pred.float(), pred.float(), [name]).abs().max().item() == 0.0


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_each_loss_gradcheck(name: str) -> None:
    """Full gradcheck on a tiny map (scales 2+ are 1 x 1), fast gradcheck on a map with a 2 x 2 scale 5."""
    pred, target = maps(1, 6, 7, seed=1)
    inputs = (pred.requires_grad_(True), target.requires_grad_(True))
    assert torch.autograd.gradcheck(lambda p, t: compute_losses(p, t, [name]), inputs)
    pred, target = maps(2, 64, 72, seed=2)
    inputs = (pred.requires_grad_(True), target.requires_grad_(True))
    assert torch.autograd.gradcheck(lambda p, t: compute_losses(p, t, [name]), inputs, fast_mode=True)


def test_gradient_wrt_pred_only_equals_joint_gradient() -> None:
    """The normal terms' backward forms only the gradients asked for; both paths agree."""
    pred, target = maps(2, 30, 41, seed=3)
    p1 = pred.clone().requires_grad_(True)
    compute_losses(p1, target).sum().backward()
    p2, t2 = pred.clone().requires_grad_(True), target.clone().requires_grad_(True)
    compute_losses(p2, t2).sum().backward()
    t3 = target.clone().requires_grad_(True)
    compute_losses(pred, t3).sum().backward()
    assert p1.grad is not None and p2.grad is not None and t2.grad is not None and t3.grad is not None
    torch.testing.assert_close(p1.grad, p2.grad, rtol=0, atol=1e-15)
    torch.testing.assert_close(t3.grad, t2.grad, rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------------------------------------------
# Names, subsets, order.


def test_default_is_all_78_in_canonical_order() -> None:
    pred, target = maps(2, 32, 40)
    full = compute_losses(pred, target)
    assert full.shape == (2, 78)
    torch.testing.assert_close(full, compute_losses(pred, target, LOSS_NAMES), rtol=0, atol=0)


@pytest.mark.parametrize("seed", range(4))
def test_subset_in_any_order_equals_columns_of_full_call(seed: int) -> None:
    pred, target = maps(2, 37, 53, seed=seed)
    full = compute_losses(pred, target)
    rng = random.Random(seed)
    subset = rng.sample(LOSS_NAMES, rng.randint(1, 20))
    got = compute_losses(pred, target, subset)
    columns = [LOSS_NAMES.index(n) for n in subset]
    torch.testing.assert_close(got, full[:, columns], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("set_name", sorted(LOSS_SETS))
def test_named_sets_equal_columns_of_full_call(set_name: str) -> None:
    pred, target = maps(1, 33, 47)
    names = LOSS_SETS[set_name]
    full = compute_losses(pred, target)
    torch.testing.assert_close(
        compute_losses(pred, target, names), full[:, [LOSS_NAMES.index(n) for n in names]], rtol=1e-12, atol=1e-15
    )


def test_duplicates_and_empty_names() -> None:
    pred, target = maps(2, 16, 16)
    out = compute_losses(pred, target, ["l_D^0", "l_N^1", "l_D^0"])
    assert out.shape == (2, 3)
    torch.testing.assert_close(out[:, 0], out[:, 2], rtol=0, atol=0)
    assert compute_losses(pred, target, []).shape == (2, 0)


def test_gradient_flows_only_through_requested_losses() -> None:
    """A subset's gradient equals the full call's gradient with zero weight on the other losses."""
    pred, target = maps(2, 29, 35, seed=5)
    subset = ["l_M65^0", "l_rc^2", "l_Nc^1", "l_D^4"]
    weights = torch.zeros(78, dtype=F64)
    weights[[LOSS_NAMES.index(n) for n in subset]] = 1.0
    p1, p2 = pred.clone().requires_grad_(True), pred.clone().requires_grad_(True)
    compute_losses(p1, target, subset).sum().backward()
    (compute_losses(p2, target) * weights).sum().backward()
    assert p1.grad is not None and p2.grad is not None
    torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-10, atol=1e-15)


# ----------------------------------------------------------------------------------------------------------------
# Small maps: a scale smaller than one pixel is resized to 1 x 1 (the authors' rule).


def test_scale_map_sizes_and_one_pixel_rule() -> None:
    x = torch.rand(2, 1, 20, 24, dtype=F64)
    sizes = [tuple(scale_map(x, k).shape[-2:]) for k in range(6)]
    assert sizes == [(20, 24), (10, 12), (5, 6), (2, 3), (1, 1), (1, 1)]
    # k = 5: min(20, 24) < 32 -> resized to 1 x 1 with size=(1, 1), not scale_factor (which would give 0 x 0).
    torch.testing.assert_close(
        scale_map(x, 5), F.interpolate(x, size=(1, 1), mode="bicubic", align_corners=False), rtol=0, atol=0
    )
    # A long thin map: one side >= 2**k does not save it (min rule), e.g. 20 x 100 at k = 5.
    assert scale_map(torch.rand(1, 1, 20, 100), 5).shape[-2:] == (1, 1)
    assert scale_map(torch.rand(1, 1, 40, 100), 5).shape[-2:] == (1, 3)


def test_one_pixel_scales_have_defined_values() -> None:
    pred, target = maps(3, 20, 24, seed=4)
    out = compute_losses(pred, target)
    for k in (4, 5):  # both 1 x 1 at 20 x 24
        col = {LOSS_BY_NAME[n].term: out[:, i] for i, n in enumerate(LOSS_NAMES) if LOSS_BY_NAME[n].scale == k}
        e = F.interpolate(pred - target, size=(1, 1), mode="bicubic", align_corners=False)
        e_k = scale_map(pred, k) - scale_map(target, k)
        torch.testing.assert_close(col["D"], e_k.abs().flatten(), rtol=1e-12, atol=0)
        if k == 5:
            torch.testing.assert_close(col["D"], e.abs().flatten(), rtol=1e-12, atol=0)
        for term in ("M", "M5", "M17", "M65", "r", "c", "rr", "rc", "cc"):
            assert col[term].abs().max().item() <= 1e-15, term
        for term in ("N", "Nr", "Nc"):  # normals (0, 0, 1) on both sides: 1 - 1 / (1 + 1e-8)
            torch.testing.assert_close(col[term], torch.full((3,), 1 - 1 / (1 + NORMAL_EPS), dtype=F64))
    assert torch.isfinite(compute_losses(*maps(1, 1, 1))).all()


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 9), (7, 1), (2, 2), (20, 24), (9, 12)])
def test_small_and_degenerate_maps_match_authors(height: int, width: int) -> None:
    pred, target = maps(2, height, width, seed=height + width)
    torch.testing.assert_close(compute_losses(pred, target), authors_losses(pred, target), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# Agreement with the authors' operations, and float32 vs float64.


@pytest.mark.parametrize(("height", "width"), [(96, 128), (37, 53)])
def test_matches_authors_code_float64(height: int, width: int) -> None:
    pred, target = bench_inputs(2, height, width, dtype=F64, seed=height)
    weights = torch.rand(2, 78, dtype=F64, generator=torch.Generator().manual_seed(0))
    values, grads = [], []
    for fn in (compute_losses, authors_losses):
        p = pred.clone().requires_grad_(True)
        out = fn(p, target)
        (out * weights).sum().backward()
        assert p.grad is not None
        values.append(out.detach())
        grads.append(p.grad)
    torch.testing.assert_close(values[0], values[1], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-13)


def test_matches_authors_code_float32_to_rounding() -> None:
    """At the paper's size in float32, both sit within float32 rounding of the float64 value; ours is closer."""
    pred, target = bench_inputs(2, 288, 384, dtype=F64, seed=11)
    exact = compute_losses(pred, target)
    ours = compute_losses(pred.float(), target.float()).double()
    theirs = authors_losses(pred.float(), target.float()).double()
    rel_ours = ((ours - exact).abs() / exact.abs()).max().item()
    rel_theirs = ((theirs - exact).abs() / exact.abs()).max().item()
    assert rel_ours < 1e-5
    assert rel_theirs < 1e-3  # float32 65x65 avg_pool2d sums on tiny maps cost them a few more digits
    torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-6)


def test_float32_agrees_with_float64() -> None:
    pred, target = bench_inputs(2, 96, 128, dtype=F64, seed=5)
    exact = compute_losses(pred, target)
    single = compute_losses(pred.float(), target.float())
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), exact, rtol=1e-5, atol=1e-7)
    p32, p64 = pred.float().requires_grad_(True), pred.clone().requires_grad_(True)
    compute_losses(p32, target.float()).sum().backward()
    compute_losses(p64, target).sum().backward()
    assert p32.grad is not None and p64.grad is not None
    # Subgradients may differ where a residual is within float32 rounding of 0; those are rare, single pixels.
    close = torch.isclose(p32.grad.double(), p64.grad, rtol=1e-4, atol=1e-7)
    assert close.float().mean().item() > 0.999


# ----------------------------------------------------------------------------------------------------------------
# Input checks at the boundary.


@pytest.mark.parametrize(
    ("pred", "target", "message"),
    [
        (torch.zeros(4, 288, 384), torch.zeros(4, 288, 384), "expected (B, 1, H, W), got (4, 288, 384)"),
        (torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8), "expected (B, 1, H, W), got (2, 3, 8, 8)"),
        (torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 9), "same shape, got (2, 1, 8, 8) and (2, 1, 8, 9)"),
        (torch.zeros(2, 1, 8, 8, dtype=torch.int64), torch.zeros(2, 1, 8, 8), "floating-point tensor, got dtype"),
        (torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8, dtype=F64), "same dtype"),
        (torch.zeros(0, 1, 8, 8), torch.zeros(0, 1, 8, 8), "non-empty"),
        ([[0.0]], torch.zeros(1, 1, 1, 1), "expected a torch.Tensor"),
    ],
)
def test_bad_inputs_raise_shape_error(pred: object, target: object, message: str) -> None:
    with pytest.raises(ShapeError) as info:
        compute_losses(pred, target)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert isinstance(info.value, MLRDError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_target_is_rejected(bad: float) -> None:
    pred, target = maps(1, 8, 8)
    target[0, 0, 3, 4] = bad
    with pytest.raises(ShapeError, match="NaN or infinite"):
        compute_losses(pred, target)


def test_unknown_name_suggests_close_names() -> None:
    pred, target = maps(1, 8, 8)
    with pytest.raises(ExpressionError, match=r"unknown loss name 'l_d\^0'.*did you mean 'l_D\^0'"):
        compute_losses(pred, target, ["l_D^1", "l_d^0"])
    with pytest.raises(ExpressionError, match="unknown loss name 'l_D\\^6'"):
        compute_losses(pred, target, ["l_D^6"])


def test_a_single_string_is_not_a_list_of_names() -> None:
    pred, target = maps(1, 8, 8)
    with pytest.raises(ExpressionError, match=r"got the string 'l_D\^0'; write \('l_D\^0',\)"):
        compute_losses(pred, target, "l_D^0")


def test_mask_checks() -> None:
    pred, target = maps(2, 8, 8)
    with pytest.raises(ShapeError, match="mask must have the shape of pred"):
        compute_losses(pred, target, mask=torch.ones(2, 1, 8, 7, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"mask: expected a torch\.Tensor"):
        compute_losses(pred, target, mask=[[1]])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------------------
# The mask extension.


def test_all_ones_mask_reproduces_unmasked_values_and_gradients() -> None:
    """The masked path is plain autograd, the unmasked one hand-written: they agree to rounding."""
    pred, target = maps(2, 37, 45, seed=8)
    weights = torch.rand(2, 78, dtype=F64, generator=torch.Generator().manual_seed(1))
    outs, grads = [], []
    for mask in (None, torch.ones_like(pred, dtype=torch.bool), torch.ones_like(pred)):
        p = pred.clone().requires_grad_(True)
        out = compute_losses(p, target, mask=mask)
        (out * weights).sum().backward()
        assert p.grad is not None
        outs.append(out.detach())
        grads.append(p.grad)
    for out, grad in zip(outs[1:], grads[1:], strict=True):
        torch.testing.assert_close(out, outs[0], rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(grad, grads[0], rtol=1e-9, atol=1e-14)


def test_masked_out_target_values_do_not_matter_at_scale_0() -> None:
    pred, target = maps(2, 32, 40, seed=9)
    mask = torch.ones_like(pred, dtype=torch.bool)
    mask[0, 0, 10:20, 5:30] = False
    mask[1, 0, :, :3] = False
    other = target.clone()
    other[~mask] = 1000.0  # e.g. missing depth filled with garbage
    names = LOSS_SETS["L^0"]
    outs, grads = [], []
    for t in (target, other):
        p = pred.clone().requires_grad_(True)
        out = compute_losses(p, t, names, mask=mask)
        out.sum().backward()
        assert p.grad is not None
        outs.append(out.detach())
        grads.append(p.grad)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-14)
    # ... while without the mask they do.
    assert not torch.allclose(compute_losses(pred, target, names), compute_losses(pred, other, names))


def test_masked_values_by_hand() -> None:
    pred, target = maps(1, 6, 8, seed=10)
    mask = torch.rand(1, 1, 6, 8, generator=torch.Generator().manual_seed(2)) > 0.3
    m = mask.double()
    e = pred - target
    out = compute_losses(pred, target, ["l_D^0", "l_M^0", "l_r^0"], mask=mask)
    d = (e.abs() * m).sum() / m.sum()
    centre = (e * m).sum() / m.sum()
    mean_removed = ((e - centre).abs() * m).sum() / m.sum()
    mr = torch.cat([m[..., :-1] * m[..., 1:], m[..., -1:]], dim=-1)  # ∇_r uses j and j+1
    gr = torch.zeros_like(e)
    gr[..., :-1] = e[..., :-1] - e[..., 1:]
    r = (gr.abs() * mr).sum() / mr.sum()
    torch.testing.assert_close(out[0], torch.stack([d, mean_removed, r]), rtol=1e-12, atol=0)


def test_image_without_valid_pixels_gives_zero() -> None:
    pred, target = maps(2, 16, 16, seed=12)
    mask = torch.ones_like(pred)
    mask[1] = 0
    out = compute_losses(pred, target, mask=mask)
    assert (out[1] == 0).all()
    assert (out[0] > 0).any()


def test_non_contiguous_and_channels_last_inputs() -> None:
    big_pred, big_target = maps(2, 40, 50, seed=13)
    pred, target = big_pred[..., 3:33, 5:45], big_target[..., 3:33, 5:45]  # strided views
    assert not pred.is_contiguous()
    expected = compute_losses(pred.contiguous(), target.contiguous())
    torch.testing.assert_close(compute_losses(pred, target), expected, rtol=1e-12, atol=1e-15)
    last = compute_losses(
        pred.contiguous(memory_format=torch.channels_last), target.contiguous(memory_format=torch.channels_last)
    )
    torch.testing.assert_close(last, expected, rtol=1e-12, atol=1e-15)


def test_no_grad_and_detached_inputs() -> None:
    pred, target = maps(2, 20, 20, seed=14)
    with torch.no_grad():
        values = compute_losses(pred.requires_grad_(True), target)
    assert not values.requires_grad
    assert compute_losses(pred, target).requires_grad
    assert not compute_losses(pred.detach(), target).requires_grad


def test_devices_without_float64_take_the_plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """On MPS (no float64) box means are separable avg_pool2d passes and the masked, plain-autograd path runs;
    simulated here on the CPU by switching the capability check off."""
    from mlrd_core.losses import functional

    pred, target = maps(2, 40, 44, dtype=torch.float32, seed=15)
    expected = compute_losses(pred, target)
    boxes = functional.box_mean(pred, (5, 17, 65))
    monkeypatch.setattr(functional, "_has_float64", lambda device: False)
    torch.testing.assert_close(compute_losses(pred, target), expected, rtol=1e-5, atol=1e-6)
    for fallback, fused in zip(functional.box_mean(pred, (5, 17, 65)), boxes, strict=True):
        torch.testing.assert_close(fallback, fused, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("names", "scales", "integrals"),
    [
        (["l_D^0"], set(), 0),
        (["l_r^0", "l_rc^0", "l_N^0"], set(), 0),
        (["l_M65^0", "l_M5^0"], set(), 1),  # one integral image for all windows of a scale
        (["l_N^3", "l_D^5"], {3, 5}, 0),
        (list(LOSS_SETS["L"]), {1, 2, 3, 4, 5}, 6),
    ],
)
def test_only_needed_levels_and_intermediates_are_built(
    names: list[str], scales: set[int], integrals: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Laziness, counted structurally (timings belong to `python -m suite bench losses`)."""
    from mlrd_core.losses import functional

    resized: list[int] = []
    built = [0]
    real_scale_map, real_integral = functional.scale_map, functional._integral

    def counting_scale_map(x: Tensor, k: int, **kw: object) -> Tensor:
        if k:
            resized.append(k)
        return real_scale_map(x, k, **kw)  # type: ignore[arg-type]

    def counting_integral(x: Tensor) -> Tensor:
        built[0] += 1
        return real_integral(x)

    monkeypatch.setattr(functional, "scale_map", counting_scale_map)
    monkeypatch.setattr(functional, "_integral", counting_integral)
    pred, target = maps(1, 64, 64)
    with torch.no_grad():
        compute_losses(pred, target, names)
    assert set(resized) == scales
    assert built[0] == integrals
