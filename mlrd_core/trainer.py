"""One honest training loop: :func:`fit`.

``fit(config, seed=..., device=..., workdir=...)`` trains a depth model with a weighted subset of the 78 losses,
calls the weighting method at period ends, validates every epoch under the run's protocol, tests at the end, and
returns a :class:`RunResult` of plain records. It checkpoints atomically at every period end and, when a checkpoint
is found in ``workdir``, resumes from it exactly: the same config and seed give the same numbers whether or not the
run was killed in between (on CPU; CUDA kernels are not bitwise deterministic by default).

Data order does not depend on global RNG state: epoch ``e`` visits the training set in a permutation drawn from a
generator seeded by ``(seed, e)``, and augmentation draws from ``(seed, e, index)``. Resuming therefore only needs
the position in the epoch, not the state of a DataLoader.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import platform
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mlrd_core.checkpoint import (  # noqa: F401  (PREVIOUS_CHECKPOINT_NAME, load_checkpoint: re-exported)
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    PREVIOUS_CHECKPOINT_NAME,
    load_checkpoint,
    load_resume_checkpoint,
    save_checkpoint,
)
from mlrd_core.config import RunConfig, learning_rate
from mlrd_core.errors import ConfigError, NonFiniteLossError, ShapeError
from mlrd_core.result import RunResult

TIMING_PHASES = ("data", "forward", "losses", "backward")
#: The logging cadence of the step loop: the loss of the first step, of every ``LOG_EVERY``-th step and of each
#: period's last step is read on the host; between these points a step makes no host-device sync (see :func:`fit`).
LOG_EVERY = 16

ProgressCallback = Callable[[str, Mapping[str, Any]], None]


# --------------------------------------------------------------------------------------------------- helpers


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def epoch_batches(n_items: int, batch_size: int, seed: int, epoch: int, max_steps: int | None) -> list[list[int]]:
    """The training batches of ``epoch``: a seeded permutation cut into full batches (the last partial batch is
    dropped unless it is the only one, so BatchNorm never sees a batch of one by accident)."""
    order = torch.randperm(n_items, generator=_epoch_generator(seed, epoch)).tolist()
    n_full = n_items // batch_size
    batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(n_full)] or [order]
    return batches[:max_steps] if max_steps else batches


def period_ends(n_batches: int, periods_per_epoch: int) -> list[int]:
    """Batch indices after which a period ends: ``periods_per_epoch`` nearly equal spans of the epoch (the paper's
    quarter epoch by default). With fewer batches than periods every batch ends a period."""
    ends = sorted({math.ceil(n_batches * (p + 1) / periods_per_epoch) - 1 for p in range(periods_per_epoch)})
    return [e for e in ends if e >= 0]


def split_options(config: RunConfig, split: str) -> dict[str, Any]:
    """``dataset_options`` shared by all splits, with ``dataset_options[split]`` (a table) overriding them; for a
    mixture, those of its eval dataset (:func:`mlrd_core.data.mixture.options_for`)."""
    from mlrd_core.data.mixture import eval_dataset_name, options_for

    return options_for(config, eval_dataset_name(config), split)


def _data_log(message: str) -> None:
    """A note of the data build (a mixture's parts, the leakage guard's count): on stderr, in a worker's log."""
    print(f"data: {message}", file=sys.stderr, flush=True)


def _rng_state() -> dict[str, Any]:
    np_state: tuple[Any, ...] = np.random.get_state()  # type: ignore[assignment]
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "python": random.getstate(),
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))
    random.setstate(state["python"])


@functools.cache
def code_version() -> str:
    """The package version plus the git commit of the source tree when it is a checkout (read once per process)."""
    from mlrd_core import __version__

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def environment_info(device: torch.device) -> dict[str, Any]:
    """Versions and hardware that a result depends on."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "device": str(device),
        "device_name": name,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "code_version": code_version(),
    }


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for an ``amp`` mode on ``device``: None on CPU or "off"; "auto" takes bf16 where the GPU
    supports it (no scaler needed), else fp16 (with a GradScaler)."""
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _sync(device: torch.device) -> None:
    """Wait until ``device`` has finished its queued work: a host-device sync point on CUDA, nothing on CPU.

    Every value the step loop reads back from the device is read right after a call of this function, so the
    number of calls is the number of syncs a run makes (tests count them on CPU).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _synced_time(device: torch.device) -> float:
    """A timestamp after the device has finished queued work."""
    _sync(device)
    return time.perf_counter()


class _StepClock:
    """Phase timings of training steps (:data:`TIMING_PHASES`) without a sync of their own.

    On CPU the marks are ``time.perf_counter()`` (the device is the host). On CUDA they are CUDA events recorded on
    the current stream; their times are read at the next sync point (:meth:`collect`), so a phase is the device
    time between two marks, host time included only where the device waited for the host.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.seconds = dict.fromkeys(TIMING_PHASES, 0.0)
        self.steps = 0
        self._marks: list[Any] = []
        self._pending: list[list[Any]] = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._marks.append(event)
        else:
            self._marks.append(time.perf_counter())

    def end_step(self, *, timed: bool) -> None:
        marks, self._marks = self._marks, []
        if timed:
            self._pending.append(marks)
        if not self.cuda:
            self.collect()

    def collect(self) -> None:
        """Add the finished steps' phases; on CUDA only after a sync (the events must have completed)."""
        for marks in self._pending:
            pairs = itertools.pairwise(marks)
            spans = [a.elapsed_time(b) / 1e3 if self.cuda else b - a for a, b in pairs]
            for phase, dt in zip(TIMING_PHASES, spans, strict=True):
                self.seconds[phase] += dt
            self.steps += 1
        self._pending = []


