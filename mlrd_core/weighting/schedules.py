"""λ schedules for the rebalancing parameter of eq. (11): pure callables ``lam(epoch, period) -> float``.

Like nanoGPT's ``get_lr(it)``, a schedule is a pure function of the training position; it holds no state and is
never checkpointed. Epochs and periods are **0-based**: epoch 0 is the first epoch, period ``p`` is the p-th
period inside the epoch (the trainer's indices). By default a schedule is evaluated per epoch (λ is constant within
an epoch, as in the authors' code); with ``per_period=True`` it is evaluated at the fractional position
``x = epoch + period / periods_per_epoch`` (the start of the period), so period 0 of every epoch gets exactly the
per-epoch value. The period grid is the run's: ``periods_per_epoch`` is ``RunConfig.periods_per_epoch``, passed in by
the caller (``schedule(epoch, period, periods_per_epoch)``; :class:`~mlrd_core.weighting.LeeKimWeighting` does it),
never a field of the schedule, so λ always lies on the grid the trainer actually uses.

The paper's default "λ = 3 at the first epoch, decreased to −3 until the fifth epoch" (Lee & Kim 2020, §4.1) is
``Linear(3, -3, epochs=5)``: λ = 3, 1.5, 0, −1.5, −3, −3, … for epochs 0, 1, 2, 3, 4, 5, …, which is the authors'
``max(3 - 1.5 * epoch, -3)``.

Spec forms (``parse_schedule``): ``3``, ``"3"``, ``"3 -> -3"``, ``"3 -> -3 @ 5"``, ``"3 → −3"`` and tables such as
``{kind = "linear", start = 3, end = -3, epochs = 5}``; see :data:`ACCEPTED_FORMS`.
"""

from __future__ import annotations

import bisect
import difflib
import itertools
import math
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, MISSING, Field, dataclass, fields
from typing import Any, ClassVar

from mlrd_core.errors import ScheduleError

__all__ = [
    "ACCEPTED_FORMS",
    "PAPER_SCHEDULE",
    "SCHEDULES",
    "Constant",
    "Cosine",
    "Linear",
    "Piecewise",
    "Schedule",
    "Step",
    "parse_schedule",
]

#: Shown in every :class:`ScheduleError` raised while reading a spec value.
ACCEPTED_FORMS = """accepted λ-schedule forms (epochs are 0-based):
  3  or  "3"                          constant λ
  "3 -> -3"  or  "3 → -3"             linear ramp over 5 epochs (the paper): 3, 1.5, 0, -1.5, -3, -3, ...
  "3 -> -3 @ 8"                       linear ramp that reaches -3 at the 8th epoch (epoch index 7)
  {kind = "constant", value = 3}
  {kind = "linear", start = 3, end = -3, epochs = 5}
  {kind = "cosine", start = 3, end = -3, epochs = 5}
  {kind = "step", values = [3, 0, -3], milestones = [2, 4]}
  {kind = "piecewise", points = [[0, 3], [2, 0], [5, -3]]}
  tables also accept per_period = true (evaluate at epoch + period/periods_per_epoch, on the run's own
  periods_per_epoch)"""

#: The default ramp length of the string form ``"a -> b"`` (the paper's "until the fifth epoch").
DEFAULT_RAMP_EPOCHS = 5


def _ordered_fields(cls: type) -> list[Field[Any]]:
    """A schedule's own fields first, then the shared keyword-only one (per_period)."""
    fs = list(fields(cls))
    return [f for f in fs if not f.kw_only] + [f for f in fs if f.kw_only]


