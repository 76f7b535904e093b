"""``python -m suite status [SPEC] [--failed]``: run states in the results store.

Without a spec, every spec in the store is summarised. With a spec, the runs it plans now are shown (a run never
stored is "new") and the trial runs of its search, and runs stored under its name that it no longer plans are
listed apart as history.
``--failed`` prints the failure trace of every FAILED or LOST run. A RUNNING run of the SLURM executor shows its
job id and the job's state from squeue (sacct for jobs squeue no longer lists, when accounting is on), or "state
unknown" when SLURM cannot be asked from here. Labels are printed as text (rich markup in them is not applied).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from rich.markup import escape
from rich.table import Table

from suite.commands._common import (
    add_store_arguments,
    load_plan,
    missing_store_message,
    open_existing_db,
    store_exists,
)
from suite.commands._common import console as make_console
from suite.execution.slurm_jobs import describe_state, job_id_of, job_states
from suite.plan import unique_runs

#: The group under which ``search`` records its trial runs (``suite.search.SEARCH_GROUP``, not imported here: it
#: pulls in optuna): part of the spec, though its plan does not list them.
SEARCH_GROUP = "search"


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
    planned: list[Any] | None = None
    spec_name = None
    if args.spec is not None:
        args.spec = Path(args.spec)
        spec, runs = load_plan(args)
        spec_name = spec.name
        planned = unique_runs(runs)
    if not store_exists(args):
        print(missing_store_message(args), file=sys.stderr)
        return 1
    store = open_existing_db(args)
    try:
        specs = [spec_name] if spec_name else store.specs()
        states = ("PLANNED", "RUNNING", "DONE", "FAILED", "LOST")
        # with a spec: the runs it plans now (state from the store, "new" if never stored), and apart from them the
        # store's history under its name that the spec no longer plans
        listed: list[tuple[str, Any]] = []
        history: list[Any] = []
        new: list[Any] = []
        if planned is not None and spec_name is not None:
            for r in planned:
                info = store.get_run(r.run_id)
                if info is None:
                    new.append(r)
                else:
                    listed.append((spec_name, info))
            wanted = {r.run_id for r in planned}
            for info in store.runs(spec=spec_name):
                if info.run_id in wanted:
                    continue
                if any(m.spec == spec_name and m.group == SEARCH_GROUP for m in info.memberships):
                    listed.append((spec_name, info))  # a trial run of the spec's search: current, not history
                else:
                    history.append(info)
        else:
            listed = [(name, info) for name in specs for info in store.runs(spec=name)]
        summary = Table(title="runs by state" + (" (the spec's current plan)" if planned is not None else ""))
        summary.add_column("spec")
        for state in (*states, "new") if planned is not None else states:
            summary.add_column(state, justify="right")
        for name in specs:
            counts = Counter(str(info.state) for n, info in listed if n == name)
            extra = (str(len(new)),) if planned is not None else ()
            summary.add_row(escape(name), *(str(counts.get(x, 0)) for x in states), *extra)
        console.print(summary)
        now = datetime.now(UTC)
        active = Table(title="not done")
        for col in ("spec", "group", "arm", "seed", "run id", "state", "attempts", "worker", "heartbeat"):
            active.add_column(col, overflow="fold" if col == "worker" else "ellipsis")  # job ids are never cut
        failed = []
        open_runs = [(name, info) for name, info in listed if info.state != "DONE"]
        jobs = {info.run_id: job_id_of(info.worker) for _, info in open_runs if info.state == "RUNNING"}
        job_state = job_states(j for j in jobs.values() if j) if any(jobs.values()) else {}
        for name, info in open_runs:
            beat = f"{(now - info.heartbeat_at).total_seconds():.0f}s ago" if info.heartbeat_at else "-"
            job = jobs.get(info.run_id)
            worker = f"slurm:{describe_state(job, job_state)}" if job else info.worker or "-"
            cells = (name, info.group, info.arm, str(info.seed), info.run_id[:12], str(info.state),
                     str(info.attempts), worker, beat)  # fmt: skip
            active.add_row(*(escape(c) for c in cells))
            if info.state in ("FAILED", "LOST"):
                failed.append(info)
        for r in new:
            active.add_row(*(escape(c) for c in (spec_name or "", r.group, r.arm, str(r.seed), r.run_id[:12], "new",
                                                 "0", "-", "-")))  # fmt: skip
        if active.row_count:
            console.print(active)
        if history:
            old = Table(title="history: no longer planned")
            for col in ("group", "arm", "seed", "run id", "state"):
                old.add_column(col)
            for info in history:
                old.add_row(*(escape(c) for c in (info.group, info.arm, str(info.seed), info.run_id[:12], info.state)))
            console.print(old)
        if args.failed:
            for info in failed:
                title = f"{info.state} {info.group}/{info.arm} seed {info.seed} [{info.run_id[:12]}]"
                console.rule(escape(title))
                console.print(info.error or "(no trace recorded)", markup=False, highlight=False)
    finally:
        store.close()
    return 0
