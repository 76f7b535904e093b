"""The SLURM executor: the [slurm] spec table, sbatch parameters, job-state parsing and settling (no cluster needed),
and end to end on a real SLURM (marked ``slurm``): a job array, a forced timeout/requeue that resumes to the numbers of
an uninterrupted run, a killed coordinator whose jobs are watched again, Ctrl-C cancelling the array.

The cluster tests skip when no SLURM answers; ``nox -s slurm`` starts a single-node cluster
(tools/slurm_single_node.sh) and sets MLRD_REQUIRE_SLURM=1, which turns that skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tiny_spec

from mlrd_core.errors import ConfigError
from suite.cli import main
from suite.execution.local import LocalExecutor, Slot
from suite.execution.protocol import settle_running
from suite.execution.slurm import sbatch_parameters
from suite.execution.slurm_jobs import JOB_FILE, describe_state, is_alive, job_states, parse_job_table
from suite.plan import plan, planned_rows, unique_runs
from suite.spec import SlurmSettings, apply_overrides, load_spec, loads_spec
from suite.store import open_store

# the tiny end-to-end spec with one seed, 3 epochs of 48 steps (so a requeue lands mid-run) and a [slurm] table
SPEC = tiny_spec.spec_text(
    name="sl",
    seeds=(0,),
    epochs=3,
    length=192,
    ramp=3,
    tail="""
