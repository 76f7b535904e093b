"""``python -m suite plan SPEC``: the run matrix without running anything.

For every run: group, arm, seed, short id, and its state in the store (new, done, failed, ...). Runs shared with
other arms or specs (same content hash) are listed once per arm but run once. The estimate of device time uses
the wall time of finished runs of the same arm (other seeds); arms without any finished run are counted as
unknown, unless ``--probe STEPS`` times a few training steps of each such config in this process (estimate =
s/step × steps per epoch × epochs; validation and test time are not included). Reading the plan writes nothing
(no database is created when none exists).
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from rich.markup import escape
from rich.table import Table

from suite.commands._common import add_spec_arguments, load_plan, open_existing_db, store_exists
from suite.commands._common import console as make_console
from suite.plan import PlannedRun
from suite.spec import Spec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan", help="show a spec's run matrix, cached runs and estimate", description=__doc__
    )
    add_spec_arguments(parser)
    parser.add_argument(
        "--probe",
        type=int,
        default=0,
        metavar="STEPS",
        help="time STEPS training steps of every distinct config without a finished run, for the estimate",
    )
    parser.add_argument("--jobs", type=int, default=None, help="CPU slots assumed by the estimate (as for run)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec, runs = load_plan(args, files="warn")
    return show_plan(args, spec, runs)


def _states(args: argparse.Namespace, runs: list[PlannedRun]) -> dict[str, Any]:
    if not store_exists(args):
        return {}
    store = open_existing_db(args)
    try:
        return {r.run_id: info for r in runs if (info := store.get_run(r.run_id)) is not None}
    finally:
        store.close()


def show_plan(args: argparse.Namespace, spec: Spec, runs: list[PlannedRun]) -> int:
    infos = _states(args, runs)
    table = Table(title=escape(f"{spec.name}: {spec.title}" if spec.title else spec.name))
    for col in ("group", "arm", "seed", "run id", "losses", "weighting", "λ", "state"):
        table.add_column(col)
    seen: set[str] = set()
    arm_seconds: dict[tuple[str, str], list[float]] = {}
    for r in runs:
        info = infos.get(r.run_id)
        if info is not None and info.state == "DONE" and info.started_at and info.finished_at:
            arm_seconds.setdefault((r.group, r.arm), []).append((info.finished_at - info.started_at).total_seconds())
    estimate, unknown = 0.0, 0
    probed: dict[str, float] = {}
    probe_steps = getattr(args, "probe", 0)
    from suite.execution.local import local_slots

    slots = local_slots(getattr(args, "jobs", None))
    for r in runs:
        info = infos.get(r.run_id)
        state = str(info.state) if info is not None else "new"
        if r.run_id in seen:
            state += " (shared)"
        elif state != "DONE":
            known = arm_seconds.get((r.group, r.arm))
            if known:
                estimate += sum(known) / len(known)
            elif probe_steps:
                estimate += _probe(r, probe_steps, probed, slots[0])
            else:
                unknown += 1
        seen.add(r.run_id)
        cells = (r.group, r.arm, str(r.seed), r.short_id[:12], r.config.losses, r.weighting, r.lam, state)
        table.add_row(*(escape(str(c)) for c in cells))  # labels are text: "[/oops]", "sweep [schedule=-3]"
    console = make_console()
    console.print(table)
    done = sum(1 for i in infos.values() if i.state == "DONE")
    console.print(
        f"{len(runs)} planned runs, {len(seen)} distinct, {done} done, {len(seen) - done} to run; "
        f"estimated device time {timedelta(seconds=round(estimate))}"
        + (" (probed)" if probed else " for runs of arms with finished seeds")
        + f", about {timedelta(seconds=round(estimate / len(slots)))} on {len(slots)} slot(s)"
        + (f", {unknown} run(s) of arms with no finished run yet (unknown)" if unknown else "")
    )
    return 0


def _probe(run: PlannedRun, steps: int, cache: dict[str, float], slot: Any) -> float:
    """Estimated training seconds of ``run`` from a timing probe of its config (cached per config), measured with
    the device and thread count a worker in ``slot`` would get (oversubscribed threads distort CPU timings)."""
    import json

    import torch

    from mlrd_core.trainer import probe_step_time, steps_per_epoch

    key = json.dumps(run.config.to_dict(), sort_keys=True)
    if key not in cache:
        if slot.threads:
            torch.set_num_threads(slot.threads)
        cache[key] = probe_step_time(run.config, steps=steps, device=slot.device) * steps_per_epoch(run.config)
    return cache[key] * run.config.epochs
