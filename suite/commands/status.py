"""``python -m suite status [SPEC] [--failed]``: run states in the results store.

Without a spec, every spec in the store is summarised. ``--failed`` prints the failure trace of every FAILED or
LOST run. A RUNNING run of the SLURM executor shows its job id and the job's state from squeue (sacct for jobs
squeue no longer lists, when accounting is on), or "state unknown" when SLURM cannot be asked from here.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from rich.table import Table

from suite.commands._common import add_store_arguments, load_plan, open_db, store_exists
from suite.commands._common import console as make_console
from suite.slurm import describe_state, job_id_of, job_states


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="run states and failure traces", description=__doc__)
    parser.add_argument("spec", nargs="?", default=None, help="spec TOML file (default: every spec in the store)")
    parser.add_argument("--failed", action="store_true", help="print the traces of failed and lost runs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    add_store_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    console = make_console()
    spec_name = None
    if args.spec is not None:
        args.spec = Path(args.spec)
        spec, _ = load_plan(args)
        spec_name = spec.name
    if not store_exists(args):
        console.print("no results store yet: nothing has run")
        return 0
    store = open_db(args)
    try:
        specs = [spec_name] if spec_name else store.specs()
        summary = Table(title="runs by state")
        states = ("PLANNED", "RUNNING", "DONE", "FAILED", "LOST")
        summary.add_column("spec")
        for s in states:
            summary.add_column(s, justify="right")
        for name in specs:
            counts = store.counts(name)
            summary.add_row(name, *(str(counts.get(s, 0)) for s in states))
        console.print(summary)
        now = datetime.now(UTC)
        active = Table(title="not done")
        for col in ("spec", "group", "arm", "seed", "run id", "state", "attempts", "worker", "heartbeat"):
            active.add_column(col, overflow="fold" if col == "worker" else "ellipsis")  # job ids are never cut
        failed = []
        listed = [
            (name, info)
            for name in specs
            for info in store.runs(spec=name, states=["RUNNING", "FAILED", "LOST", "PLANNED"])
        ]
        jobs = {info.run_id: job_id_of(info.worker) for _, info in listed if info.state == "RUNNING"}
        job_state = job_states(j for j in jobs.values() if j) if any(jobs.values()) else {}
        for name, info in listed:
            beat = f"{(now - info.heartbeat_at).total_seconds():.0f}s ago" if info.heartbeat_at else "-"
            job = jobs.get(info.run_id)
            worker = f"slurm:{describe_state(job, job_state)}" if job else info.worker or "-"
            active.add_row(
                name, info.group, info.arm, str(info.seed), info.run_id[:12], str(info.state),
                str(info.attempts), worker, beat,
            )  # fmt: skip
            if info.state in ("FAILED", "LOST"):
                failed.append(info)
        if active.row_count:
            console.print(active)
        if args.failed:
            for info in failed:
                console.rule(f"{info.state} {info.group}/{info.arm} seed {info.seed} [{info.run_id[:12]}]")
                console.print(info.error or "(no trace recorded)", markup=False, highlight=False)
    finally:
        store.close()
    return 0
