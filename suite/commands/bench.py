"""``python -m suite bench <target>``: performance benchmarks (docs/performance.md).

Targets are subcommands (``losses``, ``train``, ``overhead``): each one parses its own flags, calls a
``run_*_benchmark`` function of :mod:`suite.benchmarks` and prints a rich table or JSON.
"""

from __future__ import annotations

import argparse
import json

from suite.commands._common import console

#: The trainer's ``amp`` modes (mlrd_core.config.AMP_MODES; spelled out so that ``--help`` imports no torch).
AMP_CHOICES = ("auto", "off", "bf16", "fp16")


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {number}")
    return number


def _run_losses(args: argparse.Namespace) -> int:
    from suite.benchmarks.losses import losses_summary, render_losses_table, run_losses_benchmark

    result = run_losses_benchmark(
        args.repeats,
        batch=args.batch,
        height=args.height,
        width=args.width,
        threads=args.threads,
        warmup=args.warmup,
        seed=args.seed,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        out = console()
        out.print(render_losses_table(result))
        out.print(losses_summary(result), highlight=False)
    return 0


def _devices(value: str) -> list[str]:
    """``auto`` (CPU, plus CUDA when available) or a comma-separated list such as ``cpu,cuda:0``."""
    import torch

    if value == "auto":
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    devices = [d.strip() for d in value.split(",") if d.strip()]
    if not devices or any(d != "cpu" and not d.startswith("cuda") for d in devices):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or a comma-separated list, got {value!r}")
    return devices


def _run_train(args: argparse.Namespace) -> int:
    from suite.benchmarks.train import render_train_table, run_train_benchmark, train_summary

    out = console(stderr=args.json)
    results = []
    for device in args.device:
        if not args.json:
            out.print(f"bench train: {args.encoder} on {device}...", highlight=False)
        results.append(
            run_train_benchmark(
                args.repeats,
                encoder=args.encoder,
                decoder_width=args.decoder_width,
                height=args.height,
                width=args.width,
                batch=args.batch,
                device=device,
                warmup=args.warmup,
                threads=args.threads,
                amp=args.amp,
                channels_last=args.channels_last,
                seed=args.seed,
            )
        )
    if args.json:
        print(json.dumps({"benchmark": "train", "results": [r.to_dict() for r in results]}, indent=2))
    else:
        for result in results:
            out.print(render_train_table(result))
            out.print(train_summary(result), highlight=False)
    return 0


def _run_overhead(args: argparse.Namespace) -> int:
    from suite.benchmarks.overhead import overhead_summary, render_overhead_table, run_overhead_benchmark

    out = console(stderr=args.json)
    result = run_overhead_benchmark(
        args.runs,
        rounds=args.rounds,
        jobs=args.jobs,
        images=args.images,
        progress=lambda line: out.print(line, highlight=False),
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        out.print(render_overhead_table(result))
        out.print(overhead_summary(result), highlight=False)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bench`` and its targets to the top-level parser."""
    parser = subparsers.add_parser(
        "bench",
        help="performance benchmarks (losses, train, overhead)",
        description="Performance benchmarks; ratios are measured in one run on the same tensors.",
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    losses = targets.add_parser(
        "losses",
        help="fused 78-loss computation vs the authors' per-term operations (forward + backward)",
        description=(
            "Time forward + backward of the fused losses against a transcription of the authors' code on the "
            "same float32 CPU tensors (default B=4, 1x288x384), plus fused {l_D^0}, L^3|L^4|L^5 and L."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    losses.add_argument("--repeats", type=_positive, default=5, help="timed rounds (median reported)")
    losses.add_argument("--warmup", type=_non_negative, default=1, help="untimed rounds first")
    losses.add_argument("--threads", type=_positive, default=None, help="torch threads (None: torch's setting)")
    losses.add_argument("--batch", type=_positive, default=4, help="images per batch")
    losses.add_argument("--height", type=_positive, default=288, help="map height")
    losses.add_argument("--width", type=_positive, default=384, help="map width")
    losses.add_argument("--seed", type=int, default=0, help="seed of the synthetic depth maps")
    losses.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    losses.set_defaults(func=_run_losses)

    train = targets.add_parser(
        "train",
        help="training-step time with all 78 losses vs {l_D^0} vs L^3|L^4|L^5 (Table 7, target <= +5%%)",
        description=(
            "Time full training steps (forward, losses, backward, Adam) of one model on one batch for {l_D^0}, "
            "L^3|L^4|L^5 and all 78 losses, in interleaved rounds in one process; report medians and ratios to "
            "{l_D^0}. Default: the paper's densenet161 at 288x384, batch 2, random init."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument("--encoder", default="densenet161", help="timm encoder of the depth model")
    train.add_argument("--decoder-width", type=_positive, default=1024, help="decoder width (paper: 1024)")
    train.add_argument("--height", type=_positive, default=288, help="input height")
    train.add_argument("--width", type=_positive, default=384, help="input width")
    train.add_argument("--batch", type=_positive, default=2, help="images per batch")
    train.add_argument("--repeats", type=_positive, default=5, help="timed rounds per case (median reported)")
    train.add_argument("--warmup", type=_non_negative, default=1, help="untimed rounds first")
    train.add_argument(
        "--device", type=_devices, default="auto", help="auto (CPU, plus CUDA when available), cpu, cuda[:N] or a list"
    )
    train.add_argument("--amp", choices=AMP_CHOICES, default="auto", help="autocast on CUDA, as the trainer's amp")
    train.add_argument(
        "--channels-last", action="store_true", help="channels_last model and input (every device, as the trainer)"
    )
    train.add_argument("--threads", type=_positive, default=None, help="torch threads (None: torch's setting)")
    train.add_argument("--seed", type=int, default=0, help="seed of the model and the synthetic batch")
    train.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    train.set_defaults(func=_run_train)

    overhead = targets.add_parser(
        "overhead",
        help="suite overhead per run (spawn, imports, ingest): cold worker starts vs warm spares (target < 2 s)",
        description=(
            "Execute the same tiny runs (test_resnet 32x32, one epoch of a few synthetic scenes) through the local "
            "executor with cold worker starts and with warm spares (pre-started workers), each into a fresh store; "
            "report per run the slot's wall time minus fit() itself: median, spread, and the cold/warm ratio."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    overhead.add_argument("--runs", type=_positive, default=8, help="runs per mode and round")
    overhead.add_argument("--rounds", type=_positive, default=1, help="rounds; the modes alternate their order")
    overhead.add_argument("--jobs", type=_positive, default=1, help="CPU slots of the executor (as run --jobs)")
    overhead.add_argument("--images", type=_positive, default=4, help="training scenes per run (one epoch)")
    overhead.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    overhead.set_defaults(func=_run_overhead)
