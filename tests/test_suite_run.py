"""End to end: `python -m suite run` on a tiny spec, resume, kills of a worker and of the coordinator, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from tiny_spec import spec_text, write_spec

from suite.cli import main
from suite.execution.protocol import pid_alive
from suite.store import open_store
from suite.worker import COORDINATOR_ENV


def metric_rows(results: Path) -> list[tuple[object, ...]]:
    store = open_store(f"sqlite:///{results / 'mlrd.db'}")
    try:
        frame = store.metrics_frame(spec="tiny")
        counts = store.counts("tiny")
    finally:
        store.close()
    assert counts["DONE"] == 4 and sum(counts.values()) == 4, counts
    cols = ["arm", "seed", "split", "epoch", "metric", "value"]
    return sorted(tuple(r) for r in frame[cols].itertuples(index=False))


def suite_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "suite", *args]


def test_run_renders_tables_and_the_same_command_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path)
    results = tmp_path / "results"
    assert main(["run", str(spec), "--results", str(results), "--jobs", "2"]) == 0
    out = capsys.readouterr()
    assert "tiny table" in out.out and "| D " in out.out
    assert (results / "tiny" / "tiny.md").exists() and (results / "tiny" / "tiny.tex").exists()
    first = metric_rows(results)
    assert {r[2] for r in first} == {"val", "test"}

    assert main(["run", str(spec), "--results", str(results)]) == 0
    assert "4 runs, 4 done, 0 to run" in capsys.readouterr().err
    assert metric_rows(results) == first  # nothing ran twice, no duplicate rows

    assert main(["status", str(spec), "--results", str(results)]) == 0
    assert "DONE" in capsys.readouterr().out

    store = open_store(f"sqlite:///{results / 'mlrd.db'}")
    finished = {r.run_id: r.finished_at for r in store.runs(spec="tiny")}
    store.close()
    assert main(["run", str(spec), "--results", str(results), "--force", "--jobs", "2"]) == 0  # same threads
    assert "4 runs, 0 done, 4 to run" in capsys.readouterr().err
    store = open_store(f"sqlite:///{results / 'mlrd.db'}")
    refinished = {r.run_id: r.finished_at for r in store.runs(spec="tiny")}
    store.close()
    assert refinished.keys() == finished.keys()
    assert all(refinished[k] > finished[k] for k in finished)  # every run trained again from scratch
    assert metric_rows(results) == first  # same numbers, no duplicate rows
    assert main(["table", str(spec), "--results", str(results), "--format", "csv"]) == 0
    assert "delta1" in capsys.readouterr().out
    assert main(["export", str(spec), "--results", str(results), "--format", "parquet", "--frames", "metrics"]) == 0
    exported = pd.read_parquet(results / "tiny" / "export" / "tiny-metrics.parquet")
    assert sorted(map(tuple, exported[["arm", "seed", "split", "epoch", "metric", "value"]].values)) == first


def test_malformed_spec_is_one_clear_error_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, extra='lossses = "L"')
    results = tmp_path / "results"
    assert main(["run", str(spec), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'lossses'" in err and "tiny.toml" in err
    assert not results.exists()


def test_failed_runs_are_recorded_with_their_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A configuration or data error found in the worker is the same on every attempt: it is not retried. (Bad
    options and splits are refused when the spec loads, missing files before anything is written; what is left for a
    worker is, e.g., a data file that exists but is damaged.)"""
    root = tmp_path / "nyu"
    root.mkdir()
    for name in ("train_reduced05.zip", "test654.zip"):
        (root / name).write_bytes(b"not a zip")
    text = spec_text(extra='dataset = "nyuv2-zip"\nval_split = false')
    options = text[text.index("[defaults.dataset_options]") : text.index("[[groups]]")]
    spec = tmp_path / "tiny.toml"
    spec.write_text(text.replace(options, f'[defaults.dataset_options]\nroot = "{root.as_posix()}"\n\n'))
    results = tmp_path / "results"
    assert main(["run", str(spec), "--results", str(results), "--max-attempts", "3"]) == 1
    err = capsys.readouterr().err
    assert "failed" in err and "retry" not in err
    store = open_store(f"sqlite:///{results / 'mlrd.db'}")
    try:
        assert [r.attempts for r in store.runs(spec="tiny")] == [1] * 4
    finally:
        store.close()
    assert main(["status", str(spec), "--results", str(results), "--failed"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" in out and "DataError" in out and "as a zip file" in out


def test_config_errors_a_worker_would_meet_are_refused_at_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, extra='dataset = "middlebury"\ntrain_split = "train"')
    results = tmp_path / "results"
    assert main(["run", str(spec), "--results", str(results), "--max-attempts", "3"]) == 2
    err = capsys.readouterr().err
    assert "defaults.train_split: unknown split 'train' of dataset 'middlebury'" in err and "Traceback" not in err
    assert not results.exists()


def _wait_for(predicate: object, timeout: float = 240.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the run to reach the kill point")


def _checkpoints(results: Path) -> list[Path]:
    return list((results / "runs").glob("*/checkpoint.pt")) if (results / "runs").exists() else []


@pytest.mark.slow
def test_sigkill_of_worker_and_of_coordinator_resume_to_the_uninterrupted_numbers(tmp_path: Path) -> None:
    """Reference: an uninterrupted run. Then (1) SIGKILL one worker mid-run: the coordinator retries it from its
    checkpoint; (2) SIGKILL the coordinator itself mid-spec (its workers die with it): the same command again
    finishes every run exactly once; (3) Ctrl-C (SIGINT) the coordinator. All end with the reference's metrics."""
    spec = write_spec(tmp_path, epochs=2, length=16)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    subprocess.run(suite_cmd("run", str(spec), "--results", str(reference), "--jobs", "1"), env=env, check=True)
    expected = metric_rows(reference)

    # (1) kill a worker after its first checkpoint
    worker_kill = tmp_path / "worker-kill"
    coord = subprocess.Popen(suite_cmd("run", str(spec), "--results", str(worker_kill), "--jobs", "1"), env=env)
    _wait_for(lambda: _checkpoints(worker_kill))
    beat = json.loads(next((worker_kill / "runs").glob("*/heartbeat.json")).read_text())
    os.kill(beat["pid"], signal.SIGKILL)
    assert coord.wait(timeout=300) == 0
    assert metric_rows(worker_kill) == expected

    # (2) kill the coordinator once a run is done and another one has a checkpoint
    coord_kill = tmp_path / "coordinator-kill"
    coord = subprocess.Popen(suite_cmd("run", str(spec), "--results", str(coord_kill), "--jobs", "1"), env=env)
    _wait_for(lambda: len(_checkpoints(coord_kill)) >= 2)
    coord.send_signal(signal.SIGKILL)
    coord.wait(timeout=30)
    workers = [json.loads(p.read_text())["pid"] for p in (coord_kill / "runs").glob("*/heartbeat.json")]
    _wait_for(lambda: not any(pid_alive(pid) for pid in workers))  # they die with it: no orphan training
    subprocess.run(suite_cmd("run", str(spec), "--results", str(coord_kill), "--jobs", "1"), env=env, check=True)
    assert metric_rows(coord_kill) == expected

    # (3) Ctrl-C in a terminal (SIGINT to the foreground process group, here the coordinator's own): it reaches the
    # coordinator only; it stops its workers, marks their runs LOST and exits 130; the same command resumes
    ctrl_c = tmp_path / "ctrl-c"
    cmd = suite_cmd("run", str(spec), "--results", str(ctrl_c), "--jobs", "1")
    coord = subprocess.Popen(cmd, env=env, start_new_session=True)
    _wait_for(lambda: _checkpoints(ctrl_c))
    os.killpg(coord.pid, signal.SIGINT)
    assert coord.wait(timeout=60) == 130
    store = open_store(f"sqlite:///{ctrl_c / 'mlrd.db'}")
    try:
        lost = store.runs(spec="tiny", states=["LOST"])
    finally:
        store.close()
    assert len(lost) == 1 and "interrupted" in (lost[0].error or "")
    subprocess.run(suite_cmd("run", str(spec), "--results", str(ctrl_c), "--jobs", "1"), env=env, check=True)
    assert metric_rows(ctrl_c) == expected


def test_a_worker_whose_coordinator_is_gone_before_it_starts_exits_at_once(tmp_path: Path) -> None:
    """The worker ties itself to its coordinator first thing; if the coordinator died in between (its pid is not
    the worker's parent any more), it exits without touching the run folder. Started by hand, it is left alone."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), COORDINATOR_ENV: str(gone.pid)}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    worker = [sys.executable, "-m", "suite.worker", str(run_dir)]
    done = subprocess.run(worker, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr == "" and list(run_dir.iterdir()) == []
    by_hand = {k: v for k, v in env.items() if k != COORDINATOR_ENV}
    done = subprocess.run(worker, env=by_hand, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "run.json does not exist" in done.stderr


def test_printed_database_urls_hide_passwords() -> None:
    from suite.commands._common import shown_url

    assert shown_url("postgresql+psycopg://bob:secret@db.example:5432/mlrd") == (
        "postgresql+psycopg://bob:***@db.example:5432/mlrd"
    )
    assert shown_url("sqlite:///results/mlrd.db") == "sqlite:///results/mlrd.db"


def test_ctrl_c_is_deferred_to_safe_points_in_the_coordinator() -> None:
    """A KeyboardInterrupt inside a SQLite write can leave the write lock held; the coordinator therefore turns the
    first Ctrl-C into a flag checked between writes (a second one raises at once)."""
    from suite.execution.protocol import DeferredInterrupt

    before = signal.getsignal(signal.SIGINT)
    with DeferredInterrupt() as interrupt:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # signal delivery
        assert interrupt.requested  # no KeyboardInterrupt yet
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is before


def test_force_names_the_other_specs_that_share_its_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two specs with the same runs (same configs and seeds share run ids): ``--force`` on one says that the other's
    results change too, and hands every run to the executor as fresh (old results stay until new ones arrive)."""
    from suite.execution.local import LocalExecutor
    from suite.execution.protocol import ExecutionSummary

    handed: list[set[str]] = []

    def execute(self: LocalExecutor, runs: object, on_event: object = None, **options: object) -> ExecutionSummary:
        handed.append(set(options.get("fresh") or ()))  # type: ignore[call-overload]
        return ExecutionSummary()

    monkeypatch.setattr(LocalExecutor, "execute", execute)
    results = tmp_path / "results"
    tiny, other = write_spec(tmp_path), write_spec(tmp_path, name="other")
    assert main(["run", str(tiny), "--results", str(results)]) == 0
    assert "--force" not in capsys.readouterr().err
    assert main(["run", str(other), "--results", str(results), "--force"]) == 0
    err = capsys.readouterr().err
    assert "--force reruns runs that spec(s) tiny also use" in err
    assert handed[0] == set() and len(handed[1]) == 4


def test_a_run_shared_by_two_groups_is_counted_in_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same config in two groups is one run (trained once) that belongs to both: each group's table counts its
    seeds. (A regression recorded only the first group's membership, so the other table showed n = 0.)"""
    again = """
[[groups]]
name = "b"
title = "the same arm again"

[[groups.arms]]
label = "D again"
losses = "L_D"
weighting = "equal"

[[tables]]
name = "again"
title = "again table"
groups = ["b"]
metrics = ["delta1"]
"""
    spec = tmp_path / "tiny.toml"
    spec.write_text(spec_text(tail=again))
    results = tmp_path / "results"
    assert main(["run", str(spec), "--results", str(results), "--jobs", "2"]) == 0
    assert "4 runs" in capsys.readouterr().err  # 6 planned rows, 4 distinct runs
    store = open_store(f"sqlite:///{results / 'mlrd.db'}")
    try:
        test = store.metrics_frame(spec="tiny").query("split == 'test' and metric == 'delta1'")
    finally:
        store.close()
    seeds = test.groupby(["group", "arm"])["seed"].nunique().to_dict()
    assert seeds == {("a", "D"): 2, ("a", "all"): 2, ("b", "D again"): 2}
    shared = test.set_index(["group", "seed"])["value"]
    assert shared.loc[("b", 0)] == test.query("arm == 'D' and seed == 0")["value"].item()
    again_md = (results / "tiny" / "again.md").read_text()
    assert "| D again" in again_md and "–" not in again_md.split("| D again", 1)[1].splitlines()[0]
