"""Baseline weighting methods to compare with Lee & Kim: equal, fixed, uncertainty, DWA, RLW and FAMO.

All of them share the :class:`~mlrd_core.weighting.base.WeightingMethod` interface; the formulas are written
with K = |L| losses, ℓ_i a loss value, and they were cross-checked against the reference implementations named in
each docstring (LibMTL ``LibMTL/weighting/*.py``, FAMO's official ``famo.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from mlrd_core.errors import ExpressionError, WeightingError
from mlrd_core.losses.registry import LOSS_NAMES
from mlrd_core.weighting.base import WeightingMethod
from mlrd_core.weighting.options import WeightingOptions, boolean, choice, option, real, whole

__all__ = [
    "DWA",
    "FAMO",
    "RLW",
    "DWAOptions",
    "EqualOptions",
    "EqualWeighting",
    "FAMOOptions",
    "FixedOptions",
    "FixedWeighting",
    "RLWOptions",
    "UncertaintyOptions",
    "UncertaintyWeighting",
]


def _positive(value: object, what: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WeightingError(f"{what} must be a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise WeightingError(f"{what} must be finite and {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return x


def _number_as_given(name: str, value: object) -> float:
    """A finite number kept as written (an int stays an int): the spec form of fixed weights keeps its spelling."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise WeightingError(f"{name} must be a finite number, got {value!r}")
    return value


def _fixed_weights(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping) or not value:
        raise TypeError("a non-empty table {loss name or set expression: weight}")
    for key in value:
        if not isinstance(key, str):
            raise WeightingError(f"weights keys must be loss names or set expressions, got {key!r}")
    return {key: _number_as_given(f"weights.{key}", w) for key, w in value.items()}


def _fixed_default(value: object) -> float | None:
    return None if value is None else _number_as_given("default", value)


@dataclass(frozen=True, eq=False)
class EqualOptions(WeightingOptions):
    """``equal`` takes no options."""

    method: ClassVar[str] = "equal"


@dataclass(frozen=True, eq=False)
class FixedOptions(WeightingOptions):
    """The options of :class:`FixedWeighting`: ``weights`` (required; numbers kept as written), ``default`` and
    ``normalize``. Which losses a key covers is checked when the method is built on the run's losses."""

    method: ClassVar[str] = "fixed"

    weights: Mapping[str, float] = option(parse=_fixed_weights)
    default: float | None = option(None, parse=_fixed_default)
    normalize: bool = option(False, parse=boolean("normalize"))


@dataclass(frozen=True, eq=False)
class UncertaintyOptions(WeightingOptions):
    """The options of :class:`UncertaintyWeighting`: the initial log-variance ``init_log_var``."""

    method: ClassVar[str] = "uncertainty"

    init_log_var: float = option(0.0, parse=real("init_log_var"))


@dataclass(frozen=True, eq=False)
class DWAOptions(WeightingOptions):
    """The options of :class:`DWA`: ``temperature`` (> 0) and ``per_period``."""

    method: ClassVar[str] = "dwa"

    temperature: float = option(2.0, parse=real("temperature", minimum=0.0, strict=True))
    per_period: bool = option(False, parse=boolean("per_period"))


@dataclass(frozen=True, eq=False)
class RLWOptions(WeightingOptions):
    """The options of :class:`RLW`: the ``seed`` of its private generator."""

    method: ClassVar[str] = "rlw"

    seed: int = option(0, parse=whole("seed", minimum=0))


@dataclass(frozen=True, eq=False)
class FAMOOptions(WeightingOptions):
    """The options of :class:`FAMO`: ``lr`` (β, > 0), ``gamma`` (γ, >= 0), ``eps`` (> 0) and ``optimizer``."""

    method: ClassVar[str] = "famo"

    lr: float = option(0.025, parse=real("lr", minimum=0.0, strict=True))
    gamma: float = option(0.01, parse=real("gamma", minimum=0.0))
    eps: float = option(1e-8, parse=real("eps", minimum=0.0, strict=True))
    optimizer: str = option("adam", parse=choice("optimizer", ("adam", "sgd")))