[slurm]
cpus_per_task = 1
timeout_min = 10
""",
)


def write_spec(folder: Path, extra: str = "") -> Path:
    """The spec as ``folder/sl.toml``; ``extra`` lines go into its ``[slurm]`` table (the last one)."""
    path = folder / "sl.toml"
    path.write_text(SPEC + extra)
    return path


# --------------------------------------------------------------------------------------------- without a cluster


def test_slurm_table_is_validated_overridable_and_leaves_run_ids_alone(tmp_path: Path) -> None:
    spec = load_spec(
        write_spec(tmp_path, 'partition = "gpu"\nmem_gb = 7.5\nsbatch = { account = "lab", exclusive = true }\n')
    )
    assert spec.slurm == SlurmSettings(
        partition="gpu", cpus_per_task=1, timeout_min=10, mem_gb=7.5, sbatch={"account": "lab", "exclusive": True}
    )
    bare = loads_spec(SPEC.split("[slurm]")[0], source="bare")
    assert bare.slurm == SlurmSettings()
    assert [r.run_id for r in plan(spec)] == [r.run_id for r in plan(bare)]  # resources are not part of a run

    changed = apply_overrides(spec, ["slurm.partition=debug", "slurm.gpus_per_task=1", "slurm.sbatch.qos=high"])
    assert (changed.slurm.partition, changed.slurm.gpus_per_task, changed.slurm.sbatch["qos"]) == ("debug", 1, "high")

    with pytest.raises(ConfigError, match=r"slurm: unknown key 'partion' \(did you mean 'partition'\?\)"):
        apply_overrides(spec, ["slurm.partion=x"])
    with pytest.raises(ConfigError, match=r"slurm.gpus_per_task: expected 0 \(CPU\) or 1"):
        apply_overrides(spec, ["slurm.gpus_per_task=2"])
    with pytest.raises(ConfigError, match=r"slurm.timeout_min: expected an integer >= 1, got int 0"):
        apply_overrides(spec, ["slurm.timeout_min=0"])
    with pytest.raises(ConfigError, match=r"slurm.sbatch.account: expected a string, an integer or true"):
        apply_overrides(spec, ["slurm.sbatch.account=[1]"])


def test_sbatch_parameters_render_through_submitit() -> None:
    submitit_slurm = pytest.importorskip("submitit.slurm.slurm", reason="submitit is in the dev and slurm extras")
    settings = SlurmSettings(
        partition="gpu", timeout_min=30, gpus_per_task=1, cpus_per_task=6, mem_gb=7.5, array_parallelism=4,
        setup=("module load cuda",), sbatch={"account": "lab"},
    )  # fmt: skip
    params = sbatch_parameters(settings, job_name="mlrd-x")
    script = submitit_slurm._make_sbatch_string(command="python -m x", folder="/shared/logs", map_count=10, **params)
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --time=30",
        "#SBATCH --cpus-per-task=6",
        "#SBATCH --mem=7680MB",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --account=lab",
        "#SBATCH --array=0-9%4",
        "#SBATCH --signal=USR2@90",
        "#SBATCH --job-name=mlrd-x",
        "export OMP_NUM_THREADS=6 MKL_NUM_THREADS=6",
        "module load cuda",
    ):
        assert line in script, line
    own_gres = SlurmSettings(gpus_per_task=1, sbatch={"gres": "gpu:a100:1", "exclusive": False})
    assert sbatch_parameters(own_gres, job_name="j")["additional_parameters"] == {"gres": "gpu:a100:1"}


def test_job_tables_of_squeue_and_sacct_parse() -> None:
    squeue = "7|COMPLETED\n8_2|PENDING\n8_0|RUNNING\n9_[3-5%2]|PENDING\n"
    sacct = "8_1|CANCELLED by 0\n8_1.batch|CANCELLED\n10|COMPLETED+\n"
    assert parse_job_table(squeue) == {"7": "COMPLETED", "8_2": "PENDING", "8_0": "RUNNING"}
    assert parse_job_table(sacct) == {"8_1": "CANCELLED", "10": "COMPLETED"}
    assert describe_state("8_0", {"8_0": "RUNNING"}) == "8_0 RUNNING"
    assert describe_state("8_0", {"8_0": None}) == "8_0 ended (no longer listed)"
    assert describe_state("8_0", None) == "8_0 (state unknown)"


@pytest.fixture()
def no_slurm_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def _store_with_slurm_runs(results: Path, workers: dict[str, str]) -> list[str]:
    """A store holding the plan of the test spec with its runs RUNNING under the given SLURM workers."""
    spec = loads_spec(SPEC, source="test")
    runs = unique_runs(plan(spec))
    store = open_store(f"sqlite:///{results / 'mlrd.db'}")
    try:
        store.add_planned(planned_rows(runs))
        for run, worker in zip(runs, workers.values(), strict=False):
            store.mark_running(run.run_id, worker=worker)
    finally:
        store.close()
    return [r.run_id for r in runs]


def test_status_without_slurm_shows_job_ids_with_state_unknown(
    tmp_path: Path, no_slurm_on_path: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "results"
    _store_with_slurm_runs(results, {"D": "slurm:77_0", "all": "slurm:77_1"})
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["status", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "slurm:77_0 (state unknown)" in out and "slurm:77_1 (state unknown)" in out


def test_executor_slurm_without_slurm_is_one_clear_error_that_writes_nothing(
    tmp_path: Path, no_slurm_on_path: None, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    searchable = tmp_path / "search.toml"
    searchable.write_text(SPEC + SEARCH)
    for command, spec in (("run", write_spec(tmp_path)), ("search", searchable)):
        assert main([command, str(spec), "--executor", "slurm", "--results", str(results)]) == 2
        err = capsys.readouterr().err
        assert "--executor slurm needs SLURM's commands on PATH" in err and "sbatch" in err
        assert "tools/slurm_single_node.sh" in err
        assert not results.exists()
    assert main(["search", str(searchable), "--executor", "slurm", "--jobs", "2", "--results", str(results)]) == 2
    assert "--jobs sets local CPU slots" in capsys.readouterr().err and not results.exists()


def test_recovery_settles_runs_by_their_job_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ended job makes its run LOST (resumable); a live one, or one SLURM cannot tell about, stays RUNNING."""
    results = tmp_path / "results"
    ids = _store_with_slurm_runs(results, {"D": "slurm:5_0", "all": "slurm:5_1"})
    monkeypatch.setattr("suite.execution.slurm_jobs.job_states", lambda jobs: {"5_0": None, "5_1": "PENDING"})
    store = open_store(f"sqlite:///{results / 'mlrd.db'}")
    try:
        running = store.runs(states=["RUNNING"])
        ingested, alive = settle_running(store, running, lambda r: results / "runs" / r[:16], stale_after_s=120)
        assert ingested == [] and alive == {ids[1]: "5_1"}
        assert store.get_run(ids[0]).state == "LOST" and "5_0 ended" in (store.get_run(ids[0]).error or "")
        assert store.get_run(ids[1]).state == "RUNNING"
        monkeypatch.setattr("suite.execution.slurm_jobs.job_states", lambda jobs: None)
        _, alive = settle_running(store, store.runs(states=["RUNNING"]), lambda r: results / r, stale_after_s=120)
        assert alive == {ids[1]: "5_1"}
    finally:
        store.close()


