"""The fault matrix (docs/running.md, "Faults"): what a kill, a damaged file or a second coordinator does to a spec.

Two layers. The folder-level cases build the exact state a fault leaves (a run RUNNING under a coordinator that is
gone, a result or heartbeat file damaged, a checkpoint truncated) around synthetic results and settle it in process:
no training, so they are fast and each asserts the precise outcome (ingested once, rejected and moved aside, LOST
and resumable). The end-to-end cases (``slow``) run ``python -m suite run`` on a two-run spec and compare every
metric with one uninterrupted reference run, check each run is DONE exactly once with no duplicate rows, that no
worker outlives its coordinator, and that no traceback reaches the user.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tiny_spec import write_spec

from mlrd_core.errors import ConfigError
from mlrd_core.result import RESULT_FORMAT, ResultError, RunResult, result_payload, validate_result
from mlrd_core.trainer import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    PREVIOUS_CHECKPOINT_NAME,
    load_resume_checkpoint,
    save_checkpoint,
)
from suite.benchmarks.overhead import tiny_runs
from suite.cli import main
from suite.commands._common import shown_url
from suite.execution.local import LocalExecutor, Slot
from suite.execution.protocol import pid_alive, settle_abandoned, settle_running, take_result
from suite.plan import planned_rows
from suite.store import RunState, open_store
from suite.worker import HEARTBEAT_FILE, RESULT_FILE, read_json

ONE_THREAD = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ------------------------------------------------------------------------------------------------ helpers


def dead_pid() -> int:
    """The pid of a process that has exited (a coordinator killed before)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def fake_result(run: Any, *, attempt: str | None, value: float = 0.5) -> dict[str, Any]:
    """The ``result.json`` a worker writes for ``run`` (synthetic numbers)."""
    result = RunResult(
        config=run.config.to_dict(),
        seed=run.seed,
        loss_names=["l_D^0"],
        metrics=[{"split": "test", "epoch": 0, "protocol": "synthetic", "name": "rmse", "value": value}],
        timings={"s_per_iter": 0.1},
        environment={"device": "cpu"},
    )
    return result_payload(result, run_id=run.run_id, attempt=attempt, worker={"pid": 1})


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Any, Any, Any, Path]]:
    """A store with one run RUNNING under the claim of a coordinator that is gone (SIGKILLed), and its folder."""
    run = tiny_runs([0], spec="faults")[0]
    store = open_store(f"sqlite:///{tmp_path / 'mlrd.db'}")
    store.add_planned(planned_rows([run]))
    owner = f"{socket.gethostname()}:{dead_pid()}:gone"
    info = store.claim(run.run_id, owner=owner, token="tok-old", worker=owner, stale_after_s=120)
    assert info is not None
    folder = tmp_path / "runs" / run.run_id[:16]
    folder.mkdir(parents=True)
    try:
        yield store, run, store.get_run(run.run_id), folder
    finally:
        store.close()


def info_of(store: Any, run_id: str) -> Any:
    info = store.get_run(run_id)
    assert info is not None
    return info


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------------------------ result files


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("empty", "is empty"),
        ("braces", r"it is empty \(\{\}\)"),
        ("truncated", "not valid JSON"),
        ("list", "holds a JSON list"),
        ("foreign", "is the result of run"),
        ("stale", "a stale result of an earlier attempt"),
        ("other config", "is not the run's config"),
        ("old format", f"this suite reads format {RESULT_FORMAT}"),
    ],
)
def test_a_bad_result_is_rejected_moved_aside_and_named(tmp_path: Path, kind: str, message: str) -> None:
    run, other = tiny_runs([0, 1])
    good = fake_result(run, attempt="tok")
    text = {
        "empty": "",
        "braces": "{}",
        "truncated": json.dumps(good)[:50],
        "list": "[1, 2]",
        "foreign": json.dumps(fake_result(other, attempt="tok")),
        "stale": json.dumps(fake_result(run, attempt="tok-earlier")),
        "other config": json.dumps({**good, "config": {**good["config"], "lr": 1.0}}),
        "old format": json.dumps({**good, "format": 0}),
    }[kind]
    write(tmp_path / RESULT_FILE, text)
    config = run.config.to_dict()
    payload, problem = take_result(tmp_path, run_id=run.run_id, config=config, seed=0, attempt="tok")
    assert payload is None and problem is not None
    rejected = list(tmp_path.glob(f"{RESULT_FILE}.rejected-*"))
    assert len(rejected) == 1 and rejected[0].read_text() == text  # moved aside, intact, for inspection
    assert not (tmp_path / RESULT_FILE).exists()
    assert str(tmp_path / RESULT_FILE) in problem and rejected[0].name in problem
    assert re.search(message, problem), problem

    write(tmp_path / RESULT_FILE, json.dumps(good))
    payload, problem = take_result(tmp_path, run_id=run.run_id, config=config, seed=0, attempt="tok")
    assert problem is None and payload is not None and payload["metrics"] == good["metrics"]


