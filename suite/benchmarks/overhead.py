"""Suite-overhead benchmark: what the executor costs per run beyond the training itself (target < 2 s).

The target is in docs/performance.md, "Targets".

:func:`run_overhead_benchmark` pushes the same batch of tiny runs (synthetic scenes, ``test_resnet`` at 32x32,
one epoch of a handful of images: a fraction of a second of training) through
:class:`suite.execution.local.LocalExecutor` twice, each time into a fresh SQLite store and runs folder: once with
every worker started cold (``python -m suite.worker RUN_DIR``) and once with warm spares (pre-started workers, the
executor's default).

Per run, *wall* is the time its slot spent on it, measured in the coordinator: from the previous run's ingest on
that slot (or the start of the batch) to this run's ingest. *fit* is ``fit()``'s own wall time, recorded by the
worker in ``result.json`` (``worker.fit_s``). *Overhead* = wall - fit: process start, imports, reading the run,
writing the result and heartbeats, the coordinator noticing the exit, and ingesting the result into the store.
Planning is not in it (it happens once per spec and takes milliseconds).

With ``rounds`` > 1 the two modes alternate (cold, warm, then warm, cold, ...), so a drift of the machine's load
hits both alike. In both modes the first run of each slot starts cold (there is no earlier run to overlap a spare's
imports with). A tiny run is shorter than a spare's imports (about 2 s), so the spare started beside it is not ready
when the next run comes and that run waits for the rest of the imports: the warm overhead is bimodal here. *ready*
counts the runs whose spare was idle and waiting when they came, and *ready s* is their median overhead: the cost
per run once runs last longer than a spare's start-up, as real runs do.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

__all__ = [
    "MODES",
    "TARGET_S",
    "OverheadBenchmark",
    "OverheadCase",
    "overhead_summary",
    "render_overhead_table",
    "run_overhead_benchmark",
    "tiny_config",
]

#: The executor modes compared, baseline first: ``cold`` = ``LocalExecutor(warm=False)``.
MODES = ("cold", "warm")
#: The target (docs/performance.md): suite overhead per run (plan, spawn, ingest) under this many seconds.
TARGET_S = 2.0
SPEC_NAME = "bench-overhead"


def tiny_config(images: int = 4) -> Any:
    """A run that trains in well under a second on a CPU: ``test_resnet`` at 32x32, ``images`` synthetic training
    scenes in one epoch, two validation and two test scenes, ``L_D`` with equal weighting."""
    from mlrd_core.config import RunConfig

    return RunConfig(
        encoder="test_resnet",
        decoder_width=32,
        input_size=(32, 32),
        epochs=1,
        batch_size=min(4, images),
        periods_per_epoch=1,
        eval_batch_size=4,
        lr=1e-3,
        losses="L_D",
        weighting="equal",
        weighting_options={},
        dataset_options={"length": images, "height": 32, "width": 32, "val": {"length": 2}, "test": {"length": 2}},
    )


@dataclass(frozen=True)
class TinyRun:
    """One run of :func:`tiny_config` as the executor and the store take it, without a spec file."""

    run_id: str
    seed: int
    config: Any
    spec: str = SPEC_NAME
    group: str = "bench"
    arm: str = "tiny"


def tiny_runs(seeds: Iterable[int], *, images: int = 4, spec: str = SPEC_NAME) -> list[TinyRun]:
    """One :class:`TinyRun` per seed (``tiny_config(images)``, content-hashed like any planned run)."""
    from suite.plan import run_id_for

    config = tiny_config(images)
    return [TinyRun(run_id=run_id_for(config, seed), seed=seed, config=config, spec=spec) for seed in seeds]


@dataclass(frozen=True)
class OverheadCase:
    """One executor mode: per run (rounds concatenated, runs in the order they finished) the slot's wall time, the
    trainer's own ``fit`` time, whether the worker was pre-started and whether it was its slot's first run."""

    label: str
    wall_s: tuple[float, ...]
    fit_s: tuple[float, ...]
    prestarted: tuple[bool, ...]
    first_on_slot: tuple[bool, ...]
    batch_s: tuple[float, ...]  # per round: the whole ``execute()`` call
    #: Per run, how long its pre-started worker had been waiting, imports done, when the run came (0.0: it was
    #: still importing, so the run waited for the rest of the imports; None: a cold start).
    spare_idle_s: tuple[float | None, ...]

    @property
    def spares_ready(self) -> int:
        """Runs whose spare had finished its imports when the run came."""
        return sum(1 for idle in self.spare_idle_s if idle is not None and idle > 0.0)

    @property
    def overhead_s(self) -> tuple[float, ...]:
        return tuple(w - f for w, f in zip(self.wall_s, self.fit_s, strict=True))

    @property
    def median_s(self) -> float:
        return statistics.median(self.overhead_s)

    @property
    def ready_median_s(self) -> float:
        """Median overhead of the runs whose spare had finished its imports when they came: the cost per run once
        runs last longer than a spare's start-up, as real runs do (NaN when there is none, e.g. cold starts)."""
        ready = [o for o, idle in zip(self.overhead_s, self.spare_idle_s, strict=True) if idle]
        return statistics.median(ready) if ready else float("nan")

    @property
    def mean_s(self) -> float:
        return statistics.fmean(self.overhead_s)

    @property
    def quartiles_s(self) -> tuple[float, float]:
        """The 25th and 75th percentiles of the overhead (the spread beside the median)."""
        values = sorted(self.overhead_s)
        if len(values) < 2:
            return values[0], values[0]
        q = statistics.quantiles(values, n=4, method="inclusive")
        return q[0], q[2]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            overhead_s=list(self.overhead_s),
            median_s=self.median_s,
            ready_median_s=self.ready_median_s,
            spares_ready=self.spares_ready,
            mean_s=self.mean_s,
            min_s=min(self.overhead_s),
            max_s=max(self.overhead_s),
            quartiles_s=list(self.quartiles_s),
        )
        return out


