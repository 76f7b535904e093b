"""Values into rows: a worker's ``result.json`` payload checked and parsed into the store's rows
(:func:`_parse_result`), planned runs into ``runs`` / ``spec_runs`` fields, and the small value checks they share.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from suite.store._models import (
    Run,
)
from suite.store.base import (
    Membership,
    PlannedRunLike,
    RunInfo,
    RunState,
    StoreError,
)

#: Bound parameters per ``IN (...)`` list (SQLite and PostgreSQL both cap the parameters of one statement).
_CHUNK = 500


def _now() -> datetime:
    return datetime.now(UTC)


def _canonical_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON-serializable: {exc}") from exc


def _number(value: Any, where: str) -> float | None:
    """A float for the database: ``None`` and NaN become NULL, strings and other objects are refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise StoreError(f"{where} must be a number or null, got {value!r} ({type(value).__name__})")
    number = float(value)
    return None if math.isnan(number) else number


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise StoreError(f"{where} must be an integer, got {value!r} ({type(value).__name__})")
    return int(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise StoreError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _field(row: Any, key: str, where: str) -> Any:
    if not isinstance(row, Mapping):
        raise StoreError(f"{where} must be a mapping, got {type(row).__name__}")
    if key not in row:
        raise StoreError(f"{where} lacks key {key!r} (it has {sorted(row)})")
    return row[key]


def _rows(result: Mapping[str, Any], key: str) -> list[Any]:
    rows = result.get(key) or []
    if not isinstance(rows, Sequence) or isinstance(rows, str):
        raise StoreError(f"result[{key!r}] must be a list, got {type(rows).__name__}")
    return list(rows)


def _unique(keys: Iterable[tuple[Any, ...]], what: str) -> None:
    seen: set[tuple[Any, ...]] = set()
    for key in keys:
        if key in seen:
            raise StoreError(f"{what} has two rows for {key}")
        seen.add(key)


@dataclass(frozen=True)
class _Parsed:
    """A result mapping checked and flattened into the rows of each table (``run_id`` added at insert)."""

    seed: int | None
    metrics: list[dict[str, Any]]
    periods: list[dict[str, Any]]
    period_losses: list[dict[str, Any]]
    timings: list[dict[str, Any]]
    environment: list[dict[str, Any]]
    resumed_from_json: str | None


def _parse_result(result: Mapping[str, Any]) -> _Parsed:
    """Check every row of a ``RunResult.to_dict()`` before anything touches the database."""
    seed = result.get("seed")
    metrics = []
    for i, row in enumerate(_rows(result, "metrics")):
        where = f"result['metrics'][{i}]"
        metrics.append(
            {
                "split": _text(_field(row, "split", where), f"{where}['split']"),
                "epoch": _integer(_field(row, "epoch", where), f"{where}['epoch']"),
                "protocol": _text(_field(row, "protocol", where), f"{where}['protocol']"),
                "name": _text(_field(row, "name", where), f"{where}['name']"),
                "value": _number(_field(row, "value", where), f"{where}['value']"),
            }
        )
    _unique(((m["split"], m["epoch"], m["protocol"], m["name"]) for m in metrics), "result['metrics']")

    periods, period_losses = [], []
    for i, row in enumerate(_rows(result, "periods")):
        where = f"result['periods'][{i}]"
        epoch = _integer(_field(row, "epoch", where), f"{where}['epoch']")
        period = _integer(_field(row, "period", where), f"{where}['period']")
        periods.append(
            {
                "epoch": epoch,
                "period": period,
                "action": _text(_field(row, "action", where), f"{where}['action']"),
                "lam": _number(_field(row, "lam", where), f"{where}['lam']"),
                "total": _number(_field(row, "total", where), f"{where}['total']"),
                "images": _integer(_field(row, "images", where), f"{where}['images']"),
            }
        )
        losses = _field(row, "losses", where)
        if not isinstance(losses, Sequence) or isinstance(losses, str):
            raise StoreError(f"{where}['losses'] must be a list, got {type(losses).__name__}")
        for j, loss in enumerate(losses):
            lwhere = f"{where}['losses'][{j}]"
            period_losses.append(
                {
                    "epoch": epoch,
                    "period": period,
                    "loss": _text(_field(loss, "name", lwhere), f"{lwhere}['name']"),
                    "position": j,
                    "mean": _number(_field(loss, "mean", lwhere), f"{lwhere}['mean']"),
                    "weight": _number(_field(loss, "weight", lwhere), f"{lwhere}['weight']"),
                    "contribution": _number(_field(loss, "contribution", lwhere), f"{lwhere}['contribution']"),
                }
            )
    _unique(((p["epoch"], p["period"]) for p in periods), "result['periods']")
    _unique(((p["epoch"], p["period"], p["loss"]) for p in period_losses), "result['periods'] losses")

    timings_in = result.get("timings") or {}
    environment_in = result.get("environment") or {}
    for key, value in (("timings", timings_in), ("environment", environment_in)):
        if not isinstance(value, Mapping):
            raise StoreError(f"result[{key!r}] must be a mapping, got {type(value).__name__}")
    timings = [
        {"name": _text(name, "a result['timings'] key"), "value": _number(value, f"result['timings'][{name!r}]")}
        for name, value in timings_in.items()
    ]
    environment = [
        {
            "key": _text(key, "a result['environment'] key"),
            "value": value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str),
        }
        for key, value in environment_in.items()
    ]
    resumed = result.get("resumed_from")
    return _Parsed(
        seed=None if seed is None else _integer(seed, "result['seed']"),
        metrics=metrics,
        periods=periods,
        period_losses=period_losses,
        timings=timings,
        environment=environment,
        resumed_from_json=None if resumed is None else _canonical_json(resumed, "result['resumed_from']"),
    )


