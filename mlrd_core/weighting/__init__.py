"""Loss-weighting methods (docs/weighting.md): Lee & Kim's initialization + rebalancing, λ schedules, and baselines.

Public API: :class:`WeightingMethod` (the interface the trainer calls), :class:`LeeKimWeighting`, the baselines
(:class:`EqualWeighting`, :class:`FixedWeighting`, :class:`UncertaintyWeighting`, :class:`DWA`, :class:`RLW`,
:class:`FAMO`), :func:`make_weighting` / :data:`WEIGHTINGS`, the schedules (:class:`Constant`, :class:`Linear`,
:class:`Cosine`, :class:`Step`, :class:`Piecewise`) and :func:`parse_schedule`. See docs/weighting.md.
"""

from __future__ import annotations

from mlrd_core.weighting.base import LossRecord, PeriodRecord, WeightingMethod, validate_loss_names
from mlrd_core.weighting.baselines import DWA, FAMO, RLW, EqualWeighting, FixedWeighting, UncertaintyWeighting
from mlrd_core.weighting.factory import WEIGHTINGS, make_weighting, weighting_options
from mlrd_core.weighting.lee_kim import AUTHORS_CLIP, LeeKimWeighting
from mlrd_core.weighting.schedules import (
    ACCEPTED_FORMS,
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

__all__ = [
    "ACCEPTED_FORMS",
    "AUTHORS_CLIP",
    "DWA",
    "FAMO",
    "PAPER_SCHEDULE",
    "RLW",
    "SCHEDULES",
    "WEIGHTINGS",
    "Constant",
    "Cosine",
    "EqualWeighting",
    "FixedWeighting",
    "LeeKimWeighting",
    "Linear",
    "LossRecord",
    "PeriodRecord",
    "Piecewise",
    "Schedule",
    "Step",
    "UncertaintyWeighting",
    "WeightingMethod",
    "make_weighting",
    "parse_schedule",
    "validate_loss_names",
    "weighting_options",
]