# --------------------------------------------------------------------------------------------- on a real cluster


def _cluster_problem() -> str | None:
    missing = [c for c in ("sbatch", "squeue", "scancel", "srun", "sinfo") if shutil.which(c) is None]
    if missing:
        return f"SLURM's commands are not installed ({', '.join(missing)} missing)"
    try:
        import submitit  # noqa: F401
    except ImportError:
        return 'submitit is not installed (pip install -e ".[slurm]")'
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "no SLURM controller answers (sinfo timed out)"
    if done.returncode != 0 or not done.stdout.strip():
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no nodes"
        return f"no SLURM controller answers (sinfo: {why})"
    return None


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    problem = _cluster_problem()
    if problem is None:
        return
    if os.environ.get("MLRD_REQUIRE_SLURM") == "1":
        pytest.fail(f"MLRD_REQUIRE_SLURM=1 but {problem}")
    pytest.skip(
        f"{problem}; start the single-node test cluster with `bash tools/slurm_single_node.sh start` and "
        '`eval "$(bash tools/slurm_single_node.sh env)"`, or run `nox -s slurm`'
    )


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def _metric_rows(results: Path) -> list[tuple[object, ...]]:
    store = open_store(f"sqlite:///{results / 'mlrd.db'}")
    try:
        frame = store.metrics_frame(spec="sl")
        counts = store.counts("sl")
    finally:
        store.close()
    assert counts["DONE"] == 2 and sum(counts.values()) == 2, counts
    return sorted(tuple(r) for r in frame[["arm", "seed", "split", "epoch", "metric", "value"]].itertuples(index=False))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[object, ...]]:
    """The uninterrupted numbers: the local executor with one thread per worker, as the SLURM tasks have."""
    folder = tmp_path_factory.mktemp("reference")
    spec = load_spec(write_spec(folder))
    runs = unique_runs(plan(spec))
    results = folder / "results"
    store = open_store(f"sqlite:///{results / 'mlrd.db'}")
    try:
        store.add_planned(planned_rows(runs))
        one_thread = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        slots = [Slot(f"cpu{i}", env=one_thread, threads=1) for i in range(2)]
        summary = LocalExecutor(store, runs_dir=results / "runs", slots=slots).execute(runs)
        assert sorted(summary.done) == sorted(r.run_id for r in runs)
    finally:
        store.close()
    return _metric_rows(results)


def _coordinator(spec: Path, results: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "suite", "run", str(spec), "--executor", "slurm", "--results", str(results)]
    with open(log, "wb") as out:
        return subprocess.Popen(command, env=_env(), stdout=out, stderr=subprocess.STDOUT)


