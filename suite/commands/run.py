"""``python -m suite run SPEC``: plan, train what is not done yet, ingest, render the spec's tables, figures and
HTML report (``<results>/<spec>/report.html``).

The same command again resumes: DONE runs are skipped, RUNNING runs left by a killed coordinator are settled
(ingested if their result exists, otherwise LOST and resumed from their checkpoint), FAILED and LOST runs are
retried up to ``--max-attempts`` times in this invocation, and ``--force`` reruns everything from scratch (each
run's old results stay until its new attempt finishes; runs other specs share are named).

Runs are claimed in the store before their folders are touched, so two coordinators of one spec (two terminals,
a run beside a search) share the work: each trains what it claimed first, waits for the rest, and both finish.

``--executor slurm`` submits the runs as a SLURM job array (resources: the spec's ``[slurm]`` table or
``--set slurm.<key>=<value>``; see docs/cluster.md). Runs whose SLURM job outlived an earlier coordinator are
watched again, not resubmitted.
"""

from __future__ import annotations

import argparse
import os
import sys

from suite.commands._common import (
    add_executor_arguments,
    add_spec_arguments,
    check_executor_arguments,
    check_results_folder,
    db_url,
    load_plan,
    make_executor,
    open_db,
    shown_url,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run a spec (resumes; renders its tables)", description=__doc__)
    add_spec_arguments(parser)
    add_executor_arguments(parser, jobs_default="one per visible GPU, else one single-thread slot per core")
    parser.add_argument("--force", action="store_true", help="rerun every run of the spec from scratch")
    parser.add_argument("--dry-run", action="store_true", help="show the plan and exit (writes nothing)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from suite.execution import ExecutionSummary, Pending, run_plan
    from suite.progress import SuiteProgress

    spec, runs = load_plan(args, files="warn" if args.dry_run else "error")
    if args.dry_run:
        from suite.commands.plan import show_plan

        return show_plan(args, spec, runs)
    check_executor_arguments(args)
    check_results_folder(args.results)
    store = open_db(args)
    try:
        # Without GPUs, one single-thread slot per core: small CPU runs (the demo's) gain little from a second
        # thread and much from a second run beside them (docs/running.md, "Slots").
        executor, where = make_executor(args, spec, store, cpu_slots=os.cpu_count() or 1)

        def start(pending: Pending) -> bool:
            if pending.shared:
                print(
                    f"--force reruns runs that spec(s) {', '.join(pending.shared)} also use; their results change "
                    "too, once the new attempts finish",
                    file=sys.stderr,
                )
            if pending.elsewhere:
                print(
                    f"{len(pending.elsewhere)} run(s) are RUNNING under another coordinator or SLURM job: this one "
                    f"waits for them and takes over any whose holder stops (python -m suite status {args.spec} shows "
                    "them)",
                    file=sys.stderr,
                )
            n, done = len(pending.runs), pending.reused
            print(f"{spec.name}: {n} runs, {done} done, {len(pending.todo)} to run {where}", file=sys.stderr)
            return True

        def progress(total: int, done: int) -> SuiteProgress:
            return SuiteProgress(total, already_done=done)

        _, summary = run_plan(
            spec.name, store, executor, runs, force=args.force, recover=True, start=start, progress=progress
        )
        summary = summary or ExecutionSummary()
        from suite.commands.table import render_and_write

        paths, text = render_and_write(spec, runs, store, args.results, fmt="md")
        from suite.commands.figures import figures_summary

        figures = figures_summary(spec, runs, store, args.results)  # never fails the run: warns instead
        from suite.commands.report import report_summary

        report = report_summary(spec, runs, store, args)  # after the figures, which it embeds; never fails the run
    finally:
        store.close()
    print(text)
    print(f"tables:   {args.results / spec.name}/ ({', '.join(sorted({p.suffix for p in paths}))})")
    print(f"figures:  {figures}")
    print(f"report:   {report}")
    print(f"database: {shown_url(db_url(args))}")
    print(f"runs:     {args.results / 'runs'}/<run id>/ (checkpoint, log, result.json)")
    if summary.interrupted:
        print("interrupted: the same command resumes", file=sys.stderr)
        return 130
    if summary.failed:
        print(f"{len(summary.failed)} run(s) failed; see: python -m suite status {args.spec} --failed", file=sys.stderr)
        return 1
    return 0
