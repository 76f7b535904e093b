"""The results store: runs and their states, finished results in long form, and DataFrames for notebooks.

>>> from suite.store import open_store
>>> store = open_store()                       # sqlite:///results/mlrd.db, created on first use
>>> df = store.metrics_frame("table5", split="test")
>>> df.groupby(["group", "arm", "metric"])["value"].agg(["mean", "std", "count"])

:func:`open_store` takes any SQLAlchemy URL (``postgresql+psycopg://user@host/mlrd``); the schema, the state
machine and the frames are described in docs/store.md.
"""

from __future__ import annotations

from suite.store._models import SCHEMA_VERSION
from suite.store.base import (
    EXPORT_FORMATS,
    EXPORT_FRAMES,
    TRANSITIONS,
    ClaimLostError,
    IllegalTransitionError,
    Membership,
    PlannedRun,
    PlannedRunLike,
    RunInfo,
    RunState,
    SchemaVersionError,
    Store,
    StoreError,
    UnknownRunError,
)
from suite.store.storage import DEFAULT_URL, RDBStore, open_store

__all__ = [
    "DEFAULT_URL",
    "EXPORT_FORMATS",
    "EXPORT_FRAMES",
    "SCHEMA_VERSION",
    "TRANSITIONS",
    "ClaimLostError",
    "IllegalTransitionError",
    "Membership",
    "PlannedRun",
    "PlannedRunLike",
    "RDBStore",
    "RunInfo",
    "RunState",
    "SchemaVersionError",
    "Store",
    "StoreError",
    "UnknownRunError",
    "open_store",
]
