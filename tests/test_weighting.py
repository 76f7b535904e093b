"""Weighting methods (mlrd_core.weighting): Lee & Kim by hand, its invariants, the baselines, resume, errors."""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import Tensor

from mlrd_core.errors import MLRDError, WeightingError
from mlrd_core.weighting import (
    DWA,
    FAMO,
    PAPER_SCHEDULE,
    RLW,
    WEIGHTINGS,
    Constant,
    EqualWeighting,
    FixedWeighting,
    LeeKimWeighting,
    PeriodRecord,
    UncertaintyWeighting,
    WeightingMethod,
    make_weighting,
)

NAMES3 = ("l_D^0", "l_r^0", "l_N^0")


def by_period(values: dict[int, float]) -> Callable[[int, int], float]:
    """A λ schedule given per period index (epoch 0), 0 elsewhere."""
    return lambda epoch, period: values.get(period, 0.0)


def feed(method: WeightingMethod, means: Sequence[float], epoch: int, period: int) -> Tensor:
    """One period whose per-loss means are ``means``: two images around each mean, then end_period."""
    m = torch.tensor(means, dtype=torch.float64)
    method.observe(torch.stack([m * 0.5, m * 1.5]))  # mean over the two rows = m
    return method.end_period(epoch, period)


def exact(*values: float) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


def roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# ============================================================================================== Lee & Kim by hand
def test_init_eq9_by_hand() -> None:
    w = LeeKimWeighting(NAMES3, 0)
    assert torch.equal(w.weights, torch.full((3,), 1 / 3, dtype=torch.float64))
    assert w.weights.dtype == torch.float64
    new = feed(w, [4.0, 2.0, 1.0], 0, 0)
    # ℓ̄_all = (4 + 2 + 1)/3 = 7/3; w_i = ℓ̄_all / (3 ℓ̄_i) = 7/(9 ℓ̄_i) = [7/36, 7/18, 7/9]
    torch.testing.assert_close(new, exact(7 / 36, 7 / 18, 7 / 9), rtol=1e-15, atol=0)
    torch.testing.assert_close(w.weights, new, rtol=0, atol=0)
    # every weighted loss contributes 7/9 and the total 7/3 is preserved
    torch.testing.assert_close(new * exact(4, 2, 1), exact(7 / 9, 7 / 9, 7 / 9), rtol=1e-15, atol=0)
    rec = w.records[0]
    assert (rec.epoch, rec.period, rec.action, rec.images) == (0, 0, "init", 2)
    assert rec.total == pytest.approx(7 / 3, rel=1e-15)
    assert [r.name for r in rec.losses] == list(NAMES3)
    assert [r.mean for r in rec.losses] == [4.0, 2.0, 1.0]
    assert [r.contribution for r in rec.losses] == pytest.approx([1 / 3] * 3, rel=1e-15)


def test_rebalance_eq11_clipped_then_under_the_same_weights() -> None:
    w = LeeKimWeighting(NAMES3, by_period({1: 3.0, 2: 1.0}))  # default clip (0.5, 2)
    feed(w, [4.0, 2.0, 1.0], 0, 0)  # init: w1 = [7/36, 7/18, 7/9]

    new = feed(w, [2.0, 2.0, 1.0], 0, 1)
    # L_all = 7/36·2 + 7/18·2 + 7/9·1 = 35/18; L'_all = Σ w1·[4, 2, 1] = 7/3 = 42/18; ratio 5/6
    # multiplier 1 + 3 ((5/6)(ℓ'/ℓ) − 1), ℓ'/ℓ = [2, 1, 1]  ->  [1 + 3·2/3, 1 − 3/6, 1 − 3/6] = [3, 0.5, 0.5]
    # clipped to [0.5, 2] -> [2, 0.5, 0.5];  w2 = [7/18, 7/36, 7/18]
    torch.testing.assert_close(new, exact(7 / 18, 7 / 36, 7 / 18), rtol=1e-15, atol=0)
    rec = w.records[1]
    assert (rec.action, rec.lam) == ("rebalance", 3.0)
    assert rec.total == pytest.approx(35 / 18, rel=1e-15)
    # contribution w2·ℓ / L_all = [7/9, 7/18, 7/18] / (35/18) = [0.4, 0.2, 0.2] (clipping broke Σ = 1)
    assert [r.contribution for r in rec.losses] == pytest.approx([0.4, 0.2, 0.2], rel=1e-14)

    new = feed(w, [1.0, 1.0, 1.0], 0, 2)
    # the previous period's total is recomputed with the current weights w2 (not the stale 35/18):
    # L'_all = Σ w2·[2, 2, 1] = 7/9 + 7/18 + 7/18 = 14/9; L_all = Σ w2·[1, 1, 1] = 35/36; ratio = 5/8
    # λ = 1: multiplier (5/8)(ℓ'/ℓ) = (5/8)[2, 2, 1] = [5/4, 5/4, 5/8] (inside the clip)
    # w3 = [7/18·5/4, 7/36·5/4, 7/18·5/8] = [35/72, 35/144, 35/144]
    torch.testing.assert_close(new, exact(35 / 72, 35 / 144, 35 / 144), rtol=1e-14, atol=0)
    # the stale total 35/18 would give ratio 1/2 and multipliers [1, 1, 1/2]: clearly different
    assert not torch.allclose(new, exact(7 / 18, 7 / 36, 7 / 36))
    # λ = 1 unclipped preserves the total: Σ w3·ℓ = 70/144 + 35/144 + 35/144 = 35/36 = L_all
    assert float((new * exact(1, 1, 1)).sum()) == pytest.approx(35 / 36, rel=1e-14)


