"""Reading the store as DataFrames: the frames' columns and :class:`FrameQueries` (``metrics_frame``,
``timings_frame``, ``periods_frame``, ``runs_frame``, ``export``), a part of :class:`~suite.store.storage.RDBStore`.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from mlrd_core.atomic import atomic_path
from suite.store._models import (
    Metric,
    Period,
    PeriodLoss,
    Run,
    SpecRun,
    Timing,
)
from suite.store.base import (
    EXPORT_FORMATS,
    EXPORT_FRAMES,
    StoreError,
)

if TYPE_CHECKING:
    import pandas as pd


_Schema = Sequence[tuple[str, str]]  # (column, kind) with kind in str, int, float, time


METRICS_COLUMNS: _Schema = (
    ("run_id", "str"),
    ("spec", "str"),
    ("group", "str"),
    ("arm", "str"),
    ("seed", "int"),
    ("split", "str"),
    ("epoch", "int"),
    ("protocol", "str"),
    ("metric", "str"),
    ("value", "float"),
)


TIMINGS_COLUMNS: _Schema = (
    ("run_id", "str"),
    ("spec", "str"),
    ("group", "str"),
    ("arm", "str"),
    ("seed", "int"),
    ("name", "str"),
    ("value", "float"),
)


PERIODS_COLUMNS: _Schema = (
    ("run_id", "str"),
    ("epoch", "int"),
    ("period", "int"),
    ("action", "str"),
    ("lam", "float"),
    ("total", "float"),
    ("images", "int"),
    ("loss", "str"),
    ("mean", "float"),
    ("weight", "float"),
    ("contribution", "float"),
)


RUNS_COLUMNS: _Schema = (
    ("run_id", "str"),
    ("spec", "str"),
    ("group", "str"),
    ("arm", "str"),
    ("seed", "int"),
    ("state", "str"),
    ("attempts", "int"),
    ("created_at", "time"),
    ("started_at", "time"),
    ("finished_at", "time"),
    ("heartbeat_at", "time"),
    ("worker", "str"),
    ("workdir", "str"),
    ("error", "str"),
)


def _frame(rows: Sequence[Sequence[Any]], schema: _Schema) -> pd.DataFrame:
    """A DataFrame with fixed dtypes, the same whether or not there are rows: strings in pandas' string dtype
    (``str`` on pandas 3), ints int64, floats float64 (NULL -> NaN), times ``datetime64[us, UTC]``."""
    import pandas as pd

    string_dtype: Any = "str" if int(pd.__version__.split(".")[0]) >= 3 else object
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    data: dict[str, pd.Series] = {}
    for (name, kind), values in zip(schema, columns, strict=True):
        if kind == "str":
            data[name] = pd.Series(list(values), dtype=string_dtype)
        elif kind == "int":
            data[name] = pd.Series(list(values), dtype="int64")
        elif kind == "float":
            data[name] = pd.Series([math.nan if v is None else v for v in values], dtype="float64")
        else:
            data[name] = pd.Series(pd.to_datetime(list(values), utc=True)).astype("datetime64[us, UTC]")
    return pd.DataFrame(data, columns=[name for name, _ in schema])


#: The first columns of every frame of a spec's runs: run id, spec, group, arm, seed (joined on ``runs``).
_SPEC_RUN = (SpecRun.run_id, SpecRun.spec, SpecRun.group_name, SpecRun.arm, Run.seed)


class FrameQueries:
    """The frame reads of :class:`~suite.store.storage.RDBStore` (documented on :class:`~suite.store.base.Store`):
    each one ``select`` in one read transaction of ``session_scope``, turned into a frame by :func:`_frame`."""

    if TYPE_CHECKING:
        where: str

        def session_scope(self, *, write: bool = False, what: str = "query") -> AbstractContextManager[Session]: ...

        def specs(self) -> list[str]: ...

    def _read_frame(self, stmt: Executable, schema: _Schema, *, what: str) -> pd.DataFrame:
        """The rows of ``stmt``, read in one transaction, as a frame of ``schema``."""
        with self.session_scope(what=what) as s:
            rows = [tuple(r) for r in s.execute(stmt)]
        return _frame(rows, schema)

    def metrics_frame(self, spec: str | None = None, split: str | None = None) -> pd.DataFrame:
        stmt = (
            select(
                *_SPEC_RUN,
                Metric.split,
                Metric.epoch,
                Metric.protocol,
                Metric.name,
                Metric.value,
            )
            .join(Run, Run.run_id == SpecRun.run_id)
            .join(Metric, Metric.run_id == SpecRun.run_id)
            .order_by(SpecRun.spec, SpecRun.ordinal, Metric.split, Metric.epoch, Metric.protocol, Metric.name)
        )
        if spec is not None:
            stmt = stmt.where(SpecRun.spec == spec)
        if split is not None:
            stmt = stmt.where(Metric.split == split)
        return self._read_frame(stmt, METRICS_COLUMNS, what="reading metrics")

    def timings_frame(self, spec: str | None = None) -> pd.DataFrame:
        stmt = (
            select(*_SPEC_RUN, Timing.name, Timing.value)
            .join(Run, Run.run_id == SpecRun.run_id)
            .join(Timing, Timing.run_id == SpecRun.run_id)
            .order_by(SpecRun.spec, SpecRun.ordinal, Timing.name)
        )
        if spec is not None:
            stmt = stmt.where(SpecRun.spec == spec)
        return self._read_frame(stmt, TIMINGS_COLUMNS, what="reading timings")

    def periods_frame(self, run_id: str | None = None, *, spec: str | None = None) -> pd.DataFrame:
        stmt = (
            select(
                Period.run_id,
                Period.epoch,
                Period.period,
                Period.action,
                Period.lam,
                Period.total,
                Period.images,
                PeriodLoss.loss,
                PeriodLoss.mean,
                PeriodLoss.weight,
                PeriodLoss.contribution,
            )
            .outerjoin(
                PeriodLoss,
                (PeriodLoss.run_id == Period.run_id)
                & (PeriodLoss.epoch == Period.epoch)
                & (PeriodLoss.period == Period.period),
            )
            .order_by(Period.run_id, Period.epoch, Period.period, PeriodLoss.position)
        )
        if run_id is not None:
            stmt = stmt.where(Period.run_id == run_id)
        if spec is not None:
            stmt = stmt.where(Period.run_id.in_(select(SpecRun.run_id).where(SpecRun.spec == spec)))
        return self._read_frame(stmt, PERIODS_COLUMNS, what="reading periods")

    def runs_frame(self, spec: str | None = None) -> pd.DataFrame:
        stmt = (
            select(
                *_SPEC_RUN,
                Run.state,
                Run.attempts,
                Run.created_at,
                Run.started_at,
                Run.finished_at,
                Run.heartbeat_at,
                Run.worker,
                Run.workdir,
                Run.error,
            )
            .join(Run, Run.run_id == SpecRun.run_id)
            .order_by(SpecRun.spec, SpecRun.ordinal)
        )
        if spec is not None:
            stmt = stmt.where(SpecRun.spec == spec)
        return self._read_frame(stmt, RUNS_COLUMNS, what="reading runs")

    def export(
        self, spec: str, path: str | Path, format: str = "csv", *, frames: Sequence[str] = ("metrics",)
    ) -> list[Path]:
        if format not in EXPORT_FORMATS:
            raise StoreError(f"unknown export format {format!r}; valid formats: {list(EXPORT_FORMATS)}")
        unknown = [f for f in frames if f not in EXPORT_FRAMES]
        if unknown or not frames:
            raise StoreError(f"unknown frames {unknown} to export; valid frames: {list(EXPORT_FRAMES)}")
        if format == "parquet" and not any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
            raise StoreError("parquet export needs pyarrow: pip install pyarrow (or export with format='csv')")
        known = self.specs()
        if spec not in known:
            raise StoreError(f"no runs are planned for spec {spec!r}; specs in {self.where}: {known}")
        readers: dict[str, Callable[[], pd.DataFrame]] = {
            "metrics": lambda: self.metrics_frame(spec),
            "timings": lambda: self.timings_frame(spec),
            "periods": lambda: self.periods_frame(spec=spec),
            "runs": lambda: self.runs_frame(spec),
        }
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^\w.-]+", "_", spec)
        written = []
        for name in dict.fromkeys(frames):
            df = readers[name]()
            target = out / f"{stem}-{name}.{format}"
            with atomic_path(target, hidden=True) as tmp:  # a reader never sees half a file
                if format == "csv":
                    df.to_csv(tmp, index=False)
                else:
                    df.to_parquet(tmp, index=False)
            written.append(target)
        return written
