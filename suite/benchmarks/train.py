"""Training-step benchmark: what the loss set costs a full step of the paper's model (Table 7; docs/performance.md).

Target (docs/performance.md): a training step with all 78 losses at most +5% slower than with ``{l_D^0}`` alone
(the paper measured +21% on a TITAN X: 1.63 s vs 1.97 s per iteration, Table 7). :func:`run_train_benchmark` builds ONE
depth model (default densenet161, decoder width 1024, 288x384, batch 2, random init) and ONE batch of synthetic
scenes, then times the trainer's step for each loss set: forward (autocast on CUDA), ``compute_losses`` in float32,
the non-finite check, the Lee-Kim weighting's ``observe`` and ``combine``, backward (through a GradScaler) and the
Adam step. Loss sets: ``{l_D^0}`` (1 loss), ``L^3 | L^4 | L^5`` (39) and ``L`` (78), as in Table 7. Each round runs
every case once, in an order rotated by one per round, so machine noise and position effects hit all cases alike;
warm-up rounds come first; medians of the timed rounds are reported and the ratios are between the same process's
numbers: ratio of medians, and the median of per-round ratios ("paired", steadier when the machine's load drifts).

The backward pass runs in two calls, ``torch.autograd.grad`` of the loss with respect to the prediction and then
``pred.backward(grad)`` through the network, with device syncs between the phases (as the trainer syncs between
its phases): the same arithmetic as one ``backward()``, and it times what the losses cost (forward and backward)
on their own, a number that machine noise in the much longer network phases cannot hide.

The data pipeline is not timed (the same batch is reused; the trainer reports data wait separately), nor are the
weighting's period ends (a handful per epoch, microseconds each).
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from rich.table import Table

from mlrd_core.config import AMP_MODES
from mlrd_core.errors import ConfigError, NonFiniteLossError

__all__ = [
    "BASELINE",
    "TRAIN_CASES",
    "TrainBenchmark",
    "TrainCase",
    "render_train_table",
    "run_train_benchmark",
    "train_summary",
]

#: (label, set expression) of the timed cases; the first is the baseline of the ratios.
TRAIN_CASES: tuple[tuple[str, str], ...] = (
    ("{l_D^0}", "{l_D^0}"),
    ("L^3|L^4|L^5", "L^3 | L^4 | L^5"),
    ("L", "L"),
)
BASELINE = TRAIN_CASES[0][0]
#: The paper's Table 7 (TITAN X, DenseNet-161, 288x384), s/iter per case.
PAPER_S_PER_ITER: dict[str, float] = {"{l_D^0}": 1.63, "L^3|L^4|L^5": 1.70, "L": 1.97}
#: The target (docs/performance.md): all 78 losses may add at most this fraction to a step of {l_D^0}.
TARGET_OVERHEAD = 0.05


@dataclass(frozen=True)
class TrainCase:
    """One loss set's timed steps, round by round: the whole step and its phases, which sum to it. ``forward_s``:
    the network; ``losses_s``: ``compute_losses`` + finite check + weighting; ``loss_backward_s``: the gradient of
    the weighted loss with respect to the prediction; ``backward_s``: the network's backward and the Adam step."""

    label: str
    expression: str
    n_losses: int
    step_s: tuple[float, ...]
    forward_s: tuple[float, ...]
    losses_s: tuple[float, ...]
    loss_backward_s: tuple[float, ...]
    backward_s: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return statistics.median(self.step_s)

    @property
    def min_s(self) -> float:
        return min(self.step_s)

    @property
    def loss_cost_median_s(self) -> float:
        """Median over rounds of the losses' own time: forward (with weighting) + backward to the prediction."""
        return statistics.median(f + b for f, b in zip(self.losses_s, self.loss_backward_s, strict=True))


@dataclass(frozen=True)
class TrainBenchmark:
    """Result of :func:`run_train_benchmark` on one device; ratios are between medians of the same run."""

    cases: tuple[TrainCase, ...]
    device: str
    device_name: str
    encoder: str
    decoder_width: int
    height: int
    width: int
    batch: int
    amp: str  # the autocast dtype actually used ("off" on CPU)
    channels_last: bool
    threads: int
    repeats: int
    warmup: int
    parameters: int
    torch_version: str = torch.__version__
    machine: str = field(default_factory=lambda: f"{platform.machine()} {platform.processor() or ''}".strip())

    def case(self, label: str) -> TrainCase:
        return next(c for c in self.cases if c.label == label)

    def ratio(self, label: str) -> float:
        """Median step time of ``label`` / median step time of ``{l_D^0}``."""
        return self.case(label).median_s / self.case(BASELINE).median_s

    def paired_ratio(self, label: str) -> float:
        """Median over rounds of (step of ``label`` / step of ``{l_D^0}`` in the same round). The two steps of a
        round are at most two steps apart in time, so slow changes of machine load cancel; on a shared machine this
        is the steadier estimate."""
        base = self.case(BASELINE).step_s
        return statistics.median(t / b for t, b in zip(self.case(label).step_s, base, strict=True))

    @property
    def overhead_all(self) -> float:
        """Extra time per step of all 78 losses over ``{l_D^0}``, as a fraction (0.05 = +5%): paired estimate."""
        return self.paired_ratio("L") - 1.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cases"] = [
            {
                "label": c.label,
                "expression": c.expression,
                "n_losses": c.n_losses,
                "median_s": c.median_s,
                "min_s": c.min_s,
                "loss_cost_median_s": c.loss_cost_median_s,
                "ratio": self.ratio(c.label),
                "paired_ratio": self.paired_ratio(c.label),
                "step_s": list(c.step_s),
                "forward_s": list(c.forward_s),
                "losses_s": list(c.losses_s),
                "loss_backward_s": list(c.loss_backward_s),
                "backward_s": list(c.backward_s),
            }
            for c in self.cases
        ]
        out["overhead_all_losses"] = self.overhead_all
        out["target_overhead"] = TARGET_OVERHEAD
        return out


