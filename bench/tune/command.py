"""`bench tune SUITE`: search the suite's recipe for the fastest time to its target on this
machine (Optuna), then verify the best recipe on fresh judged seeds beside the default.

Each trial is an ordinary invocation with its own result file in RESULTS/tune/<suite>/trials/,
judged on a validation split (the test split is never read), on seeds of its own range
(2,000,000 + the trial number), and stopped once it has spent longer than the best time to
target so far (recorded as pruned, with its time). The search is an Optuna study in
RESULTS/tune/<suite>/study.db (or --storage): a second call adds --trials more. Then the best
recipe and the default run side by side on --verify-runs judged seeds on the test split (a
verdict with its interval, the speed-up with its interval), the tuned suite is written to
--suite-dir, and RESULTS/tune/<suite>/REPORT.md and report.html are rewritten.

Exit codes: 0 the tuned recipe PASSes its verification, 1 it FAILs, 2 bad input (before any
training), 3 no trial reached the target (nothing to verify) or a verification run failed,
130 interrupted (finished trials are kept in the study).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from bench.destinations import path_argument
from bench.errors import EXIT_BROKEN, EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, BenchError
from bench.load import CompetingLoad


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.studies.sweep import add_executor_arguments

    parser.add_argument("suite", help="a suite name from 'bench list', or a path to a .toml file")
    parser.add_argument("--space", type=path_argument, metavar="FILE",
                        help="the search space TOML (default: suites/spaces/<suite>.toml)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--trials", type=int, metavar="N", help="trials to add to the study (default 12)")
    budget.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="start trials until this long has passed (instead of --trials)")
    parser.add_argument("--objective", choices=("time", "accuracy"), default="time",
                        help="time: the fastest time to the target (default); accuracy: the highest validation "
                             "accuracy under the suite's budget")
    parser.add_argument("--storage", metavar="URL|FILE",
                        help="Optuna storage: a database URL or a journal file (PATH.journal); default SQLite in "
                             "RESULTS/tune/<suite>/study.db")
    parser.add_argument("--validation-size", type=int, metavar="N",
                        help="training images held out to judge the trials on (default: the suite's split, else "
                             "its test_size, else 5000)")
    parser.add_argument("--margin", type=float, default=0.0, metavar="M",
                        help="trials must reach the target (calibrated on validation) plus M (default %(default)g)")
    parser.add_argument("--confirm-top", type=int, default=3, metavar="K",
                        help="the K fastest trials are run again on --confirm-runs seeds before one is chosen "
                             "(default %(default)s)")
    parser.add_argument("--confirm-runs", type=int, default=3, metavar="N",
                        help="seeds of each confirmation, on validation (default %(default)s; 0: choose the fastest "
                             "trial as it is)")
    parser.add_argument("--verify-runs", type=int, default=5, metavar="N",
                        help="judged seeds for the best recipe and the default (default 5, at least 3)")
    parser.add_argument("--verify-seed", type=int, default=0, metavar="S",
                        help="the first verification seed (default 0, the verdicts' seeds)")
    parser.add_argument("--suite-dir", type=path_argument, metavar="DIR",
                        help="where the tuned suite file goes (default: RESULTS/tune/<suite>/)")
    add_executor_arguments(parser)
    parser.add_argument("--results", type=path_argument, metavar="DIR",
                        help="results folder; the search goes in its tune/<suite>/ (default: results, or "
                             "$BENCH_RESULTS)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where trials and verification runs train (default: cuda when available)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from the stored study and its latest verification; run nothing")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the first trials' commands (and with --executor slurm the sbatch file); run "
                             "nothing and write nothing")


class SearchLoad(CompetingLoad):
    """The load other processes put on the machine during the search: this process and its worker
    processes (children, counted once joined) are the search's own."""

    @staticmethod
    def _own_cpu_s() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system


