"""CUDA smoke tests (``pytest -m gpu``, run by ``nox -s gpu``): the 78 losses, the model under bf16 autocast and a
short ``fit`` with AMP and channels_last on the GPU. Without CUDA every test here is skipped with the reason."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tiny_spec import TINY_CONFIG

from mlrd_core.losses import LOSS_NAMES, compute_losses
from mlrd_core.model import create_depth_model
from mlrd_core.trainer import CHECKPOINT_NAME, fit
from suite.benchmarks.losses import bench_inputs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available() is False)"),
]


@pytest.fixture
def exact_float32() -> Iterator[None]:
    """TF32 off for the comparison with the CPU (it would round convolutions and matmuls to 10-bit mantissas)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _values_and_grad(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pred = pred.detach().clone().requires_grad_(True)
    values = compute_losses(pred, target)
    values.mean().backward()
    assert pred.grad is not None
    return values.detach().double().cpu(), pred.grad.double().cpu()


@pytest.mark.usefixtures("exact_float32")
@pytest.mark.parametrize(("height", "width"), [(96, 128), (24, 40)])  # (24, 40): scales 4-5 are 1-2 pixels wide
def test_all_78_losses_forward_and_backward_on_cuda_equal_the_cpu(height: int, width: int) -> None:
    pred, target = bench_inputs(batch=2, height=height, width=width)
    cpu_values, cpu_grad = _values_and_grad(pred, target)
    cuda_values, cuda_grad = _values_and_grad(pred.cuda(), target.cuda())
    assert cuda_values.shape == (2, len(LOSS_NAMES))
    scale = cpu_values.abs().clamp_min(1e-4)
    worst = int(((cuda_values - cpu_values).abs() / scale).amax(0).argmax())
    assert torch.allclose(cuda_values, cpu_values, rtol=1e-4, atol=1e-5), f"largest difference at {LOSS_NAMES[worst]}"
    # Gradients: an L1 term whose argument is within rounding of 0 at a pixel may take the other sign on the other
    # device, which moves that pixel's gradient by ~2/(78 B H_k W_k). So almost every element must agree to
    # float32 rounding and the whole gradient to well below one loss term's share (~1/78).
    tol = 1e-4 * float(cpu_grad.abs().max())
    agree = torch.isclose(cuda_grad, cpu_grad, rtol=1e-3, atol=tol).double().mean()
    assert float(agree) > 0.999
    assert float((cuda_grad - cpu_grad).norm() / cpu_grad.norm()) < 5e-3


def test_a_subset_on_cuda_keeps_the_order_and_the_device() -> None:
    pred, target = (t.cuda() for t in bench_inputs(batch=2, height=64, width=64))
    names = ("l_N^2", "l_D^0", "l_M65^1")
    out = compute_losses(pred, target, names)
    assert out.device.type == "cuda" and out.dtype == torch.float32
    full = compute_losses(pred, target)
    torch.testing.assert_close(out, full[:, [LOSS_NAMES.index(n) for n in names]], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("encoder", ["resnet18", "densenet161"])
def test_depth_model_forward_under_bf16_autocast(encoder: str) -> None:
    if not torch.cuda.is_bf16_supported():
        pytest.skip(f"{torch.cuda.get_device_name()} has no bfloat16 support")
    torch.manual_seed(0)
    model = create_depth_model(encoder, decoder_width=64, init_depth=3.0).cuda().eval()
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    image = torch.rand(2, 3, 96, 128, device="cuda").contiguous(memory_format=torch.channels_last)
    conv_dtypes: list[torch.dtype] = []
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda module, args, out: conv_dtypes.append(out.dtype))
    with torch.no_grad():
        reference = model(image).float()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = model(image)
    assert conv_dtypes == [torch.float32, torch.bfloat16]  # the convolutions really ran in bf16 under autocast
    assert pred.shape == (2, 1, 96, 128) and reference.shape == pred.shape
    assert torch.isfinite(pred.float()).all()
    # bf16 keeps ~3 significant digits; through a random-init network the output moves by well under 5 %
    assert float((pred.float() - reference).abs().max() / reference.abs().max()) < 0.05


@pytest.mark.parametrize("amp", ["auto", "fp16"])
def test_fit_on_cuda_with_amp_and_channels_last(amp: str, tmp_path: Path) -> None:
    config = TINY_CONFIG.replace(
        input_size=(64, 64),
        dataset_options={"length": 16, "height": 64, "width": 64, "val": {"length": 4}, "test": {"length": 4}},
        losses="L",
        amp=amp,
        channels_last=True,
    )
    result = fit(config, seed=0, device="cuda", workdir=tmp_path)
    assert result.environment["device"].startswith("cuda")
    assert result.environment["device_name"] == torch.cuda.get_device_name()
    assert len(result.loss_names) == 78
    assert [(p["epoch"], p["period"]) for p in result.periods] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    test = result.final_metrics("test")
    assert set(test) >= {"delta1", "rmse", "abs_rel"} and all(math.isfinite(v) for v in test.values())
    weights = [loss["weight"] for loss in result.periods[-1]["losses"]]
    assert all(math.isfinite(w) and w > 0 for w in weights)
    assert result.timings["s_per_iter"] > 0 and result.timings["timed_steps"] == 7
    assert result.timings["peak_memory_mb"] > 0  # torch.cuda.max_memory_allocated, not the process RSS
    assert (tmp_path / CHECKPOINT_NAME).exists()


def test_bench_train_on_cuda_uses_amp_and_channels_last() -> None:
    from suite.benchmarks.train import run_train_benchmark

    result = run_train_benchmark(
        2, encoder="test_resnet", decoder_width=32, height=64, width=64, device="cuda", channels_last=True
    )
    assert result.device.startswith("cuda") and result.channels_last
    assert result.amp == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert all(c.median_s > 0 for c in result.cases)


def test_a_training_step_makes_no_sync_between_logging_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a step (from its first phase mark to the step loop's sync point) any synchronising CUDA call raises,
    under ``torch.cuda.set_sync_debug_mode("error")``; the sync points themselves (``trainer._sync`` and the reads
    after it) run in the default mode. Counts the sync points too: the first step, every LOG_EVERY and period ends."""
    import mlrd_core.trainer as trainer

    monkeypatch.setattr(trainer, "LOG_EVERY", 4)
    real_mark, real_sync = trainer._StepClock.mark, trainer._sync
    syncs = 0

    def mark(self: trainer._StepClock) -> None:
        if not self._marks:  # the first mark of a step: from here to the next sync point nothing may sync
            torch.cuda.set_sync_debug_mode("error")
        real_mark(self)

    def sync(device: torch.device) -> None:
        nonlocal syncs
        torch.cuda.set_sync_debug_mode("default")
        syncs += 1
        real_sync(device)

    monkeypatch.setattr(trainer._StepClock, "mark", mark)
    monkeypatch.setattr(trainer, "_sync", sync)
    config = TINY_CONFIG.replace(
        epochs=1,
        batch_size=2,
        periods_per_epoch=1,
        val_split=None,
        test_split=None,
        dataset_options={"length": 24, "height": 32, "width": 32},
    )
    try:
        result = fit(config, seed=0, device="cuda")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert syncs == 4  # after steps 1, 4, 8 and 12 (the period end) of 12
    assert result.timings["timed_steps"] == 11.0 and result.timings["s_per_iter"] > 0
    assert result.timings["s_per_iter"] == pytest.approx(
        sum(result.timings[f"{p}_s_per_iter"] for p in trainer.TIMING_PHASES)
    )


def test_a_pre_started_worker_takes_its_gpu_pin_with_its_run(tmp_path: Path) -> None:
    """On a real GPU slot the second run goes to the spare started beside the first: its imports (a CUDA build of
    torch, timm) left CUDA uninitialised, so it took the slot's pin with the run and trained on that GPU. A spare that
    had initialised CUDA would refuse the pin and the run would start cold (``prestarted`` False)."""
    from suite.benchmarks.overhead import tiny_runs
    from suite.execution.local import LocalExecutor, local_slots
    from suite.plan import planned_rows
    from suite.store import open_store
    from suite.worker import PIN_ENV, RESULT_FILE, read_json

    slot = local_slots()[0]
    assert slot.device == "cuda" and slot.env.get(PIN_ENV)
    runs = tiny_runs([0, 1], spec="gpu-spare")
    store = open_store(f"sqlite:///{tmp_path / 'mlrd.db'}")
    try:
        store.add_planned(planned_rows(runs))
        executor = LocalExecutor(store, runs_dir=tmp_path / "runs", slots=[slot], warm=True)
        summary = executor.execute(runs)
    finally:
        store.close()
    assert len(summary.done) == 2 and not summary.failed
    records = [read_json(executor.run_dir(r.run_id) / RESULT_FILE)["worker"] for r in runs]  # type: ignore[index]
    assert [r["prestarted"] for r in records] == [False, True]
    assert records[1]["pinned"] == {PIN_ENV: slot.env[PIN_ENV]}
    payload = read_json(executor.run_dir(runs[1].run_id) / RESULT_FILE)
    assert payload is not None and payload["environment"]["device"].startswith("cuda")