def test_the_schema_lives_beside_run_result() -> None:
    run = tiny_runs([0])[0]
    payload = fake_result(run, attempt=None)
    assert {"format", "run_id", "config_hash", "attempt"} <= set(payload)
    assert validate_result(payload, run_id=run.run_id, config=run.config.to_dict(), seed=0)["seed"] == 0
    with pytest.raises(ResultError, match="seed 0, the run has seed 3"):
        validate_result(payload, run_id=run.run_id, config=run.config.to_dict(), seed=3)
    broken = {**payload, "metrics": [{"split": "test"}]}
    with pytest.raises(ResultError, match=r"metrics\[0\] has no 'epoch'"):
        validate_result(broken, run_id=run.run_id, config=run.config.to_dict(), seed=0)


# ------------------------------------------------------------------------------------------------ after a kill


def test_coordinator_killed_during_ingest_the_next_one_ingests_once(held: Any) -> None:
    """SIGKILL of the coordinator between the worker's result and its ingest: the next coordinator ingests the
    result under the dead claim, once, even when two of them settle the same run."""
    store, run, info, folder = held
    write(folder / RESULT_FILE, json.dumps(fake_result(run, attempt="tok-old")))
    assert settle_abandoned(store, info, folder, "its coordinator is gone")
    assert not settle_abandoned(store, info, folder, "its coordinator is gone")  # a second settler writes nothing
    ingested, _ = settle_running(store, store.runs(states=["RUNNING"]), lambda r: folder, stale_after_s=120)
    assert ingested == []
    done = store.get_run(run.run_id)
    assert done.state == RunState.DONE and done.attempts == 1
    assert len(store.metrics_frame()) == 1  # no duplicate rows


@pytest.mark.parametrize("damage", ["empty", "foreign", "truncated"])
def test_a_bad_result_left_by_a_killed_coordinator_makes_the_run_lost_not_done(held: Any, damage: str) -> None:
    store, run, info, folder = held
    other = tiny_runs([5])[0]
    text = {"empty": "{}", "foreign": json.dumps(fake_result(other, attempt="tok-old")), "truncated": '{"format": 1'}
    write(folder / RESULT_FILE, text[damage])
    write(folder / HEARTBEAT_FILE, '{"pid": 12, "ti')  # a truncated heartbeat beside it never stops anyone
    ingested, _ = settle_running(store, [info], lambda r: folder, stale_after_s=120)
    assert ingested == []
    lost = store.get_run(run.run_id)
    assert lost.state == RunState.LOST and "coordinator (pid" in (lost.error or "")
    assert "rejected" in (lost.error or "") and str(folder / RESULT_FILE) in (lost.error or "")
    assert list(folder.glob(f"{RESULT_FILE}.rejected-*")) and not (folder / RESULT_FILE).exists()
    assert len(store.metrics_frame()) == 0


