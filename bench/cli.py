"""`bench` command line: a thin face over suites, runner, and reports.

Exit codes: 0 PASS (or a command that succeeded), 1 verdict FAIL, 2 bad input
(one line, no traceback), 3 diverged or failed run (or its result file could not be written, or
a bench bug: its traceback, then one line),
4 the runs are complete and their result files written, but a view asked for (--save-weights,
--mllog) could not be saved (said in a line each; the verdict in the result file stands),
5 (bench check) no regression found but a time not judged: inconclusive, the machine was busy,
130 interrupted, 143 terminated (SIGTERM, taken as a Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench import __version__
from bench.destinations import check_file, check_folder, path_argument
from bench.errors import (EXIT_BAD_INPUT, EXIT_BROKEN, EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED,
                          EXIT_VIEW_NOT_SAVED, BenchError)
from bench.loader_kinds import LOADER_KINDS
from bench.seeds import check_run_count, check_seeds
from bench.suites import SCHEMA


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a wrong argument is one line (what, where, what to do) instead of the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        Console(stderr=True, highlight=False).print(
            f"[bold red]error:[/bold red] {escape(self.prog)}: {escape(message)}; see '{escape(self.prog)} --help'", soft_wrap=True)
        raise SystemExit(EXIT_BAD_INPUT)


# Commands whose parser needs none of the others': their set-up imports no torch (seconds) or pandas.
LIGHT_COMMANDS = ("list", "show")


def _parser(light: bool = False) -> argparse.ArgumentParser:
    """The command line; `light`: the LIGHT_COMMANDS' parsers alone (`bench list` in a blink)."""
    parser = _OneLineParser(prog="bench", description="Time-to-accuracy benchmarks for PyTorch "
                                     "image classifiers (DAWNBench / MLPerf style).")
    parser.add_argument("-V", "--version", action="version", version=f"bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("list", help="list the suites", description="List the suites bench ships (and those in "
                   "$BENCH_SUITES), one line each; 'bench show NAME' shows one whole.")

    from bench import show

    show.add_arguments(sub.add_parser("show", help="a suite with every default filled in, and its target's source; "
                                      "--keys: every suite key", description=show.__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter))
    if light:
        return parser

    _add_run_arguments(sub.add_parser("run", help="train a suite to its target over several seeds",
                                      description="Train a suite's recipe to its target accuracy over N seeds, "
                                                  "report time to target, throughput, memory, energy, params and "
                                                  "FLOPs, and write a result file to results/runs/."))

    from bench.studies import sweep

    sweep_parser = sub.add_parser("sweep", help="run a study: a grid of suite variants over seeds, resumable, "
                                  "with a study report", description=sweep.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_arguments(sweep_parser)

    from bench.tune import command as tune

    tune.add_arguments(sub.add_parser("tune", help="search the recipe for the fastest time to the target on this "
                                      "machine (Optuna), verified on fresh seeds", description=tune.__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter))

    from bench import calibrate

    calibrate.add_arguments(sub.add_parser("calibrate", help="set a suite's target from seeds the verdicts never "
                                           "use; writes results/calibration/<suite>-<id>.json",
                                           description=calibrate.__doc__,
                                           formatter_class=argparse.RawDescriptionHelpFormatter))

    cache = sub.add_parser("cache", help="show or empty the compute-policy cache (decisions of earlier trials)",
                           description="The compute-policy cache: the decisions of earlier policy trials, per machine, "
                                       "model, input shape and batch ($BENCH_CACHE_DIR, else $XDG_CACHE_HOME/bench, "
                                       "else ~/.cache/bench; policy.json). Only trials made under low load whose "
                                       "winner stood apart from the runner-up are kept.")
    cache.add_argument("action", choices=("show", "clear"), help="show: list the decisions; clear: remove them all")

    env = sub.add_parser("env", help="print the environment fingerprint",
                         description="Print the environment fingerprint recorded in every result file.")
    env.add_argument("--json", action="store_true", help="print JSON")

    import bench.specs
    from bench.specs import command as specs_command  # imports torch, which every bench command but list needs

    specs_parser = sub.add_parser("specs", help="network specification table: layers, params, FLOPs, memory, "
                                  "images/s", description=bench.specs.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    specs_command.add_arguments(specs_parser)

    from bench.reports import check, compare, export, leaderboard  # ~0.25 s (pandas); matplotlib only when plotting

    for name, module, summary in (
            ("leaderboard", leaderboard, "rank the PASS results of each suite by median time to target"),
            ("compare", compare, "machines side by side on the same suites: speed-ups, plots, HTML and Markdown"),
            ("check", check, "regression gate for CI: a candidate result against a baseline (exit 1 on one)"),
            ("export", export, "the results as one table (a row per run, invocation or epoch): CSV, Parquet, JSON")):
        report = sub.add_parser(name, help=summary, description=module.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(report)
    completion = sub.add_parser("completion", help="print a shell completion script (bash or zsh)",
                                description="Print the completion script for your shell, generated from this "
                                            "command line (shtab). bash: bench completion bash > "
                                            "~/.local/share/bash-completion/completions/bench; zsh: bench "
                                            "completion zsh > ~/.zfunc/_bench (a folder in your fpath).")
    completion.add_argument("shell", choices=("bash", "zsh"))
    return parser


def _add_run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("suite", help="a suite name from 'bench list', or a path to a .toml file")
    run.add_argument("--runs", type=_runs_argument, metavar="N|auto",
                     help="number of runs (seeds); default: the suite's. auto: add seeds until the 95%% CI of the "
                          "mean accuracy is narrow enough (--ci-width) or --max-runs are done (at least 3)")
    run.add_argument("--ci-width", type=float, default=0.005, metavar="W",
                     help="with --runs auto: the 95%% CI half-width of the mean accuracy to reach, as a fraction "
                          "(default 0.005: ±0.5 percentage points)")
    run.add_argument("--max-runs", type=int, default=10, metavar="M",
                     help="with --runs auto: the most runs (at least 3; default 10)")
    run.add_argument("--seed", type=int, default=0, help="first seed; runs use seed, seed+1, ... (default 0)")
    run.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                     help="where to train (default: cuda when available)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a suite key, e.g. --set recipe.epochs=2 (recorded; changes the suite hash)")
    run.add_argument("--compile", choices=SCHEMA["recipe"]["compile"].choices,
                     help="torch.compile mode, instead of the suite's recipe.compile (recorded as an override)")
    run.add_argument("--results", type=path_argument, help="folder for result files (default results/runs, or "
                                                  "$BENCH_RESULTS/runs)")
    run.add_argument("--versus", action="append", default=[], metavar="SUITE",
                     help="race another suite in the same invocation: seeds interleaved (A B A B ...), one "
                          "result file each (e.g. bench run cifar10-94 --versus airbench94)")
    run.add_argument("--offline", action="store_true", help="never download data sets")
    run.add_argument("--retrial", action="store_true",
                     help="decide the compute policy by a fresh trial instead of the policy cache's decision (the "
                          "trial replaces the cached one when it earns it: low load, candidates apart)")
    run.add_argument("--save-weights", type=path_argument, metavar="DIR",
                     help="save each run's final (evaluated) weights as DIR/<result id>-seed<N>.pt, a state dict "
                          "that model.init reads; the result file names it")
    run.add_argument("--loader", default="auto", choices=LOADER_KINDS,
                     help="how batches reach the model: resident (whole set on the device), torch "
                          "(DataLoader), dali (NVIDIA DALI); auto picks resident when it fits (default)")
    run.add_argument("--dry-run", action="store_true",
                     help="check the suite, its seeds, data, model and destinations as a run would, then stop "
                          "before training (one line a suite)")
    run.add_argument("--json", action="store_true",
                     help="print the summary as JSON on stdout (verdict, aggregate, runs, result file); "
                          "progress and notices stay on stderr")
    run.add_argument("--quiet", "-q", action="store_true",
                     help="no progress bars, notices or tables: one line a suite (verdict, result file); errors "
                          "are still said")
    run.add_argument("--mllog", type=path_argument, metavar="FILE",
                     help="also write each run in MLPerf's log format (mlperf-logging), built from the result "
                          "file; several runs are numbered FILE_0, FILE_1, ... (never overwritten)")
    scale = run.add_argument_group("one run on many devices (DDP under torch.distributed.run; NCCL on CUDA, "
                                   "gloo on CPU; the suite's batch_size is the global batch)")
    scale.add_argument("--nproc-per-node", type=int, metavar="N",
                       help="ranks on this node: one per GPU (on CPU, processes sharing the cores)")
    scale.add_argument("--nnodes", type=int, default=1, metavar="M", help="machines in the run (default 1)")
    scale.add_argument("--node-rank", type=int, default=0, metavar="R", help="this machine's number, 0..M-1")
    scale.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                       help="node 0's address and a free port, the same on every node (needed when M > 1)")
    scale.add_argument("--rdzv-timeout", type=_seconds_argument, metavar="SECONDS",
                       help="with M > 1: how long the nodes wait for each other at the start; a node that never "
                            "arrives ends the run after this long (default 900)")
    scale.add_argument("--dist-timeout", type=_seconds_argument, metavar="SECONDS",
                       help="a collective waiting longer ends the run as failed instead of hanging "
                            "(default 1800)")


MAX_TIMEOUT_S = 7 * 24 * 3600  # a week: past any run; torch's timeout in ms overflowed far above it


def _seconds_argument(text: str) -> float:
    """A timeout: a positive number of seconds (-5 reached torch's sockets: 41 lines of C++ errors)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds above 0 and at most {MAX_TIMEOUT_S} "
                                         "(a week)")
    return value


def _runs_argument(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of runs or auto") from None


def runs_options(args: argparse.Namespace) -> tuple[int | None, tuple[float, int] | None]:
    """--runs N, or --runs auto with its --ci-width and --max-runs (checked here, before any work)."""
    if args.runs != "auto":
        if args.runs is not None:
            check_run_count(args.runs, "--runs")
        return args.runs, None
    if not 0 < args.ci_width < 1:
        raise BenchError(f"--ci-width {args.ci_width}: give the half-width as a fraction in (0, 1), e.g. 0.005")
    if args.max_runs < 3:
        raise BenchError(f"--max-runs {args.max_runs}: --runs auto makes at least 3 runs; give 3 or more")
    check_run_count(args.max_runs, "--max-runs")
    return None, (args.ci_width, args.max_runs)


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    from bench.listing import command

    return command(args, console)


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from bench import distributed
    from bench.progress import NullReporter, RichReporter
    from bench.record.files import default_results_dir
    from bench.runner import Interrupted, run_race
    from bench.suites import load_suite

    runs, runs_auto = runs_options(args)
    overrides = args.overrides + ([f"recipe.compile={args.compile!r}".replace("'", '"')] if args.compile else [])
    # --set and --compile apply to every suite of a race: the same data and settings for all
    suites = [load_suite(ref, overrides) for ref in [args.suite, *args.versus]]
    # before the launcher too, so a bad --seed is one line, not one per rank
    check_seeds(args.seed, runs_auto[1] if runs_auto else runs if runs is not None
                else max(s.resolved["runs"] for s in suites), "--seed")
    if args.save_weights is not None:  # checked before any training, as every destination is
        check_folder(args.save_weights, "--save-weights")
    if args.json:  # stdout carries the JSON alone; what the tables and lines would say goes to stderr
        console = Console(stderr=True, highlight=False, quiet=args.quiet)
    unsaved: list[str] = []  # views asked for (weights, MLPerf logs) that could not be saved
    # the MLPerf log names are checked here (and in the launcher, before any rank starts); rank 0 writes them
    after_run = _mllog_writer(args.mllog, suites, runs_auto[1] if runs_auto else runs, console, unsaved) \
        if args.mllog is not None and distributed.main_process_output() else None
    if args.dry_run:
        from bench.run_views import dry_run_command

        return dry_run_command(args, suites, runs, console)
    if not distributed.launched() and (args.nproc_per_node is not None or args.nnodes > 1):
        return _launch(args, suites)
    dist = distributed.SINGLE
    if distributed.launched():  # a rank that torch.distributed.run (or torchrun -m bench) started
        from bench.train import resolve_device

        dist = distributed.join(resolve_device(args.device), args.dist_timeout)
    reporter = RichReporter(Console(stderr=True, highlight=False)) if dist.is_main and not args.quiet \
        else NullReporter()
    try:
        finished = run_race(suites, runs=runs, runs_auto=runs_auto, seed=args.seed, device_choice=args.device,
                            results_dir=args.results or default_results_dir(), reporter=reporter,
                            offline=args.offline, command=["bench", *sys.argv[1:]], loader=args.loader,
                            after_run=after_run, save_weights=args.save_weights, dist=dist, unsaved=unsaved,
                            retrial=args.retrial)
    except Interrupted as stop:
        where = f"finished runs kept in {', '.join(map(str, stop.paths))}" if stop.paths else \
            "no run had finished; nothing written"
        console.print(f"[yellow]interrupted[/yellow]: {escape(where)}")
        return EXIT_INTERRUPTED
    distributed.leave(dist)  # on the way out after success; a failing rank just exits
    from bench.run_views import say_finished

    say_finished(args, finished, console)
    if any(record["status"] != "complete" for record, _ in finished):
        return EXIT_BROKEN
    if unsaved:  # the verdict stands (it is in the result file); what was asked for and is missing is said
        for what in unsaved:
            console.print(f"[yellow]not saved[/yellow]: {escape(what)}; the result file is complete", soft_wrap=True)
        return EXIT_VIEW_NOT_SAVED
    return EXIT_OK if all(record["aggregate"]["verdict"] == "PASS" for record, _ in finished) else EXIT_FAIL


def _mllog_writer(base: Path, suites: list, runs: int | None, console: Console, unsaved: list[str]):
    """Checks the log names before any work, and returns what writes each run's log: a view
    of the result file just saved, read back through the one reader."""
    from bench.record.files import load_results
    from bench.reports.mlperf import check_log_paths, log_paths, mlperf_log, write_log

    check_file(base, "--mllog", overwrite=True)  # a folder given as the log, before its numbered names
    paths = log_paths(base, [(s.name, runs if runs is not None else s.resolved["runs"]) for s in suites])
    check_log_paths([p for names in paths for p in names])

    def write(position: int, result: Path, index: int) -> None:
        try:
            path = write_log(paths[position][index], mlperf_log(load_results(result)[0].record, index))
        except (BenchError, OSError) as exc:  # the result file holds the run; a view that failed must not mark it
            unsaved.append(f"--mllog {paths[position][index]} ({getattr(exc, 'strerror', None) or exc})")
            Console(stderr=True, highlight=False).print(f"[yellow]MLPerf log not written[/yellow]: "
                                                        f"{escape(unsaved[-1])}", soft_wrap=True)
            return
        console.print(f"MLPerf log: {escape(str(path))}")

    return write


def _launch(args: argparse.Namespace, suites: list) -> int:
    """Checks what it can here (one line, exit 2, nothing started), then starts the ranks of this
    node under torch.distributed.run; they rerun this command line without the launcher's flags."""
    from bench import distributed
    from bench.progress import RichReporter
    from bench.record.files import ResultWriter, default_results_dir
    from bench.train import resolve_device

    nproc = args.nproc_per_node if args.nproc_per_node is not None else 1
    if nproc < 1 or args.nnodes < 1:
        raise BenchError("--nproc-per-node and --nnodes must be at least 1")
    if args.rdzv_timeout is not None and args.rdzv_timeout <= 0:
        raise BenchError(f"--rdzv-timeout {args.rdzv_timeout:g}: give a number of seconds above 0")
    device = resolve_device(args.device)
    if device.type == "cuda":
        import torch

        if nproc > torch.cuda.device_count():
            raise BenchError(f"--nproc-per-node {nproc}: this node has {torch.cuda.device_count()} GPUs; "
                             "run one rank per GPU")
    world = distributed.Dist(world_size=nproc * args.nnodes, backend="check")
    for suite in suites:
        world.rank_batch(suite.resolved["recipe"]["batch_size"], key=f"{suite.name}: recipe.batch_size")
    if args.node_rank == 0:  # the node that holds rank 0 writes the result file
        ResultWriter(args.results or default_results_dir())
    reporter = RichReporter(Console(stderr=True, highlight=False))
    return distributed.launch(sys.argv[1:], nproc_per_node=nproc, nnodes=args.nnodes, node_rank=args.node_rank,
                              rdzv_endpoint=args.rdzv_endpoint, timeout_s=args.dist_timeout,
                              cpu=device.type == "cpu", notice=reporter.notice, rdzv_timeout_s=args.rdzv_timeout)


def cmd_env(args: argparse.Namespace, console: Console) -> int:
    from bench.env import code_version, fingerprint

    info = {**fingerprint(), "code": code_version()}
    if args.json:
        print(json.dumps(info, indent=1))
        return EXIT_OK
    table = Table(title="environment", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")

    def rows(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                rows(f"{prefix}.{k}" if prefix else k, v)
        else:
            table.add_row(escape(prefix), "—" if value is None else escape(str(value)))

    rows("", info)
    console.print(table)
    return EXIT_OK


def cmd_cache(args: argparse.Namespace, console: Console) -> int:
    from bench.train import policy_cache

    return policy_cache.command(args.action, console)


def cmd_specs(args: argparse.Namespace, console: Console) -> int:
    from bench.specs.command import command

    return command(args, console)


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    import importlib

    return importlib.import_module(f"bench.reports.{args.command}").command(args, console)


def cmd_completion(args: argparse.Namespace, console: Console) -> int:
    import shtab

    print(shtab.complete(_parser(), shell=args.shell), end="")
    return EXIT_OK


def cmd_show(args: argparse.Namespace, console: Console) -> int:
    from bench.show import command

    return command(args, console)


def cmd_calibrate(args: argparse.Namespace, console: Console) -> int:
    from bench.calibrate import command

    return command(args, console)


def cmd_sweep(args: argparse.Namespace, console: Console) -> int:
    from bench.studies.sweep import command

    return command(args, console)


def cmd_tune(args: argparse.Namespace, console: Console) -> int:
    from bench.tune.command import command

    return command(args, console)


COMMANDS = {"list": cmd_list, "show": cmd_show, "completion": cmd_completion, "run": cmd_run, "calibrate": cmd_calibrate, "sweep": cmd_sweep, "tune": cmd_tune, "env": cmd_env, "specs": cmd_specs,
            "cache": cmd_cache,
            "leaderboard": cmd_report, "compare": cmd_report, "check": cmd_report, "export": cmd_report}


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # during the imports and the parser's set-up (torch: seconds), before any work
        Console(stderr=True, highlight=False).print("[yellow]interrupted[/yellow]")
        return EXIT_INTERRUPTED


def _main(argv: list[str] | None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words[:1] in (["-V"], ["--version"]):  # before any parser: no imports past bench's own
        print(f"bench {__version__}")
        return EXIT_OK
    parser = _parser(light=bool(words) and words[0] in LIGHT_COMMANDS)
    args, extra = parser.parse_known_args(argv)
    if extra:  # the subcommand's own help lists what it takes
        prog = f"bench {args.command}" if args.command else "bench"
        _OneLineParser(prog=prog).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    if args.command in LIGHT_COMMANDS:  # never a rank; bench.distributed imports torch
        launched, quiet = (lambda: False), False
    else:
        from bench.distributed import launched, main_process_output

        # Of several ranks only rank 0 speaks: the others hold the same records and errors.
        quiet = not main_process_output()
    # Logs and pipes get rich's 80 columns by default, too narrow for the run tables.
    console = Console(highlight=False, width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120,
                      quiet=quiet)
    errors = Console(stderr=True, highlight=False, quiet=quiet)
    # a rank has the launcher's SIGTERM handling (bench.distributed); any other process takes a
    # SIGTERM (kill, SLURM's scancel, a CI timeout) as a Ctrl-C, so its finished runs are saved
    with SigtermAsInterrupt(enabled=not launched()) as sigterm:
        code = _dispatch(args, console, errors)
    if sigterm.received and code == EXIT_INTERRUPTED:
        # only run and sweep keep runs: a calibration's runs go with its scratch folder (its own
        # line says no file was written, which 'finished runs kept' contradicted)
        kept = ": finished runs kept" if args.command in ("run", "sweep") else ""
        errors.print(f"[yellow]terminated[/yellow] (SIGTERM){kept}")
        return EXIT_TERMINATED
    return code


class SigtermAsInterrupt:
    """While active, SIGTERM raises KeyboardInterrupt (once; `received` says it came)."""

    def __init__(self, enabled: bool):
        import threading

        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.received = False
        self.previous = None

    def _handler(self, signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one while the record is saved: ignored
        self.received = True
        raise KeyboardInterrupt

    def __enter__(self) -> "SigtermAsInterrupt":
        if self.enabled:
            self.previous = signal.signal(signal.SIGTERM, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            signal.signal(signal.SIGTERM, self.previous)


def _dispatch(args: argparse.Namespace, console: Console, errors: Console) -> int:
    """The command, its BenchError as one line, a Ctrl-C as 130."""
    # a light command never imports bench.distributed (torch), and so never raises its Terminated
    distributed = sys.modules.get("bench.distributed")
    Terminated = distributed.Terminated if distributed is not None else ()
    launched = distributed.launched if distributed is not None else (lambda: False)
    try:
        return COMMANDS[args.command](args, console)
    except BenchError as exc:
        errors.print(f"[bold red]error:[/bold red] {escape(str(exc))}", soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        errors.print("[yellow]interrupted[/yellow]")
        return EXIT_INTERRUPTED
    except Terminated as exc:
        errors.print(f"[bold red]failed:[/bold red] {escape(str(exc))}; finished runs kept", soft_wrap=True)
        return EXIT_BROKEN
    except Exception as exc:
        if not launched():
            # a bug: its traceback, and exit 3 (something broke), never 1, which says a verdict FAILed
            import traceback

            traceback.print_exc()
            errors.print(f"[bold red]failed:[/bold red] an unexpected {type(exc).__name__} (a bench bug: the "
                         "traceback above says where; please report it)", soft_wrap=True)
            return EXIT_BROKEN
        # A rank's failure (a peer gone, a collective timed out) is recorded in the result file
        # with its traceback; every rank says it in one line, as the others may not know it.
        import os

        Console(stderr=True, highlight=False).print(
            f"[bold red]failed:[/bold red] rank {os.environ.get('RANK')}: {type(exc).__name__}: {escape(str(exc))}; "
            "the result file keeps the finished runs and the traceback", soft_wrap=True)
        return EXIT_BROKEN


if __name__ == "__main__":
    sys.exit(main())
