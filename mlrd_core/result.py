"""A run's result (:class:`RunResult`) and the one schema of its file form, ``result.json``.

:func:`mlrd_core.trainer.fit` returns a :class:`RunResult`. A worker writes it to its run folder as
:func:`result_payload` (the result's records plus who wrote it for which run), and whoever reads such a file back
checks it with :func:`validate_result` before trusting a single number in it. The file carries:

- ``format``: :data:`RESULT_FORMAT`, the version of this layout (a file of another version is refused);
- ``run_id``: the run it was trained for (a result copied in from another run folder is refused);
- ``config_hash``: :func:`config_hash` of the config it trained (it must match both the config it carries and the
  config the reader expects, so a result of an edited or foreign config is refused);
- ``attempt``: the token of the attempt that wrote it, when the coordinator gave one (a result left by an earlier
  attempt is stale and refused);
- the :class:`RunResult` fields (``config``, ``seed``, ``loss_names``, ``metrics``, ``periods``, ``timings``,
  ``environment``, ``resumed_from``) and a free-form ``worker`` record.

This module imports no torch: the coordinator, which never trains, uses it.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mlrd_core.errors import MLRDError

#: The version of the ``result.json`` layout written by :func:`result_payload`.
RESULT_FORMAT = 1


class ResultError(MLRDError, ValueError):
    """A result file does not follow the schema, or belongs to another run, config or attempt."""


@dataclass
class RunResult:
    """Everything a run produced, as plain records (no tensors) ready for a store."""

    config: dict[str, Any]
    seed: int
    loss_names: list[str]
    metrics: list[dict[str, Any]] = field(default_factory=list)  # split, epoch, protocol, name, value
    periods: list[dict[str, Any]] = field(default_factory=list)  # the weighting method's period records
    timings: dict[str, float] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    resumed_from: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def final_metrics(self, split: str = "test") -> dict[str, float]:
        """The metrics of ``split`` at the last epoch they were computed."""
        rows = [m for m in self.metrics if m["split"] == split]
        if not rows:
            return {}
        last = max(m["epoch"] for m in rows)
        return {m["name"]: m["value"] for m in rows if m["epoch"] == last}


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the config's canonical JSON (sorted keys, no spaces): equal configs, equal hashes."""
    text = json.dumps(dict(config), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def result_payload(
    result: RunResult | Mapping[str, Any],
    *,
    run_id: str,
    attempt: str | None = None,
    worker: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``result.json`` form of ``result`` for run ``run_id`` (written by the attempt ``attempt``)."""
    body = result.to_dict() if isinstance(result, RunResult) else dict(result)
    return {
        **body,
        "format": RESULT_FORMAT,
        "run_id": run_id,
        "config_hash": config_hash(body["config"]),
        "attempt": attempt,
        "worker": dict(worker or {}),
    }


def _require(payload: Mapping[str, Any], key: str, kinds: tuple[type, ...], what: str) -> Any:
    if key not in payload:
        raise ResultError(f"it has no {key!r} ({what})")
    value = payload[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ResultError(f"its {key!r} must be {what}, got {type(value).__name__}")
    return value


def _rows(payload: Mapping[str, Any], key: str, fields: Mapping[str, tuple[type, ...]]) -> None:
    rows = _require(payload, key, (list,), "a list")
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ResultError(f"its {key}[{i}] must be an object, got {type(row).__name__}")
        for name, kinds in fields.items():
            if name not in row:
                raise ResultError(f"its {key}[{i}] has no {name!r}")
            value = row[name]
            if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
                raise ResultError(f"its {key}[{i}][{name!r}] has the wrong type ({type(value).__name__})")


_NUMBER = (numbers.Real,)


def validate_result(
    payload: Any,
    *,
    run_id: str,
    config: Mapping[str, Any],
    seed: int,
    attempt: str | None = None,
) -> dict[str, Any]:
    """Check that ``payload`` (a parsed ``result.json``) is a result of format :data:`RESULT_FORMAT` for run
    ``run_id``, trained on ``config`` with ``seed``, and, when ``attempt`` is given, written by that attempt.
    Returns it as a dict; raises :class:`ResultError` saying what is wrong (the caller adds which file)."""
    if not isinstance(payload, Mapping):
        raise ResultError(f"it is not a JSON object but {type(payload).__name__}")
    if not payload:
        raise ResultError("it is empty ({})")
    version = payload.get("format")
    if version != RESULT_FORMAT:
        raise ResultError(f"it has format {version!r}, this suite reads format {RESULT_FORMAT}")
    found = _require(payload, "run_id", (str,), "the run id")
    if found != run_id:
        raise ResultError(f"it is the result of run {found}, not of run {run_id} (a foreign result)")
    expected = config_hash(config)
    stated = _require(payload, "config_hash", (str,), "the config hash")
    carried = _require(payload, "config", (dict,), "the trained config")
    if stated != expected or config_hash(carried) != expected:
        raise ResultError(
            f"its config (hash {stated[:12]}) is not the run's config (hash {expected[:12]}): a stale or foreign result"
        )
    found_seed = _require(payload, "seed", (int,), "the seed")
    if found_seed != seed:
        raise ResultError(f"it has seed {found_seed}, the run has seed {seed}")
    if attempt is not None and payload.get("attempt") != attempt:
        raise ResultError(
            f"it was written by attempt {payload.get('attempt')!r}, not by the current attempt {attempt!r} "
            "(a stale result of an earlier attempt)"
        )
    names = _require(payload, "loss_names", (list,), "a list of loss names")
    if not all(isinstance(n, str) for n in names):
        raise ResultError("its 'loss_names' must all be strings")
    _rows(payload, "metrics", {"split": (str,), "epoch": (int,), "protocol": (str,), "name": (str,), "value": _NUMBER})
    _rows(payload, "periods", {"epoch": (int,), "period": (int,), "losses": (list,)})
    for key in ("timings", "environment"):
        _require(payload, key, (dict,), "an object")
    for name, value in payload["timings"].items():
        if value is not None and (not isinstance(value, _NUMBER) or isinstance(value, bool)):
            raise ResultError(f"its timings[{name!r}] must be a number, got {type(value).__name__}")
    resumed = payload.get("resumed_from")
    if resumed is not None and not isinstance(resumed, Mapping):
        raise ResultError(f"its 'resumed_from' must be an object or null, got {type(resumed).__name__}")
    return dict(payload)