def test_a_live_coordinators_run_is_left_alone_and_a_stale_lease_is_taken_over(tmp_path: Path) -> None:
    run = tiny_runs([0], spec="faults")[0]
    folder = tmp_path / "runs" / run.run_id[:16]
    folder.mkdir(parents=True)
    with open_store(f"sqlite:///{tmp_path / 'mlrd.db'}") as store:
        store.add_planned(planned_rows([run]))
        me = f"{socket.gethostname()}:{os.getpid()}:alive"
        store.claim(run.run_id, owner=me, token="tok-live", worker=me, stale_after_s=120)
        write(folder / RESULT_FILE, json.dumps(fake_result(run, attempt="tok-live")))
        settle_running(store, store.runs(states=["RUNNING"]), lambda r: folder, stale_after_s=120)
        assert info_of(store, run.run_id).state == RunState.RUNNING  # its holder ingests it, nobody else
        assert (folder / RESULT_FILE).exists()
        settle_running(store, store.runs(states=["RUNNING"]), lambda r: folder, stale_after_s=0)
        assert info_of(store, run.run_id).state == RunState.DONE  # a stale lease: taken over (here: ingested)


def test_a_second_executor_waits_for_a_run_another_holds_and_counts_it_when_done(tmp_path: Path) -> None:
    """The executor claims before it touches a folder: a run held by a live coordinator is not prepared, started
    or ingested here; once its holder finishes it, it counts as done elsewhere."""
    run = tiny_runs([0], spec="faults")[0]
    store = open_store(f"sqlite:///{tmp_path / 'mlrd.db'}")
    try:
        store.add_planned(planned_rows([run]))
        me = f"{socket.gethostname()}:{os.getpid()}:first"
        store.claim(run.run_id, owner=me, token="tok-1", worker=me, stale_after_s=120)
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=[Slot("cpu0", env=ONE_THREAD, threads=1)])
        events: list[str] = []

        def on_event(kind: str, info: Any) -> None:
            events.append(kind)
            if kind == "waiting":  # the first holder finishes meanwhile
                store.ingest_result(run.run_id, fake_result(run, attempt="tok-1"), token="tok-1")

        summary = executor.execute([run], on_event=on_event)
        assert summary.elsewhere == [run.run_id] and summary.done == [] and not summary.failed
        assert events == ["waiting", "done_elsewhere"]
        assert not (tmp_path / "runs").exists()  # never touched the folder
        assert info_of(store, run.run_id).attempts == 1
    finally:
        store.close()