class EqualWeighting(WeightingMethod):
    """Equal weights ``w_i = 1 / K`` for the whole run (the paper's Table 5(a) rows, λ = 0 without init)."""

    name = "equal"
    Options = EqualOptions

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(names)
        k = self.num_losses
        self._w = torch.full((k,), 1.0 / k, dtype=torch.float64)

    @property
    def weights(self) -> Tensor:
        """``1/K`` for every loss (float64)."""
        return self._w.clone()

    def _update(self, epoch: int, period: int, means: Tensor) -> tuple[str, float | None]:
        return "none", None


class FixedWeighting(WeightingMethod):
    """Constant user-given weights ``w_i`` for the whole run.

    ``weights`` maps a loss name or a set expression (``"L_D"``, ``"L^0 - L_N"``, resolved with
    :func:`mlrd_core.losses.select`) to a weight ≥ 0. Resolution rules:

    - a plain loss name must be one of ``names``; an expression applies to the selected losses it matches and must
      match at least one;
    - a plain name overrides the expressions that also match it; two expressions matching the same loss are an
      error (ambiguous);
    - a selected loss that no key covers takes ``default``; with ``default=None`` (the default) it is an error
      listing the uncovered losses (computing a loss only to weight it 0 is almost always a mistake);
    - ``normalize=True`` divides by Σ w so the weights sum to 1; by default they are used as given.
    """

    name = "fixed"
    Options = FixedOptions

    def __init__(
        self,
        names: Sequence[str],
        weights: Mapping[str, float],
        *,
        default: float | None = None,
        normalize: bool = False,
    ) -> None:
        super().__init__(names)
        if not isinstance(weights, Mapping) or not weights:
            raise WeightingError(
                f"fixed: weights must be a non-empty mapping {{loss name or set expression: weight}}, got {weights!r}"
            )
        if not isinstance(normalize, bool):
            raise WeightingError(f"fixed: normalize must be True or False, got {normalize!r}")
        selected = set(self.names)
        explicit: dict[str, float] = {}
        by_expr: dict[str, tuple[float, str]] = {}
        for key, value in weights.items():
            if not isinstance(key, str):
                raise WeightingError(f"fixed: weight keys must be loss names or set expressions, got {key!r}")
            w = _positive(value, f"fixed: the weight of {key!r}", allow_zero=True)
            if key in LOSS_NAMES:
                if key not in selected:
                    raise WeightingError(
                        f"fixed: a weight is given for {key!r}, which is not among the selected losses "
                        f"{list(self.names)}"
                    )
                explicit[key] = w
                continue
            from mlrd_core.losses.expr import select  # lazily: the parser module imports heavier machinery

            try:
                matched = select(key)
            except ExpressionError as exc:
                raise WeightingError(
                    f"fixed: weight key {key!r} is neither a loss name nor a valid set expression: {exc}"
                ) from None
            hit = [n for n in matched if n in selected]
            if not hit:
                raise WeightingError(
                    f"fixed: the set expression {key!r} matches none of the selected losses {list(self.names)}"
                )
            for n in hit:
                if n in by_expr:
                    raise WeightingError(
                        f"fixed: loss {n!r} is weighted by both {by_expr[n][1]!r} and {key!r}; give it by name to "
                        "override, or make the expressions disjoint"
                    )
                by_expr[n] = (w, key)
        if default is not None:
            default = _positive(default, "fixed: default", allow_zero=True)
        out: list[float] = []
        missing: list[str] = []
        for n in self.names:
            if n in explicit:
                out.append(explicit[n])
            elif n in by_expr:
                out.append(by_expr[n][0])
            elif default is not None:
                out.append(default)
            else:
                missing.append(n)
        if missing:
            raise WeightingError(
                f"fixed: no weight given for {len(missing)} selected loss(es) {missing}; add them to weights or "
                "pass default=<weight>"
            )
        w_t = torch.tensor(out, dtype=torch.float64)
        if float(w_t.sum()) <= 0:
            raise WeightingError("fixed: all weights are 0; at least one must be > 0")
        self.normalize = normalize
        self._w = w_t / w_t.sum() if normalize else w_t

    @property
    def weights(self) -> Tensor:
        """The resolved weights (float64, order of :attr:`names`)."""
        return self._w.clone()

    def _update(self, epoch: int, period: int, means: Tensor) -> tuple[str, float | None]:
        return "none", None

    def _config(self) -> dict[str, Any]:
        return {"weights": self._w.tolist()}


