"""Display precision and text: how a value, a difference or a timing prints (shared by the renderers and by the
best / improved decisions), descriptive values, and Markdown / LaTeX escaping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlrd_core.metrics import HIGHER_IS_BETTER
from suite.report.model import Cell, Outcome, Row

MISSING = "–"  # an en dash, as in the paper's tables


_MARKERS: dict[str, str] = {"improved": "(+)", "degraded": "(−)"}


_FEW_SEEDS = "‡"


def _is_delta(metric: str) -> bool:
    return metric.startswith("delta")


def format_value(metric: str, value: float) -> str:
    """A metric value as the tables print it: δ in percent with one decimal (0.8691 → "86.9"), every other metric
    with three decimals, ``MISSING`` for NaN."""
    if not math.isfinite(value):
        return MISSING
    if _is_delta(metric):
        return f"{100.0 * value:.1f}"
    return f"{value:.3f}"


def format_difference(metric: str, value: float) -> str:
    """A signed difference as the tables print it: δ in percentage points with one decimal (0.031 → "+3.1"), every
    other metric with three decimals, ``MISSING`` for NaN."""
    if not math.isfinite(value):
        return MISSING
    text = f"{100.0 * value:+.1f}" if _is_delta(metric) else f"{value:+.3f}"
    return text.replace("-", "−")


def difference_text(metric: str, cell: Cell) -> str:
    """``"+3.1 [−0.8, +7.0]"``: a compared cell's difference and its interval (``MISSING`` when there is none)."""
    if not cell.compared:
        return MISSING
    low, high = format_difference(metric, cell.diff_low), format_difference(metric, cell.diff_high)
    return f"{format_difference(metric, cell.diff)} [{low}, {high}]"


def _direction(metric: str) -> bool | None:
    return HIGHER_IS_BETTER.get(metric)


def _outcome(metric: str, value: float, baseline: float) -> Outcome | None:
    """Improved / degraded / tie of ``value`` against ``baseline``, at the displayed precision."""
    higher = _direction(metric)
    if higher is None or not (math.isfinite(value) and math.isfinite(baseline)):
        return None
    if format_value(metric, value) == format_value(metric, baseline):
        return "tie"
    return "improved" if (value > baseline) == higher else "degraded"


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple | np.ndarray):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _describe(value: Any) -> str:
    """A descriptive value as text: ✓ / – for flags (as the paper), "3 → -3" for schedules, – when missing."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "✓" if value else MISSING
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(_describe(v) for v in value)
    return str(value).replace("->", "→")


def format_timing(cell: Cell) -> str:
    """A timing cell's text: ``mean ± std`` (four and two significant digits; the mean alone from one seed or on a
    reference row) and `` (×r)``, the ratio to the ``ratio_to`` arm; ``MISSING`` without a value."""
    if not math.isfinite(cell.mean):
        return MISSING
    text = f"{cell.mean:.4g} ± {cell.std:.2g}" if cell.n > 1 else f"{cell.mean:.4g}"
    if math.isfinite(cell.ratio):
        text += f" (×{cell.ratio:.2f})"
    return text


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")


_LATEX_CHARS: dict[str, str] = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "|": r"$|$",
    "<": r"$<$",
    ">": r"$>$",
    "→": r"$\rightarrow$",
    "✓": r"\checkmark",
    "–": "--",
    "−": "$-$",
    "±": r"$\pm$",
    "λ": r"$\lambda$",
    "δ": r"$\delta$",
    "ℓ": r"$\ell$",
    "ℒ": r"$\mathcal{L}$",
    "∪": r"$\cup$",
    "∩": r"$\cap$",
    "∖": r"$\setminus$",
    "↳": r"$\hookrightarrow$",
    "×": r"$\times$",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_CHARS.get(ch, ch) for ch in text)


def pct(latex: bool) -> str:
    return r"\,\%" if latex else " %"


@dataclass(frozen=True)
class CellMarkup:
    """How one format marks what a metric cell shows: the missing value, ``±``, a cell's own n, bold (best),
    italic (a reference row) and an improved / degraded outcome."""

    missing: str
    pm: str
    n: Callable[[int], str]
    bold: Callable[[str], str]
    italic: Callable[[str], str]
    outcome: Callable[[str, str], str]


def metric_cell_text(metric: str, cell: Cell, row: Row, markup: CellMarkup) -> str:
    """What a metric cell shows, in every format: the mean (and ``± std``, and its own n where it differs from the
    row's) on a measured row, bold when best; the value in italics on a reference row; then the outcome mark."""
    if not math.isfinite(cell.mean):
        return markup.missing
    text = format_value(metric, cell.mean)
    if row.source is None:
        if math.isfinite(cell.std):
            text += f" {markup.pm} {format_value(metric, cell.std)}"
        if cell.n != row.n:
            text += markup.n(cell.n)
        if cell.best:
            text = markup.bold(text)
    else:
        text = markup.italic(text)
    if cell.outcome in _MARKERS:
        text = markup.outcome(text, cell.outcome)
    return text