@dataclass(frozen=True)
class OverheadBenchmark:
    """Result of :func:`run_overhead_benchmark`; ratios are between the two modes of the same invocation."""

    cases: tuple[OverheadCase, ...]
    runs: int
    rounds: int
    jobs: int
    threads: int
    images: int
    machine: str

    def case(self, label: str) -> OverheadCase:
        return next(c for c in self.cases if c.label == label)

    @property
    def ratio(self) -> float:
        """Median overhead of cold starts over that of warm spares (> 1: spares save time)."""
        return self.case("cold").median_s / self.case("warm").median_s

    @property
    def mean_ratio(self) -> float:
        return self.case("cold").mean_s / self.case("warm").mean_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": "overhead",
            "runs": self.runs,
            "rounds": self.rounds,
            "jobs": self.jobs,
            "threads": self.threads,
            "images": self.images,
            "machine": self.machine,
            "target_s": TARGET_S,
            "ratio_cold_vs_warm": self.ratio,
            "mean_ratio_cold_vs_warm": self.mean_ratio,
            "cases": [c.to_dict() for c in self.cases],
        }


#: A spare that read its run within this long of finishing its imports was still importing when the run came (the
#: line was already waiting in its stdin); one that was idle had blocked on the read for longer.
_IDLE_AFTER_S = 0.005


@dataclass
class _Batch:
    wall_s: list[float]
    fit_s: list[float]
    prestarted: list[bool]
    first_on_slot: list[bool]
    spare_idle_s: list[float | None]
    seconds: float


def _batch(mode: str, runs: list[TinyRun], *, jobs: int, folder: Path) -> _Batch:
    """Execute ``runs`` in ``mode`` into a fresh store under ``folder``; per run (in finishing order) its wall and
    fit time, how its worker started, whether it was its slot's first run; and the whole call's wall time."""
    from suite.execution.local import LocalExecutor, local_slots
    from suite.plan import planned_rows
    from suite.store import open_store
    from suite.worker import RESULT_FILE, read_json

    store = open_store(f"sqlite:///{folder / 'mlrd.db'}")
    try:
        store.add_planned(planned_rows(runs))
        executor = LocalExecutor(
            store, runs_dir=folder / "runs", slots=local_slots(jobs), max_attempts=1, warm=mode == "warm"
        )
        slot_of: dict[str, str] = {}
        done: list[tuple[float, str]] = []

        def event(kind: str, info: Mapping[str, Any]) -> None:
            if kind == "start":
                slot_of[info["run"].run_id] = info["slot"]
            elif kind == "done":
                done.append((time.perf_counter(), info["run"].run_id))

        start = time.perf_counter()
        summary = executor.execute(runs, on_event=event)
        batch_s = time.perf_counter() - start
        if summary.failed or len(summary.done) != len(runs):
            errors = "; ".join(f"{k[:12]}: {v.splitlines()[0] if v else '?'}" for k, v in summary.failed.items())
            raise RuntimeError(f"bench overhead: {mode} runs did not all finish ({errors or 'interrupted'})")
        out = _Batch([], [], [], [], [], batch_s)
        last_on_slot: dict[str, float] = {}
        for when, run_id in done:
            slot = slot_of[run_id]
            out.wall_s.append(when - last_on_slot.get(slot, start))
            out.first_on_slot.append(slot not in last_on_slot)
            last_on_slot[slot] = when
            worker = (read_json(executor.run_dir(run_id) / RESULT_FILE) or {}).get("worker") or {}
            out.fit_s.append(float(worker["fit_s"]))
            out.prestarted.append(bool(worker.get("prestarted")))
            idle = float(worker["assigned"]) - float(worker["ready"]) if worker.get("prestarted") else None
            out.spare_idle_s.append(None if idle is None else (idle if idle > _IDLE_AFTER_S else 0.0))
        return out
    finally:
        store.close()


