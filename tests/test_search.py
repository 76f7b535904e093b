"""The λ-schedule search: `python -m suite search` on a tiny spec (paper schedule first, objective = seed mean, run
reuse by content hash, resume), pruning that stops the workers, the executor's should_stop, and the study's storage
beside the results store."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import optuna
import pytest
import tiny_spec
from optuna.trial import TrialState

from mlrd_core.checkpoint import metric_history
from mlrd_core.errors import ConfigError
from mlrd_core.weighting import parse_schedule
from suite.cli import main
from suite.execution.local import LocalExecutor, local_slots
from suite.execution.protocol import pid_alive
from suite.plan import PlannedRun, plan
from suite.search import (
    SEARCH_GROUP,
    LambdaSearch,
    TrialPoint,
    as_point,
    enqueue_points,
    open_study,
    params_for_point,
    params_for_schedule,
    point_from_params,
    require_search,
    suggest_point,
    trial_runs,
    trials_counted,
)
from suite.spec import Spec, apply_overrides, load_spec, spec_from_dict
from suite.store import RunState, open_store

# the shared tiny spec (group "a": arms "D" and "all") with a search over the start of the "all" arm's λ ramp
SEARCH = """
[search]
group = "a"
arm = "all"
objective = "rmse"
n_trials = 2
enqueue = {enqueue}

