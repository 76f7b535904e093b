"""``python -m suite bench <target>``: performance benchmarks (DESIGN §6).

Targets are subcommands so that more can be added next to ``losses`` (e.g. ``bench train``): each one parses its
own flags, calls a ``run_*_benchmark`` function of :mod:`suite.benchmarks` and prints a rich table or JSON.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console


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
        console = Console()
        console.print(render_losses_table(result))
        console.print(losses_summary(result), highlight=False)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bench`` and its targets to the top-level parser."""
    parser = subparsers.add_parser(
        "bench",
        help="performance benchmarks (losses)",
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