def _check_finite(pending: list[tuple[int, int, int, torch.Tensor]], names: tuple[str, ...], ckpt: Path | None) -> None:
    """Raise for the first step in ``pending`` with a non-finite target (:class:`ShapeError`, as
    :func:`~mlrd_core.losses.compute_losses` would) or loss (:class:`NonFiniteLossError`).

    ``pending`` holds ``(epoch, batch, step, finite)`` per step since the last check, ``finite`` the device tensor
    ``[K + 1]`` of ``isfinite(per_image).all(0)`` and ``isfinite(target).all()``: all of them come back to the host
    in one transfer, after a sync.
    """
    if not pending:
        return
    finite = torch.stack([f for *_, f in pending]).cpu()
    pending_rows = list(pending)
    pending.clear()
    if bool(finite.all()):
        return
    row = int((~finite.all(1)).nonzero()[0, 0])
    epoch, batch, step, _ = pending_rows[row]
    if not bool(finite[row, -1]):
        raise ShapeError(
            f"target contains NaN or infinite values at epoch {epoch}, batch {batch} (step {step}); fill them (and "
            "pass mask=...) before the loss"
        )
    bad = [n for n, ok in zip(names, finite[row, :-1].tolist(), strict=True) if not ok]
    raise NonFiniteLossError(
        f"non-finite loss at epoch {epoch}, batch {batch} (step {step}): {', '.join(bad)}; "
        f"the last good checkpoint is {ckpt}"
    )


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is KiB on Linux: the whole process, which is what a CPU user has to provision.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _loader(dataset: Dataset, batches: list[list[int]], config: RunConfig) -> Iterator[dict[str, Any]]:
    return iter(DataLoader(dataset, batch_sampler=batches, num_workers=config.num_workers))


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    dataset: Dataset,
    protocol: str,
    *,
    input_size: tuple[int, int],
    batch_size: int,
    device: torch.device,
) -> tuple[dict[str, float], float]:
    """Metrics of ``model`` on ``dataset`` (native-resolution ground truth) under ``protocol``.

    Images are resized to the network input; the protocol brings predictions back to the ground truth's size.
    Returns the metric dict and the seconds per scene (forward only, synchronised).
    """
    from mlrd_core.metrics import DepthMetrics
    from mlrd_core.protocols import get_protocol

    resize_input = get_protocol(protocol).resize_input
    was_training = model.training
    model.eval()
    metrics = DepthMetrics(protocol)
    seconds, scenes = 0.0, 0
    n = len(dataset)  # type: ignore[arg-type]
    batches = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    for batch in DataLoader(dataset, batch_sampler=batches):
        image = batch["image"].to(device)
        image = resize_input(image, input_size)  # as the protocol's source does (nyu-lee-kim: bicubic, no AA)
        start = _synced_time(device)
        pred = model(image)
        seconds += _synced_time(device) - start
        scenes += image.shape[0]
        metrics.update(pred.float().cpu(), batch["depth"], batch["mask"])
    model.train(was_training)
    return metrics.compute(), seconds / max(scenes, 1)


# ------------------------------------------------------------------------------------------------------ fit


