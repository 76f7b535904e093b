"""MLRD suite: specs, planning, execution, storage and reporting around :mod:`mlrd_core`."""

from __future__ import annotations

import mlrd_core  # noqa: F401  (offline hub default and the torchvision shim come first)

__version__ = mlrd_core.__version__
