"""The typed, fully resolved configuration of one training run.

A :class:`RunConfig` holds everything that determines a run's numbers except the seed and the device: model,
data, losses, weighting, optimisation and evaluation. It is frozen, hashable through :meth:`RunConfig.to_dict`
(canonical JSON is what the suite hashes into a run id), and strict: :meth:`RunConfig.from_dict` rejects unknown
keys with the list of valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlrd_core.errors import ConfigError

AMP_MODES = ("auto", "off", "bf16", "fp16")
#: Learning-rate schedules: the paper's constant rate, or a cosine decay to 0 over the run's steps.
LR_SCHEDULES = ("constant", "cosine")


def learning_rate(config: RunConfig, step: int, total_steps: int) -> float:
    """The learning rate of training step ``step`` (0-based) of ``total_steps``: ``config.lr`` throughout for
    ``"constant"``; for ``"cosine"``, ``lr · (1 + cos(π · step / total_steps)) / 2``, from ``lr`` at the first
    step towards 0 at the last. A pure function of the step, so a resumed run continues on the same curve."""
    if config.lr_schedule == "constant" or total_steps <= 0:
        return config.lr
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


@dataclass(frozen=True)
class RunConfig:
    """One training run, minus seed and device.

    Defaults are a CPU-sized version of the paper's setting (Adam 1e-4, four periods per epoch, all 78 losses with
    the paper's rebalancing and the 3 -> -3 schedule) on the synthetic dataset.
    """

    # model (mlrd_core.model.create_depth_model)
    encoder: str = "resnet18"
    pretrained: bool | str = False
    decoder_width: int = 1024
    skips: bool = False
    init_depth: float | None = None  # output head bias -> initial prediction in metres (None: PyTorch init, the paper)
    # data (mlrd_core.data.make_dataset)
    dataset: str = "synthetic"
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] = (96, 128)
    augment: bool = True
    train_split: str = "train"
    val_split: str | None = "val"
    test_split: str | None = "test"
    num_workers: int = 0
    # losses and weighting (mlrd_core.losses / mlrd_core.weighting)
    losses: str = "L"
    weighting: str = "lee-kim"
    weighting_options: Mapping[str, Any] = field(default_factory=lambda: {"schedule": "3 -> -3"})
    periods_per_epoch: int = 4
    # optimisation
    epochs: int = 5
    batch_size: int = 8
    lr: float = 1e-4
    lr_schedule: str = "constant"  # "constant" (the paper) | "cosine": per-step cosine decay from lr to 0
    weight_decay: float = 0.0
    grad_clip: float | None = None
    max_steps_per_epoch: int | None = None
    # evaluation
    protocol: str = "synthetic"
    eval_batch_size: int = 8
    # CUDA-only speed options (ignored on CPU, recorded either way)
    amp: str = "auto"
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}"),
            (self.periods_per_epoch >= 1, f"periods_per_epoch must be >= 1, got {self.periods_per_epoch}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (
                self.lr_schedule in LR_SCHEDULES,
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}",
            ),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers}"),
            (self.amp in AMP_MODES, f"amp must be one of {AMP_MODES}, got {self.amp!r}"),
            (
                len(self.input_size) == 2 and all(int(s) >= 1 for s in self.input_size),
                f"input_size must be (H, W) with positive sides, got {self.input_size!r}",
            ),
            (
                self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
                f"max_steps_per_epoch must be None or >= 1, got {self.max_steps_per_epoch}",
            ),
            (
                self.init_depth is None
                or (
                    isinstance(self.init_depth, (int, float))
                    and not isinstance(self.init_depth, bool)
                    and math.isfinite(self.init_depth)
                    and self.init_depth > 0
                ),
                f"init_depth must be None or a finite depth > 0 (metres), got {self.init_depth!r}",
            ),
            (
                self.grad_clip is None or self.grad_clip > 0,
                f"grad_clip must be None or > 0, got {self.grad_clip}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"invalid run config: {message}")
        object.__setattr__(self, "input_size", (int(self.input_size[0]), int(self.input_size[1])))
        object.__setattr__(self, "dataset_options", dict(self.dataset_options))
        object.__setattr__(self, "weighting_options", dict(self.weighting_options))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists); ``from_dict(to_dict())`` round-trips."""
        out = dataclasses.asdict(self)
        out["input_size"] = list(self.input_size)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "run config") -> RunConfig:
        """Build from a mapping, rejecting unknown keys with the list of valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in valid]
        if unknown:
            key = unknown[0]
            near = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; valid keys: {', '.join(valid)}")
        values = dict(data)
        if "input_size" in values:
            values["input_size"] = tuple(values["input_size"])
        try:
            return cls(**values)
        except TypeError as exc:  # pragma: no cover - guarded by the key check above
            raise ConfigError(f"{where}: {exc}") from exc

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` applied (validated like the constructor)."""
        return dataclasses.replace(self, **changes)