def _sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _batch(batch: int, height: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` synthetic scenes (image, depth) at the network size, generated once."""
    from mlrd_core.data import make_dataset

    dataset = make_dataset("synthetic", split="train", seed=seed, height=height, width=width, length=batch)
    items = [dataset[i] for i in range(batch)]
    return torch.stack([it["image"] for it in items]), torch.stack([it["depth"] for it in items])


def _resolve_device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(dev)!r} requested but CUDA is not available (torch {torch.__version__})")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be cpu or cuda[:N], got {str(dev)!r}")
    return dev


def run_train_benchmark(
    repeats: int = 5,
    *,
    encoder: str = "densenet161",
    decoder_width: int = 1024,
    height: int = 288,
    width: int = 384,
    batch: int = 2,
    device: str | torch.device = "cpu",
    warmup: int = 1,
    threads: int | None = None,
    amp: str = "auto",
    channels_last: bool = False,
    lr: float = 1e-4,
    seed: int = 0,
) -> TrainBenchmark:
    """Time full training steps of one model on one batch for each loss set of :data:`TRAIN_CASES` (module doc).

    ``repeats`` timed rounds after ``warmup`` untimed ones (every round runs every case once; warm-up also pays
    Adam's state allocation and cuDNN's algorithm search). ``amp`` acts on CUDA only and ``channels_last`` on
    every device, as in the trainer. ``threads`` sets ``torch.set_num_threads`` for the run and restores it afterwards.
    """
    from mlrd_core.losses import compute_losses, select
    from mlrd_core.model import create_depth_model
    from mlrd_core.trainer import amp_dtype, seed_everything
    from mlrd_core.weighting import make_weighting

    if repeats < 1 or warmup < 0 or min(batch, height, width, decoder_width) < 1:
        raise ConfigError(
            f"repeats >= 1, warmup >= 0 and batch, height, width, decoder_width >= 1 must hold, got "
            f"(repeats={repeats}, warmup={warmup}, batch={batch}, height={height}, width={width}, "
            f"decoder_width={decoder_width})"
        )
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    if amp not in AMP_MODES:
        raise ConfigError(f"amp must be one of {AMP_MODES}, got {amp!r}")
    dev = _resolve_device(device)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        seed_everything(seed)
        model = create_depth_model(encoder, pretrained=False, decoder_width=decoder_width).to(dev)
        if channels_last:  # as the trainer: NHWC on every device
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        model.train()
        image, target = (t.to(dev) for t in _batch(batch, height, width, seed))
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        autocast_dtype = amp_dtype(amp, dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)
        names = {label: select(expr) for label, expr in TRAIN_CASES}
        weightings = {
            label: make_weighting("lee-kim", names[label], schedule="3 -> -3").to(dev) for label, _ in TRAIN_CASES
        }

        def step(label: str) -> tuple[float, float, float, float]:
            t0 = _sync(dev)
            with torch.autocast(dev.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                pred = model(image)
            t1 = _sync(dev)
            pred32 = pred.float()  # losses in float32 even under AMP, as in the trainer
            per_image = compute_losses(pred32, target, names[label])
            if not torch.isfinite(per_image).all():
                raise NonFiniteLossError(f"non-finite loss in the train benchmark (case {label})")
            weighting = weightings[label]
            weighting.observe(per_image.detach())
            loss = weighting.combine(per_image)
            t2 = _sync(dev)
            optimizer.zero_grad(set_to_none=True)
            (grad,) = torch.autograd.grad(scaler.scale(loss), pred32)
            t3 = _sync(dev)
            pred32.backward(grad)
            scaler.step(optimizer)
            scaler.update()
            t4 = _sync(dev)
            return t1 - t0, t2 - t1, t3 - t2, t4 - t3

        labels = [label for label, _ in TRAIN_CASES]
        phases: dict[str, list[tuple[float, float, float, float]]] = {label: [] for label in labels}
        for round_ in range(warmup + repeats):
            shift = round_ % len(labels)
            for label in labels[shift:] + labels[:shift]:
                times = step(label)
                if round_ >= warmup:
                    phases[label].append(times)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    return TrainBenchmark(
        cases=tuple(_case(label, expr, len(names[label]), phases[label]) for label, expr in TRAIN_CASES),
        device=str(dev),
        device_name=device_name,
        encoder=encoder,
        decoder_width=decoder_width,
        height=height,
        width=width,
        batch=batch,
        amp={None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast_dtype],
        channels_last=channels_last,
        threads=used_threads,
        repeats=repeats,
        warmup=warmup,
        parameters=sum(p.numel() for p in model.parameters()),
    )


def _case(label: str, expression: str, n_losses: int, rounds: list[tuple[float, float, float, float]]) -> TrainCase:
    forward, losses, loss_backward, backward = (tuple(column) for column in zip(*rounds, strict=True))
    steps = tuple(sum(phases) for phases in rounds)
    return TrainCase(label, expression, n_losses, steps, forward, losses, loss_backward, backward)


def render_train_table(result: TrainBenchmark) -> Table:
    """The step times as a rich table (pure: no printing)."""
    extras = [f"AMP {result.amp}"] if result.device.startswith("cuda") else [f"{result.threads} thread(s)"]
    if result.channels_last:
        extras.append("channels_last")
    table = Table(
        title=(
            f"train step (forward, losses, backward, Adam): {result.encoder} {result.height}x{result.width}, "
            f"batch {result.batch}, {result.device} ({result.device_name}), {', '.join(extras)}, "
            f"median of {result.repeats}"
        )
    )
    table.add_column("losses", no_wrap=True, min_width=11)
    table.add_column("n", justify="right")
    table.add_column("s/step", justify="right")
    table.add_column("min s", justify="right")
    table.add_column("losses ms", justify="right")
    table.add_column(f"÷ {BASELINE}", justify="right")
    table.add_column("paired ÷", justify="right")
    table.add_column("paper ÷", justify="right")
    paper_base = PAPER_S_PER_ITER[BASELINE]
    for case in result.cases:
        paper = PAPER_S_PER_ITER.get(case.label)
        table.add_row(
            case.label,
            str(case.n_losses),
            f"{case.median_s:.4f}",
            f"{case.min_s:.4f}",
            f"{1e3 * case.loss_cost_median_s:.2f}",
            f"{result.ratio(case.label):.3f}",
            f"{result.paired_ratio(case.label):.3f}",
            f"{paper / paper_base:.3f}" if paper is not None else "",
        )
    table.caption = (
        f"÷ {BASELINE}: ratio of medians; paired ÷: median of the per-round ratios; losses ms: the losses' "
        "forward + weighting + backward to the prediction (median); paper ÷: Lee & Kim Table 7 on a TITAN X "
        f"({', '.join(f'{k} {v:.2f} s' for k, v in PAPER_S_PER_ITER.items())})"
    )
    return table


def train_summary(result: TrainBenchmark) -> str:
    """The headline overhead against the target and the paper, as plain lines."""
    overhead = result.overhead_all
    verdict = "meets" if overhead <= TARGET_OVERHEAD else "MISSES"
    paper = PAPER_S_PER_ITER["L"] / PAPER_S_PER_ITER[BASELINE] - 1
    coarse_paper = PAPER_S_PER_ITER["L^3|L^4|L^5"] / PAPER_S_PER_ITER[BASELINE] - 1
    base, every = result.case(BASELINE), result.case("L")
    extra = every.loss_cost_median_s - base.loss_cost_median_s
    spread = ", ".join(f"{c.label} {100 * (max(c.step_s) - min(c.step_s)) / c.median_s:.1f}%" for c in result.cases)
    return "\n".join(
        [
            f"all 78 losses vs {BASELINE} on {result.device}: {100 * overhead:+.1f}% per step, paired "
            f"({100 * (result.ratio('L') - 1):+.1f}% as a ratio of medians); {verdict} the "
            f"<= +{100 * TARGET_OVERHEAD:.0f}% target; the paper measured {100 * paper:+.0f}%",
            f"L^3|L^4|L^5 (39 losses) vs {BASELINE}: {100 * (result.paired_ratio('L^3|L^4|L^5') - 1):+.1f}% "
            f"per step, paired (paper {100 * coarse_paper:+.0f}%)",
            f"the losses themselves (forward + weighting + backward): {1e3 * every.loss_cost_median_s:.2f} ms for L vs "
            f"{1e3 * base.loss_cost_median_s:.2f} ms for {BASELINE}: {100 * extra / base.median_s:+.2f}% of a "
            f"{BASELINE} step",
            f"spread of the timed steps, (max - min) / median: {spread} (differences below it are machine noise)",
        ]
    )
