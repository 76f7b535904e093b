"""Warm spares of the local executor: pre-started workers that become a run's worker (suite.execution.local docstring).

Same numbers as cold starts, the spare's process really is the run's worker, no spare outlives ``execute()``, and a
spare that dies (before or after it got its run) never loses the run. Timings are the benchmark's business
(``python -m suite bench overhead``), not asserted here.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from suite.benchmarks.overhead import TinyRun, tiny_runs
from suite.execution.local import SPARES_DIR, LocalExecutor, Slot, local_slots, spares_pay_off
from suite.execution.protocol import pid_alive
from suite.execution.workers import _profile, slot_pin, spare_slot
from suite.plan import planned_rows
from suite.store import RunState, open_store
from suite.worker import PIN_ENV, PIN_REFUSED, RESULT_FILE, apply_pin, read_assignment, read_json, serve_spare
from suite.worker import main as worker_main

#: One CPU slot of one thread: two xdist workers share the 2 cores, and numbers are comparable across runs.
ONE_THREAD = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SLOT = Slot("cpu0", device="cpu", env=ONE_THREAD, threads=1)
#: Two GPU slots emulated on the CPU: each pins its worker to its "GPU", the trainer runs on the CPU.
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
GPU0 = Slot("gpu0", device="cpu", env={PIN_ENV: "0", **THREADS}, threads=1)
GPU1 = Slot("gpu1", device="cpu", env={PIN_ENV: "1", **THREADS}, threads=1)


class Recorder:
    """Collects the executor's events, and the spares it starts (pid, and the events seen before)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.spares: list[tuple[int, int]] = []  # (pid, number of events before the spare started)

    def __call__(self, kind: str, info: Mapping[str, Any]) -> None:
        self.events.append((kind, dict(info)))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [info for k, info in self.events if k == kind]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    rec = Recorder()
    start_spare = LocalExecutor._start_spare

    def spy(self: LocalExecutor, slot: Slot) -> Any:
        spare = start_spare(self, slot)
        rec.spares.append((spare.proc.pid, len(rec.events)))
        return spare

    monkeypatch.setattr(LocalExecutor, "_start_spare", spy)
    yield rec


def _planned(folder: Path, seeds: list[int], *, spec: str = "w") -> tuple[list[TinyRun], Any]:
    """The runs of ``seeds`` and a fresh store in ``folder`` where they are PLANNED (under ``spec``)."""
    runs = tiny_runs(seeds, spec=spec)
    store = open_store(f"sqlite:///{folder / 'mlrd.db'}")
    store.add_planned(planned_rows(runs))
    return runs, store


def _execute(folder: Path, seeds: list[int], rec: Recorder, *, warm: bool | None = True, **options: Any) -> Any:
    runs, store = _planned(folder, seeds, spec="warm")
    executor = LocalExecutor(store, runs_dir=folder / "runs", slots=[SLOT], warm=warm, **options)
    try:
        summary = executor.execute(runs, on_event=rec)
        frame = store.metrics_frame(spec="warm")
        rows = sorted(tuple(r) for r in frame[["seed", "split", "epoch", "metric", "value"]].itertuples(index=False))
        infos = {r.run_id: store.get_run(r.run_id) for r in runs}
    finally:
        store.close()
    return summary, rows, infos, executor


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _no_spares_left(rec: Recorder, folder: Path) -> None:
    assert rec.spares, "the executor started no spare"
    assert not any(pid_alive(pid) for pid, _ in rec.spares)
    assert not (folder / "runs" / SPARES_DIR).exists()


