"""One factory for every weighting method by its spec name: ``make_weighting("lee-kim", names, options)``, the
options a method's typed record (:mod:`mlrd_core.weighting.options`), a spec mapping or keywords."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import MISSING
from typing import Any

from mlrd_core.errors import WeightingError
from mlrd_core.weighting.base import WeightingMethod
from mlrd_core.weighting.baselines import DWA, FAMO, RLW, EqualWeighting, FixedWeighting, UncertaintyWeighting
from mlrd_core.weighting.lee_kim import LeeKimWeighting
from mlrd_core.weighting.options import WeightingOptions

__all__ = [
    "RUN_SETTINGS",
    "WEIGHTINGS",
    "canonical_name",
    "make_weighting",
    "options_class",
    "weighting_options",
    "weighting_options_for",
]

#: Spec name → class. The spec names are the API (specs, results, tables).
WEIGHTINGS: dict[str, type[WeightingMethod]] = {
    cls.name: cls for cls in (EqualWeighting, FixedWeighting, LeeKimWeighting, UncertaintyWeighting, DWA, RLW, FAMO)
}

#: Run settings a method may take from the run rather than from its options (``RunConfig.periods_per_epoch``: the
#: period grid of a per-period λ schedule). They are never options: one value per run, set on the run.
RUN_SETTINGS: tuple[str, ...] = ("periods_per_epoch",)


def options_class(name: str) -> type[WeightingOptions]:
    """The options record of the method ``name`` (matched as :func:`make_weighting` does)."""
    return WEIGHTINGS[canonical_name(name)].Options


def weighting_options(name: str) -> dict[str, Any]:
    """The options ``make_weighting(name, ...)`` accepts, with their typed defaults (``inspect.Parameter.empty``
    when required); the run settings of :data:`RUN_SETTINGS` are not options."""
    return {
        k: inspect.Parameter.empty if v is MISSING else v for k, v in options_class(name).keys_with_defaults().items()
    }


def canonical_name(name: object) -> str:
    """The spec name of a weighting method: case-insensitive, ``_`` read as ``-``; unknown names raise
    :class:`WeightingError` with the valid ones and a suggestion."""
    if not isinstance(name, str):
        raise WeightingError(f"weighting method name must be a string, got {name!r}; valid: {', '.join(WEIGHTINGS)}")
    key = name.strip().lower().replace("_", "-")
    if key not in WEIGHTINGS:
        near = difflib.get_close_matches(key, WEIGHTINGS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise WeightingError(f"unknown weighting method {name!r}{hint} (valid: {', '.join(WEIGHTINGS)})")
    return key


def weighting_options_for(name: str, options: Mapping[str, Any] | None = None) -> WeightingOptions:
    """The typed options record of method ``name``: ``options`` as a record of that method passes through (no
    value is parsed again); a mapping (a spec table, or the spec form of a record) is read by ``from_spec``;
    ``None`` gives the defaults. Raises :class:`~mlrd_core.errors.WeightingOptionError` naming the bad key."""
    cls = options_class(name)
    if isinstance(options, WeightingOptions):
        if type(options) is not cls:
            raise WeightingError(
                f"weighting {cls.method!r} takes {cls.__name__}, got the options of {options.method!r} "
                f"({type(options).__name__})"
            )
        return options
    return cls.from_spec(options)


def make_weighting(
    name: str,
    names: Sequence[str],
    options: Mapping[str, Any] | None = None,
    *,
    periods_per_epoch: int | None = None,
    **kwargs: Any,
) -> WeightingMethod:
    """Build the weighting method ``name`` (see :data:`WEIGHTINGS`) for the losses ``names``.

    The options come as the method's typed record (``RunConfig.weighting_options``; nothing is parsed again), as a
    mapping, or as keyword arguments (``make_weighting("lee-kim", names, schedule="0")``), not both. Names are
    matched case-insensitively with ``_`` read as ``-`` (``"lee_kim"`` → ``"lee-kim"``). Unknown, missing and bad
    options raise :class:`~mlrd_core.errors.WeightingOptionError` naming the key and listing the valid ones;
    ``lee-kim`` defaults to the paper's schedule ``"3 -> -3"``. ``periods_per_epoch`` is the run's period grid,
    passed to the methods that use it (a per-period λ schedule of ``lee-kim``).
    """
    if options is not None and kwargs:
        raise WeightingError("make_weighting: give the options as one record or mapping, or as keywords, not both")
    record = weighting_options_for(name, options if options is not None else kwargs)
    cls = WEIGHTINGS[record.method]
    extra: dict[str, Any] = {}
    if periods_per_epoch is not None and "periods_per_epoch" in inspect.signature(cls.__init__).parameters:
        extra["periods_per_epoch"] = periods_per_epoch
    return cls(names, **record.kwargs(), **extra)
