"""What the renderers write under a table: the legend of its marks, and the block of differences against the
baseline with how they were estimated.
"""

from __future__ import annotations

from collections.abc import Callable

from suite.report.formatting import _FEW_SEEDS, _MARKERS, MISSING, _latex_escape, _md_escape, difference_text, pct
from suite.report.model import COLUMN_LABELS, MIN_SEEDS, ReportTable
from suite.report.statistics import BOOTSTRAP_RESAMPLES, PAIRED_BOOTSTRAP, PAIRED_T, WELCH_T


def _legend(table: ReportTable, *, latex: bool) -> str:
    def em(text: str) -> str:
        return rf"\textit{{{text}}}" if latex else f"*{text}*"

    if table.timings:
        return _timing_legend(table, latex=latex, em=em)

    pm, n = (r"$\pm$", "$n$") if latex else ("±", "n")
    parts = [
        f"Mean {pm} sample std over the {n} seeds of each arm (split {table.split}"
        + (f", protocol {', '.join(table.protocols)}" if table.protocols else "")
        + ")",
        (r"$\uparrow$/$\downarrow$" if latex else "↑/↓") + ": higher/lower is better",
        ("bold" if latex else "**bold**") + ": best mean per metric within a part (ties all bold)",
    ]
    if table.baseline is not None:
        against = _baseline_phrase(table)
        marks = r"\textcolor{red}{red}/\textcolor{blue}{blue}" if latex else "(+)/(−)"
        parts.append(
            f"{marks}: better/worse than {_latex_escape(against) if latex else against}, marked only where the "
            f"95{pct(latex)} interval of the difference excludes 0 (differences and intervals below the table)"
        )
    if table.few_seeds:
        parts.append((r"$^\ddagger$" if latex else _FEW_SEEDS) + f": fewer than {MIN_SEEDS} finished seeds")
    if table.sources:
        names = ", ".join(table.sources)
        authors = r"Lee \& Kim" if latex else "Lee & Kim"
        parts.append(
            f"{em(names)} rows: published values ({authors}, ECCV 2020), with their own "
            + ("red/blue" if latex else "(+)/(−)")
        )
    parts.append(f"{MISSING if not latex else '--'}: not available")
    legend = "; ".join(parts) + "."
    if table.data_note:
        legend += " " + (_latex_escape(table.data_note) if latex else _md_escape(table.data_note)) + "."
    return legend


def _timing_legend(table: ReportTable, *, latex: bool, em: Callable[[str], str]) -> str:
    """A timing table's legend: units, the ratio, the paper's rows, the data note."""
    legend = "seconds, mean ± std over seeds"
    if table.ratio_to:
        legend += f"; (×r): ratio of the mean to arm {table.ratio_to!r}"
    legend = _latex_escape(legend) if latex else legend
    if table.few_seeds:
        legend += "; " + (r"$^\ddagger$" if latex else _FEW_SEEDS) + f": fewer than {MIN_SEEDS} finished seeds"
    if table.sources:
        authors = r"Lee \& Kim" if latex else "Lee & Kim"
        legend += f"; {em(', '.join(table.sources))} rows: published values ({authors}, ECCV 2020)"
    if table.data_note:
        legend += ". " + (_latex_escape(table.data_note) if latex else _md_escape(table.data_note))
    return legend


def _baseline_phrase(table: ReportTable) -> str:
    """What every compared row is compared with: one arm, or "the row of (a) with the same losses"."""
    if table.baseline_arm is not None:
        return f"arm {table.baseline_arm}"
    key_label = dict((c.key, c.label) for c in table.columns).get(
        table.baseline_key, COLUMN_LABELS.get(table.baseline_key, (table.baseline_key, ""))[0]
    )
    return f"the row of {table.baseline_part} with the same {key_label.lower()}"


def difference_legend(table: ReportTable, *, latex: bool = False) -> str:
    """How the differences were estimated: the test(s), the confidence level and n."""
    tests = sorted({c.test for _, r in table.compared_rows() for c in r.cells.values() if c.test is not None})
    ns = sorted({c.n_paired for _, r in table.compared_rows() for c in r.cells.values() if c.test is not None})
    n_text = ", ".join(str(n) for n in ns) or "0"
    described = {
        PAIRED_T: "mean of the per-seed differences over the n seeds both arms ran, with its paired Student t "
        "interval (n − 1 degrees of freedom)",
        PAIRED_BOOTSTRAP: f"mean of the per-seed differences over the n seeds both arms ran, with a BCa bootstrap "
        f"interval ({BOOTSTRAP_RESAMPLES} resamples)",
        WELCH_T: "difference of the means of arms that share fewer than 2 seeds, with Welch's t interval (n: the "
        "smaller arm)",
    }
    text = (
        f"Difference = arm − baseline ({_baseline_phrase(table)}); δ in percentage points; 95{pct(latex)} "
        f"interval in brackets. Test: "
        + ("; ".join(f"{t}: {described[t]}" for t in tests) if tests else "none (fewer than 2 seeds per arm)")
        + f"; n = {n_text}. p-values are in the CSV."
    )
    return _latex_escape(text).replace(r"$-$", "$-$") if latex else text


def _difference_table(table: ReportTable) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the differences block: arm, baseline arm, n paired, one column per metric."""
    metric_cols = [c for c in table.columns if c.kind == "metric"]
    header = ["Arm", "Baseline", "n", *(c.label for c in metric_cols)]
    rows: list[list[str]] = []
    for _section, row in table.compared_rows():
        cells = [row.cells[c.key] for c in metric_cols]
        n = max((c.n_paired for c in cells if c.compared), default=0)
        texts = [
            difference_text(c.key, cell) + (f" {_MARKERS[cell.outcome]}" if cell.outcome in _MARKERS else "")
            for c, cell in zip(metric_cols, cells, strict=True)
        ]
        rows.append([row.arm, str(row.baseline_arm), str(n), *texts])
    return header, rows