class UncertaintyWeighting(WeightingMethod):
    """Homoscedastic-uncertainty weighting, Kendall, Gal & Cipolla, CVPR 2018 (Table 5(e) of Lee & Kim).

    Learned log-variances s_i = log σ_i² (one per loss, float64, optimized with the model):

        L = mean_b Σ_i [ ½ exp(−s_i) ℓ_bi ] + Σ_i ½ s_i,

    Kendall et al.'s Gaussian form 1/(2σ²) ℓ + log σ (eq. 7), as in LibMTL's ``UW``. The ½ factors halve both
    terms alike, so the optimum is the same as for the plain variant exp(−s) ℓ + s: exp(s_i*) = ℓ_i. The
    reported weights are w_i = ½ exp(−s_i). ``init_log_var`` is the initial s (0 → w = ½).
    :meth:`parameters` returns ``[s]``; call :meth:`to` first to place s on the training device.
    """

    name = "uncertainty"
    Options = UncertaintyOptions

    def __init__(self, names: Sequence[str], *, init_log_var: float = 0.0) -> None:
        super().__init__(names)
        init_log_var = UncertaintyOptions(init_log_var=init_log_var).init_log_var  # the record checks it
        self._s = torch.full((self.num_losses,), init_log_var, dtype=torch.float64, requires_grad=True)

    @property
    def log_vars(self) -> Tensor:
        """The learnable s = log σ² (the live leaf tensor)."""
        return self._s

    @property
    def weights(self) -> Tensor:
        """w_i = ½ exp(−s_i) (float64, detached, CPU)."""
        return (0.5 * torch.exp(-self._s.detach())).cpu()

    def parameters(self) -> list[Tensor]:
        """``[s]``: add it to the model's optimizer."""
        return [self._s]

    def to(self, device: torch.device | str) -> UncertaintyWeighting:
        """Move s to ``device`` as a new leaf (before handing :meth:`parameters` to an optimizer)."""
        self._s = self._s.detach().to(device).requires_grad_(True)
        return self

    def combine(self, per_image_losses: Tensor) -> Tensor:
        """``mean_b Σ_i ½ exp(−s_i) ℓ_bi + Σ_i ½ s_i``; gradients flow into the losses and into s."""
        x = self._check_batch(per_image_losses, "combine")
        s = self._s.to(device=x.device, dtype=x.dtype)
        return (0.5 * torch.exp(-s) * x).sum(dim=1).mean() + 0.5 * s.sum()

    def _update(self, epoch: int, period: int, means: Tensor) -> tuple[str, float | None]:
        return "none", None

    def _extra_state(self) -> dict[str, Any]:
        return {"log_vars": self._s.detach().cpu().clone()}

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        with torch.no_grad():  # in place: the optimizer keeps holding the same leaf
            self._s.copy_(extra["log_vars"].to(self._s))