def _planned_fields(run: PlannedRunLike | Mapping[str, Any]) -> dict[str, Any]:
    """``run_id, spec, group, arm, seed, config`` of a planned run given as an object or a mapping."""
    names = ("run_id", "spec", "group", "arm", "seed", "config")
    if isinstance(run, Mapping):
        missing = [n for n in names if n not in run]
        if missing:
            raise StoreError(f"planned run {dict(run)!r} lacks {missing}; a planned run has {list(names)}")
        values = {n: run[n] for n in names}
    else:
        try:
            values = {n: getattr(run, n) for n in names}
        except AttributeError as exc:
            raise StoreError(f"planned run {run!r} has no {exc.name!r}; a planned run has {list(names)}") from exc
    run_id = _text(values["run_id"], "planned run_id")
    where = f"planned run {run_id}"
    config = values["config"]
    if not isinstance(config, Mapping):
        raise StoreError(f"{where}: config must be a mapping, got {type(config).__name__}")
    return {
        "run_id": run_id,
        "spec": _text(values["spec"], f"{where}: spec"),
        "group_name": _text(values["group"], f"{where}: group"),
        "arm": _text(values["arm"], f"{where}: arm"),
        "seed": _integer(values["seed"], f"{where}: seed"),
        "config_json": _canonical_json(dict(config), f"{where}: config"),
    }


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _info(run: Run, memberships: Sequence[Membership]) -> RunInfo:
    return RunInfo(
        run_id=run.run_id,
        spec=run.spec,
        group=run.group_name,
        arm=run.arm,
        seed=run.seed,
        config=json.loads(run.config_json),
        state=RunState(run.state),
        attempts=run.attempts,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        heartbeat_at=run.heartbeat_at,
        worker=run.worker,
        workdir=run.workdir,
        error=run.error,
        resumed_from=None if run.resumed_from_json is None else json.loads(run.resumed_from_json),
        memberships=tuple(memberships),
        owner=run.owner,
        token=run.token,
    )
