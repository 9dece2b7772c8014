"""`bench sweep STUDY`: run a study's cells that have no result yet, then (and as each cell
finishes) rewrite the study report.

Each cell is one ordinary invocation (`bench run SUITE --set ... --seed S --runs 1`) and
writes an ordinary result file into RESULTS/studies/<study>/runs/, named after the cell
(its resolved suite's hash and seed) plus a fresh run id, so nothing is ever overwritten. A rerun runs
only the cells without a complete (or diverged) result: an interrupted or partly failed
study continues where it stopped. Before any cell runs, the study is validated, the data
sets are loaded and each network is built once, so a bad value fails in one line, not
halfway through the grid.

Two sweeps of one study into one folder share its cells: each cell is claimed (a
`<cell>.claim` file beside its results, bench/studies/claims.py) before it runs, and a cell
another sweep holds is skipped, so every cell is trained once.

Exit codes: 0 every cell has a result, 2 bad input, 3 some cells failed (listed in the
report), 130 interrupted (finished cells kept).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import time
import tomllib
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.destinations import path_argument
from bench.errors import EXIT_BROKEN, EXIT_INTERRUPTED, EXIT_OK, BenchError
from bench.progress import BoardReporter, RichReporter
from bench.record.files import ResultNotWritten, ResultWriter, results_root
from bench.reports.frame import code_label
from bench.seeds import check_seeds
from bench.studies.cell import CellJob
from bench.studies.claims import Claims, describe
from bench.studies.ledger import Ledger, read_ledger
from bench.studies.ray_executor import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_RETRIES
from bench.studies.study import Cell, Study, load_study, study_dirs, value_label

REPORT_EVERY_S = 30.0  # the report is rewritten when a cell finishes this long after the last rewrite, and at the end


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", help="a study name from 'bench list', or a path to a study .toml file")
    add_executor_arguments(parser)
    parser.add_argument("--results", type=path_argument, metavar="DIR",
                        help="results folder; the study goes in its studies/<study>/ (default: results, or "
                             "$BENCH_RESULTS)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where cells train (default: cuda when available where the cell runs)")
    parser.add_argument("--order-seed", type=int, default=0, metavar="N",
                        help="the seed the cells' order is shuffled with (default %(default)s), recorded in each "
                             "result: cells run in the grid's order would line a drift of the machine's speed up "
                             "with an axis")
    parser.add_argument("--allow-mixed", action="store_true",
                        help="add cells run by other code than the study's cells so far (another commit, or a "
                             "modified tree); the report then splits its cells by commit")
    parser.add_argument("--dry-run", action="store_true", help="print the cells and what is left to run; run nothing")
    parser.add_argument("--report-only", action="store_true", help="rewrite the study report from the results; "
                                                                   "run nothing")


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Where cells run (bench sweep) or trials (bench tune): the executor and its options."""
    parser.add_argument("--executor", choices=("local", "ray", "slurm"), default="local",
                        help="local: this machine (default); ray: each cell a Ray task, on a local Ray or --address; "
                             "slurm: one SLURM job array of the cells, through submitit")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="cells at once: local worker processes (default: one per GPU when there are several, "
                             "else 1 = in this process); ray: cells per machine on CPU-only clusters")
    parser.add_argument("--address", metavar="ADDR", help="ray: the cluster to use (e.g. ray://head:10001 or auto); "
                                                          "default: start a local Ray for the study")
    cluster = parser.add_argument_group("ray")
    cluster.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT_S, metavar="SECONDS",
                         help="give up on --address after this long, in one line (default %(default)g)")
    cluster.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
                         help="times a cell whose node or worker was lost is retried on another node (default "
                              "%(default)s); a cell that failed by itself is not retried")
    slurm = parser.add_argument_group("slurm (each cell one task of the study's job array)")
    slurm.add_argument("--partition", metavar="P", help="sbatch --partition")
    slurm.add_argument("--gpus-per-node", type=int, metavar="G", help="sbatch --gpus-per-node (default 0)")
    slurm.add_argument("--cpus-per-task", type=int, metavar="C", help="sbatch --cpus-per-task (default: the "
                                                                      "study's nproc_per_node)")
    slurm.add_argument("--time", type=int, metavar="MINUTES", help="sbatch --time per task (default 60)")
    slurm.add_argument("--slurm-cluster", choices=("slurm", "local"), default="slurm",
                       help="local: run the array's tasks as processes of this machine through submitit's local "
                            "executor (to try the submission without a cluster)")