def test_a_slurm_run_held_on_another_host_with_a_fresh_lease_is_left_to_its_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run another host's coordinator claimed for SLURM (no job id yet: ``slurm:pending``) is waited for, not
    settled by its job state, while that coordinator's lease is fresh; once the lease is stale it is settled (LOST)
    and claimed here."""
    from datetime import UTC, datetime, timedelta

    import suite.execution.protocol
    from suite.execution.protocol import ExecutionSummary

    run = tiny_runs([0], spec="faults")[0]
    store = open_store(f"sqlite:///{tmp_path / 'mlrd.db'}")
    try:
        store.add_planned(planned_rows([run]))
        store.claim(run.run_id, owner="elsewhere:4242:x", token="tok-1", worker="slurm:pending", stale_after_s=120)
        asked: list[object] = []
        monkeypatch.setattr(suite.execution.protocol, "settle_slurm_runs", lambda st, infos: asked.extend(infos) or {})
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=[Slot("cpu0", env=ONE_THREAD, threads=1)])
        executor._fresh = set()
        waiting, queue = {run.run_id: run}, []  # type: ignore[var-annotated]
        executor._check_waiting(waiting, queue, ExecutionSummary())
        assert list(waiting) == [run.run_id] and queue == [] and asked == []  # its holder may be submitting
        assert info_of(store, run.run_id).state == RunState.RUNNING

        store.heartbeat(run.run_id, at=datetime.now(UTC) - timedelta(seconds=300), token="tok-1")
        monkeypatch.setattr(
            suite.execution.protocol,
            "settle_slurm_runs",
            lambda st, infos: [st.mark_lost(i.run_id, "its job ended", token=i.token) for i in infos] and {},
        )
        executor._check_waiting(waiting, queue, ExecutionSummary())
        assert waiting == {} and queue == [run] and info_of(store, run.run_id).state == RunState.LOST
    finally:
        store.close()


def test_execute_takes_steer_or_should_stop_not_both(tmp_path: Path) -> None:
    from suite.execution import Steer

    store = open_store(f"sqlite:///{tmp_path / 'mlrd.db'}")
    try:
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=[Slot("cpu0", env=ONE_THREAD, threads=1)])
        with pytest.raises(ValueError, match="give steer or should_stop, not both"):
            executor.execute([], steer=lambda summary: Steer(closed=True), should_stop=lambda: False)
        assert executor.execute([], steer=lambda summary: Steer(closed=True)).done == []
    finally:
        store.close()


def test_a_coordinator_whose_lease_was_taken_over_stops_its_worker_and_writes_nothing(tmp_path: Path) -> None:
    """Coordinator A's lease went stale (say its host hung) and B took the run over. A's next heartbeat finds its
    claim gone: A stops its worker, leaves the run to B (it waits for it), and writes nothing to the store."""
    from datetime import UTC, datetime, timedelta

    from suite.execution.local import _Active
    from suite.execution.protocol import ExecutionSummary

    run = tiny_runs([0], spec="faults")[0]
    folder = tmp_path / "runs" / run.run_id[:16]
    folder.mkdir(parents=True)
    store = open_store(f"sqlite:///{tmp_path / 'mlrd.db'}")
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.add_planned(planned_rows([run]))
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=[Slot("cpu0", env=ONE_THREAD, threads=1)])
        store.claim(run.run_id, owner=executor.owner, token="tok-A", worker="a", stale_after_s=120)
        store.heartbeat(run.run_id, at=datetime.now(UTC) - timedelta(seconds=300), token="tok-A")
        assert store.claim(run.run_id, owner="hostB:1:b", token="tok-B", worker="b", stale_after_s=120) is not None
        write(folder / HEARTBEAT_FILE, json.dumps({"pid": worker.pid, "time": time.time()}))
        log = open(tmp_path / "worker.log", "ab")  # noqa: SIM115 - closed by the executor
        act = _Active(run=run, slot=executor.slots[0], proc=worker, run_dir=folder, log=log, started=time.time(),
                      token="tok-A")  # fmt: skip
        active, waiting, events = {run.run_id: act}, {}, []  # type: ignore[var-annotated]
        executor.on_event = lambda kind, info: events.append(kind)
        executor._poll(active, [], {run.run_id: 1}, ExecutionSummary(), waiting)
        assert active == {} and list(waiting) == [run.run_id] and events == ["claim_lost"]
        assert worker.poll() is not None  # stopped
        info = info_of(store, run.run_id)
        assert info.state == RunState.RUNNING and info.owner == "hostB:1:b" and info.token == "tok-B"
    finally:
        worker.kill()
        worker.wait()
        store.close()


# ------------------------------------------------------------------------------------------------ checkpoints


def _ckpt(step: int) -> dict[str, Any]:
    payload: dict[str, Any] = {key: {} for key in ("model", "optimizer", "weighting", "scaler", "rng", "metrics")}
    return {**payload, "format": CHECKPOINT_FORMAT, "config": {"a": 1}, "seed": 0, "epoch": 0, "next_batch": step,
            "step": step}  # fmt: skip


def test_a_damaged_checkpoint_falls_back_to_the_previous_then_to_a_fresh_start(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / CHECKPOINT_NAME, _ckpt(1))
    save_checkpoint(tmp_path / CHECKPOINT_NAME, _ckpt(2))
    assert (tmp_path / PREVIOUS_CHECKPOINT_NAME).exists() and not list(tmp_path.glob("*.tmp"))
    warnings: list[str] = []
    ckpt, path = load_resume_checkpoint(tmp_path, config={"a": 1}, seed=0, warn=warnings.append)
    assert ckpt is not None and ckpt["step"] == 2 and path == tmp_path / CHECKPOINT_NAME and not warnings

    data = (tmp_path / CHECKPOINT_NAME).read_bytes()
    (tmp_path / CHECKPOINT_NAME).write_bytes(data[: len(data) // 2])  # truncated
    ckpt, path = load_resume_checkpoint(tmp_path, config={"a": 1}, seed=0, warn=warnings.append)
    assert ckpt is not None and ckpt["step"] == 1 and path == tmp_path / PREVIOUS_CHECKPOINT_NAME
    assert len(warnings) == 1 and str(tmp_path / CHECKPOINT_NAME) in warnings[0]
    assert "previous checkpoint" in warnings[0] and list(tmp_path.glob(f"{CHECKPOINT_NAME}.damaged-*"))

    (tmp_path / PREVIOUS_CHECKPOINT_NAME).write_bytes(b"")
    ckpt, path = load_resume_checkpoint(tmp_path, config={"a": 1}, seed=0, warn=warnings.append)
    assert ckpt is None and path is None and "fresh start" in warnings[-1]

    save_checkpoint(tmp_path / CHECKPOINT_NAME, _ckpt(3))
    with pytest.raises(ConfigError, match="belongs to another run"):  # not damaged: someone else's
        load_resume_checkpoint(tmp_path, config={"a": 2}, seed=0)


# ------------------------------------------------------------------------------------------------ commands


def test_read_only_commands_create_nothing_and_keep_rendered_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path)
    missing = f"sqlite:///{tmp_path / 'nonexistent' / 'dir' / 'x.db'}"
    for command in ("status", "table", "figures", "export"):
        code = main([command, str(spec), "--db", missing, "--results", str(tmp_path / "results")])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and "no results store at" in err and "x.db" in err, (command, err)
    assert main(["plan", str(spec), "--db", missing]) == 0
    assert not (tmp_path / "nonexistent").exists() and not (tmp_path / "results").exists()

    results = tmp_path / "results"
    with open_store(f"sqlite:///{results / 'mlrd.db'}"):
        pass
    (results / "tiny").mkdir(parents=True)
    write(results / "tiny" / "tiny.md", "rendered numbers")
    assert main(["table", str(spec), "--results", str(results)]) == 0
    assert "left as they are" in capsys.readouterr().err
    assert (results / "tiny" / "tiny.md").read_text() == "rendered numbers"


def test_labels_with_markup_print_as_text_and_names_match_in_full(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path)
    text = (
        spec.read_text()
        .replace('label = "D"', 'label = "D [/oops]"')
        .replace('label = "all"', 'label = "sweep [schedule=-3]"')
    )
    spec.write_text(text)
    assert main(["plan", str(spec), "--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "D [/oops]" in out and "sweep [schedule=-3]" in out

    spec.write_text(text.replace('name = "tiny"\ntitle', 'name = "tiny\\n"\ntitle'))
    assert main(["plan", str(spec)]) == 2
    assert "invalid spec name 'tiny\\n'" in capsys.readouterr().err


def test_status_shows_the_current_plan_and_figures_only_done_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``status SPEC`` lists the runs the spec plans now (new ones too) and, apart, the store's history under its
    name that it no longer plans; ``figures`` draws DONE runs only and names the others."""
    import argparse

    from suite.commands._common import load_plan

    results = tmp_path / "results"
    old = write_spec(tmp_path, seeds=(0, 1))
    _, runs = load_plan(argparse.Namespace(spec=old, overrides=[]))
    with open_store(f"sqlite:///{results / 'mlrd.db'}") as store:
        store.add_planned(planned_rows([r for r in runs if r.seed == 1]))  # history: seed 1 ran before
        trial = {"run_id": "searchtrial0", "spec": "tiny", "group": "search", "arm": "3 -> -3 @ 2", "seed": 0}
        store.add_planned([{**trial, "config": {"x": 1}}])  # a trial run of the spec's search: current
    write_spec(tmp_path, seeds=(0,))  # the spec now plans seed 0 only
    assert main(["status", str(old), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    plan_part, history = out.split("history: no longer planned")
    assert plan_part.count("│ new") == 2 and history.count("PLANNED") == 2
    assert "searchtrial0" in plan_part and "searchtrial0" not in history
    from suite.commands.status import SEARCH_GROUP
    from suite.search import SEARCH_GROUP as searched

    assert searched == SEARCH_GROUP

    assert main(["figures", str(old), "--results", str(results)]) == 0
    err = capsys.readouterr().err
    assert "figures use DONE runs only; left out (not finished): a/D s0 (new), a/all s0 (new)" in err


def test_live_progress_prints_markup_in_labels_and_errors_as_text() -> None:
    """On a terminal the run's progress lines go through rich: a label or an error with ``[/oops]`` in it must
    show as written, not crash the coordinator (which would leave its runs RUNNING)."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from suite.progress import SuiteProgress

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200)
    run = SimpleNamespace(run_id="r" * 16, group="g [/oops]", arm="sweep [schedule=-3]", seed=0)
    with SuiteProgress(1, console=console) as progress:
        progress.event("start", {"run": run, "slot": "cpu0"})
        progress.event("waiting", {"run": run, "owner": "host:1:[bold]"})
        progress.event("failed", {"run": run, "error": "ValueError: bad [/oops] value"})
    text = buffer.getvalue()
    assert "g [/oops]/sweep [schedule=-3] s0" in text and "bad [/oops] value" in text and "host:1:[bold]" in text


def test_passwords_are_masked_even_in_urls_that_do_not_parse() -> None:
    assert "secret" not in shown_url("postgresql+psycopg://bob:secret@db:5432/mlrd")
    assert (
        shown_url("postgresql+psycopg://bob:secret@db:notaport/mlrd") == "postgresql+psycopg://bob:***@db:notaport/mlrd"
    )


# ------------------------------------------------------------------------------------------------ end to end

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **ONE_THREAD}


def suite(*args: str) -> list[str]:
    return [sys.executable, "-m", "suite", *args]


def outcome(results: Path) -> tuple[list[tuple[Any, ...]], list[Any]]:
    """(sorted metric rows, the runs) of the spec in ``results``; asserts every run is DONE exactly once."""
    with open_store(f"sqlite:///{results / 'mlrd.db'}", create=False) as store:
        frame = store.metrics_frame(spec="tiny")
        runs = store.runs(spec="tiny")
    assert [r.state for r in runs] == [RunState.DONE] * 2, [(r.state, r.error) for r in runs]
    rows = sorted(tuple(r) for r in frame[["arm", "seed", "split", "epoch", "metric", "value"]].itertuples(index=False))
    assert len(rows) == len(set(rows))  # no duplicate rows
    return rows, runs


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text and "JSONDecodeError" not in text, text[-3000:]


def worker_pids(results: Path) -> list[int]:
    pids = []
    for path in (results / "runs").glob("*/heartbeat.json"):
        beat = read_json(path) if path.stat().st_size else None
        if beat and "pid" in beat:
            pids.append(int(beat["pid"]))
    return pids


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[tuple[Any, ...]]]:
    """One uninterrupted run of a two-run spec: (spec, results, metric rows)."""
    folder = tmp_path_factory.mktemp("faults")
    spec = write_spec(folder, seeds=(0,))
    results = folder / "reference"
    done = subprocess.run(suite("run", str(spec), "--results", str(results), "--jobs", "1"), env=ENV, text=True,
                          capture_output=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows, _ = outcome(results)
    return spec, results, rows


def _rerun(spec: Path, results: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        suite("run", str(spec), "--results", str(results), "--jobs", "1"), env=ENV, text=True, capture_output=True
    )
    no_traceback(done.stdout, done.stderr)
    assert done.returncode == 0, done.stderr
    return done


def _orphaned_claims(results: Path) -> tuple[list[Any], list[Path]]:
    """Put every run of ``results`` back to RUNNING under the claim of a coordinator that is gone (what a SIGKILL
    of the coordinator leaves) and return the runs and their folders."""
    owner = f"{socket.gethostname()}:{dead_pid()}:killed"
    with open_store(f"sqlite:///{results / 'mlrd.db'}") as store:
        runs = store.runs(spec="tiny")
        for info in runs:
            store.claim(info.run_id, owner=owner, token=f"t-{info.run_id[:6]}", worker=owner, stale_after_s=1e9,
                        force=True)  # fmt: skip
    return runs, [results / "runs" / r.run_id[:16] for r in runs]


@pytest.mark.slow
def test_damaged_results_heartbeat_and_checkpoint_after_a_kill_resume_to_the_reference(
    reference: Any, tmp_path: Path
) -> None:
    """A coordinator SIGKILLed after its workers finished left: in one run's folder a truncated ``result.json``
    and a truncated ``heartbeat.json``; in the other's another run's ``result.json`` (foreign) and a truncated
    ``checkpoint.pt``. The next ``run`` rejects both results (moved aside), resumes the first run from its
    checkpoint and the second from the previous checkpoint, and ends with the reference's numbers."""
    spec, ref, expected = reference
    results = tmp_path / "results"
    shutil.copytree(ref, results)
    _, folders = _orphaned_claims(results)
    text = (folders[0] / RESULT_FILE).read_text()
    write(folders[0] / RESULT_FILE, text[: len(text) // 2])
    write(folders[0] / HEARTBEAT_FILE, '{"pid": 1, "ti')
    write(folders[1] / RESULT_FILE, text)  # the first run's numbers in the second run's folder
    data = (folders[1] / CHECKPOINT_NAME).read_bytes()
    (folders[1] / CHECKPOINT_NAME).write_bytes(data[: len(data) // 3])
    done = _rerun(spec, results)
    assert "2 to run" in done.stderr
    rows, _ = outcome(results)
    assert rows == expected
    assert all(len(list(f.glob(f"{RESULT_FILE}.rejected-*"))) == 1 for f in folders)
    assert list(folders[1].glob(f"{CHECKPOINT_NAME}.damaged-*"))
    assert "does not load" in (folders[1] / "worker.log").read_text()


@pytest.mark.slow
def test_three_coordinators_together_and_half_a_second_apart_share_the_spec(reference: Any, tmp_path: Path) -> None:
    """Two coordinators started together and a third 0.5 s later, on one spec and one store: each run is trained
    once (one attempt), all three exit 0 with the reference's numbers, no worker is left."""
    spec, _, expected = reference
    results = tmp_path / "results"
    command = suite("run", str(spec), "--results", str(results), "--jobs", "1")
    procs = []
    for gap_s in (0.0, 0.0, 0.5):
        time.sleep(gap_s)
        procs.append(subprocess.Popen(command, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        no_traceback(out, err)
        assert proc.returncode == 0, err
    rows, runs = outcome(results)
    assert rows == expected
    assert all(r.attempts == 1 for r in runs)  # nobody started a run twice
    assert not any(pid_alive(pid) for pid in worker_pids(results))


def _wait_for(predicate: Any, timeout: float = 300.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the kill point")


def _training_worker(results: Path, exclude: set[int]) -> int | None:
    """The pid of a worker (not in ``exclude``) that has started its run but not yet checkpointed."""
    for folder in (results / "runs").glob("*") if (results / "runs").exists() else ():
        beat = folder / HEARTBEAT_FILE
        if beat.exists() and not (folder / CHECKPOINT_NAME).exists():
            try:
                pid = int(json.loads(beat.read_text())["pid"])
            except (ValueError, KeyError, OSError):
                continue
            if pid not in exclude and pid_alive(pid):
                return pid
    return None


@pytest.mark.slow
def test_kills_before_the_first_checkpoint_resume_to_the_reference(reference: Any, tmp_path: Path) -> None:
    """Before the first checkpoint of a run, in turn: SIGKILL its worker (the coordinator retries it), SIGINT the
    coordinator (it stops its worker, exits 130), SIGKILL the coordinator (its worker dies with it). The same
    command then finishes with the reference's numbers; no worker outlives its coordinator."""
    spec, _, expected = reference
    results = tmp_path / "results"

    def start() -> subprocess.Popen[str]:
        command = suite("run", str(spec), "--results", str(results), "--jobs", "1")
        return subprocess.Popen(
            command, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )

    seen: set[int] = set()

    def next_worker() -> int:
        _wait_for(lambda: _training_worker(results, seen) is not None)
        pid = _training_worker(results, seen)
        assert pid is not None
        seen.add(pid)
        return pid

    coord = start()
    os.kill(next_worker(), signal.SIGKILL)  # the worker: its attempt fails, the coordinator retries it
    next_worker()  # the retry, before its first checkpoint
    os.killpg(coord.pid, signal.SIGINT)  # Ctrl-C: the coordinator stops the retried worker and exits 130
    out, err = coord.communicate(timeout=300)
    no_traceback(out, err)
    assert coord.returncode == 130, err

    coord = start()
    worker = next_worker()
    coord.kill()  # SIGKILL of the coordinator: the worker dies with it
    coord.communicate(timeout=60)
    _wait_for(lambda: not pid_alive(worker), timeout=30)

    _rerun(spec, results)
    rows, _ = outcome(results)
    assert rows == expected
    assert not any(pid_alive(pid) for pid in seen)
