"""Typed weighting options: one record per method, canonical in RunConfig whatever the entry point (issue 15)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from mlrd_core.config import RunConfig
from mlrd_core.errors import ConfigError, ScheduleError, WeightingError, WeightingOptionError
from mlrd_core.result import config_hash
from mlrd_core.weighting import (
    WEIGHTINGS,
    LeeKimOptions,
    Linear,
    WeightingOptions,
    make_weighting,
    options_class,
    schedules,
)
from suite.plan import describe_weighting, plan, run_id_for
from suite.spec import loads_spec

NAMES = ("l_D^0", "l_r^0", "l_N^0")

#: One non-default option set per method, as a spec table writes it.
SPEC_OPTIONS: dict[str, dict[str, Any]] = {
    "equal": {},
    "fixed": {"weights": {"L_D": 1}, "default": 2},
    "lee-kim": {"schedule": "2 -> -2 @ 8", "clip": [1, 3], "init": False},
    "uncertainty": {"init_log_var": 1},
    "dwa": {"temperature": 3, "per_period": True},
    "rlw": {"seed": 3},
    "famo": {"lr": 1, "gamma": 0, "optimizer": "sgd"},
}

SPEC_HEAD = '[spec]\nname = "t"\n[defaults]\nepochs = 1\ninput_size = [64, 96]\n[[groups]]\nname = "g"\n'


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml(v)}' for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _spec_arm(weighting: str, options: dict[str, Any]) -> RunConfig:
    text = SPEC_HEAD + f'[[groups.arms]]\nlosses = "L_D"\nweighting = "{weighting}"\n'
    text += f"weighting_options = {_toml(options)}\n"
    return next(iter(loads_spec(text).arms())).config


@pytest.mark.parametrize("weighting", sorted(SPEC_OPTIONS))
def test_direct_config_and_spec_arm_have_one_run_id(weighting: str) -> None:
    from_spec = _spec_arm(weighting, SPEC_OPTIONS[weighting])
    direct = RunConfig(
        epochs=1, input_size=(64, 96), losses="L_D", weighting=weighting, weighting_options=SPEC_OPTIONS[weighting]
    )
    assert direct == from_spec
    assert direct.to_dict() == from_spec.to_dict()
    assert config_hash(direct.to_dict()) == config_hash(from_spec.to_dict())
    assert run_id_for(direct, 0) == run_id_for(from_spec, 0)
    assert RunConfig.from_dict(direct.to_dict()) == direct  # the stored form reads back to the same record


def test_lee_kim_spellings_share_one_record() -> None:
    canonical = RunConfig()
    spellings: list[Any] = [
        {},
        {"schedule": "3 -> -3"},
        {"schedule": "3 → −3", "clip": [0.5, 2]},
        {"schedule": {"kind": "linear", "start": 3, "end": -3, "epochs": 5}},
        LeeKimOptions(schedule=Linear(3.0, -3.0, epochs=5)),
    ]
    for options in spellings:
        config = RunConfig(weighting="Lee_Kim", weighting_options=options)
        assert config.weighting == "lee-kim" and isinstance(config.weighting_options, LeeKimOptions)
        assert run_id_for(config, 0) == run_id_for(canonical, 0), options


def test_record_reads_as_its_spec_mapping() -> None:
    options = RunConfig(weighting_options={"schedule": 1, "clip": "none"}).weighting_options
    assert isinstance(options, LeeKimOptions) and options.clip is None and options.schedule(4) == 1.0
    assert options["schedule"] == {"kind": "constant", "value": 1.0, "per_period": False}
    assert options.get("clip") == "none" and dict(options) == options.to_spec()
    assert options == LeeKimOptions.from_spec(options.to_spec())


@pytest.mark.parametrize("weighting", sorted(SPEC_OPTIONS))
def test_records_round_trip_and_match_the_methods(weighting: str) -> None:
    cls = options_class(weighting)
    assert issubclass(cls, WeightingOptions) and cls.method == weighting
    record = cls.from_spec(SPEC_OPTIONS[weighting])
    assert cls.from_spec(record.to_spec()) == record
    assert hash(cls.from_spec(record.to_spec())) == hash(record)
    # the record's options are the method's keyword options (the run setting periods_per_epoch aside)
    params = list(inspect.signature(WEIGHTINGS[weighting].__init__).parameters)[2:]
    assert [p for p in params if p != "periods_per_epoch"] == list(record)
    built = make_weighting(weighting, NAMES if weighting != "fixed" else ("l_D^0",), record)
    assert built.name == weighting


@pytest.mark.parametrize(
    ("weighting", "options", "key", "pattern"),
    [
        ("lee-kim", {"lamda": 3}, "lamda", r"unknown option\(s\) \['lamda'\] for weighting 'lee-kim'"),
        ("lee-kim", {"clip": 3}, "clip", r'clip must be a pair \[low, high\] of numbers or "none", got 3'),
        ("lee-kim", {"clip": [2, 0.5]}, "clip", r"0 < low <= 1 <= high"),
        ("lee-kim", {"init": "yes"}, "init", r"init must be true or false, got 'yes'"),
        ("lee-kim", {"schedule": "fast"}, "schedule", r"schedule: cannot read the λ schedule 'fast'"),
        ("fixed", {}, "weights", r"weighting 'fixed' needs option\(s\) \['weights'\]"),
        ("fixed", {"weights": {"L_D": "1"}}, "weights", r"weights\.L_D must be a finite number"),
        ("dwa", {"temperature": 0}, "temperature", r"temperature must be finite and > 0, got 0"),
        ("rlw", {"seed": -1}, "seed", r"seed must be an integer >= 0, got -1"),
        ("famo", {"optimizer": "adamw"}, "optimizer", r"optimizer must be one of 'adam', 'sgd', got 'adamw'"),
        (
            "equal",
            {"seed": 1},
            "seed",
            r"unknown option\(s\) \['seed'\] for weighting 'equal'; valid options: \(none\)",
        ),
    ],
)
def test_bad_option_names_the_key(weighting: str, options: dict[str, Any], key: str, pattern: str) -> None:
    for build in (
        lambda: RunConfig(weighting=weighting, weighting_options=options),
        lambda: make_weighting(weighting, NAMES, **options),
    ):
        with pytest.raises(WeightingOptionError, match=pattern) as info:
            build()
        assert info.value.key == key
        assert isinstance(info.value, ConfigError) and isinstance(info.value, WeightingError)


def test_bad_option_in_a_spec_names_its_key_path() -> None:
    with pytest.raises(ConfigError, match=r"groups\[0\]\.arms\[0\]\.weighting_options\.temperature: temperature"):
        _spec_arm("dwa", {"temperature": -1})
    with pytest.raises(ScheduleError, match=r"groups\[0\]\.arms\[0\]\.weighting_options\.schedule: cannot read"):
        _spec_arm("lee-kim", {"schedule": "fast"})


def test_options_of_another_method_are_refused_and_a_switch_resets_them() -> None:
    lee_kim = RunConfig()
    with pytest.raises(WeightingError, match=r"weighting 'dwa' takes DWAOptions, got the options of 'lee-kim'"):
        RunConfig(weighting="dwa", weighting_options=lee_kim.weighting_options)
    switched = lee_kim.replace(weighting="dwa")  # as a spec level that switches the method: the new defaults
    assert switched.weighting_options == {"temperature": 2.0, "per_period": False}
    assert RunConfig(weighting="dwa").weighting_options == switched.weighting_options
    with pytest.raises(ConfigError, match=r"weighting: unknown weighting method 'gradnorm'"):
        RunConfig(weighting="gradnorm")


@pytest.fixture
def schedule_parses(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every reading of a schedule's spec form (text or table) by parse_schedule."""
    calls: list[object] = []
    for name in ("_parse_text", "_parse_table"):
        original = getattr(schedules, name)

        def counted(value: Any, _original: Any = original) -> Any:
            calls.append(value)
            return _original(value)

        monkeypatch.setattr(schedules, name, counted)
    return calls