def check_executor_options(args: argparse.Namespace) -> None:
    if args.address and args.executor != "ray":
        raise BenchError("--address is for --executor ray")
    if args.connect_timeout <= 0 or args.retries < 0:
        raise BenchError("--connect-timeout must be above 0 seconds and --retries at least 0")
    given = [flag for flag, value in (("--partition", args.partition), ("--gpus-per-node", args.gpus_per_node),
                                      ("--cpus-per-task", args.cpus_per_task), ("--time", args.time)) if value]
    if given and args.executor != "slurm":
        raise BenchError(f"{given[0]} is for --executor slurm")
    for flag, value in (("--gpus-per-node", args.gpus_per_node), ("--cpus-per-task", args.cpus_per_task),
                        ("--time", args.time)):
        if value is not None and value < (0 if flag == "--gpus-per-node" else 1):
            raise BenchError(f"{flag} {value}: give a positive number")
    # written into the job script as `#SBATCH --partition=P`: a newline in it added #SBATCH lines of
    # the user's choosing (an injection); partition names are words, a comma between several
    if args.partition and not re.fullmatch(r"[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*", args.partition):
        raise BenchError(f"--partition {args.partition!r}: give partition names (letters, digits, '.', '_', '-'; "
                         "several separated by commas)")
    if args.executor == "slurm" and args.results is not None and _control_characters(str(args.results)):
        raise BenchError(f"--results {str(args.results)!r}: a control character (a newline) in the path would be "
                         "written into the job script's #SBATCH lines; choose a path without one")