[search.schedule]
kind = "linear"
start = {{ kind = "categorical", choices = {starts} }}
end = -3
epochs = 2
{settings}"""

PAPER = parse_schedule("3 -> -3 @ 2").to_spec()


def write_spec(
    folder: Path,
    *,
    epochs: int = 2,
    starts: str = "[3, 1]",
    settings: str = "",
    enqueue: str = '["3 -> -3 @ 2"]',
    length: int = 8,
) -> Path:
    tail = SEARCH.format(starts=starts, settings=settings, enqueue=enqueue)
    return tiny_spec.write_spec(folder, epochs=epochs, ramp=2, tail=tail, length=length)


def searched_arm_runs(spec: Spec) -> list[PlannedRun]:
    return [r for r in plan(spec) if r.arm == "all"]


def db(results: Path) -> str:
    return f"sqlite:///{results / 'mlrd.db'}"


def load(url: str, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def last_epoch_values(frame: object, run_ids: list[str]) -> list[float]:
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    out = []
    for run_id in run_ids:
        rows = frame[(frame["run_id"] == run_id) & (frame["metric"] == "rmse")].drop_duplicates(["epoch"])
        out.append(float(rows.loc[rows["epoch"].idxmax(), "value"]))
    return out


def test_search_enqueues_the_paper_first_reuses_runs_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path)
    results = tmp_path / "results"
    args = ["search", str(spec), "--results", str(results), "--jobs", "2"]

    # the spec's budget: n_trials = 2, the paper's schedule first
    assert main(args) == 0
    out = capsys.readouterr()
    assert "study 'tiny'" in out.out and "(enqueued)" in out.out and "optuna-dashboard" in out.out
    study = load(db(results))
    trials = study.trials
    assert [t.number for t in trials] == [0, 1]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert trials[0].params == {"start": 3} and trials[0].user_attrs["schedule"] == PAPER
    assert trials[0].user_attrs["enqueued"] is True and trials[0].user_attrs["reused"] == 0

    # objective = seed mean at the last validation epoch; std kept; per-epoch reports are seed means
    store = open_store(db(results))
    try:
        val = store.metrics_frame(spec="tiny", split="val")
        runs = store.runs(spec="tiny")
    finally:
        store.close()
    for t in trials:
        ids = t.user_attrs["run_ids"]
        values = last_epoch_values(val, ids)
        assert t.value == pytest.approx(statistics.fmean(values))
        assert t.user_attrs["std"] == pytest.approx(statistics.stdev(values))
        assert t.user_attrs["values"] == pytest.approx(values) and t.user_attrs["n_seeds"] == 2
        rmse = val[(val["metric"] == "rmse") & val["run_id"].isin(ids)].drop_duplicates(["run_id", "epoch"])
        means = rmse.groupby("epoch")["value"].mean().to_dict()
        assert t.intermediate_values == pytest.approx({int(e): v for e, v in means.items()})
        assert set(means) == {0, 1}
    # trial runs are stored under group "search", arm = the schedule's text
    labels = {t.user_attrs["label"] for t in trials}
    assert {(m.group, m.arm) for r in runs for m in r.memberships} == {(SEARCH_GROUP, label) for label in labels}
    first_start = trials[0].datetime_start

    # --trials 2 adds two trials to the same study; repeated schedules reuse their finished runs (2 choices only)
    assert main([*args, "--trials", "2"]) == 0
    capsys.readouterr()
    trials = load(db(results)).trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert trials[0].datetime_start == first_start  # resumed, not restarted
    distinct = {str(t.user_attrs["schedule"]) for t in trials}
    store = open_store(db(results))
    try:
        n_runs = len(store.runs(spec="tiny"))
        assert all(r.state == RunState.DONE and r.attempts == 1 for r in store.runs(spec="tiny"))
    finally:
        store.close()
    assert n_runs == 2 * len(distinct)  # one training per (schedule, seed), however many trials
    assert sum(t.user_attrs["reused"] for t in trials) == 2 * (len(trials) - len(distinct)) > 0

    # the same command without --trials: the budget (2) is reached, nothing runs, the paper is not enqueued again
    assert main(args) == 0
    assert "running 0" in capsys.readouterr().err
    assert len(load(db(results)).trials) == 4


def test_pruned_trial_stops_its_workers_and_its_runs_resume_later(tmp_path: Path) -> None:
    """A pruner that always prunes (rmse > 0): the first report stops both workers long before their 30 epochs;
    the runs are LOST with their checkpoints. A second trial of the same schedule is pruned from those checkpoints'
    history before any worker starts."""
    spec = load_spec(write_spec(tmp_path, epochs=30, starts="[3]"))
    results = tmp_path / "results"
    store = open_store(db(results))
    try:
        executor = LocalExecutor(store, runs_dir=results / "runs", slots=local_slots(2))
        study = open_study(spec, db(results), pruner=optuna.pruners.ThresholdPruner(upper=0.0))
        enqueue_points(study, spec)
        LambdaSearch(spec, store, executor, study).optimize(1)
        (trial,) = study.trials
        assert trial.state == TrialState.PRUNED
        pruned_at = trial.user_attrs["pruned_at_epoch"]
        assert pruned_at is not None and pruned_at < 29 and list(trial.intermediate_values) == [pruned_at]
        infos = [store.get_run(run_id) for run_id in trial.user_attrs["run_ids"]]
        assert [i.state for i in infos] == [RunState.LOST, RunState.LOST]
        assert all("stopped early" in (i.error or "") for i in infos)
        for info in infos:
            pid = int((info.worker or "").split(":")[1])
            assert not pid_alive(pid)
            run_dir = executor.run_dir(info.run_id)
            assert not (run_dir / "result.json").exists()
            history = metric_history(run_dir / "checkpoint.pt", "rmse")
            assert pruned_at in history and len(history) < 30  # resumable: the checkpoint holds its history

        LambdaSearch(spec, store, executor, study).optimize(1)
        second = study.trials[1]
        assert second.state == TrialState.PRUNED and second.user_attrs["run_ids"] == trial.user_attrs["run_ids"]
        assert [store.get_run(i).attempts for i in second.user_attrs["run_ids"]] == [i.attempts for i in infos]
    finally:
        store.close()


def test_executor_should_stop_stops_the_batch(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, epochs=30))
    runs = searched_arm_runs(spec)
    store = open_store(db(tmp_path))
    try:
        from suite.plan import planned_rows

        store.add_planned(planned_rows(runs))
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=local_slots(1))
        calls: list[int] = []

        def stop() -> bool:
            calls.append(1)
            return True

        summary = executor.execute(runs, should_stop=stop)
        assert summary.stopped and not summary.done and not summary.failed and len(calls) == 1
        assert [store.get_run(r.run_id).state for r in runs] == [RunState.LOST, RunState.PLANNED]

        def broken() -> bool:
            raise RuntimeError("pruner exploded")

        with pytest.raises(RuntimeError, match="pruner exploded"):  # the error propagates, no worker is left behind
            executor.execute(runs[1:], should_stop=broken)
        info = store.get_run(runs[1].run_id)
        assert info.state == RunState.LOST and "pruner exploded" in (info.error or "")
        assert not pid_alive(int((info.worker or "").split(":")[1]))
    finally:
        store.close()


def test_study_lives_beside_the_store_and_pins_its_experiment(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path))
    url = db(tmp_path)
    study = open_study(spec, url)  # optuna first on a fresh file, then the store: no clash either way
    store = open_store(url)
    store.close()
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"runs", "metrics", "meta"} <= tables and {"studies", "trials", "trial_values"} <= tables
    assert enqueue_points(study, spec) == [TrialPoint(parse_schedule(PAPER))]
    assert enqueue_points(study, spec) == []  # already waiting
    assert len(open_study(spec, url).trials) == 1  # loaded, not recreated

    other = load_spec(write_spec(tmp_path, epochs=3))
    with pytest.raises(ConfigError, match=r"config\.epochs.*search\.study"):
        open_study(other, url)


def test_search_space_and_trial_runs(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path))
    template = require_search(spec).schedule
    assert params_for_schedule(template, "3 -> -3 @ 2") == {"start": 3}
    with pytest.raises(ConfigError, match=r"start = 2\.0 is outside choices"):
        params_for_schedule(template, "2 -> -3 @ 2")
    with pytest.raises(ConfigError, match="the template fixes"):
        params_for_schedule(template, "3 -> -2 @ 2")

    # the trial of the arm's own schedule is the arm's run: `suite run` and the search share it
    runs = trial_runs(spec, "3 -> -3 @ 2")
    assert [r.run_id for r in runs] == [r.run_id for r in searched_arm_runs(spec)]
    assert {(r.group, r.arm) for r in runs} == {(SEARCH_GROUP, "3 → -3 @ 2")}
    assert len({r.run_id for r in trial_runs(spec, "1 -> -3 @ 2")} & {r.run_id for r in runs}) == 0

    raw = dict(spec.raw)
    with pytest.raises(ConfigError, match="no \\[search\\] section"):
        require_search(spec_from_dict({k: v for k, v in raw.items() if k != "search"}, source="x.toml"))
    clash = {**raw, "groups": [{**raw["groups"][0], "name": "search"}], "search": {**raw["search"], "group": "search"}}
    with pytest.raises(ConfigError, match="rename the spec's group"):
        require_search(spec_from_dict(clash, source="x.toml"))


def test_shipped_lambda_search_spec_is_a_valid_search() -> None:
    spec = load_spec(Path(__file__).parent.parent / "specs" / "lambda_search.toml")
    search = require_search(spec)
    assert set(search.settings) == {"clip"} and search.settings["clip"].choices == (
        [0.5, 2.0],
        [0.25, 4.0],
        [0.75, 1.5],
    )
    first = as_point(spec, search.enqueue[0])
    assert params_for_point(search, first) == {
        "kind": "linear",
        "start": 3.0,
        "end": -3.0,
        "epochs": 6,
        "clip": "[0.5, 2.0]",
    }
    assert trial_runs(spec, first)[0].run_id == plan(spec)[0].run_id  # the enqueued paper point is the arm's run


SETTINGS = """
[search.settings]
clip = { kind = "categorical", choices = [[0.5, 2], [0.25, 4], "none"] }
"""


LR = 'lr = { kind = "float", low = 1e-4, high = 1e-2, log = true }'


def test_settings_are_searched_with_the_schedule(tmp_path: Path) -> None:
    spec = load_spec(
        write_spec(tmp_path, settings=SETTINGS + 'lr = { kind = "float", low = 1e-4, high = 1e-2, log = true }')
    )
    search = require_search(spec)
    assert list(search.settings) == ["clip", "lr"] and search.settings["clip"].choices == (
        [0.5, 2.0],
        [0.25, 4.0],
        "none",
    )
    # the enqueued bare schedule takes the arm's clip and lr
    (paper,) = [as_point(spec, value) for value in search.enqueue]
    assert paper == TrialPoint(parse_schedule(PAPER), {"clip": [0.5, 2.0], "lr": 1e-3})
    assert [r.run_id for r in trial_runs(spec, paper)] == [r.run_id for r in searched_arm_runs(spec)]
    assert trial_runs(spec, paper)[0].arm == "3 → -3 @ 2, clip [0.5, 2.0], lr 0.001"

    # a sampled point: Optuna stores the clip pair as text, the run config gets the values themselves
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        point = suggest_point(trial, search)
        assert trial.params["clip"] in ("[0.5, 2.0]", "[0.25, 4.0]", "none") and 1e-4 <= trial.params["lr"] <= 1e-2
        assert point_from_params(search, trial.params) == point
        assert params_for_point(search, point) == trial.params
        config = trial_runs(spec, point)[0].config
        assert config.weighting_options["clip"] == point.settings["clip"] and config.lr == trial.params["lr"]
        assert config.weighting_options["schedule"] == point.schedule.to_spec()
        seen.add(json.dumps(point.settings["clip"]))
        study.tell(trial, 0.0)
    assert seen == {"[0.5, 2.0]", "[0.25, 4.0]", '"none"'}

    # the study pins the arm without what is searched: the same search from an arm with another lr is the same
    # experiment, one with another epochs is not
    url = db(tmp_path)
    open_study(spec, url)
    text = spec.source and Path(spec.source).read_text()
    for change, same in (("lr = 5e-3", True), ("epochs = 3", False)):
        key = change.split(" = ")[0]
        other = tmp_path / f"other_{key}.toml"
        other.write_text(re.sub(rf"^{key} = .*$", change, text, count=1, flags=re.M))
        if same:
            open_study(load_spec(other), url)
        else:
            with pytest.raises(ConfigError, match=rf"config\.{key}"):
                open_study(load_spec(other), url)


def test_optional_and_boolean_settings(tmp_path: Path) -> None:
    """``false`` is none for an optional setting (the arm's own grad_clip is none); booleans stay booleans."""
    settings = """[search.settings]
grad_clip = { kind = "categorical", choices = [false, 1.0] }
init = { kind = "categorical", choices = [true, false] }
"""
    enqueue = '["3 -> -3 @ 2", { schedule = "3 -> -3 @ 2", grad_clip = 1, init = false }]'
    spec = load_spec(write_spec(tmp_path, settings=settings, enqueue=enqueue))
    search = require_search(spec)
    assert search.settings["grad_clip"].choices == (None, 1.0)
    own, other = (as_point(spec, value) for value in search.enqueue)
    assert own.settings == {"grad_clip": None, "init": True}
    assert own.describe() == "3 → -3 @ 2, grad_clip none, init true"
    assert [r.run_id for r in trial_runs(spec, own)] == [r.run_id for r in searched_arm_runs(spec)]
    assert params_for_point(search, other) == {"start": 3, "grad_clip": 1.0, "init": False}
    config = trial_runs(spec, other)[0].config
    assert config.grad_clip == 1.0 and config.weighting_options["init"] is False


def test_settings_errors_name_the_key(tmp_path: Path) -> None:
    def loads(settings: str, enqueue: str = '["3 -> -3 @ 2"]') -> Spec:
        return load_spec(write_spec(tmp_path, settings=settings, enqueue=enqueue))

    with pytest.raises(ConfigError, match=r"search\.settings\.clp: 'clp' cannot be searched \(did you mean 'clip'\?\)"):
        loads('[search.settings]\nclp = { kind = "categorical", choices = ["none"] }')
    with pytest.raises(
        ConfigError, match=r"search\.settings\.clip: expected a parameter table.*groups\[0\]\.arms\[1\]"
    ):
        loads('[search.settings]\nclip = "none"')
    with pytest.raises(ConfigError, match=r"search\.settings\.clip: clip is not numeric"):
        loads('[search.settings]\nclip = { kind = "float", low = 1, high = 4 }')
    with pytest.raises(ConfigError, match=r"search\.settings\.clip\.choices\[1\]: clip must be a pair"):
        loads('[search.settings]\nclip = { kind = "categorical", choices = ["none", [1, 2, 3]] }')
    with pytest.raises(ConfigError, match=r"search\.settings\.schedule: .*\[search\.schedule\]"):
        loads('[search.settings]\nschedule = { kind = "categorical", choices = ["3 -> -3"] }')
    with pytest.raises(ConfigError, match=r"search\.settings\.weighting: 'weighting' cannot be searched"):
        loads('[search.settings]\nweighting = { kind = "categorical", choices = ["equal"] }')
    with pytest.raises(ConfigError, match=r"search\.settings\.val_split: 'val_split' cannot be searched"):
        loads('[search.settings]\nval_split = { kind = "categorical", choices = ["val", "test"] }')
    with pytest.raises(ConfigError, match=r'search\.settings\.batch_size: batch_size is an integer: use kind = "int"'):
        loads('[search.settings]\nbatch_size = { kind = "float", low = 2, high = 4 }')
    with pytest.raises(ConfigError, match=r"search\.settings\.lr\.low: .*lr must be > 0"):
        loads('[search.settings]\nlr = { kind = "float", low = -1, high = 1 }')
    with pytest.raises(ConfigError, match=r"search\.settings\.losses\.choices\[1\]"):
        loads('[search.settings]\nlosses = { kind = "categorical", choices = ["L^0", "L_Q"] }')
    with pytest.raises(
        ConfigError, match=r"search\.enqueue\[0\]\.lr: 'lr' is not searched \(searched settings: clip\)"
    ):
        loads(SETTINGS, enqueue='[{ schedule = "3 -> -3 @ 2", lr = 1e-2 }]')
    shipped = load_spec(Path(__file__).parent.parent / "specs" / "lambda_search.toml")
    with pytest.raises(ConfigError, match=r"search\.settings\.epochs: 'epochs' is also a parameter of \[search\.sch"):
        apply_overrides(shipped, ['search.settings.epochs={kind="int", low=2, high=4}'])
    spec = loads(SETTINGS, enqueue='[{ schedule = "3 -> -3 @ 2", clip = [0.1, 10] }]')
    with pytest.raises(
        ConfigError, match=r"tiny\.toml: search\.enqueue\[0\]: .*clip = \[0\.1, 10\.0\] is outside choices"
    ):
        enqueue_points(open_study(spec, db(tmp_path)), spec)
    narrow = loads('[search.settings]\nclip = { kind = "categorical", choices = ["none"] }')  # the arm has [0.5, 2]
    with pytest.raises(ConfigError, match=r"enqueue\[0\]: .*clip = \[0\.5, 2\.0\] is outside .*the arm's own values"):
        enqueue_points(open_study(narrow, db(tmp_path)), narrow)


def test_a_resumed_study_keeps_its_space_and_says_what_changed(tmp_path: Path) -> None:
    url = db(tmp_path)
    spec = load_spec(write_spec(tmp_path, settings=SETTINGS))
    study = open_study(spec, url)
    enqueue_points(study, spec)
    trial = study.ask()  # the enqueued paper point, with the spec's distributions
    suggest_point(trial, require_search(spec))
    study.tell(trial, 1.0)
    assert enqueue_points(open_study(spec, url), spec) == []  # already tried

    narrower = apply_overrides(spec, ['search.settings.clip={kind="categorical", choices=[[0.5, 2], "none"]}'])
    with pytest.raises(ConfigError, match=r"parameter 'clip' of the spec .* cannot continue the study's"):
        open_study(narrower, url)
    as_int = apply_overrides(spec, ['search.schedule.start={kind="int", low=1, high=3}'])
    with pytest.raises(ConfigError, match=r"parameter 'start' .*search\.study=NAME"):
        open_study(as_int, url)

    # a study whose trials had lr fixed cannot silently continue with lr searched
    searched_lr = load_spec(write_spec(tmp_path, settings=SETTINGS + LR))
    with pytest.raises(ConfigError, match=r"the spec now searches lr \(fixed at 0\.001 in its trials\)"):
        open_study(searched_lr, url)


def test_sampled_values_take_the_field_type_so_points_match(tmp_path: Path) -> None:
    """An int range on a float setting: Optuna samples 0, the spec's point says 0.0; the same point all the same
    (the enqueued point is not enqueued again, the run ids agree)."""
    settings = '[search.settings]\nweight_decay = { kind = "int", low = 0, high = 1 }'
    spec = load_spec(write_spec(tmp_path, settings=settings))
    search = require_search(spec)
    study = open_study(spec, db(tmp_path))
    (paper,) = enqueue_points(study, spec)
    trial = study.ask()
    point = suggest_point(trial, search)
    assert trial.params["weight_decay"] == 0 and point == paper and point.settings == {"weight_decay": 0.0}
    study.tell(trial, 1.0)
    assert enqueue_points(study, spec) == []
    assert as_point(spec, {"schedule": PAPER, "weight_decay": 0}) == paper


def test_an_invalid_combination_fails_its_trial_not_the_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each setting is checked alone at load time; a combination the config rejects fails that trial (with the
    reason) and the study goes on."""
    import suite.search.space

    real = suite.search.space.apply_settings

    def picky(base: object, settings: dict[str, object], **kw: object) -> object:
        if settings.get("clip") == "none" and settings["schedule"] == PAPER:
            raise ConfigError("<search>: search trial: clip none and this schedule do not go together")
        return real(base, settings, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(suite.search.space, "apply_settings", picky)
    enqueue = '[{ schedule = "3 -> -3 @ 2", clip = "none" }]'
    spec = load_spec(write_spec(tmp_path, starts="[3]", settings=SETTINGS, enqueue=enqueue))
    store = open_store(db(tmp_path))
    try:
        study = open_study(spec, db(tmp_path))
        enqueue_points(study, spec)
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=local_slots(1))
        LambdaSearch(spec, store, executor, study).optimize(1)
        (trial,) = study.trials
        assert trial.state == TrialState.FAIL and "do not go together" in trial.user_attrs["error"]
        assert trials_counted(study) == 1 and store.runs(spec="tiny") == []
    finally:
        store.close()


def test_search_over_clip_runs_each_clip_and_labels_its_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enqueue = '["3 -> -3 @ 2", { schedule = "3 -> -3 @ 2", clip = [0.25, 4] }]'
    spec = write_spec(tmp_path, starts="[3]", settings=SETTINGS, enqueue=enqueue)
    results = tmp_path / "results"
    assert main(["search", str(spec), "--results", str(results), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "λ schedule, clip" in out and "3 → -3 @ 2, clip [0.25, 4.0] (enqueued)" in out
    trials = load(db(results)).trials
    assert [t.params for t in trials] == [{"start": 3, "clip": "[0.5, 2.0]"}, {"start": 3, "clip": "[0.25, 4.0]"}]
    assert [t.user_attrs["settings"] for t in trials] == [{"clip": [0.5, 2.0]}, {"clip": [0.25, 4.0]}]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    store = open_store(db(results))
    try:
        for t, clip in zip(trials, ([0.5, 2.0], [0.25, 4.0]), strict=True):
            infos = [store.get_run(run_id) for run_id in t.user_attrs["run_ids"]]
            assert all(i.state == RunState.DONE and i.config["weighting_options"]["clip"] == clip for i in infos)
            assert {i.arm for i in infos} == {t.user_attrs["label"]}
    finally:
        store.close()


@pytest.mark.slow
def test_ctrl_c_fails_the_trial_and_the_same_command_retries_it_from_the_checkpoints(tmp_path: Path) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    spec = write_spec(tmp_path, epochs=12, starts="[3]")
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "suite", "search", str(spec), "--results", str(results), "--jobs", "2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    coord = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not list(results.glob("runs/*/checkpoint.pt")):
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.2)
    coord.send_signal(signal.SIGINT)
    _, err = coord.communicate(timeout=120)
    assert coord.returncode == 130 and "the same command resumes" in err
    trials = load(db(results)).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[0].user_attrs["interrupted"] is True and trials[1].user_attrs["schedule"] == PAPER

    subprocess.run(cmd, env=env, check=True, capture_output=True)
    trials = load(db(results)).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert (
        trials[1].user_attrs["schedule"] == PAPER and trials[1].user_attrs["run_ids"] == trials[0].user_attrs["run_ids"]
    )
    resumed = [
        json.loads((results / "runs" / run_id[:16] / "result.json").read_text())["resumed_from"]
        for run_id in trials[1].user_attrs["run_ids"]
    ]
    assert any(r is not None for r in resumed)  # at least the run that had a checkpoint resumed from it


# ------------------------------------------------------------------------------------------------ parallel trials

BOTH = '["3 -> -3 @ 2", "1 -> -3 @ 2"]'


class PruneStartOne(optuna.pruners.BasePruner):
    """Prunes the trials with start = 1 at their first report, never the others."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.params.get("start") == 1


class CtrlCOnceBothReported(optuna.pruners.BasePruner):
    """Stands for a Ctrl-C that comes while two trials train, once each has reported an epoch (so every run has a
    checkpoint to resume from): raised where the coordinator asks the pruner."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if len(running) == 2 and all(t.intermediate_values or t.number == trial.number for t in running):
            raise KeyboardInterrupt
        return False


#: Epochs of 16 batches: a poll (every 0.5 s) sees each run validate its first epochs long before it ends, so the
#: pruner is asked while the runs train, however fast the machine.
LONG = 64


def runs_of(store: object, trial: optuna.trial.FrozenTrial) -> list[object]:
    return [store.get_run(run_id) for run_id in trial.user_attrs["run_ids"]]  # type: ignore[attr-defined]


def test_two_trials_run_at_once_on_the_slots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, epochs=3, enqueue=BOTH)
    results = tmp_path / "results"
    args = ["search", str(spec), "--results", str(results), "--jobs", "4"]
    assert main([*args, "--parallel", "0"]) == 2
    assert "--parallel must be >= 1, got 0" in capsys.readouterr().err

    assert main([*args, "--parallel", "2"]) == 0
    assert "running 2, 2 at a time, on 4 slot(s)" in capsys.readouterr().err
    trials = load(db(results)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert [t.params["start"] for t in trials] == [3, 1]
    store = open_store(db(results))
    try:
        first, second = (runs_of(store, t) for t in trials)
    finally:
        store.close()
    assert all(i.state == RunState.DONE and i.attempts == 1 for i in [*first, *second])  # type: ignore[attr-defined]
    # at once: every run of both trials started before any of them finished
    assert max(i.started_at for i in [*first, *second]) < min(i.finished_at for i in [*first, *second])  # type: ignore[attr-defined]


def test_a_pruned_trial_stops_its_own_runs_while_the_other_trial_goes_on(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, epochs=6, enqueue=BOTH, length=LONG))
    store = open_store(db(tmp_path))
    try:
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=local_slots(4))
        study = open_study(spec, db(tmp_path), pruner=PruneStartOne())
        enqueue_points(study, spec)
        LambdaSearch(spec, store, executor, study, parallel=2).optimize(2)
        kept, pruned = study.trials
        assert (kept.state, pruned.state) == (TrialState.COMPLETE, TrialState.PRUNED)
        assert pruned.user_attrs["pruned_at_epoch"] < 5 and len(kept.intermediate_values) == 6
        assert all(i.state == RunState.DONE and i.attempts == 1 for i in runs_of(store, kept))  # type: ignore[attr-defined]
        lost = runs_of(store, pruned)
        assert all(i.state == RunState.LOST and "stopped early" in (i.error or "") for i in lost)  # type: ignore[attr-defined]
        assert all((executor.run_dir(i.run_id) / "checkpoint.pt").exists() for i in lost)  # type: ignore[attr-defined]
    finally:
        store.close()


def test_two_trials_of_one_point_at_once_train_its_runs_once(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, starts="[3]", enqueue="[]"))
    store = open_store(db(tmp_path))
    try:
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=local_slots(2))
        study = open_study(spec, db(tmp_path))
        study.enqueue_trial({"start": 3})
        study.enqueue_trial({"start": 3})
        LambdaSearch(spec, store, executor, study, parallel=2).optimize(2)
        one, two = study.trials
        assert one.state == two.state == TrialState.COMPLETE and one.value == two.value
        assert one.user_attrs["run_ids"] == two.user_attrs["run_ids"]
        assert [i.attempts for i in runs_of(store, one)] == [1, 1]  # type: ignore[attr-defined]
        assert len(store.runs(spec="tiny")) == 2
    finally:
        store.close()


def test_ctrl_c_with_two_trials_running_retries_both_from_their_checkpoints(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, epochs=6, enqueue=BOTH, length=LONG))
    store = open_store(db(tmp_path))
    try:
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=local_slots(4))
        study = open_study(spec, db(tmp_path), pruner=CtrlCOnceBothReported())
        enqueue_points(study, spec)
        with pytest.raises(KeyboardInterrupt):
            LambdaSearch(spec, store, executor, study, parallel=2).optimize(2)
        trials = study.trials
        assert [t.state for t in trials] == [TrialState.FAIL] * 2 + [TrialState.WAITING] * 2
        assert all(t.user_attrs["interrupted"] and "error" not in t.user_attrs for t in trials[:2])
        assert [t.user_attrs["retry_of"] for t in trials[2:]] == [0, 1]
        assert [t.user_attrs["schedule"] for t in trials[2:]] == [t.user_attrs["schedule"] for t in trials[:2]]
        assert trials_counted(study) == 0
        stopped = [i for t in trials[:2] for i in runs_of(store, t)]
        assert all(i.state == RunState.LOST and "Ctrl-C" in (i.error or "") for i in stopped)  # type: ignore[attr-defined]

        study = open_study(spec, db(tmp_path), pruner=optuna.pruners.NopPruner())
        LambdaSearch(spec, store, executor, study, parallel=2).optimize()
        trials = study.trials
        assert [t.state for t in trials[2:]] == [TrialState.COMPLETE] * 2
        assert [t.user_attrs["run_ids"] for t in trials[2:]] == [t.user_attrs["run_ids"] for t in trials[:2]]
        resumed = [
            json.loads((executor.run_dir(i.run_id) / "result.json").read_text())["resumed_from"]  # type: ignore[attr-defined]
            for i in stopped
        ]
        assert all(r is not None for r in resumed)  # every run had validated an epoch, so each resumed
    finally:
        store.close()


def test_default_parallel_trials_keep_every_local_slot_busy() -> None:
    from suite.commands.search import parallel_trials
    from suite.execution.workers import Slot

    class Local:
        def __init__(self, n: int) -> None:
            self.slots = [Slot(f"gpu{i}", device="cuda") for i in range(n)]

    assert [parallel_trials(Local(n), 3) for n in (1, 3, 4, 8, 9)] == [1, 1, 2, 3, 3]
    assert parallel_trials(object(), 3) == 1  # SLURM: the cluster's queue decides


def test_a_dead_coordinators_trial_goes_stale_and_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The coordinating loop beats every running trial's Optuna heartbeat and fails stale ones before it asks for a
    trial: a trial left RUNNING by a coordinator that died is failed and retried with the same point."""
    import time

    import suite.search.study

    monkeypatch.setattr(suite.search.study, "HEARTBEAT_INTERVAL_S", 1)
    monkeypatch.setattr(suite.search.study, "GRACE_PERIOD_S", 2)
    spec = load_spec(write_spec(tmp_path, starts="[3, 1]", enqueue="[]"))
    store = open_store(db(tmp_path))
    try:
        study = open_study(spec, db(tmp_path))
        dead = study.ask()  # the coordinator that asked for it died before its first run started
        suggest_point(dead, require_search(spec))
        dead.set_user_attr("schedule", parse_schedule("1 -> -3 @ 2").to_spec() if dead.params["start"] == 1 else PAPER)
        suite.search.study.record_heartbeat(study, dead)
        time.sleep(3.5)  # SQLite keeps heartbeat times to the second
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=local_slots(2))
        LambdaSearch(spec, store, executor, study, parallel=2).optimize(1)
        first, retry = study.trials
        assert first.state == TrialState.FAIL and "error" not in first.user_attrs  # not counted against the budget
        assert retry.state == TrialState.COMPLETE and retry.params == first.params
        assert retry.system_attrs["failed_trial"] == first.number
        beats = pd_read_heartbeats(db(tmp_path))
        assert set(beats) == {first._trial_id, retry._trial_id}  # this loop beat the trial it ran
    finally:
        store.close()


