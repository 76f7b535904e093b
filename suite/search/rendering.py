"""What a search prints: the table of the best trials, and its log lines."""

from __future__ import annotations

import math
import sys
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from suite.search.space import as_point, require_search
from suite.search.study import _trial_point
from suite.spec import Spec


def _pm(mean: float, std: float | None, n: int) -> str:
    return f"{mean:.4g} ± {std:.2g}" if std is not None and n > 1 else f"{mean:.4g}"


# ------------------------------------------------------------------------------------------------ report


def _order(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials best first, then pruned ones by their last report, then the rest by number."""
    sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
    trials = study.get_trials(deepcopy=False)

    def last(t: FrozenTrial) -> float:
        return t.intermediate_values[t.last_step] if t.last_step is not None else math.inf

    complete = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: (sign * float(t.value or 0), t.number)
    )
    pruned = sorted((t for t in trials if t.state == TrialState.PRUNED), key=lambda t: (sign * last(t), t.number))
    rest = [t for t in trials if t.state not in (TrialState.COMPLETE, TrialState.PRUNED)]
    return complete + pruned + rest


def best_trials_table(study: optuna.Study, spec: Spec, top: int = 10) -> Any:
    """A rich table of the ``top`` best trials: complete ones by value, then pruned ones, then the rest."""
    from rich.table import Table

    search = require_search(spec)
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(1 for t in trials if t.state == state) for state in TrialState}
    caption = ", ".join(f"{n} {state.name.lower()}" for state, n in counts.items() if n)
    table = Table(
        title=f"study {search.study!r}: {search.direction} {search.objective} ({search.split}), seed mean ± std",
        caption=f"{len(trials)} trial(s): {caption}" if trials else "no trials yet",
    )
    for name, justify in (
        ("#", "right"),
        (", ".join(["λ schedule", *search.settings]), "left"),
        (f"{search.objective} ({search.split})", "right"),
        ("seeds", "right"),
        ("state", "left"),
        ("reused", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for t in _order(study)[:top]:
        point = _trial_point(t)
        label = str(t.user_attrs.get("label") or (as_point(spec, point).describe() if point else t.params))
        if t.user_attrs.get("enqueued"):
            label += " (enqueued)"
        n = len(t.user_attrs.get("seeds", []))
        if t.state == TrialState.COMPLETE and t.value is not None:
            value = _pm(t.value, t.user_attrs.get("std"), int(t.user_attrs.get("n_seeds", n)))
        elif t.last_step is not None:
            value = f"{t.intermediate_values[t.last_step]:.4g} @ epoch {t.last_step} (val)"
        else:
            value = "–"
        state = t.state.name.lower()
        if t.state == TrialState.FAIL:
            state += " (interrupted)" if t.user_attrs.get("interrupted") else ""
        reused = t.user_attrs.get("reused")
        table.add_row(str(t.number), label, value, str(n or "–"), state, f"{reused}/{n}" if reused is not None else "–")
    return table


def log_to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