def test_rebalance_pure_equation_preserves_the_total() -> None:
    w = LeeKimWeighting(NAMES3, by_period({1: 3.0}), clip="none")
    feed(w, [4.0, 2.0, 1.0], 0, 0)
    new = feed(w, [2.0, 2.0, 1.0], 0, 1)
    # unclipped multipliers [3, 0.5, 0.5]: w2 = [7/12, 7/36, 7/18]; Σ w2·[2, 2, 1] = 7/6 + 7/18 + 7/18 = 35/18
    torch.testing.assert_close(new, exact(7 / 12, 7 / 36, 7 / 18), rtol=1e-15, atol=0)
    assert float((new * exact(2, 2, 1)).sum()) == pytest.approx(35 / 18, rel=1e-15)


def test_pure_equation_refuses_a_non_positive_weight() -> None:
    w = LeeKimWeighting(NAMES3, by_period({1: 7.0}), clip="none")
    feed(w, [4.0, 2.0, 1.0], 0, 0)
    # λ = 7: multiplier of l_r^0 = 1 + 7 ((5/6)·1 − 1) = −1/6, so w = 7/18 · (−1/6) = −7/108 = −0.0648…
    with pytest.raises(WeightingError, match=r"weight of 'l_r\^0' would become -0\.0648\d* <= 0") as info:
        feed(w, [2.0, 2.0, 1.0], 0, 1)
    assert "clip=(0.5, 2.0)" in str(info.value)


def test_init_off_first_period_only_records_the_reference() -> None:
    w = LeeKimWeighting(NAMES3, by_period({1: 1.0}), init=False)
    new = feed(w, [4.0, 2.0, 1.0], 0, 0)
    assert torch.equal(new, torch.full((3,), 1 / 3, dtype=torch.float64))
    assert w.records[0].action == "reference"
    new = feed(w, [2.0, 2.0, 1.0], 0, 1)
    # w = 1/3: L_all = 5/3, L'_all = 7/3, ratio 5/7; λ = 1: multiplier (5/7)[2, 1, 1] -> w = [10/21, 5/21, 5/21]
    torch.testing.assert_close(new, exact(10 / 21, 5 / 21, 5 / 21), rtol=1e-15, atol=0)
    assert float((new * exact(2, 2, 1)).sum()) == pytest.approx(5 / 3, rel=1e-15)


def test_rebalance_off_keeps_the_initial_weights() -> None:
    w = LeeKimWeighting(NAMES3, 3, rebalance=False)
    init = feed(w, [4.0, 2.0, 1.0], 0, 0)
    for p, means in enumerate(([2.0, 2.0, 1.0], [1.0, 5.0, 1.0]), start=1):
        assert torch.equal(feed(w, means, 0, p), init)
    assert [r.action for r in w.records] == ["init", "none", "none"]


def test_both_flags_off_is_equal_weighting() -> None:
    w = LeeKimWeighting(NAMES3, 3, init=False, rebalance=False)
    for p in range(3):
        assert torch.equal(feed(w, [4.0, 2.0 + p, 1.0], 0, p), torch.full((3,), 1 / 3, dtype=torch.float64))


def test_single_loss_keeps_weight_one() -> None:
    w = LeeKimWeighting(("l_D^0",), PAPER_SCHEDULE, clip="none")
    assert feed(w, [5.0], 0, 0).tolist() == [1.0]  # init: (5/1) / (1·5) = 1
    for p, m in enumerate([2.0, 7.0, 0.5], start=1):
        # multiplier 1 + λ((ℓ/ℓ')(ℓ'/ℓ) − 1) = 1
        assert feed(w, [m], 0, p).tolist() == pytest.approx([1.0], rel=1e-15)


def test_schedule_is_called_with_epoch_and_period() -> None:
    calls: list[tuple[int, int]] = []

    def lam(epoch: int, period: int) -> float:
        calls.append((epoch, period))
        return 0.0

    w = LeeKimWeighting(NAMES3, lam)
    feed(w, [1.0, 1.0, 1.0], 0, 0)
    feed(w, [1.0, 1.0, 1.0], 2, 3)
    assert calls == [(0, 0), (2, 3)]
    assert [r.lam for r in w.records] == [0.0, 0.0]


def test_schedule_spec_values_are_parsed() -> None:
    assert LeeKimWeighting(NAMES3, "3 -> -3").schedule == PAPER_SCHEDULE
    assert LeeKimWeighting(NAMES3, {"kind": "constant", "value": 2}).schedule == Constant(2)
    assert LeeKimWeighting(NAMES3, 0).schedule == Constant(0)


def test_paper_schedule_drives_the_recorded_lambda() -> None:
    w = LeeKimWeighting(NAMES3, "3 -> -3")
    for epoch in range(6):
        feed(w, [1.0 + epoch, 2.0, 3.0], epoch, 0)
    assert [r.lam for r in w.records] == [3.0, 1.5, 0.0, -1.5, -3.0, -3.0]


