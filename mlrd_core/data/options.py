"""The declared options of every dataset builder, checked before anything is built.

A builder registers with :func:`mlrd_core.data.register_dataset`, which derives one :class:`OptionInfo` per keyword
parameter of the builder's signature (name, accepted types from the annotation, default) and adds the builder's
explicit :class:`OptionRule` (range, choices) where it gives one. Nothing is written twice: a rule for a name that is
not a parameter is an error at import time.

:func:`check_dataset_options` checks a run config's ``dataset_options`` (shared options plus per-split tables such
as ``train = { length = 1024 }``) and raises :class:`DatasetOptionError` with the key path inside
``dataset_options``; :func:`check_options` checks the flat keyword arguments of one builder call
(:func:`mlrd_core.data.make_dataset` calls it, so a bad value is a :class:`~mlrd_core.errors.DataError`, never a
raw ``TypeError``); :func:`missing_files` runs the builder's cheap existence checks (no file is read).
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlrd_core.errors import DataError

__all__ = [
    "DatasetInfo",
    "DatasetOptionError",
    "OptionInfo",
    "OptionRule",
    "check_dataset_options",
    "check_options",
    "missing_files",
]


class DatasetOptionError(DataError):
    """A dataset option is unknown or has a value its builder does not accept.

    ``key`` is the option's path inside ``dataset_options`` (``"height"``, ``"train.length"``; empty for the table
    itself) and ``reason`` the message without it.
    """

    def __init__(self, key: str, reason: str, message: str | None = None) -> None:
        super().__init__(message or (f"{key}: {reason}" if key else reason))
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class OptionRule:
    """What a builder option accepts beyond its annotated type: ``minimum`` / ``maximum`` (inclusive; for a pair
    such as ``resize_to``, of each element), ``positive`` (> 0) or ``choices``; ``text`` says what the option is."""

    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    choices: tuple[Any, ...] = ()
    text: str = ""


@dataclass(frozen=True)
class OptionInfo:
    """One option of a builder: its name, the kinds of values it takes (``"str"``, ``"path"``, ``"int"``,
    ``"float"``, ``"bool"``, ``"pair"``, ``"none"``), its default and its :class:`OptionRule`."""

    name: str
    kinds: tuple[str, ...]
    default: Any
    rule: OptionRule = field(default_factory=OptionRule)

    def describe(self) -> str:
        """What the option accepts, as messages say it: ``an integer >= 1``, ``one of "filled", "raw"``."""
        rule = self.rule
        if rule.choices:
            return "one of " + ", ".join(_shown(c) for c in rule.choices)
        bound = _bound_text(rule)
        parts = []
        for kind in self.kinds:
            if kind == "none" or (kind == "str" and "path" in self.kinds):
                continue
            text = _KIND_TEXT[kind]
            if kind in ("int", "float") and bound:
                text += f" {bound}"
            if kind == "pair" and bound:
                text += f" (each {bound})"
            parts.append(text)
        return " or ".join(dict.fromkeys(parts)) or "nothing (it is set by the suite)"

    def problem(self, value: object) -> str | None:
        """None when ``value`` is accepted, else the reason: ``expected an integer >= 1, got "tall"``."""
        wrong = f"expected {self.describe()}, got {_shown(value)}"
        if self.rule.choices:
            return None if any(_same(value, c) for c in self.rule.choices) else wrong
        for kind in self.kinds:
            if _is_kind(value, kind):
                if kind in ("int", "float"):
                    return None if _in_range(value, self.rule) else wrong  # type: ignore[arg-type]
                if kind == "pair":
                    return None if all(_in_range(v, self.rule) for v in value) else wrong  # type: ignore[attr-defined]
                return None
        return wrong


@dataclass(frozen=True)
class DatasetInfo:
    """The declaration of one registered dataset: its valid splits, its options (the builder's parameters other
    than ``split``), the groups of options of which one is needed, and its existence check of files."""

    name: str
    splits: tuple[str, ...]
    options: Mapping[str, OptionInfo]
    needs: tuple[tuple[str, ...], ...] = ()
    files: Callable[..., list[str]] | None = None


_KIND_TEXT = {
    "str": "a string",
    "path": "a path",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "pair": "a list of 2 integers",
}


def _shown(value: object) -> str:
    """A value as it is written in TOML: ``"tall"``, ``true``, ``[1, 2]``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, os.PathLike)):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_shown(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "none"
    return repr(value)


def _same(value: object, choice: object) -> bool:
    return type(value) is type(choice) and value == choice


def _is_kind(value: object, kind: str) -> bool:
    if kind == "none":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "path":
        return isinstance(value, (str, os.PathLike))
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "pair":
        return (
            isinstance(value, (list, tuple))
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        )
    raise AssertionError(kind)


def _bound_text(rule: OptionRule) -> str:
    if rule.positive:
        return "> 0"
    if rule.minimum is not None and rule.maximum is not None:
        return f"in [{_num(rule.minimum)}, {_num(rule.maximum)}]"
    if rule.minimum is not None:
        return f">= {_num(rule.minimum)}"
    if rule.maximum is not None:
        return f"<= {_num(rule.maximum)}"
    return ""


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _in_range(value: float, rule: OptionRule) -> bool:
    if rule.positive and not value > 0:
        return False
    if rule.minimum is not None and value < rule.minimum:
        return False
    return rule.maximum is None or value <= rule.maximum


def _kinds(annotation: Any) -> tuple[str, ...]:
    """The value kinds an annotation accepts (``int | None`` → ``("int", "none")``)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        raise TypeError("every builder option needs a type annotation")
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        return tuple(k for arg in typing.get_args(annotation) for k in _kinds(arg))
    if annotation is types.NoneType:
        return ("none",)
    if annotation is bool:
        return ("bool",)
    if annotation is int:
        return ("int",)
    if annotation is float:
        return ("float",)
    if annotation is str:
        return ("str",)
    if annotation is Path or origin is os.PathLike or annotation is os.PathLike:
        return ("path",)
    if origin is tuple and typing.get_args(annotation) == (int, int):
        return ("pair",)
    raise TypeError(f"unsupported builder option annotation {annotation!r}")


def make_info(
    name: str,
    builder: Callable[..., Any],
    splits: tuple[str, ...],
    rules: Mapping[str, OptionRule],
    needs: Sequence[Sequence[str]],
    files: Callable[..., list[str]] | None,
) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``builder``: options from its signature and annotations, plus ``rules``."""
    function = builder.__init__ if isinstance(builder, type) else builder  # type: ignore[misc]
    hints = typing.get_type_hints(function)
    options: dict[str, OptionInfo] = {}
    for param in inspect.signature(builder).parameters.values():
        if param.name == "split" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        options[param.name] = OptionInfo(
            name=param.name,
            kinds=_kinds(hints.get(param.name, param.annotation)),
            default=None if param.default is param.empty else param.default,
            rule=rules.get(param.name, OptionRule()),
        )
    stray = sorted(set(rules) - set(options)) + sorted({k for group in needs for k in group} - set(options))
    if stray:
        raise TypeError(f"dataset {name!r}: declared option(s) {stray} are not parameters of its builder")
    return DatasetInfo(name=name, splits=splits, options=options, needs=tuple(tuple(g) for g in needs), files=files)


def _near(word: str, valid: Sequence[str]) -> str:
    near = difflib.get_close_matches(word, list(valid), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _check_one(info: DatasetInfo, key: str, value: object, path: str) -> None:
    if key == "split":
        raise DatasetOptionError(
            path,
            f"the split is not a dataset option: train_split, val_split and test_split choose it "
            f"(splits of {info.name!r}: {', '.join(info.splits)})",
        )
    option = info.options.get(key)
    if option is None:
        raise DatasetOptionError(
            path,
            f"unknown option {key!r} of dataset {info.name!r}{_near(key, list(info.options))}; valid options: "
            f"{', '.join(info.options) or '(none)'}",
        )
    problem = option.problem(value)
    if problem is not None:
        raise DatasetOptionError(path, problem)


def check_options(info: DatasetInfo, options: Mapping[str, Any]) -> None:
    """Check the keyword arguments of one builder call (``split`` included); :class:`DatasetOptionError` names
    the option."""
    for key, value in options.items():
        if key == "split":
            if value not in info.splits:
                raise DatasetOptionError(
                    "split",
                    f"unknown split {_shown(value)} of dataset {info.name!r}; valid splits: {', '.join(info.splits)}",
                )
            continue
        _check_one(info, key, value, key)


def check_dataset_options(info: DatasetInfo, options: Mapping[str, Any], splits: Sequence[str] = ()) -> None:
    """Check a run config's ``dataset_options`` for dataset ``info``: every shared option, every per-split table
    (a table-valued key named after one of the dataset's splits) and, for each split in ``splits`` (the splits the
    run uses), the options of which one is needed. Raises :class:`DatasetOptionError` with the key path inside
    ``dataset_options`` (``"height"``, ``"train.length"``)."""
    for key, value in options.items():
        if isinstance(value, Mapping) and key not in info.options:
            if key not in info.splits:
                raise DatasetOptionError(
                    key,
                    f"unknown split table or option {key!r} of dataset {info.name!r}"
                    f"{_near(key, [*info.splits, *info.options])}; per-split tables: {', '.join(info.splits)}; "
                    f"options: {', '.join(info.options) or '(none)'}",
                )
            for sub, subvalue in value.items():
                _check_one(info, sub, subvalue, f"{key}.{sub}")
        else:
            _check_one(info, key, value, key)
    for split in splits:
        given = effective_options(options, split)
        for group in info.needs:
            if not any(k in given for k in group):
                wanted = " or ".join(group)
                raise DatasetOptionError(
                    "", f'dataset {info.name!r} needs {wanted} (for split {split!r}), e.g. {group[0]} = "..."'
                )


def effective_options(options: Mapping[str, Any], split: str) -> dict[str, Any]:
    """The builder options of ``split``: shared options with the split's table on top (as the trainer does)."""
    out = {k: v for k, v in options.items() if not isinstance(v, Mapping)}
    table = options.get(split)
    if isinstance(table, Mapping):
        out.update(table)
    return out


def missing_files(info: DatasetInfo, options: Mapping[str, Any], split: str) -> list[str]:
    """One message per file or folder that split ``split`` of the dataset would read and that does not exist
    (existence checks only; nothing is opened). Empty when all are there or the dataset reads no files."""
    if info.files is None:
        return []
    given = effective_options(options, split)
    return info.files(split=split, **given)
