"""Loss-weighting methods (docs/weighting.md): Lee & Kim's initialization + rebalancing, λ schedules, and baselines.

Public API: :class:`WeightingMethod` (the interface the trainer calls), :class:`LeeKimWeighting`, the baselines
(:class:`EqualWeighting`, :class:`FixedWeighting`, :class:`UncertaintyWeighting`, :class:`DWA`, :class:`RLW`,
:class:`FAMO`), :func:`make_weighting` / :data:`WEIGHTINGS`, the typed options records (:class:`WeightingOptions`,
one per method: :class:`LeeKimOptions`, ...), the schedules (:class:`Constant`, :class:`Linear`, :class:`Cosine`,
:class:`Step`, :class:`Piecewise`) and :func:`parse_schedule`. See docs/weighting.md.
"""

from __future__ import annotations

from mlrd_core.weighting.base import LossRecord, PeriodRecord, WeightingMethod, validate_loss_names
from mlrd_core.weighting.baselines import (
    DWA,
    FAMO,
    RLW,
    DWAOptions,
    EqualOptions,
    EqualWeighting,
    FAMOOptions,
    FixedOptions,
    FixedWeighting,
    RLWOptions,
    UncertaintyOptions,
    UncertaintyWeighting,
)
from mlrd_core.weighting.factory import (
    WEIGHTINGS,
    canonical_name,
    make_weighting,
    options_class,
    weighting_options,
    weighting_options_for,
)
from mlrd_core.weighting.lee_kim import AUTHORS_CLIP, LeeKimOptions, LeeKimWeighting
from mlrd_core.weighting.options import WeightingOptions
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
    "DWAOptions",
    "EqualOptions",
    "EqualWeighting",
    "FAMOOptions",
    "FixedOptions",
    "FixedWeighting",
    "LeeKimOptions",
    "LeeKimWeighting",
    "Linear",
    "LossRecord",
    "PeriodRecord",
    "Piecewise",
    "RLWOptions",
    "Schedule",
    "Step",
    "UncertaintyOptions",
    "UncertaintyWeighting",
    "WeightingMethod",
    "WeightingOptions",
    "canonical_name",
    "make_weighting",
    "options_class",
    "parse_schedule",
    "validate_loss_names",
    "weighting_options",
    "weighting_options_for",
]