def test_warm_spares_give_cold_numbers_and_become_the_runs_workers(tmp_path: Path, recorder: Recorder) -> None:
    cold_rec = Recorder()
    cold, cold_rows, _, _ = _execute(tmp_path / "cold", [0, 1, 2], cold_rec, warm=False)
    assert len(cold.done) == 3 and not cold.failed
    assert [info["warm"] for info in cold_rec.of("start")] == [False, False, False]

    spares = tmp_path / "warm" / "runs" / SPARES_DIR  # a killed coordinator's leftover log, and a live one's
    spares.mkdir(parents=True)
    (spares / f"{_dead_pid()}-1-cpu0.log").write_text("left by a coordinator killed with SIGKILL\n")
    (spares / f"{os.getpid()}-7-cpu0.log").write_text("still in use\n")
    summary, rows, infos, executor = _execute(tmp_path / "warm", [0, 1, 2], recorder)
    assert [p.name for p in spares.iterdir()] == [f"{os.getpid()}-7-cpu0.log"]
    (spares / f"{os.getpid()}-7-cpu0.log").unlink()
    spares.rmdir()
    assert len(summary.done) == 3 and not summary.failed
    assert rows == cold_rows  # the same config and seed give the same metrics, however the worker started

    starts = recorder.of("start")
    assert [info["warm"] for info in starts] == [False, True, True]  # a slot's first run starts cold
    assert len(recorder.spares) == 2  # never more spares than queued runs: none after the last run started
    for info in starts[1:]:
        pid = info["pid"]
        started_before = [n for spare_pid, n in recorder.spares if spare_pid == pid]
        assert started_before, "a warm run's worker is one of the spares"
        assert started_before[0] < recorder.events.index(("start", info))  # pre-started before the assignment
        run_id = info["run"].run_id
        assert infos[run_id].worker is not None and f":{pid}:cpu0" in infos[run_id].worker
        record = read_json(executor.run_dir(run_id) / RESULT_FILE)["worker"]  # type: ignore[index]
        assert record["pid"] == pid and record["prestarted"] is True and record["fit_s"] > 0
        assert record["ready"] <= record["assigned"]
    _no_spares_left(recorder, tmp_path / "warm")


def test_no_spare_outlives_an_execute_that_raises(tmp_path: Path, recorder: Recorder) -> None:
    runs, store = _planned(tmp_path, [0, 1])
    try:
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=[SLOT], warm=True)

        def broken() -> bool:
            raise RuntimeError("pruner exploded")

        with pytest.raises(RuntimeError, match="pruner exploded"):
            executor.execute(runs, on_event=recorder, should_stop=broken)
        assert store.get_run(runs[0].run_id).state == RunState.LOST
        assert store.get_run(runs[1].run_id).state == RunState.PLANNED
    finally:
        store.close()
    _no_spares_left(recorder, tmp_path)


