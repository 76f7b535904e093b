"""The loss space: 78 named losses, named sets, set expressions and the fused loss computation.

Public API (docs/loss-space.md): ``LOSS_NAMES``, ``LOSS_SETS``, ``LossSpec``, ``list_losses``, ``select``,
``compute_losses``.
"""

from __future__ import annotations

from mlrd_core.losses.registry import (
    LOSS_BY_NAME,
    LOSS_NAMES,
    LOSS_SETS,
    LOSS_SPECS,
    SCALES,
    TERMS,
    LossSpec,
    canonical,
    list_losses,
    loss_name,
)

__all__ = [
    "LOSS_BY_NAME",
    "LOSS_NAMES",
    "LOSS_SETS",
    "LOSS_SPECS",
    "SCALES",
    "TERMS",
    "LossSpec",
    "canonical",
    "list_losses",
    "loss_name",
]

from mlrd_core.losses.expr import select
from mlrd_core.losses.functional import compute_losses

__all__ += ["compute_losses", "select"]
