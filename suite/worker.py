"""The worker: ``python -m suite.worker RUN_DIR`` trains the run described by ``RUN_DIR/run.json``.

A worker never touches the database. It communicates with the coordinator through files in its run folder:

- ``run.json`` (input): ``{"run_id", "attempt", "seed", "config", "device", "threads"}``, written by the
  coordinator once it holds the run's claim in the store (``attempt`` is the claim's token);
- ``heartbeat.json``: rewritten atomically every few seconds by a background thread, with the latest progress
  (epoch, step, loss, λ) and the worker's pid; a heartbeat that stops means the worker is gone;
- ``result.json``: the :class:`mlrd_core.result.RunResult` in the file form of :func:`mlrd_core.result.result_payload`
  (format version, run id, config hash, the attempt's token), written atomically once the run finished, with a
  ``worker`` record (pid, whether the process was pre-started and, if so, the GPU pin it got, ``fit_s``: the wall
  time of ``fit()`` itself);
- ``error.json``: the exception and its traceback when the run failed;
- ``checkpoint.pt`` (and the one before it, ``checkpoint.prev.pt``): the trainer's checkpoints, which make a rerun
  of the same folder resume.

Two ways to start one (docs/running.md, "How workers start"):

- **cold**, ``python -m suite.worker RUN_DIR``: imports, trains, exits. The SLURM path and manual reruns use it
  (SLURM tasks call :func:`run_worker` in process).
- **pre-started spare**, ``python -m suite.worker --spare SPARE_LOG``: the local executor starts it ahead of time
  with the slot's environment less its GPU pin (:data:`PIN_ENV`) and its output going to ``SPARE_LOG``. It does the
  heavy imports (torch, timm, :mod:`mlrd_core`: about 2 s of a 3 s cold start on a 2-core machine) and then blocks on
  stdin for ONE line, its assignment: ``{"run_dir": RUN_DIR, "env": {"CUDA_VISIBLE_DEVICES": "3"}}`` (the run folder
  and the pin of the slot it runs on; a plain ``RUN_DIR`` line, as typed by hand, means no pin). It sets the pin in
  its environment (:func:`apply_pin`), moves its output to the run folder's ``worker.log`` (with what it printed so
  far) and trains the run exactly as a cold worker would, in the same process (so the pid the coordinator tracks, the
  heartbeats and the signals are those of a cold worker); the result's ``worker`` record names the pin
  (``"pinned"``). End of input before a line means "not needed": it exits 0.

  CUDA is not initialised before the assignment, so an idle spare holds no GPU memory and is not bound to a GPU yet:
  that is what lets one spare serve whichever GPU slot frees first. CUDA reads ``CUDA_VISIBLE_DEVICES`` once, when it
  initialises, so the pin must be set before anything touches CUDA. If torch has already initialised CUDA when the
  assignment comes, the spare refuses it (exit code :data:`PIN_REFUSED`, the reason in its output), and the
  coordinator starts the run cold. That check cannot see everything: ``torch.cuda.is_available()`` (and
  ``torch.cuda.device_count()`` when NVML fails) call ``cudaGetDeviceCount``, which initialises the CUDA driver and
  fixes the device count in a C++ static (``c10::cuda::device_count``) while ``torch.cuda.is_initialized()`` stays
  False. :func:`prewarm` calls none of them: traced over its imports with torch 2.13's CPU build, where the one
  import-time ``torch.cuda._is_compiled()`` test (``torch._dynamo.device_interface``) only decides whether to bind a
  function. The Python-side device count (``torch.cuda._cached_device_count``) is only cached once CUDA is
  initialised, and the NVML count (``_device_count_nvml``) reads the environment on every call, so neither outlives a
  later pin; ``tests/test_executor_warm.py`` checks that the imports stay clear of CUDA.

Either way the process ends with ``os._exit`` once its files are written and its output flushed: the interpreter's
teardown of torch and timm modules takes about 1 s on a 2-core machine and has nothing left to do.
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
from typing import IO, Any, NoReturn

from mlrd_core.atomic import write_text_atomic
from mlrd_core.errors import MLRDError

RUN_FILE = "run.json"
HEARTBEAT_FILE = "heartbeat.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
LOG_FILE = "worker.log"
#: The coordinator's pid, set in the environment of the workers it starts (see :func:`tie_to_coordinator`).
COORDINATOR_ENV = "MLRD_COORDINATOR_PID"
HEARTBEAT_INTERVAL_S = 2.0
#: The variable that pins a worker to its GPU (``suite.execution.workers.local_slots``). A spare is started without
#: it and gets its slot's value with its run (:func:`serve_spare`); the empty value of CPU slots (no GPU visible) is
#: the same for every CPU slot, so their spares keep it from the start.
PIN_ENV = "CUDA_VISIBLE_DEVICES"
#: A spare's exit code when it cannot take its pin (:func:`apply_pin`): the coordinator then starts the run cold.
PIN_REFUSED = 3
#: What a spare imports before it waits for its run: everything ``fit`` imports on a run (measured with
#: ``python -X importtime``); a run then only pays for what its config needs beyond them (e.g. a dataset reader).
PREWARM_MODULES = (
    "torch",
    "mlrd_core.config",
    "mlrd_core.trainer",
    "mlrd_core.model",
    "mlrd_core.data",
    "mlrd_core.losses",
    "mlrd_core.metrics",
    "mlrd_core.protocols",
    "mlrd_core.weighting",
)


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Readers see the old file or the new one, never a partial write."""
    write_text_atomic(path, json.dumps(payload, sort_keys=True), hidden=True)


