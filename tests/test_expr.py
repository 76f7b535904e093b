"""Set expressions over loss names (mlrd_core.losses.expr): grammar, precedence, spellings, AST, errors."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlrd_core.errors import ExpressionError, MLRDError
from mlrd_core.losses import select as select_from_package
from mlrd_core.losses.expr import (
    GRAMMAR,
    GRAMMAR_RULES,
    Difference,
    Glob,
    Intersection,
    LocatedExpressionError,
    LossRef,
    Node,
    SetLiteral,
    SetRef,
    Union,
    parse,
    select,
)
from mlrd_core.losses.registry import (
    LOSS_NAMES,
    LOSS_SETS,
    LOSS_SPECS,
    SCALES,
    TERM_DESCRIPTIONS,
    TERM_GROUP,
    TERMS,
    LossSpec,
)

HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def names_of(*sets: str) -> set[str]:
    return set().union(*(LOSS_SETS[s] for s in sets))


def in_canonical_order(names: set[str] | frozenset[str]) -> tuple[str, ...]:
    return tuple(n for n in LOSS_NAMES if n in names)


# ----------------------------------------------------------------------------------------------------------
# The paper's expressions
# ----------------------------------------------------------------------------------------------------------

TABLE5 = [
    ("{l_D^0}", 1),
    ("{l_D^0, l_M^0, l_r^0, l_c^0}", 4),
    ("{l_D^0, l_r^0, l_c^0, l_N^0}", 4),
    ("L_D | L_N", 24),
    ("L_D | L_M", 30),
    ("L_D | L_G", 36),
    ("L^0", 13),
    ("L^0 | L^1 | L^2", 39),
    ("L^3 | L^4 | L^5", 39),
    ("L", 78),
]


@pytest.mark.parametrize(("expr", "count"), TABLE5)
def test_table5_expressions_select_the_papers_number_of_losses(expr: str, count: int) -> None:
    assert len(select(expr)) == count


def test_table5_in_unicode_notation() -> None:
    assert select("{ℓ_D^0, ℓ_M^0, ℓ_r^0, ℓ_c^0}") == ("l_D^0", "l_M^0", "l_r^0", "l_c^0")
    assert select("ℒ_D ∪ ℒ_G") == select("L_D | L_G")
    assert select("ℒ^3 ∪ ℒ^4 ∪ ℒ^5") == in_canonical_order(names_of("L^3", "L^4", "L^5"))
    assert select("ℒ") == LOSS_NAMES


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("L_D | L_G", names_of("L_D", "L_G")),
        ("L^3 | L^4 | L^5", names_of("L^3", "L^4", "L^5")),
        ("L - L_N", set(LOSS_NAMES) - names_of("L_N")),
        ("(L_G & L^0) | {l_D^0, l_N^0}", {"l_r^0", "l_c^0", "l_rr^0", "l_rc^0", "l_cc^0", "l_D^0", "l_N^0"}),
        ("L_D ∪ L_G", names_of("L_D", "L_G")),
        ("ℒ^0 ∪ ℒ^1", names_of("L^0", "L^1")),
        ("{ℓ_D^0}", {"l_D^0"}),
    ],
)
def test_design_examples(expr: str, expected: set[str]) -> None:
    assert select(expr) == in_canonical_order(expected)


def test_package_reexports_select() -> None:
    assert select_from_package is select


def test_result_is_canonical_order_without_duplicates() -> None:
    assert select("{l_N^0, l_D^0, l_D^0} | {l_D^0}") == ("l_D^0", "l_N^0")
    assert select("L^5 | L^0 | L_D") == in_canonical_order(names_of("L^0", "L^5", "L_D"))
    picked = select("l_Nc^* | L_D | {l_M17^2, l_M17^2}")
    assert picked == tuple(sorted(set(picked), key=LOSS_NAMES.index))


# ----------------------------------------------------------------------------------------------------------
# Precedence and associativity
# ----------------------------------------------------------------------------------------------------------


def test_intersection_binds_tighter_than_union() -> None:
    assert parse("L_D | L_G & L^0") == parse("L_D | (L_G & L^0)")
    assert parse("L_G & L^0 | L_D") == parse("(L_G & L^0) | L_D")
    # The grouping matters for these sets: 6 + 5 against 1.
    assert len(select("L_D | L_G & L^0")) == 11
    assert len(select("(L_D | L_G) & L^0")) == 6


def test_intersection_binds_tighter_than_difference() -> None:
    assert parse("L - L_N & L^0") == parse("L - (L_N & L^0)")
    assert len(select("L - L_N & L^0")) == 75
    assert len(select("(L - L_N) & L^0")) == 10


def test_difference_and_union_share_a_level_left_to_right() -> None:
    assert parse("L - L_N | L_N") == parse("(L - L_N) | L_N")
    assert len(select("L - L_N | L_N")) == 78
    assert len(select("L - (L_N | L_N)")) == 60
    assert parse("L_D | L_N - L_N") == parse("(L_D | L_N) - L_N")
    assert len(select("L_D | L_N - L_N")) == 6


def test_difference_is_left_associative() -> None:
    assert parse("L - L_N - L_N") == parse("(L - L_N) - L_N")
    assert parse("L - L_N - L_N") == Difference(Difference(SetRef("L"), SetRef("L_N")), SetRef("L_N"))
    assert len(select("L - L_N - L_N")) == 60
    assert len(select("L - (L_N - L_N)")) == 78


def test_intersection_is_left_associative() -> None:
    assert parse("L & L_D & L^0") == Intersection(Intersection(SetRef("L"), SetRef("L_D")), SetRef("L^0"))


def _chain_oracle(operands: list[frozenset[str]], operators: list[str]) -> frozenset[str]:
    """Reference semantics of a chain without parentheses: '&' runs first, then '|' and '-' left to right."""
    terms = [operands[0]]
    low_ops: list[str] = []
    for op, operand in zip(operators, operands[1:], strict=True):
        if op == "&":
            terms[-1] = terms[-1] & operand
        else:
            low_ops.append(op)
            terms.append(operand)
    result = terms[0]
    for op, term in zip(low_ops, terms[1:], strict=True):
        result = result | term if op == "|" else result - term
    return result


@HYPOTHESIS
@given(
    st.lists(st.sampled_from(sorted(LOSS_SETS)), min_size=1, max_size=7).flatmap(
        lambda sets: st.tuples(
            st.just(sets), st.lists(st.sampled_from("|&-"), min_size=len(sets) - 1, max_size=len(sets) - 1)
        )
    )
)
def test_unparenthesized_chains_follow_the_precedence_rules(chain: tuple[list[str], list[str]]) -> None:
    sets, operators = chain
    text = sets[0] + "".join(f" {op} {s}" for op, s in zip(operators, sets[1:], strict=True))
    expected = _chain_oracle([frozenset(LOSS_SETS[s]) for s in sets], operators)
    assert parse(text).as_set() == expected


# ----------------------------------------------------------------------------------------------------------
# Spellings: Unicode operators and names, whitespace, LaTeX braces
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "ascii"),
    [("|", "|"), ("∪", "|"), ("&", "&"), ("∩", "&"), ("-", "-"), ("∖", "-"), ("\\", "-"), ("−", "-")],
)
def test_every_operator_spelling_equals_its_ascii_twin(spelling: str, ascii: str) -> None:
    expr = f"L_G {spelling} L^0"
    assert parse(expr) == parse(f"L_G {ascii} L^0")
    assert select(expr) == select(f"L_G {ascii} L^0")
    assert str(parse(expr)) == f"L_G {ascii} L^0"


@pytest.mark.parametrize(
    ("spelling", "ascii"),
    [
        ("ℒ", "L"),
        ("ℒ_D", "L_D"),
        ("ℒ^4", "L^4"),
        ("{ℓ_D^0}", "{l_D^0}"),
        ("ℓ_M17^2", "l_M17^2"),
        ("ℓ_M*^2", "l_M*^2"),
    ],
)
def test_unicode_names_equal_ascii(spelling: str, ascii: str) -> None:
    assert parse(spelling) == parse(ascii)
    assert str(parse(spelling)) == ascii


@pytest.mark.parametrize(
    ("spelling", "ascii"),
    [("L^{3}", "L^3"), ("L_{D}", "L_D"), ("ℒ^{0} ∪ ℒ^{1}", "L^0 | L^1"), ("{l_{M17}^{2}}", "{l_M17^2}")],
)
def test_latex_braces_around_sub_and_superscripts(spelling: str, ascii: str) -> None:
    assert parse(spelling) == parse(ascii)
    assert str(parse(spelling)) == ascii


@pytest.mark.parametrize(
    "spelling",
    ["L_D|L_G", "  L_D \t|\n L_G  ", "(L_D)|(L_G)", "L _ D | L_ G", "\nL_D\n|\nL_G\n"],
)
def test_whitespace_is_insignificant(spelling: str) -> None:
    assert parse(spelling) == Union(SetRef("L_D"), SetRef("L_G"))


def test_whitespace_inside_names_and_literals() -> None:
    assert select("L ^ 3") == select("L^3")
    assert select("{ l_D^0 ,l_N ^ 0 }") == ("l_D^0", "l_N^0")


# ----------------------------------------------------------------------------------------------------------
# Literals, bare names and globs
# ----------------------------------------------------------------------------------------------------------


def test_bare_loss_name_is_a_singleton() -> None:
    assert parse("l_D^0") == LossRef("l_D^0")
    assert select("l_D^0 | l_N^0") == select("{l_D^0, l_N^0}")


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("l_M*^2", ("l_M^2", "l_M5^2", "l_M17^2", "l_M65^2")),
        ("l_N?^5", ("l_Nr^5", "l_Nc^5")),
        ("l_*^0", LOSS_SETS["L^0"]),
        ("l_*^[345]", in_canonical_order(names_of("L^3", "L^4", "L^5"))),
        ("l_D^*", LOSS_SETS["L_D"]),
        ("l_?^1", ("l_D^1", "l_M^1", "l_r^1", "l_c^1", "l_N^1")),
    ],
)
def test_globs_bare_and_in_braces(glob: str, expected: tuple[str, ...]) -> None:
    assert parse(glob) == Glob(glob)
    assert select(glob) == expected
    assert select("{" + glob + "}") == expected


def test_globs_mix_with_names_in_a_literal() -> None:
    assert select("{l_M*^2, l_D^0}") == ("l_D^0", "l_M^2", "l_M5^2", "l_M17^2", "l_M65^2")
    assert parse("{l_M*^2, l_D^0}") == SetLiteral((Glob("l_M*^2"), LossRef("l_D^0")))


def test_globs_are_case_sensitive() -> None:
    assert select("l_N*^0") == ("l_N^0", "l_Nr^0", "l_Nc^0")
    with pytest.raises(ExpressionError, match="no term matches 'n\\*'"):
        select("l_n*^0")


# ----------------------------------------------------------------------------------------------------------
# The AST
# ----------------------------------------------------------------------------------------------------------


def test_parse_builds_the_expected_tree() -> None:
    assert parse("(L_G & L^0) | {l_D^0, l_N^0}") == Union(
        Intersection(SetRef("L_G"), SetRef("L^0")), SetLiteral((LossRef("l_D^0"), LossRef("l_N^0")))
    )
    assert parse("L_D ∪ ℒ_G") == Union(SetRef("L_D"), SetRef("L_G"))


def test_nodes_are_frozen_and_spans_do_not_affect_equality() -> None:
    node = parse("  L_D | L_G")
    assert isinstance(node, Union)
    assert node.span == (2, 11)
    assert node.left.span == (2, 5)
    assert node == Union(SetRef("L_D"), SetRef("L_G"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.left = SetRef("L")  # type: ignore[misc]
    assert hash(node) == hash(Union(SetRef("L_D"), SetRef("L_G")))


def test_evaluate_is_canonical_and_may_be_empty() -> None:
    assert parse("{l_N^0, l_D^0}").evaluate() == ("l_D^0", "l_N^0")
    assert parse("L_D & L_G").evaluate() == ()
    assert parse("(L_D & L_G) | L_N").evaluate() == LOSS_SETS["L_N"]


def test_nodes_built_by_hand_validate_names() -> None:
    with pytest.raises(ExpressionError, match="unknown set name 'L_X'"):
        SetRef("L_X")
    with pytest.raises(ExpressionError, match="unknown loss name 'l_X\\^0'"):
        LossRef("l_X^0")
    with pytest.raises(ExpressionError, match="at least one loss name"):
        SetLiteral(())


@pytest.mark.parametrize(
    ("expr", "canonical"),
    [
        ("L_D ∪ ℒ_G", "L_D | L_G"),
        ("(L_G & L^0) | {l_D^0, l_N^0}", "(L_G & L^0) | {l_D^0, l_N^0}"),
        ("L_G & L^0 | {ℓ_D^0,l_N^0}", "(L_G & L^0) | {l_D^0, l_N^0}"),
        ("((L - L_N))", "L - L_N"),
        ("L - (L_N - L_D)", "L - (L_N - L_D)"),
        ("(L - L_N) - L_D", "L - L_N - L_D"),
        ("L - (L_N | L_D)", "L - (L_N | L_D)"),
        ("(L_D | L_G) & L^0", "(L_D | L_G) & L^0"),
        ("L & (L_D & L^0)", "L & (L_D & L^0)"),
        ("L_D ∖ L^0 ∩ L^1", "L_D - (L^0 & L^1)"),
        ("l_M*^2", "l_M*^2"),
    ],
)
def test_str_is_canonical_ascii_and_round_trips(expr: str, canonical: str) -> None:
    node = parse(expr)
    assert str(node) == canonical
    assert parse(canonical) == node
    assert str(node).isascii()


# Random expression trees: every leaf spelling, every operator spelling, full parentheses; the oracle is
# Python's set algebra on the leaves. A case is (text, expected names).
Case = tuple[str, frozenset[str]]

# Each glob with its meaning as a predicate on the registry entries (an oracle independent of fnmatch).
_GLOBS: dict[str, Callable[[LossSpec], bool]] = {
    "l_M*^2": lambda s: s.term.startswith("M") and s.scale == 2,
    "l_*^0": lambda s: s.scale == 0,
    "l_N?^5": lambda s: s.term in ("Nr", "Nc") and s.scale == 5,
    "l_r*^[12]": lambda s: s.term in ("r", "rr", "rc") and s.scale in (1, 2),
    "l_D^*": lambda s: s.term == "D",
}
# Operator spelling -> Python's set operation.
_OPS: dict[str, Callable[[frozenset[str], frozenset[str]], frozenset[str]]] = {
    "|": frozenset.__or__,
    "∪": frozenset.__or__,
    "&": frozenset.__and__,
    "∩": frozenset.__and__,
    "-": frozenset.__sub__,
    "∖": frozenset.__sub__,
    "\\": frozenset.__sub__,
    "−": frozenset.__sub__,
}


@st.composite
def _leaves(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["set", "literal", "glob"]))
    if kind == "set":
        name = draw(st.sampled_from(sorted(LOSS_SETS)))
        head = draw(st.sampled_from(["L", "ℒ"]))
        return head + name[1:], frozenset(LOSS_SETS[name])
    if kind == "literal":
        names = draw(st.lists(st.sampled_from(LOSS_NAMES), min_size=1, max_size=4))
        head = draw(st.sampled_from(["l", "ℓ"]))
        return "{" + ", ".join(head + n[1:] for n in names) + "}", frozenset(names)
    pattern = draw(st.sampled_from(sorted(_GLOBS)))
    return pattern, frozenset(s.name for s in LOSS_SPECS if _GLOBS[pattern](s))


def _combine(children: st.SearchStrategy[Case]) -> st.SearchStrategy[Case]:
    def build(left: Case, op: str, right: Case) -> Case:
        return f"({left[0]} {op} {right[0]})", _OPS[op](left[1], right[1])

    return st.builds(build, children, st.sampled_from(sorted(_OPS)), children)


_EXPRESSIONS = st.recursive(_leaves(), _combine, max_leaves=8)


@HYPOTHESIS
@given(_EXPRESSIONS)
def test_random_expressions_match_python_set_algebra(case: Case) -> None:
    text, expected = case
    assert parse(text).as_set() == expected
    if expected:
        assert select(text) == in_canonical_order(expected)
    else:
        with pytest.raises(ExpressionError, match="selects no losses"):
            select(text)


@HYPOTHESIS
@given(_EXPRESSIONS)
def test_random_expressions_round_trip_through_str(case: Case) -> None:
    node = parse(case[0])
    text = str(node)
    assert text.isascii()
    assert parse(text) == node
    assert str(parse(text)) == text


@HYPOTHESIS
@given(_EXPRESSIONS, st.data())
def test_random_whitespace_between_tokens_changes_nothing(case: Case, data: st.DataObject) -> None:
    text = case[0]
    # Insert whitespace around every operator, parenthesis, brace and comma.
    pieces = re.split(r"([()|&\-∪∩∖\\{},])", text)
    spaced = "".join(piece + data.draw(st.sampled_from(["", " ", "\t", "\n  "])) for piece in pieces)
    assert parse(spaced) == parse(text)


@HYPOTHESIS
@given(st.sets(st.sampled_from(LOSS_NAMES), min_size=1, max_size=20))
def test_literal_of_any_names_selects_exactly_them(names: set[str]) -> None:
    assert select("{" + ", ".join(sorted(names)) + "}") == in_canonical_order(names)


# ----------------------------------------------------------------------------------------------------------
# The grammar lives in the parse functions' docstrings
# ----------------------------------------------------------------------------------------------------------


def test_grammar_rules_come_from_docstrings() -> None:
    from mlrd_core.losses import expr

    assert set(GRAMMAR_RULES) == {
        "selection",
        "expression",
        "intersection",
        "atom",
        "literal",
        "set_name",
        "loss",
    }
    for rule, text in GRAMMAR_RULES.items():
        function = getattr(expr, f"_parse_{rule}")
        assert function.__doc__.strip() == text
        assert text.startswith(f"{rule} := ")
        assert re.sub(r"\s+", " ", text) in re.sub(r" +", " ", GRAMMAR)
    assert GRAMMAR_RULES["intersection"] == "intersection := atom ('&' atom)*"


# ----------------------------------------------------------------------------------------------------------
# Errors: reason, offending token, caret, rule, suggestions
# ----------------------------------------------------------------------------------------------------------


def _error(expr: str) -> LocatedExpressionError:
    with pytest.raises(LocatedExpressionError) as info:
        select(expr)
    return info.value


def _caret(exc: LocatedExpressionError) -> tuple[int, int]:
    """(column, width) of the marker line: '^' under the first offending column, '~' under the rest."""
    lines = str(exc).splitlines()
    marker = lines[2].removeprefix("    ")
    column = marker.index("^")
    return column, len(marker) - column


# expr, substrings of the message, caret column, rule
ERRORS: list[tuple[str, list[str], int, str]] = [
    ("", ["empty expression", "'L_D | L_G'"], 0, "selection"),
    ("   ", ["empty expression"], 0, "selection"),
    ("L_D | L_X", ["unknown set name 'L_X'", "sets are L, L_D, L_M, L_G, L_N, L^0..L^5"], 6, "set_name"),
    ("L_d", ["unknown set name 'L_d'", "did you mean 'L_D'?"], 0, "set_name"),
    ("L^7", ["unknown scale 7 in set name 'L^7'", "scales are 0..5"], 0, "set_name"),
    ("L_D^0", ["'L_D^0' is not a set name", "write 'L_D & L^0'"], 0, "set_name"),
    ("L_M17", ["'L_M17' is not a set name", "M17 is a term of L_M", "'l_M17^*'"], 0, "set_name"),
    ("L^*", ["contains a wildcard", "globs go over loss names"], 0, "set_name"),
    ("L^", ["incomplete name 'L^'", "expected a scale after '^'"], 0, "set_name"),
    (
        "l_M16^0",
        ["unknown loss name 'l_M16^0'", "no term 'M16'", "did you mean 'l_M17^0', 'l_M5^0'"],
        0,
        "loss",
    ),
    ("{l_D^0, l_M16^2}", ["no term 'M16'", "'l_M17^2'", "terms are D, M, M5, M17, M65, r, c"], 8, "loss"),
    ("l_nr^3", ["no term 'nr'", "did you mean 'l_Nr^3'"], 0, "loss"),
    ("L_D | l_D^7", ["unknown scale 7 in loss name 'l_D^7'", "scales are 0..5"], 6, "loss"),
    ("l_D", ["malformed loss name 'l_D'", "l_<term>^<scale>", "'l_D^0'", "'L_D'"], 0, "loss"),
    (
        "l_X*^0",
        ["glob 'l_X*^0' matches no loss name", "no term matches 'X*'", "terms are D, M, M5"],
        0,
        "loss",
    ),
    (
        "l_D^[6-9]",
        ["glob 'l_D^[6-9]' matches no loss name", "no scale matches '[6-9]'", "scales are 0..5"],
        0,
        "loss",
    ),
    ("(L_D | L_G", ["unbalanced parentheses", "'(' at column 1 is never closed"], 0, "atom"),
    ("L_D | (L_G & L^0", ["'(' at column 7 is never closed"], 6, "atom"),
    ("(L_D L_G)", ["expected ')' to close '(' at column 1, or an operator, got 'L_G'"], 5, "atom"),
    ("L_D | L_G)", ["unbalanced parentheses", "')' has no matching '('"], 9, "selection"),
    ("{l_D^0", ["unbalanced braces", "'{' at column 1 is never closed"], 0, "literal"),
    ("l_D^0}", ["unbalanced braces", "'}' has no matching '{'"], 5, "selection"),
    ("{l_D^0 l_N^0}", ["expected '}' to close '{' at column 1, or ',', got 'l_N^0'"], 7, "literal"),
    ("{}", ["empty set literal"], 1, "literal"),
    ("{l_D^0,}", ["trailing ','"], 7, "literal"),
    ("{L_D}", ["set name 'L_D' inside a set literal"], 1, "literal"),
    ("{l_D^0, +}", ["expected a loss name or glob", "got '+'"], 8, "literal"),
    (
        "L_D L_G",
        ["unexpected 'L_G' after a complete expression", "expected an operator (|, &, -)"],
        4,
        "selection",
    ),
    ("L_D, L_G", ["',' outside a set literal"], 3, "selection"),
    ("L_D #", ["unexpected '#'"], 4, "selection"),
    ("L_D |", ["dangling operator '|'", "needs an operand on its right"], 4, "atom"),
    ("L_D ∪ ", ["dangling operator '∪'"], 4, "atom"),
    ("| L_D", ["operator '|' has no left operand"], 0, "atom"),
    ("(& L_D)", ["operator '&' has no left operand"], 1, "atom"),
    ("L_D | & L_G", ["expected an operand between '|' and '&'", "two operators in a row"], 6, "atom"),
    ("L_D | )", ["expected an operand after '|'", "got ')'"], 6, "atom"),
    ("()", ["empty parentheses"], 1, "atom"),
    ("L_D | foo", ["expected an operand after '|'", "got 'foo'"], 6, "atom"),
    ("L_D \\cup L_G", ["LaTeX command '\\cup' is not supported", "'|' or '∪'"], 5, "atom"),
    ("\\mathcal{L}_D", ["LaTeX command '\\mathcal' is not supported"], 0, "atom"),
    (
        "L_D & L_G",
        ["selects no losses", "'L_D & L_G' is empty", "L_D (6 losses) and L_G (30 losses)"],
        0,
        "selection",
    ),
    (
        "(L_D - L) & L_N",
        ["selects no losses", "'L_D - L' is empty", "every loss of L_D (6 losses) is in L"],
        0,
        "selection",
    ),
    ("ℒ_D ∩ ℒ_G", ["selects no losses", "'L_D & L_G' is empty"], 0, "selection"),
    ("L_D\t|\nL_X", ["unknown set name 'L_X'"], 6, "set_name"),
]


@pytest.mark.parametrize(("expr", "parts", "column", "rule"), ERRORS, ids=[repr(c[0]) for c in ERRORS])
def test_error_messages(expr: str, parts: list[str], column: int, rule: str) -> None:
    exc = _error(expr)
    message = str(exc)
    for part in parts:
        assert part in exc.reason, f"{part!r} not in {exc.reason!r}"
    lines = message.splitlines()
    assert len(lines) == 4
    assert lines[0] == exc.reason
    assert lines[1] == "    " + re.sub(r"\s", " ", expr)
    assert _caret(exc)[0] == column == exc.span[0]
    assert lines[3] == f"  in rule {GRAMMAR_RULES[rule]}"
    assert exc.rule == rule


def test_error_types() -> None:
    exc = _error("L_X")
    assert isinstance(exc, ExpressionError)
    assert isinstance(exc, MLRDError)
    assert isinstance(exc, ValueError)


def test_caret_spans_the_offending_token() -> None:
    exc = _error("L_D | l_M16^0 | L_G")
    assert _caret(exc) == (6, len("l_M16^0"))
    assert exc.token == "l_M16^0"
    assert str(exc).splitlines()[2] == "          ^~~~~~~"


def test_caret_counts_unicode_code_points() -> None:
    exc = _error("ℒ_D ∪ ℒ_X")
    assert _caret(exc) == (6, 3)


def test_unclosed_group_is_underlined_to_the_end() -> None:
    exc = _error("L_D | (L_G & L^0")
    assert _caret(exc) == (6, 10)


def test_empty_result_points_at_the_operation_that_emptied_the_set() -> None:
    exc = _error("L_N & (L_D | L_G)")
    assert "'L_N & (L_D | L_G)' is empty" in exc.reason
    assert _caret(exc) == (0, len("L_N & (L_D | L_G)"))
    exc = _error("L_N & (L_D & L_G)")
    assert "'L_D & L_G' is empty" in exc.reason
    assert _caret(exc) == (6, len("(L_D & L_G)"))
    # An empty operand that is not the cause is not blamed: here the outer '&' empties the set.
    exc = _error("(L^0 | L^1) & ((L_D & L_G) | L^2)")
    assert "'(L^0 | L^1) & ((L_D & L_G) | L^2)' is empty" in exc.reason
    assert _caret(exc)[0] == 0
    exc = _error("(L_D & L_G) | (L_N - L)")
    assert "'L_D & L_G' is empty" in exc.reason


def test_empty_intermediate_results_are_fine() -> None:
    assert select("(L_D & L_G) | L_N") == LOSS_SETS["L_N"]


def test_suggestions_attribute() -> None:
    assert _error("l_M16^0").suggestions[:2] == ("l_M17^0", "l_M5^0")
    assert _error("L_d").suggestions == ("L_D",)
    assert _error("L_D^0").suggestions == ("L_D & L^0",)
    assert _error("L_X").suggestions == ()


def test_non_string_input() -> None:
    with pytest.raises(ExpressionError, match="a set expression is a string, got int"):
        select(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("term", TERMS)
@pytest.mark.parametrize("scale", SCALES)
def test_every_loss_name_parses_to_itself(term: str, scale: int) -> None:
    name = f"l_{term}^{scale}"
    assert select(name) == (name,)
    assert select(f"ℓ_{{{term}}}^{{{scale}}}") == (name,)


def test_every_named_set_parses_to_itself() -> None:
    for name, members in LOSS_SETS.items():
        assert parse(name) == SetRef(name)
        assert select(name) == members
        assert isinstance(parse(name), Node)


# ----------------------------------------------------------------------------------------------------------
# Robustness, and docs/loss-space.md kept current
# ----------------------------------------------------------------------------------------------------------

_FUZZ_PIECES = [*"LlℒℓDMGNrc_^0123456789{}()|&-∪∩∖\\,*?[] \t#", "L_D", "l_D^0", "L^3", "l_M17^2", "\\cup"]


@HYPOTHESIS
@given(st.lists(st.sampled_from(_FUZZ_PIECES), max_size=12).map("".join))
def test_any_text_selects_something_or_raises_a_located_error(text: str) -> None:
    try:
        names = select(text)
    except LocatedExpressionError as exc:
        lines = str(exc).splitlines()
        assert lines[1] == "    " + re.sub(r"\s", " ", text)
        assert 0 <= exc.span[0] <= len(text)
        return
    assert names == in_canonical_order(set(names))
    assert parse(str(parse(text))) == parse(text)


DOC = Path(__file__).resolve().parents[1] / "docs" / "loss-space.md"


def test_doc_grammar_is_the_parsers_grammar() -> None:
    assert "```\n" + GRAMMAR + "\n```" in DOC.read_text(encoding="utf-8")


def test_doc_table_of_losses_is_the_registry() -> None:
    header = "| term | family | meaning | " + " | ".join(f"k={k}" for k in SCALES) + " |"
    rows = [
        f"| `{spec_term}` | `L_{TERM_GROUP[spec_term]}` | {TERM_DESCRIPTIONS[spec_term]} | "
        + " | ".join(f"`l_{spec_term}^{k}`" for k in SCALES)
        + " |"
        for spec_term in TERMS
    ]
    table = "\n".join([header, "|---|---|---|" + "---|" * len(SCALES), *rows])
    assert table in DOC.read_text(encoding="utf-8")


def test_doc_example_counts() -> None:
    rows = re.findall(r"^\| `([^`]+)` \| (\d+) \|", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert len(rows) >= 18
    for expr, count in rows:
        assert len(select(expr.replace("\\|", "|"))) == int(count), expr