def run_overhead_benchmark(
    runs: int = 8,
    *,
    rounds: int = 1,
    jobs: int = 1,
    images: int = 4,
    progress: Callable[[str], None] | None = None,
) -> OverheadBenchmark:
    """Execute ``runs`` tiny runs (:func:`tiny_config`, seeds ``0..runs-1``) per mode and round through the local
    executor on ``jobs`` CPU slots, cold starts vs warm spares, and collect the per-run overhead (module docstring).
    ``progress`` gets a line before each batch."""
    if runs < 1 or rounds < 1 or jobs < 1 or images < 1:
        raise ValueError(f"runs, rounds, jobs and images must be >= 1, got {runs}, {rounds}, {jobs}, {images}")
    from suite.execution.local import local_slots

    planned = tiny_runs(range(runs), images=images)
    cases = []
    batches: dict[str, list[_Batch]] = {m: [] for m in MODES}
    for round_index in range(rounds):
        order = MODES if round_index % 2 == 0 else MODES[::-1]
        for mode in order:
            if progress is not None:
                progress(f"bench overhead: round {round_index + 1}/{rounds}, {runs} run(s) with {mode} workers...")
            with tempfile.TemporaryDirectory(prefix=f"mlrd-bench-overhead-{mode}-") as tmp:
                batches[mode].append(_batch(mode, planned, jobs=jobs, folder=Path(tmp)))
    for mode in MODES:
        cases.append(
            OverheadCase(
                label=mode,
                wall_s=tuple(w for b in batches[mode] for w in b.wall_s),
                fit_s=tuple(f for b in batches[mode] for f in b.fit_s),
                prestarted=tuple(p for b in batches[mode] for p in b.prestarted),
                first_on_slot=tuple(x for b in batches[mode] for x in b.first_on_slot),
                batch_s=tuple(b.seconds for b in batches[mode]),
                spare_idle_s=tuple(i for b in batches[mode] for i in b.spare_idle_s),
            )
        )
    threads = local_slots(jobs)[0].threads or 1
    machine = f"{platform.machine()}, {os.cpu_count()} CPU(s), python {platform.python_version()}"
    return OverheadBenchmark(
        cases=tuple(cases), runs=runs, rounds=rounds, jobs=jobs, threads=threads, images=images, machine=machine
    )


def render_overhead_table(result: OverheadBenchmark) -> Table:
    """The per-run overhead of each mode as a rich table (pure: no printing)."""
    table = Table(
        title=(
            f"suite overhead per run: {result.runs} tiny run(s) x {result.rounds} round(s) per mode, {result.jobs} CPU "
            f"slot(s) of {result.threads} thread(s); {result.machine}"
        )
    )
    table.add_column("workers")
    columns = ("runs", "pre-started", "ready", "median s", "p25-p75 s", "min-max s", "ready s", "mean s")
    for name in (*columns, "fit s", "slot s"):
        table.add_column(name, justify="right")
    for case in result.cases:
        low, high = case.quartiles_s
        table.add_row(
            case.label,
            str(len(case.wall_s)),
            str(sum(case.prestarted)),
            str(case.spares_ready),
            f"{case.median_s:.2f}",
            f"{low:.2f}-{high:.2f}",
            f"{min(case.overhead_s):.2f}-{max(case.overhead_s):.2f}",
            "-" if case.spares_ready == 0 else f"{case.ready_median_s:.2f}",
            f"{case.mean_s:.2f}",
            f"{statistics.median(case.fit_s):.2f}",
            f"{statistics.median(case.wall_s):.2f}",
        )
    table.caption = (
        "overhead = the slot's wall time per run (previous ingest to this ingest) - fit() itself; ready: runs whose "
        "pre-started worker had finished its imports when the run came (a run shorter than a spare's imports leaves "
        "the next spare unready), ready s: their median overhead; fit s: median fit() time; slot s: median wall time "
        "per run, fit included (a spare importing beside a run's fit() slows it on a busy CPU)"
    )
    return table


def overhead_summary(result: OverheadBenchmark) -> str:
    """The headline comparison and the target, as plain lines."""
    cold, warm = result.case("cold"), result.case("warm")
    verdict = "meets" if warm.median_s < TARGET_S else "MISSES"
    return "\n".join(
        [
            f"median overhead per run: cold {cold.median_s:.2f} s, warm spares {warm.median_s:.2f} s "
            f"({result.ratio:.2f}x less with spares; means {cold.mean_s:.2f} s vs {warm.mean_s:.2f} s, "
            f"{result.mean_ratio:.2f}x)",
            f"runs whose spare was ready when they came: {warm.spares_ready} of {len(warm.wall_s)}, median overhead "
            + ("-" if warm.spares_ready == 0 else f"{warm.ready_median_s:.2f} s"),
            f"with warm spares the median {verdict} the target of < {TARGET_S:.0f} s per run",
            "execute() per round: "
            + "; ".join(f"{c.label} {', '.join(f'{b:.1f} s' for b in c.batch_s)}" for c in result.cases),
        ]
    )
