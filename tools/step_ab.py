"""Training-step time of the trainer at a git revision against the working tree, in one process (a ratio).

    python tools/step_ab.py --before REV [--after REV] [--rounds 5] [--steps 40] [--threads 1]

Runs :func:`mlrd_core.trainer.fit` of the demo's model (mobilenetv3_small_100, 64x96, batch 8, all 78 losses,
lee-kim) for ``--steps`` steps with the trainer of ``--before`` and with that of ``--after`` (default: the working
tree), alternating in rounds (the order flips every round), and prints the median seconds per step of each and the
median of the per-round ratios. On a shared machine only the ratio is meaningful; on CUDA compare the wall times
(older trainers timed phases between syncs). Used for docs/performance.md ("A step without syncs").
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch

from mlrd_core import trainer as current
from mlrd_core.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent


def trainer_at(rev: str, name: str) -> ModuleType:
    """The trainer module at git revision ``rev``, or read from the file ``rev`` (for machines without the history)."""
    if rev.endswith(".py") and Path(rev).is_file():
        source = Path(rev).read_text()
    else:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:mlrd_core/trainer.py"], capture_output=True, text=True, check=True
        ).stdout
    path = Path(tempfile.mkdtemp()) / f"trainer_{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"mlrd_core._trainer_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision (or .py file) of the trainer to compare with")
    parser.add_argument("--after", help="git revision of the trainer to compare (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--scenes", type=int, help="distinct training scenes, reused over epochs (default: 8 x steps, one epoch)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scenes = args.scenes or 8 * args.steps
    if (8 * args.steps) % scenes:
        parser.error(f"--scenes {scenes} must divide the {8 * args.steps} images of --steps {args.steps} at batch 8")
    epochs = 8 * args.steps // scenes
    config = RunConfig(
        encoder="mobilenetv3_small_100",
        decoder_width=128,
        skips=True,
        input_size=(64, 96),
        dataset_options={"height": 64, "width": 96, "train": {"length": scenes}},
        augment=False,
        losses="L",
        weighting_options={"schedule": "3 -> -3 @ 8"},
        epochs=epochs,
        batch_size=8,
        val_split=None,
        test_split=None,
    )
    after = trainer_at(args.after, "after") if args.after else current
    runs = {"before": trainer_at(args.before, "before").fit, "after": after.fit}
    runs["after"](config.replace(max_steps_per_epoch=2), seed=0, device=args.device)  # warm-up (caches, allocator)
    times: dict[str, list[float]] = {"before": [], "after": []}
    wall: dict[str, list[float]] = {"before": [], "after": []}
    for r in range(args.rounds):
        for name in ("before", "after") if r % 2 == 0 else ("after", "before"):
            t = time.perf_counter()
            result = runs[name](config, seed=0, device=args.device)
            wall[name].append((time.perf_counter() - t) / args.steps)
            times[name].append(result.timings["s_per_iter"])
            phases = " ".join(f"{p} {result.timings[f'{p}_s_per_iter']:.4f}" for p in current.TIMING_PHASES)
            print(f"round {r} {name}: {times[name][-1]:.4f} s/step ({phases}), wall {wall[name][-1]:.4f} s/step")
    ratios = [a / b for a, b in zip(times["after"], times["before"], strict=True)]
    wall_ratios = [a / b for a, b in zip(wall["after"], wall["before"], strict=True)]
    for name in ("before", "after"):
        print(f"{name}: median {statistics.median(times[name]):.4f} s/step, wall {statistics.median(wall[name]):.4f}")
    print(
        f"after / before: median of per-round ratios {statistics.median(ratios):.3f} (s_per_iter), "
        f"{statistics.median(wall_ratios):.3f} (wall); range {min(ratios):.3f}-{max(ratios):.3f}"
    )


if __name__ == "__main__":
    main()
