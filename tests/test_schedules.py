"""λ schedules (mlrd_core.weighting.schedules): values by hand, every spec form, every error."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlrd_core.errors import MLRDError, ScheduleError
from mlrd_core.weighting import (
    PAPER_SCHEDULE,
    SCHEDULES,
    Constant,
    Cosine,
    Linear,
    Piecewise,
    Schedule,
    Step,
    parse_schedule,
)

PAPER_SEQUENCE = [3.0, 1.5, 0.0, -1.5, -3.0, -3.0, -3.0, -3.0]


# ---------------------------------------------------------------------------------------------- the paper's ramp
@pytest.mark.parametrize("spec", ["3 -> -3", "3 → -3", "3 → −3", "3->-3", " 3 -> -3 @ 5 ", "+3 -> -3.0"])
def test_paper_sequence_per_epoch_index(spec: str) -> None:
    # Lee & Kim §4.1: λ = 3 at the first epoch, decreased to −3 until the fifth; epochs are 0-based here
    lam = parse_schedule(spec)
    assert lam == PAPER_SCHEDULE == Linear(3, -3, epochs=5)
    assert [lam(e, 0) for e in range(8)] == PAPER_SEQUENCE  # exact, not approx


def test_paper_sequence_matches_the_authors_formula() -> None:
    # train.py: current_lambda = max(start + epoch * slope, min) with start 3, slope -1.5, min -3
    assert [PAPER_SCHEDULE(e, 0) for e in range(20)] == [max(3 + e * -1.5, -3) for e in range(20)]


def test_per_epoch_ignores_the_period() -> None:
    assert [PAPER_SCHEDULE(1, p) for p in range(10)] == [1.5] * 10


def test_per_period_interpolates_at_the_period_start() -> None:
    lam = Linear(3, -3, epochs=5, per_period=True)
    # on the run's grid of 4 periods: x = epoch + period/4; λ = 3 - 6 * x / 4
    assert lam(0, 0, 4) == 3.0
    assert lam(0, 1, 4) == 3 - 6 * 0.25 / 4  # 2.625
    assert lam(0, 2, 4) == 2.25
    assert lam(1, 0, 4) == 1.5  # period 0 of every epoch = the per-epoch value
    assert lam(3, 3, 4) == -2.625  # x = 3.75: 3 - 6 * 3.75 / 4
    assert lam(4, 3, 4) == -3.0
    with pytest.raises(ScheduleError, match="period 4 is out of range for periods_per_epoch = 4"):
        lam(0, 4, 4)


def test_per_period_takes_the_grid_of_the_run() -> None:
    lam = Linear(3, -3, epochs=5, per_period=True)
    assert lam(0, 4, 8) == lam(0, 2, 4) == lam(0, 1, 2) == 2.25  # x = 0.5 on any grid
    assert [lam(1, p, 8) for p in range(8)] == [lam.at(1 + p / 8) for p in range(8)]
    with pytest.raises(ScheduleError, match="per-period λ schedule is evaluated on the run's period grid"):
        lam(0, 1)
    with pytest.raises(ScheduleError, match="periods_per_epoch must be an int >= 1"):
        lam(0, 0, 0)
    assert PAPER_SCHEDULE(1, 7) == PAPER_SCHEDULE(1, 7, 8) == 1.5  # a per-epoch schedule needs no grid


# ---------------------------------------------------------------------------------------------- other kinds
def test_constant_forms() -> None:
    for spec in (3, 3.0, "3", " 3 ", "3.0", {"kind": "constant", "value": 3}):
        lam = parse_schedule(spec)
        assert lam == Constant(3.0)
        assert [lam(e, 1) for e in range(3)] == [3.0, 3.0, 3.0]
    assert parse_schedule("-0.5")(7, 0) == -0.5
    assert parse_schedule("−3")(0, 0) == -3.0  # Unicode minus as in the paper


def test_linear_with_explicit_length() -> None:
    lam = parse_schedule("3 -> -3 @ 8")
    assert lam == Linear(3, -3, epochs=8)
    # slope -6/7 per epoch, end reached at epoch index 7
    assert lam(1, 0) == 3 - 6 / 7
    assert lam(7, 0) == -3.0
    assert lam(100, 0) == -3.0
    assert parse_schedule({"kind": "linear", "start": 3, "end": -3, "epochs": 8}) == lam


def test_cosine_values() -> None:
    lam = parse_schedule({"kind": "cosine", "start": 3, "end": -3, "epochs": 5})
    assert lam == Cosine(3, -3, epochs=5)
    # λ = -3 + 6 (1 + cos(π t))/2, t = e/4: t = 0, 1/4, 1/2, 3/4, 1
    half_sqrt2 = math.sqrt(2) / 2
    expected = [3.0, 3 * half_sqrt2, 0.0, -3 * half_sqrt2, -3.0, -3.0]
    assert [lam(e, 0) for e in range(6)] == pytest.approx(expected, abs=1e-12)
    assert lam(0, 0) == 3.0 and lam(4, 0) == -3.0  # exact end points


def test_step_values() -> None:
    lam = parse_schedule({"kind": "step", "values": [3, 0, -3], "milestones": [2, 4]})
    assert lam == Step(values=(3.0, 0.0, -3.0), milestones=(2.0, 4.0))
    assert [lam(e, 0) for e in range(6)] == [3.0, 3.0, 0.0, 0.0, -3.0, -3.0]


def test_step_per_period_uses_fractional_milestones() -> None:
    lam = parse_schedule({"kind": "step", "values": [1, 2], "milestones": [0.5], "per_period": True})
    assert [lam(0, p, 4) for p in range(4)] == [1.0, 1.0, 2.0, 2.0]


def test_piecewise_values() -> None:
    lam = parse_schedule({"kind": "piecewise", "points": [[0, 3], [2, 0], [5, -3]]})
    assert lam == Piecewise(points=((0.0, 3.0), (2.0, 0.0), (5.0, -3.0)))
    # 3 -> 0 over epochs 0..2 (slope -1.5), 0 -> -3 over epochs 2..5 (slope -1), then constant
    assert [lam(e, 0) for e in range(7)] == [3.0, 1.5, 0.0, -1.0, -2.0, -3.0, -3.0]


def test_piecewise_single_point_and_late_start() -> None:
    assert [Piecewise(points=((0, 2),))(e) for e in range(3)] == [2.0, 2.0, 2.0]
    lam = Piecewise(points=((2, 1), (4, 3)))
    assert [lam(e) for e in range(6)] == [1.0, 1.0, 1.0, 2.0, 3.0, 3.0]


# ---------------------------------------------------------------------------------------------- text forms
@pytest.mark.parametrize(
    ("schedule", "text"),
    [
        (Constant(3), "3"),
        (Constant(0.5), "0.5"),
        (Constant(-3), "-3"),
        (PAPER_SCHEDULE, "3 → -3"),
        (Linear(3, -3, epochs=8), "3 → -3 @ 8"),
        (Linear(0.5, 0, epochs=5), "0.5 → 0"),
        (Cosine(3, -3, epochs=5), "cosine(3 → -3 @ 5)"),
        (Step(values=(3, 0, -3), milestones=(2, 4)), "step(3, 0 @ 2, -3 @ 4)"),
        (Piecewise(points=((0, 3), (2, 0), (5, -3))), "piecewise(0: 3, 2: 0, 5: -3)"),
        (Linear(3, -3, per_period=True), "3 → -3 per period"),
    ],
)
def test_describe(schedule: Schedule, text: str) -> None:
    assert schedule.describe() == text
    assert str(schedule) == text


@pytest.mark.parametrize("schedule", [Constant(3), Constant(-0.25), PAPER_SCHEDULE, Linear(1, 2, epochs=3)])
def test_describe_round_trips(schedule: Schedule) -> None:
    assert parse_schedule(schedule.describe()) == schedule


@pytest.mark.parametrize(
    "schedule",
    [
        Constant(3),
        PAPER_SCHEDULE,
        Cosine(1, 0, epochs=3, per_period=True),
        Step(values=(3, 0, -3), milestones=(2, 4)),
        Piecewise(points=((0, 3), (2, 0), (5, -3))),
    ],
)
def test_to_spec_round_trips(schedule: Schedule) -> None:
    spec = schedule.to_spec()
    assert spec["kind"] == schedule.kind
    assert parse_schedule(spec) == schedule


def test_to_spec_is_canonical() -> None:
    assert parse_schedule("3 -> -3").to_spec() == {
        "kind": "linear",
        "start": 3.0,
        "end": -3.0,
        "epochs": 5,
        "per_period": False,
    }


def test_tables_stored_with_a_grid_of_their_own() -> None:
    """Up to version 0.2.0 a schedule carried periods_per_epoch: a per-epoch one never used it and still reads; a
    per-period one would name a grid beside the run's and is refused."""
    stored = {"kind": "linear", "start": 3.0, "end": -3.0, "epochs": 5, "per_period": False, "periods_per_epoch": 4}
    assert parse_schedule(stored) == PAPER_SCHEDULE
    with pytest.raises(ScheduleError, match="takes its period grid from the run: remove periods_per_epoch = 4"):
        parse_schedule({**stored, "per_period": True})


