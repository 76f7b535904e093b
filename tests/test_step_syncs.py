"""The step loop without needless host-device syncs, and per-period λ schedules on the run's own period grid.

On CPU a sync costs nothing, so the trainer routes every sync of the step loop through ``trainer._sync`` and these
tests count its calls (the CUDA version with ``torch.cuda.set_sync_debug_mode`` is in tests/test_gpu.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from tiny_spec import TINY_CONFIG as TINY

import mlrd_core.trainer as trainer
from mlrd_core.errors import NonFiniteLossError
from mlrd_core.trainer import CHECKPOINT_NAME, code_version, fit

#: 1 epoch of 12 steps in one period, no validation or test: the step loop alone.
STEPS = TINY.replace(
    epochs=1,
    batch_size=2,
    periods_per_epoch=1,
    val_split=None,
    test_split=None,
    dataset_options={"length": 24, "height": 32, "width": 32},
)


def _count_syncs(monkeypatch: pytest.MonkeyPatch) -> list[torch.device]:
    calls: list[torch.device] = []
    real = trainer._sync

    def counted(device: torch.device) -> None:
        calls.append(device)
        real(device)

    monkeypatch.setattr(trainer, "_sync", counted)
    return calls


def test_a_step_syncs_only_at_the_logging_cadence_and_period_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer, "LOG_EVERY", 5)
    syncs = _count_syncs(monkeypatch)
    items = 0
    real_item = torch.Tensor.item

    def item(self: torch.Tensor) -> object:
        nonlocal items
        items += self.grad_fn is not None  # the training loss (data loading reads other tensors)
        return real_item(self)

    monkeypatch.setattr(torch.Tensor, "item", item)
    losses: list[tuple[int, float]] = []
    result = fit(
        STEPS,
        seed=0,
        progress=lambda kind, info: losses.append((info["step"], info["loss"])) if kind == "step" else None,
    )
    # 12 steps: syncs after step 1 (the first loss), 5 and 10 (the cadence) and 12 (the period end), never inside
    # a step; every step is reported with the latest loss read
    assert len(syncs) == 4
    assert items == 4  # loss.item() only at those points
    assert [s for s, _ in losses] == list(range(1, 13))
    read = {s: loss for s, loss in losses if s in (1, 5, 10, 12)}
    assert [loss for _, loss in losses] == [read[s] for s in (1, 1, 1, 1, 5, 5, 5, 5, 5, 10, 10, 12)]
    # the phase timings are still those of every step but the first
    assert result.timings["timed_steps"] == 11.0
    assert result.timings["s_per_iter"] > 0
    assert result.timings["s_per_iter"] == pytest.approx(
        sum(result.timings[f"{p}_s_per_iter"] for p in trainer.TIMING_PHASES)
    )


def test_a_non_finite_loss_is_reported_at_the_next_sync_with_its_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlrd_core.losses as losses

    monkeypatch.setattr(trainer, "LOG_EVERY", 5)
    real = losses.compute_losses
    calls = 0

    def poisoned(pred: torch.Tensor, target: torch.Tensor, names: Sequence[str] | None = None) -> torch.Tensor:
        nonlocal calls
        out = real(pred, target, names)
        if calls in (2, 3):  # steps 2 and 3: the first one is reported
            out[:, -1] = float("inf")
        calls += 1
        return out

    monkeypatch.setattr(losses, "compute_losses", poisoned)
    steps: list[int] = []
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at epoch 0, batch 2 \(step 2\): l_D\^4; the last"):
        fit(STEPS, seed=0, workdir=tmp_path, progress=lambda kind, info: steps.append(info["step"]))
    assert calls == 5  # found at the sync after step 5, before that step is reported
    assert steps == [1, 2, 3, 4]
    assert not (tmp_path / CHECKPOINT_NAME).exists()  # nothing recorded or checkpointed after the bad step


def test_the_code_version_is_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = 0
    real = subprocess.run

    def counted(*args: object, **kwargs: object) -> object:
        nonlocal runs
        runs += 1
        return real(*args, **kwargs)  # type: ignore[call-overload]

    code_version.cache_clear()
    monkeypatch.setattr(subprocess, "run", counted)
    first = code_version()
    assert code_version() == first and runs == 1
    fit(STEPS.replace(dataset_options={"length": 4, "height": 32, "width": 32}), seed=0)
    assert runs == 1


# ------------------------------------------------------------------------------------------ λ on the run's grid

PER_PERIOD = {"schedule": {"kind": "linear", "start": 3, "end": -3, "epochs": 5, "per_period": True}}


@pytest.mark.parametrize("periods", [8, 2, 4])
def test_a_per_period_schedule_follows_the_runs_periods_per_epoch(periods: int) -> None:
    """Issue 15: with 8 periods the schedule failed at period 4; with 2 it was evaluated on a 4-period grid."""
    config = TINY.replace(
        epochs=2,
        periods_per_epoch=periods,
        weighting_options=PER_PERIOD,
        val_split=None,
        test_split=None,
        dataset_options={"length": 32, "height": 32, "width": 32},  # 8 batches of 4: every period has a batch
    )
    result = fit(config, seed=0)
    positions = [(p["epoch"], p["period"]) for p in result.periods]
    assert positions == [(e, p) for e in range(2) for p in range(periods)]
    for record in result.periods:
        x = record["epoch"] + record["period"] / periods
        assert record["lam"] == pytest.approx(3 - 6 * x / 4)


def test_the_target_check_is_deferred_only_on_accelerators() -> None:
    """compute_losses checks the target itself on CPU (no sync to save) even inside deferred_target_check(); the
    trainer's check at its sync points reports a non-finite target before the losses it poisoned."""
    from mlrd_core.errors import ShapeError
    from mlrd_core.losses import compute_losses
    from mlrd_core.losses.functional import deferred_target_check

    target = torch.ones(1, 1, 8, 8)
    target[0, 0, 2, 3] = float("nan")
    with deferred_target_check(), pytest.raises(ShapeError, match="target contains NaN"):
        compute_losses(torch.ones(1, 1, 8, 8), target, ["l_D^0"])
    names = ("l_D^0", "l_r^0")
    good, bad_loss = torch.tensor([True, True, True]), torch.tensor([True, False, True])
    bad_target = torch.tensor([False, False, False])
    pending = [(0, 0, 0, good), (0, 1, 1, bad_target), (0, 2, 2, bad_loss)]
    with pytest.raises(ShapeError, match=r"target contains NaN or infinite values at epoch 0, batch 1 \(step 1\)"):
        trainer._check_finite(pending, names, None)
    assert pending == []
    with pytest.raises(NonFiniteLossError, match=r"at epoch 0, batch 2 \(step 2\): l_r\^0; the last good checkpoint"):
        trainer._check_finite([(0, 0, 0, good), (0, 2, 2, bad_loss)], names, None)


PER_PERIOD_SPEC = """
[spec]
name = "t"

[defaults]
epochs = 1
input_size = [64, 96]
periods_per_epoch = 8

[[groups]]
name = "g"

[[groups.arms]]
losses = "L_D"
schedule = {{ kind = "linear", start = 3, end = -3, per_period = true{extra} }}
"""


def test_a_spec_with_a_per_period_schedule_on_8_periods() -> None:
    """The spec form: the schedule names no grid, the plan shows it per period, and a grid in the schedule table
    (a second source beside the run's periods_per_epoch) is refused at load."""
    from mlrd_core.errors import ScheduleError
    from suite.plan import describe_weighting, plan
    from suite.spec import loads_spec

    spec = loads_spec(PER_PERIOD_SPEC.format(extra=""))
    (run,) = plan(spec)[:1]
    assert run.config.periods_per_epoch == 8
    assert "periods_per_epoch" not in run.config.weighting_options["schedule"]
    assert describe_weighting(run.config)[2] == "3 → -3 per period"
    with pytest.raises(ScheduleError, match="takes its period grid from the run"):
        loads_spec(PER_PERIOD_SPEC.format(extra=", periods_per_epoch = 4"))
