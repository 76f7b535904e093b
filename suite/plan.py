"""Planning: a :class:`~suite.spec.Spec` expands to fully resolved, content-addressed runs.

``plan(spec)`` crosses every arm (spec order: groups, then arms, then grid points) with the spec's seeds (seed
order) into :class:`PlannedRun` records. A run's identity is the sha256 of the canonical JSON of
``{"config": config.to_dict(), "seed": seed, "code": CODE_VERSION}``, never a timestamp or a position, so:

- the same arm planned again (another call, another process, another machine) gets the same id, and a finished
  run is found again;
- two arms with identical configs (Table 5(b)'s ``L``, 5(c)'s ``3 → -3`` and 5(d)'s ``I R``; or Table 3's
  DenseNet and Table 6's densenet161) share one id, hence one run and one result: the executor runs each id
  once (:func:`unique_runs`);
- changing any config value, the seed or :data:`CODE_VERSION` changes the id.

:data:`CODE_VERSION` is the package version, not the git commit: a commit that does not change numbers must not
invalidate finished runs. Bump ``mlrd_core.__version__`` when a change alters results. See ``docs/specs.md``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import mlrd_core
from mlrd_core.config import RunConfig
from mlrd_core.data.mixture import dataset_label
from mlrd_core.weighting import LeeKimOptions
from suite.spec import DESCRIBE_COLUMNS, Spec, apply_overrides

__all__ = [
    "CODE_VERSION",
    "SHORT_ID_LENGTH",
    "PlannedRun",
    "apply_overrides",
    "canonical_json",
    "describe_weighting",
    "plan",
    "run_id_for",
    "unique_runs",
]

#: The code part of every run id: the package version (not the git commit; see the module docstring).
CODE_VERSION: str = mlrd_core.__version__

#: Length of :attr:`PlannedRun.short_id` (64 bits of the sha256: collisions are negligible for any real study).
SHORT_ID_LENGTH = 16

_CHECK, _DASH = "✓", "-"


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, ASCII only, no NaN/inf."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def run_id_for(config: RunConfig, seed: int, *, code: str = CODE_VERSION) -> str:
    """The full sha256 hex run id of (config, seed, code version)."""
    payload = {"config": config.to_dict(), "seed": int(seed), "code": code}
    return hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest()


def describe_weighting(config: RunConfig) -> tuple[bool | None, bool | None, str]:
    """(init, rebalance, λ text) as Table 5 shows them.

    lee-kim: its flags, and the schedule's ``describe()`` ("3 → -3", "-3"), or "0" when rebalancing is off (λ is
    unused then, as Table 5(c)/(d) print it); equal: no init, no rebalance, λ "0" (Table 5(a)); any other method:
    (None, None, "-") (Table 5(e)).
    """
    options = config.weighting_options
    if isinstance(options, LeeKimOptions):  # the typed record RunConfig holds: nothing is parsed again
        return options.init, options.rebalance, options.schedule.describe() if options.rebalance else "0"
    if config.weighting == "equal":
        return False, False, "0"
    return None, None, _DASH


@dataclass(frozen=True)
class PlannedRun:
    """One run of the matrix: an arm of a group at one seed, with its resolved config and content id.

    ``n_losses``, ``weighting``, ``init``, ``rebalance`` and ``lam`` (the λ text) are the descriptive fields of
    the paper's tables; ``init`` / ``rebalance`` are None for methods without such flags.
    """

    run_id: str
    spec: str
    group: str
    arm: str
    seed: int
    config: RunConfig
    n_losses: int
    weighting: str
    init: bool | None
    rebalance: bool | None
    lam: str

    @property
    def short_id(self) -> str:
        """The first :data:`SHORT_ID_LENGTH` hex digits of :attr:`run_id` (for folder names and logs)."""
        return self.run_id[:SHORT_ID_LENGTH]

    def describe(self) -> dict[str, str]:
        """Display text of every column in :data:`suite.spec.DESCRIBE_COLUMNS` (``"lambda"`` is :attr:`lam`)."""

        def flag(value: bool | None) -> str:
            return "" if value is None else (_CHECK if value else _DASH)

        h, w = self.config.input_size
        out = {
            "losses": self.config.losses,
            "n_losses": str(self.n_losses),
            "weighting": self.weighting,
            "init": flag(self.init),
            "rebalance": flag(self.rebalance),
            "lambda": self.lam,
            "encoder": self.config.encoder,
            "dataset": dataset_label(self.config),
            "input_size": f"{h}×{w}",
            "batch_size": str(self.config.batch_size),
            "epochs": str(self.config.epochs),
        }
        return {column: out[column] for column in DESCRIBE_COLUMNS}


def plan(spec: Spec) -> list[PlannedRun]:
    """Every (arm, seed) of ``spec``: groups and arms in spec order, then seeds in spec order.

    Identical configs in different arms keep one entry each (tables need every arm) and share a run id; use
    :func:`unique_runs` for what to execute.
    """
    from mlrd_core.losses import select

    runs: list[PlannedRun] = []
    for group in spec.groups:
        for arm in group.arms:
            n_losses = len(select(arm.config.losses))
            init, rebalance, lam = describe_weighting(arm.config)
            for seed in spec.seeds:
                runs.append(
                    PlannedRun(
                        run_id=run_id_for(arm.config, seed),
                        spec=spec.name,
                        group=group.name,
                        arm=arm.label,
                        seed=seed,
                        config=arm.config,
                        n_losses=n_losses,
                        weighting=arm.config.weighting,
                        init=init,
                        rebalance=rebalance,
                        lam=lam,
                    )
                )
    return runs


def unique_runs(runs: Iterable[PlannedRun]) -> list[PlannedRun]:
    """The first run of each run id, in order: what an executor runs (each id once)."""
    seen: set[str] = set()
    out: list[PlannedRun] = []
    for run in runs:
        if run.run_id not in seen:
            seen.add(run.run_id)
            out.append(run)
    return out


def planned_rows(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """The store's rows of planned runs: anything with ``run_id``, ``spec``, ``group``, ``arm``, ``seed`` and a
    ``config`` (a :class:`~suite.plan.PlannedRun`, or a benchmark's tiny run)."""
    return [
        {
            "run_id": r.run_id,
            "spec": r.spec,
            "group": r.group,
            "arm": r.arm,
            "seed": r.seed,
            "config": r.config.to_dict(),
        }
        for r in runs
    ]