def test_schedules_are_frozen_hashable_and_pass_through() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PAPER_SCHEDULE.start = 1  # type: ignore[misc]
    assert len({PAPER_SCHEDULE, Linear(3, -3), Constant(0)}) == 2
    assert parse_schedule(PAPER_SCHEDULE) is PAPER_SCHEDULE
    assert set(SCHEDULES) == {"constant", "linear", "cosine", "step", "piecewise"}


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3 ->", "cannot read the λ schedule '3 ->'"),
        ("fast", "cannot read the λ schedule 'fast'"),
        ("nan", "cannot read the λ schedule 'nan'"),
        ("3 -> -3 @ x", "cannot read"),
        ("3 -> -3 @ 1", "'@ epochs' >= 2"),
        (True, "cannot be a boolean"),
        (math.inf, "must be finite"),
        ([3, -3], "cannot read a λ schedule from list"),
        (None, "cannot read a λ schedule from NoneType"),
        ({"start": 3, "end": -3}, "needs a 'kind' key"),
        ({"kind": "linar", "start": 3, "end": -3}, "unknown λ-schedule kind 'linar'; did you mean 'linear'?"),
        ({"kind": 3}, "unknown λ-schedule kind 3"),
        (
            {"kind": "linear", "start": 3, "end": -3, "epoch": 5},
            "unknown key(s) ['epoch'] in a 'linear' λ-schedule table; valid keys: kind, start, end, epochs, per_period",
        ),
        ({"kind": "linear", "start": 3}, "needs key(s) ['end']"),
        ({"kind": "constant"}, "needs key(s) ['value']"),
        ({"kind": "linear", "start": 3, "end": -3, "epochs": 1}, "epochs must be an int >= 2"),
        ({"kind": "linear", "start": 3, "end": -3, "epochs": 5.0}, "epochs must be an int >= 2"),
        ({"kind": "linear", "start": "3", "end": -3}, "start must be a number, got '3'"),
        ({"kind": "cosine", "start": 3, "end": math.nan}, "end must be finite"),
        ({"kind": "linear", "start": 3, "end": -3, "per_period": "yes"}, "per_period must be true or false"),
        ({"kind": "step", "values": [3, 0], "milestones": [2, 4]}, "len(values) == len(milestones) + 1"),
        ({"kind": "step", "values": [3, 0, 1], "milestones": [4, 2]}, "strictly increasing"),
        ({"kind": "step", "values": [3, 0], "milestones": [0]}, "milestones must be > 0"),
        ({"kind": "step", "values": [], "milestones": []}, "values must be a non-empty list"),
        ({"kind": "step", "values": 3, "milestones": []}, "step schedule: values must be a list"),
        ({"kind": "piecewise", "points": [[0, 3], [2]]}, "points[1] must be an [epoch, λ] pair"),
        ({"kind": "piecewise", "points": [[2, 3], [1, 0]]}, "strictly increasing"),
        ({"kind": "piecewise", "points": [[-1, 3]]}, "must be >= 0"),
        ({"kind": "piecewise", "points": []}, "points must be a non-empty list"),
    ],
)
def test_invalid_specs(value: object, message: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(value)
    text = str(info.value)
    assert message in text
    assert "accepted λ-schedule forms" in text  # every spec error shows the accepted forms
    assert isinstance(info.value, (MLRDError, ValueError))


def test_direct_construction_errors() -> None:
    with pytest.raises(ScheduleError, match="epochs must be an int >= 2"):
        Linear(3, -3, epochs=1)
    with pytest.raises(ScheduleError, match="value must be a number"):
        Constant(True)


@pytest.mark.parametrize(("epoch", "period"), [(-1, 0), (0, -1), (1.5, 0), ("1", 0), (True, 0)])
def test_bad_positions(epoch: object, period: object) -> None:
    with pytest.raises(ScheduleError, match="must be an int >= 0"):
        PAPER_SCHEDULE(epoch, period)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- properties
_finite = st.floats(-10, 10, allow_nan=False)


@given(start=_finite, end=_finite, epochs=st.integers(2, 12), epoch=st.integers(0, 40))
def test_ramps_stay_between_their_end_points(start: float, end: float, epochs: int, epoch: int) -> None:
    lo, hi = min(start, end), max(start, end)
    for lam in (Linear(start, end, epochs=epochs), Cosine(start, end, epochs=epochs)):
        value = lam(epoch, 0)
        assert lo - 1e-12 <= value <= hi + 1e-12
        if epoch >= epochs - 1:
            assert value == end
        if epoch == 0:
            assert value == start


@given(start=_finite, end=_finite, epochs=st.integers(2, 12))
def test_linear_is_monotone(start: float, end: float, epochs: int) -> None:
    lam = Linear(start, end, epochs=epochs)
    values = [lam(e, 0) for e in range(epochs + 2)]
    sign = 1 if end >= start else -1
    assert all(sign * (b - a) >= -1e-12 for a, b in itertools.pairwise(values))
