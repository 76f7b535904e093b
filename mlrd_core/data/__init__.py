"""Datasets for depth estimation, behind one registry.

Every dataset is a ``torch.utils.data.Dataset`` whose items are dicts:

- ``image``: float32 tensor ``[3, H, W]`` with values in [0, 1] (RGB, not normalized; the model normalizes),
- ``depth``: float32 tensor ``[1, H, W]`` in metres, 0 where the depth is unknown,
- ``mask``: bool tensor ``[1, H, W]``, True where ``depth`` is valid,
- ``index``: int, the item's position in the dataset.

Datasets are built by name with :func:`make_dataset`; each module registers its builders with
:func:`register_dataset`. Modules are imported lazily so that ``import mlrd_core.data`` stays cheap.

File-backed datasets say which files they read: ``dataset.sources`` (or
:func:`mlrd_core.data.provenance.dataset_sources` through wrappers), see :mod:`mlrd_core.data.provenance`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch.utils.data import Dataset

from mlrd_core.data.options import (
    DatasetInfo,
    DatasetOptionError,
    OptionRule,
    check_dataset_options,
    check_options,
    missing_files,
)
from mlrd_core.data.options import make_info as _make_info
from mlrd_core.errors import DataError

__all__ = [
    "DATASETS",
    "DATASET_INFO",
    "DatasetInfo",
    "DatasetOptionError",
    "OptionRule",
    "check_dataset_options",
    "check_options",
    "dataset_info",
    "list_datasets",
    "make_dataset",
    "missing_files",
    "register_dataset",
]

DatasetBuilder = Callable[..., Dataset]

#: name -> builder. Filled by the modules in _MODULES when they are imported.
DATASETS: dict[str, DatasetBuilder] = {}
#: name -> the builder's declared options and splits (:func:`register_dataset`, :func:`dataset_info`).
DATASET_INFO: dict[str, DatasetInfo] = {}

#: dataset name -> module that registers it.
_MODULES: dict[str, str] = {
    "synthetic": "mlrd_core.data.synthetic",
    "middlebury": "mlrd_core.data.middlebury",
    "nyuv2": "mlrd_core.data.nyuv2",
    "nyuv2-zip": "mlrd_core.data.nyuv2",
    "make3d": "mlrd_core.data.make3d",
    "sunrgbd": "mlrd_core.data.sunrgbd",
    "matterport3d": "mlrd_core.data.matterport3d",
}


def register_dataset(
    name: str,
    *,
    splits: Sequence[str] = ("train", "val", "test"),
    options: Mapping[str, OptionRule] | None = None,
    needs: Sequence[Sequence[str]] = (),
    files: Callable[..., list[str]] | None = None,
) -> Callable[[DatasetBuilder], DatasetBuilder]:
    """Decorator: register ``builder`` under ``name`` for :func:`make_dataset`, with the declaration of its options.

    The options are the builder's keyword parameters (a class builder: its ``__init__``'s), typed by their
    annotations; ``options`` adds an :class:`OptionRule` (range, choices) for some of them, and every key of it must
    be a parameter (so the declaration cannot drift from the signature). ``splits`` are the valid values of the
    builder's ``split`` parameter; ``needs`` lists groups of options of which at least one must be given (e.g.
    ``[("root", "zip_path")]``); ``files(split=..., **options)`` returns, for a cheap existence check before
    training, one message per missing file or folder (no file is read). See :func:`dataset_info`.
    """

    def decorate(builder: DatasetBuilder) -> DatasetBuilder:
        DATASETS[name] = builder
        DATASET_INFO[name] = _make_info(name, builder, tuple(splits), dict(options or {}), needs, files)
        return builder

    return decorate


def list_datasets() -> tuple[str, ...]:
    """Names accepted by :func:`make_dataset`."""
    return tuple(sorted(_MODULES))


def _unknown(name: str) -> DataError:
    import difflib

    near = difflib.get_close_matches(name, list(_MODULES), n=3)
    hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
    return DataError(f"unknown dataset {name!r}; valid datasets: {', '.join(list_datasets())}{hint}")


def dataset_info(name: str) -> DatasetInfo:
    """The declaration of dataset ``name``: splits, options (types, ranges, choices), needed options and its
    existence check of files. Imports the dataset's module (not its data)."""
    if name not in _MODULES:
        raise _unknown(name)
    if name not in DATASET_INFO:
        importlib.import_module(_MODULES[name])
    return DATASET_INFO[name]


def make_dataset(
    name: str,
    *,
    size: tuple[int, int] | None = None,
    augment: bool = False,
    seed: int = 0,
    **options: Any,
) -> Dataset:
    """Build dataset ``name`` (``synthetic``, ``middlebury``, ``nyuv2``, ``nyuv2-zip``, ``make3d``, ``sunrgbd``,
    ``matterport3d``).

    ``options`` go to the dataset's builder (split, root, ...; see each module), which returns items at their
    native resolution. They are checked against the builder's declaration first (:func:`dataset_info`): an unknown
    option or a value of the wrong type or range is a :class:`~mlrd_core.errors.DataError` naming the option.
    When ``size`` (H, W) is given or ``augment`` is true, the dataset is wrapped in
    :class:`mlrd_core.data.transforms.TransformedDataset`, which resizes to the network input and applies the
    paper's augmentations with a generator seeded by (seed, epoch, index).
    """
    info = dataset_info(name)
    try:
        check_options(info, {k: v for k, v in options.items() if k != "split"})  # the builder names bad splits
    except DatasetOptionError as exc:  # a plain DataError: the type a worker records, which is never retried
        raise DataError(f"dataset {name!r}: option {exc}") from None
    dataset = DATASETS[name](**options)
    if size is None and not augment:
        return dataset
    from mlrd_core.data.transforms import TransformedDataset

    return TransformedDataset(dataset, size=size, augment=augment, seed=seed)
