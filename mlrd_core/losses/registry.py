"""The 78-loss space of Lee & Kim (ECCV 2020, Table 1) as a table of named entries.

A loss is ``l_<term>^<k>``: one of 13 terms evaluated on the depth map at scale ``k`` (1/2^k resolution). The
entries are generated from ``SCALES x TERMS``; names are the API, integer positions never leave this package.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from mlrd_core.errors import ExpressionError

#: Scales k = 0..5; scale k is the map resized by 0.5**k.
SCALES: tuple[int, ...] = (0, 1, 2, 3, 4, 5)

#: The 13 terms in the canonical within-scale order (Table 1 of the paper; docs/loss-space.md).
TERMS: tuple[str, ...] = ("D", "M", "M5", "M17", "M65", "r", "c", "rr", "rc", "cc", "N", "Nr", "Nc")

#: Term -> family (the paper's L_D, L_M, L_G, L_N sets).
TERM_GROUP: dict[str, str] = {
    "D": "D",
    "M": "M",
    "M5": "M",
    "M17": "M",
    "M65": "M",
    "r": "G",
    "c": "G",
    "rr": "G",
    "rc": "G",
    "cc": "G",
    "N": "N",
    "Nr": "N",
    "Nc": "N",
}

#: Human-readable description of each term (used by ``suite losses`` and the docs).
TERM_DESCRIPTIONS: dict[str, str] = {
    "D": "depth L1 (eq. 3)",
    "M": "global-mean-removed L1 (eq. 4)",
    "M5": "5x5 local-mean-removed L1 (eq. 5)",
    "M17": "17x17 local-mean-removed L1 (eq. 5)",
    "M65": "65x65 local-mean-removed L1 (eq. 5)",
    "r": "row gradient L1 (eq. 6)",
    "c": "column gradient L1",
    "rr": "second row-row difference L1",
    "rc": "second column-row difference L1",
    "cc": "second column-column difference L1",
    "N": "normal cosine loss (eq. 7-8)",
    "Nr": "normal of the row-gradient map",
    "Nc": "normal of the column-gradient map",
}


@dataclass(frozen=True)
class LossSpec:
    """One entry of the loss space: ``LossSpec(name="l_rc^3", scale=3, term="rc")``."""

    name: str
    scale: int
    term: str

    @property
    def group(self) -> str:
        """The family letter: ``D``, ``M``, ``G`` or ``N``."""
        return TERM_GROUP[self.term]


def loss_name(term: str, scale: int) -> str:
    """The canonical name of ``term`` at ``scale``: ``loss_name("rc", 3) == "l_rc^3"``."""
    return f"l_{term}^{scale}"


#: All 78 losses, scale-major, in canonical order.
LOSS_SPECS: tuple[LossSpec, ...] = tuple(LossSpec(loss_name(term, k), k, term) for k in SCALES for term in TERMS)
LOSS_NAMES: tuple[str, ...] = tuple(s.name for s in LOSS_SPECS)
LOSS_BY_NAME: dict[str, LossSpec] = {s.name: s for s in LOSS_SPECS}
_POSITION: dict[str, int] = {name: i for i, name in enumerate(LOSS_NAMES)}


def _names_where(pred: object) -> tuple[str, ...]:
    return tuple(s.name for s in LOSS_SPECS if pred(s))  # type: ignore[operator]


#: The paper's named sets: L (all), L_D, L_M, L_G, L_N (families) and L^0..L^5 (scales).
LOSS_SETS: dict[str, tuple[str, ...]] = {
    "L": LOSS_NAMES,
    "L_D": _names_where(lambda s: s.group == "D"),
    "L_M": _names_where(lambda s: s.group == "M"),
    "L_G": _names_where(lambda s: s.group == "G"),
    "L_N": _names_where(lambda s: s.group == "N"),
    **{f"L^{k}": _names_where(lambda s, k=k: s.scale == k) for k in SCALES},
}


def canonical(names: object) -> tuple[str, ...]:
    """Sort loss names into canonical order and drop duplicates. Unknown names raise :class:`ExpressionError`."""
    unique = set(names)  # type: ignore[call-overload]
    unknown = sorted(n for n in unique if n not in _POSITION)
    if unknown:
        raise ExpressionError(f"unknown loss name(s) {unknown}; valid names look like 'l_D^0', 'l_M17^2', 'l_Nr^5'")
    return tuple(sorted(unique, key=_POSITION.__getitem__))


def list_losses(pattern: str = "*") -> tuple[str, ...]:
    """Loss names matching a shell-style glob, in canonical order, like ``timm.list_models``.

    ``list_losses("l_M*^2") == ("l_M^2", "l_M5^2", "l_M17^2", "l_M65^2")``. A pattern that matches nothing
    returns an empty tuple (``select`` turns that into an error).
    """
    return tuple(n for n in LOSS_NAMES if fnmatch.fnmatchcase(n, pattern))
