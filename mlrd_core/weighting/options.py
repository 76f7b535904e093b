"""Typed weighting options: one frozen record per method, with its spec form.

Every :class:`~mlrd_core.weighting.base.WeightingMethod` declares an ``Options`` record (a subclass of
:class:`WeightingOptions`). The record is the single place where a method's options are checked and made canonical:

- ``Options.from_spec(mapping)`` reads a spec table (``{"schedule": "3 -> -3", "clip": [0.5, 2]}``): unknown and
  missing keys and bad values raise :class:`~mlrd_core.errors.WeightingOptionError` naming the key; values are
  parsed once (a λ schedule becomes a :class:`~mlrd_core.weighting.schedules.Schedule`) and kept typed;
- ``record.to_spec()`` is the canonical mapping (plain JSON data) that a run id hashes: equal records give equal
  mappings, and ``from_spec(to_spec())`` gives the record back;
- ``record.kwargs()`` are the typed constructor arguments of the method (no value is parsed again).

A record also reads as a mapping (``options["clip"]``, ``options.get("schedule")``, ``options == {...}``): the
read-only view of :meth:`WeightingOptions.to_spec`, so code that reads a config's options as plain data keeps
working. ``mlrd_core.config.RunConfig`` holds such a record in ``weighting_options``, whatever it was built from.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Self

from mlrd_core.errors import MLRDError, WeightingError, WeightingOptionError

__all__ = ["WeightingOptions", "boolean", "choice", "option", "plain", "real", "whole"]


def plain(value: Any) -> Any:
    """``value`` as plain JSON data: objects with ``to_spec()`` (schedules) as their table, tuples as lists."""
    to_spec = getattr(value, "to_spec", None)
    if callable(to_spec):
        return to_spec()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise WeightingError(f"value {value!r} of type {type(value).__name__} is not plain data (a spec value)")


def boolean(name: str) -> Callable[[Any], bool]:
    """Parser of a true/false option."""

    def parse(value: Any) -> bool:
        if not isinstance(value, bool):
            raise TypeError("true or false")
        return value

    return parse


def real(name: str, *, minimum: float | None = None, strict: bool = False) -> Callable[[Any], float]:
    """Parser of a finite number (an int reads as a float, so ``2`` and ``2.0`` are one option value), at least
    ``minimum`` (above it with ``strict``)."""

    bound = "" if minimum is None else f" and {'>' if strict else '>='} {minimum:g}"

    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("a finite number")
        x = float(value)
        if not math.isfinite(x) or (minimum is not None and (x < minimum or (strict and x == minimum))):
            raise WeightingError(f"{name} must be finite{bound}, got {value!r}")
        return x

    return parse


def whole(name: str, *, minimum: int) -> Callable[[Any], int]:
    """Parser of an integer option of at least ``minimum``."""

    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise TypeError(f"an integer >= {minimum}")
        return int(value)

    return parse


def choice(name: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    """Parser of an option that is one of ``choices``."""

    def parse(value: Any) -> str:
        if value not in choices:
            raise WeightingError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return str(value)

    return parse


def option(
    default: Any = MISSING,
    *,
    parse: Callable[[Any], Any] | None = None,
    spec: Callable[[Any], Any] | None = None,
) -> Any:
    """A field of an options record: ``parse`` reads a spec value (or passes a typed one through) and raises
    ``TypeError`` with the expected type (``"true or false"``) or an :class:`~mlrd_core.errors.MLRDError` with a
    full message on a bad one; ``spec`` gives the canonical plain value (default: :func:`plain`). ``default`` is the
    typed default (omitted: the option is required)."""
    return field(default=default, metadata={"parse": parse, "spec": spec or plain})


@dataclass(frozen=True, eq=False)
class WeightingOptions(Mapping[str, Any]):
    """Base of the options records (see the module docstring). Subclasses are frozen dataclasses whose fields are
    made with :func:`option` and set :attr:`method`."""

    #: The spec name of the method these options belong to.
    method: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            parse = f.metadata.get("parse")
            if parse is None:
                continue
            value = getattr(self, f.name)
            try:
                object.__setattr__(self, f.name, parse(value))
            except TypeError as exc:  # the text is the expected type
                raise WeightingOptionError(
                    f"weighting {self.method!r}: {f.name} must be {exc}, got {value!r}", key=f.name
                ) from exc
            except MLRDError as exc:
                text = str(exc) if str(exc).startswith(f"{f.name} ") else f"{f.name}: {exc}"
                raise WeightingOptionError(f"weighting {self.method!r}: {text}", key=f.name) from exc

    @classmethod
    def keys_with_defaults(cls) -> dict[str, Any]:
        """Option name → typed default (``dataclasses.MISSING`` for a required option), in declaration order."""
        return {f.name: f.default for f in fields(cls)}

    @classmethod
    def canonical(cls, key: str, value: Any) -> Any:
        """The canonical spec form of one option value (``clip = [1, 3]`` → ``[1.0, 3.0]``), for comparing a
        value with a config's option. Raises ``TypeError`` (the expected type) or :class:`~mlrd_core.errors.MLRDError`
        like the field's parser; ``KeyError`` for a key that is not an option."""
        f = {f.name: f for f in fields(cls)}[key]
        parse = f.metadata.get("parse")
        return f.metadata.get("spec", plain)(value if parse is None else parse(value))

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None = None) -> Self:
        """The record of a spec table; missing options take their defaults. Raises
        :class:`~mlrd_core.errors.WeightingOptionError` (with ``key``) for an unknown, missing or bad option."""
        given = dict(spec or {})
        valid = cls.keys_with_defaults()
        shown = ", ".join(valid) if valid else "(none)"
        unknown = [k for k in given if k not in valid]
        if unknown:
            near = difflib.get_close_matches(str(unknown[0]), list(valid), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise WeightingOptionError(
                f"unknown option(s) {sorted(map(str, unknown))} for weighting {cls.method!r}{hint}; valid options: "
                f"{shown}",
                key=str(unknown[0]),
            )
        missing = [k for k, default in valid.items() if default is MISSING and k not in given]
        if missing:
            raise WeightingOptionError(
                f"weighting {cls.method!r} needs option(s) {missing}; valid options: {shown}", key=missing[0]
            )
        return cls(**given)

    def to_spec(self) -> dict[str, Any]:
        """The canonical mapping: every option, plain JSON data (what a run id hashes)."""
        return {f.name: f.metadata.get("spec", plain)(getattr(self, f.name)) for f in fields(self)}

    def kwargs(self) -> dict[str, Any]:
        """The typed keyword arguments of the method's constructor."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # a read-only mapping: the spec form
    def __getitem__(self, key: str) -> Any:
        return self.to_spec()[key]

    def __iter__(self) -> Iterator[str]:
        return iter([f.name for f in fields(self)])

    def __len__(self) -> int:
        return len(fields(self))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, WeightingOptions):
            return type(self) is type(other) and self.to_spec() == other.to_spec()
        if isinstance(other, Mapping):
            return self.to_spec() == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((type(self), json.dumps(self.to_spec(), sort_keys=True)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.kwargs().items())})"