def _control_characters(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def same_name_elsewhere(study: Study) -> Path | None:
    """Another study file (shipped, or in $BENCH_SUITES) with this study's name: both would sweep
    into results/studies/<name>, and one rewrote the other's report."""
    for folder in study_dirs():
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            try:
                raw = tomllib.loads(path.read_text(encoding="utf-8"))
                if os.path.samefile(path, study.path):
                    continue
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue  # an unreadable file is its own problem, said when it is swept or listed
            if "axes" in raw and raw.get("name") == study.name:  # a study (its base suites sit beside it)
                return path
    return None


def study_folder(study: Study, results: Path | None) -> Path:
    return (results or results_root()) / "studies" / study.name


def cells_table(study: Study, ledger: Ledger) -> Table:
    table = Table(title=escape(f"study {study.name}: cells"), title_justify="left")
    for axis in study.axes:
        table.add_column(escape(axis))
    for column in ("seed", "cell", "state"):
        table.add_column(column, no_wrap=True)
    colour = {"done": "green", "failed": "red", "pending": "yellow"}
    for state in ledger.cells.values():  # axis values are text ("[64, 32]" is a list, not markup)
        table.add_row(*[escape(value_label(v)) for _, v in state.cell.point.values], str(state.cell.seed),
                      escape(state.cell.key),
                      f"[{colour[state.state]}]{state.state}[/{colour[state.state]}]")
    return table


def _counts(ledger: Ledger) -> str:
    done, failed, pending = (len(ledger.where(s)) for s in ("done", "failed", "pending"))
    return f"{len(ledger.cells)} cells ({len(ledger.study.points)} points × {len(ledger.study.seeds)} seeds): " \
           f"{done} done, {failed} failed, {pending} not run yet"


def preflight(study: Study, cells: list[Cell], device: str, reporter: RichReporter) -> None:
    """Fails before any training, in one line, on what would fail every cell of a kind: a data
    set that cannot be had, a network that cannot be built, a batch larger than the data.
    (Not for a Ray cluster at --address: its machines, not this one, have the data and devices.)"""
    import torch

    from bench.datasets import load_dataset
    from bench.models import build_model
    from bench.runner import subset
    from bench.train import resolve_device

    if device != "auto":
        resolve_device(device)  # --device cuda on a machine without CUDA is bad input here
    shapes: dict[tuple, tuple[int, tuple[int, int, int], int]] = {}
    built: set[str] = set()
    for cell in cells:
        suite = cell.point.suite
        dataset = suite.dataset
        where = f"{study.path}: the point {cell.point.label}"
        source = (dataset["name"], dataset["path"], dataset["train_size"], dataset["test_size"],
                  dataset["validation_size"])
        if source not in shapes:
            loaded = load_dataset(dataset["name"], path=dataset["path"], reporter=reporter)
            try:
                data = subset(loaded, dataset["train_size"], dataset["test_size"], dataset["validation_size"])
            except BenchError as exc:  # the split sizes do not fit this data set
                raise BenchError(f"{where}: {exc}") from None
            _, h, w, c = data.train_images.shape
            shapes[source] = (len(data.classes), (c, h, w), len(data.train_labels))
        classes, shape, train_count = shapes[source]
        if suite.recipe["batch_size"] > train_count:
            raise BenchError(f"{where}: recipe.batch_size {suite.recipe['batch_size']} is larger than the training "
                             f"set ({train_count} images)")
        model_key = repr((suite.model["name"], suite.model["args"], classes, shape))
        if model_key not in built:
            with torch.device("meta"):  # the shapes are checked, no memory is taken
                build_model(suite.model["name"], classes, shape, suite.model["args"], where=f"{where}: model")
            built.add(model_key)


def claimer(claims: Claims, runs_dir: Path, seen: set[Path],
            notice: Callable[[str], None]) -> Callable[[CellJob], bool]:
    """Whether this sweep runs a cell now: it claims it, unless another sweep holds it or has
    written a result of it since this sweep read the folder (`seen`; then the claim is let go)."""
    def claim(job: CellJob) -> bool:
        try:
            taken = claims.take(job.key)
        except OSError as exc:  # a full disk refuses the claim as it would the cell's file
            raise ResultNotWritten(f"cannot claim the cell {job.key} in {runs_dir} ({exc.strerror or exc}); the "
                                   "files already there are untouched") from None
        if not taken:
            notice(f"{job.label}: being run by {describe(claims.holder(job.key), claims.path(job.key))}; skipped here")
            return False
        if any(path not in seen for path in runs_dir.glob(f"{job.key}-*.json")):
            claims.release(job.key)
            notice(f"{job.label}: run by another sweep meanwhile; skipped here")
            return False
        return True

    return claim


def check_one_code(study: Study, ledger: Ledger, code: dict[str, Any]) -> None:
    """One study, one code: cells that this code would add to cells another code ran (another
    commit, or the same commit clean against modified) are refused (BenchError, before any work).
    Two modified trees of one commit cannot be told apart (the record keeps the commit and a
    dirty flag, not the diff): the report marks their cells "+dirty" and does not split them."""
    mine = code_label(code)
    theirs: dict[str, int] = {}
    for state in ledger.cells.values():
        if state.result is not None:
            label = code_label(state.result.record.get("code"))
            theirs[label] = theirs.get(label, 0) + 1
    other = {label: n for label, n in theirs.items() if label != mine}
    if not other:
        return
    ran = ", ".join(f"{n} on {label}" for label, n in sorted(other.items()))
    raise BenchError(f"study {study.name}: its cells ran on other code ({ran}) than this tree ({mine}); adding cells "
                     "would mix code in one study. Commit, and sweep into a fresh --results folder, or pass "
                     "--allow-mixed (the report then splits the cells by commit)")


def shuffled(cells: list[Cell], seed: int) -> list[Cell]:
    """The cells in the order `seed` shuffles them to (the same seed, the same order)."""
    order = list(cells)
    random.Random(seed).shuffle(order)
    return order


def job_for(study: Study, cell: Cell, device: str, concurrency: int | None = None,
            order_seed: int | None = None) -> CellJob:
    """The cell as a job; `concurrency`, where the sweep knows it, is how many cells it runs at once
    on one machine, written into the cell's result (study.concurrency) so that the report compares
    times only between cells that shared the machine alike; `order_seed`, the seed the sweep
    shuffled its cells with (study.order_seed)."""
    block = study.record_block(cell)
    if concurrency is not None:
        block["concurrency"] = concurrency
    if order_seed is not None:
        block["order_seed"] = order_seed
    return CellJob(key=cell.key, label=cell.label, suite=cell.point.suite, seed=cell.seed, device=device,
                   command=study.cell_command(cell), study=block, nproc_per_node=study.nproc_per_node)


def outcome_text(record: dict[str, Any]) -> str:
    """The cell's result in a few words, for the line the board prints when it finishes."""
    if record["status"] == "failed":
        return (record.get("error") or {}).get("message") or "failed"
    if record["status"] == "diverged":
        return "diverged (the loss became NaN or infinite)"
    run = record["runs"][0]
    text = f"top-1 {run['accuracy']:.4f}"
    if record["suite"]["resolved"]["mode"] == "budget":
        return text + f" after {run['timed_s']:.1f} s"
    if run.get("reached_target"):
        return text + f", target reached in {run['time_to_target_s']:.1f} s"
    return text + ", target not reached"


def write_report(study: Study, ledger: Ledger, folder: Path, console: Console | None = None) -> tuple[Path, Path]:
    """Rewrites the study report; with a console, prints the best values line under it."""
    # the report modules import pandas: loaded when a report is written, not for every bench command
    from bench.studies import report

    page, markdown = report.write_study_report(study, ledger, folder)
    if console is not None:
        from bench.studies.figures import study_frames
        from bench.studies.report_sections import best_line

        console.print(escape(best_line(study, study_frames(study, ledger))))
    return page, markdown


def command(args: argparse.Namespace, console: Console) -> int:
    if args.workers is not None and args.workers < 1:
        raise BenchError(f"--workers {args.workers}: give at least 1")
    check_executor_options(args)
    check_seeds(args.order_seed, 1, "--order-seed")
    study = load_study(args.study)
    other = same_name_elsewhere(study)
    if other is not None:
        raise BenchError(f"{study.path}: 'name' {study.name!r} is also the name of the study {other}; both would "
                         f"write results/studies/{study.name} (its cells and its report): give this study another name")
    folder = study_folder(study, args.results)
    runs_dir = folder / "runs"
    reporter = RichReporter()  # notices on stderr, tables on stdout
    seen = set(runs_dir.glob("*.json")) if runs_dir.is_dir() else set()  # before the ledger reads them
    ledger = read_ledger(study, runs_dir, reporter)
    if args.dry_run:
        return _dry_run(args, study, ledger, folder, console)
    if args.report_only:
        # result files of no cell (the study file changed since they ran) still make a report: it lists
        # them and every cell as not run yet, so a committed report never outlives its study file
        if not ledger.results and not ledger.strays:
            raise BenchError(f"{runs_dir}: no result of this study yet; run 'bench sweep {args.study}' first")
        page, markdown = write_report(study, ledger, folder, console)
        console.print(escape(f"{_counts(ledger)}\nwrote {markdown} and {page}"))
        return EXIT_OK

    todo = [state.cell for state in ledger.cells.values() if state.state != "done"]
    if todo and not args.allow_mixed:
        from bench.env import code_version  # imports torch: not before a sweep runs

        check_one_code(study, ledger, code_version())
    console.print(escape(f"study {study.name}: {_counts(ledger)}; running {len(todo)} into {runs_dir}"))
    if todo:
        if not args.address and args.executor != "slurm":
            preflight(study, todo, args.device, reporter)
        ResultWriter(runs_dir)  # an unwritable folder is refused before any cell runs
    interrupted = _run_cells(args, study, ledger, todo, folder, seen, reporter)

    ledger = read_ledger(study, runs_dir, reporter)
    page = markdown = None
    if ledger.results:
        page, markdown = write_report(study, ledger, folder, console)
    console.print(escape(_counts(ledger) + (f"\nreport: {markdown} and {page}" if page else "")))
    if interrupted:
        console.print("[yellow]interrupted[/yellow]: finished cells are kept; rerun the same command to go on")
        return EXIT_INTERRUPTED
    if ledger.where("failed"):
        console.print(f"[red]{len(ledger.where('failed'))} cells failed[/red] (reasons in the report); a rerun "
                      "retries them")
        return EXIT_BROKEN
    return EXIT_OK


def _dry_run(args: argparse.Namespace, study: Study, ledger: Ledger, folder: Path, console: Console) -> int:
    """The cells and what is left to run (with --executor slurm, the job array's sbatch file)."""
    console.print(cells_table(study, ledger))
    left = len(ledger.where("pending")) + len(ledger.where("failed"))
    console.print(escape(f"{_counts(ledger)}; {left} run{'s' if left != 1 else ''} to go (each one seed of one "
                         f"point) into {folder / 'runs'}"))
    if args.executor == "slurm" and left:
        from bench.studies.slurm_executor import parameters, sbatch_script

        jobs = [job_for(study, s.cell, args.device) for s in ledger.cells.values() if s.state != "done"]
        console.print("the job array's sbatch file:", markup=False)
        console.print(sbatch_script(folder / "slurm", left, parameters(args, jobs, study.name)), markup=False,
                      highlight=False, soft_wrap=True)
    return EXIT_OK


def _run_cells(args: argparse.Namespace, study: Study, ledger: Ledger, todo: list, folder: Path, seen: set[Path],
               reporter: RichReporter) -> bool:
    """Runs the cells left on the chosen executor, each claimed first and written as it finishes;
    returns whether the sweep was interrupted (finished cells are kept either way)."""
    from bench.runner import Interrupted
    from bench.studies import executors

    runs_dir = folder / "runs"
    parallel = args.workers or (executors.gpu_count() if args.executor == "local" else 1) or 1
    if args.executor == "slurm":
        parallel = args.workers or len(todo) or 1
    # the local executor runs `parallel` cells at once on this machine (fewer when fewer are left);
    # Ray and SLURM place cells on machines this sweep does not see: their concurrency is not recorded
    concurrency = min(parallel, len(todo)) if args.executor == "local" and todo else None
    # in a seeded shuffled order: a drift of the machine's speed over the sweep (load falling, a
    # neighbour starting) then spreads over the grid instead of lining up with an axis
    todo = shuffled(todo, args.order_seed)
    jobs = [job_for(study, cell, args.device, concurrency, args.order_seed) for cell in todo]
    board = BoardReporter(Console(stderr=True, highlight=False), f"study {study.name}", total=len(ledger.cells),
                          done=len(ledger.cells) - len(todo), parallel=parallel)
    last_report = [time.monotonic()]
    claims = Claims(runs_dir)
    claims.clear_stale()  # a killed sweep's claims, of done cells too (bench.studies.claims)
    claim = claimer(claims, runs_dir, seen, lambda message: board.notice(message))

    def finished(job: CellJob, record: dict[str, Any]) -> None:
        try:
            path = ResultWriter(runs_dir, prefix=f"{job.key}-").write(record)
        finally:  # written, or the disk refused it: either way the cell is no longer being run
            claims.release(job.key)
        board.job_finished(job.label, f"{outcome_text(record)} ({path.name})", failed=record["status"] == "failed")
        # drawing the report takes a second or two: keep it current, but not after every short cell
        if time.monotonic() - last_report[0] >= REPORT_EVERY_S:
            write_report(study, read_ledger(study, runs_dir, reporter), folder)
            last_report[0] = time.monotonic()

    try:
        with board:
            if not jobs:
                pass
            elif args.executor == "ray":
                from bench.studies.ray_executor import run_on_ray

                run_on_ray(jobs, board, finished, args.address, args.workers, board.notice, claim=claim,
                           log_path=folder / "ray.log", connect_timeout_s=args.connect_timeout, retries=args.retries)
            elif args.executor == "slurm":
                from bench.studies.slurm_executor import run_on_slurm

                # the whole array is submitted at once: the driver claims every cell first
                run_on_slurm([job for job in jobs if claim(job)], board, finished, args, folder / "slurm", study.name)
            elif parallel > 1:
                executors.run_in_workers(jobs, board, finished, parallel, claim)
            else:
                executors.run_in_process(jobs, board, finished, claim)
    except (KeyboardInterrupt, Interrupted):  # Interrupted: the runner's Ctrl-C (finished runs kept)
        return True
    finally:
        claims.release_all()  # cells claimed but not finished (Ctrl-C, an error) are free for the next sweep
    return False