def test_combine_uses_the_current_weights_and_keeps_the_graph() -> None:
    w = LeeKimWeighting(NAMES3, 1)
    x = torch.tensor([[4.0, 2.0, 1.0], [2.0, 2.0, 2.0]], dtype=torch.float32, requires_grad=True)
    loss = w.combine(x)
    # mean_b Σ_i (1/3) ℓ_bi = ((7 + 6)/3) / 2 = 13/6
    assert loss.dtype == torch.float32 and loss.shape == ()
    assert float(loss.detach()) == pytest.approx(13 / 6, rel=1e-6)
    loss.backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, torch.full((2, 3), 1 / 6))  # ∂/∂ℓ_bi = w_i / B
    feed(w, [4.0, 2.0, 1.0], 0, 0)  # w = [7/36, 7/18, 7/9]
    x64 = torch.tensor([[4.0, 2.0, 1.0]], dtype=torch.float64)
    assert float(w.combine(x64)) == pytest.approx(7 / 3, rel=1e-15)  # the cached cast was refreshed


def test_records_are_frozen_named_and_asdict_friendly() -> None:
    w = LeeKimWeighting(NAMES3, 1)
    feed(w, [4.0, 2.0, 1.0], 0, 0)
    rec = w.records[0]
    assert isinstance(rec, PeriodRecord)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.epoch = 3  # type: ignore[misc]
    d = dataclasses.asdict(rec)
    assert d == rec.as_dict()
    assert set(d) == {"epoch", "period", "action", "lam", "total", "images", "losses"}
    assert set(d["losses"][0]) == {"name", "mean", "weight", "contribution"}
    assert PeriodRecord.from_dict(d) == rec
    assert rec.loss("l_r^0").weight == pytest.approx(7 / 18)
    with pytest.raises(KeyError, match="no loss 'l_D\\^1'"):
        rec.loss("l_D^1")
    w.records.clear()  # a copy: the method's own list is untouched
    assert len(w.records) == 1


# ============================================================================================== properties (eq. 11)
_mean = st.floats(0.01, 100.0)


@st.composite
def three_periods(draw: st.DrawFn) -> tuple[int, list[list[float]]]:
    k = draw(st.integers(1, 6))
    periods = [draw(st.lists(_mean, min_size=k, max_size=k)) for _ in range(3)]
    return k, periods


def _run(
    periods: list[list[float]], lam: float, *, clip: Any = "none", init: bool = True
) -> tuple[LeeKimWeighting, list[Tensor]]:
    names = ("l_D^0", "l_M^0", "l_M5^0", "l_M17^0", "l_M65^0", "l_r^0")[: len(periods[0])]
    w = LeeKimWeighting(names, lambda e, p: 0.0 if p == 0 else lam, clip=clip, init=init)
    out = [w.weights]
    for p, means in enumerate(periods):
        w.observe(torch.tensor([means], dtype=torch.float64))
        out.append(w.end_period(0, p))
    return w, out


def _multipliers(w_old: Tensor, prev: list[float], cur: list[float], lam: float) -> Tensor:
    p, c = torch.tensor(prev, dtype=torch.float64), torch.tensor(cur, dtype=torch.float64)
    return 1 + lam * ((w_old * c).sum() / (w_old * p).sum() * p / c - 1)