def check_arguments(args: argparse.Namespace) -> None:
    from bench.studies.sweep import check_executor_options
    from bench.tune.verify import check_runs

    if args.trials is not None and args.trials < 1:
        raise BenchError(f"--trials {args.trials}: give at least 1 (a second call adds its trials to the study)")
    if args.time_budget is not None and args.time_budget <= 0:
        raise BenchError(f"--time-budget {args.time_budget:g}: give a positive number of seconds")
    if args.workers is not None and args.workers < 1:
        raise BenchError(f"--workers {args.workers}: give at least 1")
    if not 0 <= args.margin < 1:
        raise BenchError(f"--margin {args.margin:g}: give a number from 0 to below 1 (an accuracy margin, e.g. 0.01)")
    if args.validation_size is not None and args.validation_size < 1:
        raise BenchError(f"--validation-size {args.validation_size}: give at least 1")
    check_executor_options(args)
    check_runs(args.verify_runs)
    if args.confirm_top < 1 or args.confirm_runs < 0:
        raise BenchError(f"--confirm-top {args.confirm_top} / --confirm-runs {args.confirm_runs}: give at least 1 "
                         "candidate and 0 or more seeds")


def validation_size(args: argparse.Namespace, suite: Any) -> int:
    if args.validation_size is not None:
        return args.validation_size
    return suite.dataset["validation_size"] or suite.dataset["test_size"] or 5000


def preflight(search: Any) -> None:
    """The split and the data, checked once here before any trial (not for a cluster's machines)."""
    from bench.datasets import load_dataset
    from bench.runner import subset

    dataset = search.suite.dataset
    loaded = load_dataset(dataset["name"], path=dataset["path"])
    try:
        subset(loaded, dataset["train_size"], dataset["test_size"], search.validation_size, "validation")
    except BenchError as exc:
        raise BenchError(f"{search.suite.path} with --validation-size {search.validation_size}: {exc}") from None


def open_search(args: argparse.Namespace, folder: Path, dry: bool = False) -> Any:
    try:
        import optuna
    except ImportError:
        raise BenchError("bench tune: Optuna is not installed; pip install -e '.[tune]' (make test installs "
                         "it)") from None

    from bench.suites import load_suite, suite_with
    from bench.tune.search import Search, open_storage, sampler
    from bench.tune.space import default_space, load_space

    suite = load_suite(args.suite)
    space = load_space(args.space or default_space(suite), suite)
    held = validation_size(args, suite)
    suite_with(suite.path, {"dataset.validation_size": held, "dataset.judged_on": "validation"},
               f"{suite.path} with --validation-size {held}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, storage_text = (None, "in memory (--dry-run)") if dry else open_storage(args.storage, folder)
    name = f"{suite.name}-{args.objective}"
    study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True, sampler=sampler(args.trials),
                                direction="minimize" if args.objective == "time" else "maximize")
    stated = {"suite": suite.name, "space": space.describe(), "validation_size": held, "objective": args.objective,
              "margin": args.margin}
    for key, value in stated.items():
        known = study.user_attrs.get(key)
        if known is None:
            study.set_user_attr(key, value)
        elif getattr(args, "report_only", False):  # the report shows the study as it was searched
            stated[key] = known
        elif known != value:
            raise BenchError(f"--storage {storage_text}: the study {name} there was searched with another {key} "
                             f"({known!r}); give the same, or another --storage")
    if not study.trials and not getattr(args, "report_only", False):
        from bench.tune.space import default_params

        if (params := default_params(space, suite)) is not None:
            # the first trial is the suite's own recipe: the time to beat from the start, and the
            # choice where nothing searched beats it
            study.enqueue_trial(params, user_attrs={"default_recipe": True})
    search = Search(suite=suite, space=space, study=study, folder=folder, objective=args.objective,
                    validation_size=stated["validation_size"], device=args.device, margin=stated["margin"])
    search.storage_text = storage_text
    return search


