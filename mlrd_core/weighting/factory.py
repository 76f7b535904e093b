"""One factory for every weighting method by its spec name: ``make_weighting("lee-kim", names, **options)``."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Sequence
from typing import Any

from mlrd_core.errors import WeightingError
from mlrd_core.weighting.base import WeightingMethod
from mlrd_core.weighting.baselines import DWA, FAMO, RLW, EqualWeighting, FixedWeighting, UncertaintyWeighting
from mlrd_core.weighting.lee_kim import LeeKimWeighting
from mlrd_core.weighting.schedules import PAPER_SCHEDULE

__all__ = ["WEIGHTINGS", "make_weighting", "weighting_options"]

#: Spec name → class. The spec names are the API (specs, results, tables).
WEIGHTINGS: dict[str, type[WeightingMethod]] = {
    cls.name: cls for cls in (EqualWeighting, FixedWeighting, LeeKimWeighting, UncertaintyWeighting, DWA, RLW, FAMO)
}

#: Defaults the factory adds where the class has none (the paper's λ: 3 → −3 over 5 epochs).
_FACTORY_DEFAULTS: dict[str, dict[str, Any]] = {"lee-kim": {"schedule": PAPER_SCHEDULE}}


def weighting_options(name: str) -> dict[str, Any]:
    """The options ``make_weighting(name, ...)`` accepts, with their defaults (``inspect.Parameter.empty`` when
    required)."""
    cls = WEIGHTINGS[_canonical_name(name)]
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # drop self, names
    out = {p.name: p.default for p in params}
    out.update(_FACTORY_DEFAULTS.get(cls.name, {}))
    return out


def _canonical_name(name: object) -> str:
    if not isinstance(name, str):
        raise WeightingError(f"weighting method name must be a string, got {name!r}; valid: {', '.join(WEIGHTINGS)}")
    key = name.strip().lower().replace("_", "-")
    if key not in WEIGHTINGS:
        near = difflib.get_close_matches(key, WEIGHTINGS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise WeightingError(f"unknown weighting method {name!r}{hint} (valid: {', '.join(WEIGHTINGS)})")
    return key


def make_weighting(name: str, names: Sequence[str], **options: Any) -> WeightingMethod:
    """Build the weighting method ``name`` (see :data:`WEIGHTINGS`) for the losses ``names``.

    Names are matched case-insensitively with ``_`` read as ``-`` (``"lee_kim"`` → ``"lee-kim"``). Unknown names and
    unknown options raise :class:`WeightingError` listing the valid ones; ``lee-kim`` defaults to the paper's
    schedule ``"3 -> -3"``.
    """
    key = _canonical_name(name)
    valid = weighting_options(key)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        shown = ", ".join(valid) if valid else "(none)"
        raise WeightingError(f"unknown option(s) {unknown} for weighting {key!r}; valid options: {shown}")
    kwargs = {**_FACTORY_DEFAULTS.get(key, {}), **options}
    missing = [k for k, v in valid.items() if v is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise WeightingError(f"weighting {key!r} needs option(s) {missing}; valid options: {', '.join(valid)}")
    return WEIGHTINGS[key](names, **kwargs)