def fit(
    config: RunConfig,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    workdir: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
) -> RunResult:
    """Train and evaluate one run; resume from ``workdir/checkpoint.pt`` when it exists.

    ``progress(kind, info)`` is called with kind ``"step"``, ``"period"``, ``"epoch"`` and ``"test"``; the suite
    turns these into heartbeats and live progress. Raises :class:`NonFiniteLossError` on a NaN/inf loss.
    """
    from mlrd_core.data.mixture import run_dataset
    from mlrd_core.losses import compute_losses, select
    from mlrd_core.losses.functional import deferred_target_check
    from mlrd_core.model import model_for_config
    from mlrd_core.weighting import make_weighting

    device = torch.device(device)
    notify = progress or (lambda kind, info: None)
    seed_everything(seed)
    names = select(config.losses)

    model = model_for_config(config).to(device)
    if config.channels_last:  # NHWC convolutions: tensor cores on CUDA, about 2x faster small CNNs on CPU (oneDNN)
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    weighting = make_weighting(  # the config's typed options record: nothing is parsed again
        config.weighting, names, config.weighting_options, periods_per_epoch=config.periods_per_epoch
    ).to(device)
    params = list(model.parameters()) + list(weighting.parameters())
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    autocast_dtype = amp_dtype(config.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)
    step_model = torch.compile(model) if config.compile else model

    def data(split: str, **extra: Any) -> Dataset:
        # one dataset, or a mixture for training (mlrd_core.data.mixture); val/test read the eval dataset
        return run_dataset(config, split, seed=seed, log=_data_log, **extra)

    def measure(dataset: Dataset) -> tuple[dict[str, float], float]:
        return evaluate(
            model,
            dataset,
            config.protocol,
            input_size=config.input_size,
            batch_size=config.eval_batch_size,
            device=device,
        )

    train_set = data(config.train_split, train=True, size=config.input_size, augment=config.augment)
    val_set = data(config.val_split) if config.val_split else None
    if len(train_set) == 0:  # type: ignore[arg-type]
        raise ConfigError(f"dataset {config.dataset!r} split {config.train_split!r} is empty")

    result = RunResult(config=config.to_dict(), seed=seed, loss_names=list(names))
    ckpt_path = None
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        ckpt_path = Path(workdir) / CHECKPOINT_NAME
    state = {"model": model, "optimizer": optimizer, "weighting": weighting, "scaler": scaler}
    start_epoch, start_batch, step = _resume(ckpt_path, result, state)

    clock = _StepClock(device)
    unchecked: list[tuple[int, int, int, torch.Tensor]] = []  # (epoch, batch, step, finite [K]) since the last sync
    last_loss: float | None = None  # the loss read at the latest sync point
    n_train: int = len(train_set)  # type: ignore[arg-type]
    total_steps = config.epochs * len(epoch_batches(n_train, config.batch_size, seed, 0, config.max_steps_per_epoch))
    model.train()
    for epoch in range(start_epoch, config.epochs):
        batches = epoch_batches(len(train_set), config.batch_size, seed, epoch, config.max_steps_per_epoch)  # type: ignore[arg-type]
        ends = period_ends(len(batches), config.periods_per_epoch)
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        first = start_batch if epoch == start_epoch else 0
        loader = _loader(train_set, batches[first:], config)
        for b in range(first, len(batches)):
            # No host-device sync inside a step: the finiteness flags, the phase marks and the loss stay on the
            # device until the next sync point (the logging cadence or the period end) below.
            clock.mark()
            batch = next(loader)
            image = batch["image"].to(device, non_blocking=True)
            target = batch["depth"].to(device, non_blocking=True)
            if config.channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            clock.mark()
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                pred = step_model(image)
            clock.mark()
            with deferred_target_check():  # the target is checked below with the losses, without a sync
                per_image = compute_losses(pred.float(), target, names)  # losses in float32 even under AMP
            finite = torch.cat([torch.isfinite(per_image).all(0), torch.isfinite(target).all().reshape(1)])
            unchecked.append((epoch, b, step, finite))  # the one check, on the device: the losses, then the target
            weighting.observe(per_image.detach(), check=False)
            loss = weighting.combine(per_image)
            clock.mark()
            optimizer.zero_grad(set_to_none=True)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step, total_steps)
            scaler.scale(loss).backward()
            if config.grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            clock.mark()
            step += 1
            clock.end_step(timed=step > 1 or bool(result.resumed_from))  # the first step pays one-off costs
            if b in ends or step % LOG_EVERY == 0 or last_loss is None:
                _sync(device)  # the step loop's only sync point: the logging cadence and the period ends
                _check_finite(unchecked, names, ckpt_path)  # before anything records or checkpoints the period
                clock.collect()
                last_loss = loss.item()
            # every step is reported; its loss is the latest one read at the logging cadence
            notify("step", {"epoch": epoch, "batch": b, "batches": len(batches), "step": step, "loss": last_loss})
            if b in ends:
                period = ends.index(b)
                weighting.end_period(epoch, period)
                lam = weighting.records[-1].lam if weighting.records else None
                notify("period", {"epoch": epoch, "period": period, "step": step, "lam": lam})
                last = b + 1 == len(batches)
                if last and val_set is not None:
                    # validation precedes the checkpoint so that a resumed run never validates an epoch twice
                    metrics, _ = measure(val_set)
                    _record(result, "val", epoch, config.protocol, metrics)
                    notify("epoch", {"epoch": epoch, "metrics": metrics})
                if ckpt_path is not None:
                    position = (epoch + 1, 0) if last else (epoch, b + 1)
                    save_checkpoint(ckpt_path, _checkpoint_payload(result, state, position, step))

    test_set = data(config.test_split) if config.test_split else None
    if test_set is not None:
        test_metrics, s_per_scene = measure(test_set)
        _record(result, "test", config.epochs - 1, config.protocol, test_metrics)
        result.timings["test_s_per_scene"] = s_per_scene
        notify("test", {"metrics": test_metrics})

    result.periods = [dict(r) if isinstance(r, Mapping) else asdict(r) for r in weighting.records]
    _finish(result, clock, device, {"train": train_set, "val": val_set, "test": test_set})
    return result