def _wait_for(what: str, predicate: Callable[[], object], timeout: float = 180.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _job_files(results: Path) -> dict[str, dict[str, object]]:
    """{run folder name: slurm.json} of the submitted runs."""
    out = {}
    for path in (results / "runs").glob(f"*/{JOB_FILE}") if (results / "runs").exists() else []:
        out[path.parent.name] = json.loads(path.read_text())
    return out


def _run_json(results: Path, name: str) -> dict[str, Any]:
    return dict(json.loads((results / "runs" / name / "run.json").read_text()))


def _beat(results: Path, name: str) -> dict[str, object]:
    path = results / "runs" / name / "heartbeat.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _status(spec: Path, results: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "suite", "status", str(spec), "--results", str(results)],
        env=_env(), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


@pytest.fixture()
def stop_jobs() -> Iterator[list[str]]:
    """Job ids a test started; whatever the outcome, none is left behind."""
    jobs: list[str] = []
    yield jobs
    if jobs:
        subprocess.run(["scancel", *jobs], capture_output=True, check=False)


@pytest.mark.slurm
def test_forced_timeout_requeues_and_resumes_to_the_uninterrupted_numbers(
    slurm_cluster: None, reference: list[tuple[object, ...]], tmp_path: Path, stop_jobs: list[str]
) -> None:
    """Both runs go out as one job array; `status` shows the job ids and states; USR2 (what SLURM sends before the
    time limit; submitit's ``job._interrupt(timeout=True)``) makes one task checkpoint, requeue and resume; the
    coordinator ingests both, with the numbers of the uninterrupted local runs."""
    spec = write_spec(tmp_path)
    results = tmp_path / "results"
    coordinator = _coordinator(spec, results, tmp_path / "coordinator.log")
    try:
        _wait_for("two submitted tasks", lambda: len(_job_files(results)) == 2, timeout=60)
        jobs = {name: str(info["job_id"]) for name, info in _job_files(results).items()}
        stop_jobs.extend(jobs.values())
        assert len({job.split("_")[0] for job in jobs.values()}) == 1, jobs  # one array
        victim = next(n for n in jobs if _run_json(results, n)["config"]["losses"] == "L_D")
        _wait_for("a first period checkpoint", lambda: (results / "runs" / victim / "checkpoint.pt").exists())
        subprocess.run(["scancel", "--signal=USR2", jobs[victim]], check=True)  # = job._interrupt(timeout=True)
        assert _beat(results, victim).get("epoch", 0) == 0, "the run is too short to interrupt it mid-way"

        status = _status(spec, results)  # during the requeue: the same task, pending again or already resumed
        shown = (
            status.partition(f"slurm:{jobs[victim]} ")[2].split(maxsplit=1)[0]
            if f"slurm:{jobs[victim]} " in status
            else ""
        )
        assert is_alive(shown), status  # PENDING, REQUEUED, RUNNING, ... whatever moment `status` caught
        assert coordinator.wait(timeout=240) == 0, (tmp_path / "coordinator.log").read_text()
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
    log = (tmp_path / "coordinator.log").read_text()
    assert "requeue a/D s0" in log, log
    assert "Requeued job" in (results / "slurm" / f"{jobs[victim]}_0_log.out").read_text()
    assert _metric_rows(results) == reference
    store = open_store(f"sqlite:///{results / 'mlrd.db'}")
    try:
        infos = {info.run_id[:16]: info for info in store.runs(spec="sl")}
    finally:
        store.close()
    assert infos[victim].resumed_from is not None and infos[victim].resumed_from["epoch"] == 0
    assert infos[victim].worker == f"slurm:{jobs[victim]}" and infos[victim].attempts == 1  # the same task resumed


@pytest.mark.slurm
def test_killed_coordinator_is_replaced_without_resubmission_and_ctrl_c_cancels(
    slurm_cluster: None, reference: list[tuple[object, ...]], tmp_path: Path, stop_jobs: list[str]
) -> None:
    """SIGKILL of the coordinator leaves its tasks running; the same command again watches them (no second array)
    and finishes. Ctrl-C of a coordinator cancels its tasks (LOST, exit 130); the same command again resumes."""
    spec = write_spec(tmp_path)

    # (1) the coordinator dies; its SLURM tasks do not
    results = tmp_path / "killed"
    coordinator = _coordinator(spec, results, tmp_path / "first.log")
    _wait_for(
        "two running tasks",
        lambda: len(_job_files(results)) == 2 and all(_beat(results, n) for n in _job_files(results)),
    )
    jobs = {name: str(info["job_id"]) for name, info in _job_files(results).items()}
    stop_jobs.extend(jobs.values())
    coordinator.send_signal(signal.SIGKILL)
    coordinator.wait(timeout=30)
    states = job_states(jobs.values()) or {}
    assert any(state in ("RUNNING", "COMPLETING", "COMPLETED") for state in states.values()), states
    second = _coordinator(spec, results, tmp_path / "second.log")
    assert second.wait(timeout=240) == 0, (tmp_path / "second.log").read_text()
    log = (tmp_path / "second.log").read_text()
    assert "submit" not in log, log  # watched (adopt) or ingested, never submitted again
    assert {name: str(info["job_id"]) for name, info in _job_files(results).items()} == jobs
    assert _metric_rows(results) == reference

    # (2) Ctrl-C cancels the tasks the coordinator drives
    results = tmp_path / "interrupted"
    coordinator = _coordinator(spec, results, tmp_path / "ctrl-c.log")
    _wait_for("two submitted tasks", lambda: len(_job_files(results)) == 2, timeout=60)
    jobs = {name: str(info["job_id"]) for name, info in _job_files(results).items()}
    stop_jobs.extend(jobs.values())
    coordinator.send_signal(signal.SIGINT)
    assert coordinator.wait(timeout=120) == 130, (tmp_path / "ctrl-c.log").read_text()
    states = job_states(jobs.values()) or {}
    assert all(state in (None, "CANCELLED", "COMPLETED") for state in states.values()), states
    store = open_store(f"sqlite:///{results / 'mlrd.db'}")
    try:
        counts = store.counts("sl")
    finally:
        store.close()
    assert counts["LOST"] + counts["DONE"] == 2 and counts["LOST"] >= 1, counts
    final = _coordinator(spec, results, tmp_path / "resume.log")
    assert final.wait(timeout=240) == 0, (tmp_path / "resume.log").read_text()
    assert _metric_rows(results) == reference


@pytest.mark.slurm
def test_a_failing_task_is_recorded_with_its_trace(
    slurm_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Bad options and splits are refused when the spec loads; what reaches a task is, e.g., a damaged data file.
    root = tmp_path / "nyu"
    root.mkdir()
    for name in ("train_reduced05.zip", "test654.zip"):
        (root / name).write_bytes(b"not a zip")
    slurm_table = SPEC[SPEC.index("\n[slurm]") :]
    text = tiny_spec.spec_text(
        name="sl", seeds=(0,), extra='dataset = "nyuv2-zip"\nval_split = false', tail=slurm_table
    )
    options = text[text.index("[defaults.dataset_options]") : text.index("[[groups]]")]
    spec = tmp_path / "sl.toml"
    spec.write_text(text.replace(options, f'[defaults.dataset_options]\nroot = "{root.as_posix()}"\n\n'))
    results = tmp_path / "results"
    assert main(["run", str(spec), "--executor", "slurm", "--results", str(results), "--max-attempts", "1"]) == 1
    assert main(["status", str(spec), "--results", str(results), "--failed"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" in out and "DataError" in out and "as a zip file" in out


SEARCH = """
[search]
group = "a"
arm = "all"
objective = "rmse"
n_trials = 1
pruner = "none"
enqueue = ["3 -> -3 @ 3"]

[search.schedule]
kind = "linear"
start = { kind = "categorical", choices = [3, 1] }
end = -3
epochs = 3
"""


@pytest.mark.slurm
def test_search_runs_its_trials_as_jobs_and_a_pruned_trial_cancels_them(
    slurm_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], stop_jobs: list[str]
) -> None:
    """`search --executor slurm`: the paper trial's run is a SLURM task; a pruned trial (a pruner that prunes at the
    first report) cancels its task, leaving the run LOST with its checkpoint, resumable."""
    import optuna
    from optuna.trial import TrialState

    from suite.execution.slurm import SlurmExecutor
    from suite.search import LambdaSearch, open_study

    path = tmp_path / "sl.toml"
    path.write_text(SPEC + SEARCH)
    results = tmp_path / "results"
    url = f"sqlite:///{results / 'mlrd.db'}"
    assert main(["search", str(path), "--executor", "slurm", "--results", str(results)]) == 0
    assert "on SLURM" in capsys.readouterr().err
    (trial,) = optuna.load_study(study_name="sl", storage=url).trials
    assert trial.state == TrialState.COMPLETE and trial.params == {"start": 3}
    assert list(trial.intermediate_values) == [0, 1, 2]

    spec = load_spec(path)
    store = open_store(url)
    try:
        (run_id,) = trial.user_attrs["run_ids"]
        assert (store.get_run(run_id).worker or "").startswith("slurm:")
        study = open_study(spec, url, pruner=optuna.pruners.ThresholdPruner(upper=0.0))  # rmse > 0: prune
        study.enqueue_trial({"start": 1})
        executor = SlurmExecutor(
            store, runs_dir=results / "runs", settings=spec.slurm, folder=results / "slurm", job_name="mlrd-sl"
        )
        stop_jobs.extend(str(info["job_id"]) for info in _job_files(results).values())
        LambdaSearch(spec, store, executor, study).optimize(1)
        stop_jobs.extend(str(info["job_id"]) for info in _job_files(results).values())
        pruned = study.trials[1]
        assert pruned.state == TrialState.PRUNED and pruned.user_attrs["pruned_at_epoch"] == 0
        (lost,) = pruned.user_attrs["run_ids"]
        info = store.get_run(lost)
        assert info.state.name == "LOST" and "stopped early" in (info.error or "")
        assert (executor.run_dir(lost) / "checkpoint.pt").exists()
        job = str(_job_files(results)[lost[:16]]["job_id"])
    finally:
        store.close()
    states = job_states([job])
    assert states is not None and not is_alive(states.get(job)), states  # cancelled, not left running


@pytest.mark.slurm
def test_search_runs_two_trials_at_once_on_slurm(
    slurm_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], stop_jobs: list[str]
) -> None:
    """`search --executor slurm --parallel 2`: both trials are asked for at once and their runs submitted together
    (the runs queued at one poll go out as one job array); both complete from their SLURM tasks."""
    import optuna
    from optuna.trial import TrialState

    path = tmp_path / "sl.toml"
    path.write_text(SPEC + SEARCH)
    results = tmp_path / "results"
    both = 'search.enqueue=["3 -> -3 @ 3", "1 -> -3 @ 3"]'
    args = ["search", str(path), "--executor", "slurm", "--results", str(results), "--set", both, "--set"]
    try:
        assert main([*args, "search.n_trials=2", "--parallel", "2"]) == 0
    finally:
        stop_jobs.extend(str(info["job_id"]) for info in _job_files(results).values())
    err = capsys.readouterr().err
    assert "running 2, 2 at a time, on SLURM" in err and "submit 2 run(s) as SLURM job" in err
    trials = optuna.load_study(study_name="sl", storage=f"sqlite:///{results / 'mlrd.db'}").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 and [t.params["start"] for t in trials] == [3, 1]
    store = open_store(f"sqlite:///{results / 'mlrd.db'}")
    try:
        infos = [store.get_run(t.user_attrs["run_ids"][0]) for t in trials]
    finally:
        store.close()
    assert all(i.state.name == "DONE" and (i.worker or "").startswith("slurm:") for i in infos)
