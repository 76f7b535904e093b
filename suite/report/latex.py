"""The LaTeX rendering of a :class:`~suite.report.model.ReportTable` (a booktabs ``table`` float); loss-set
expressions are typeset from the set-expression parser's tree (:meth:`mlrd_core.losses.expr.Node.latex`).
"""

from __future__ import annotations

import re
from typing import Any

from mlrd_core.errors import ExpressionError
from mlrd_core.losses.expr import parse as parse_expression
from suite.report.formatting import (
    MISSING,
    CellMarkup,
    _describe,
    _latex_escape,
    format_timing,
    metric_cell_text,
)
from suite.report.legend import _difference_table, _legend, difference_legend
from suite.report.model import ReportTable, Row

_LATEX_COLOURS: dict[str, str] = {"improved": "red", "degraded": "blue"}


_LATEX_PACKAGES = r"\usepackage{booktabs,xcolor,amssymb}"


#: Descriptive columns whose values are loss-set expressions, typeset as in the paper ($\mathcal{L}_D \cup ...$).
LOSS_COLUMNS: frozenset[str] = frozenset({"losses"})


_NUMERIC = re.compile(r"[-+0-9.eE\s→−]+")


def _latex_losses(text: str) -> str | None:
    r"""A loss-set expression in the paper's notation, typeset from the parser's tree ("L_D | L_G" →
    $\mathcal{L}_{D} \cup \mathcal{L}_{G}$), or None when ``text`` does not parse (then it is escaped as plain
    text)."""
    try:
        node = parse_expression(text)
    except ExpressionError:
        return None
    return f"${node.latex()}$"


def _latex_descriptor(column: str, value: Any) -> str:
    text = _describe(value)
    if text == MISSING:
        return "--"
    if column in LOSS_COLUMNS and (math_text := _latex_losses(text)) is not None:
        return math_text
    if _NUMERIC.fullmatch(text) and any(ch.isdigit() for ch in text) and any(ch in "-→−" for ch in text):
        # numbers and schedules ("3 → -3") in math mode, so that minus signs are minus signs
        return "$" + text.replace("→", r"\rightarrow").replace("−", "-") + "$"
    return _latex_escape(text)


#: LaTeX's marks of a metric cell (:func:`~suite.report.formatting.metric_cell_text`).
LATEX_CELL = CellMarkup(
    missing="--",
    pm=r"$\pm$",
    n=lambda n: f" ($n$={n})",
    bold=lambda text: rf"\textbf{{{text}}}",
    italic=lambda text: rf"\textit{{{text}}}",
    outcome=lambda text, outcome: rf"\textcolor{{{_LATEX_COLOURS[outcome]}}}{{{text}}}",
)


def _tex_row(table: ReportTable, row: Row) -> str:
    out: list[str] = []
    for col in table.columns:
        if col.kind == "arm":
            label = _latex_escape(row.arm) + (r"$^\ddagger$" if row.few_seeds else "")
            out.append(label if row.source is None else rf"\quad\textit{{{_latex_escape(row.source)}}}")
        elif col.kind == "descriptor":
            out.append(_latex_descriptor(col.key, row.descriptors.get(col.key)) if row.source is None else "")
        elif col.kind == "n":
            out.append(str(row.n) if row.source is None else "")
        elif col.kind == "timing":
            text = format_timing(row.cells[col.key])
            text = "--" if text == MISSING else _latex_escape(text)
            out.append(text if row.source is None or text == "--" else rf"\textit{{{text}}}")
        else:
            out.append(metric_cell_text(col.key, row.cells[col.key], row, LATEX_CELL))
    return " & ".join(out) + r" \\"


def render_latex(table: ReportTable) -> str:
    """The table as a LaTeX ``table`` float (booktabs rules, bold best, red/blue against the baseline, italic
    paper rows); the caption carries the title and the legend. Needs ``\\usepackage{booktabs,xcolor,amssymb}``."""
    spec = "".join(
        "r" if c.kind in ("n", "metric", "timing") else ("l" if c.kind == "arm" or c.key in LOSS_COLUMNS else "c")
        for c in table.columns
    )
    width = len(table.columns)
    lines = [
        f"% Requires {_LATEX_PACKAGES}",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_latex_escape(table.title)}. {_legend(table, latex=True)}}}",
        rf"\label{{tab:{_latex_escape(table.name)}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(c.latex for c in table.columns) + r" \\",
        r"\midrule",
    ]
    for i, section in enumerate(table.sections):
        if i:
            lines.append(r"\midrule")
        title = _latex_escape(section.title)
        if not section.has_runs:
            title += r" --- \textit{no finished runs yet}"
        lines.append(rf"\multicolumn{{{width}}}{{l}}{{{title}}} \\")
        lines += [_tex_row(table, r) for r in section.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    header, diff_rows = _difference_table(table)
    if diff_rows:
        metric_latex = [c.latex for c in table.columns if c.kind == "metric"]
        lines += [
            r"\par\medskip",
            rf"\begin{{tabular}}{{ll{'r' * (len(header) - 2)}}}",
            r"\toprule",
            " & ".join(["Arm", "Baseline", "$n$", *metric_latex]) + r" \\",
            r"\midrule",
            *(" & ".join(_latex_escape(c) for c in r) + r" \\" for r in diff_rows),
            r"\bottomrule",
            r"\end{tabular}",
            rf"\par\footnotesize {difference_legend(table, latex=True)}",
        ]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