def _fmt(x: float) -> str:
    """Shortest round-tripping text of a number: ``3.0 -> "3"``, ``-1.5 -> "-1.5"``."""
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScheduleError(f"{what} must be a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ScheduleError(f"{what} must be finite, got {value!r}")
    return x


def _int(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScheduleError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _index(value: object, what: str) -> int:
    try:
        i = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ScheduleError(f"schedule position: {what} must be an int >= 0 (0-based), got {value!r}") from None
    if isinstance(value, bool) or i < 0:
        raise ScheduleError(f"schedule position: {what} must be an int >= 0 (0-based), got {value!r}")
    return i


@dataclass(frozen=True)
class Schedule(ABC):
    """A λ schedule: ``schedule(epoch, period) -> float`` (0-based indices), pure and immutable.

    ``per_period=False`` (default): λ depends on the epoch only. ``per_period=True``: λ is evaluated at
    ``x = epoch + period / periods_per_epoch``, where ``periods_per_epoch`` is the run's, given with each call;
    ``period`` must then be < ``periods_per_epoch``.
    """

    #: The ``kind`` key of the table form.
    kind: ClassVar[str] = ""

    _: KW_ONLY
    per_period: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.per_period, bool):
            raise ScheduleError(f"{self.kind} schedule: per_period must be true or false, got {self.per_period!r}")

    def position(self, epoch: int, period: int = 0, periods_per_epoch: int | None = None) -> float:
        """The schedule's abscissa: ``epoch``, or ``epoch + period / periods_per_epoch`` when per period.

        ``periods_per_epoch`` is the run's period grid (``RunConfig.periods_per_epoch``); a per-period schedule
        needs it, a per-epoch one ignores it.
        """
        e, p = _index(epoch, "epoch"), _index(period, "period")
        if not self.per_period:
            return float(e)
        if periods_per_epoch is None:
            raise ScheduleError(
                "schedule position: a per-period λ schedule is evaluated on the run's period grid; pass the run's "
                "periods_per_epoch (schedule(epoch, period, periods_per_epoch))"
            )
        n = _int(periods_per_epoch, "schedule position: periods_per_epoch", 1)
        if p >= n:
            raise ScheduleError(
                f"schedule position: period {p} is out of range for periods_per_epoch = {n} "
                "(periods are 0-based within an epoch)"
            )
        return e + p / n

    def __call__(self, epoch: int, period: int = 0, periods_per_epoch: int | None = None) -> float:
        """λ at the given 0-based (epoch, period) on a grid of ``periods_per_epoch`` periods (the run's)."""
        return float(self.at(self.position(epoch, period, periods_per_epoch)))

    @abstractmethod
    def at(self, x: float) -> float:
        """λ at the (possibly fractional) epoch position ``x >= 0``."""

    @abstractmethod
    def _describe(self) -> str: ...

    def describe(self) -> str:
        """Canonical short text for tables, e.g. ``"3 → -3"``, ``"0"``, ``"cosine(3 → -3 @ 5)"``."""
        text = self._describe()
        if self.per_period:
            text += " per period"
        return text

    def __str__(self) -> str:
        return self.describe()

    def to_spec(self) -> dict[str, Any]:
        """The table form with every field (canonical JSON for run hashing); ``parse_schedule`` inverts it."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in _ordered_fields(type(self)):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                v = [list(e) if isinstance(e, tuple) else e for e in v]
            out[f.name] = v
        return out


@dataclass(frozen=True)
class Constant(Schedule):
    """λ(x) = value."""

    kind: ClassVar[str] = "constant"
    value: float

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "value", _number(self.value, "constant schedule: value"))

    def at(self, x: float) -> float:
        return self.value

    def _describe(self) -> str:
        return _fmt(self.value)


def _ramp_fraction(x: float, epochs: int) -> float:
    return min(max(x, 0.0) / (epochs - 1), 1.0)


@dataclass(frozen=True)
class _Ramp(Schedule):
    """A ramp from ``start`` at epoch 0 to ``end`` at epoch index ``epochs - 1``, constant afterwards."""

    start: float
    end: float
    epochs: int = DEFAULT_RAMP_EPOCHS

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "start", _number(self.start, f"{self.kind} schedule: start"))
        object.__setattr__(self, "end", _number(self.end, f"{self.kind} schedule: end"))
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 2:
            raise ScheduleError(
                f"{self.kind} schedule: epochs must be an int >= 2 (λ = start at epoch 0 and end at epoch index "
                f"epochs-1), got {self.epochs!r}"
            )


@dataclass(frozen=True)
class Linear(_Ramp):
    """Linear ramp from ``start`` at epoch 0 to ``end`` at epoch index ``epochs - 1``, then constant.

    λ(x) = start + (end − start) · min(x / (epochs − 1), 1). ``Linear(3, -3, epochs=5)`` is the paper's default
    (Lee & Kim 2020, §4.1): 3, 1.5, 0, −1.5, −3, −3, … per epoch.
    """

    kind: ClassVar[str] = "linear"

    def at(self, x: float) -> float:
        t = _ramp_fraction(x, self.epochs)
        return self.end if t >= 1.0 else self.start + (self.end - self.start) * t

    def _describe(self) -> str:
        ramp = f"{_fmt(self.start)} → {_fmt(self.end)}"
        return ramp if self.epochs == DEFAULT_RAMP_EPOCHS else f"{ramp} @ {self.epochs}"


@dataclass(frozen=True)
class Cosine(_Ramp):
    """Half-cosine ramp with the same end points as :class:`Linear`.

    λ(x) = end + (start − end) · (1 + cos(π t)) / 2, t = min(x / (epochs − 1), 1).
    """

    kind: ClassVar[str] = "cosine"

    def at(self, x: float) -> float:
        t = _ramp_fraction(x, self.epochs)
        if t <= 0.0:
            return self.start
        if t >= 1.0:
            return self.end
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * t))

    def _describe(self) -> str:
        return f"cosine({_fmt(self.start)} → {_fmt(self.end)} @ {self.epochs})"


@dataclass(frozen=True)
class Step(Schedule):
    """Piecewise-constant: λ = values[j] where j = number of milestones ≤ x.

    ``Step(values=(3, 0, -3), milestones=(2, 4))``: 3 for epochs 0–1, 0 for epochs 2–3, −3 from epoch 4 on.
    """

    kind: ClassVar[str] = "step"
    values: tuple[float, ...]
    milestones: tuple[float, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Sequence) or not self.values:
            raise ScheduleError(f"step schedule: values must be a non-empty list of numbers, got {self.values!r}")
        if isinstance(self.milestones, (str, bytes)) or not isinstance(self.milestones, Sequence):
            raise ScheduleError(f"step schedule: milestones must be a list of numbers, got {self.milestones!r}")
        values = tuple(_number(v, f"step schedule: values[{i}]") for i, v in enumerate(self.values))
        ms = tuple(_number(m, f"step schedule: milestones[{i}]") for i, m in enumerate(self.milestones))
        if len(values) != len(ms) + 1:
            raise ScheduleError(
                f"step schedule: len(values) == len(milestones) + 1 must hold, but got {len(values)} values and "
                f"{len(ms)} milestones"
            )
        if any(m <= 0 for m in ms) or any(b <= a for a, b in itertools.pairwise(ms)):
            raise ScheduleError(f"step schedule: milestones must be > 0 and strictly increasing, got {list(ms)}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "milestones", ms)

    def at(self, x: float) -> float:
        return self.values[bisect.bisect_right(self.milestones, x)]

    def _describe(self) -> str:
        parts = [_fmt(self.values[0])]
        parts += [f"{_fmt(v)} @ {_fmt(m)}" for v, m in zip(self.values[1:], self.milestones, strict=True)]
        return f"step({', '.join(parts)})"


@dataclass(frozen=True)
class Piecewise(Schedule):
    """Piecewise-linear through ``points`` (epoch position, λ); constant before the first and after the last.

    ``Piecewise(points=((0, 3), (2, 0), (5, -3)))``: 3, 1.5, 0, −1, −2, −3, −3, … per epoch.
    """

    kind: ClassVar[str] = "piecewise"
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        pts = self.points
        if isinstance(pts, (str, bytes)) or not isinstance(pts, Sequence) or not pts:
            raise ScheduleError(f"piecewise schedule: points must be a non-empty list of [epoch, λ] pairs, got {pts!r}")
        out: list[tuple[float, float]] = []
        for i, p in enumerate(pts):
            if isinstance(p, (str, bytes)) or not isinstance(p, Sequence) or len(p) != 2:
                raise ScheduleError(f"piecewise schedule: points[{i}] must be an [epoch, λ] pair, got {p!r}")
            x = _number(p[0], f"piecewise schedule: points[{i}][0]")
            out.append((x, _number(p[1], f"piecewise schedule: points[{i}][1]")))
        xs = [p[0] for p in out]
        if any(x < 0 for x in xs) or any(b <= a for a, b in itertools.pairwise(xs)):
            raise ScheduleError(f"piecewise schedule: point epochs must be >= 0 and strictly increasing, got {xs}")
        object.__setattr__(self, "points", tuple(out))

    def at(self, x: float) -> float:
        pts = self.points
        if x <= pts[0][0]:
            return pts[0][1]
        if x >= pts[-1][0]:
            return pts[-1][1]
        j = bisect.bisect_right([p[0] for p in pts], x)
        (x0, y0), (x1, y1) = pts[j - 1], pts[j]
        return y0 if x == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)

    def _describe(self) -> str:
        return "piecewise(" + ", ".join(f"{_fmt(x)}: {_fmt(y)}" for x, y in self.points) + ")"


#: Table kinds → schedule classes.
SCHEDULES: dict[str, type[Schedule]] = {c.kind: c for c in (Constant, Linear, Cosine, Step, Piecewise)}

#: The paper's default: λ from 3 at epoch 0 to −3 at epoch 4 (Lee & Kim 2020, §4.1).
PAPER_SCHEDULE = Linear(3.0, -3.0, epochs=DEFAULT_RAMP_EPOCHS)

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_RAMP = re.compile(rf"^(?P<start>{_NUM})\s*->\s*(?P<end>{_NUM})(?:\s*@\s*(?P<epochs>\d+))?$")


def _error(message: str) -> ScheduleError:
    return ScheduleError(f"{message}\n{ACCEPTED_FORMS}")


def _parse_text(text: str) -> Schedule:
    norm = text.strip().replace("\u2212", "-").replace("→", "->")  # the paper writes "3 → −3"
    if _NUM_FULL.match(norm):
        value = float(norm)
        return Constant(value)
    m = _RAMP.match(norm)
    if m is None:
        raise _error(f"cannot read the λ schedule {text!r}")
    epochs = int(m["epochs"]) if m["epochs"] is not None else DEFAULT_RAMP_EPOCHS
    if epochs < 2:
        raise _error(f"λ schedule {text!r}: the ramp needs '@ epochs' >= 2 (start at epoch 0, end at epochs-1)")
    return Linear(float(m["start"]), float(m["end"]), epochs=epochs)


_NUM_FULL = re.compile(rf"^{_NUM}$")


def _parse_table(table: Mapping[Any, Any]) -> Schedule:
    if "kind" not in table:
        raise _error(f"a λ-schedule table needs a 'kind' key (one of {', '.join(SCHEDULES)}), got {dict(table)!r}")
    kind = table["kind"]
    cls = SCHEDULES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        near = difflib.get_close_matches(str(kind), SCHEDULES, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise _error(f"unknown λ-schedule kind {kind!r}{hint} (valid kinds: {', '.join(SCHEDULES)})")
    if "periods_per_epoch" in table:
        table = _without_grid(table)
    params = _ordered_fields(cls)
    valid = ["kind", *(f.name for f in params)]
    unknown = [k for k in table if k not in valid]
    if unknown:
        raise _error(f"unknown key(s) {unknown} in a {kind!r} λ-schedule table; valid keys: {', '.join(valid)}")
    required = [f.name for f in params if f.default is MISSING and f.default_factory is MISSING]
    missing = [k for k in required if k not in table]
    if missing:
        raise _error(f"a {kind!r} λ-schedule table needs key(s) {missing}; valid keys: {', '.join(valid)}")
    kwargs = {k: v for k, v in table.items() if k != "kind"}
    if cls is Step:
        kwargs = {**kwargs, **{k: _as_tuple(kwargs[k], f"step schedule: {k}") for k in ("values", "milestones")}}
    if cls is Piecewise:
        pts = _as_tuple(kwargs["points"], "piecewise schedule: points")
        kwargs["points"] = tuple(_as_tuple(p, f"piecewise schedule: points[{i}]") for i, p in enumerate(pts))
    try:
        return cls(**kwargs)
    except ScheduleError as exc:
        raise _error(str(exc)) from None


def _without_grid(table: Mapping[Any, Any]) -> dict[Any, Any]:
    """``table`` without the ``periods_per_epoch`` key that schedules stored up to version 0.2.0 carried.

    The grid is the run's (``RunConfig.periods_per_epoch``). A per-epoch schedule never used the key, so it is
    dropped; on a per-period schedule it would name a second grid beside the run's, so it is refused.
    """
    if table.get("per_period") is True:
        raise _error(
            f"a per-period λ schedule takes its period grid from the run: remove periods_per_epoch = "
            f"{table['periods_per_epoch']!r} from the schedule and set the run's periods_per_epoch instead"
        )
    return {k: v for k, v in table.items() if k != "periods_per_epoch"}


def _as_tuple(value: object, what: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _error(f"{what} must be a list, got {value!r}")
    return tuple(value)


def parse_schedule(value: object) -> Schedule:
    """Read a λ schedule from a spec value (see :data:`ACCEPTED_FORMS`); a :class:`Schedule` passes through.

    ``parse_schedule("3 -> -3") == Linear(3, -3, epochs=5)``; ``parse_schedule(0) == Constant(0)``. Anything else
    raises :class:`ScheduleError` that shows the accepted forms (unknown table keys are listed with the valid ones).
    """
    if isinstance(value, Schedule):
        return value
    if isinstance(value, bool):
        raise _error(f"a λ schedule cannot be a boolean, got {value!r}")
    if isinstance(value, (int, float)):
        try:
            return Constant(value)
        except ScheduleError as exc:
            raise _error(str(exc)) from None
    if isinstance(value, str):
        return _parse_text(value)
    if isinstance(value, Mapping):
        return _parse_table(value)
    raise _error(f"cannot read a λ schedule from {type(value).__name__} {value!r}")
