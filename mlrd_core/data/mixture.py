"""Training on several datasets at once (a *mixture*), and how a run's config becomes its datasets.

A run config names one dataset (``dataset = "nyuv2-zip"``) or a mixture (``dataset = ("nyuv2-zip", "sunrgbd",
"matterport3d")``). For a mixture:

- ``dataset_options`` holds one table per dataset name, each in the form of a single dataset's options (shared
  keys, and split tables such as ``train = {...}`` overriding them);
- the training split is a :class:`MixtureDataset` of every dataset's ``train_split``; items keep their native
  size there and are resized to the input size (and augmented) by the
  :class:`~mlrd_core.data.transforms.TransformedDataset` around it, one item at a time;
- an epoch has as many items as all parts together. Without ``dataset_weights`` every item of every part is
  visited once per epoch (each part's share is its size). With weights, part ``i`` gets ``round(N · w_i / Σw)``
  of the epoch's ``N`` items (largest remainders, so they add up to ``N``), walked through in seeded passes:
  within a pass every item of the part once, in a permutation drawn from ``(seed, part, pass)``; an epoch takes
  the part's next items in that stream, so an under-weighted part shows new items every epoch and an
  over-weighted one repeats items only after a full pass. Which item an index stands for is a pure function of
  ``(seed, epoch, index)``: the trainer's seeded epoch order, ``set_epoch`` and exact resume work as for one
  dataset;
- validation and test read ``eval_dataset``'s splits alone, with its options (``dataset_options[eval_dataset]``),
  under the run's protocol;
- **leakage guard**: when ``eval_dataset`` is NYUv2 (``nyuv2`` or ``nyuv2-zip``) and SUN RGB-D is a part, the SUN
  RGB-D part leaves out the ``kv1/NYUdata`` frames of NYUv2's official test split (``exclude_nyuv2 = "test"`` of
  :class:`~mlrd_core.data.sunrgbd.SUNRGBD`, with NYUv2's ``splits.mat``), or every ``kv1/NYUdata`` frame when its
  options say ``exclude_nyuv2 = "all"``. ``splits.mat`` is the eval dataset's (``nyuv2``: its ``splits_path`` or
  ``root/splits.mat``; ``nyuv2-zip``: ``root/splits.mat``, or beside ``zip_path``) unless the SUN RGB-D options
  name one (``nyuv2_splits``). The number left out is logged and recorded in the run's data sources.

:func:`run_dataset` builds any split of a run config, one dataset or a mixture; the trainer and the figures use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from mlrd_core.config import RunConfig
from mlrd_core.data.epoch import EpochDataset
from mlrd_core.errors import DataError

#: Eval datasets that switch on the leakage guard for a SUN RGB-D part.
NYUV2_DATASETS = ("nyuv2", "nyuv2-zip")

__all__ = [
    "NYUV2_DATASETS",
    "MixtureDataset",
    "dataset_label",
    "epoch_counts",
    "eval_dataset_name",
    "is_mixture",
    "missing_guard_files",
    "options_for",
    "run_dataset",
    "training_parts",
]


def is_mixture(config: RunConfig) -> bool:
    """Whether ``config`` trains on several datasets."""
    return not isinstance(config.dataset, str)


def training_parts(config: RunConfig) -> tuple[str, ...]:
    """The dataset names ``config`` trains on (one, or the mixture's in order)."""
    return (config.dataset,) if isinstance(config.dataset, str) else tuple(config.dataset)


def eval_dataset_name(config: RunConfig) -> str:
    """The dataset whose val/test splits evaluate ``config``: the dataset itself, or a mixture's ``eval_dataset``."""
    if isinstance(config.dataset, str):
        return config.dataset
    assert config.eval_dataset is not None  # RunConfig requires it for a mixture
    return config.eval_dataset


def dataset_label(config: RunConfig) -> str:
    """Display text: ``nyuv2-zip``, or ``nyuv2-zip + sunrgbd + matterport3d`` for a mixture."""
    return " + ".join(training_parts(config))


def options_for(config: RunConfig, name: str, split: str) -> dict[str, Any]:
    """The options of dataset ``name`` for ``split``: its table (the whole ``dataset_options`` for one dataset,
    ``dataset_options[name]`` in a mixture), shared keys overridden by the ``split`` table."""
    table = config.dataset_options if isinstance(config.dataset, str) else config.dataset_options.get(name, {})
    opts = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    opts.update(table.get(split, {}) or {})
    return opts


def epoch_counts(sizes: Sequence[int], weights: Sequence[float] | None) -> list[int]:
    """Items per part in one epoch of ``sum(sizes)`` items: the sizes themselves without weights, else the shares
    ``N · w_i / Σw`` rounded by largest remainder (ties to the earlier part), so that they add up to ``N``."""
    total = sum(sizes)
    if weights is None:
        return list(sizes)
    scale = sum(weights)
    exact = [total * w / scale for w in weights]
    counts = [int(np.floor(x)) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


class MixtureDataset(EpochDataset):
    """Several datasets as one training set (items at their native size; see the module docstring).

    Args:
        parts: ``(name, dataset)`` pairs in the spec's order.
        weights: one weight per part (None: every item once per epoch, shares by size).
        seed: the run's seed (which items a weighted part shows in an epoch).

    Items are the parts' items with ``index`` set to the mixture index. :meth:`locate` says which part and item an
    index stands for in the current epoch; :meth:`set_epoch` selects the epoch (shared with DataLoader workers,
    :class:`~mlrd_core.data.epoch.EpochDataset`).
    """

    def __init__(
        self, parts: Sequence[tuple[str, Dataset]], *, weights: Sequence[float] | None = None, seed: int = 0
    ) -> None:
        if len(parts) < 2:
            raise DataError(f"a mixture needs at least two datasets, got {len(parts)}")
        if weights is not None and len(weights) != len(parts):
            raise DataError(f"a mixture of {len(parts)} datasets needs {len(parts)} weights, got {len(weights)}")
        self.names = tuple(name for name, _ in parts)
        self.datasets = [dataset for _, dataset in parts]
        self.sizes = [len(dataset) for dataset in self.datasets]  # type: ignore[arg-type]
        empty = [name for name, size in zip(self.names, self.sizes, strict=True) if size == 0]
        if empty:
            raise DataError(f"dataset(s) {', '.join(empty)} of the mixture have no items")
        self.weights = None if weights is None else [float(w) for w in weights]
        self.counts = epoch_counts(self.sizes, self.weights)
        self.ends = np.cumsum(self.counts)
        self.seed = int(seed)
        super().__init__()
        self._table_epoch = -1
        self._table: list[np.ndarray] = []

    def __len__(self) -> int:
        return int(self.ends[-1])

    def _items(self, part: int, epoch: int) -> np.ndarray:
        """The item of part ``part`` at each of its positions in ``epoch``."""
        n, k = self.sizes[part], self.counts[part]
        if k == n:
            return np.arange(n)
        start = epoch * k
        out = np.empty(k, dtype=np.int64)
        filled = 0
        while filled < k:
            position = start + filled
            passes, offset = divmod(position, n)
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, part, passes]))
            order = rng.permutation(n)
            take = min(n - offset, k - filled)
            out[filled : filled + take] = order[offset : offset + take]
            filled += take
        return out

    def locate(self, index: int) -> tuple[int, int]:
        """``(part, item)`` that mixture index ``index`` stands for in the current epoch."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a mixture of {n} items")
        index %= n
        epoch = self.epoch
        if epoch != self._table_epoch:
            self._table = [self._items(p, epoch) for p in range(len(self.datasets))]
            self._table_epoch = epoch
        part = int(np.searchsorted(self.ends, index, side="right"))
        start = int(self.ends[part - 1]) if part else 0
        return part, int(self._table[part][index - start])

    def __getitem__(self, index: int) -> dict[str, Any]:
        part, item = self.locate(index)
        sample = dict(self.datasets[part][item])
        sample["index"] = int(index) % len(self)
        return sample

    @property
    def sources(self) -> list[dict[str, Any]]:
        """Every part's records (:mod:`mlrd_core.data.provenance`), each with the part's ``dataset`` name and its
        ``mixture`` figures: items in the part, items per epoch and the share of the epoch."""
        from mlrd_core.data.provenance import dataset_sources

        out: list[dict[str, Any]] = []
        for name, dataset, size, count in zip(self.names, self.datasets, self.sizes, self.counts, strict=True):
            share = {"items": size, "per_epoch": count, "share": round(count / len(self), 6)}
            if self.weights is not None:
                share["weight"] = self.weights[self.names.index(name)]
            records = dataset_sources(dataset) or [{"name": name, "kind": "generated", "items": size}]
            out.extend({"dataset": name, **record, "mixture": share} for record in records)
        return out

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}: {c}/{s}" for n, c, s in zip(self.names, self.counts, self.sizes, strict=True))
        return f"MixtureDataset({parts}, seed={self.seed}, epoch={self.epoch})"


def _nyuv2_splits(config: RunConfig, split: str) -> Path:
    """NYUv2's ``splits.mat`` for the leakage guard, from the eval dataset's options (see the module docstring)."""
    name = eval_dataset_name(config)
    opts = options_for(config, name, split)
    if name == "nyuv2" and opts.get("splits_path") is not None:
        return Path(opts["splits_path"])
    if opts.get("root") is not None:
        return Path(opts["root"]) / "splits.mat"
    if opts.get("zip_path") is not None:
        return Path(opts["zip_path"]).parent / "splits.mat"
    raise DataError(
        f"the leakage guard of this mixture (evaluated on {name}) needs NYUv2's splits.mat; {name}'s options name "
        'no root: set dataset_options.sunrgbd.nyuv2_splits, or dataset_options.sunrgbd.exclude_nyuv2 = "all"'
    )


def missing_guard_files(config: RunConfig) -> list[str]:
    """A message if the leakage guard of ``config`` would not find NYUv2's ``splits.mat`` (existence only, for the
    checks before a run starts); empty when the guard does not apply or the file is there."""
    if not is_mixture(config) or "sunrgbd" not in training_parts(config):
        return []
    if eval_dataset_name(config) not in NYUV2_DATASETS:
        return []
    opts = options_for(config, "sunrgbd", config.train_split)
    if opts.get("exclude_nyuv2") == "all":
        return []
    try:
        path = (
            Path(opts["nyuv2_splits"])
            if opts.get("nyuv2_splits")
            else _nyuv2_splits(config, config.test_split or "test")
        )
    except DataError as exc:
        return [str(exc)]
    if path.is_file():
        return []
    return [
        f"leakage guard: NYUv2's splits.mat not found: {path} (needed to leave NYUv2's test frames out of SUN RGB-D; "
        'or set dataset_options.sunrgbd.nyuv2_splits, or dataset_options.sunrgbd.exclude_nyuv2 = "all")'
    ]


def _guarded(config: RunConfig, opts: dict[str, Any]) -> dict[str, Any]:
    """The SUN RGB-D part's options with the leakage guard on (``"all"`` stays ``"all"``)."""
    if opts.get("exclude_nyuv2") == "all":
        return opts
    guarded = {**opts, "exclude_nyuv2": "test"}
    if guarded.get("nyuv2_splits") is None:
        test_split = config.test_split or "test"
        path = _nyuv2_splits(config, test_split)
        if not path.is_file():
            raise DataError(
                f"the leakage guard of this mixture (evaluated on {eval_dataset_name(config)}) needs NYUv2's official "
                f"splits.mat (testNdxs) to know which SUN RGB-D kv1/NYUdata frames are NYUv2 test frames: {path} "
                "not found. Put it there (http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat), set "
                'dataset_options.sunrgbd.nyuv2_splits, or dataset_options.sunrgbd.exclude_nyuv2 = "all"'
            )
        guarded["nyuv2_splits"] = str(path)
    return guarded


