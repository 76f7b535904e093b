"""``python -m suite figures SPEC``: draw the spec's figures from the results store.

Writes ``<results>/<spec>/figures/<name>.png`` and ``.pdf`` and prints their paths: Fig. 2 (PCA of the normalised
loss trajectories), Fig. 3 (loss contributions w·P per epoch), weight trajectories by loss family, validation curves
with seed bands, and depth maps of a few test images from the runs' checkpoints. A figure the spec has no data for
yet is skipped with a message. See docs/figures.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from suite.commands._common import (
    add_spec_arguments,
    load_plan,
    missing_store_message,
    open_existing_db,
    store_exists,
)
from suite.plan import PlannedRun
from suite.spec import Spec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("figures", help="draw a spec's figures (PNG and PDF)", description=__doc__)
    add_spec_arguments(parser)
    parser.add_argument("--images", type=int, default=3, help="test images in the depth-map figure (default 3)")
    parser.set_defaults(func=run)


def figures_dir(results: Path, spec: Spec) -> Path:
    return results / spec.name / "figures"


def write_figures(spec: Spec, runs: list[PlannedRun], store: Any, results: Path, *, n_images: int = 3) -> list[Path]:
    """Every figure of ``spec`` that has data, under ``<results>/<spec>/figures/``; skip messages go to stderr.

    Only DONE runs are drawn (their metrics, periods and checkpoints): a run still training, failed or lost is left
    out, and a line on stderr names how many and which."""
    from suite.figures import make_figures

    states = {r.run_id: getattr(store.get_run(r.run_id), "state", None) for r in runs}
    done = [r for r in runs if states[r.run_id] == "DONE"]
    partial = sorted({f"{r.group}/{r.arm} s{r.seed} ({states[r.run_id] or 'new'})" for r in runs if r not in done})
    if partial:
        shown = ", ".join(partial[:8]) + (f", ... ({len(partial) - 8} more)" if len(partial) > 8 else "")
        print(f"figures use DONE runs only; left out (not finished): {shown}", file=sys.stderr)
    if not done:
        return []
    return make_figures(
        spec,
        done,
        store,
        figures_dir(results, spec),
        runs_dir=results / "runs",
        n_images=n_images,
        log=lambda message: print(message, file=sys.stderr),
    )


def figures_summary(spec: Spec, runs: list[PlannedRun], store: Any, results: Path) -> str:
    """Write the figures for ``python -m suite run`` and say where they are, in one line. A figure that fails does
    not fail the run: it prints a warning (the trained runs and their tables are what matter)."""
    folder = figures_dir(results, spec)
    try:
        paths = write_figures(spec, runs, store, results)
    except Exception as exc:  # reporting must never fail a finished training run
        print(
            f"warning: the figures failed ({type(exc).__name__}: {exc}); the runs and tables are fine, retry with "
            "`python -m suite figures SPEC`",
            file=sys.stderr,
        )
        return f"none ({type(exc).__name__}; see the warning above)"
    if not paths:
        return "none yet (no finished runs with data)"
    names = sorted({p.stem for p in paths})
    return f"{folder}/ ({', '.join(names)}; {', '.join(sorted({p.suffix for p in paths}))})"


def run(args: argparse.Namespace) -> int:
    spec, runs = load_plan(args)
    if not store_exists(args):
        print(missing_store_message(args), file=sys.stderr)
        return 1
    store = open_existing_db(args)
    try:
        paths = write_figures(spec, runs, store, args.results, n_images=max(1, args.images))
    finally:
        store.close()
    for path in paths:
        print(path)
    if not paths:
        print(f"{spec.name}: no figures (no finished runs with data yet)", file=sys.stderr)
    return 0
