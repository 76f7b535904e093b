"""The interface every loss-weighting method implements, and the per-period records they all keep.

A weighting method is a small object the trainer calls (STYLE 3); it never lives inside the training loop::

    weighting = LeeKimWeighting(names, "3 -> -3")
    for each training step:
        weighting.observe(per_image.detach())      # [B, K] per-image loss values of this step
        loss = weighting.combine(per_image)        # scalar to backpropagate
        ...
        if the step closes a period:
            weighting.end_period(epoch, period)    # new weights (float64, order of names)

Conventions shared by all methods (docs/weighting.md):

- ``names`` are canonical loss names (``l_D^0``, ...); the weights tensor follows their order. Integer positions
  never leave the object.
- ``observe`` accumulates the period statistics (sum and count of per-image values, in float64) from the training
  forward passes; no extra forward passes are made.
- ``end_period(epoch, period)`` closes the period: the method updates its weights, appends a
  :class:`PeriodRecord` and returns the new weights. ``epoch`` and ``period`` are 0-based (``period`` counts
  the periods inside the epoch), as the trainer passes them.
- ``combine(per_image)`` returns ``mean_b Σ_i w_i ℓ_bi`` (plus a method's regularizer), with the weights cast to the
  loss dtype and device; gradients flow into ``per_image`` (and into :meth:`parameters` for learnable methods).
- ``state_dict()`` holds plain tensors and Python scalars/lists/dicts only, so ``torch.load(weights_only=True)``
  reads it back; ``load_state_dict`` restores the object exactly (the next update is bit-identical).
"""

from __future__ import annotations

import difflib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from mlrd_core.errors import WeightingError
from mlrd_core.losses.registry import LOSS_NAMES
from mlrd_core.weighting.options import WeightingOptions

__all__ = ["LossRecord", "PeriodRecord", "WeightingMethod", "validate_loss_names"]

_STATE_VERSION = 1


@dataclass(frozen=True)
class LossRecord:
    """One loss in one period.

    ``mean``: mean per-image value ℓ̄_i over the period's training images; ``weight``: the weight w_i^(t) that the
    period end produced (in effect during the next period); ``contribution``: w_i^(t) · P_i^(t) with
    P_i^(t) = ℓ̄_i / L_all^(t), the quantity drawn as circle radii in the paper's Fig. 3 (0 when L_all^(t) = 0).
    """

    name: str
    mean: float
    weight: float
    contribution: float


@dataclass(frozen=True)
class PeriodRecord:
    """What one ``end_period`` saw and did.

    ``action`` is what the method did (e.g. ``init``, ``rebalance``, ``reference``, ``none``, ``update``);
    ``lam`` the rebalancing parameter λ (``None`` for methods without one); ``total`` is
    L_all^(t) = Σ_i w_i^(t-1) ℓ̄_i^(t) (eq. 10), the weighted total under the weights in effect when the period
    began; ``images`` the number of per-image rows observed.
    """

    epoch: int
    period: int
    action: str
    lam: float | None
    total: float
    images: int
    losses: tuple[LossRecord, ...]

    def loss(self, name: str) -> LossRecord:
        """The record of loss ``name`` (``KeyError`` listing the names when absent)."""
        for rec in self.losses:
            if rec.name == name:
                return rec
        raise KeyError(f"no loss {name!r} in this record; it has {[r.name for r in self.losses]}")

    def as_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON- and ``weights_only``-safe)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PeriodRecord:
        """Inverse of :meth:`as_dict`."""
        return cls(
            epoch=int(data["epoch"]),
            period=int(data["period"]),
            action=str(data["action"]),
            lam=None if data["lam"] is None else float(data["lam"]),
            total=float(data["total"]),
            images=int(data["images"]),
            losses=tuple(LossRecord(**dict(r)) for r in data["losses"]),
        )


def validate_loss_names(names: Iterable[str], *, where: str = "weighting") -> tuple[str, ...]:
    """Check that ``names`` is a non-empty sequence of distinct canonical loss names; keep the given order.

    Unknown names raise :class:`WeightingError` with ``difflib`` suggestions; duplicates and an empty selection
    are errors too.
    """
    if isinstance(names, str):
        raise WeightingError(
            f"{where}: names must be a sequence of loss names, got the single string {names!r}; "
            f"pass e.g. ({names!r},) or select(expr)"
        )
    out = tuple(names)
    if not out:
        raise WeightingError(f"{where}: needs at least one loss name, got an empty selection")
    valid = set(LOSS_NAMES)
    for n in out:
        if not isinstance(n, str) or n not in valid:
            near = difflib.get_close_matches(str(n), LOSS_NAMES, n=3)
            hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
            raise WeightingError(
                f"{where}: unknown loss name {n!r}{hint} (valid names look like 'l_D^0', 'l_M17^2', 'l_Nr^5'; "
                "see mlrd_core.losses.LOSS_NAMES)"
            )
    seen: set[str] = set()
    for n in out:
        if n in seen:
            raise WeightingError(f"{where}: loss name {n!r} appears more than once in names")
        seen.add(n)
    return out