def command(args: argparse.Namespace, console: Console) -> int:
    from bench.record.files import ResultWriter, results_root

    check_arguments(args)
    from bench.suites import load_suite

    folder = (args.results or results_root()) / "tune" / load_suite(args.suite).name
    if args.dry_run:
        return dry_run(args, folder, console)
    if args.report_only and args.storage is None and not (folder / "study.db").is_file():
        raise BenchError(f"{folder / 'study.db'}: no search of {folder.name} here yet; run 'bench tune {args.suite}' "
                         "first (or give its --storage)")
    search = open_search(args, folder)
    if args.report_only:
        from bench.tune.finish import report_only

        return report_only(search, console)
    if not args.address and args.executor != "slurm":
        preflight(search)
    ResultWriter(search.trials_dir)  # an unwritable folder is refused before any trial
    ResultWriter(folder / "verify")
    from bench.destinations import check_folder

    check_folder(args.suite_dir or folder, "--suite-dir")
    return run(args, search, console)


def run(args: argparse.Namespace, search: Any, console: Console) -> int:
    from bench.progress import BoardReporter, RichReporter
    from bench.runner import Interrupted
    from bench.tune import finish

    count = args.trials if args.trials is not None or args.time_budget is not None else 12
    deadline = time.monotonic() + args.time_budget if args.time_budget else None
    import optuna

    # the suite's own recipe, queued as the first trial, is not yet one of the study's
    before = sum(t.state != optuna.trial.TrialState.WAITING for t in search.study.trials)
    console.print(escape(f"tune {search.suite.name}: {before} trials in {search.storage_text}; adding "
                         + (f"{count}" if count else f"trials for {args.time_budget:g} s")
                         + f" ({args.objective}, judged on {search.validation_size} validation images)"))
    board = BoardReporter(Console(stderr=True, highlight=False), f"tune {search.suite.name}", total=count or 0,
                          parallel=args.workers or 1)

    def on_finished(job: Any, outcome: str, path: Any) -> None:
        board.job_finished(job.label, f"{outcome} ({path.name if path else 'no file'})",
                           failed=outcome in ("failed", "diverged"))

    from bench.tune.target import validation_target

    found = validation_target(search, RichReporter())
    search.base_target = found["target"]
    console.print(escape(f"trials' target on validation: {search.trial_target:g} ({found['source']}"
                         + (f", plus a margin of {search.margin:g})" if search.margin else ")")))
    started = time.monotonic()
    try:
        with SearchLoad() as load, board:
            from bench.tune.search import run_trials

            run_trials(search, args, board, on_finished, count, deadline)
    except (KeyboardInterrupt, Interrupted):
        finish.abandon(search)
        console.print("[yellow]interrupted[/yellow]: finished trials are kept in the study; rerun to add more")
        return EXIT_INTERRUPTED
    finally:
        finish.abandon(search)
    search_s = time.monotonic() - started
    return finish.conclude(args, search, console, RichReporter(), search_s, load.share if args.executor == "local"
                           else None)


def dry_run(args: argparse.Namespace, folder: Path, console: Console) -> int:
    import itertools

    search = open_search(args, folder, dry=True)
    jobs = list(itertools.islice(search.jobs(args.workers or 1, None), args.workers or 1))
    console.print(escape(f"tune {search.suite.name}: space {search.space.path}; the first {len(jobs)} trials "
                         "(values drawn in memory, nothing stored):"))
    for job in jobs:
        console.print(" ".join(job.command), markup=False, highlight=False, soft_wrap=True)
    if args.executor == "slurm" and jobs:
        from bench.studies.slurm_executor import parameters, sbatch_script

        console.print("each round's job array, as sbatch is given it:", markup=False)
        console.print(sbatch_script(folder / "slurm", len(jobs), parameters(args, jobs, f"tune-{search.suite.name}")),
                      markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK


__all__ = ["add_arguments", "command", "EXIT_BROKEN", "EXIT_FAIL"]