def _resume(ckpt_path: Path | None, result: RunResult, state: Mapping[str, Any]) -> tuple[int, int, int]:
    """Load the run's checkpoint (with the ``.prev`` fallback) into ``state``'s objects and ``result``; returns the
    (epoch, next batch, step) to continue from, (0, 0, 0) for a fresh start."""
    if ckpt_path is None:
        return 0, 0, 0
    ckpt, _ = load_resume_checkpoint(ckpt_path.parent, config=result.config, seed=result.seed)
    if ckpt is None:
        return 0, 0, 0
    for key, obj in state.items():  # model, optimizer, weighting, scaler
        obj.load_state_dict(ckpt[key])
    _set_rng_state(ckpt["rng"])
    result.metrics = list(ckpt["metrics"])
    result.resumed_from = {"epoch": ckpt["epoch"], "batch": ckpt["next_batch"], "step": ckpt["step"]}
    return ckpt["epoch"], ckpt["next_batch"], ckpt["step"]


def _checkpoint_payload(
    result: RunResult, state: Mapping[str, Any], position: tuple[int, int], step: int
) -> dict[str, Any]:
    """What a checkpoint holds (:data:`CHECKPOINT_KEYS`): the objects' states, the RNG, where to continue."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": result.config,
        "seed": result.seed,
        **{key: obj.state_dict() for key, obj in state.items()},
        "rng": _rng_state(),
        "epoch": position[0],
        "next_batch": position[1],
        "step": step,
        "metrics": result.metrics,
    }


def _finish(result: RunResult, clock: _StepClock, device: torch.device, datasets: Mapping[str, Any]) -> None:
    """The run's timings, environment and the files each split read (name, size, items, hash)."""
    from mlrd_core.data.provenance import dataset_sources

    result.timings.update({f"{p}_s_per_iter": t / max(clock.steps, 1) for p, t in clock.seconds.items()})
    result.timings["s_per_iter"] = sum(clock.seconds.values()) / max(clock.steps, 1)
    result.timings["timed_steps"] = float(clock.steps)
    result.timings["peak_memory_mb"] = _peak_memory_mb(device)
    result.environment = environment_info(device)
    sources = {name: dataset_sources(d) for name, d in datasets.items() if d is not None}
    if any(sources.values()):  # generated data has none
        result.environment["data_sources"] = {name: found for name, found in sources.items() if found}


def _record(result: RunResult, split: str, epoch: int, protocol: str, metrics: Mapping[str, float]) -> None:
    result.metrics.extend(
        {"split": split, "epoch": epoch, "protocol": protocol, "name": name, "value": float(value)}
        for name, value in metrics.items()
    )


def steps_per_epoch(config: RunConfig) -> int:
    """Training steps in one epoch of ``config`` (builds the training dataset, which is cheap: items load lazily)."""
    from mlrd_core.data.mixture import run_dataset

    n = len(run_dataset(config, config.train_split, train=True))  # type: ignore[arg-type]
    return len(epoch_batches(n, config.batch_size, 0, 0, config.max_steps_per_epoch))


def probe_step_time(config: RunConfig, *, steps: int = 3, device: torch.device | str = "cpu") -> float:
    """Seconds per training step of ``config``, measured by :func:`fit` itself on ``steps`` steps after a warm-up
    step (no validation, no test, no checkpoint). Used to estimate a plan's device time before anything ran."""
    short = config.replace(epochs=1, max_steps_per_epoch=steps + 1, val_split=None, test_split=None)
    return fit(short, seed=0, device=device).timings["s_per_iter"]