@settings(max_examples=60, deadline=None)
@given(data=three_periods(), lam=st.floats(-3, 3))
def test_unclipped_update_preserves_the_weighted_total(data: tuple[int, list[list[float]]], lam: float) -> None:
    _, periods = data
    w_init = _run(periods[:1], lam)[1][-1]
    assume(bool((_multipliers(w_init, periods[0], periods[1], lam) > 1e-6).all()))
    _, ws = _run(periods[:2], lam)
    cur = torch.tensor(periods[1], dtype=torch.float64)
    before, after = float((ws[1] * cur).sum()), float((ws[2] * cur).sum())
    assert after == pytest.approx(before, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(data=three_periods())
def test_lambda_zero_changes_nothing(data: tuple[int, list[list[float]]]) -> None:
    _, periods = data
    for clip in ("none", (0.5, 2.0)):
        _, ws = _run(periods, 0.0, clip=clip)
        assert torch.equal(ws[2], ws[1]) and torch.equal(ws[3], ws[1])


@settings(max_examples=60, deadline=None)
@given(data=three_periods(), init=st.booleans())
def test_lambda_one_keeps_every_contribution_eq12(data: tuple[int, list[list[float]]], init: bool) -> None:
    _, periods = data
    w, _ = _run(periods, 1.0, init=init)  # without init the contributions start unequal (ℓ̄_i / Σ ℓ̄)
    # w_i^(t) P_i^(t) = w_i^(t-1) P_i^(t-1) with the shares under the same weights (eq. 12)
    for prev, cur in zip(w.records[:-1], w.records[1:], strict=True):
        assert [r.contribution for r in cur.losses] == pytest.approx([r.contribution for r in prev.losses], rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(data=three_periods(), lam=st.floats(0.01, 3), clip=st.sampled_from(["none", (0.5, 2.0)]))
def test_positive_lambda_raises_the_weight_of_a_loss_whose_share_fell(
    data: tuple[int, list[list[float]]], lam: float, clip: Any
) -> None:
    _, periods = data
    w_init = _run(periods[:1], lam)[1][-1]
    mult = _multipliers(w_init, periods[0], periods[1], lam)
    assume(clip != "none" or bool((mult > 1e-6).all()))
    _, ws = _run(periods[:2], lam, clip=clip)
    prev, cur = (torch.tensor(p, dtype=torch.float64) for p in periods[:2])
    share_prev = w_init * prev / (w_init * prev).sum()
    share_cur = w_init * cur / (w_init * cur).sum()
    for i in range(len(cur)):
        if float(share_cur[i]) < float(share_prev[i]) * (1 - 1e-9):
            assert float(ws[2][i]) > float(ws[1][i])
        elif float(share_cur[i]) > float(share_prev[i]) * (1 + 1e-9):
            assert float(ws[2][i]) < float(ws[1][i])


@settings(max_examples=40, deadline=None)
@given(data=three_periods())
def test_init_equalizes_contributions_and_preserves_the_total(data: tuple[int, list[list[float]]]) -> None:
    k, periods = data
    _, ws = _run(periods[:1], 0.0)
    m = torch.tensor(periods[0], dtype=torch.float64)
    contrib = ws[1] * m
    torch.testing.assert_close(contrib, torch.full((k,), float(m.sum()) / k**2, dtype=torch.float64))
    assert float(contrib.sum()) == pytest.approx(float(m.mean()), rel=1e-12)


# ============================================================================================== resume (all methods)
def _make(name: str) -> WeightingMethod:
    presets: dict[str, dict[str, Any]] = {
        "fixed": {"weights": {"l_D^0": 1.0, "l_r^0": 0.5, "l_N^0": 0.25}},
        "lee-kim": {"schedule": "3 -> -3"},
    }
    return make_weighting(name, NAMES3, **presets.get(name, {}))


def _step(method: WeightingMethod, gen: torch.Generator) -> Tensor:
    x = (torch.rand(4, 3, generator=gen, dtype=torch.float64) + 0.1).requires_grad_(True)
    method.observe(x.detach())
    loss = method.combine(x)
    loss.backward()
    with torch.no_grad():  # a hand SGD step on learnable weights, as the trainer's optimizer would do
        for p in method.parameters():
            assert p.grad is not None
            p -= 0.1 * p.grad
            p.grad = None
    return loss.detach()


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_state_dict_round_trip_gives_an_identical_continuation(name: str) -> None:
    a = _make(name)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(2):
        for period in range(2):
            for _ in range(2):
                _step(a, gen)
            a.end_period(epoch, period)
    _step(a, gen)  # checkpoint in the middle of a period
    state = roundtrip(a.state_dict())
    b = _make(name)
    b.load_state_dict(state)
    assert b.records == a.records
    gen_b = torch.Generator()
    gen_b.set_state(gen.get_state())
    for period in range(2):
        for _ in range(3):
            assert torch.equal(_step(a, gen), _step(b, gen_b))
        assert torch.equal(a.end_period(2, period), b.end_period(2, period))
        assert torch.equal(a.weights, b.weights)
    assert a.records == b.records


def test_load_state_dict_refuses_a_foreign_state() -> None:
    w = LeeKimWeighting(NAMES3, 3)
    feed(w, [4.0, 2.0, 1.0], 0, 0)
    state = w.state_dict()
    with pytest.raises(WeightingError, match="belongs to method 'lee-kim', not 'equal'"):
        EqualWeighting(NAMES3).load_state_dict(state)
    with pytest.raises(WeightingError, match="saved for losses"):
        LeeKimWeighting(("l_D^0", "l_r^0"), 3).load_state_dict(state)
    with pytest.raises(WeightingError, match="saved with options"):
        LeeKimWeighting(NAMES3, 3, clip="none").load_state_dict(state)


# ============================================================================================== bad input
@pytest.mark.parametrize(
    ("value", "kind"), [(math.nan, "NaN"), (math.inf, "infinite"), (-0.5, "negative"), (-math.inf, "infinite")]
)
def test_observe_rejects_bad_values_naming_the_loss(value: float, kind: str) -> None:
    w = LeeKimWeighting(NAMES3, 3)
    x = torch.ones(2, 3)
    x[1, 2] = value
    with pytest.raises(WeightingError, match=rf"loss 'l_N\^0' has a {kind} value .* \(batch row 1\)"):
        w.observe(x)


@pytest.mark.parametrize(
    ("shape", "message"),
    [((2, 4), r"K = 3 .* got \(2, 4\)"), ((3,), r"shape \(B, K\)"), ((0, 3), "empty batch"), ((2, 3, 1), r"\(B, K\)")],
)
def test_wrong_shapes(shape: tuple[int, ...], message: str) -> None:
    w = LeeKimWeighting(NAMES3, 3)
    with pytest.raises(WeightingError, match=message):
        w.observe(torch.ones(shape))
    with pytest.raises(WeightingError, match=message):
        w.combine(torch.ones(shape))


def test_non_tensor_and_integer_input() -> None:
    w = EqualWeighting(NAMES3)
    with pytest.raises(WeightingError, match="expected a tensor of shape"):
        w.observe([[1.0, 2.0, 3.0]])  # type: ignore[arg-type]
    with pytest.raises(WeightingError, match="floating-point"):
        w.observe(torch.ones(1, 3, dtype=torch.int64))


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("l_D^0", "l_D^9"), r"unknown loss name 'l_D\^9'; did you mean"),
        (("l_D0",), r"unknown loss name 'l_D0'; did you mean 'l_D\^0'"),
        (("l_D^0", "l_D^0"), r"'l_D\^0' appears more than once"),
        ((), "at least one loss name"),
        ("l_D^0", "got the single string"),
    ],
)
def test_bad_names(names: Any, message: str) -> None:
    for cls in (EqualWeighting, lambda n: LeeKimWeighting(n, 3)):
        with pytest.raises(WeightingError, match=message):
            cls(names)


