"""Live progress for training runs: a rich bar on a terminal, plain lines otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
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
            self._task = self._progress.add_task(self.label, total=None, status="starting")
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
                self._progress.console.print(line)
            else:
                print(line, file=sys.stderr, flush=True)