class DamagedFileError(MLRDError, ValueError):
    """A run-folder file exists but is not the JSON object it should be (empty, truncated, not an object)."""


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None when it does not exist (yet). A file that exists but does not hold a
    JSON object (empty, truncated by a kill or a full disk) raises :class:`DamagedFileError` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedFileError(f"{path} cannot be read: {exc}") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        what = "empty" if not text.strip() else f"not valid JSON ({exc})"
        raise DamagedFileError(f"{path} is {what}") from exc
    if not isinstance(value, dict):
        raise DamagedFileError(f"{path} holds a JSON {type(value).__name__}, not an object")
    return value


def peek_json(path: Path) -> dict[str, Any] | None:
    """:func:`read_json` for files that only inform (heartbeats, error records, job notes): a damaged one reads as
    missing, so it can never stop a coordinator."""
    try:
        return read_json(path)
    except DamagedFileError:
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


def run_worker(run_dir: Path, *, origin: Mapping[str, Any] | None = None) -> int:
    """Train the run in ``run_dir``; return the process exit code (0 done, 1 failed).

    ``origin`` goes into the result's ``worker`` record (a spare passes ``{"prestarted": True, ...}``).
    """
    try:
        spec = read_json(run_dir / RUN_FILE)
    except DamagedFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if spec is None:
        print(f"error: {run_dir / RUN_FILE} does not exist", file=sys.stderr)
        return 2
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    with Heartbeat(run_dir / HEARTBEAT_FILE) as heartbeat:
        try:
            prewarm()  # a spare did this already; a cold worker does it here, so fit_s below is fit() alone
            import torch

            from mlrd_core.config import RunConfig
            from mlrd_core.result import result_payload
            from mlrd_core.trainer import fit

            if spec.get("threads"):
                torch.set_num_threads(int(spec["threads"]))
            config = RunConfig.from_dict(spec["config"], where=str(run_dir / RUN_FILE))
            fit_start = time.perf_counter()
            result = fit(
                config,
                seed=int(spec["seed"]),
                device=spec.get("device", "cpu"),
                workdir=run_dir,
                progress=heartbeat.progress,
            )
            fit_s = time.perf_counter() - fit_start
            payload = result_payload(
                result,
                run_id=spec["run_id"],
                attempt=spec.get("attempt"),
                worker={"pid": os.getpid(), "prestarted": False, **(origin or {}), "fit_s": fit_s},
            )
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


def prewarm() -> None:
    """Import what every run needs (:data:`PREWARM_MODULES`), as a spare does before it waits for its run. Nothing
    here may touch CUDA, not even ``torch.cuda.is_available()``: a spare gets its GPU pin only with its run, and CUDA
    reads the pin once (module docstring)."""
    import importlib

    for name in PREWARM_MODULES:
        importlib.import_module(name)