def test_end_period_needs_observations_and_valid_indices() -> None:
    w = LeeKimWeighting(NAMES3, 3)
    with pytest.raises(WeightingError, match=r"end_period\(epoch=0, period=0\): no images were observed"):
        w.end_period(0, 0)
    w.observe(torch.ones(1, 3))
    with pytest.raises(WeightingError, match="epoch must be an int >= 0"):
        w.end_period(-1, 0)
    with pytest.raises(WeightingError, match="period must be an int >= 0"):
        w.end_period(0, 1.0)  # type: ignore[arg-type]


def test_zero_mean_is_a_clear_error() -> None:
    w = LeeKimWeighting(NAMES3, 3)
    w.observe(torch.tensor([[1.0, 0.0, 1.0]]))
    with pytest.raises(WeightingError, match=r"init \(eq. 9\): loss 'l_r\^0' has mean 0.0 .* removed"):
        w.end_period(0, 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"clip": (2.0, 0.5)}, r"0 < low <= 1 <= high < inf must hold for clip, but got \(low=2.0, high=0.5\)"),
        ({"clip": (0.0, 2.0)}, "0 < low <= 1"),
        ({"clip": "tight"}, "clip must be a pair"),
        ({"clip": (0.5, 2.0, 3.0)}, "clip must be a pair"),
        ({"init": "yes"}, "init must be True or False"),
        ({"rebalance": 1}, "rebalance must be True or False"),
    ],
)
def test_lee_kim_option_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(WeightingError, match=message):
        LeeKimWeighting(NAMES3, 3, **options)


def test_schedule_returning_garbage() -> None:
    w = LeeKimWeighting(NAMES3, lambda e, p: math.nan)
    w.observe(torch.ones(1, 3))
    with pytest.raises(WeightingError, match=r"the λ schedule gave nan at \(epoch=0, period=0\)"):
        w.end_period(0, 0)


def test_errors_are_value_errors_of_the_project_hierarchy() -> None:
    with pytest.raises(MLRDError):
        EqualWeighting(("nope",))
    with pytest.raises(ValueError):
        EqualWeighting(("nope",))


# ============================================================================================== baselines
def test_equal() -> None:
    w = EqualWeighting(NAMES3)
    assert torch.equal(w.weights, torch.full((3,), 1 / 3, dtype=torch.float64))
    assert torch.equal(feed(w, [4.0, 2.0, 1.0], 0, 0), w.weights)
    rec = w.records[0]
    assert (rec.action, rec.lam, rec.total) == ("none", None, pytest.approx(7 / 3))
    # contribution = (1/3) ℓ_i / (7/3) = ℓ_i / 7
    assert [r.contribution for r in rec.losses] == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    assert w.parameters() == []


def test_fixed_by_name() -> None:
    w = FixedWeighting(NAMES3, {"l_D^0": 1.0, "l_r^0": 0.5, "l_N^0": 0.25})
    assert w.weights.tolist() == [1.0, 0.5, 0.25]
    x = torch.tensor([[4.0, 2.0, 1.0]])
    assert float(w.combine(x)) == pytest.approx(4 + 1 + 0.25)
    n = FixedWeighting(NAMES3, {"l_D^0": 1.0, "l_r^0": 0.5, "l_N^0": 0.25}, normalize=True)
    assert n.weights.tolist() == pytest.approx([1 / 1.75, 0.5 / 1.75, 0.25 / 1.75])
    d = FixedWeighting(NAMES3, {"l_D^0": 2.0}, default=0.1)
    assert d.weights.tolist() == [2.0, 0.1, 0.1]


@pytest.mark.parametrize(
    ("weights", "options", "message"),
    [
        ({"l_D^0": 1.0}, {}, r"no weight given for 2 selected loss\(es\) \['l_r\^0', 'l_N\^0'\]"),
        ({"l_D^0": 1.0, "l_r^0": 1, "l_N^0": 1, "l_D^1": 1.0}, {}, r"'l_D\^1', which is not among the selected"),
        ({"l_D^0": -1.0}, {"default": 1.0}, r"the weight of 'l_D\^0' must be finite and >= 0"),
        ({"l_D^0": 0.0}, {"default": 0.0}, "all weights are 0"),
        ({}, {}, "non-empty mapping"),
        ({"l_D^0": 1.0}, {"default": math.nan}, "default must be finite"),
    ],
)
def test_fixed_errors(weights: dict[str, float], options: dict[str, Any], message: str) -> None:
    with pytest.raises(WeightingError, match=message):
        FixedWeighting(NAMES3, weights, **options)


