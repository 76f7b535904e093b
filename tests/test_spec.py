"""suite.spec: the shipped specs load, unknown keys and bad values fail at load time with file + key path."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from mlrd_core.config import RunConfig
from mlrd_core.errors import ConfigError, ExpressionError, MLRDError, ScheduleError
from mlrd_core.metrics import METRIC_NAMES
from suite.plan import plan
from suite.spec import (
    ARM_KEYS,
    DEFAULT_SEEDS,
    SETTING_KEYS,
    TIMING_NAMES,
    Distribution,
    Spec,
    load_spec,
    loads_spec,
)
from suite.tables import layout_for, metric_table_model

SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"

#: spec file -> (arms, references, tables)
SHIPPED = {
    "demo": (4, 0, 2),
    "demo_ablation": (15, 0, 4),
    "table3": (2, 15, 1),
    "table4": (1, 6, 1),
    "table5": (29, 29, 6),
    "table5_mixture": (29, 29, 6),
    "table6": (5, 5, 1),
    "table7": (3, 3, 1),
    "lambda_search": (1, 0, 1),
}

MINIMAL = """
[spec]
name = "t"

[defaults]
epochs = 1
input_size = [64, 96]

[[groups]]
name = "g"

[[groups.arms]]
losses = "L_D"
"""


def write(tmp_path: Path, text: str, name: str = "t.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Spec:
    return load_spec(write(tmp_path, text))


@pytest.fixture(scope="module")
def shipped() -> dict[str, Spec]:
    return {name: load_spec(SPECS_DIR / f"{name}.toml") for name in SHIPPED}


# ------------------------------------------------------------------------------------------------ shipped specs


def test_every_shipped_spec_is_covered() -> None:
    assert {p.stem for p in SPECS_DIR.glob("*.toml")} == set(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_spec_loads(shipped: dict[str, Spec], name: str) -> None:
    spec = shipped[name]
    arms, references, tables = SHIPPED[name]
    assert spec.name == name
    assert spec.seeds == (0, 1, 2)
    assert len(list(spec.arms())) == arms
    assert len(spec.references) == references
    assert len(spec.tables) == tables
    for arm in spec.arms():
        assert isinstance(arm.config, RunConfig)
        assert arm.config.input_size[0] % 32 == 0 and arm.config.input_size[1] % 32 == 0


def test_table5_parts_and_references(shipped: dict[str, Spec]) -> None:
    spec = shipped["table5"]
    assert [(g.name, len(g.arms)) for g in spec.groups] == [("a", 10), ("b", 7), ("c", 7), ("d", 4), ("e", 1)]
    # every arm has exactly one paper row
    assert Counter((r.group, r.arm) for r in spec.references) == Counter((a.group, a.label) for a in spec.arms())
    assert {a.config.epochs for a in spec.arms()} == {5}
    assert {a.config.encoder for a in spec.arms()} == {"densenet161"}
    assert {a.config.weighting for a in spec.group("a").arms} == {"equal"}
    assert spec.group("a").arms[0].config.weighting_options == {}
    assert spec.group("e").arms[0].config.weighting == "uncertainty"
    c = spec.group("c")
    schedules = [a.config.weighting_options["schedule"] for a in c.arms]
    assert schedules[0] == {"kind": "constant", "value": -3.0, "per_period": False}
    assert c.arm("λ = 0 (R off)").config.weighting_options["rebalance"] is False
    assert spec.group("d").arm("R only").config.weighting_options["init"] is False
    b_table = spec.table("table5b")
    assert b_table.baseline == "a" and b_table.baseline_match == ("losses",)
    ref = next(r for r in spec.references if r.group == "b" and r.arm == "L")
    assert ref.values == {"delta1": 0.870, "rmse": 0.434, "rmse_log": 0.150, "abs_rel": 0.117}
    assert ref.source == "Lee & Kim 2020, Table 5(b)"


def test_table3_has_every_paper_row(shipped: dict[str, Spec]) -> None:
    spec = shipped["table3"]
    others = [r for r in spec.references if r.arm is None]
    assert len(others) == 13
    assert others[0].label == "Eigen et al. [9]" and others[0].values["rmse"] == 0.907
    assert "log10" not in others[0].values  # "-" cells are omitted
    dense = next(r for r in spec.references if r.arm == "Proposed (Dense)")
    assert dense.values["delta1"] == 0.850 and dense.values["rmse"] == 0.457
    assert {a.label: (a.config.encoder, a.config.batch_size) for a in spec.arms()} == {
        "Proposed (Dense)": ("densenet161", 12),
        "Proposed (PNAS)": ("pnasnet5large", 8),
    }
    assert {a.config.epochs for a in spec.arms()} == {20}
    assert {a.config.protocol for a in spec.arms()} == {"nyu-lee-kim"}
    assert all(a.config.val_split is None for a in spec.arms())
    assert spec.tables[0].metrics == METRIC_NAMES


def test_table4_6_7_contents(shipped: dict[str, Spec]) -> None:
    t4 = shipped["table4"]
    assert t4.group("make3d").arms[0].config.protocol == "make3d-c1"
    assert t4.group("make3d").arms[0].config.encoder == "pnasnet5large"
    assert t4.tables[0].metrics == ("rmse", "abs_rel", "log10")
    t6 = shipped["table6"]
    assert [a.config.encoder for a in t6.arms()] == [
        "vgg16",
        "resnet50",
        "legacy_senet154",
        "densenet161",
        "pnasnet5large",
    ]
    t7 = shipped["table7"]
    assert {a.config.batch_size for a in t7.arms()} == {2}
    assert {a.config.input_size for a in t7.arms()} == {(288, 384)}
    assert t7.tables[0].ratio_to == "{l_D^0}"
    assert t7.tables[0].timings == ("s_per_iter", "losses_s_per_iter", "test_s_per_scene")
    assert [r.values["s_per_iter"] for r in t7.references] == [1.63, 1.70, 1.97]


def test_demo_is_cpu_sized(shipped: dict[str, Spec]) -> None:
    spec = shipped["demo"]
    labels = [a.label for a in spec.arms()]
    assert labels == ["{l_D^0}", "L_D | L_G, weighting=equal", "L_D | L_G, weighting=lee-kim", "L"]
    for arm in spec.arms():
        cfg = arm.config
        assert cfg.dataset == "synthetic" and cfg.encoder == "mobilenetv3_small_100" and not cfg.pretrained
        assert cfg.input_size == (64, 96)
        assert cfg.skips and cfg.init_depth == 3.0  # the two changes that let the random-init demo learn at all
        assert cfg.lr_schedule == "cosine" and not cfg.augment  # and two that make it learn in 1,024 steps
        assert cfg.epochs * cfg.dataset_options["train"]["length"] // cfg.batch_size <= 1024  # steps per run
    table = spec.table("demo")
    assert table.baseline_arm == "{l_D^0}" and len(table.pairs) == 3  # paired differences against {l_D^0}
    lee_kim = spec.group("demo").arm("L_D | L_G, weighting=lee-kim").config
    assert lee_kim.weighting_options["schedule"]["epochs"] == lee_kim.epochs == 7


def test_lambda_search_section(shipped: dict[str, Spec]) -> None:
    search = shipped["lambda_search"].search
    assert search is not None
    assert (search.group, search.arm, search.objective, search.direction) == ("paper", "L", "rmse", "minimize")
    assert search.split == "val" and search.seeds == (0, 1, 2)
    assert search.schedule["kind"] == Distribution(kind="categorical", choices=("linear", "cosine"))
    assert search.schedule["epochs"] == Distribution(kind="int", low=2, high=6)
    assert search.enqueue[0]["schedule"]["kind"] == "linear" and search.enqueue[0]["schedule"]["start"] == 3.0
    assert search.enqueue[0]["clip"] == [0.5, 2.0]  # the arm's own clip: the searched setting it leaves out
    assert search.settings["clip"] == Distribution(kind="categorical", choices=([0.5, 2.0], [0.25, 4.0], [0.75, 1.5]))


def test_defaults_of_spec_section(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, MINIMAL.replace('name = "t"', ""), name="my-spec.v2.toml"))
    assert spec.name == "my-spec.v2"  # the file stem
    assert spec.title == "my-spec.v2"
    assert spec.seeds == DEFAULT_SEEDS == (0, 1, 2)
    assert spec.search is None and spec.tables == () and spec.references == ()


# ------------------------------------------------------------------------------------------------ unknown keys

UNKNOWN_KEY_CASES = [
    ("top level", MINIMAL + "\n[defualts]\nepochs = 1\n", "defualts", "defaults"),
    ("spec", MINIMAL.replace('name = "t"', 'name = "t"\nseed = [1]'), "seed", "seeds"),
    ("defaults", MINIMAL.replace("epochs = 1", "epoch = 1"), "epoch", "epochs"),
    ("groups[0]", MINIMAL.replace('name = "g"', 'name = "g"\ntitel = "x"'), "titel", "title"),
    (
        "groups[0].defaults",
        MINIMAL.replace('name = "g"', 'name = "g"\ndefaults = { batch_sise = 4 }'),
        "batch_sise",
        "batch_size",
    ),
    ("groups[1].arms[0]", MINIMAL + '[[groups]]\nname = "h"\n[[groups.arms]]\nlossses = "L"\n', "lossses", "losses"),
    ("overrides", MINIMAL + "[overrides]\nepocs = 1\n", "epocs", "epochs"),
    (
        "reference[0]",
        MINIMAL + '[[reference]]\ngroup = "g"\narm = "L_D"\nsource = "x"\ndelta_1 = 0.5\n',
        "delta_1",
        "delta1",
    ),
    (
        "reference[0].match",
        MINIMAL + '[[reference]]\ngroup = "g"\nsource = "x"\nmatch = { loses = "L_D" }\nrmse = 1\n',
        "loses",
        "losses",
    ),
    ("tables[0]", MINIMAL + '[[tables]]\nname = "x"\nmetrics = ["rmse"]\ncolumn = ["n_losses"]\n', "column", "columns"),
]


@pytest.mark.parametrize(("path", "text", "key", "near"), UNKNOWN_KEY_CASES, ids=[c[0] for c in UNKNOWN_KEY_CASES])
def test_unknown_key_names_file_path_and_valid_keys(tmp_path: Path, path: str, text: str, key: str, near: str) -> None:
    file = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_spec(file)
    message = str(info.value)
    assert message.startswith(f"{file}: {path}: unknown key {key!r} (did you mean {near!r}?); valid keys: ")
    assert near in message.split("valid keys: ")[1].split(", ")


def test_unknown_arm_key_lists_all_arm_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, MINIMAL + "[[groups.arms]]\nfoo = 1\n")
    assert "groups[0].arms[1]: unknown key 'foo'; valid keys: " + ", ".join(ARM_KEYS) in str(info.value)


def test_unknown_search_and_distribution_keys(tmp_path: Path) -> None:
    search = '[search]\ngroup = "g"\narm = "L_D"\nobjective = "rmse"\n[search.schedule]\nkind = "linear"\n'
    with pytest.raises(ConfigError, match=r"t\.toml: search: unknown key 'trials'"):
        load_text(tmp_path, MINIMAL + search.replace("[search.schedule]", "trials = 3\n[search.schedule]"))
    bad = search + 'start = { kind = "float", low = 0, hihg = 3 }\n'
    with pytest.raises(ConfigError, match=r"search\.schedule\.start: unknown key 'hihg' \(did you mean 'high'\?\)"):
        load_text(tmp_path, MINIMAL + bad)


# ------------------------------------------------------------------------------------------------ syntax and values


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    file = write(tmp_path, '[spec]\nname = "t"\nseeds = [0, 1\n')
    with pytest.raises(ConfigError) as info:
        load_spec(file)
    assert re.match(rf"{re.escape(str(file))}:\d+: TOML syntax error: ", str(info.value))
    file = write(tmp_path, '[spec]\nname = "t"\n\ntitle = \n')
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(file))}:4: TOML syntax error"):
        load_spec(file)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_spec(tmp_path / "nope.toml")


def test_bad_expression_shows_caret_file_and_key_path(tmp_path: Path) -> None:
    file = write(tmp_path, MINIMAL + '[[groups.arms]]\nlosses = "L_D | L_Gx"\n')
    with pytest.raises(ExpressionError) as info:
        load_spec(file)
    message = str(info.value)
    assert message.startswith(f"{file}: groups[0].arms[1].losses: ")
    assert "L_D | L_Gx" in message and "^" in message
    caret_line = next(line for line in message.splitlines() if line.strip().startswith("^"))
    expr_line = next(line for line in message.splitlines() if line.strip() == "L_D | L_Gx")
    assert caret_line.index("^") == expr_line.index("L_Gx")
    assert "did you mean 'L_G'" in message


def test_bad_expression_in_a_grid_names_the_element(tmp_path: Path) -> None:
    with pytest.raises(ExpressionError, match=r"groups\[0\]\.arms\[1\]\.losses\[1\]: "):
        load_text(tmp_path, MINIMAL + '[[groups.arms]]\nlosses = ["L_G", "{l_X^0}"]\n')


def test_overridden_shared_values_are_still_checked(tmp_path: Path) -> None:
    # every arm sets its own losses / schedule / encoder, yet a typo in [defaults] or a group's defaults is an error
    with pytest.raises(ExpressionError, match=r"defaults\.losses: the expression selects no losses"):
        load_text(tmp_path, MINIMAL.replace("epochs = 1", 'epochs = 1\nlosses = "L_D & L_G"'))
    with pytest.raises(ScheduleError, match=r"groups\[0\]\.defaults\.schedule: "):
        load_text(tmp_path, MINIMAL.replace('name = "g"', 'name = "g"\ndefaults = { schedule = "fast" }'))
    with pytest.raises(ConfigError, match=r"overrides\.encoder: unknown encoder"):
        load_text(tmp_path, MINIMAL + '[overrides]\nencoder = "resnet"\n')
    with pytest.raises(ConfigError, match=r"defaults\.epochs: epochs must be an integer"):
        load_text(tmp_path, MINIMAL.replace("epochs = 1", 'epochs = "1"') + "[[groups.arms]]\nepochs = 2\n")


@pytest.mark.parametrize(
    ("snippet", "path"),
    [
        ('schedule = "3 => -3"', "defaults.schedule"),
        ('weighting_options = { schedule = { kind = "linear", start = 3 } }', "defaults.weighting_options.schedule"),
        ('schedule = { kind = "cosine", start = 3, end = -3, epochs = 1 }', "defaults.schedule"),
    ],
)
def test_bad_schedule(tmp_path: Path, snippet: str, path: str) -> None:
    file = write(tmp_path, MINIMAL.replace("epochs = 1", f"epochs = 1\n{snippet}"))
    with pytest.raises(ScheduleError) as info:
        load_spec(file)
    assert str(info.value).startswith(f"{file}: {path}: ")
    assert "accepted λ-schedule forms" in str(info.value)


@pytest.mark.parametrize(
    ("snippet", "path", "pattern"),
    [
        ('encoder = "resnet_18"', "defaults.encoder", "unknown encoder 'resnet_18'"),
        ('dataset = "nyu"', "defaults.dataset", "unknown dataset 'nyu'.*valid datasets: "),
        ('protocol = "nyu-lee"', "defaults.protocol", "unknown evaluation protocol 'nyu-lee'"),
        ('weighting = "lee-kin"', "defaults.weighting", "unknown weighting method 'lee-kin'.*'lee-kim'"),
        ('weighting = "equal"\nschedule = "3"', "defaults.schedule", "unknown option 'schedule' for weighting 'equal'"),
        ("clip = [2, 0.5]", "defaults.clip", r"lee-kim: 0 < low <= 1 <= high"),  # at the option's own key
        ("clip = 3", "defaults.clip", 'clip must be a pair \\[low, high\\] of numbers or "none"'),
        ('init = "yes"', "defaults.init", "init must be true or false"),
        ("input_size = [60, 96]", "defaults.input_size", r"must be multiples of 32"),
        ('epochs = "5"', "defaults.epochs", "epochs must be an integer, got '5'"),
        ("lr = true", "defaults.lr", "lr must be a number, got bool True"),
        ("input_size = [64]", "defaults.input_size", "input_size must be a list of 2 integers"),
        ("batch_size = [4, 8]", "defaults.batch_size", "lists expand as a grid only in"),
        ("dataset_options = 3", "defaults.dataset_options", "expected a table"),
        ("epochs = 0", "groups[0].arms[0]", r"epochs must be >= 1, got 0 \(set at defaults.epochs\)"),
    ],
)
def test_bad_values_fail_at_load_with_path(tmp_path: Path, snippet: str, path: str, pattern: str) -> None:
    text = MINIMAL.replace(
        "epochs = 1\ninput_size = [64, 96]", snippet + ("\ninput_size = [64, 96]" * ("input_size" not in snippet))
    )
    file = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_spec(file)
    assert str(info.value).startswith(f"{file}: {path}: "), str(info.value)
    assert re.search(pattern, str(info.value)), str(info.value)


def test_errors_share_the_project_base_class(tmp_path: Path) -> None:
    with pytest.raises(MLRDError):
        load_text(tmp_path, MINIMAL + "[overrides]\nfoo = 1\n")
    with pytest.raises(ValueError):
        load_text(tmp_path, MINIMAL + "[overrides]\nfoo = 1\n")


def test_false_stands_for_none(tmp_path: Path) -> None:
    spec = load_text(tmp_path, MINIMAL.replace("epochs = 1", "epochs = 1\nval_split = false\ngrad_clip = false"))
    config = spec.groups[0].arms[0].config
    assert config.val_split is None and config.grad_clip is None
    assert config.test_split == "test"


@pytest.mark.parametrize("bad", ["../evil", "a/b", "a\\\\b", "..", ".hidden", "x..y", "", "sp ace"])
def test_spec_name_rejects_paths(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match=r"spec\.name: invalid spec name"):
        load_text(tmp_path, MINIMAL.replace('name = "t"', f'name = "{bad}"'))


def test_file_stem_must_be_a_valid_name(tmp_path: Path) -> None:
    file = write(tmp_path, MINIMAL.replace('name = "t"', ""), name="my spec.toml")
    with pytest.raises(ConfigError, match=r"spec\.name \(from the file name\): invalid spec name 'my spec'"):
        load_spec(file)


@pytest.mark.parametrize("bad", ["a.b", "a/b", "..", ""])
def test_group_name_rejects_dots_and_paths(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match=r"groups\[0\]\.name: invalid group name"):
        load_text(tmp_path, MINIMAL.replace('name = "g"', f'name = "{bad}"'))


def test_duplicate_group_and_arm_labels(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"groups\[1\]\.name: duplicate group name 'g'"):
        load_text(tmp_path, MINIMAL + '[[groups]]\nname = "g"\n[[groups.arms]]\nlosses = "L"\n')
    with pytest.raises(ConfigError, match=r"two arms of group 'g' have the label 'L_D'"):
        load_text(tmp_path, MINIMAL + '[[groups.arms]]\nlosses = "L_D"\nbatch_size = 4\nlabel = "L_D"\n')


def test_group_needs_arms(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"groups\[1\]: a group needs at least one arm"):
        load_text(tmp_path, MINIMAL + '[[groups]]\nname = "h"\n')
    with pytest.raises(ConfigError, match="at least one \\[\\[groups\\]\\]"):
        load_text(tmp_path, '[spec]\nname = "t"\n')


def test_no_eval_or_exec_in_the_loader() -> None:
    suite = Path(__file__).resolve().parent.parent / "suite"
    for path in (*sorted((suite / "spec").glob("*.py")), suite / "plan.py"):
        assert not re.search(r"\b(eval|exec)\s*\(", path.read_text(encoding="utf-8")), path


# ------------------------------------------------------------------------------------------------ grids


def test_grid_expands_cartesian_product_in_order(tmp_path: Path) -> None:
    spec = load_text(tmp_path, MINIMAL + '[[groups.arms]]\nlosses = ["L_G", "L_N"]\nbatch_size = [4, 8]\n')
    arms = spec.groups[0].arms
    assert [a.label for a in arms] == [
        "L_D",
        "L_G, batch_size=4",
        "L_G, batch_size=8",
        "L_N, batch_size=4",
        "L_N, batch_size=8",
    ]
    assert [(a.config.losses, a.config.batch_size) for a in arms[1:]] == [
        ("L_G", 4),
        ("L_G", 8),
        ("L_N", 4),
        ("L_N", 8),
    ]
    assert arms[2].where == "groups[0].arms[1] [grid 2/4]"
    assert arms[2].settings == {"losses": "L_G", "batch_size": 8}


def test_grid_with_explicit_label(tmp_path: Path) -> None:
    spec = load_text(tmp_path, MINIMAL + '[[groups.arms]]\nlabel = "sweep"\nschedule = [1, "2 -> -2"]\n')
    assert [a.label for a in spec.groups[0].arms][1:] == ["sweep [schedule=1]", "sweep [schedule=2 -> -2]"]


def test_sequence_values_are_not_grids(tmp_path: Path) -> None:
    one = load_text(tmp_path, MINIMAL + "[[groups.arms]]\ninput_size = [96, 128]\nclip = [0.25, 4]\n")
    arm = one.groups[0].arms[1]
    assert arm.config.input_size == (96, 128)
    assert arm.config.weighting_options["clip"] == [0.25, 4.0]
    two = load_text(
        tmp_path, MINIMAL + '[[groups.arms]]\ninput_size = [[96, 128], [64, 64]]\nclip = [[0.5, 2], "none"]\n'
    )
    arms = two.groups[0].arms[1:]
    assert [(a.config.input_size, a.config.weighting_options["clip"]) for a in arms] == [
        ((96, 128), [0.5, 2.0]),
        ((96, 128), "none"),
        ((64, 64), [0.5, 2.0]),
        ((64, 64), "none"),
    ]


def test_empty_grid_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"groups\[0\]\.arms\[1\]\.encoder: an empty list expands to no arms"):
        load_text(tmp_path, MINIMAL + "[[groups.arms]]\nencoder = []\n")


# ------------------------------------------------------------------------------------------------ precedence

PRECEDENCE = """
[spec]
name = "p"
[defaults]
input_size = [64, 96]
schedule = 1
clip = "none"
batch_size = 2
dataset_options = { height = 48, train = { length = 4, scene_seed = 1 } }
[[groups]]
name = "g"
defaults = { schedule = 2, batch_size = 3 }
[[groups.arms]]
label = "arm sets"
schedule = 3
batch_size = 4
dataset_options = { train = { length = 8 } }
[[groups.arms]]
label = "group sets"
[[groups.arms]]
label = "table beats group shorthand"
weighting_options = { schedule = "5 -> -5" }
[[groups.arms]]
label = "switch method"
weighting = "uncertainty"
[[groups.arms]]
label = "same method"
weighting = "lee_kim"
[[groups]]
name = "h"
[[groups.arms]]
label = "defaults only"
"""


def _lam(spec: Spec, group: str, label: str) -> object:
    return spec.group(group).arm(label).config.weighting_options["schedule"]


def test_precedence_arm_over_group_over_defaults(tmp_path: Path) -> None:
    spec = load_text(tmp_path, PRECEDENCE)
    g = spec.group("g")
    assert _lam(spec, "g", "arm sets") == {
        "kind": "constant",
        "value": 3.0,
        "per_period": False,
    }
    assert g.arm("arm sets").config.batch_size == 4
    assert _lam(spec, "g", "group sets")["value"] == 2.0  # type: ignore[index]
    assert g.arm("group sets").config.batch_size == 3
    assert _lam(spec, "h", "defaults only")["value"] == 1.0  # type: ignore[index]
    assert spec.group("h").arms[0].config.batch_size == 2
    assert _lam(spec, "g", "table beats group shorthand")["start"] == 5.0  # type: ignore[index]
    # options of other keys are inherited across levels
    assert g.arm("arm sets").config.weighting_options["clip"] == "none"


def test_weighting_switch_drops_inherited_options(tmp_path: Path) -> None:
    spec = load_text(tmp_path, PRECEDENCE)
    assert spec.group("g").arm("switch method").config.weighting_options == {"init_log_var": 0.0}
    same = spec.group("g").arm("same method").config
    assert same.weighting == "lee-kim"  # canonical name
    assert same.weighting_options["schedule"]["value"] == 2.0 and same.weighting_options["clip"] == "none"


def test_dataset_options_merge_recursively(tmp_path: Path) -> None:
    spec = load_text(tmp_path, PRECEDENCE)
    assert spec.group("g").arm("arm sets").config.dataset_options == {
        "height": 48,
        "train": {"length": 8, "scene_seed": 1},
    }


def test_overrides_table_beats_arms(tmp_path: Path) -> None:
    text = PRECEDENCE.replace('weighting = "uncertainty"', 'weighting = "lee-kim"')
    spec = load_text(tmp_path, text + "[overrides]\nbatch_size = 7\nschedule = 0\n")
    assert {a.config.batch_size for a in spec.arms()} == {7}
    assert {_lam(spec, a.group, a.label)["value"] for a in spec.arms()} == {0.0}  # type: ignore[index]


def test_forced_weighting_option_must_fit_every_arm(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"overrides\.schedule: unknown option 'schedule' for weighting 'uncertainty'"
    ):
        load_text(tmp_path, PRECEDENCE + "[overrides]\nschedule = 0\n")


def test_shorthand_and_table_at_one_level_conflict(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"defaults\.schedule: 'schedule' is given both as a shorthand and in"):
        load_text(
            tmp_path, MINIMAL.replace("epochs = 1", "epochs = 1\nschedule = 1\nweighting_options = { schedule = 2 }")
        )


def test_equivalent_schedules_resolve_alike(tmp_path: Path) -> None:
    forms = ['"3 -> -3"', '"3 → −3"', '{ kind = "linear", start = 3, end = -3, epochs = 5 }', '"3.0->-3 @ 5"']
    arms = (f'[[groups.arms]]\nlabel = "{i}"\nlosses = "L_D"\nschedule = {f}\n' for i, f in enumerate(forms))
    text = MINIMAL + "".join(arms)
    spec = load_text(tmp_path, text)
    configs = [a.config for a in spec.groups[0].arms[1:]]
    assert all(c == configs[0] for c in configs)
    assert configs[0] == spec.groups[0].arms[0].config  # the factory default is the paper's schedule


def test_weighting_defaults_are_filled(tmp_path: Path) -> None:
    config = load_text(tmp_path, MINIMAL).groups[0].arms[0].config
    assert config.weighting_options == {
        "schedule": {
            "kind": "linear",
            "start": 3.0,
            "end": -3.0,
            "epochs": 5,
            "per_period": False,
        },
        "init": True,
        "rebalance": True,
        "clip": [0.5, 2.0],
    }


# ------------------------------------------------------------------------------------------------ references / tables


def test_reference_rows_must_point_at_arms(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"reference\[0\]\.arm: group 'g' has no arm 'L_G'.*arms: L_D"):
        load_text(tmp_path, MINIMAL + '[[reference]]\ngroup = "g"\narm = "L_G"\nsource = "x"\nrmse = 1\n')
    with pytest.raises(ConfigError, match=r"reference\[0\]\.group: unknown group 'h'"):
        load_text(tmp_path, MINIMAL + '[[reference]]\ngroup = "h"\narm = "L_D"\nsource = "x"\nrmse = 1\n')
    with pytest.raises(ConfigError, match=r"reference\[0\]: a reference row needs arm"):
        load_text(tmp_path, MINIMAL + '[[reference]]\ngroup = "g"\nsource = "x"\nrmse = 1\n')
    with pytest.raises(ConfigError, match=r"reference\[0\]: a reference row needs at least one value"):
        load_text(tmp_path, MINIMAL + '[[reference]]\ngroup = "g"\narm = "L_D"\nsource = "x"\n')
    with pytest.raises(ConfigError, match=r"reference\[0\]\.delta1: delta1 is a fraction in \[0, 1\]"):
        load_text(tmp_path, MINIMAL + '[[reference]]\ngroup = "g"\narm = "L_D"\nsource = "x"\ndelta1 = 84.8\n')


def test_reference_match_selects_one_arm(tmp_path: Path) -> None:
    base = MINIMAL + '[[groups.arms]]\nlosses = "L_G | L_D"\nschedule = [1, "3 -> -3"]\n'
    spec = load_text(
        tmp_path,
        base + '[[reference]]\ngroup = "g"\nsource = "x"\nmatch = { losses = "L_D ∪ L_G", schedule = 1 }\nrmse = 1\n',
    )
    assert spec.references[0].arm == "L_G | L_D, schedule=1"
    assert spec.references[0].label == "L_G | L_D, schedule=1"
    with pytest.raises(
        ConfigError, match=r"reference\[0\]\.match: must select exactly one arm of group 'g', but selects"
    ):
        load_text(
            tmp_path, base + '[[reference]]\ngroup = "g"\nsource = "x"\nmatch = { losses = "L_D | L_G" }\nrmse = 1\n'
        )


def test_external_reference_rows(tmp_path: Path) -> None:
    spec = load_text(
        tmp_path,
        MINIMAL + '[[reference]]\ngroup = "g"\nlabel = "Eigen [9]"\nsource = "paper"\nrmse = 0.9\ns_per_iter = 1.5\n',
    )
    ref = spec.references[0]
    assert (ref.arm, ref.label, ref.values) == (None, "Eigen [9]", {"rmse": 0.9, "s_per_iter": 1.5})


@pytest.mark.parametrize(
    ("snippet", "pattern"),
    [
        ('metrics = ["rmse", "rmse_lin"]', r"tables\[0\]\.metrics\[1\]: unknown name 'rmse_lin'.*valid: delta1"),
        ('timings = ["s_per_iteration"]', r"tables\[0\]\.timings\[0\]: unknown name 's_per_iteration'"),
        ('metrics = ["rmse"]\ncolumns = ["lambda", "lr"]', r"tables\[0\]\.columns\[1\]: unknown name 'lr'"),
        ('metrics = ["rmse"]\ngroups = ["x"]', r"tables\[0\]\.groups\[0\]: unknown name 'x'"),
        ('metrics = ["rmse"]\nbaseline = "x"', r"tables\[0\]\.baseline: unknown group 'x'"),
        ('metrics = ["rmse"]\nsplit = "train"', r"tables\[0\]\.split: split must be one of test, val"),
        ('timings = ["s_per_iter"]\nratio_to = "L"', r"tables\[0\]\.ratio_to: must name exactly one arm"),
        ('metrics = ["rmse"]\nratio_to = "L_D"', r"ratio_to divides timings"),
        ("", r"tables\[0\]: a table needs metrics"),
    ],
)
def test_bad_tables(tmp_path: Path, snippet: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_text(tmp_path, MINIMAL + f'[[tables]]\nname = "x"\n{snippet}\n')


def test_table_metric_and_timing_names() -> None:
    assert "s_per_iter" in TIMING_NAMES and "test_s_per_scene" in TIMING_NAMES
    assert set(SETTING_KEYS) >= {"losses", "schedule", "init", "rebalance", "clip", "weighting_options"}


def test_ambiguous_baseline(tmp_path: Path) -> None:
    text = MINIMAL + '[[groups.arms]]\nlosses = "L_D"\nbatch_size = 4\n'
    text += '[[groups]]\nname = "h"\n[[groups.arms]]\nlosses = "L_D"\n'
    with pytest.raises(ConfigError, match=r"matches 2 arms of baseline group 'g' on \['losses'\]"):
        load_text(tmp_path, text + '[[tables]]\nname = "x"\ngroups = ["h"]\nmetrics = ["rmse"]\nbaseline = "g"\n')
    spec = load_text(
        tmp_path,
        text + '[[tables]]\nname = "x"\ngroups = ["h"]\nmetrics = ["rmse"]\nbaseline = "g"\n'
        'baseline_match = ["losses", "batch_size"]\n',
    )
    assert spec.tables[0].baseline_match == ("losses", "batch_size")
    # the pairs are resolved once, on both keys: h's arm (default batch size) against g's arm with the same batch size
    arms = [a.label for a in spec.groups[0].arms]
    assert spec.tables[0].pairs == (("h", "L_D", "g", arms[0]),)
    # ... and the report uses them: rendering does not fail on the two baseline arms that share the losses
    runs = plan(spec)
    metrics = pd.DataFrame(
        [
            {"run_id": r.run_id, "group": r.group, "arm": r.arm, "seed": r.seed, "split": "test", "epoch": 0,
             "protocol": "synthetic", "metric": "rmse", "value": 0.5 + 0.01 * r.seed + (0.1 if r.group == "h" else 0)}
            for r in runs
        ]
    )  # fmt: skip
    model = metric_table_model(spec, spec.tables[0], runs, metrics)
    (row,) = [r for s in model.sections for r in s.rows]
    assert row.baseline_arm == arms[0] and row.cells["rmse"].diff == pytest.approx(0.1)


def test_one_baseline_arm_for_a_table(tmp_path: Path) -> None:
    text = MINIMAL + '[[groups.arms]]\nlosses = "L_D | L_G"\n[[groups.arms]]\nlosses = "L"\n'
    spec = load_text(tmp_path, text + '[[tables]]\nname = "x"\nmetrics = ["rmse"]\nbaseline_arm = "L_D"\n')
    table = spec.tables[0]
    assert (table.baseline, table.baseline_arm) == ("g", "L_D")
    assert table.pairs == (("g", "L_D | L_G", "g", "L_D"), ("g", "L", "g", "L_D"))
    assert layout_for(spec, table).pairs == {("g", "L_D | L_G"): ("g", "L_D"), ("g", "L"): ("g", "L_D")}


@pytest.mark.parametrize(
    ("snippet", "pattern"),
    [
        (
            'baseline_arm = "L_G"',
            r"tables\[0\]\.baseline_arm: must name exactly one arm of the table's groups, got 'L_G'",
        ),
        ('baseline_arm = "L_D "', r"tables\[0\]\.baseline_arm: must name exactly one arm"),
        (
            'baseline_arm = "L_D"\nbaseline = "g"',
            r"baseline_arm: give baseline .* or baseline_arm, not both",
        ),
        ("baseline_arm = 3", r"tables\[0\]\.baseline_arm"),
    ],
)
def test_bad_baseline_arm(tmp_path: Path, snippet: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_text(tmp_path, MINIMAL + f'[[tables]]\nname = "x"\nmetrics = ["rmse"]\n{snippet}\n')


# ------------------------------------------------------------------------------------------------ search

SEARCH = """
[search]
group = "g"
arm = "L_D"
objective = "delta1"
[search.schedule]
kind = "linear"
start = { kind = "float", low = 0, high = 5 }
end = -3
"""


def test_search_minimal(tmp_path: Path) -> None:
    search = load_text(tmp_path, MINIMAL + SEARCH).search
    assert search is not None
    assert search.direction == "maximize" and search.split == "val" and search.study == "t"
    assert search.schedule == {"kind": "linear", "start": Distribution(kind="float", low=0.0, high=5.0), "end": -3}


@pytest.mark.parametrize(
    ("old", "new", "error", "pattern"),
    [
        ("low = 0, high = 5", "low = 5, high = 5", ConfigError, r"search\.schedule\.start: low < high must hold"),
        ('kind = "float"', 'kind = "uniform"', ConfigError, r"search\.schedule\.start\.kind: kind must be one of"),
        ("low = 0, high = 5", "low = 0, high = 5, log = true", ConfigError, "log = true needs low > 0"),
        ('objective = "delta1"', 'objective = "acc"', ConfigError, r"search\.objective: unknown metric 'acc'"),
        ("end = -3", "finish = -3", ScheduleError, r"search\.schedule: the template at .* is not a schedule"),
        ('arm = "L_D"', 'arm = "L"', ConfigError, r"search\.arm: group 'g' has no arm 'L'"),
    ],
)
def test_bad_search(tmp_path: Path, old: str, new: str, error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        load_text(tmp_path, MINIMAL + SEARCH.replace(old, new))


def test_search_needs_a_lee_kim_arm(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the λ search needs a lee-kim arm"):
        load_text(tmp_path, MINIMAL.replace("epochs = 1", 'epochs = 1\nweighting = "equal"') + SEARCH)


def test_loads_spec_from_a_string() -> None:
    spec = loads_spec(MINIMAL, source="<test>")
    assert spec.source == "<test>" and spec.path is None
    with pytest.raises(ConfigError, match=r"^<test>: spec: a spec read from a string needs spec.name"):
        loads_spec(MINIMAL.replace('name = "t"', ""), source="<test>")


def test_the_documented_example_loads() -> None:
    text = (SPECS_DIR.parent / "docs" / "specs.md").read_text(encoding="utf-8")
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    spec = loads_spec(example, source="docs/specs.md")
    assert [len(g.arms) for g in spec.groups] == [3, 8]
    assert [a.label for a in spec.group("b").arms][2:4] == ["λ sweep [schedule=-3]", "λ sweep [schedule=1]"]
    assert spec.group("b").arm("no init [input_size=[96, 128]]").config.input_size == (96, 128)
    assert spec.references[0].arm == "L" and spec.references[1].arm is None
    assert spec.table("ab").baseline == "a" and spec.table("timing").ratio_to == "{l_D^0}"
    assert spec.search is not None and spec.search.direction == "minimize"
