"""MLRD suite: specs, planning, execution, storage and reporting around :mod:`mlrd_core`."""

from __future__ import annotations

import mlrd_core

__version__ = mlrd_core.__version__
