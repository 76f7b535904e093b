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


#: Run settings a method may take from the run rather than from its options (``RunConfig.periods_per_epoch``: the
#: period grid of a per-period λ schedule). They are never options: one value per run, set on the run.
RUN_SETTINGS: tuple[str, ...] = ("periods_per_epoch",)


def _parameters(cls: type[WeightingMethod]) -> list[inspect.Parameter]:
    return list(inspect.signature(cls.__init__).parameters.values())[2:]  # drop self, names


def weighting_options(name: str) -> dict[str, Any]:
    """The options ``make_weighting(name, ...)`` accepts, with their defaults (``inspect.Parameter.empty`` when
    required); the run settings of :data:`RUN_SETTINGS` are not options."""
    cls = WEIGHTINGS[_canonical_name(name)]
    out = {p.name: p.default for p in _parameters(cls) if p.name not in RUN_SETTINGS}
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


def make_weighting(
    name: str, names: Sequence[str], *, periods_per_epoch: int | None = None, **options: Any
) -> WeightingMethod:
    """Build the weighting method ``name`` (see :data:`WEIGHTINGS`) for the losses ``names``.

    Names are matched case-insensitively with ``_`` read as ``-`` (``"lee_kim"`` → ``"lee-kim"``). Unknown names and
    unknown options raise :class:`WeightingError` listing the valid ones; ``lee-kim`` defaults to the paper's
    schedule ``"3 -> -3"``. ``periods_per_epoch`` is the run's period grid, passed to the methods that use it (a
    per-period λ schedule of ``lee-kim``).
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
    cls = WEIGHTINGS[key]
    if periods_per_epoch is not None and any(p.name == "periods_per_epoch" for p in _parameters(cls)):
        kwargs["periods_per_epoch"] = periods_per_epoch
    return cls(names, **kwargs)
