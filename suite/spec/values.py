"""Reading values: the context messages point at (file and key path), and the coercion of a value to a RunConfig
field's type or a weighting option's canonical form."""

from __future__ import annotations

import copy
import difflib
import functools
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from mlrd_core.errors import ConfigError, ExpressionError, MLRDError, ScheduleError
from mlrd_core.losses import select
from mlrd_core.weighting import (
    LeeKimOptions,
    Schedule,
    canonical_name,
)
from suite.spec.vocabulary import GROUP_NAME_RE, SHORTHANDS


class _Ctx:
    """Where messages point: the source (file) and the key path inside it."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {path}: {message}")

    def located(self, exc: MLRDError, path: str) -> MLRDError:
        """``exc`` at ``path``: a loss-expression or schedule error keeps its type (callers catch them by it), any
        other becomes a :class:`ConfigError`."""
        for kind in (ExpressionError, ScheduleError):
            if isinstance(exc, kind):
                return kind(f"{self.source}: {path}: {exc}")
        return self.error(path, str(exc))

    def choice(self, value: object, path: str, key: str, choices: Sequence[str]) -> str:
        """A string that must be one of ``choices``."""
        text = self.string(value, path)
        if text not in choices:
            raise self.error(path, f"{key} must be one of {', '.join(choices)}, got {text!r}")
        return text

    def check_keys(self, table: Mapping[str, Any], valid: Sequence[str], path: str) -> None:
        for key in table:
            if key not in valid:
                raise self.error(path, f"unknown key {key!r}{_near(str(key), valid)}; valid keys: {', '.join(valid)}")

    def table(self, value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(path, f"expected a table, got {_show(value)}")
        return dict(value)

    def tables(self, value: object, path: str) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.error(path, f"expected an array of tables ([[{path}]]), got {_show(value)}")
        return [dict(v) for v in value]

    def string(self, value: object, path: str, *, empty: bool = True) -> str:
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self.error(path, f"expected {'a' if empty else 'a non-empty'} string, got {_show(value)}")
        return value

    def strings(self, value: object, path: str, valid: Sequence[str] | None = None) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(path, f"expected a list of strings, got {_show(value)}")
        if valid is not None:
            for i, item in enumerate(value):
                if item not in valid:
                    raise self.error(
                        f"{path}[{i}]", f"unknown name {item!r}{_near(item, valid)}; valid: {', '.join(valid)}"
                    )
        return tuple(value)

    def boolean(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {_show(value)}")
        return value

    def integer(self, value: object, path: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(path, f"expected an integer >= {minimum}, got {_show(value)}")
        return value

    def number(self, value: object, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(path, f"expected a finite number, got {_show(value)}")
        return float(value)

    def name(self, value: object, path: str, pattern: re.Pattern[str], what: str) -> str:
        text = self.string(value, path)
        if not pattern.fullmatch(text) or ".." in text:
            raise self.error(
                path, f"invalid {what} {text!r}: it must match {pattern.pattern} (no path separators, no '..')"
            )
        return text

    def required_name(self, raw: Mapping[str, Any], path: str, what: str, example: str) -> str:
        """The ``name`` of a group or table (required; a safe file-name part)."""
        if "name" not in raw:
            raise self.error(path, f'a {what} needs a name (e.g. name = "{example}")')
        return self.name(raw["name"], f"{path}.name", GROUP_NAME_RE, f"{what} name")

    def seeds(self, value: object, path: str) -> tuple[int, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(path, f"expected a non-empty list of integer seeds, got {_show(value)}")
        seeds = tuple(self.integer(v, f"{path}[{i}]", 0) for i, v in enumerate(value))
        if len(set(seeds)) != len(seeds):
            raise self.error(path, f"seeds must be distinct, got {list(seeds)}")
        return seeds


def _near(word: str, valid: Sequence[str]) -> str:
    near = difflib.get_close_matches(word, valid, n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _show(value: object) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (str, list, dict)) else repr(value)


def _fmt(value: object) -> str:
    """TOML-like text of a value, for derived arm labels."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def _deep_merge(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _jsonable(value: object) -> Any:
    """Plain JSON data (what a run id hashes): Schedules as their table form, tuples as lists."""
    if isinstance(value, Schedule):
        return value.to_spec()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ConfigError(f"value {value!r} of type {type(value).__name__} cannot be stored in a run config")


def _canonical_weighting(name: str) -> str:
    return canonical_name(name)  # raises WeightingError with the valid names and a suggestion


@functools.lru_cache(maxsize=64)
def _encoder_info(encoder: str) -> Any:
    from mlrd_core.model import encoder_info  # timm import: only when a spec is checked

    return encoder_info(encoder)


def _input_multiple(encoder: str) -> int:
    return int(_encoder_info(encoder).input_multiple)


@functools.lru_cache(maxsize=256)
def _selection(expr: str) -> tuple[str, ...]:
    return select(expr)


def _type_text(tp: Any) -> str:
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is types.NoneType:
        return "false (none)"
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_text(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {len(typing.get_args(tp))} {_type_text(typing.get_args(tp)[0]).split(' ', 1)[1]}s"
    return "a table"


def _coerce(value: object, tp: Any) -> Any:
    """``value`` read as the RunConfig type ``tp``; raises TypeError when it does not fit.

    ``false`` stands for None in optional fields (TOML has no null); ints become floats in float fields (so that
    ``lr = 1`` and ``lr = 1.0`` hash alike).
    """
    if tp is str and isinstance(value, str):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if types.NoneType in args and value is False:
            return None
        for arg in args:
            if arg is types.NoneType:
                continue
            try:
                return _coerce(value, arg)
            except TypeError:
                continue
    elif origin is tuple and isinstance(value, list) and len(value) == len(args):
        return tuple(_coerce(v, a) for v, a in zip(value, args, strict=True))
    elif origin is not None and issubclass(origin, Mapping) and isinstance(value, Mapping):
        return dict(value)
    raise TypeError(_type_text(tp))


def normalize_weighting_option(key: str, value: object) -> Any:
    """The canonical stored form of a weighting shorthand (:data:`SHORTHANDS`, the Lee-Kim options: schedule → its
    table form, clip → [lo, hi] or "none"), as :class:`~mlrd_core.weighting.LeeKimOptions` stores it.

    Used for matching (``match = {schedule = "3 -> -3"}``) and searched settings. Raises ScheduleError for a bad
    schedule, TypeError (the expected type) for a bad clip / flag and WeightingError for clip bounds.
    """
    if key in SHORTHANDS:
        return LeeKimOptions.canonical(key, value)
    return _jsonable(value)


# A level of settings: key -> (value, key path of the value).
_Level = dict[str, tuple[Any, str]]


def _level(table: Mapping[str, Any], path: str) -> _Level:
    return {k: (v, f"{path}.{k}") for k, v in table.items()}
