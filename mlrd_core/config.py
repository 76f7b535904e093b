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

from mlrd_core.errors import ConfigError, MLRDError

AMP_MODES = ("auto", "off", "bf16", "fp16")
#: Keys that only a mixture of datasets sets; left out of :meth:`RunConfig.to_dict` while they are None.
MIXTURE_ONLY_KEYS = ("dataset_weights", "eval_dataset")
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
    dataset: str | tuple[str, ...] = "synthetic"  # a tuple of names: a mixture (mlrd_core.data.mixture)
    dataset_options: Mapping[str, Any] = field(default_factory=dict)  # a mixture: one table per dataset name
    dataset_weights: Mapping[str, float] | None = None  # a mixture's shares per epoch (None: by size); a list: in order
    eval_dataset: str | None = None  # a mixture's validation/test dataset (None for one dataset)
    input_size: tuple[int, int] = (96, 128)
    augment: bool = True
    train_split: str = "train"
    val_split: str | None = "val"
    test_split: str | None = "test"
    num_workers: int = 0
    # losses and weighting (mlrd_core.losses / mlrd_core.weighting)
    losses: str = "L"
    weighting: str = "lee-kim"
    # the method's typed options record (mlrd_core.weighting.options), made from a mapping or passed as a record;
    # read as a mapping it is the canonical spec form. Omitted options take the method's defaults.
    weighting_options: Mapping[str, Any] = field(default_factory=dict)
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
    # speed options: amp and compile act on CUDA only (recorded either way); channels_last on every device
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
        _check_mixture(self)
        _canonical_weighting(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists); ``from_dict(to_dict())`` round-trips."""
        out = dataclasses.asdict(self)
        out["weighting_options"] = self.weighting_options.to_spec()  # type: ignore[attr-defined]
        out["input_size"] = list(self.input_size)
        if isinstance(self.dataset, tuple):
            out["dataset"] = list(self.dataset)
        for key in MIXTURE_ONLY_KEYS:  # absent for one dataset: its canonical JSON (and run id) stays as it was
            if out[key] is None:
                del out[key]
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
        if isinstance(values.get("dataset"), list):
            values["dataset"] = tuple(values["dataset"])
        try:
            return cls(**values)
        except TypeError as exc:  # pragma: no cover - guarded by the key check above
            raise ConfigError(f"{where}: {exc}") from exc

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` applied (validated like the constructor). A change of ``weighting`` without new
        ``weighting_options`` starts from the new method's defaults (the options of one method do not apply to
        another), as a spec level that switches the method does."""
        if "weighting" in changes and "weighting_options" not in changes:
            from mlrd_core.weighting.factory import canonical_name

            try:
                switched = canonical_name(changes["weighting"]) != self.weighting
            except MLRDError:
                switched = True  # the constructor reports the bad name
            if switched:
                changes = {**changes, "weighting_options": {}}
        return dataclasses.replace(self, **changes)


def _canonical_weighting(config: RunConfig) -> None:
    """Make ``weighting`` the method's spec name and ``weighting_options`` its typed options record, parsed here
    once whatever the entry point (a spec, ``RunConfig(...)``, ``from_dict``), so that one run has one canonical
    form and one run id."""
    from mlrd_core.weighting.factory import canonical_name, weighting_options_for  # torch: only when a config is built

    try:
        name = canonical_name(config.weighting)
    except MLRDError as exc:
        raise ConfigError(f"invalid run config: weighting: {exc}") from exc
    object.__setattr__(config, "weighting", name)
    object.__setattr__(config, "weighting_options", weighting_options_for(name, config.weighting_options))


def _check_mixture(config: RunConfig) -> None:
    """Check and normalise the data keys: one dataset (a name; no weights; ``eval_dataset`` unset or that name) or
    a mixture (a tuple of at least two distinct names, ``eval_dataset`` required, ``dataset_options`` keyed by
    dataset name, ``dataset_weights`` one positive number per dataset). Names are checked against the registry
    where datasets are built."""

    def fail(message: str) -> ConfigError:
        return ConfigError(f"invalid run config: {message}")

    dataset = config.dataset
    if isinstance(dataset, list):
        dataset = tuple(dataset)
        object.__setattr__(config, "dataset", dataset)
    if isinstance(dataset, str):
        if config.dataset_weights is not None:
            raise fail(f"dataset_weights is for a mixture (dataset = [...]); dataset is the one dataset {dataset!r}")
        if config.eval_dataset == dataset:
            object.__setattr__(config, "eval_dataset", None)  # the same run as without it
        elif config.eval_dataset is not None:
            raise fail(
                f"eval_dataset is for a mixture (dataset = [...]); with one dataset the run is evaluated on it "
                f"({dataset!r}), got eval_dataset {config.eval_dataset!r}"
            )
        return
    if not isinstance(dataset, tuple) or not all(isinstance(name, str) and name for name in dataset):
        raise fail(f"dataset must be a name or a list of names (a mixture), got {dataset!r}")
    if len(dataset) < 2:
        raise fail(
            f"a mixture needs at least two datasets, got {list(dataset)}; for one, write dataset = {dataset[0]!r}"
            if dataset
            else "dataset = [] names no dataset"
        )
    repeated = sorted({name for name in dataset if dataset.count(name) > 1})
    if repeated:
        raise fail(f"a mixture names each dataset once; repeated: {', '.join(repeated)}")
    if not isinstance(config.eval_dataset, str) or not config.eval_dataset:
        raise fail(
            f"a mixture ({' + '.join(dataset)}) needs eval_dataset: the dataset whose val/test splits evaluate the "
            f"run, e.g. eval_dataset = {dataset[0]!r}"
        )
    named = (*dataset, *([] if config.eval_dataset in dataset else [config.eval_dataset]))
    for key, value in config.dataset_options.items():
        if key not in named:
            raise fail(
                f"a mixture's dataset_options hold one table per dataset ({', '.join(named)}); {key!r} is none of "
                f"them (write dataset_options.<dataset>.{key})"
            )
        if not isinstance(value, Mapping):
            raise fail(f"dataset_options.{key} must be a table (the options of dataset {key!r}), got {value!r}")
    if config.dataset_weights is None:
        return
    weights = config.dataset_weights
    if isinstance(weights, (list, tuple)) and len(weights) == len(dataset):  # in the order of dataset
        weights = dict(zip(dataset, weights, strict=True))
    if not isinstance(weights, Mapping) or set(weights) != set(dataset):
        given = sorted(weights) if isinstance(weights, Mapping) else weights
        raise fail(
            f"dataset_weights must give one weight per dataset of the mixture ({', '.join(dataset)}), got {given!r}"
        )
    normal: dict[str, float] = {}
    for name in dataset:
        value = weights[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not value > 0:
            raise fail(f"dataset_weights.{name} must be a number > 0, got {value!r}")
        normal[name] = float(value)
    object.__setattr__(config, "dataset_weights", normal)
