"""Live progress for training runs: a rich bar on a terminal, plain lines otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class RunProgress:
    """Adapter from the trainer's ``progress(kind, info)`` callback to a display.

    On a terminal it shows one bar over the run's steps with epoch, period and the current loss; elsewhere it
    prints one line per epoch and at the end of the test, so logs stay readable.
    """

    def __init__(self, label: str, *, total_epochs: int, console: Console | None = None) -> None:
        self.label = label
        self.total_epochs = total_epochs
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        self._progress: Progress | None = None
        self._task: Any = None
        self._started = time.perf_counter()

    def __enter__(self) -> RunProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task(escape(self.label), total=None, status="starting")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, kind: str, info: Mapping[str, Any]) -> None:
        """The trainer's callback."""
        if kind == "step" and self._progress is not None:
            total = info["batches"] * self.total_epochs
            done = info["epoch"] * info["batches"] + info["batch"] + 1
            status = f"epoch {info['epoch'] + 1}/{self.total_epochs} loss {info['loss']:.4g}"
            self._progress.update(self._task, total=total, completed=done, status=status)
        elif kind in ("epoch", "test"):
            metrics = info.get("metrics") or {}
            shown = " ".join(f"{k}={metrics[k]:.4g}" for k in ("delta1", "rmse", "abs_rel") if k in metrics)
            where = f"epoch {info['epoch'] + 1}/{self.total_epochs} val" if kind == "epoch" else "test"
            line = f"{self.label}: {where} {shown} ({time.perf_counter() - self._started:.0f}s)"
            if self._progress is not None:
                self._progress.console.print(line, markup=False, highlight=False)
            else:
                print(line, file=sys.stderr, flush=True)


class SuiteProgress:
    """Progress of a whole spec: an overall bar with one line per active run (slot, run, epoch/period, loss, λ,
    ETA) on a terminal; one plain line per started/finished/failed run otherwise.

    It consumes the executor's events (``start``, ``progress``, ``done``, ``failed``, ``retry``, ``stopped`` by the
    coordinator, ``waiting`` and ``done_elsewhere`` for runs another coordinator holds, ``claim_lost``; the SLURM
    executor adds ``submit``, ``adopt``, ``requeue`` and ``lost``). Labels and messages are printed as text, never
    as rich markup.
    """

    def __init__(self, total: int, *, already_done: int = 0, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        self.total = total
        self.completed = already_done
        self._progress: Progress | None = None
        self._overall: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> SuiteProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._progress.start()
            self._overall = self._progress.add_task(
                "[bold]all runs", total=self.total, completed=self.completed, status=self._count()
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _count(self) -> str:
        return f"{self.completed}/{self.total} done"

    def add_runs(self, total: int, already_done: int = 0) -> None:
        """Count ``total`` more runs, ``already_done`` of them finished (the search adds each trial's runs as the
        trial starts)."""
        self.total += total
        self.completed += already_done
        if self._progress is not None:
            self._progress.update(self._overall, total=self.total, completed=self.completed, status=self._count())

    def note(self, text: str) -> None:
        """A line of text above the live display (or on stderr), e.g. the search's trial lines."""
        self._line(text)

    @staticmethod
    def label(run: Any) -> str:
        return f"{run.group}/{run.arm} s{run.seed}"

    def _line(self, text: str) -> None:
        """One line of text as it is: labels and errors may contain rich markup such as ``[/oops]``."""
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr, flush=True)

    def event(self, kind: str, info: Mapping[str, Any]) -> None:
        if kind == "submit":
            where = f" on partition {info['partition']}" if info.get("partition") else ""
            self._line(f"submit {info['count']} run(s) as SLURM job {info['job']}{where} (logs: {info['folder']})")
            return
        run = info["run"]
        key = run.run_id
        if kind == "start":
            if self._progress is not None:
                self._tasks[key] = self._progress.add_task(
                    escape(f"  {info['slot']:>5} {self.label(run)}"), total=None, status="starting"
                )
            else:
                self._line(f"start  {self.label(run)} [{key[:12]}] on {info['slot']}")
        elif kind == "progress" and self._progress is not None and key in self._tasks:
            beat = info["info"]
            if "step" in beat:
                epochs = run.config.epochs
                total = beat["batches"] * epochs
                done = beat["epoch"] * beat["batches"] + beat["batch"] + 1
                lam = beat.get("lam")
                status = f"ep {beat['epoch'] + 1}/{epochs} p{beat.get('period', 0)} loss {beat['loss']:.3g}"
                if lam is not None:
                    status += f" λ {lam:+.2g}"
                self._progress.update(self._tasks[key], total=total, completed=done, status=escape(status))
        elif kind == "waiting":
            self._line(
                f"wait   {self.label(run)} [{key[:12]}]: held by another coordinator ({info.get('owner')}); taken over "
                "if that one stops"
            )
        elif kind == "claim_lost":
            if self._progress is not None and key in self._tasks:
                self._progress.remove_task(self._tasks.pop(key))
            self._line(f"lost   {self.label(run)} [{key[:12]}]: {info['error']}; waiting for its new holder")
        elif kind == "done_elsewhere":
            self.completed += 1
            self._line(f"done   {self.label(run)} [{key[:12]}] by another coordinator ({self._count()})")
            if self._progress is not None:
                self._progress.update(self._overall, completed=self.completed, status=self._count())
        elif kind in ("done", "failed", "lost"):
            if self._progress is not None and key in self._tasks:
                self._progress.remove_task(self._tasks.pop(key))
            if kind == "done":
                self.completed += 1
                self._line(f"done   {self.label(run)} [{key[:12]}] in {info['seconds']:.0f}s ({self._count()})")
            else:
                self._line(f"{kind.upper():<6} {self.label(run)} [{key[:12]}]: {info['error']}")
            if self._progress is not None:
                self._progress.update(self._overall, completed=self.completed, status=self._count())
        elif kind == "stopped":  # stopped by the coordinator (a pruned trial): LOST, resumable
            if self._progress is not None and key in self._tasks:
                self._progress.remove_task(self._tasks.pop(key))
            self._line(f"stop   {self.label(run)} [{key[:12]}]: {info['why']}")
        elif kind == "retry":
            self._line(f"retry  {self.label(run)} [{key[:12]}] (attempt {info['attempt']})")
        elif kind == "spare_failed":  # the run starts again at once, cold; its start line follows
            if self._progress is not None and key in self._tasks:
                self._progress.remove_task(self._tasks.pop(key))
            self._line(f"cold   {self.label(run)} [{key[:12]}]: {info['error']}")
        elif kind in ("adopt", "requeue"):
            what = "watching its running SLURM job" if kind == "adopt" else "requeued by SLURM, resuming in job"
            self._line(f"{kind:<6} {self.label(run)} [{key[:12]}]: {what} {info['job']}")
