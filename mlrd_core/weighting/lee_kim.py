"""The multi-loss rebalancing algorithm of Lee & Kim, "Multi-Loss Rebalancing Algorithm for Monocular Depth
Estimation", ECCV 2020, §3.2, eq. (9)–(12), as released in the authors' code (``train.py``).

Notation: K = |L| losses; a period is a run of training images (the trainer decides, by default a quarter epoch);
ℓ̄_i^(t) is the mean per-image value of loss i over period t (the paper's L_i^(t) is the sum; every formula below
is a ratio, so means and sums give the same weights); w^(t-1) are the weights in effect during period t.

- init, eq. (9) with the authors' 1/|L|: after the first period, trained with w_i = 1/K,
  ``w_i = ℓ̄_all / (K ℓ̄_i)``, ℓ̄_all = Σ_j ℓ̄_j / K. Every weighted loss then contributes ℓ̄_all / K and the
  weighted total Σ_i w_i ℓ̄_i = ℓ̄_all is preserved.
- rebalance, eq. (11): ``w_i^(t) = w_i^(t-1) (1 − λ ΔP_i / P_i)``, ΔP_i = P_i^(t) − P_i^(t-1), with the shares
  taken **under the same weights** w^(t-1):
  P_i^(t) = w_i^(t-1) ℓ̄_i^(t) / L_all^(t),  L_all^(t) = Σ_j w_j^(t-1) ℓ̄_j^(t) (eq. 10), and
  P_i^(t-1) = w_i^(t-1) ℓ̄_i^(t-1) / L'_all,  L'_all = Σ_j w_j^(t-1) ℓ̄_j^(t-1),
  i.e. the previous period's total is recomputed with the current weights (the authors store
  ``previous_total_loss = Σ mean·w_new`` after every update). The weights cancel in ΔP_i / P_i, so the same update
  holds for the paper's unweighted shares ℓ̄_i / L_all, and the multiplier is
  ``m_i = 1 + λ ((L_all^(t) / L'_all) (ℓ̄_i^(t-1) / ℓ̄_i^(t)) − 1)``.
  Unclipped, Σ_i w_i^(t) ℓ̄_i^(t) = L_all^(t) exactly (the paper's last property), λ = 0 keeps the weights, and
  λ = 1 gives w_i^(t) P_i^(t) = w_i^(t-1) P_i^(t-1) (eq. 12).
- the authors clip every multiplier to [0.5, 2] (``clip=(0.5, 2.0)``, the default); ``clip="none"`` is the pure
  equation, and a multiplier ≤ 0 (a weight that would become ≤ 0) then raises :class:`WeightingError` (no floor).

``init`` and ``rebalance`` are independent (Table 5(d)): with ``init`` off the first period end only records the
reference means (weights stay 1/K) and rebalancing starts at the second period end, as in the authors' code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from mlrd_core.errors import WeightingError
from mlrd_core.weighting.base import WeightingMethod
from mlrd_core.weighting.options import WeightingOptions, boolean, option
from mlrd_core.weighting.schedules import PAPER_SCHEDULE, Schedule, parse_schedule

__all__ = ["AUTHORS_CLIP", "LeeKimOptions", "LeeKimWeighting"]

#: The authors' clip of the rebalancing multiplier: ``min(max(adjust_term, 1/2), 2)``.
AUTHORS_CLIP: tuple[float, float] = (0.5, 2.0)

ScheduleLike = Schedule | Callable[[int, int], float] | str | float | int | Mapping[str, Any]


def _parse_clip(clip: object) -> tuple[float, float] | None:
    if clip is None or (isinstance(clip, str) and clip.strip().lower() == "none"):
        return None
    if isinstance(clip, (str, bytes)) or not isinstance(clip, Sequence) or len(clip) != 2:
        raise WeightingError(f"lee-kim: clip must be a pair (low, high) or 'none', got {clip!r}")
    lo, hi = clip
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (lo, hi)):
        raise WeightingError(f"lee-kim: clip must be a pair of numbers (low, high), got {clip!r}")
    lo, hi = float(lo), float(hi)
    if not (0.0 < lo <= 1.0 <= hi < math.inf):
        raise WeightingError(
            f"lee-kim: 0 < low <= 1 <= high < inf must hold for clip, but got (low={lo}, high={hi}); the authors "
            "use (0.5, 2.0)"
        )
    return lo, hi


def _clip_option(value: object) -> tuple[float, float] | None:
    if not (value is None or (isinstance(value, str) and value.strip().lower() == "none")) and not (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise TypeError('a pair [low, high] of numbers or "none"')
    return _parse_clip(value)


def _clip_spec(clip: tuple[float, float] | None) -> str | list[float]:
    return "none" if clip is None else [clip[0], clip[1]]


@dataclass(frozen=True, eq=False)
class LeeKimOptions(WeightingOptions):
    """The options of :class:`LeeKimWeighting`: the λ ``schedule`` (parsed once; default the paper's 3 → −3 over
    5 epochs), the ``init`` and ``rebalance`` flags and the multiplier ``clip`` (``None`` is ``"none"``). Spec form:
    ``{"schedule": <table>, "init": true, "rebalance": true, "clip": [0.5, 2.0] | "none"}``."""

    method: ClassVar[str] = "lee-kim"

    schedule: Schedule = option(PAPER_SCHEDULE, parse=parse_schedule)  # noqa: RUF009 (option() is a dataclass field)
    init: bool = option(True, parse=boolean("init"))
    rebalance: bool = option(True, parse=boolean("rebalance"))
    clip: tuple[float, float] | None = option(AUTHORS_CLIP, parse=_clip_option, spec=_clip_spec)


class LeeKimWeighting(WeightingMethod):
    """Lee & Kim (ECCV 2020) weight initialization (eq. 9) and rebalancing (eq. 11); see the module docstring.

    Args:
        names: the selected loss names (canonical, distinct); the weights follow this order.
        schedule: λ as any callable ``lam(epoch, period) -> float`` (0-based), or a spec value for
            :func:`parse_schedule` (``"3 -> -3"``, ``0``, a table).
        init: apply eq. (9) at the end of the first period.
        rebalance: apply eq. (11) at every later period end.
        clip: ``(low, high)`` bounds of the multiplier (authors: ``(0.5, 2.0)``) or ``"none"`` for the pure
            equation.
        periods_per_epoch: the run's period grid (``RunConfig.periods_per_epoch``; the trainer passes it through
            :func:`~mlrd_core.weighting.make_weighting`). A per-period :class:`Schedule` is evaluated at
            ``epoch + period / periods_per_epoch``; it is a run setting, not a weighting option.
    """

    name = "lee-kim"
    Options = LeeKimOptions

    def __init__(
        self,
        names: Sequence[str],
        schedule: ScheduleLike,
        *,
        init: bool = True,
        rebalance: bool = True,
        clip: tuple[float, float] | Sequence[float] | str | None = AUTHORS_CLIP,
        periods_per_epoch: int | None = None,
    ) -> None:
        super().__init__(names)
        if callable(schedule) and not isinstance(schedule, (str, Mapping)):
            self.schedule: Callable[[int, int], float] = schedule
        else:
            self.schedule = parse_schedule(schedule)
        for flag, value in (("init", init), ("rebalance", rebalance)):
            if not isinstance(value, bool):
                raise WeightingError(f"lee-kim: {flag} must be True or False, got {value!r}")
        self.init = init
        self.rebalance = rebalance
        self.clip = _parse_clip(clip)
        if periods_per_epoch is not None and (
            isinstance(periods_per_epoch, bool) or not isinstance(periods_per_epoch, int) or periods_per_epoch < 1
        ):
            raise WeightingError(f"lee-kim: periods_per_epoch must be an int >= 1, got {periods_per_epoch!r}")
        self.periods_per_epoch = periods_per_epoch
        k = self.num_losses
        self._w = torch.full((k,), 1.0 / k, dtype=torch.float64)
        self._initialized = False
        self._reference: Tensor | None = None  # ℓ̄^(t-1): the means of the previous period

    @property
    def weights(self) -> Tensor:
        """Current weights w (float64, order of :attr:`names`); 1/K until the first update."""
        return self._w.clone()

    def _lam(self, epoch: int, period: int) -> float:
        if isinstance(self.schedule, Schedule):
            value: float = self.schedule(epoch, period, self.periods_per_epoch)
        else:
            value = self.schedule(epoch, period)
        try:
            lam = float(value)
        except (TypeError, ValueError):
            raise WeightingError(
                f"lee-kim: the λ schedule must return a number, got {value!r} at (epoch={epoch}, period={period})"
            ) from None
        if not math.isfinite(lam):
            raise WeightingError(f"lee-kim: the λ schedule gave {lam} at (epoch={epoch}, period={period})")
        return lam

    def _check_positive(self, means: Tensor, epoch: int, period: int, step: str) -> None:
        bad = (means <= 0).nonzero()
        if bad.numel():
            i = int(bad[0, 0])
            raise WeightingError(
                f"lee-kim {step}: loss {self.names[i]!r} has mean {float(means[i])!r} over the period "
                f"(epoch={epoch}, period={period}); Lee-Kim weights divide by the period mean, which must be > 0. "
                "A loss that is identically zero (e.g. a gradient or normal loss at a 1x1 scale) should be removed "
                "from the selection"
            )

    def _update(self, epoch: int, period: int, means: Tensor) -> tuple[str, float | None]:
        lam = self._lam(epoch, period)
        k = self.num_losses
        if self.init and not self._initialized:
            self._check_positive(means, epoch, period, "init (eq. 9)")
            # eq. (9) with the authors' 1/|L|: w_i = L_all / (K ℓ̄_i), L_all = Σ w ℓ̄ = Σ ℓ̄ / K under w = 1/K
            equal_total = float((self._w * means).sum())
            self._w = equal_total / (k * means)
            self._initialized = True
            self._reference = means.clone()
            return "init", lam
        if not self.rebalance:
            return "none", lam
        if self._reference is None:  # init off: the first period end only records the reference
            self._reference = means.clone()
            return "reference", lam
        self._check_positive(means, epoch, period, "rebalance (eq. 11)")
        prev = self._reference
        total = (self._w * means).sum()  # L_all^(t), eq. (10)
        prev_total = (self._w * prev).sum()  # L'_all: the previous period under the same (current) weights
        # 1 − λ ΔP_i/P_i = 1 + λ ((L_all / L'_all)(ℓ̄_i^(t-1) / ℓ̄_i^(t)) − 1)
        mult = 1.0 + lam * ((total / prev_total) * (prev / means) - 1.0)
        if self.clip is None:
            bad = (mult <= 0).nonzero()
            if bad.numel():
                i = int(bad[0, 0])
                ratio = float(1.0 - prev[i] / means[i] * total / prev_total)  # ΔP_i / P_i
                raise WeightingError(
                    f"lee-kim rebalance (eq. 11) with clip='none': the weight of {self.names[i]!r} would become "
                    f"{float(self._w[i] * mult[i])!r} <= 0 (multiplier 1 - λ·ΔP/P = 1 - {lam}·{ratio:.6g} = "
                    f"{float(mult[i]):.6g}) at (epoch={epoch}, period={period}); use a smaller |λ| or the authors' "
                    f"clip=(0.5, 2.0)"
                )
        else:
            mult = mult.clamp(self.clip[0], self.clip[1])
        self._w = self._w * mult
        self._reference = means.clone()
        return "rebalance", lam

    def _config(self) -> dict[str, Any]:
        return {
            "init": self.init,
            "rebalance": self.rebalance,
            "clip": "none" if self.clip is None else list(self.clip),
        }

    def _extra_state(self) -> dict[str, Any]:
        return {
            "weights": self._w.clone(),
            "initialized": self._initialized,
            "reference": None if self._reference is None else self._reference.clone(),
        }

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self._w = extra["weights"].to(torch.float64).cpu().clone()
        self._initialized = bool(extra["initialized"])
        ref = extra["reference"]
        self._reference = None if ref is None else ref.to(torch.float64).cpu().clone()

    def __repr__(self) -> str:
        sched = getattr(self.schedule, "describe", None)
        text = sched() if callable(sched) else repr(self.schedule)
        return f"{super().__repr__()[:-1]}, schedule={text!r})"
