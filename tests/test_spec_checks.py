"""Errors before training: what a worker would find only when it builds a run is refused when the spec loads (dataset
options and splits against the builder's declaration, the decoder width, losses that are identically zero at the
input size), and missing data or weights files are refused by ``run`` before anything is written."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mlrd_core.data import DATASETS, dataset_info, list_datasets, make_dataset
from mlrd_core.errors import ConfigError, DataError
from mlrd_core.losses import compute_losses, select
from mlrd_core.losses.functional import scale_size, vanishing_losses, zero_terms
from suite.execution.protocol import DETERMINISTIC_ERRORS
from suite.spec import Spec, check_files, load_spec, loads_spec, require_files

ROOT = Path(__file__).resolve().parents[1]

BASE = """
[spec]
name = "probe"
seeds = [0]

[defaults]
encoder = "test_resnet"
decoder_width = 32
input_size = [64, 64]
epochs = 1
losses = "L_D"
{defaults}

[[groups]]
name = "g"

[[groups.arms]]
label = "a"
{arm}
"""

SYNTHETIC = "dataset_options = { height = 64, width = 64, train = { length = 8 }, val = { length = 4 } }"


def load(defaults: str = SYNTHETIC, arm: str = "") -> Spec:
    return loads_spec(BASE.format(defaults=defaults, arm=arm), source="probe.toml")


@pytest.mark.parametrize(
    ("defaults", "arm", "path", "message"),
    [
        (
            'dataset_options = { height = "tall" }',
            "",
            "defaults.dataset_options.height",
            r'expected an integer >= 1, got "tall"',
        ),
        (
            SYNTHETIC,
            "dataset_options = { train = { length = 0 } }",
            r"groups\[0\]\.arms\[0\]\.dataset_options\.train\.length",
            "expected an integer >= 1, got 0",
        ),
        (
            "dataset_options = { length = -5 }",
            "",
            "defaults.dataset_options.length",
            "expected an integer >= 1, got -5",
        ),
        (
            SYNTHETIC,
            "dataset_options = { heigth = 32 }",
            r"groups\[0\]\.arms\[0\]\.dataset_options\.heigth",
            r"unknown option 'heigth' of dataset 'synthetic' \(did you mean 'height'\?\)",
        ),
        (
            SYNTHETIC,
            "dataset_options = { trian = { length = 3 } }",
            r"groups\[0\]\.arms\[0\]\.dataset_options\.trian",
            r"did you mean 'train'\?.*per-split tables: train, val, test",
        ),
        (
            SYNTHETIC,
            'dataset_options = { val = { scene_seed = "x" } }',
            r"groups\[0\]\.arms\[0\]\.dataset_options\.val\.scene_seed",
            "expected an integer >= 0",
        ),
        (
            'dataset_options = { split = "val" }',
            "",
            "defaults.dataset_options.split",
            "train_split, val_split and test_split choose it",
        ),
        (
            SYNTHETIC + '\nval_split = "validation"',
            "",
            "defaults.val_split",
            r"unknown split 'validation' of dataset 'synthetic'; valid splits: train, val, test",
        ),
        (SYNTHETIC, 'train_split = "training"', r"groups\[0\]\.arms\[0\]\.train_split", r"did you mean 'train'\?"),
        (
            SYNTHETIC,
            "decoder_width = 0",
            r"groups\[0\]\.arms\[0\]\.decoder_width",
            r"decoder_width must be an integer >= 32 .*got 0",
        ),
        (SYNTHETIC, 'encoder = "resnet19"', r"groups\[0\]\.arms\[0\]\.encoder", "unknown encoder 'resnet19'"),
        (
            SYNTHETIC,
            'losses = "L"\ninput_size = [32, 64]',
            r"groups\[0\]\.arms\[0\]\.losses",
            r"scale 5 is a 1×2 map, where l_c\^5, l_rc\^5, l_cc\^5, l_Nc\^5 are identically zero\. Use a larger input",
        ),
        (
            'dataset = "nyuv2-zip"\nval_split = false',
            "",
            r"groups\[0\]\.arms\[0\]\.dataset_options",
            "needs root or zip_path",
        ),
        (
            'dataset = "nyuv2-zip"\nval_split = false\ndataset_options = { root = "x", train_set = "all" }',
            "",
            "defaults.dataset_options.train_set",
            'expected one of "sequences", "labeled795", got "all"',
        ),
        (
            'dataset = "make3d"\ntest_split = false\ndataset_options = { root = "x" }',
            "",
            r"groups\[0\]\.arms\[0\] \(val_split, default 'val'\)",
            r"unknown split 'val' of dataset 'make3d'.*val_split = false runs without it",
        ),
    ],
)
def test_refused_at_load_with_the_key_path(defaults: str, arm: str, path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^probe\.toml: {path}: .*{message}"):
        load(defaults, arm)


def test_a_forced_value_names_the_override() -> None:
    spec = load()
    from suite.spec import apply_overrides

    with pytest.raises(
        ConfigError,
        match=r"\(with --set dataset_options\.height=tall\): overrides\.dataset_options\.height: expected an integer",
    ):
        apply_overrides(spec, ["dataset_options.height=tall"])


@pytest.mark.parametrize("path", sorted((ROOT / "specs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_specs_load(path: Path) -> None:
    spec = load_spec(path)
    assert list(spec.arms())


def test_declarations_follow_the_builders_signatures() -> None:
    for name in list_datasets():
        info = dataset_info(name)
        builder = DATASETS[name]
        params = [p for p in inspect.signature(builder).parameters if p != "split"]
        assert list(info.options) == params, name
        assert info.splits, name
        assert "split" in inspect.signature(builder).parameters, name


def test_make_dataset_checks_options_before_building() -> None:
    with pytest.raises(DataError, match=r"dataset 'synthetic': option height: expected an integer >= 1, got \"tall\""):
        make_dataset("synthetic", split="train", height="tall")
    with pytest.raises(DataError, match="did you mean 'length'") as raised:
        make_dataset("synthetic", split="train", lenght=3)
    assert type(raised.value).__name__ in DETERMINISTIC_ERRORS  # what a worker records: not retried


@pytest.mark.parametrize("size", [(32, 64), (32, 32), (64, 32), (16, 16), (64, 96), (8, 40), (40, 8), (96, 128)])
def test_vanishing_losses_match_the_computed_losses(size: tuple[int, int]) -> None:
    """The shape rule agrees with compute_losses on random maps: exactly the predicted losses are zero."""
    names = select("L")
    generator = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 1, *size, generator=generator, dtype=torch.float64)
    target = torch.rand(2, 1, *size, generator=generator, dtype=torch.float64)
    values = compute_losses(pred, target, names)
    zero = {n for i, n in enumerate(names) if float(values[:, i].abs().max()) < 1e-6}
    predicted = {n for _, found in vanishing_losses(names, size).values() for n in found}
    assert zero == predicted


def test_a_selection_that_vanishes_entirely_suggests_a_larger_input() -> None:
    with pytest.raises(ConfigError, match=r"l_c\^5 is identically zero\. Use a larger input \(both sides >= 64\)$"):
        load(SYNTHETIC, 'losses = "{l_c^5}"\ninput_size = [32, 64]')


def test_scale_sizes_and_zero_terms() -> None:
    assert scale_size((32, 64), 5) == (1, 2)
    assert scale_size((32, 48), 5) == (1, 1)  # floor(48/32) = 1
    assert scale_size((16, 64), 5) == (1, 1)  # the 1×1 rule
    assert scale_size((288, 384), 5) == (9, 12)
    assert zero_terms(1, 1) == tuple(t for t in zero_terms(1, 1) if t != "D") and "D" not in zero_terms(1, 1)
    assert zero_terms(2, 3) == ()
    assert vanishing_losses(select("L_D"), (32, 32)) == {}


def test_missing_data_and_weights_are_listed_not_loaded(tmp_path: Path) -> None:
    text = BASE.format(
        defaults=f'dataset = "nyuv2-zip"\nval_split = false\ndataset_options = {{ root = "{tmp_path / "nyu"}" }}',
        arm=f'pretrained = "{tmp_path / "w.safetensors"}"',
    )
    spec = loads_spec(text, source="probe.toml")  # a spec loads without its data
    problems = check_files(spec)
    assert any("NYUv2 folder not found" in p and "splits train, test" in p for p in problems)
    assert any("pretrained: weights file not found" in p for p in problems)
    with pytest.raises(ConfigError, match="missing files, nothing was started"):
        require_files(spec)
    (tmp_path / "nyu").mkdir()
    assert any("no NYUv2 zip for split 'train'" in p for p in check_files(spec))
    for name in ("train_reduced05.zip", "test654.zip", "w.safetensors"):
        (tmp_path / ("nyu" if name.endswith(".zip") else "") / name).write_bytes(b"")
    assert check_files(spec) == []


def test_run_refuses_missing_data_before_writing(tmp_path: Path) -> None:
    spec = tmp_path / "probe.toml"
    spec.write_text(
        BASE.format(defaults='dataset = "nyuv2-zip"\nval_split = false\ndataset_options = { root = "nowhere" }', arm="")
    )
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "suite", "run", str(spec), "--results", str(results)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "NYUv2 folder not found: nowhere" in done.stderr
    assert "Traceback" not in done.stderr
    assert not results.exists()


def test_plan_lists_missing_files_and_still_shows_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from suite.cli import main

    spec = tmp_path / "probe.toml"
    spec.write_text(
        BASE.format(defaults='dataset = "nyuv2-zip"\nval_split = false\ndataset_options = { root = "nowhere" }', arm="")
    )
    results = tmp_path / "results"
    assert main(["plan", str(spec), "--results", str(results)]) == 0
    captured = capsys.readouterr()
    assert "warning: " in captured.err and "NYUv2 folder not found: nowhere" in captured.err
    assert "1 planned runs" in captured.out
    assert not results.exists()


def test_a_mixture_checks_each_part_with_its_key_path(tmp_path: Path) -> None:
    def mixture(depth: str) -> str:
        nyu, sun = tmp_path / "nyu", tmp_path / "sun"
        return (
            'dataset = ["nyuv2-zip", "sunrgbd"]\neval_dataset = "nyuv2-zip"\nval_split = false\n'
            f'dataset_options = {{ nyuv2-zip = {{ root = "{nyu}" }}, '
            f'sunrgbd = {{ root = "{sun}", depth = "{depth}" }} }}'
        )

    with pytest.raises(ConfigError, match=r'defaults\.dataset_options\.sunrgbd\.depth: expected one of "raw", "bfx"'):
        load(mixture("xyz"))
    problems = check_files(load(mixture("bfx")))
    assert any(p.startswith("probe.toml: dataset_options.nyuv2-zip: NYUv2 folder not found") for p in problems)
    assert any("dataset_options.sunrgbd: SUN RGB-D folder not found" in p and "(split train;" in p for p in problems)
