"""The worker: ``python -m suite.worker RUN_DIR`` trains the run described by ``RUN_DIR/run.json``.

A worker never touches the database. It communicates with the coordinator through files in its run folder:

- ``run.json`` (input): ``{"run_id", "seed", "config", "device", "threads"}``, written by the coordinator;
- ``heartbeat.json``: rewritten atomically every few seconds by a background thread, with the latest progress
  (epoch, step, loss, λ) and the worker's pid; a heartbeat that stops means the worker is gone;
- ``result.json``: the :class:`mlrd_core.trainer.RunResult`, written atomically once the run finished;
- ``error.json``: the exception and its traceback when the run failed;
- ``checkpoint.pt``: the trainer's checkpoint, which makes a rerun of the same folder resume.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
HEARTBEAT_FILE = "heartbeat.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
HEARTBEAT_INTERVAL_S = 2.0


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Readers see the old file or the new one, never a partial write."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None when it does not exist (yet)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


class Heartbeat:
    """Writes ``heartbeat.json`` every ``interval`` seconds from a daemon thread, carrying the latest progress."""

    def __init__(self, path: Path, interval: float = HEARTBEAT_INTERVAL_S) -> None:
        self.path = path
        self.interval = interval
        self.info: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(), "phase": "starting"}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 1)

    def beat(self) -> None:
        write_json_atomic(self.path, {**self.info, "time": time.time()})

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def progress(self, kind: str, info: Mapping[str, Any]) -> None:
        """The trainer's progress callback: remember the latest position for the next beat."""
        if kind == "step":
            self.info.update(
                phase="train",
                epoch=info["epoch"],
                batch=info["batch"],
                batches=info["batches"],
                step=info["step"],
                loss=info["loss"],
            )
        elif kind == "period":
            self.info.update(period=info["period"], lam=info.get("lam"))
        elif kind == "epoch":
            self.info.update(phase="validated", val=dict(info.get("metrics") or {}))
        elif kind == "test":
            self.info.update(phase="tested")


def run_worker(run_dir: Path) -> int:
    """Train the run in ``run_dir``; return the process exit code (0 done, 1 failed)."""
    spec = read_json(run_dir / RUN_FILE)
    if spec is None:
        print(f"error: {run_dir / RUN_FILE} does not exist", file=sys.stderr)
        return 2
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    with Heartbeat(run_dir / HEARTBEAT_FILE) as heartbeat:
        try:
            import torch

            from mlrd_core.config import RunConfig
            from mlrd_core.trainer import fit

            if spec.get("threads"):
                torch.set_num_threads(int(spec["threads"]))
            config = RunConfig.from_dict(spec["config"], where=str(run_dir / RUN_FILE))
            result = fit(
                config,
                seed=int(spec["seed"]),
                device=spec.get("device", "cpu"),
                workdir=run_dir,
                progress=heartbeat.progress,
            )
            payload = result.to_dict()
            payload["run_id"] = spec["run_id"]
            write_json_atomic(run_dir / RESULT_FILE, payload)
            return 0
        except Exception as exc:  # the coordinator records the failure; the trace is what a user needs
            write_json_atomic(
                run_dir / ERROR_FILE,
                {
                    "type": type(exc).__name__,
                    "message": str(exc),
                    "traceback": traceback.format_exc(),
                },
            )
            traceback.print_exc()
            return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m suite.worker RUN_DIR", file=sys.stderr)
        return 2
    return run_worker(Path(args[0]))


if __name__ == "__main__":
    raise SystemExit(main())