def _take_over_output(run_dir: Path, spare_log: Path) -> None:
    """Point this process's stdout and stderr (file descriptors 1 and 2, so C-level output too) at the run's
    ``worker.log``, after copying into it what the spare printed while it started (import warnings, usually
    nothing). The coordinator owns ``spare_log`` and removes it once this process has ended."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(run_dir / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        try:
            early = spare_log.read_bytes()
        except FileNotFoundError:
            early = b""
        if early:
            os.write(fd, b"[output of the pre-started worker before it got this run]\n" + early)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)


class PinRefusedError(MLRDError, RuntimeError):
    """A spare cannot take its GPU pin: CUDA is already initialised in it, so the pin would be ignored."""


def apply_pin(pin: Mapping[str, str]) -> dict[str, str]:
    """Set a spare's GPU pin (:data:`PIN_ENV`) in ``os.environ`` before anything initialises CUDA; return the
    pinned variables as the process now sees them (the result's ``worker.pinned``).

    Raises :class:`PinRefusedError`, leaving the environment alone, when torch has already initialised CUDA in this
    process: CUDA read the visible devices then, so the run could land on another slot's GPU. See the module
    docstring for what this check cannot see (a bare ``cudaGetDeviceCount``) and why :func:`prewarm` never does it.
    """
    torch = sys.modules.get("torch")
    if pin and torch is not None and torch.cuda.is_initialized():
        wanted = ", ".join(f"{k}={v!r}" for k, v in sorted(pin.items()))
        raise PinRefusedError(
            f"CUDA is already initialised in this pre-started worker, so its GPU pin ({wanted}) would be ignored; "
            f"refusing the run (the coordinator starts it cold)"
        )
    os.environ.update(pin)
    return {name: os.environ[name] for name in pin}


def read_assignment(line: str) -> tuple[Path, dict[str, str]] | None:
    """A spare's assignment line: ``{"run_dir": ..., "env": {...}}`` from the coordinator, or a plain run folder
    (typed by hand: no pin). None for an empty line (the input ended: the spare is not needed)."""
    text = line.strip()
    if not text:
        return None
    if not text.startswith("{"):
        return Path(text), {}
    value = json.loads(text)
    env = value.get("env") or {}
    return Path(value["run_dir"]), {str(k): str(v) for k, v in env.items()}


def serve_spare(spare_log: Path, assignments: IO[str] | None = None) -> int:
    """A pre-started worker: prewarm, wait for one assignment on ``assignments`` (stdin: the run folder and the
    slot's GPU pin, :func:`read_assignment`), set the pin (:func:`apply_pin`), then train that run in this process.
    Returns the exit code: :func:`run_worker`'s, 0 when the input ends before a run came (the coordinator no longer
    needs this spare), or :data:`PIN_REFUSED` when the pin cannot be applied (the message goes to ``spare_log``,
    which the coordinator copies into the run's ``worker.log`` before it starts the run cold)."""
    prewarm()
    ready = time.time()
    assignment = read_assignment((assignments or sys.stdin).readline())
    if assignment is None:
        return 0
    run_dir, pin = assignment
    try:
        pinned = apply_pin(pin)
    except PinRefusedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return PIN_REFUSED
    assigned = time.time()
    _take_over_output(run_dir, spare_log)
    origin = {"prestarted": True, "ready": ready, "assigned": assigned, "pinned": pinned}
    return run_worker(run_dir, origin=origin)


USAGE = "usage: python -m suite.worker RUN_DIR   |   python -m suite.worker --spare SPARE_LOG"


def tie_to_coordinator() -> None:
    """When started by a coordinator (``MLRD_COORDINATOR_PID`` set): ask Linux to SIGKILL this process when the
    coordinator's starting thread ends, whatever killed it (``PR_SET_PDEATHSIG``), and exit at once if the
    coordinator is already gone (it died between starting this process and this call). A process started by hand
    is left alone. Done here rather than between fork and exec, where Python code is unsafe beside other threads."""
    expected = os.environ.get(COORDINATOR_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() != int(expected):
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    tie_to_coordinator()
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--spare":
        return serve_spare(Path(args[1]))
    if len(args) != 1 or args[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    return run_worker(Path(args[0]))


def exit_now(code: int) -> NoReturn:
    """End the process at once with ``code``, skipping the interpreter's teardown (about 1 s with torch and timm
    loaded on a 2-core machine). Only for a worker process whose files are all written and closed: output is
    flushed first, the heartbeat thread has been joined, and nothing else is pending."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
