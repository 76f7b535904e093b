"""The core trainer: periods, reproducibility, exact resume after SIGKILL, failure on non-finite losses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from tiny_spec import TINY_CONFIG as TINY

from mlrd_core.config import RunConfig, learning_rate
from mlrd_core.errors import ConfigError, NonFiniteLossError
from mlrd_core.trainer import CHECKPOINT_NAME, epoch_batches, fit, load_checkpoint, period_ends
from suite.cli import main


def test_period_ends_split_the_epoch_evenly() -> None:
    assert period_ends(8, 4) == [1, 3, 5, 7]
    assert period_ends(10, 4) == [2, 4, 7, 9]
    assert period_ends(3, 4) == [0, 1, 2]  # fewer batches than periods: every batch ends a period
    assert period_ends(5, 1) == [4]


def test_epoch_batches_are_a_seeded_permutation() -> None:
    a = epoch_batches(10, 4, seed=0, epoch=0, max_steps=None)
    assert [len(b) for b in a] == [4, 4]  # the partial batch is dropped
    assert len({i for b in a for i in b}) == 8
    assert a == epoch_batches(10, 4, seed=0, epoch=0, max_steps=None)
    assert a != epoch_batches(10, 4, seed=0, epoch=1, max_steps=None)
    assert a != epoch_batches(10, 4, seed=1, epoch=0, max_steps=None)
    assert [len(b) for b in epoch_batches(3, 4, seed=0, epoch=0, max_steps=None)] == [3]  # the only batch
    assert len(epoch_batches(40, 4, seed=0, epoch=0, max_steps=3)) == 3


def _fingerprint(result: object) -> tuple[object, ...]:
    from mlrd_core.trainer import RunResult

    assert isinstance(result, RunResult)
    weights = [[loss["weight"] for loss in p["losses"]] for p in result.periods]
    return (result.metrics, weights, [p["total"] for p in result.periods])


def test_same_config_and_seed_give_identical_runs(tmp_path: Path) -> None:
    first = fit(TINY, seed=3, workdir=tmp_path / "a")
    second = fit(TINY, seed=3, workdir=tmp_path / "b")
    assert _fingerprint(first) == _fingerprint(second)
    other = fit(TINY, seed=4, workdir=tmp_path / "c")
    assert _fingerprint(other) != _fingerprint(first)
    # 2 epochs x 2 periods, each with the period's means and the weights set at its end
    assert [(p["epoch"], p["period"]) for p in first.periods] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert first.periods[0]["action"] == "init"
    assert {m["split"] for m in first.metrics} == {"val", "test"}
    assert {m["protocol"] for m in first.metrics} == {"synthetic"}
    assert set(first.final_metrics("test")) >= {"delta1", "rmse", "abs_rel"}
    assert first.timings["s_per_iter"] > 0
    assert first.environment["torch"] == torch.__version__


def test_checkpoint_loads_with_weights_only_and_has_the_position(tmp_path: Path) -> None:
    fit(TINY.replace(epochs=1), seed=0, workdir=tmp_path)
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert (ckpt["epoch"], ckpt["next_batch"], ckpt["step"]) == (1, 0, 4)
    assert not (tmp_path / (CHECKPOINT_NAME + ".tmp")).exists()


_KILLER = textwrap.dedent(
    """
    import os, signal, sys, json
    import torch
    from mlrd_core.config import RunConfig
    from mlrd_core.trainer import fit

    config = RunConfig.from_dict(json.loads(sys.argv[1]))
    kill_at = int(sys.argv[3])
    torch.set_num_threads(int(sys.argv[4]))  # the parent's: CPU reductions are bitwise stable per thread count

    def progress(kind, info):
        if kind == "step" and info["step"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no atexit: as a node failure or OOM kill

    fit(config, seed=1, workdir=sys.argv[2], progress=progress)
    """
)


def train_until_killed(config: RunConfig, workdir: Path, *, step: int) -> subprocess.CompletedProcess[str]:
    """Train ``config`` (seed 1) in a child process in ``workdir`` and SIGKILL it when step ``step`` is reported."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLER,
            json.dumps(config.to_dict()),
            str(workdir),
            str(step),
            str(torch.get_num_threads()),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


@pytest.mark.parametrize("lr_schedule", ["constant", "cosine"])
def test_run_killed_mid_epoch_resumes_to_the_same_result(tmp_path: Path, lr_schedule: str) -> None:
    """SIGKILL a real training process in the middle of epoch 0 (after its first period checkpoint, before the
    second), resume from the same workdir, and end with exactly the numbers of an uninterrupted run (a cosine
    learning rate continues on the same curve)."""
    config = TINY.replace(lr_schedule=lr_schedule)
    reference = fit(config, seed=1, workdir=tmp_path / "uninterrupted")

    workdir = tmp_path / "killed"
    workdir.mkdir()
    proc = train_until_killed(config, workdir, step=3)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ckpt = load_checkpoint(workdir / CHECKPOINT_NAME)
    assert (ckpt["epoch"], ckpt["next_batch"]) == (0, 2)  # killed at step 3, mid-epoch, after period 0

    resumed = fit(config, seed=1, workdir=workdir)
    assert resumed.resumed_from == {"epoch": 0, "batch": 2, "step": 2}
    assert _fingerprint(resumed) == _fingerprint(reference)


def test_learning_rate_schedules() -> None:
    cosine = TINY.replace(lr=2e-3, lr_schedule="cosine")
    assert [learning_rate(cosine, s, 100) for s in (0, 50, 100)] == pytest.approx([2e-3, 1e-3, 0.0])
    assert learning_rate(cosine, 25, 100) == pytest.approx(1e-3 * (1 + 2**-0.5))
    assert {learning_rate(TINY, s, 100) for s in (0, 50, 99)} == {TINY.lr}
    with pytest.raises(ConfigError, match="lr_schedule must be one of constant, cosine, got 'step'"):
        TINY.replace(lr_schedule="step")


def test_the_optimiser_follows_the_cosine_schedule(tmp_path: Path) -> None:
    config = TINY.replace(lr_schedule="cosine")
    fit(config, seed=0, workdir=tmp_path)
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    total = config.epochs * 4  # 16 items in batches of 4
    # the last step (index total - 1) trained with the rate of its own position on the curve
    assert ckpt["step"] == total
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(learning_rate(config, total - 1, total))
    assert ckpt["optimizer"]["param_groups"][0]["lr"] < 0.05 * config.lr  # (1 + cos(7π/8)) / 2 = 0.038


def test_checkpoint_of_another_run_is_refused(tmp_path: Path) -> None:
    fit(TINY.replace(epochs=1), seed=0, workdir=tmp_path)
    with pytest.raises(ConfigError, match="belongs to another run"):
        fit(TINY.replace(epochs=1, lr=2e-3), seed=0, workdir=tmp_path)


def test_non_finite_loss_stops_with_the_loss_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlrd_core.losses as losses

    real = losses.compute_losses

    def poisoned(pred: torch.Tensor, target: torch.Tensor, names: object = None) -> torch.Tensor:
        out = real(pred, target, names)
        out[:, 1] = float("nan")
        return out

    monkeypatch.setattr(losses, "compute_losses", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at epoch 0, batch 0 \(step 0\): l_M\^0"):
        fit(TINY, seed=0, workdir=tmp_path)
    assert not (tmp_path / CHECKPOINT_NAME).exists()  # nothing half-written: no period completed


def test_run_config_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'epoch' .*did you mean 'epochs'"):
        RunConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="batch_size must be >= 1, got 0"):
        RunConfig(batch_size=0)
    assert RunConfig.from_dict(TINY.to_dict()) == TINY
    for bad in (0, -2.0, float("nan"), "3", True):
        with pytest.raises(ConfigError, match="init_depth must be None or a finite depth > 0"):
            RunConfig(init_depth=bad)  # type: ignore[arg-type]
    assert RunConfig(init_depth=3).init_depth == 3


def test_init_depth_reaches_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlrd_core.model

    seen: list[object] = []
    create = mlrd_core.model.create_depth_model

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("init_depth"))
        return create(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(mlrd_core.model, "create_depth_model", spy)
    fit(TINY.replace(epochs=1, init_depth=2.5, val_split=None, test_split=None), seed=0)
    assert seen == [2.5]


def test_channels_last_acts_on_the_cpu_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """``channels_last`` converts the model and the training inputs on every device (on the CPU it halves a small
    CNN's step); without it both stay NCHW."""
    import mlrd_core.model

    create = mlrd_core.model.create_depth_model
    formats: list[tuple[bool, bool]] = []

    def spy(*args: object, **kwargs: object) -> torch.nn.Module:
        model = create(*args, **kwargs)  # type: ignore[arg-type]

        def record(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            if module.training:
                weight = next(p for p in module.parameters() if p.dim() == 4)
                nhwc = torch.channels_last
                formats.append((inputs[0].is_contiguous(memory_format=nhwc), weight.is_contiguous(memory_format=nhwc)))

        model.register_forward_pre_hook(record)
        return model

    monkeypatch.setattr(mlrd_core.model, "create_depth_model", spy)
    config = TINY.replace(epochs=1, val_split=None, test_split=None, dataset_options={"length": 4})
    fast = fit(config.replace(channels_last=True), seed=0)
    assert formats and all(image and weight for image, weight in formats)
    formats.clear()
    plain = fit(config, seed=0)
    assert formats and not any(image or weight for image, weight in formats)
    assert fast.periods[0]["total"] == pytest.approx(plain.periods[0]["total"], rel=1e-4)  # the same arithmetic


def test_cli_train_writes_a_result_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "tiny.toml"
    body = "\n".join(
        [
            'encoder = "test_resnet"',
            "decoder_width = 32",
            "input_size = [32, 32]",
            "epochs = 1",
            "batch_size = 4",
            "periods_per_epoch = 2",
            'losses = "L_D"',
            'weighting = "equal"',
            "weighting_options = {}",
            "[dataset_options]",
            "length = 8",
            "height = 32",
            "width = 32",
            "val = { length = 4 }",
            "test = { length = 4 }",
        ]
    )
    config_file.write_text(body)
    out = tmp_path / "run"
    assert main(["train", str(config_file), "--out", str(out), "--device", "cpu"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["loss_names"] == [f"l_D^{k}" for k in range(6)]
    assert "delta1=" in capsys.readouterr().out

    config_file.write_text(body.replace("epochs = 1", "epochz = 1"))
    assert main(["train", str(config_file), "--out", str(out)]) == 2
    assert "unknown key 'epochz'" in capsys.readouterr().err


def test_probe_times_a_few_steps_and_counts_steps_per_epoch() -> None:
    from mlrd_core.trainer import probe_step_time, steps_per_epoch

    assert steps_per_epoch(TINY) == 4  # 16 items / batch 4
    assert steps_per_epoch(TINY.replace(max_steps_per_epoch=3)) == 3
    assert probe_step_time(TINY, steps=2) > 0


def test_cli_plan_with_probe_estimates_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "p.toml"
    spec.write_text(
        "\n".join(
            [
                "[spec]",
                "seeds = [0]",
                "[defaults]",
                'encoder = "test_resnet"',
                "decoder_width = 32",
                "input_size = [32, 32]",
                "epochs = 2",
                "batch_size = 4",
                "[defaults.dataset_options]",
                "length = 8",
                "height = 32",
                "width = 32",
                "[[groups]]",
                'name = "g"',
                "[[groups.arms]]",
                'losses = "L_D"',
                'weighting = "equal"',
            ]
        )
    )
    assert main(["plan", str(spec), "--probe", "1", "--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "(probed)" in out and "1 to run" in out
    assert not (tmp_path / "results").exists()  # planning writes nothing