class DWA(WeightingMethod):
    """Dynamic Weight Average, Liu, Johns & Davison, CVPR 2019 ("End-to-end multi-task learning with attention").

        w_i(t) = K exp(r_i(t−1) / T) / Σ_j exp(r_j(t−1) / T),   r_i(t−1) = L_i(t−1) / L_i(t−2),

    with L_i(t) the mean training loss of **epoch** t and temperature T = 2, as in the original (the authors'
    ``model_segnet_mtan.py``: ``lambda_weight = 1`` for the first two epochs, then the ratio of the last two epochs'
    average training losses) and LibMTL's ``DWA``. The weights sum to K (as in the original); they stay 1 during
    epochs 0 and 1 and change at the end of every epoch from the end of epoch 1 on, whatever the trainer's
    ``periods_per_epoch``: periods inside an epoch only accumulate the epoch mean (image-weighted).

    The number of periods in an epoch is learned from epoch 0 (the trainer's epochs all have the same periods); an
    epoch with more periods, or one that ends before its last period, is a :class:`WeightingError`.
    ``per_period=True`` updates at every period end from two period means instead (not the original).
    """

    name = "dwa"
    Options = DWAOptions

    def __init__(self, names: Sequence[str], *, temperature: float = 2.0, per_period: bool = False) -> None:
        super().__init__(names)
        options = DWAOptions(temperature=temperature, per_period=per_period)  # the record checks them
        self.temperature, self.per_period = options.temperature, options.per_period
        k = self.num_losses
        self._w = torch.ones(k, dtype=torch.float64)
        self._history: list[Tensor] = []  # the last two epoch (or period) means, oldest first
        self._epoch_sum = torch.zeros(k, dtype=torch.float64)  # Σ per-image values of the open epoch
        self._epoch_count = 0
        self._epoch: int | None = None  # the epoch being accumulated
        self._epoch_periods = 0  # periods seen in it
        self._periods_per_epoch: int | None = None  # learned when epoch 1 begins

    @property
    def weights(self) -> Tensor:
        """Current weights (float64, sum K)."""
        return self._w.clone()

    def _update(self, epoch: int, period: int, means: Tensor) -> tuple[str, float | None]:
        if self.per_period:
            return self._push(means)
        if self._periods_per_epoch is not None and period >= self._periods_per_epoch:
            raise WeightingError(
                f"dwa: epoch {epoch} has more periods than epoch 0 ({self._periods_per_epoch}; got period {period}); "
                "every epoch must have the periods of epoch 0"
            )
        if self._epoch is not None and epoch != self._epoch:  # a new epoch began: the open one must be closed
            if self._periods_per_epoch is not None or self._epoch != 0 or epoch != 1:
                raise WeightingError(
                    f"dwa: epoch {self._epoch} ended after {self._epoch_periods} of its "
                    f"{self._periods_per_epoch or '?'} periods (end_period(epoch={epoch}, period={period})); "
                    "every epoch must have the periods of epoch 0"
                )
            self._periods_per_epoch = self._epoch_periods  # epoch 0 is over: now its period count is known
            self._push(self._close_epoch())
        if self._epoch is None or epoch != self._epoch:
            self._epoch, self._epoch_periods = epoch, 0
        self._epoch_sum += means.to(torch.float64) * self._period_count
        self._epoch_count += self._period_count
        self._epoch_periods += 1
        last = self._periods_per_epoch is not None and self._epoch_periods == self._periods_per_epoch
        if not last:
            return ("warmup" if len(self._history) < 2 and epoch < 2 else "none"), None
        self._epoch = None
        return self._push(self._close_epoch())

    def _close_epoch(self) -> Tensor:
        means = self._epoch_sum / max(self._epoch_count, 1)
        self._epoch_sum = torch.zeros_like(self._epoch_sum)
        self._epoch_count = 0
        return means

    def _push(self, means: Tensor) -> tuple[str, float | None]:
        """Add an epoch (or period) mean; with two, set w = K softmax(r / T), r = newer / older."""
        self._history = [*self._history, means.clone()][-2:]
        if len(self._history) < 2:
            return "warmup", None
        older, newer = self._history
        bad = (older <= 0).nonzero()
        if bad.numel():
            i = int(bad[0, 0])
            unit = "period" if self.per_period else "epoch"
            raise WeightingError(
                f"dwa: loss {self.names[i]!r} had mean {float(older[i])!r} in the previous {unit}; the ratio "
                "r_i = L_i(t-1)/L_i(t-2) needs means > 0"
            )
        r = newer / older
        self._w = self.num_losses * torch.softmax(r / self.temperature, dim=0)
        return "update", None

    def _config(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "per_period": self.per_period}

    def _extra_state(self) -> dict[str, Any]:
        return {
            "weights": self._w.clone(),
            "history": [h.clone() for h in self._history],
            "epoch_sum": self._epoch_sum.clone(),
            "epoch_count": self._epoch_count,
            "epoch": -1 if self._epoch is None else self._epoch,
            "epoch_periods": self._epoch_periods,
            "periods_per_epoch": 0 if self._periods_per_epoch is None else self._periods_per_epoch,
        }

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self._w = extra["weights"].to(torch.float64).clone()
        self._history = [h.to(torch.float64).clone() for h in extra["history"]]
        self._epoch_sum = extra["epoch_sum"].to(torch.float64).clone()
        self._epoch_count = int(extra["epoch_count"])
        self._epoch = None if int(extra["epoch"]) < 0 else int(extra["epoch"])
        self._epoch_periods = int(extra["epoch_periods"])
        self._periods_per_epoch = int(extra["periods_per_epoch"]) or None