def test_fixed_by_set_expression() -> None:
    """Needs the set-expression parser ``mlrd_core.losses.select`` (being written in parallel)."""
    names = ("l_D^0", "l_D^1", "l_N^0")
    w = FixedWeighting(names, {"L_D": 2.0, "l_N^0": 0.5, "l_D^1": 3.0})
    assert w.weights.tolist() == [2.0, 3.0, 0.5]  # the plain name l_D^1 overrides the expression L_D
    with pytest.raises(WeightingError, match=r"'l_D\^0' is weighted by both 'L_D' and 'L\^0'"):
        FixedWeighting(names, {"L_D": 1.0, "L^0": 1.0})
    with pytest.raises(WeightingError, match="matches none of the selected losses"):
        FixedWeighting(names, {"L_G": 1.0, "L_D": 1.0, "l_N^0": 1.0})


def test_uncertainty_by_hand() -> None:
    w = UncertaintyWeighting(("l_D^0", "l_r^0"))
    (s,) = w.parameters()
    assert s.is_leaf and s.requires_grad and s.dtype == torch.float64
    assert w.weights.tolist() == [0.5, 0.5]  # ½ exp(−0)
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    loss = w.combine(x)
    # ½·1 + ½·2 + ½(0 + 0) = 1.5; ∂/∂s_i = −½ exp(−s_i) ℓ_i + ½ = [0, −0.5]
    assert loss.item() == pytest.approx(1.5)
    loss.backward()
    assert s.grad is not None and s.grad.tolist() == pytest.approx([0.0, -0.5])
    with torch.no_grad():
        s.copy_(torch.tensor([0.0, math.log(2.0)], dtype=torch.float64))
    s.grad = None
    loss = w.combine(x.detach())
    # at exp(s) = ℓ the regularized loss is stationary: ½ + ½·½·2 + ½ log 2
    assert loss.item() == pytest.approx(1.0 + 0.5 * math.log(2.0))
    loss.backward()
    assert s.grad is not None and s.grad.tolist() == pytest.approx([0.0, 0.0], abs=1e-15)
    assert w.weights.tolist() == pytest.approx([0.5, 0.25])
    assert w.combine(x.float()).dtype == torch.float32


def test_uncertainty_to_keeps_a_leaf() -> None:
    w = UncertaintyWeighting(NAMES3, init_log_var=1.0).to("cpu")
    (s,) = w.parameters()
    assert s.is_leaf and s.requires_grad
    assert w.weights.tolist() == pytest.approx([0.5 * math.exp(-1.0)] * 3)


def test_dwa_per_period_by_hand() -> None:
    w = DWA(("l_D^0", "l_r^0"), per_period=True)
    assert w.weights.tolist() == [1.0, 1.0]
    assert feed(w, [1.0, 2.0], 0, 0).tolist() == [1.0, 1.0]  # one period: not enough history
    new = feed(w, [0.5, 2.0], 0, 1)
    # r = [0.5/1, 2/2] = [0.5, 1]; w = 2 softmax(r / 2) = 2 [e^.25, e^.5] / (e^.25 + e^.5)
    e1, e2 = math.exp(0.25), math.exp(0.5)
    assert new.tolist() == pytest.approx([2 * e1 / (e1 + e2), 2 * e2 / (e1 + e2)], rel=1e-15)
    assert float(new.sum()) == pytest.approx(2.0)
    assert [r.action for r in w.records] == ["warmup", "update"]
    new = feed(w, [0.5, 1.0], 0, 2)  # r = [1, 0.5]: the roles swap
    assert new.tolist() == pytest.approx([2 * e2 / (e1 + e2), 2 * e1 / (e1 + e2)], rel=1e-15)
    with pytest.raises(WeightingError, match="temperature must be finite and > 0"):
        DWA(NAMES3, temperature=0)


def dwa_reference(epoch_means: list[list[float]], temperature: float = 2.0) -> list[list[float]]:
    """The weights in effect during each epoch, as the original code computes them (model_segnet_mtan.py):
    1 for epochs 0 and 1, then K·exp(r/T)/Σ exp(r/T) with r = avg_cost[e-1] / avg_cost[e-2]."""
    k = len(epoch_means[0])
    out = []
    for e in range(len(epoch_means) + 1):
        if e < 2:
            out.append([1.0] * k)
            continue
        r = [epoch_means[e - 1][i] / epoch_means[e - 2][i] for i in range(k)]
        z = sum(math.exp(x / temperature) for x in r)
        out.append([k * math.exp(x / temperature) / z for x in r])
    return out


@pytest.mark.parametrize("periods", [1, 4])
def test_dwa_updates_per_epoch_after_two_epochs_whatever_the_periods(periods: int) -> None:
    names = ("l_D^0", "l_r^0", "l_N^1")
    rng = torch.Generator().manual_seed(periods)
    period_means = torch.rand(4, periods, 3, generator=rng, dtype=torch.float64) + 0.1
    w = DWA(names)
    in_effect = []  # the weights used during each epoch
    for epoch in range(4):
        in_effect.append(w.weights.tolist())
        for period in range(periods):
            during = w.weights
            feed(w, period_means[epoch, period].tolist(), epoch, period)
            if period < periods - 1:
                assert torch.equal(w.weights, during)  # nothing changes inside an epoch
    epoch_means = period_means.mean(dim=1).tolist()  # equal images per period: the epoch mean
    expected = dwa_reference(epoch_means)
    for epoch in range(4):
        assert in_effect[epoch] == pytest.approx(expected[epoch], rel=1e-12)
    assert w.weights.tolist() == pytest.approx(expected[4], rel=1e-12)
    actions = [r.action for r in w.records]
    assert actions[: 2 * periods - 1] == ["warmup"] * (2 * periods - 1) and actions[2 * periods - 1] == "update"
    assert actions.count("update") == 3  # at the ends of epochs 1, 2 and 3


