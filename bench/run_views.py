"""What `bench run` says when it is done: the tables, one line a suite (--quiet), the summary
JSON (--json), or what a --dry-run checked."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.markup import escape

from bench.distributed import main_process_output
from bench.errors import EXIT_OK


def say_finished(args: argparse.Namespace, finished: list, console: Console) -> None:
    """The runs' tables (or one line each with --quiet), and the summary JSON with --json."""
    from bench.api import RunResult
    from bench.summary import aggregate_table, policy_line, runs_table, warnings

    results = [RunResult(suite=record["suite"]["name"], status=record["status"], runs=record["runs"], path=path,
                         verdict=record["aggregate"].get("verdict"), aggregate=record["aggregate"], record=record)
               for record, path in finished]
    for result in results:
        if args.quiet:
            quiet = Console(highlight=False, stderr=args.json, quiet=not main_process_output())
            quiet.print(escape(f"{result.suite}: {result.verdict or result.status} -> {result.path}"), soft_wrap=True)
            for line in warnings(result.record):  # a loaded run is said even here: its time is suspect
                quiet.print(f"warning: {escape(line)}", soft_wrap=True)
            continue
        console.print(runs_table(result.record))
        console.print(aggregate_table(result.record))
        policy = policy_line(result.record)
        if policy:
            console.print(escape(policy), soft_wrap=True)
        for line in warnings(result.record):
            console.print(f"[yellow]warning[/yellow]: {escape(line)}", soft_wrap=True)
        console.print(f"result: {escape(str(result.path))}")
    if args.json and main_process_output():  # of several ranks, rank 0 alone speaks
        summaries = [result.summary() for result in results]
        print(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=1, allow_nan=False))


def dry_run_command(args: argparse.Namespace, suites: list, runs: int | None, console: Console) -> int:
    from bench.dry_run import describe, dry_run
    from bench.progress import NullReporter, RichReporter
    from bench.record.files import default_results_dir

    reporter = NullReporter() if args.quiet else RichReporter(Console(stderr=True, highlight=False))
    checked = dry_run(suites, runs=runs, seed=args.seed, device_choice=args.device, offline=args.offline,
                      results_dir=args.results or default_results_dir(), reporter=reporter, loader=args.loader)
    for check in checked:
        console.print(f"[green]dry run[/green]: {escape(describe(check))}", soft_wrap=True)
    if args.json:
        print(json.dumps(checked[0] if len(checked) == 1 else checked, indent=1))
    return EXIT_OK
