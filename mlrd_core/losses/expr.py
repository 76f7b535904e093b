"""Set expressions over the 78 loss names, in the paper's notation: ``L_D | L_G``, ``ℒ^0 ∪ ℒ^1``, ``{ℓ_D^0}``.

A handwritten tokenizer and recursive-descent parser in the manner of pypa/packaging's ``_tokenizer.py`` and
``_parser.py``: the tokenizer is asked for the token a rule expects next (``check`` / ``read``), and each
``_parse_*`` function carries its grammar rule as its docstring. The grammar (EBNF; ``GRAMMAR`` holds it)::

    selection    := expression END
    expression   := intersection (('|' | '-') intersection)*
    intersection := atom ('&' atom)*
    atom         := '(' expression ')' | literal | set_name | loss
    literal      := '{' loss (',' loss)* '}'
    set_name     := 'L' | 'L_D' | 'L_M' | 'L_G' | 'L_N' | 'L^' SCALE
    loss         := 'l_' TERM '^' SCALE | GLOB

Tokens and their spellings (every Unicode spelling has an ASCII twin, and ``str()`` of a parsed expression
gives the ASCII one):

- union ``|`` or ``∪``; intersection ``&`` or ``∩``; difference ``-``, ``∖``, ``\\`` or ``−`` (U+2212, as
  copied from typeset text);
- ``L`` or ``ℒ`` starts a set name, ``l`` or ``ℓ`` starts a loss name or glob;
- ``TERM`` is one of ``D M M5 M17 M65 r c rr rc cc N Nr Nc`` (case-sensitive), ``SCALE`` one of ``0..5``;
- a ``GLOB`` is a loss name with shell wildcards ``*``, ``?``, ``[...]`` (``fnmatch``): ``l_M*^2``,
  ``l_*^0``, ``l_N?^5``, ``l_*^[345]``. It is allowed bare and inside braces.

Decisions:

- Precedence: ``&`` binds tighter than ``|`` and ``-``, which share one level and associate to the left, so
  ``A - B | C`` is ``(A - B) | C`` and ``A | B & C`` is ``A | (B & C)`` (docs/loss-space.md, "Precedence";
  note that this is not Python's precedence, where ``-`` binds tighter than ``&``).
- Whitespace is insignificant everywhere, also inside a name around ``_`` and ``^`` (``L ^ 3`` is ``L^3``).
- LaTeX-style braces around a subscript or superscript are accepted, since the paper writes
  ``\\mathcal{L}^{3}``: ``L^{3}``, ``L_{D}``, ``l_{M17}^{2}``. LaTeX commands (``\\cup``, ``\\mathcal``) are
  not; they get a hint.
- A bare loss name is a one-element set: ``l_D^0 | L_G`` is ``{l_D^0} | L_G``.
- ``L_D^0`` is not a set name (the paper never writes it); the error suggests ``L_D & L^0``.
- A set literal needs at least one element and takes no trailing comma; set names are not allowed inside it.
- A name or glob that selects nothing is a syntax error (a typo, almost always), and so is an expression whose
  result is empty (``L_D & L_G``): :func:`select` never returns an empty tuple. Empty intermediate results are
  fine (``(L_D & L_G) | L_N``). ``Node.evaluate`` itself may return an empty tuple.
- Errors are :class:`LocatedExpressionError` (an :class:`~mlrd_core.errors.ExpressionError`): the reason with
  the offending token and, where one exists, a ``difflib``/domain suggestion, then the expression with a caret
  under the offending token, then the grammar rule that failed. Columns count code points; whitespace in the
  echoed expression is shown as single spaces so that the caret lines up.
- The AST is made of frozen dataclasses whose equality ignores source positions, so
  ``parse("A | (B & C)") == parse("A | B & C")``. ``str()`` writes ASCII, one space around operators, the
  parentheses the precedence needs plus, for readers who expect Python's precedence, parentheses around every
  ``&`` inside ``|`` or ``-``; ``parse(str(node)) == node`` for every parsed ``node``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import fnmatch
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from mlrd_core.errors import ExpressionError
from mlrd_core.losses.registry import LOSS_BY_NAME, LOSS_SETS, SCALES, TERMS, canonical, list_losses

__all__ = [
    "GRAMMAR",
    "GRAMMAR_RULES",
    "Difference",
    "Glob",
    "Intersection",
    "LocatedExpressionError",
    "LossRef",
    "Node",
    "SetLiteral",
    "SetRef",
    "Union",
    "parse",
    "select",
]

# ----------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------


class LocatedExpressionError(ExpressionError):
    """An expression error tied to a position: reason, expression with a caret, grammar rule.

    Attributes: ``reason`` (first line), ``source`` (the expression), ``span`` (``[start, end)`` code-point
    columns of the offending text), ``rule`` (grammar rule name), ``token`` (offending text, ``""`` at the
    end), ``suggestions`` (near names, possibly empty).
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str,
        span: tuple[int, int],
        rule: str,
        token: str,
        suggestions: Sequence[str] = (),
    ) -> None:
        self.reason = reason
        self.source = source
        self.span = span
        self.rule = rule
        self.token = token
        self.suggestions = tuple(suggestions)
        super().__init__(self._format())

    def _format(self) -> str:
        start, end = self.span
        shown = re.sub(r"\s", " ", self.source)
        marker = " " * start + "^" + "~" * max(0, end - start - 1)
        rule = GRAMMAR_RULES.get(self.rule, self.rule)
        return f"{self.reason}\n    {shown}\n    {marker}\n  in rule {rule}"