def test_dwa_epoch_mean_weighs_periods_by_images_and_resumes_mid_epoch() -> None:
    names = ("l_D^0", "l_r^0")
    a = DWA(names)
    for epoch in range(2):
        a.observe(torch.tensor([[1.0, 1.0]], dtype=torch.float64))  # period 0: one image
        a.end_period(epoch, 0)
        a.observe(torch.tensor([[4.0, 1.0]] * 3, dtype=torch.float64) * (epoch + 1))  # period 1: three images
        a.end_period(epoch, 1)
    # epoch means: e0 = [(1 + 12)/4, 1] = [3.25, 1]; e1 = [(1 + 24)/4, (1 + 6)/4] = [6.25, 1.75]
    r = [6.25 / 3.25, 1.75 / 1.0]
    z = math.exp(r[0] / 2) + math.exp(r[1] / 2)
    assert a.weights.tolist() == pytest.approx([2 * math.exp(r[0] / 2) / z, 2 * math.exp(r[1] / 2) / z], rel=1e-12)
    a.observe(torch.tensor([[2.0, 3.0]], dtype=torch.float64))
    a.end_period(2, 0)  # checkpoint in the middle of epoch 2
    b = DWA(names)
    b.load_state_dict(roundtrip(a.state_dict()))
    for m in (a, b):
        m.observe(torch.tensor([[5.0, 1.0]], dtype=torch.float64))
        m.end_period(2, 1)
    assert torch.equal(a.weights, b.weights) and a.records == b.records
    with pytest.raises(WeightingError, match="the state was saved with options"):
        DWA(names, per_period=True).load_state_dict(a.state_dict())


def test_dwa_needs_every_epoch_to_have_the_periods_of_epoch_0() -> None:
    w = DWA(NAMES3)
    for period in range(3):
        feed(w, [1.0, 2.0, 3.0], 0, period)
    feed(w, [1.0, 2.0, 3.0], 1, 0)
    with pytest.raises(WeightingError, match=r"dwa: epoch 1 ended after 1 of its 3 periods"):
        feed(w, [1.0, 2.0, 3.0], 2, 0)
    w = DWA(NAMES3)
    feed(w, [1.0, 2.0, 3.0], 0, 0)
    feed(w, [1.0, 2.0, 3.0], 1, 0)  # epoch 0 had one period
    feed(w, [1.0, 2.0, 3.0], 2, 0)
    with pytest.raises(WeightingError, match=r"dwa: epoch 2 has more periods than epoch 0 \(1; got period 1\)"):
        feed(w, [1.0, 2.0, 3.0], 2, 1)
    with pytest.raises(WeightingError, match="per_period must be true or false"):
        DWA(NAMES3, per_period="yes")  # type: ignore[arg-type]


def test_rlw_draws_softmax_normal_from_its_own_generator() -> None:
    w = RLW(NAMES3, seed=7)
    assert w.weights.tolist() == pytest.approx([1 / 3] * 3)
    gen = torch.Generator().manual_seed(7)
    expected = [torch.softmax(torch.randn(3, generator=gen, dtype=torch.float64), 0) for _ in range(3)]
    x = torch.tensor([[1.0, 2.0, 4.0]], dtype=torch.float64)
    for e in expected:
        w.observe(x)
        loss = w.combine(x)
        assert torch.equal(w.weights, e)
        assert float(loss) == pytest.approx(float((e * x[0]).sum()))
    w.end_period(0, 0)
    # the record holds the mean of the period's draws
    assert [r.weight for r in w.records[0].losses] == pytest.approx(torch.stack(expected).mean(0).tolist())
    assert torch.equal(RLW(NAMES3, seed=7).sample(), expected[0])


def test_famo_first_steps_by_hand() -> None:
    w = FAMO(("l_D^0", "l_r^0"), eps=1e-12)
    x1 = torch.tensor([[1.0, 3.0]], dtype=torch.float64, requires_grad=True)
    loss = w.combine(x1)
    # z = [½, ½]; w ∝ z / ℓ = [½, 1/6] -> [0.75, 0.25]; value 0.75·1 + 0.25·3 = 1.5
    assert w.weights.tolist() == pytest.approx([0.75, 0.25], rel=1e-10)
    assert loss.item() == pytest.approx(1.5, rel=1e-10)
    loss.backward()
    assert x1.grad is not None and x1.grad[0].tolist() == pytest.approx([0.75, 0.25], rel=1e-10)
    assert w.parameters() == []
    w.combine(torch.tensor([[0.5, 3.0]], dtype=torch.float64))
    # δ = log ℓ_prev − log ℓ_curr = [log 2, 0]; g_i = z_i (δ_i − z·δ) = [+log2/4, −log2/4] (ξ = 0, so γξ = 0)
    # Adam's first step moves by lr·m̂/(sqrt(v̂)+eps) = lr·g/(|g|+1e-8) ≈ lr·sign(g): ξ = [−0.025, +0.025]
    g = math.log(2) / 4
    step = 0.025 * g / (g + 1e-8)
    assert w.logits.tolist() == pytest.approx([-step, step], rel=1e-12)
    z = torch.softmax(torch.tensor([-step, step], dtype=torch.float64), 0)
    q = z / torch.tensor([0.5, 3.0], dtype=torch.float64)
    assert w.weights.tolist() == pytest.approx((q / q.sum()).tolist(), rel=1e-10)


