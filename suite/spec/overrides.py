"""Overrides: ``--set key=value`` assignments applied to a loaded spec's TOML, which is then loaded again."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from mlrd_core.errors import ConfigError
from suite.spec.loading import spec_from_dict
from suite.spec.records import Spec
from suite.spec.vocabulary import SETTING_KEYS


def _parse_literal(text: str) -> Any:
    """A TOML literal (``1``, ``1e-4``, ``true``, ``"x"``, ``[0, 1]``, ``{a = 1}``); anything that is not valid TOML
    is taken as a bare string, so ``encoder=resnet50`` and ``losses=L_D | L_G`` work without quotes."""
    if "\n" in text or "\r" in text:
        raise ConfigError(f"an override value must be on one line, got {text!r}")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _override_target(spec: Spec, raw: Mapping[str, Any], parts: list[str], text: str) -> list[str | int]:
    """Where in the document ``--set`` writes (see docs/specs.md, "Overrides")."""
    usage = (
        f"cannot apply override {text!r}: use a run setting ({', '.join(SETTING_KEYS)}), seeds, spec.<field>, "
        "defaults.<key>, groups.<name>.<key>, overrides.<key>, search.<key> or slurm.<key>"
    )
    head, rest = parts[0], parts[1:]
    if head == "seeds" and not rest:
        return ["spec", "seeds"]
    if head in SETTING_KEYS:
        return ["overrides", *parts]
    if head == "spec" and len(rest) == 1:
        return ["spec", rest[0]]
    if head in ("defaults", "overrides", "search", "slurm") and rest:
        return [head, *rest]
    if head == "groups" and len(rest) >= 2:
        names = [g.get("name") for g in raw.get("groups", []) if isinstance(g, Mapping)]
        if rest[0] not in names:
            raise ConfigError(
                f"{usage}; spec {spec.name!r} has no group {rest[0]!r} (groups: {', '.join(map(str, names))})"
            )
        index = names.index(rest[0])
        tail = rest[2:] if rest[1] == "defaults" else rest[1:]
        if not tail:
            raise ConfigError(usage)
        if tail[0] in ("title", "description") and len(tail) == 1:
            return ["groups", index, tail[0]]
        return ["groups", index, "defaults", *tail]
    raise ConfigError(usage)


def _deep_set(doc: dict[str, Any], keys: Sequence[str | int], value: Any, text: str) -> None:
    node: Any = doc
    for i, key in enumerate(keys[:-1]):
        if isinstance(node, list):
            node = node[key]  # type: ignore[index]
            continue
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, (dict, list)):
            shown = ".".join(str(k) for k in keys[: i + 1])
            raise ConfigError(f"cannot apply override {text!r}: {shown} is {child!r}, not a table")
        node = child
    node[keys[-1]] = value


def apply_overrides(spec: Spec, assignments: Sequence[str]) -> Spec:
    """A new spec with ``--set`` assignments applied, validated like a file.

    Each assignment is ``KEY=VALUE``; VALUE is a TOML literal (or a bare string). KEY is a run setting (forced on
    every arm: written to [overrides], the highest precedence), ``seeds``, or a dotted path: ``spec.seeds``,
    ``defaults.batch_size``, ``groups.a.epochs`` (group defaults), ``overrides.dataset_options.root``,
    ``search.n_trials``, ``slurm.partition``. Table-valued settings take dotted sub-keys
    (``dataset_options.train.length=64``).
    """
    raw: dict[str, Any] = copy.deepcopy(dict(spec.raw))
    for text in assignments:
        key, sep, value_text = text.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.strip() for p in parts):
            raise ConfigError(f"an override is KEY=VALUE (e.g. epochs=1 or defaults.batch_size=4), got {text!r}")
        target = _override_target(spec, raw, [p.strip() for p in parts], text)
        _deep_set(raw, target, _parse_literal(value_text.strip()), text)
    source = f"{spec.source} (with --set {' '.join(assignments)})" if assignments else spec.source
    return spec_from_dict(raw, source=source, default_name=spec.name, path=spec.path)