class RLW(WeightingMethod):
    """Random Loss Weighting, Lin et al., "Reasonable effectiveness of random weighting", TMLR 2022.

    Every training step (every :meth:`combine` call) draws z ~ N(0, I_K) and uses w = softmax(z) (LibMTL's ``RLW``
    with its default normal distribution). The draws come from a private ``torch.Generator`` seeded with ``seed``
    whose state is checkpointed, so a resumed run draws the same weights. :attr:`weights` is the last draw
    (1/K before the first); period records hold the mean of the period's draws.
    """

    name = "rlw"
    Options = RLWOptions

    def __init__(self, names: Sequence[str], *, seed: int = 0) -> None:
        super().__init__(names)
        self.seed = seed = RLWOptions(seed=seed).seed  # the record checks it
        k = self.num_losses
        self._gen = torch.Generator(device="cpu").manual_seed(seed)
        self._w = torch.full((k,), 1.0 / k, dtype=torch.float64)
        self._draw_sum = torch.zeros(k, dtype=torch.float64)
        self._draws = 0
        self._period_mean = self._w.clone()

    @property
    def weights(self) -> Tensor:
        """The weights of the last step (float64)."""
        return self._w.clone()

    def sample(self) -> Tensor:
        """Draw the next weights softmax(z), z ~ N(0, I) (advances the generator)."""
        z = torch.randn(self.num_losses, generator=self._gen, dtype=torch.float64)
        return torch.softmax(z, dim=0)

    def combine(self, per_image_losses: Tensor) -> Tensor:
        """Draws new weights, then ``mean_b Σ_i w_i ℓ_bi``."""
        x = self._check_batch(per_image_losses, "combine")
        self._w = self.sample()
        self._draw_sum += self._w
        self._draws += 1
        return (x * self._w.to(device=x.device, dtype=x.dtype)).sum(dim=1).mean()

    def _update(self, epoch: int, period: int, means: Tensor) -> tuple[str, float | None]:
        self._period_mean = self._draw_sum / self._draws if self._draws else self._w.clone()
        self._draw_sum = torch.zeros_like(self._draw_sum)
        self._draws = 0
        return "none", None

    def _record_weights(self) -> Tensor:
        return self._period_mean

    def _config(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def _extra_state(self) -> dict[str, Any]:
        return {
            "generator": self._gen.get_state(),
            "weights": self._w.clone(),
            "draw_sum": self._draw_sum.clone(),
            "draws": self._draws,
        }

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self._gen.set_state(extra["generator"])
        self._w = extra["weights"].to(torch.float64).clone()
        self._draw_sum = extra["draw_sum"].to(torch.float64).clone()
        self._draws = int(extra["draws"])


class FAMO(WeightingMethod):
    """Fast Adaptive Multitask Optimization, Liu, Liang, Chen & Liu, NeurIPS 2023 (official ``famo.py``, LibMTL).

    Logits ξ ∈ R^K (start 0), task weights z = softmax(ξ). With ℓ_i the batch-mean loss of a step and
    D_i = ℓ_i − ℓ_i^min + ε (ℓ^min = 0, ε = 1e-8), FAMO minimizes Σ_i z_i log D_i / c with c = Σ_i z_i / D_i
    (z, c detached); its gradient is that of Σ_i w_i ℓ_i with the effective weights

        w_i = (z_i / D_i) / Σ_j (z_j / D_j),

    and :meth:`combine` returns ``mean_b Σ_i w_i ℓ_bi`` (same gradient, interpretable value). :attr:`weights` are the
    w of the last step (1/K before the first). The logits follow the loss changes: with
    δ_i = log D_i(prev) − log D_i(curr), the gradient g = J_softmax(ξ)ᵀ δ, g_i = z_i (δ_i − Σ_j z_j δ_j), and

    - ``optimizer="adam"`` (official code, default): Adam(lr = β, betas (0.9, 0.999), eps 1e-8) on g + γ ξ
      (``torch.optim.Adam(weight_decay=γ)``), β = ``lr`` = 0.025, γ = ``gamma`` = 0.01;
    - ``optimizer="sgd"`` (the paper's Algorithm 1): ξ ← ξ − β (g + γ ξ).

    The official code re-evaluates the batch after the model step to get ℓ(curr) — an extra forward pass. Here
    (no extra forward passes) the logit update happens at the start of the next :meth:`combine`, with ℓ(prev) the
    previous step's batch means and ℓ(curr) this step's (a different mini-batch). The logits are internal state
    with their own optimizer, so :meth:`parameters` is empty.
    """

    name = "famo"
    Options = FAMOOptions

    def __init__(
        self,
        names: Sequence[str],
        *,
        lr: float = 0.025,
        gamma: float = 0.01,
        eps: float = 1e-8,
        optimizer: str = "adam",
    ) -> None:
        super().__init__(names)
        options = FAMOOptions(lr=lr, gamma=gamma, eps=eps, optimizer=optimizer)  # the record checks them
        self.lr, self.gamma, self.eps, self.optimizer = options.lr, options.gamma, options.eps, options.optimizer
        k = self.num_losses
        self._xi = torch.zeros(k, dtype=torch.float64)
        self._m = torch.zeros(k, dtype=torch.float64)
        self._v = torch.zeros(k, dtype=torch.float64)
        self._t = 0
        self._prev: Tensor | None = None
        self._w = torch.full((k,), 1.0 / k, dtype=torch.float64)

    _BETAS = (0.9, 0.999)
    _ADAM_EPS = 1e-8

    @property
    def logits(self) -> Tensor:
        """ξ (float64 copy)."""
        return self._xi.clone()

    @property
    def task_weights(self) -> Tensor:
        """z = softmax(ξ) (float64)."""
        return torch.softmax(self._xi, dim=0)

    @property
    def weights(self) -> Tensor:
        """Effective weights w of the last step (float64, sum 1)."""
        return self._w.clone()

    def update_logits(self, prev: Tensor, curr: Tensor) -> None:
        """One logit step from batch-mean losses ``prev`` → ``curr`` (each ``[K]``, ≥ 0)."""
        delta = torch.log(prev + self.eps) - torch.log(curr + self.eps)
        z = torch.softmax(self._xi, dim=0)
        g = z * (delta - (z * delta).sum()) + self.gamma * self._xi
        if self.optimizer == "sgd":
            self._xi = self._xi - self.lr * g
            return
        b1, b2 = self._BETAS
        self._t += 1
        self._m = b1 * self._m + (1 - b1) * g
        self._v = b2 * self._v + (1 - b2) * g * g
        denom = self._v.sqrt() / math.sqrt(1 - b2**self._t) + self._ADAM_EPS
        self._xi = self._xi - (self.lr / (1 - b1**self._t)) * self._m / denom

    def combine(self, per_image_losses: Tensor) -> Tensor:
        """Update ξ from the previous step (if any), then ``mean_b Σ_i w_i ℓ_bi`` with the FAMO weights."""
        x = self._check_batch(per_image_losses, "combine")
        curr = x.detach().to(torch.float64).mean(dim=0).cpu()
        ok = torch.isfinite(curr) & (curr >= 0)
        if not bool(ok.all()):
            i = int((~ok).nonzero()[0, 0])
            raise WeightingError(
                f"famo: loss {self.names[i]!r} has batch mean {float(curr[i])!r}; FAMO takes logs of losses, which "
                "must be finite and >= 0"
            )
        if self._prev is not None:
            self.update_logits(self._prev, curr)
        z = torch.softmax(self._xi, dim=0)
        q = z / (curr + self.eps)
        self._w = q / q.sum()
        self._prev = curr
        return (x * self._w.to(device=x.device, dtype=x.dtype)).sum(dim=1).mean()

    def _update(self, epoch: int, period: int, means: Tensor) -> tuple[str, float | None]:
        return "none", None

    def _config(self) -> dict[str, Any]:
        return {"lr": self.lr, "gamma": self.gamma, "eps": self.eps, "optimizer": self.optimizer}

    def _extra_state(self) -> dict[str, Any]:
        return {
            "logits": self._xi.clone(),
            "adam_m": self._m.clone(),
            "adam_v": self._v.clone(),
            "adam_step": self._t,
            "prev": None if self._prev is None else self._prev.clone(),
            "weights": self._w.clone(),
        }

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self._xi = extra["logits"].to(torch.float64).clone()
        self._m = extra["adam_m"].to(torch.float64).clone()
        self._v = extra["adam_v"].to(torch.float64).clone()
        self._t = int(extra["adam_step"])
        self._prev = None if extra["prev"] is None else extra["prev"].to(torch.float64).clone()
        self._w = extra["weights"].to(torch.float64).clone()
