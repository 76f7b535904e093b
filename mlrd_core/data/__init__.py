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
import inspect
from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from mlrd_core.errors import DataError

DatasetBuilder = Callable[..., Dataset]

#: name -> builder. Filled by the modules in _MODULES when they are imported.
DATASETS: dict[str, DatasetBuilder] = {}

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


def register_dataset(name: str) -> Callable[[DatasetBuilder], DatasetBuilder]:
    """Decorator: register ``builder`` under ``name`` for :func:`make_dataset`."""

    def decorate(builder: DatasetBuilder) -> DatasetBuilder:
        DATASETS[name] = builder
        return builder

    return decorate


def list_datasets() -> tuple[str, ...]:
    """Names accepted by :func:`make_dataset`."""
    return tuple(sorted(_MODULES))


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
    native resolution. When ``size`` (H, W) is given or ``augment`` is true, the dataset is wrapped in
    :class:`mlrd_core.data.transforms.TransformedDataset`, which resizes to the network input and applies the
    paper's augmentations with a generator seeded by (seed, epoch, index).
    """
    if name not in _MODULES:
        import difflib

        near = difflib.get_close_matches(name, list(_MODULES), n=3)
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        raise DataError(f"unknown dataset {name!r}; valid datasets: {', '.join(list_datasets())}{hint}")
    if name not in DATASETS:
        importlib.import_module(_MODULES[name])
    builder = DATASETS[name]
    accepted = inspect.signature(builder).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise DataError(
                f"dataset {name!r} does not take option(s) {', '.join(map(repr, unknown))}; "
                f"valid options: {', '.join(accepted)}"
            )
    dataset = builder(**options)
    if size is None and not augment:
        return dataset
    from mlrd_core.data.transforms import TransformedDataset

    return TransformedDataset(dataset, size=size, augment=augment, seed=seed)