def test_the_schedule_is_parsed_once_per_config(schedule_parses: list[object]) -> None:
    config = RunConfig(weighting_options={"schedule": "2 -> -2 @ 8", "rebalance": True})
    assert len(schedule_parses) == 1
    run_id_for(config, 0)
    config_hash(config.to_dict())
    assert describe_weighting(config) == (True, True, "2 → -2 @ 8")
    weighting = make_weighting(config.weighting, NAMES, config.weighting_options, periods_per_epoch=4)
    assert weighting.schedule is config.weighting_options.schedule  # type: ignore[attr-defined]
    assert config.replace(lr=1e-3).weighting_options is config.weighting_options
    assert len(schedule_parses) == 1


def test_the_schedule_is_parsed_once_per_arm_through_a_spec(schedule_parses: list[object]) -> None:
    arms = "".join(f'[[groups.arms]]\nlabel = "{i}"\nlosses = "L_D"\nschedule = "{i} -> -{i}"\n' for i in (1, 2, 3))
    spec = loads_spec(SPEC_HEAD + arms)
    assert len(schedule_parses) == 3
    runs = plan(spec)
    assert {r.lam for r in runs} == {"1 → -1", "2 → -2", "3 → -3"}
    assert len(schedule_parses) == 3


def test_training_reads_the_typed_schedule(schedule_parses: list[object], tmp_path: Path) -> None:
    from tiny_spec import TINY_CONFIG

    from mlrd_core.trainer import fit

    config = TINY_CONFIG.replace(epochs=1, max_steps_per_epoch=2, weighting_options={"schedule": "1 -> -1 @ 2"})
    assert len(schedule_parses) == 1
    result = fit(config, seed=0, workdir=tmp_path)
    assert len(schedule_parses) == 1  # the trainer builds the method from the record
    assert [p["lam"] for p in result.periods] == [1.0, 1.0]