def test_a_spare_that_dies_before_its_run_does_not_lose_it(
    tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_spare = LocalExecutor._start_spare  # the recorder's spy

    def killed(self: LocalExecutor, slot: Slot) -> Any:
        spare = start_spare(self, slot)
        spare.proc.send_signal(signal.SIGKILL)
        spare.proc.wait()
        return spare

    monkeypatch.setattr(LocalExecutor, "_start_spare", killed)
    summary, _, infos, executor = _execute(tmp_path, [0, 1, 2], recorder)
    assert len(summary.done) == 3 and not summary.failed
    assert [info["warm"] for info in recorder.of("start")] == [False, False, False]  # the runs started cold
    (failed,) = recorder.of("spare_failed")  # reported once; spares are off for the rest of the batch
    assert failed["code"] == -signal.SIGKILL and "starting the run cold" in failed["error"]
    assert len(recorder.spares) == 1
    second = failed["run"].run_id
    assert (
        "[coordinator] the pre-started worker for slot cpu0 exited"
        in (executor.run_dir(second) / "worker.log").read_text()
    )
    assert all(info.state == RunState.DONE and info.attempts == 1 for info in infos.values())
    _no_spares_left(recorder, tmp_path)


def test_a_spare_that_ends_after_taking_its_run_but_before_starting_it_does_not_lose_it(
    tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's folder reached the spare, which then exited without a heartbeat: the run restarts cold at once,
    without using one of its attempts (max_attempts=1 here)."""
    spawn = LocalExecutor._spawn

    def impostor(args: list[str], slot: Slot, **kwargs: Any) -> subprocess.Popen[bytes]:
        if args[0] == "--spare":  # reads its assignment, prints, and exits without running it
            code = "import sys; sys.stdin.readline(); print('impostor spare giving up'); sys.exit(3)"
            return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.STDOUT, **kwargs)
        return spawn(args, slot, **kwargs)

    monkeypatch.setattr(LocalExecutor, "_spawn", staticmethod(impostor))
    summary, _, infos, _ = _execute(tmp_path, [0, 1], recorder, max_attempts=1)
    assert len(summary.done) == 2 and not summary.failed
    assert [info["warm"] for info in recorder.of("start")] == [False, True, False]
    (failed,) = recorder.of("spare_failed")
    assert failed["code"] == 3 and "impostor spare giving up" in failed["output"]
    assert all(info.state == RunState.DONE for info in infos.values())
    _no_spares_left(recorder, tmp_path)


def test_a_broken_environment_fails_the_run_with_the_workers_trace(tmp_path: Path, recorder: Recorder) -> None:
    """A spare that cannot import is reported; the cold start that replaces it fails the same way, and that real
    worker failure is the run's recorded error."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "timm.py").write_text("raise ImportError('timm is broken on purpose')\n")
    broken = Slot("cpu0", device="cpu", env={**SLOT.env, "PYTHONPATH": f"{shadow}:{':'.join(sys.path)}"}, threads=1)
    runs, store = _planned(tmp_path, [0, 1])
    try:
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=[broken], max_attempts=1, warm=True)
        summary = executor.execute(runs, on_event=recorder)
        assert sorted(summary.failed) == sorted(r.run_id for r in runs)
        for run in runs:
            error = store.get_run(run.run_id).error or ""
            assert error.startswith("ImportError: timm is broken on purpose"), error
    finally:
        store.close()
    (failed,) = recorder.of("spare_failed")
    assert "timm is broken on purpose" in failed["output"]
    _no_spares_left(recorder, tmp_path)


def test_by_default_spares_only_where_they_pay_off(tmp_path: Path, recorder: Recorder) -> None:
    """A one-thread CPU slot has no idle core for a spare's imports (they would slow the run beside them): by
    default its workers start cold. GPU slots and CPU slots of several threads get spares."""
    assert not spares_pay_off(SLOT)
    assert spares_pay_off(Slot("cpu0", threads=2)) and spares_pay_off(Slot("cpu0", threads=None))
    assert spares_pay_off(Slot("gpu0", device="cuda", env={"CUDA_VISIBLE_DEVICES": "0"}))
    assert spares_pay_off(local_slots(1, cuda_devices=[])[0]) == ((local_slots(1)[0].threads or 1) >= 2)
    summary, _, _, _ = _execute(tmp_path, [0, 1], recorder, warm=None)
    assert len(summary.done) == 2 and not recorder.spares
    assert [info["warm"] for info in recorder.of("start")] == [False, False]


def test_worker_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert worker_main([]) == 2
    assert worker_main(["--spare"]) == 2
    assert "usage: python -m suite.worker RUN_DIR" in capsys.readouterr().err


def test_a_spare_that_cannot_start_leaves_the_runs_to_cold_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Spares only save time: an OSError starting one (no memory, too many files) switches them off, not the batch."""
    spawn = LocalExecutor._spawn

    def no_spares(args: list[str], slot: Slot, **kwargs: Any) -> subprocess.Popen[bytes]:
        if args[0] == "--spare":
            raise OSError(24, "Too many open files")
        return spawn(args, slot, **kwargs)

    monkeypatch.setattr(LocalExecutor, "_spawn", staticmethod(no_spares))
    rec = Recorder()
    summary, _, infos, _ = _execute(tmp_path, [0, 1], rec)
    assert len(summary.done) == 2 and not summary.failed
    assert [info["warm"] for info in rec.of("start")] == [False, False]
    assert "no pre-started worker for slot cpu0 ([Errno 24] Too many open files)" in capsys.readouterr().err
    assert all(info.state == RunState.DONE for info in infos.values())
    assert not (tmp_path / "runs" / SPARES_DIR).exists()


def test_progress_says_when_a_run_restarts_cold(capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from suite.progress import SuiteProgress

    run = SimpleNamespace(run_id="ab" * 32, group="g", arm="a", seed=0)
    with SuiteProgress(1) as progress:  # not a terminal: one plain line per event
        progress.event("start", {"run": run, "slot": "cpu0", "warm": True})
        progress.event("spare_failed", {"run": run, "slot": "cpu0", "code": -9, "error": "it died; starting cold"})
        progress.event("start", {"run": run, "slot": "cpu0", "warm": False})
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"start  g/a s0 [{'ab' * 6}] on cpu0",
        f"cold   g/a s0 [{'ab' * 6}]: it died; starting cold",
        f"start  g/a s0 [{'ab' * 6}] on cpu0",
    ]


def test_gpu_slots_share_spares_and_the_pin_goes_with_the_run() -> None:
    """A spare is started without its slot's GPU pin, so slots that differ only in their pin share spares; CPU slots
    keep their empty pin (no GPU visible) from the start, as before."""
    gpus = local_slots(cuda_devices=["0", "3"])
    assert _profile(gpus[0]) == _profile(gpus[1]) and _profile(GPU0) == _profile(GPU1)
    assert PIN_ENV not in spare_slot(gpus[0]).env and spare_slot(GPU1).env == THREADS
    assert slot_pin(gpus[1]) == {PIN_ENV: "3"} and slot_pin(GPU1) == {PIN_ENV: "1"}
    cpu = local_slots(2, cuda_devices=[])[0]
    assert spare_slot(cpu) == cpu and slot_pin(cpu) == {PIN_ENV: ""}
    assert _profile(SLOT) != _profile(GPU0)  # a spare that sees no GPU never serves a pinned slot
    assert slot_pin(Slot("cpu0", threads=2)) == {}


def test_a_spare_serves_whichever_gpu_slot_frees_first(
    tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs 0 and 1 start cold on gpu0 and gpu1, and one spare is started (one queued run) for gpu0, the first busy
    slot. gpu0's worker is held until run 2 has started, so gpu1 frees first: run 2 goes to that spare, not to a cold
    worker, and the spare runs it pinned to gpu1's device."""
    gate = tmp_path / "run 2 started"
    spawn = LocalExecutor._spawn
    spawned: list[tuple[str, str, dict[str, str]]] = []

    def held(args: list[str], slot: Slot, **kwargs: Any) -> subprocess.Popen[bytes]:
        spawned.append((args[0], slot.name, dict(slot.env)))
        if slot.name == "gpu0" and args[0] != "--spare":  # gpu0's cold worker: waits for the gate, then runs
            code = (
                "import os, time\n"
                "deadline = time.monotonic() + 120\n"
                f"while not os.path.exists({str(gate)!r}) and time.monotonic() < deadline: time.sleep(0.02)\n"
                "from suite.worker import exit_now, main\n"
                f"exit_now(main([{args[0]!r}]))\n"
            )
            env = {**os.environ, **slot.env, "PYTHONUNBUFFERED": "1"}
            return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.STDOUT, env=env, **kwargs)
        return spawn(args, slot, **kwargs)

    monkeypatch.setattr(LocalExecutor, "_spawn", staticmethod(held))
    runs, store = _planned(tmp_path, [0, 1, 2])

    def on_event(kind: str, info: Mapping[str, Any]) -> None:
        recorder(kind, info)
        if kind == "start" and info["run"].run_id == runs[2].run_id:
            gate.touch()

    try:
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=[GPU0, GPU1], warm=True)
        summary = executor.execute(runs, on_event=on_event)
        infos = {r.run_id: store.get_run(r.run_id) for r in runs}
    finally:
        store.close()
    assert len(summary.done) == 3 and not summary.failed
    starts = [(info["run"].run_id, info["slot"], info["warm"]) for info in recorder.of("start")]
    assert starts == [(runs[0].run_id, "gpu0", False), (runs[1].run_id, "gpu1", False), (runs[2].run_id, "gpu1", True)]
    assert len(recorder.spares) == 1  # never more spares than queued runs
    assert [(name, env) for what, name, env in spawned if what == "--spare"] == [("gpu0", THREADS)]  # no pin yet
    (pid,) = [info["pid"] for info in recorder.of("start") if info["warm"]]
    assert pid == recorder.spares[0][0]
    assert infos[runs[2].run_id].worker is not None and f":{pid}:gpu1" in infos[runs[2].run_id].worker
    record = read_json(executor.run_dir(runs[2].run_id) / RESULT_FILE)["worker"]  # type: ignore[index]
    assert record["pid"] == pid and record["prestarted"] is True and record["pinned"] == {PIN_ENV: "1"}
    cold = read_json(executor.run_dir(runs[1].run_id) / RESULT_FILE)["worker"]  # type: ignore[index]
    assert cold["prestarted"] is False and "pinned" not in cold
    _no_spares_left(recorder, tmp_path)


