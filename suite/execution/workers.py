"""Worker processes of the local executor: slots (where a worker runs) and pre-started spares (workers that have
imported and wait for a run folder and a GPU pin); see :mod:`suite.execution.local` for when spares pay off and their
rules."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from suite.execution.protocol import (
    Event,
    pid_alive,
)
from suite.worker import COORDINATOR_ENV, LOG_FILE, PIN_ENV

#: Where the output of spares that have no run yet goes (under the executor's runs folder).
SPARES_DIR = ".spares"


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: a device string for the trainer, extra environment, and a torch thread count."""

    name: str
    device: str = "cpu"
    env: Mapping[str, str] = field(default_factory=dict)
    threads: int | None = None


def local_slots(jobs: int | None = None, *, cuda_devices: Sequence[str] | None = None) -> list[Slot]:
    """One slot per visible GPU, or ``jobs`` CPU slots sharing the cores evenly.

    GPUs are taken from ``cuda_devices`` (default: ``CUDA_VISIBLE_DEVICES`` or every device torch sees); each slot
    pins its worker to one GPU with ``CUDA_VISIBLE_DEVICES``. ``jobs`` forces CPU slots.
    """
    if jobs is None:
        if cuda_devices is None:
            cuda_devices = _visible_cuda_devices()
        if cuda_devices:
            return [Slot(f"gpu{dev}", device="cuda", env={PIN_ENV: str(dev)}) for dev in cuda_devices]
        jobs = 1
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    cores = os.cpu_count() or 1
    threads = max(1, cores // jobs)
    env = {PIN_ENV: "", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return [Slot(f"cpu{i}", device="cpu", env=env, threads=threads) for i in range(jobs)]


def _visible_cuda_devices() -> list[str]:
    visible = os.environ.get(PIN_ENV)
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


@dataclass
class _Spare:
    """A pre-started worker waiting on its stdin for a run folder and a pin (see the module docstring). ``slot`` is the
    slot it was started for: it serves any slot of the same :func:`_profile`, that one first."""

    slot: Slot
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]


def slot_pin(slot: Slot) -> dict[str, str]:
    """The slot's GPU pin (:data:`suite.worker.PIN_ENV` as the slot sets it; empty when it sets none): what a spare
    gets with its run."""
    return {PIN_ENV: slot.env[PIN_ENV]} if PIN_ENV in slot.env else {}


def spare_slot(slot: Slot) -> Slot:
    """The slot as a spare for it is started: its environment less a GPU pin that names devices, so the spare is
    bound to no GPU until it gets its run (and the pin with it). An empty pin (CPU slots: no GPU visible) is the same
    for every CPU slot and stays, so a CPU spare starts exactly as a cold CPU worker does."""
    if not slot.env.get(PIN_ENV):
        return slot
    return replace(slot, env={k: v for k, v in slot.env.items() if k != PIN_ENV})


def _profile(slot: Slot) -> tuple[str, tuple[tuple[str, str], ...], int | None]:
    """What a spare for ``slot`` is started with (:func:`spare_slot`): a spare serves any slot with the same
    profile, so GPU slots that differ only in their pin share their spares."""
    started = spare_slot(slot)
    return started.device, tuple(sorted(started.env.items())), started.threads


def spares_pay_off(slot: Slot) -> bool:
    """Whether a pre-started spare shortens this slot's runs: on a GPU, or with two or more CPU threads (a cold
    worker's imports use one core, so the slot's other cores idle meanwhile); not on a one-thread CPU slot, where a
    spare's imports would only take the core from the run beside it (module docstring)."""
    return slot.device != "cpu" or slot.threads is None or slot.threads >= 2


def _sweep_spare_logs(folder: Path) -> None:
    """Remove spare logs left by coordinators that were killed (their spares died with them). A log is named
    ``<coordinator pid>-<n>-<slot>.log``; those of live coordinators (e.g. a search beside a run) stay."""
    for path in folder.glob("*.log") if folder.is_dir() else ():
        owner = path.name.split("-", 1)[0]
        if owner.isdigit() and not pid_alive(int(owner)):
            path.unlink(missing_ok=True)


def _tail(path: Path, size: int = 4000) -> str:
    try:
        return path.read_bytes()[-size:].decode(errors="replace")
    except FileNotFoundError:
        return ""


class SparePool:
    """The spare-worker half of :class:`suite.execution.local.LocalExecutor` (a mixin: it uses the executor's
    ``slots``, ``warm``, ``runs_dir``, ``run_dir``, ``on_event`` and its ``_spares`` state)."""

    slots: list[Slot]
    warm: bool | None
    runs_dir: Path
    on_event: Event
    _spares: list[_Spare]
    _spares_on: bool
    _spare_count: int

    def run_dir(self, run_id: str) -> Path:
        raise NotImplementedError

    @staticmethod
    def _spawn(args: list[str], slot: Slot, *, stdout: IO[bytes], stdin: int) -> subprocess.Popen[bytes]:
        """``python -m suite.worker ARGS`` with the slot's environment, tied to the coordinator's life."""
        # No preexec_fn (unsafe while other threads run, e.g. Optuna's heartbeat during a search): the worker ties
        # itself to this process first thing (suite.worker.tie_to_coordinator), and its own process group keeps a
        # terminal's Ctrl-C, which goes to the foreground group, for the coordinator alone.
        return subprocess.Popen(
            [sys.executable, "-m", "suite.worker", *args],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=stdin,
            env={**os.environ, **slot.env, "PYTHONUNBUFFERED": "1", COORDINATOR_ENV: str(os.getpid())},
            process_group=0,
        )

    # ------------------------------------------------------------------------------------------ spares
    def _top_up_spares(self, queued: int) -> None:
        """Start spares for busy slots that have none, up to one per queued run (a spare nobody needs would only
        take CPU from the runs). Called right after runs were started, so the imports overlap with their work. Which
        slot a spare is started for only sets its profile: it goes to whichever slot of that profile frees first."""
        if not self._spares_on:
            return
        served = {s.slot.name for s in self._spares}
        for slot in self.slots:
            if len(self._spares) >= queued:
                return
            if slot.name not in served and (self.warm or spares_pay_off(slot)):
                try:
                    self._spares.append(self._start_spare(slot))
                except OSError as exc:  # spares only save time: without one, the next run starts cold
                    print(
                        f"warning: no pre-started worker for slot {slot.name} ({exc}); starting workers cold",
                        file=sys.stderr,
                    )
                    self._spares_on = False
                    return
                served.add(slot.name)

    def _start_spare(self, slot: Slot) -> _Spare:
        folder = self.runs_dir / SPARES_DIR
        if self._spare_count == 0:
            _sweep_spare_logs(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._spare_count += 1
        log_path = folder / f"{os.getpid()}-{self._spare_count}-{slot.name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed when the spare ends or its run does
        try:
            proc = self._spawn(["--spare", str(log_path)], spare_slot(slot), stdout=log, stdin=subprocess.PIPE)
        except OSError:
            log.close()
            self._forget_spare_log(log_path)
            raise
        return _Spare(slot=slot, proc=proc, log_path=log_path, log=log)

    def _take_spare(self, slot: Slot, run: Any) -> _Spare | None:
        """Hand ``run``'s folder and ``slot``'s GPU pin (:func:`slot_pin`) to a spare of ``slot``'s profile (its own
        first, else one started for another slot); None when there is none or it died (then spares are off for the
        rest of this ``execute`` and the run starts cold). A spare that cannot take the pin exits
        (:data:`suite.worker.PIN_REFUSED`) and is handled like one that died after its assignment."""
        profile = _profile(slot)
        candidates = sorted(
            (s for s in self._spares if _profile(s.slot) == profile), key=lambda s: s.slot.name != slot.name
        )
        if not candidates:
            return None
        spare = candidates[0]
        self._spares.remove(spare)
        if spare.proc.poll() is None and spare.proc.stdin is not None:
            try:
                assignment = {"run_dir": str(self.run_dir(run.run_id)), "env": slot_pin(slot)}
                spare.proc.stdin.write(f"{json.dumps(assignment)}\n".encode())
                spare.proc.stdin.close()
                return spare
            except BrokenPipeError:  # it died between poll() and the write
                pass
        code, why = self._reap_spare(spare, kill=False, output=True)  # it ended on its own: its own exit code
        self._spare_failed(run, slot, code, why=why)
        return None

    def _spare_failed(self, run: Any, slot: Slot, code: int, *, why: str) -> None:
        """A spare ended before it started ``run``: note it in the run's log, report it, and switch spares off for
        the rest of this ``execute`` (the same cause would likely kill the next ones). The caller starts the run
        cold; a real problem then fails that worker and is recorded as the run's failure."""
        message = (
            f"the pre-started worker for slot {slot.name} exited with code {code} before it started this run; "
            f"starting the run cold (pre-started workers are off for the rest of this batch)"
        )
        with open(self.run_dir(run.run_id) / LOG_FILE, "a", encoding="utf-8") as log:
            log.write(f"[coordinator] {message}\n" + (f"[its output]\n{why}\n" if why else ""))
        self.on_event("spare_failed", {"run": run, "slot": slot.name, "code": code, "error": message, "output": why})
        self._spares_on = False
        self._discard_spares()

    def _discard_spares(self) -> None:
        """End every idle spare (see :meth:`_reap_spare`)."""
        spares, self._spares = self._spares, []
        for spare in spares:
            self._reap_spare(spare)

    def _reap_spare(self, spare: _Spare, *, kill: bool = True, output: bool = False) -> tuple[int, str]:
        """End a spare that has no run: close its pipe, SIGKILL it if ``kill`` and it still runs (it holds no state,
        so that is safe and immediate), wait for it, close and remove its log. Returns its exit code and, with
        ``output``, the end of what it printed."""
        if spare.proc.stdin is not None:
            with contextlib.suppress(OSError):
                spare.proc.stdin.close()
        if kill and spare.proc.poll() is None:
            spare.proc.kill()
        code = spare.proc.wait()
        spare.log.close()
        printed = _tail(spare.log_path) if output else ""
        self._forget_spare_log(spare.log_path)
        return code, printed

    def _forget_spare_log(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the folder goes once no spare of any coordinator uses it
