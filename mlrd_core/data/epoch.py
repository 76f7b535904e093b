"""A dataset whose items depend on the epoch, with the epoch in shared memory.

:class:`~mlrd_core.data.transforms.TransformedDataset` (augmentations drawn from ``(seed, epoch, index)``) and
:class:`~mlrd_core.data.mixture.MixtureDataset` (which items a weighted part shows in an epoch) keep their epoch
here: a shared-memory tensor, so :meth:`EpochDataset.set_epoch` also reaches DataLoader workers that were started
earlier (``persistent_workers=True``), as long as it is called before the epoch's iterator is created.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from mlrd_core.errors import DataError


class EpochDataset(Dataset):
    """A dataset with an epoch counter shared with its DataLoader workers; subclasses call ``super().__init__()``."""

    def __init__(self) -> None:
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        """The epoch whose items :meth:`__getitem__` gives."""
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Select ``epoch`` (>= 0)."""
        if epoch < 0:
            raise DataError(f"epoch must be >= 0, got {epoch}")
        self._epoch.fill_(int(epoch))
