"""One exception hierarchy for the whole project.

Every error the project raises on bad input derives from :class:`MLRDError`, and also from the matching builtin
(``ValueError``, ``FileNotFoundError``, ...) so callers can catch either. Messages follow one rule: say what was
expected, what came, and where to look.
"""

from __future__ import annotations


class MLRDError(Exception):
    """Base class of every error raised by mlrd_core and suite."""


class ShapeError(MLRDError, ValueError):
    """A tensor has the wrong rank, shape, dtype or device."""


class ExpressionError(MLRDError, ValueError):
    """A loss-set expression does not parse or selects nothing."""


class WeightingError(MLRDError, ValueError):
    """A weighting method got invalid input or reached an invalid state."""


class ScheduleError(MLRDError, ValueError):
    """A lambda schedule is written in a form that is not accepted."""


class DataError(MLRDError, ValueError):
    """A dataset file is missing, truncated or has an unexpected layout."""


class ModelError(MLRDError, ValueError):
    """A model cannot be built (unknown encoder, unusable weights, bad input size)."""


class ConfigError(MLRDError, ValueError):
    """A run config or spec is invalid."""


class NonFiniteLossError(MLRDError, FloatingPointError):
    """Training produced a NaN or infinite loss."""


class WeightingOptionError(WeightingError, ConfigError):
    """A weighting option is unknown, missing or invalid; :attr:`key` names the option."""

    def __init__(self, message: str, *, key: str = "") -> None:
        super().__init__(message)
        self.key = key
