"""suite.plan: run matrices, content-hashed run ids, table descriptions and --set overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import mlrd_core
from mlrd_core.config import MIXTURE_ONLY_KEYS, RunConfig
from mlrd_core.errors import ConfigError, ExpressionError
from suite.plan import (
    CODE_VERSION,
    SHORT_ID_LENGTH,
    PlannedRun,
    apply_overrides,
    canonical_json,
    describe_weighting,
    plan,
    run_id_for,
    unique_runs,
)
from suite.spec import DESCRIBE_COLUMNS, Spec, load_spec, loads_spec

SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"

#: spec -> (planned runs, distinct run ids)
RUN_COUNTS = {
    "demo": (12, 12),
    "table3": (6, 6),
    "table4": (3, 3),
    "table5": (87, 75),
    "table6": (15, 15),
    "table7": (9, 9),
    "lambda_search": (3, 3),
}

SMALL = """
[spec]
name = "small"
seeds = [0, 1]

[defaults]
input_size = [64, 96]
epochs = 2
batch_size = 8

[[groups]]
name = "a"
defaults = { weighting = "equal" }
[[groups.arms]]
losses = "L_D"
[[groups.arms]]
losses = "L"
epochs = 3

[[groups]]
name = "b"
[[groups.arms]]
losses = "L"
[[groups.arms]]
label = "flat"
losses = "L"
schedule = -3
"""


@pytest.fixture(scope="module")
def specs() -> dict[str, Spec]:
    return {name: load_spec(SPECS_DIR / f"{name}.toml") for name in RUN_COUNTS}


@pytest.fixture(scope="module")
def small() -> Spec:
    return loads_spec(SMALL, source="<small>")


@pytest.mark.parametrize("name", sorted(RUN_COUNTS))
def test_every_shipped_spec_plans(specs: dict[str, Spec], name: str) -> None:
    runs = plan(specs[name])
    total, distinct = RUN_COUNTS[name]
    assert len(runs) == total
    assert len(unique_runs(runs)) == distinct == len({r.run_id for r in runs})
    assert all(r.spec == name for r in runs)


def test_table5_parts(specs: dict[str, Spec]) -> None:
    runs = plan(specs["table5"])
    assert Counter(r.group for r in runs) == {"a": 30, "b": 21, "c": 21, "d": 12, "e": 3}
    by_arm = {(r.group, r.arm): r.run_id for r in runs if r.seed == 0}
    # the same setting in several parts is one run
    assert by_arm[("b", "L")] == by_arm[("c", "λ = 3 → -3")] == by_arm[("d", "I + R")]
    assert by_arm[("a", "L")] == by_arm[("d", "no I, no R")]
    assert by_arm[("c", "λ = 0 (R off)")] == by_arm[("d", "I only")]
    assert by_arm[("a", "L_D | L_G")] != by_arm[("b", "L_D | L_G")]


def test_identical_configs_share_ids_across_specs(specs: dict[str, Spec]) -> None:
    t3 = {(r.config.encoder, r.seed): r.run_id for r in plan(specs["table3"])}
    t6 = {(r.config.encoder, r.seed): r.run_id for r in plan(specs["table6"])}
    for key in t3:
        assert t3[key] == t6[key]
    assert len(set(t6.values()) - set(t3.values())) == 9


def test_order_is_spec_order_then_seed(small: Spec) -> None:
    runs = plan(small)
    assert [(r.group, r.arm, r.seed) for r in runs] == [
        ("a", "L_D", 0),
        ("a", "L_D", 1),
        ("a", "L, epochs=3", 0),
        ("a", "L, epochs=3", 1),
        ("b", "L", 0),
        ("b", "L", 1),
        ("b", "flat", 0),
        ("b", "flat", 1),
    ]


def test_run_id_is_sha256_of_canonical_json(small: Spec) -> None:
    run = plan(small)[0]
    payload = {"config": run.config.to_dict(), "seed": 0, "code": CODE_VERSION}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    assert run.run_id == hashlib.sha256(text.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", run.run_id)
    assert run.short_id == run.run_id[:SHORT_ID_LENGTH] and SHORT_ID_LENGTH == 16
    assert canonical_json({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"\\u00e9"],"b":1}'


def test_code_version_is_the_package_version_not_a_commit() -> None:
    assert mlrd_core.__version__ == CODE_VERSION
    assert "+" not in CODE_VERSION


def test_run_ids_are_stable_across_calls_and_loads() -> None:
    first = [r.run_id for r in plan(loads_spec(SMALL, source="x"))]
    second = [r.run_id for r in plan(loads_spec(SMALL, source="y"))]
    assert first == second
    assert len(set(first)) == len(first)


def test_labels_and_groups_do_not_enter_the_id(small: Spec) -> None:
    text = SMALL.replace('name = "small"', 'name = "other"').replace('name = "b"', 'name = "z"')
    other = {(r.arm, r.seed): r.run_id for r in plan(loads_spec(text)) if r.group == "z"}
    mine = {(r.arm, r.seed): r.run_id for r in plan(small) if r.group == "b"}
    assert other == mine


#: A valid different value for every RunConfig field.
CHANGES: dict[str, Any] = {
    "encoder": "resnet34",
    "pretrained": True,
    "decoder_width": 512,
    "skips": True,
    "init_depth": 3.0,
    "dataset": "middlebury",
    "dataset_options": {"length": 3},
    "input_size": (64, 64),
    "augment": False,
    "train_split": "val",
    "val_split": None,
    "test_split": None,
    "num_workers": 2,
    "losses": "L_D",
    "weighting": "equal",
    "weighting_options": {"schedule": "1"},
    "periods_per_epoch": 2,
    "epochs": 2,
    "batch_size": 3,
    "lr": 2e-4,
    "lr_schedule": "cosine",
    "weight_decay": 0.1,
    "grad_clip": 1.0,
    "max_steps_per_epoch": 5,
    "protocol": "nyu-eigen",
    "eval_batch_size": 3,
    "amp": "off",
    "channels_last": True,
    "compile": True,
}


def test_changes_cover_every_config_field() -> None:
    # a mixture's own keys change only with a mixture: tests/test_data_mixture.py changes them
    assert set(CHANGES) == {f.name for f in dataclasses.fields(RunConfig)} - set(MIXTURE_ONLY_KEYS)


@pytest.mark.parametrize("key", sorted(CHANGES))
def test_any_config_change_changes_the_id(key: str) -> None:
    base = RunConfig()
    changed = base.replace(**{key: CHANGES[key]})
    assert changed != base
    assert run_id_for(changed, 0) != run_id_for(base, 0)
    assert run_id_for(base, 0) == run_id_for(RunConfig(), 0)


def test_seed_and_code_change_the_id() -> None:
    config = RunConfig()
    assert run_id_for(config, 0) != run_id_for(config, 1)
    assert run_id_for(config, 0) != run_id_for(config, 0, code="9.9.9")


def test_equivalent_spellings_share_an_id() -> None:
    arms = [
        'schedule = "3 -> -3"\nclip = [0.5, 2]\nlr = 0.0001',
        'schedule = "3 → −3"\nclip = [0.5, 2.0]\nweighting = "lee_kim"',
        'weighting_options = { schedule = { kind = "linear", start = 3, end = -3, epochs = 5 } }',
        "",
    ]
    text = '[spec]\nname = "s"\n[defaults]\ninput_size = [64, 96]\n[[groups]]\nname = "g"\n'
    text += "".join(f'[[groups.arms]]\nlabel = "{i}"\n{arm}\n' for i, arm in enumerate(arms))
    runs = [r for r in plan(loads_spec(text)) if r.seed == 0]
    assert len({r.run_id for r in runs}) == 1


# ------------------------------------------------------------------------------------------------ describe


def test_describe_fields(specs: dict[str, Spec]) -> None:
    runs = {(r.group, r.arm): r for r in plan(specs["table5"]) if r.seed == 0}
    a = runs[("a", "{l_D^0}")]
    assert (a.n_losses, a.weighting, a.init, a.rebalance, a.lam) == (1, "equal", False, False, "0")
    assert a.describe()["init"] == "-" and a.describe()["lambda"] == "0"
    b = runs[("b", "L_D | L_G")]
    assert (b.n_losses, b.init, b.rebalance, b.lam) == (36, True, True, "3 → -3")
    assert b.describe()["init"] == "✓" and b.describe()["rebalance"] == "✓"
    assert runs[("c", "λ = -3")].lam == "-3"
    assert runs[("c", "λ = 5 → -5")].lam == "5 → -5"
    r_off = runs[("c", "λ = 0 (R off)")]
    assert (r_off.init, r_off.rebalance, r_off.lam) == (True, False, "0")
    e = runs[("e", "uncertainty [21]")]
    assert (e.init, e.rebalance, e.lam) == (None, None, "-")
    assert e.describe()["init"] == "" and e.describe()["lambda"] == "-"
    assert runs[("a", "L^3 | L^4 | L^5")].n_losses == 39


def test_describe_columns(small: Spec) -> None:
    run = plan(small)[0]
    described = run.describe()
    assert tuple(described) == DESCRIBE_COLUMNS
    assert described["input_size"] == "64×96"
    assert described["losses"] == "L_D" and described["n_losses"] == "6"


def test_describe_weighting_directly() -> None:
    config = RunConfig(weighting="lee-kim", weighting_options={"schedule": "2 -> -2 @ 8", "rebalance": True})
    assert describe_weighting(config) == (True, True, "2 → -2 @ 8")
    assert describe_weighting(RunConfig(weighting="dwa", weighting_options={})) == (None, None, "-")


def test_planned_run_is_frozen(small: Spec) -> None:
    run = plan(small)[0]
    assert isinstance(run, PlannedRun)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.seed = 3  # type: ignore[misc]


def test_unique_runs_keeps_first_occurrence(specs: dict[str, Spec]) -> None:
    runs = plan(specs["table5"])
    unique = unique_runs(runs)
    assert [r.run_id for r in unique] == list(dict.fromkeys(r.run_id for r in runs))
    assert next(r for r in unique if r.run_id == runs[-1].run_id).group == "e"


# ------------------------------------------------------------------------------------------------ overrides


def test_bare_key_forces_every_arm(small: Spec) -> None:
    spec = apply_overrides(small, ["epochs=1"])
    assert {r.config.epochs for r in plan(spec)} == {1}  # including the arm that sets epochs = 3
    assert spec.overrides == {"epochs": 1}
    assert {r.config.epochs for r in plan(small)} == {2, 3}  # the original is untouched


def test_defaults_key_sits_below_arms(small: Spec) -> None:
    spec = apply_overrides(small, ["defaults.epochs=5", "defaults.batch_size=4"])
    by_arm = {r.arm: r.config for r in plan(spec)}
    assert by_arm["L_D"].epochs == 5 and by_arm["L, epochs=3"].epochs == 3
    assert {c.batch_size for c in by_arm.values()} == {4}


def test_group_seed_and_spec_overrides(small: Spec) -> None:
    spec = apply_overrides(small, ["groups.b.epochs=7", "groups.a.title=Part A", "seeds=[3]"])
    assert spec.seeds == (3,)
    assert spec.group("a").title == "Part A"
    assert {r.config.epochs for r in plan(spec) if r.group == "b"} == {7}
    assert {r.config.epochs for r in plan(spec) if r.group == "a"} == {2, 3}
    assert apply_overrides(small, ["spec.seeds=[4, 5]"]).seeds == (4, 5)
    assert apply_overrides(small, ["groups.b.defaults.epochs=6"]).group("b").defaults == {"epochs": 6}


def test_nested_and_bare_string_values(small: Spec) -> None:
    spec = apply_overrides(small, ["dataset_options.train.length=16", "losses=L_D | L_G", "val_split=false"])
    config = plan(spec)[0].config
    assert config.dataset_options == {"train": {"length": 16}}
    assert config.losses == "L_D | L_G" and config.val_split is None
    spec = apply_overrides(small, ['encoder="resnet34"', "lr=1e-3", "defaults.schedule=3 -> -3 @ 8"])
    config = next(r for r in plan(spec) if r.arm == "L").config
    assert (config.encoder, config.lr, config.weighting_options["schedule"]["epochs"]) == ("resnet34", 1e-3, 8)


def test_overrides_change_ids(small: Spec) -> None:
    before = [r.run_id for r in plan(small)]
    after = [r.run_id for r in plan(apply_overrides(small, ["epochs=1"]))]
    assert all(a != b for a, b in zip(before, after, strict=True))
    assert [r.run_id for r in plan(apply_overrides(small, []))] == before


@pytest.mark.parametrize(
    ("assignment", "pattern"),
    [
        ("epochs", "an override is KEY=VALUE"),
        ("=1", "an override is KEY=VALUE"),
        ("epoch=1", "cannot apply override 'epoch=1': use a run setting"),
        ("groups.zz.epochs=1", "has no group 'zz'"),
        ("epochs.x=1", "epochs is 1, not a table|epochs must be"),
        ("spec.name=../x", r"spec\.name: invalid spec name '\.\./x'"),
    ],
)
def test_bad_overrides(small: Spec, assignment: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        apply_overrides(apply_overrides(small, ["epochs=1"]), [assignment])


def test_override_values_are_validated_and_named(small: Spec) -> None:
    with pytest.raises(
        ConfigError, match=r"^<small> \(with --set epochs=0\): groups\[0\]\.arms\[0\]: .*epochs must be >= 1"
    ):
        apply_overrides(small, ["epochs=0"])
    with pytest.raises(ExpressionError, match=r"\(with --set losses=L_Q\): overrides\.losses: "):
        apply_overrides(small, ["losses=L_Q"])


def test_overrides_on_a_file_keep_its_path(tmp_path: Path) -> None:
    file = tmp_path / "mine.toml"
    file.write_text(SMALL.replace('name = "small"\n', ""), encoding="utf-8")
    spec = apply_overrides(load_spec(file), ["epochs=1"])
    assert spec.name == "mine" and spec.path == file
    assert spec.source == f"{file} (with --set epochs=1)"