def run_dataset(
    config: RunConfig,
    split: str,
    *,
    seed: int = 0,
    train: bool = False,
    size: tuple[int, int] | None = None,
    augment: bool = False,
    log: Callable[[str], None] | None = None,
) -> Dataset:
    """Split ``split`` of ``config``'s data: with ``train``, the training data (one dataset or the mixture), else
    the eval dataset's. ``size`` / ``augment`` wrap it as :func:`~mlrd_core.data.make_dataset` does; ``log``
    receives one line per mixture build (its parts and what the leakage guard left out)."""
    from mlrd_core.data import make_dataset

    if not is_mixture(config) or not train:
        name = eval_dataset_name(config) if not train else training_parts(config)[0]
        return make_dataset(
            name, split=split, seed=seed, size=size, augment=augment, **options_for(config, name, split)
        )
    guard = eval_dataset_name(config) in NYUV2_DATASETS
    parts: list[tuple[str, Dataset]] = []
    notes = []
    for name in training_parts(config):
        opts = options_for(config, name, split)
        if name == "sunrgbd" and guard:
            opts = _guarded(config, opts)
        dataset = make_dataset(name, split=split, **opts)
        parts.append((name, dataset))
        left_out = getattr(dataset, "excluded_nyuv2", None)
        if name == "sunrgbd" and left_out is not None and getattr(dataset, "exclude_nyuv2", "none") != "none":
            kind = "every kv1/NYUdata frame" if dataset.exclude_nyuv2 == "all" else "NYUv2 test-split frames"  # type: ignore[attr-defined]
            evaluated = eval_dataset_name(config)
            notes.append(f"leakage guard: left out {left_out} SUN RGB-D frames ({kind}, evaluated on {evaluated})")
    weights = None if config.dataset_weights is None else [config.dataset_weights[n] for n in training_parts(config)]
    mixture = MixtureDataset(parts, weights=weights, seed=seed)
    if log is not None:
        shares = ", ".join(f"{n} {c}/{s}" for n, c, s in zip(mixture.names, mixture.counts, mixture.sizes, strict=True))
        log(f"mixture {split}: {len(mixture)} items per epoch ({shares} items per epoch/in the part)")
        for note in notes:
            log(note)
    if size is None and not augment:
        return mixture
    from mlrd_core.data.transforms import TransformedDataset

    return TransformedDataset(mixture, size=size, augment=augment, seed=seed)