def _check_index(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WeightingError(f"end_period: {what} must be an int >= 0 (0-based), got {value!r}")
    return value


class WeightingMethod(ABC):
    """Abstract base of the loss-weighting methods: observe → end_period → weights, and combine.

    Subclasses implement :meth:`_update` (the period-end rule) and :attr:`weights`; learnable or per-step
    methods override :meth:`combine`, :meth:`parameters` and the ``_extra_state`` hooks.
    """

    #: The spec name the factory knows the method by (``make_weighting(name, ...)``).
    name: ClassVar[str] = ""
    #: The method's typed options record (:mod:`mlrd_core.weighting.options`): what ``make_weighting`` and
    #: ``RunConfig.weighting_options`` carry; its ``kwargs()`` are this class's constructor options.
    Options: ClassVar[type[WeightingOptions]]

    def __init__(self, names: Sequence[str]) -> None:
        self._names = validate_loss_names(names, where=self.name or type(self).__name__)
        k = len(self._names)
        self._period_sum: Tensor = torch.zeros(k, dtype=torch.float64)
        self._period_count = 0
        self._records: list[PeriodRecord] = []
        self._start_weights: Tensor | None = None  # weights in effect when the current period began
        self._cast_cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    # ----------------------------------------------------------------------------------------------- interface
    @property
    def names(self) -> tuple[str, ...]:
        """The loss names, in the order of :attr:`weights` and of the columns of ``per_image_losses``."""
        return self._names

    @property
    def num_losses(self) -> int:
        """K = |L|."""
        return len(self._names)

    @property
    @abstractmethod
    def weights(self) -> Tensor:
        """Current weights: a float64 CPU tensor of shape ``[K]`` in the order of :attr:`names` (a copy)."""

    @property
    def records(self) -> list[PeriodRecord]:
        """One :class:`PeriodRecord` per ``end_period`` call, oldest first (a copy)."""
        return list(self._records)

    def parameters(self) -> list[Tensor]:
        """Learnable tensors the trainer adds to its optimizer (empty unless the method learns its weights)."""
        return []

    def to(self, device: torch.device | str) -> WeightingMethod:
        """Move learnable tensors to ``device`` in place (they stay leaves); call before :meth:`parameters`."""
        return self

    def observe(self, per_image_losses: Tensor, *, check: bool = True) -> None:
        """Accumulate one training step's per-image loss values ``[B, K]`` into the period statistics.

        The values are detached and summed in float64 on their device. With ``check`` (the default) NaN/inf or
        negative values raise :class:`WeightingError` naming the loss (one host-device sync per call); the trainer
        passes ``check=False`` because it checks finiteness itself, on the device, without a sync per step.
        """
        x = self._check_batch(per_image_losses, "observe").detach()
        if self._start_weights is None:  # the first step of the run: snapshot the weights the period starts with
            self._start_weights = self.weights.clone()
        if check:
            ok = torch.isfinite(x) & (x >= 0)
            if not bool(ok.all()):
                self._raise_bad_values(x, ok)
        s = x.to(torch.float64).sum(dim=0)
        if self._period_sum.device != s.device:  # the first step on an accelerator: no blocking host-to-device copy
            if self._period_count == 0:
                self._period_sum = torch.zeros_like(self._period_sum, device=s.device)
            else:  # resumed inside a period
                self._period_sum = self._period_sum.to(s.device, non_blocking=True)
        self._period_sum += s
        self._period_count += int(x.shape[0])

    def end_period(self, epoch: int, period: int) -> Tensor:
        """Close the period: update the weights from the period means, record, reset; returns the new weights."""
        epoch = _check_index(epoch, "epoch")
        period = _check_index(period, "period")
        if self._period_count == 0:
            raise WeightingError(
                f"end_period(epoch={epoch}, period={period}): no images were observed since the last period end; "
                "call observe(per_image_losses) after each training step"
            )
        means = (self._period_sum / self._period_count).cpu()
        before = self._period_start_weights()
        action, lam = self._update(epoch, period, means)
        self._cast_cache = {}
        after = self.weights
        total = float((before * means).sum())
        self._records.append(
            PeriodRecord(
                epoch=epoch,
                period=period,
                action=action,
                lam=lam,
                total=total,
                images=self._period_count,
                losses=tuple(
                    LossRecord(
                        name=n,
                        mean=float(m),
                        weight=float(w),
                        contribution=float(w * m / total) if total > 0 else 0.0,
                    )
                    for n, m, w in zip(self._names, means.tolist(), self._record_weights().tolist(), strict=True)
                ),
            )
        )
        self._period_sum = torch.zeros_like(self._period_sum)
        self._period_count = 0
        self._start_weights = after.clone()
        return after

    def combine(self, per_image_losses: Tensor) -> Tensor:
        """The scalar to backpropagate: ``mean_b Σ_i w_i ℓ_bi`` with the weights cast to the loss dtype/device."""
        x = self._check_batch(per_image_losses, "combine")
        return (x * self._weights_like(x)).sum(dim=1).mean()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: plain tensors (CPU) and Python types only."""
        return {
            "method": self.name,
            "version": _STATE_VERSION,
            "names": list(self._names),
            "config": self._config(),
            "period_sum": self._period_sum.detach().cpu().clone(),
            "period_count": self._period_count,
            "start_weights": self._period_start_weights().clone(),
            "records": [r.as_dict() for r in self._records],
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`; a state of another method, loss list or configuration is an error."""
        where = f"{self.name}.load_state_dict"
        if state.get("method") != self.name:
            raise WeightingError(f"{where}: the state belongs to method {state.get('method')!r}, not {self.name!r}")
        if state.get("version") != _STATE_VERSION:
            raise WeightingError(f"{where}: state version {state.get('version')!r}, expected {_STATE_VERSION}")
        if tuple(state["names"]) != self._names:
            raise WeightingError(
                f"{where}: the state was saved for losses {list(state['names'])}, but this object has "
                f"{list(self._names)}"
            )
        if dict(state["config"]) != self._config():
            raise WeightingError(
                f"{where}: the state was saved with options {dict(state['config'])}, but this object has "
                f"{self._config()}"
            )
        self._period_sum = state["period_sum"].to(torch.float64).cpu().clone()
        self._period_count = int(state["period_count"])
        self._start_weights = state["start_weights"].to(torch.float64).cpu().clone()
        self._records = [PeriodRecord.from_dict(r) for r in state["records"]]
        self._load_extra_state(state["extra"])
        self._cast_cache = {}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({len(self._names)} losses{', ' if opts else ''}{opts})"

    # ----------------------------------------------------------------------------------------------- hooks
    @abstractmethod
    def _update(self, epoch: int, period: int, means: Tensor) -> tuple[str, float | None]:
        """Update the weights from the period means ``[K]`` (float64, CPU); return (action, λ or None)."""

    def _record_weights(self) -> Tensor:
        """Weights written into the period record (default: the current weights)."""
        return self.weights

    def _config(self) -> dict[str, Any]:
        """Options that must agree between a saved state and the object it is loaded into."""
        return {}

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        return None

    # ----------------------------------------------------------------------------------------------- helpers
    def _period_start_weights(self) -> Tensor:
        if self._start_weights is None:
            self._start_weights = self.weights.clone()
        return self._start_weights

    def _weights_like(self, x: Tensor) -> Tensor:
        """The weights as a ``[K]`` tensor on ``x``'s device and dtype (cached until the weights change)."""
        key = (x.device, x.dtype)
        w = self._cast_cache.get(key)
        if w is None:
            w = self.weights.to(device=x.device, dtype=x.dtype, non_blocking=True)  # no sync (a fresh CPU copy)
            self._cast_cache[key] = w
        return w

    def _check_batch(self, x: object, where: str) -> Tensor:
        k = len(self._names)
        if not isinstance(x, Tensor):
            raise WeightingError(f"{where}: expected a tensor of shape (B, {k}), got {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != k:
            raise WeightingError(
                f"{where}: expected per-image losses of shape (B, K) with K = {k} (one column per name, in the "
                f"order of names), got {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise WeightingError(f"{where}: got an empty batch (B = 0)")
        if not x.is_floating_point():
            raise WeightingError(f"{where}: expected a floating-point tensor, got dtype {x.dtype}")
        return x

    def _raise_bad_values(self, x: Tensor, ok: Tensor) -> None:
        rows, cols = torch.nonzero(~ok, as_tuple=True)
        r, c = int(rows[0]), int(cols[0])
        value = float(x[r, c])
        kind = "NaN" if math.isnan(value) else ("infinite" if math.isinf(value) else "negative")
        raise WeightingError(
            f"observe: loss {self._names[c]!r} has a {kind} value {value!r} (batch row {r}); per-image loss "
            "values must be finite and >= 0"
        )
