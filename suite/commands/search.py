"""``python -m suite search SPEC``: the Optuna search over λ-schedule shapes of the spec's ``[search]`` section.

Each trial runs one sampled schedule (with the sampled ``[search.settings]``, if any) on the search's seeds through
the same executor (local slots, or ``--executor slurm``: job arrays) and results store as ``run``; the objective is
the seed mean of the chosen metric. Up to ``--parallel K`` trials run at once, sharing the slots. The study is stored
in the results database (Optuna's tables beside the store's) under ``[search].study``. The same command resumes:
without ``--trials`` it runs what is left of the spec's ``n_trials`` (nothing once reached); ``--trials N`` adds N
trials. Finished runs are reused, interrupted ones resume from their checkpoints. Ends with a table of the best
trials. See docs/search.md (and ``optuna-dashboard sqlite:///results/mlrd.db`` for the study's plots).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from mlrd_core.errors import MLRDError
from suite.commands._common import (
    add_executor_arguments,
    add_spec_arguments,
    check_executor_arguments,
    check_results_folder,
    console,
    db_url,
    load_plan,
    make_executor,
    open_db,
    shown_url,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search", help="Optuna search over λ-schedule shapes (resumes; prints the best trials)", description=__doc__
    )
    add_spec_arguments(parser)
    parser.add_argument(
        "--trials",
        type=int,
        default=None,
        metavar="N",
        help="run N more trials (default: what is left of the spec's search.n_trials; 0: only print the table)",
    )
    parser.add_argument("--timeout", type=float, default=None, metavar="S", help="start no trial after S seconds")
    parser.add_argument(
        "--parallel",
        type=int,
        default=None,
        metavar="K",
        help="trials running at once, their runs sharing the executor's slots (default: as many as the local slots "
        "allow, slots / seeds rounded up, so no slot idles; 1 with --executor slurm). TPE samples with a constant "
        "liar, so trials running at once spread out (docs/search.md)",
    )
    add_executor_arguments(parser, jobs_default="one per visible GPU, else one per search seed")
    parser.add_argument("--top", type=int, default=10, help="trials shown in the table (default 10)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import optuna

    from suite.progress import SuiteProgress
    from suite.search import (
        LambdaSearch,
        best_trials_table,
        enqueue_points,
        open_study,
        require_search,
        trials_counted,
    )
    from suite.store import RunState

    if args.trials is not None and args.trials < 0:
        print("error: --trials must be >= 0", file=sys.stderr)
        return 2
    if args.parallel is not None and args.parallel < 1:
        print(f"error: --parallel must be >= 1, got {args.parallel}", file=sys.stderr)
        return 2
    spec, _ = load_plan(args, files="error")
    search = require_search(spec)
    check_executor_arguments(args)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the search prints its own trial lines

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    url = db_url(args)
    shown = shown_url(url)  # the one masking helper: no message of this command carries the password
    check_results_folder(args.results)
    store = open_db(args)
    interrupted = False
    try:
        try:
            study = open_study(spec, url)
        except MLRDError as exc:
            raise type(exc)(str(exc).replace(url, shown)) from None
        # seeds side by side on a CPU machine: per-epoch seed means (pruning) come early
        executor, where = make_executor(args, spec, store, cpu_slots=len(search.seeds))
        parallel = args.parallel or parallel_trials(executor, len(search.seeds))
        running = store.runs(spec=spec.name, states=[RunState.RUNNING])
        if running:  # left by a killed coordinator: ingest or mark LOST (resumed from checkpoints)
            executor.recover(running)
        before = len(study.trials)
        done = trials_counted(study)
        todo = max(0, search.n_trials - done) if args.trials is None else args.trials
        enqueued = enqueue_points(study, spec) if todo else []
        say(
            f"study {search.study!r} ({shown}): {before} trial(s) so far, {done} of the spec's "
            f"{search.n_trials} counted; running {todo}"
            + (f", {parallel} at a time," if todo > 1 and parallel > 1 else "")
            + f" {where}"
            + (f"; enqueued {', '.join(s.describe() for s in enqueued)}" if enqueued else "")
        )
        searcher = LambdaSearch(
            spec,
            store,
            executor,
            study,
            progress=lambda total, reused: SuiteProgress(total, already_done=reused),
            log=say,
            parallel=parallel,
        )
        try:
            searcher.optimize(todo, timeout_s=args.timeout)
        except KeyboardInterrupt:
            interrupted = True
        table = best_trials_table(study, spec, top=args.top)
    finally:
        store.close()
    console().print(table)
    print(
        f"database: {shown} (study {search.study!r}; plots: pip install optuna-dashboard && optuna-dashboard {shown})"
    )
    print(f"runs:     {args.results / 'runs'}/<run id>/ (checkpoint, log, result.json)")
    if interrupted:
        print("interrupted: the same command resumes (the interrupted trials run again first)", file=sys.stderr)
        return 130
    return 0


def parallel_trials(executor: Any, seeds: int) -> int:
    """Trials at once by default: enough to keep every local slot busy (slots / seeds, rounded up: 8 GPUs and 3
    seeds run 3 trials, the ninth run waiting for the first free GPU); 1 on SLURM, where the cluster's queue, not
    the coordinator, decides how many tasks run (``--parallel K`` submits K trials' arrays at once)."""
    slots = len(getattr(executor, "slots", ()))
    return max(1, math.ceil(slots / max(1, seeds))) if slots else 1
