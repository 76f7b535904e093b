"""The command line: ``python -m suite <command> ...``.

Only this layer touches argv, stdout and the file system policy; every command lives in
``suite/commands/<name>.py`` and exposes ``register(subparsers)``, which adds its parser and sets ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mlrd_core.errors import MLRDError

#: Command modules under suite.commands, in the order --help lists them.
COMMANDS: tuple[str, ...] = (
    "run",
    "plan",
    "status",
    "table",
    "figures",
    "report",
    "search",
    "export",
    "train",
    "losses",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m suite",
        description="MLRD suite: multi-loss depth-estimation benchmarks and ablations.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"suite.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MLRDError as exc:
        # Expected, user-facing errors: one clear message, no traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
