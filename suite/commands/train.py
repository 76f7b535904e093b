"""``python -m suite train CONFIG.toml``: one run of the core trainer, without specs, planning or a database.

The TOML file holds :class:`mlrd_core.config.RunConfig` keys at the top level (unknown keys are rejected with the
list of valid ones). The run works in ``--out`` (default ``results/train/<config stem>-s<seed>``): it checkpoints
there every period, so the same command after a kill resumes, and it writes ``result.json`` there at the end.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from mlrd_core.config import RunConfig
from mlrd_core.errors import ConfigError
from suite.worker import write_json_atomic


def load_run_config(path: Path) -> RunConfig:
    """Read a TOML run config; syntax errors and unknown keys name the file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"run config {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from exc
    return RunConfig.from_dict(data, where=str(path))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train one run from a run-config TOML file", description=__doc__)
    parser.add_argument("config", type=Path, help="TOML file with RunConfig keys")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--out", type=Path, default=None, help="working folder (checkpoint and result.json)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from mlrd_core.trainer import fit
    from suite.progress import RunProgress

    config = load_run_config(args.config)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = args.out or Path("results") / "train" / f"{args.config.stem}-s{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    with RunProgress(f"{args.config.stem} seed {args.seed}", total_epochs=config.epochs) as progress:
        result = fit(config, seed=args.seed, device=device, workdir=out, progress=progress.update)
    write_json_atomic(out / "result.json", result.to_dict())
    final = result.final_metrics("test") or result.final_metrics("val")
    print(" ".join(f"{k}={v:.4g}" for k, v in final.items()))
    print(f"result: {out / 'result.json'}", file=sys.stderr)
    return 0