def pd_read_heartbeats(url: str) -> list[int]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(sqlalchemy.text("SELECT trial_id FROM trial_heartbeats"))]
    finally:
        engine.dispose()


class PruneTrialZero(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number == 0


def test_a_run_of_a_pruned_trial_goes_on_for_the_next_trial_of_its_point(tmp_path: Path) -> None:
    """Trial 0 is pruned while its runs train, and the next trial, asked in the same poll, is the same point: its
    runs are not stopped (they would then belong to no one and the search would wait for them forever)."""
    import signal

    def too_long(signum: int, frame: object) -> None:
        raise TimeoutError("the search did not end: a trial waits for runs that were stopped")

    spec = load_spec(write_spec(tmp_path, epochs=4, starts="[3]", enqueue="[]", length=LONG))
    store = open_store(db(tmp_path))
    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(240)
    try:
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=local_slots(2))
        study = open_study(spec, db(tmp_path), pruner=PruneTrialZero())
        study.enqueue_trial({"start": 3})
        study.enqueue_trial({"start": 3})
        LambdaSearch(spec, store, executor, study, parallel=1).optimize(2)
        pruned, kept = study.trials
        assert (pruned.state, kept.state) == (TrialState.PRUNED, TrialState.COMPLETE)
        assert kept.user_attrs["run_ids"] == pruned.user_attrs["run_ids"]
        assert [i.attempts for i in runs_of(store, kept)] == [1, 1]  # type: ignore[attr-defined]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        store.close()