def _quote_all(names: Sequence[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _did_you_mean(suggestions: Sequence[str]) -> str:
    return f"; did you mean {_quote_all(suggestions)}?" if suggestions else ""


# ----------------------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------------------

_WILDCARDS = re.compile(r"[*?\[]")
# One piece of a name: letters, digits, wildcards or a [...] character class.
_BODY = r"(?:[A-Za-z0-9*?]|\[[^\]\s]*\])"
# A subscript or superscript, optionally in LaTeX braces, with optional whitespace around '_' and '^'.
_PART = rf"\s*[_^]\s*(?:\{{[^{{}}]*\}}|{_BODY}*)"
_NAME_TAIL = rf"{_BODY}*(?:{_PART})*"

#: Token name -> pattern, matched at the current position (after whitespace) when a rule asks for it.
RULES: dict[str, re.Pattern[str]] = {
    "LPAREN": re.compile(r"\("),
    "RPAREN": re.compile(r"\)"),
    "LBRACE": re.compile(r"\{"),
    "RBRACE": re.compile(r"\}"),
    "COMMA": re.compile(r","),
    "UNION": re.compile(r"[|∪]"),
    "INTERSECTION": re.compile(r"[&∩]"),
    "DIFFERENCE": re.compile(r"[-−∖\\]"),
    "SET_NAME": re.compile(rf"[Lℒ]{_NAME_TAIL}"),
    "LOSS_NAME": re.compile(rf"[lℓ]{_NAME_TAIL}"),
    "END": re.compile(r"\Z"),
}
_WS = re.compile(r"\s+")
# What to quote as "the offending token" when no rule matches: a word, or one character.
_ANY = re.compile(r"[A-Za-z0-9_^*?]+|\S")
_OPERATORS = ("UNION", "INTERSECTION", "DIFFERENCE")
_LATEX_COMMANDS = {
    "cup": "'|' or '∪'",
    "cap": "'&' or '∩'",
    "setminus": "'-' or '∖'",
    "mathcal": "'L' or 'ℒ'",
    "ell": "'l' or 'ℓ'",
}


@dataclass(frozen=True)
class Token:
    """A token: its rule name, its text as written, and its start column in the expression."""

    name: str
    text: str
    position: int

    @property
    def span(self) -> tuple[int, int]:
        return (self.position, self.position + max(1, len(self.text)))


class _Tokenizer:
    """Context-sensitive tokenizer: a parse rule checks for the token it expects next, then reads it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.position = 0
        self.next_token: Token | None = None
        self.previous: Token | None = None

    def _skip_whitespace(self) -> None:
        match = _WS.match(self.source, self.position)
        if match is not None:
            self.position = match.end()

    def check(self, name: str, *, peek: bool = False) -> bool:
        """Whether the next token is a ``name``; unless ``peek``, it is then loaded and must be read."""
        assert self.next_token is None, f"cannot check {name!r}: {self.next_token!r} was not read"
        self._skip_whitespace()
        match = RULES[name].match(self.source, self.position)
        if match is None:
            return False
        if not peek:
            self.next_token = Token(name, match[0], self.position)
        return True

    def read(self) -> Token:
        """Consume the token loaded by the last successful :meth:`check`."""
        token = self.next_token
        assert token is not None, "read() without a successful check()"
        self.position += len(token.text)
        self.next_token = None
        self.previous = token
        return token

    def offending(self) -> Token:
        """The next token of whatever kind, without consuming it (for error messages)."""
        assert self.next_token is None
        self._skip_whitespace()
        for name, pattern in RULES.items():
            match = pattern.match(self.source, self.position)
            if match is not None:
                return Token(name, match[0], self.position)
        match = _ANY.match(self.source, self.position)
        assert match is not None  # not at the end (END matched above) and not at whitespace
        return Token("UNKNOWN", match[0], self.position)

    def error(
        self,
        reason: str,
        *,
        rule: str,
        token: Token,
        span: tuple[int, int] | None = None,
        suggestions: Sequence[str] = (),
    ) -> LocatedExpressionError:
        return LocatedExpressionError(
            reason,
            source=self.source,
            span=token.span if span is None else span,
            rule=rule,
            token=token.text,
            suggestions=suggestions,
        )

    @contextlib.contextmanager
    def enclosing(self, opening: Token, *, closing: str, closing_text: str, rule: str) -> Iterator[None]:
        """Parse the body of a ``(...)`` or ``{...}`` group; afterwards expect ``closing`` or explain."""
        yield
        if self.check(closing):
            self.read()
            return
        bad = self.offending()
        where = f"{opening.text!r} at column {opening.position + 1}"
        if bad.name == "END":
            kind = "parentheses" if opening.text == "(" else "braces"
            raise self.error(
                f"unbalanced {kind}: {where} is never closed",
                rule=rule,
                token=opening,
                span=(opening.position, len(self.source)),
            )
        what = "an operator" if closing == "RPAREN" else "','"
        raise self.error(
            f"expected {closing_text!r} to close {where}, or {what}, got {bad.text!r}", rule=rule, token=bad
        )


# ----------------------------------------------------------------------------------------------------------
# AST
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node(ABC):
    """A node of a parsed set expression; ``span`` (its source columns) takes no part in equality."""

    span: tuple[int, int] = field(default=(0, 0), compare=False, repr=False, kw_only=True)
    #: Binding strength for ``__str__``: atoms 3, ``&`` 2, ``|`` and ``-`` 1.
    precedence: ClassVar[int] = 3

    @abstractmethod
    def as_set(self) -> frozenset[str]:
        """The selected loss names as a set."""

    def evaluate(self) -> tuple[str, ...]:
        """The selected loss names in canonical order (possibly empty; :func:`select` rejects that)."""
        return canonical(self.as_set())

    @abstractmethod
    def __str__(self) -> str:
        """The canonical ASCII spelling, which parses back to an equal node."""

    @abstractmethod
    def latex(self) -> str:
        r"""The paper's notation in LaTeX math (without ``$``): ``\mathcal{L}_{D} \cup \mathcal{L}_{G}``,
        ``\{ \ell_{D}^{0} , \ell_{N}^{0} \}``; parentheses as in ``str()``, and around mixed ``∪`` / ``∖``."""


@dataclass(frozen=True)
class SetRef(Node):
    """A named set of the paper: ``L``, ``L_D``, ``L_M``, ``L_G``, ``L_N``, ``L^0`` .. ``L^5``."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in LOSS_SETS:
            raise ExpressionError(f"unknown set name {self.name!r}; sets are {', '.join(LOSS_SETS)}")

    def as_set(self) -> frozenset[str]:
        return frozenset(LOSS_SETS[self.name])

    def __str__(self) -> str:
        return self.name

    def latex(self) -> str:
        return r"\mathcal{L}" + _latex_scripts(self.name[1:])


@dataclass(frozen=True)
class LossRef(Node):
    """One loss by its canonical name, e.g. ``l_M17^2``."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in LOSS_BY_NAME:
            raise ExpressionError(f"unknown loss name {self.name!r}; names look like 'l_D^0', 'l_M17^2'")

    def as_set(self) -> frozenset[str]:
        return frozenset((self.name,))

    def __str__(self) -> str:
        return self.name

    def latex(self) -> str:
        return r"\ell" + _latex_scripts(self.name[1:])


@dataclass(frozen=True)
class Glob(Node):
    """The loss names matching a shell-style pattern (``fnmatch``, case-sensitive), e.g. ``l_M*^2``."""

    pattern: str

    def as_set(self) -> frozenset[str]:
        return frozenset(list_losses(self.pattern))

    def __str__(self) -> str:
        return self.pattern

    def latex(self) -> str:
        return r"\ell" + _latex_scripts(self.pattern[1:])


@dataclass(frozen=True)
class SetLiteral(Node):
    """``{a, b, ...}``: the union of its loss names and globs, kept in the order written."""

    items: tuple[LossRef | Glob, ...]

    def __post_init__(self) -> None:
        if not self.items:
            raise ExpressionError("a set literal needs at least one loss name, e.g. {l_D^0}")

    def as_set(self) -> frozenset[str]:
        return frozenset(name for item in self.items for name in item.as_set())

    def __str__(self) -> str:
        return "{" + ", ".join(str(item) for item in self.items) + "}"

    def latex(self) -> str:
        return r"\{ " + " , ".join(item.latex() for item in self.items) + r" \}"


@dataclass(frozen=True)
class _Binary(Node):
    left: Node
    right: Node
    symbol: ClassVar[str]

    latex_symbol: ClassVar[str]

    def _parenthesized(self, *, mixed: bool = False) -> tuple[bool, bool]:
        """Whether the left and the right operand are written in parentheses (by ``str()`` and ``latex()``).

        Left-associative: a right operand of the same level needs parentheses, a left one does not. An '&'
        inside '|' or '-' gets them too, though it binds tighter: readers used to Python's precedence (where '-'
        binds tighter than '&') should not have to know ours. With ``mixed`` (typeset notation, where ∪ and ∖
        have no agreed precedence) a left operand with another operator gets them as well: ``(A ∖ B) ∪ C``.
        """
        left = isinstance(self.left, _Binary) and (
            self.left.precedence != self.precedence or (mixed and type(self.left) is not type(self))
        )
        return left, isinstance(self.right, _Binary)

    def __str__(self) -> str:
        (left, right), (left_p, right_p) = (str(self.left), str(self.right)), self._parenthesized()
        return f"{f'({left})' if left_p else left} {self.symbol} {f'({right})' if right_p else right}"

    def latex(self) -> str:
        (left, right), (left_p, right_p) = (self.left.latex(), self.right.latex()), self._parenthesized(mixed=True)
        return f"{f'( {left} )' if left_p else left} {self.latex_symbol} {f'( {right} )' if right_p else right}"


@dataclass(frozen=True)
class Union(_Binary):
    """``left | right`` (also written ``∪``)."""

    symbol: ClassVar[str] = "|"
    latex_symbol: ClassVar[str] = r"\cup"
    precedence: ClassVar[int] = 1

    def as_set(self) -> frozenset[str]:
        return self.left.as_set() | self.right.as_set()


@dataclass(frozen=True)
class Difference(_Binary):
    """``left - right`` (also written ``∖``, ``\\`` or ``−``)."""

    symbol: ClassVar[str] = "-"
    latex_symbol: ClassVar[str] = r"\setminus"
    precedence: ClassVar[int] = 1

    def as_set(self) -> frozenset[str]:
        return self.left.as_set() - self.right.as_set()


@dataclass(frozen=True)
class Intersection(_Binary):
    """``left & right`` (also written ``∩``); binds tighter than ``|`` and ``-``."""

    symbol: ClassVar[str] = "&"
    latex_symbol: ClassVar[str] = r"\cap"
    precedence: ClassVar[int] = 2

    def as_set(self) -> frozenset[str]:
        return self.left.as_set() & self.right.as_set()


_SCRIPT = re.compile(r"([_^])([^_^]+)")


def _latex_scripts(text: str) -> str:
    """``_M17^2`` → ``_{M17}^{2}``: each subscript and superscript of a canonical name (or pattern) in braces."""
    return "".join(f"{mark}{{{body}}}" for mark, body in _SCRIPT.findall(text))


_BINARY: dict[str, type[_Binary]] = {"UNION": Union, "DIFFERENCE": Difference, "INTERSECTION": Intersection}


# ----------------------------------------------------------------------------------------------------------
# Parser: one function per grammar rule, the rule in its docstring
# ----------------------------------------------------------------------------------------------------------


def _parse_selection(tokenizer: _Tokenizer) -> Node:
    """selection := expression END"""
    if tokenizer.check("END", peek=True):
        raise tokenizer.error(
            "empty expression: write a set expression such as 'L_D | L_G', 'L^0' or '{l_D^0}'",
            rule="selection",
            token=Token("END", "", 0),
            span=(0, max(1, len(tokenizer.source))),
        )
    node = _parse_expression(tokenizer)
    if tokenizer.check("END"):
        tokenizer.read()
        return node
    bad = tokenizer.offending()
    if bad.name == "RPAREN":
        reason = "unbalanced parentheses: ')' has no matching '('"
    elif bad.name == "RBRACE":
        reason = "unbalanced braces: '}' has no matching '{'"
    elif bad.name == "COMMA":
        reason = "',' outside a set literal: list loss names inside {...} and combine sets with '|'"
    else:
        expected = "expected an operator (|, &, -) or the end"
        reason = f"unexpected {bad.text!r} after a complete expression; {expected}"
    raise tokenizer.error(reason, rule="selection", token=bad)


def _parse_expression(tokenizer: _Tokenizer) -> Node:
    """expression := intersection (('|' | '-') intersection)*"""
    node = _parse_intersection(tokenizer)
    while True:
        for name in ("UNION", "DIFFERENCE"):
            if tokenizer.check(name):
                tokenizer.read()
                right = _parse_intersection(tokenizer)
                node = _BINARY[name](node, right, span=(node.span[0], right.span[1]))
                break
        else:
            return node


def _parse_intersection(tokenizer: _Tokenizer) -> Node:
    """intersection := atom ('&' atom)*"""
    node = _parse_atom(tokenizer)
    while tokenizer.check("INTERSECTION"):
        tokenizer.read()
        right = _parse_atom(tokenizer)
        node = Intersection(node, right, span=(node.span[0], right.span[1]))
    return node


def _parse_atom(tokenizer: _Tokenizer) -> Node:
    """atom := '(' expression ')' | literal | set_name | loss"""
    if tokenizer.check("LPAREN"):
        opening = tokenizer.read()
        with tokenizer.enclosing(opening, closing="RPAREN", closing_text=")", rule="atom"):
            node = _parse_expression(tokenizer)
        assert tokenizer.previous is not None
        return dataclasses.replace(node, span=(opening.position, tokenizer.previous.span[1]))
    if tokenizer.check("LBRACE", peek=True):
        return _parse_literal(tokenizer)
    if tokenizer.check("SET_NAME"):
        return _parse_set_name(tokenizer, tokenizer.read())
    if tokenizer.check("LOSS_NAME"):
        return _parse_loss(tokenizer, tokenizer.read())
    raise _missing_operand(tokenizer)


def _parse_literal(tokenizer: _Tokenizer) -> SetLiteral:
    """literal := '{' loss (',' loss)* '}'"""
    found = tokenizer.check("LBRACE")  # not inside an assert: it loads the token, and python -O drops asserts
    assert found, "_parse_literal called without a '{' next"
    opening = tokenizer.read()
    items: list[LossRef | Glob] = []
    with tokenizer.enclosing(opening, closing="RBRACE", closing_text="}", rule="literal"):
        items.append(_parse_literal_item(tokenizer, opening))
        while tokenizer.check("COMMA"):
            tokenizer.read()
            items.append(_parse_literal_item(tokenizer, opening))
    assert tokenizer.previous is not None
    return SetLiteral(tuple(items), span=(opening.position, tokenizer.previous.span[1]))


def _parse_literal_item(tokenizer: _Tokenizer, opening: Token) -> LossRef | Glob:
    if tokenizer.check("LOSS_NAME"):
        return _parse_loss(tokenizer, tokenizer.read())
    bad = tokenizer.offending()
    previous = tokenizer.previous
    if bad.name == "SET_NAME":
        reason = (
            f"set name {bad.text!r} inside a set literal: braces list loss names; "
            f"combine sets outside them, e.g. '{bad.text} | {{l_D^0}}'"
        )
    elif bad.name == "END":
        raise tokenizer.error(
            f"unbalanced braces: '{{' at column {opening.position + 1} is never closed",
            rule="literal",
            token=opening,
            span=(opening.position, len(tokenizer.source)),
        )
    elif bad.name == "RBRACE" and previous is opening:
        reason = "empty set literal '{}': list at least one loss name, e.g. {l_D^0}"
    elif bad.name == "RBRACE":
        reason = "trailing ',' in a set literal: expected a loss name after it"
    else:
        reason = f"expected a loss name or glob (e.g. l_D^0, l_M*^2) in the set literal, got {bad.text!r}"
    raise tokenizer.error(reason, rule="literal", token=bad)


def _parse_set_name(tokenizer: _Tokenizer, token: Token) -> SetRef:
    """set_name := 'L' | 'L_D' | 'L_M' | 'L_G' | 'L_N' | 'L^' SCALE"""
    name = _normalize(token.text)
    if name in LOSS_SETS:
        return SetRef(name, span=token.span)
    reason, suggestions = _explain_set_name(token.text, name)
    raise tokenizer.error(reason, rule="set_name", token=token, suggestions=suggestions)


def _parse_loss(tokenizer: _Tokenizer, token: Token) -> LossRef | Glob:
    """loss := 'l_' TERM '^' SCALE | GLOB"""
    name = _normalize(token.text)
    if _WILDCARDS.search(name):
        if list_losses(name):
            return Glob(name, span=token.span)
        raise tokenizer.error(_explain_empty_glob(token.text, name), rule="loss", token=token)
    if name in LOSS_BY_NAME:
        return LossRef(name, span=token.span)
    reason, suggestions = _explain_loss_name(token.text, name)
    raise tokenizer.error(reason, rule="loss", token=token, suggestions=suggestions)


def _missing_operand(tokenizer: _Tokenizer) -> LocatedExpressionError:
    """The error for an ``atom`` position that holds no operand."""
    bad = tokenizer.offending()
    previous = tokenizer.previous
    latex = _latex_hint(tokenizer.source, bad, previous)
    if latex:
        return tokenizer.error(latex, rule="atom", token=bad)
    after = f"after {previous.text!r}" if previous is not None else "at the start"
    if bad.name in _OPERATORS:
        if previous is None or previous.name == "LPAREN":
            reason = f"operator {bad.text!r} has no left operand"
        else:
            between = f"between {previous.text!r} and {bad.text!r}"
            reason = f"expected an operand {between}, got two operators in a row"
    elif bad.name == "END" and previous is not None and previous.name in _OPERATORS:
        return tokenizer.error(
            f"dangling operator {previous.text!r} at the end: it needs an operand on its right",
            rule="atom",
            token=previous,
        )
    elif bad.name == "RPAREN" and previous is not None and previous.name == "LPAREN":
        reason = "empty parentheses '()': expected an expression inside them"
    else:
        got = "the end of the expression" if bad.name == "END" else repr(bad.text)
        reason = (
            f"expected an operand {after}: a set name (L, L_D, L_M, L_G, L_N, L^0..L^5), a loss name or glob "
            f"(l_D^0, l_M*^2), '{{...}}' or '(...)'; got {got}"
        )
    return tokenizer.error(reason, rule="atom", token=bad)


# ----------------------------------------------------------------------------------------------------------
# Names: normalization and explanations of unknown ones
# ----------------------------------------------------------------------------------------------------------

_LATEX_GROUP = re.compile(r"([_^])\{([^{}]*)\}")
_SET_SCALE = re.compile(r"L\^(\d+)")
_SET_FAMILY_SCALE = re.compile(r"(L_[A-Za-z0-9]+)\^(\d+)")
_SET_SUBSCRIPT = re.compile(r"L_([A-Za-z0-9]+)")
_LOSS_PARTS = re.compile(r"l_([^_^]+)\^([^_^]+)")
_M_WINDOW = re.compile(r"M(\d+)")


def _normalize(text: str) -> str:
    """ASCII spelling of a name token: no whitespace, no LaTeX braces, ``ℒ`` -> ``L``, ``ℓ`` -> ``l``."""
    text = _WS.sub("", text)
    text = _LATEX_GROUP.sub(r"\1\2", text)
    return text.replace("ℒ", "L").replace("ℓ", "l")


def _scales_text() -> str:
    return f"{SCALES[0]}..{SCALES[-1]}"


def _sets_text() -> str:
    named = [s for s in LOSS_SETS if not s.startswith("L^")]
    return ", ".join(named) + f", L^{SCALES[0]}..L^{SCALES[-1]}"


def _incomplete(text: str, name: str, example: str) -> str:
    what = "a scale" if name.endswith("^") else "a subscript"
    return f"incomplete name {text!r}: expected {what} after {name[-1]!r}, as in {example!r}"


def _suggest_terms(term: str) -> list[str]:
    """Terms near ``term``: same letters in another case, the nearest M windows by size, then difflib."""
    found = [t for t in TERMS if t.lower() == term.lower()]
    window = _M_WINDOW.fullmatch(term)
    if window and not found:
        size = int(window[1])
        windows = sorted((t for t in TERMS if _M_WINDOW.fullmatch(t)), key=lambda t: abs(int(t[1:]) - size))
        found += windows[:2]
    found += difflib.get_close_matches(term, TERMS, n=3, cutoff=0.6)
    return list(dict.fromkeys(found))[:3]


def _explain_set_name(text: str, name: str) -> tuple[str, list[str]]:
    if name.endswith(("_", "^")):
        return _incomplete(text, name, "L^0" if name.endswith("^") else "L_D"), []
    if _WILDCARDS.search(name):
        return (
            f"set name {text!r} contains a wildcard; globs go over loss names, e.g. 'l_*^[345]' or 'l_M*^2'",
            [],
        )
    scale = _SET_SCALE.fullmatch(name)
    if scale:
        return f"unknown scale {scale[1]} in set name {text!r}; scales are {_scales_text()}", []
    both = _SET_FAMILY_SCALE.fullmatch(name)
    if both and both[1] in LOSS_SETS and int(both[2]) in SCALES:
        hint = f"{both[1]} & L^{both[2]}"
        reason = f"{text!r} is not a set name; for the {both[1]} losses at scale {both[2]} write {hint!r}"
        return reason, [hint]
    sub = _SET_SUBSCRIPT.fullmatch(name)
    if sub and sub[1] in TERMS:
        family = next(s for s in ("L_D", "L_M", "L_G", "L_N") if f"l_{sub[1]}^0" in LOSS_SETS[s])
        glob = f"l_{sub[1]}^*"
        return (
            f"{text!r} is not a set name; {sub[1]} is a term of {family}: write {glob!r} for it at every"
            f" scale or {family!r} for the whole family",
            [glob, family],
        )
    suggestions = [s for s in LOSS_SETS if s.lower() == name.lower()]
    suggestions += difflib.get_close_matches(name, list(LOSS_SETS), n=3, cutoff=0.7)
    suggestions = list(dict.fromkeys(suggestions))[:3]
    return f"unknown set name {text!r}{_did_you_mean(suggestions)} (sets are {_sets_text()})", suggestions


def _explain_loss_name(text: str, name: str) -> tuple[str, list[str]]:
    if name.endswith(("_", "^")):
        return _incomplete(text, name, "l_D^0"), []
    parts = _LOSS_PARTS.fullmatch(name)
    if parts:
        term, scale = parts[1], parts[2]
        if term not in TERMS:
            known_scale = scale if scale.isdigit() and int(scale) in SCALES else str(SCALES[0])
            suggestions = [f"l_{t}^{known_scale}" for t in _suggest_terms(term)]
            return (
                f"unknown loss name {text!r}: no term {term!r}{_did_you_mean(suggestions)} "
                f"(terms are {', '.join(TERMS)})",
                suggestions,
            )
        return f"unknown scale {scale} in loss name {text!r}; scales are {_scales_text()}", []
    tips: list[str] = []
    bare = re.fullmatch(r"l_([A-Za-z0-9]+)", name)
    if bare and bare[1] in TERMS:
        tips.append(f"l_{bare[1]}^0")
        tips.append(f"l_{bare[1]}^*")
    if "L" + name[1:] in LOSS_SETS:
        tips.append("L" + name[1:])
    tips += difflib.get_close_matches(name, list(LOSS_BY_NAME), n=3, cutoff=0.75)
    tips = list(dict.fromkeys(tips))[:3]
    return (
        f"malformed loss name {text!r}: a loss is l_<term>^<scale>, e.g. l_D^0, l_M17^2{_did_you_mean(tips)}",
        tips,
    )


def _explain_empty_glob(text: str, pattern: str) -> str:
    head = f"glob {text!r} matches no loss name"
    terms = f"terms are {', '.join(TERMS)}"
    scales = f"scales are {_scales_text()}"
    parts = _LOSS_PARTS.fullmatch(pattern)
    if parts:
        term_ok = any(fnmatch.fnmatchcase(t, parts[1]) for t in TERMS)
        scale_ok = any(fnmatch.fnmatchcase(str(k), parts[2]) for k in SCALES)
        if not term_ok:
            return f"{head}: no term matches {parts[1]!r} ({terms})"
        if not scale_ok:
            return f"{head}: no scale matches {parts[2]!r} ({scales})"
    return f"{head}; loss names are l_<term>^<scale>, {terms}, {scales}"


def _latex_hint(source: str, bad: Token, previous: Token | None) -> str:
    """A hint when the user pasted LaTeX (``\\cup``, ``\\mathcal{L}``), else ``""``."""
    for start in (bad.position, bad.position - 1, previous.position if previous else -1):
        match = re.match(r"\\([A-Za-z]+)", source[start:]) if start >= 0 else None
        if match and match[1] in _LATEX_COMMANDS:
            return f"LaTeX command '\\{match[1]}' is not supported: write {_LATEX_COMMANDS[match[1]]}"
    return ""


# ----------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------

_RULE_FUNCTIONS: tuple[Callable[..., object], ...] = (
    _parse_selection,
    _parse_expression,
    _parse_intersection,
    _parse_atom,
    _parse_literal,
    _parse_set_name,
    _parse_loss,
)


def _rule_of(function: Callable[..., object]) -> tuple[str, str]:
    name = function.__name__.removeprefix("_parse_")
    doc = (function.__doc__ or "").strip()  # docstrings are gone under python -OO: fall back to the name
    return name, doc or name


#: Rule name -> its EBNF line, taken from the parse functions' docstrings.
GRAMMAR_RULES: dict[str, str] = dict(_rule_of(f) for f in _RULE_FUNCTIONS)


def _aligned(rules: dict[str, str]) -> str:
    width = max(len(name) for name in rules)
    lines = []
    for name, text in rules.items():
        body = text.removeprefix(name).removeprefix(" :=")
        lines.append(f"{name:<{width}} :={body}")
    return "\n".join(lines)


#: The whole grammar, one rule a line, the ``:=`` aligned.
GRAMMAR: str = _aligned(GRAMMAR_RULES)


def parse(expr: str) -> Node:
    """Parse a set expression into its AST; raise :class:`LocatedExpressionError` when it does not parse.

    ``parse("L_D ∪ ℒ_G") == Union(SetRef("L_D"), SetRef("L_G"))``, ``str`` of which is ``"L_D | L_G"``.
    """
    if not isinstance(expr, str):
        raise ExpressionError(f"a set expression is a string, got {type(expr).__name__}: {expr!r}")
    return _parse_selection(_Tokenizer(expr))


def select(expr: str) -> tuple[str, ...]:
    """The loss names an expression selects, in canonical order without duplicates.

    ``select("L_D | L_G")`` has 36 names; ``select("{ℓ_D^0}") == ("l_D^0",)``. An expression that selects
    nothing (``L_D & L_G``) is an error, with a caret under the operation that emptied the set.
    """
    node = parse(expr)
    names = node.evaluate()
    if not names:
        raise _empty_result_error(expr, node)
    return names


def _culprit(node: Node) -> Node:
    """The node to blame for an empty ``node``: go down through empty operands to the operation that made an
    empty set out of non-empty ones (for a union, both operands are empty: blame the left one first)."""
    if isinstance(node, Union):
        return _culprit(node.left)
    if isinstance(node, _Binary):
        if not node.left.as_set():
            return _culprit(node.left)
        if isinstance(node, Intersection) and not node.right.as_set():
            return _culprit(node.right)
    return node


def _count(node: Node) -> str:
    n = len(node.as_set())
    return f"{node} ({n} loss{'' if n == 1 else 'es'})"


def _empty_result_error(source: str, root: Node) -> LocatedExpressionError:
    culprit = _culprit(root)
    head = "the expression selects no losses"
    if isinstance(culprit, Intersection):
        operands = f"{_count(culprit.left)} and {_count(culprit.right)}"
        reason = f"{head}: '{culprit}' is empty; {operands} share no loss"
    elif isinstance(culprit, Difference):
        reason = f"{head}: '{culprit}' is empty; every loss of {_count(culprit.left)} is in {culprit.right}"
    else:
        reason = f"{head}: '{culprit}' is empty"
    span = culprit.span if culprit.span != (0, 0) else (0, max(1, len(source)))
    token = source[span[0] : span[1]]
    return LocatedExpressionError(reason, source=source, span=span, rule="selection", token=token)
