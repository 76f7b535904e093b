"""Validation: a shared level's values checked on their own, and what a worker would otherwise find only when it
builds the run (dataset options, splits, files; docs/specs.md, "What is checked at load time")."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlrd_core.config import RunConfig
from mlrd_core.errors import ConfigError, MLRDError, ScheduleError
from mlrd_core.weighting import (
    parse_schedule,
)
from suite.spec.records import Spec
from suite.spec.values import (
    _canonical_weighting,
    _coerce,
    _Ctx,
    _encoder_info,
    _input_multiple,
    _Level,
    _near,
    _selection,
    _show,
)
from suite.spec.vocabulary import _RUN_TYPES, MAPPING_KEYS, MIXTURE_KEYS, SHORTHANDS


def _check_level(ctx: _Ctx, level: _Level) -> None:
    """Check the values of a shared level ([defaults], group defaults, [overrides]) on their own, so that a value
    every arm overrides is still checked: types, loss expressions, schedules and the names of weighting methods,
    encoders, datasets and protocols. What depends on other keys (options vs method, input size vs encoder) is
    checked on each resolved arm."""
    for key, (value, path) in level.items():
        if key in SHORTHANDS or key in MAPPING_KEYS or key in MIXTURE_KEYS:
            continue
        try:
            _coerce(value, _RUN_TYPES[key])
        except TypeError as exc:
            grid = "; lists expand as a grid only in [[groups.arms]]" if isinstance(value, list) else ""
            raise ctx.error(path, f"{key} must be {exc}, got {_show(value)}{grid}") from None
    checks: dict[str, Callable[[str], object]] = {
        "losses": _selection,
        "weighting": _canonical_weighting,
        "encoder": _input_multiple,
    }
    for key, check in checks.items():
        if key in level:
            value, path = level[key]
            try:
                check(value)
            except MLRDError as exc:
                raise ctx.located(exc, path) from exc
    _check_mixture_level(ctx, level)
    if "protocol" in level:
        _check_protocol(ctx, *level["protocol"])
    schedules = [level["schedule"]] if "schedule" in level else []
    if "weighting_options" in level:
        value, path = level["weighting_options"]
        options = ctx.table(value, path)
        if "schedule" in options:
            schedules.append((options["schedule"], f"{path}.schedule"))
    for value, path in schedules:
        try:
            parse_schedule(value)
        except ScheduleError as exc:
            raise ctx.located(exc, path) from exc


def _check_dataset(ctx: _Ctx, dataset: str, path: str) -> None:
    from mlrd_core.data import list_datasets  # cheap registry (modules load lazily)

    known = list_datasets()
    if dataset not in known:
        raise ctx.error(path, f"unknown dataset {dataset!r}{_near(dataset, known)}; valid datasets: {', '.join(known)}")


def _check_protocol(ctx: _Ctx, protocol: str, path: str) -> None:
    from mlrd_core.protocols import get_protocol

    try:
        get_protocol(protocol)
    except MLRDError as exc:
        raise ctx.error(path, str(exc)) from exc


def _mixture_value(ctx: _Ctx, key: str, value: object, path: str, *, check_names: bool = True) -> Any:
    """One data key of a level in its stored form: ``dataset`` a name or a list of names (a mixture),
    ``eval_dataset`` a name, ``dataset_weights`` a table ``{name = weight}`` or a list of weights in the order of
    ``dataset`` (made a table by :func:`_resolve_mixture`). Names are checked against the registry."""
    if key in ("dataset", "eval_dataset"):
        names = value if key == "dataset" and isinstance(value, list) else [value]
        if not names or not all(isinstance(n, str) for n in names):
            shape = "a dataset name or a list of names (a mixture)" if key == "dataset" else "a dataset name"
            raise ctx.error(path, f"{key} must be {shape}, got {_show(value)}")
        if check_names:
            for i, name in enumerate(names):
                _check_dataset(ctx, name, f"{path}[{i}]" if isinstance(value, list) else path)
        return list(value) if isinstance(value, list) else value
    # dataset_weights
    if isinstance(value, Mapping):
        items = [(str(k), v, f"{path}.{k}") for k, v in value.items()]
    elif isinstance(value, list):
        items = [(str(i), v, f"{path}[{i}]") for i, v in enumerate(value)]
    else:
        raise ctx.error(path, f"dataset_weights must be a table {{dataset = weight}} or a list, got {_show(value)}")
    for _, weight, where in items:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise ctx.error(where, f"a dataset weight must be a number > 0, got {_show(weight)}")
    return {k: float(v) for k, v, _ in items} if isinstance(value, Mapping) else [float(v) for _, v, _ in items]


def _check_mixture_level(ctx: _Ctx, level: _Level) -> None:
    """The data keys of a shared level on their own (names known, shapes right)."""
    for key in sorted(MIXTURE_KEYS):
        if key in level:
            value, path = level[key]
            _mixture_value(ctx, key, value, path)


# What a worker would otherwise find only when it builds the run (docs/specs.md, "What is checked at load time"):
# the dataset's options and splits against its builder's declaration (mlrd_core.data.dataset_info), the decoder
# width against the encoder, and losses that are identically zero at the input size. check_files() adds the
# existence checks of data and weights files, which depend on the machine and so are not part of loading.


def _option_origins(levels: Sequence[_Level]) -> dict[tuple[str, ...], str]:
    """The key path that set each leaf of the merged ``dataset_options`` (merged as :func:`_deep_merge` does)."""
    origins: dict[tuple[str, ...], str] = {}

    def walk(table: Mapping[str, Any], prefix: tuple[str, ...], path: str) -> None:
        for key, value in table.items():
            here = (*prefix, str(key))
            if isinstance(value, Mapping):
                origins.pop(here, None)  # a table merges into a table and replaces a value
                walk(value, here, f"{path}.{key}")
            else:
                for stale in [k for k in origins if k[: len(here)] == here]:
                    del origins[stale]
                origins[here] = f"{path}.{key}"

    for level in levels:
        if "dataset_options" in level:
            value, path = level["dataset_options"]
            if isinstance(value, Mapping):
                walk(value, (), path)
    return origins


def _origin(levels: Sequence[_Level], key: str) -> str | None:
    """The key path of option ``key`` (``"train.length"``) of the merged ``dataset_options``, or of the table
    ``key`` names (``"trian"``)."""
    parts = tuple(key.split("."))
    for leaf, path in _option_origins(levels).items():
        if leaf[: len(parts)] == parts:
            return path.rsplit(".", len(leaf) - len(parts))[0] if len(leaf) > len(parts) else path
    return None


def _dataset_uses(config: RunConfig) -> list[tuple[str, Mapping[str, Any], str, dict[str, str]]]:
    """Each dataset a run builds: ``(name, its options table, key prefix inside dataset_options, {split key: split})``.
    One dataset uses all of ``dataset_options`` and the three splits; a mixture (``dataset`` a list) trains on each
    part with ``dataset_options.<name>`` and evaluates on ``eval_dataset``."""
    splits = {k: getattr(config, k) for k in ("train_split", "val_split", "test_split") if getattr(config, k)}
    if isinstance(config.dataset, str):
        return [(config.dataset, config.dataset_options, "", splits)]
    evaluated = getattr(config, "eval_dataset", None)
    uses = []
    for name in dict.fromkeys([*config.dataset, *([evaluated] if evaluated else [])]):
        table = config.dataset_options.get(name, {})
        used = {
            k: v for k, v in splits.items() if (name in config.dataset if k == "train_split" else name == evaluated)
        }
        uses.append((name, table if isinstance(table, Mapping) else {}, f"{name}.", used))
    return uses


def _check_before_training(
    ctx: _Ctx, config: RunConfig, levels: Sequence[_Level], paths: Mapping[str, str], where: str
) -> None:
    """Refuse, with the key path, a resolved run that would fail deterministically once built."""
    from mlrd_core.data import DatasetOptionError, check_dataset_options, dataset_info
    from mlrd_core.losses.functional import vanishing_losses

    for name, table, prefix, splits in _dataset_uses(config):
        info = dataset_info(name)
        for key, split in splits.items():
            if split not in info.splits:
                none = "" if key == "train_split" else f"; {key} = false runs without it"
                raise ctx.error(
                    paths.get(key, f"{where} ({key}, default {split!r})"),
                    f"unknown split {split!r} of dataset {name!r}{_near(split, info.splits)}; valid splits: "
                    f"{', '.join(info.splits)}{none}",
                )
        try:
            check_dataset_options(info, table, list(dict.fromkeys(splits.values())))
        except DatasetOptionError as exc:
            whole = paths.get("dataset_options", f"{where}.dataset_options")
            if not exc.key:
                raise ctx.error(f"{whole}{'.' + prefix[:-1] if prefix else ''}", exc.reason) from None
            key = prefix + exc.key
            raise ctx.error(_origin(levels, key) or f"{whole}.{key}", exc.reason) from None

    encoder = _encoder_info(config.encoder)
    blocks = int(encoder.num_up_blocks)
    if config.decoder_width // 2**blocks < 1:
        raise ctx.error(
            paths.get("decoder_width", f"{where}.decoder_width"),
            f"decoder_width must be an integer >= {2**blocks} for encoder {config.encoder!r} (it halves in each of "
            f"the decoder's {blocks} up-blocks), got {config.decoder_width}",
        )

    vanishing = vanishing_losses(_selection(config.losses), config.input_size)
    if vanishing:
        height, width = config.input_size
        k_max = max(vanishing)
        names = [n for _, found in vanishing.values() for n in found]
        scales = "; ".join(
            f"scale {k} is a {h}×{w} map, where {', '.join(found)} "
            f"{'is' if len(found) == 1 else 'are'} identically zero"
            for k, ((h, w), found) in vanishing.items()
        )
        side = 2 * 2**k_max
        subset = (
            f' or a subset without them, e.g. "({config.losses}) - {{{", ".join(names)}}}"'
            if len(names) < len(_selection(config.losses))
            else ""
        )
        raise ctx.error(
            paths.get("losses", f"{where}.losses"),
            f"losses {config.losses!r} at input_size {height}×{width} "
            f"(set at {paths.get('input_size', 'the RunConfig default')}): {scales}. Use a larger input "
            f"(both sides >= {side}){subset}",
        )


def check_files(spec: Spec) -> list[str]:
    """Messages for the files and folders the spec's runs would read and that do not exist on this machine: each
    arm's dataset files for its train / val / test splits (existence only, nothing is read) and local pretrained
    weights files. Empty when everything is there. ``run`` and ``search`` refuse to start on any (before anything is
    written); ``plan`` prints them. Not part of loading: a spec loads (and renders its tables) without its data."""
    from mlrd_core.data import dataset_info, missing_files
    from mlrd_core.data.mixture import missing_guard_files

    found: dict[str, tuple[list[str], list[str]]] = {}  # message -> (splits, arms)
    for arm in spec.arms():
        config = arm.config
        problems: list[tuple[str, str | None]] = []
        for name, table, prefix, splits in _dataset_uses(config):
            info = dataset_info(name)
            where = f"dataset_options{'.' + prefix[:-1] if prefix else ''}"
            for split in dict.fromkeys(splits.values()):
                problems += [(f"{where}: {m}", split) for m in missing_files(info, table, split)]
        problems += [(f"dataset_options.sunrgbd: {m}", config.train_split) for m in missing_guard_files(config)]
        if isinstance(config.pretrained, str) and not Path(config.pretrained).is_file():
            problems.append((f"pretrained: weights file not found: {config.pretrained}", None))
        for problem, problem_split in problems:
            splits_seen, arms = found.setdefault(problem, ([], []))
            if problem_split is not None and problem_split not in splits_seen:
                splits_seen.append(problem_split)
            if f"{arm.group}/{arm.label}" not in arms:
                arms.append(f"{arm.group}/{arm.label}")
    out = []
    for problem, (splits_seen, arms) in found.items():
        shown = ", ".join(arms[:3]) + (f" and {len(arms) - 3} more" if len(arms) > 3 else "")
        used = f"split{'s' if len(splits_seen) > 1 else ''} {', '.join(splits_seen)}; " if splits_seen else ""
        out.append(f"{spec.source}: {problem} ({used}arm{'s' if len(arms) > 1 else ''} {shown})")
    return out


def require_files(spec: Spec) -> None:
    """:class:`ConfigError` listing :func:`check_files`'s messages, if any."""
    problems = check_files(spec)
    if problems:
        raise ConfigError(
            "missing files, nothing was started:\n  "
            + "\n  ".join(problems)
            + "\n(set paths in the spec or with --set, e.g. --set dataset_options.root=/data/nyu)"
        )