def test_a_spare_takes_its_pin_from_the_assignment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PIN_ENV, "0,1")
    assert read_assignment("\n") is None  # the input ended: not needed
    assert read_assignment("/runs/abc\n") == (Path("/runs/abc"), {})  # a plain run folder, typed by hand
    line = json.dumps({"run_dir": "/runs/abc", "env": {PIN_ENV: "1"}})
    assert read_assignment(line + "\n") == (Path("/runs/abc"), {PIN_ENV: "1"})
    assert apply_pin({PIN_ENV: "1"}) == {PIN_ENV: "1"} and os.environ[PIN_ENV] == "1"


def test_a_spare_refuses_its_pin_once_cuda_is_initialised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """CUDA reads the visible devices once: a spare in which it is already initialised would run on the wrong GPU,
    so it exits before touching the run (the coordinator then starts the run cold, as for any spare that ended
    before its run: test_a_spare_that_ends_after_taking_its_run_but_before_starting_it_does_not_lose_it)."""
    import torch

    monkeypatch.setenv(PIN_ENV, "0,1")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    line = json.dumps({"run_dir": str(tmp_path), "env": {PIN_ENV: "1"}}) + "\n"
    assert serve_spare(tmp_path / "spare.log", io.StringIO(line)) == PIN_REFUSED
    assert os.environ[PIN_ENV] == "0,1"
    assert "CUDA is already initialised in this pre-started worker" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # it never took over the run's folder


def test_prewarm_leaves_cuda_alone() -> None:
    """A spare's pin only works if nothing queried or initialised CUDA before it (suite.worker docstring): trace
    prewarm's imports in a fresh interpreter for the torch.cuda calls that do (``is_available`` initialises the
    driver without ``is_initialized()`` turning True)."""
    code = textwrap.dedent(
        """
        import json, sys
        watched = {"is_available", "device_count", "_device_count_nvml", "_lazy_init", "init", "current_device",
                   "set_device", "get_device_properties", "get_device_capability", "mem_get_info"}
        seen = []

        def trace(frame, event, arg):
            code = frame.f_code
            if event == "call" and code.co_name in watched and "torch/cuda/" in code.co_filename.replace(chr(92), "/"):
                seen.append(code.co_name)

        sys.setprofile(trace)
        from suite.worker import prewarm
        prewarm()
        sys.setprofile(None)
        import torch
        print(json.dumps({"calls": seen, "initialized": torch.cuda.is_initialized()}))
        """
    )
    env = {**os.environ, **ONE_THREAD}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == {"calls": [], "initialized": False}