def test_famo_sgd_is_the_papers_algorithm() -> None:
    w = FAMO(("l_D^0", "l_r^0"), optimizer="sgd", lr=0.5, gamma=0.1, eps=1e-12)
    w.update_logits(torch.tensor([1.0, 3.0], dtype=torch.float64), torch.tensor([0.5, 3.0], dtype=torch.float64))
    g = math.log(2) / 4
    assert w.logits.tolist() == pytest.approx([-0.5 * g, 0.5 * g], rel=1e-12)  # ξ = 0 − β (g + γ·0)
    xi = w.logits
    w.update_logits(torch.tensor([1.0, 1.0], dtype=torch.float64), torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert w.logits.tolist() == pytest.approx((xi - 0.5 * 0.1 * xi).tolist(), rel=1e-12)  # δ = 0: decay only


def test_famo_adam_matches_the_official_torch_update() -> None:
    gen = torch.Generator().manual_seed(3)
    ours = FAMO(NAMES3, gamma=0.01, lr=0.025)
    xi = torch.zeros(3, dtype=torch.float64, requires_grad=True)  # famo.py: Adam([w], lr, weight_decay=gamma)
    opt = torch.optim.Adam([xi], lr=0.025, weight_decay=0.01)
    prev = torch.rand(3, generator=gen, dtype=torch.float64) + 0.1
    for _ in range(6):
        curr = torch.rand(3, generator=gen, dtype=torch.float64) + 0.1
        ours.update_logits(prev, curr)
        delta = torch.log(prev + 1e-8) - torch.log(curr + 1e-8)
        (d,) = torch.autograd.grad(torch.softmax(xi, -1), xi, grad_outputs=delta)
        opt.zero_grad()
        xi.grad = d
        opt.step()
        prev = curr
    torch.testing.assert_close(ours.logits, xi.detach(), rtol=1e-12, atol=1e-15)


def test_famo_rejects_negative_losses() -> None:
    with pytest.raises(WeightingError, match=r"famo: loss 'l_r\^0' has batch mean -1.0"):
        FAMO(NAMES3).combine(torch.tensor([[1.0, -1.0, 1.0]]))


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_every_method_trains_a_tiny_model(name: str) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 3)
    method = _make(name)
    opt = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=0.05)
    x = torch.randn(8, 2)
    first = last = 0.0
    for step in range(30):
        per_image = (model(x) - 1.0).abs()  # three "losses" per image
        method.observe(per_image.detach())
        loss = method.combine(per_image)
        assert loss.shape == () and torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 9:
            method.end_period(0, step // 10)
        value = per_image.detach().mean().item()
        first, last = (value if step == 0 else first), value
    assert last < first
    assert len(method.records) == 3
    assert method.weights.dtype == torch.float64 and method.weights.shape == (3,)


# ============================================================================================== factory
def test_factory_knows_every_method() -> None:
    assert set(WEIGHTINGS) == {"equal", "fixed", "lee-kim", "uncertainty", "dwa", "rlw", "famo"}
    for name, cls in WEIGHTINGS.items():
        assert isinstance(_make(name), cls)
        assert cls.name == name


def test_factory_defaults_and_spec_values() -> None:
    w = make_weighting("lee-kim", NAMES3)
    assert isinstance(w, LeeKimWeighting) and w.schedule == PAPER_SCHEDULE and w.clip == (0.5, 2.0)
    w = make_weighting("Lee_Kim", NAMES3, schedule="0", clip=[0.5, 2], init=False)  # TOML gives lists
    assert isinstance(w, LeeKimWeighting) and w.schedule == Constant(0) and w.clip == (0.5, 2.0) and not w.init
    assert make_weighting("lee-kim", NAMES3, clip="none").clip is None  # type: ignore[attr-defined]
    assert make_weighting("dwa", NAMES3, temperature=1.0).temperature == 1.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("lee-kin", {}, r"unknown weighting method 'lee-kin'; did you mean 'lee-kim'\? \(valid: equal, fixed"),
        ("gradnorm", {}, r"unknown weighting method 'gradnorm' \(valid: equal, fixed, lee-kim, uncertainty"),
        ("lee-kim", {"lamda": 3}, r"unknown option\(s\) \['lamda'\] .* valid options: schedule, init, rebalance, clip"),
        ("equal", {"seed": 1}, r"unknown option\(s\) \['seed'\] for weighting 'equal'; valid options: \(none\)"),
        ("fixed", {}, r"weighting 'fixed' needs option\(s\) \['weights'\]"),
    ],
)
def test_factory_errors(name: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(WeightingError, match=message):
        make_weighting(name, NAMES3, **options)
