"""``python -m suite losses [EXPR] [--json]``: which of the 78 losses a set expression selects.

EXPR is a set expression in the paper's notation (``"L_D | L_G"``, ``"L^3 ∪ L^4 ∪ L^5"``, ``"{l_D^0}"``,
``"l_M*^2"``; see docs/loss-space.md); the default ``L`` selects all 78. Prints the canonical form of the
expression, the count, the names and a breakdown by family (rows) and scale (columns). ``--json`` prints
``{"expression", "count", "names", "by_set", "by_scale"}`` instead.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from mlrd_core.losses.expr import parse, select
from mlrd_core.losses.registry import LOSS_BY_NAME, LOSS_SETS, SCALES, TERM_GROUP, TERMS

#: The family sets of the paper, in table order.
FAMILY_SETS: tuple[str, ...] = ("L_D", "L_M", "L_G", "L_N")
#: The scale sets, in column order.
SCALE_SETS: tuple[str, ...] = tuple(f"L^{k}" for k in SCALES)

_EMPTY_CELL = "·"


def _family_terms(family_set: str) -> tuple[str, ...]:
    family = family_set.removeprefix("L_")
    return tuple(t for t in TERMS if TERM_GROUP[t] == family)


def selection_dict(expression: str, names: Sequence[str]) -> dict[str, Any]:
    """The machine-readable summary of a selection (what ``--json`` prints).

    ``by_set`` and ``by_scale`` map each family set (``L_D`` ..) and scale set (``L^0`` ..) to the number of
    selected losses in it.
    """
    chosen = set(names)
    return {
        "expression": expression,
        "count": len(names),
        "names": list(names),
        "by_set": {s: len(chosen.intersection(LOSS_SETS[s])) for s in FAMILY_SETS},
        "by_scale": {s: len(chosen.intersection(LOSS_SETS[s])) for s in SCALE_SETS},
    }


def _cell(selected_terms: Sequence[str], family_size: int) -> str:
    """A whole family (or none of it) is a count; part of one is its terms (``{l_r^0, l_c^0}``: ``r c``)."""
    if not selected_terms:
        return _EMPTY_CELL
    if len(selected_terms) == family_size:
        return str(family_size)
    return " ".join(selected_terms)


def selection_table(names: Sequence[str]) -> Table:
    """Rows = families with their terms, columns = scales 0..5 and the total; cells as in ``_cell``."""
    chosen = set(names)
    table = Table(title="selected losses by family and scale", title_justify="left")
    table.add_column("set")
    table.add_column("terms")
    for k in SCALES:
        table.add_column(f"L^{k}", justify="right")
    table.add_column("total", justify="right")
    for family_set in FAMILY_SETS:
        terms = _family_terms(family_set)
        cells = []
        for k in SCALES:
            selected = [t for t in terms if f"l_{t}^{k}" in chosen]
            cells.append(_cell(selected, len(terms)))
        in_family = len(chosen.intersection(LOSS_SETS[family_set]))
        table.add_row(family_set, " ".join(terms), *cells, f"{in_family}/{len(LOSS_SETS[family_set])}")
    table.add_section()
    per_scale = [f"{len(chosen.intersection(LOSS_SETS[s]))}/{len(LOSS_SETS[s])}" for s in SCALE_SETS]
    table.add_row("L", "", *per_scale, f"{len(chosen)}/{len(LOSS_BY_NAME)}")
    return table


def selection_renderable(canonical_expression: str, names: Sequence[str]) -> Group:
    """The human-readable report: header line, the names, the family x scale table."""
    header = Text.assemble(
        (canonical_expression, "bold"),
        "  selects ",
        (str(len(names)), "bold"),
        f" loss{'' if len(names) == 1 else 'es'}",
    )
    return Group(header, Text(", ".join(names)), Text(""), selection_table(names))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "losses",
        help="show the losses a set expression selects",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "expression",
        nargs="?",
        default="L",
        metavar="EXPR",
        help="set expression, e.g. 'L_D | L_G' or '(L_G & L^0) | {l_D^0, l_N^0}' (default: L, all 78)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of the table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = select(args.expression)  # raises the located error for a bad or empty expression
    if args.json:
        print(json.dumps(selection_dict(args.expression, names), indent=2, ensure_ascii=False))
    else:
        Console().print(selection_renderable(str(parse(args.expression)), names))
    return 0
