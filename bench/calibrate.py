"""`bench calibrate SUITE --runs N`: a target from seeds the verdicts never see.

Runs the suite N times as `bench run` does (the same runner, into a scratch folder), on seeds
B, B+1, ... (B = --seed-base, 1000 by default; the verdict seeds of `bench run` start at 0),
always to the end of the budget (a reach-mode suite would stop at the very target being
measured), then writes results/calibration/<suite>-<id>.json with the seeds, each run's
accuracy, the suite and its hash, the machine, the code, the rule and the target it implies,
and prints that target and the two lines a suite writes to cite it. `bench run` then refuses
to judge any of those seeds against the target.

Rule: the Q-quantile of the final accuracies (--quantile, default 0.1: the accuracy nine runs
in ten reach), rounded down to 0.001. Where the machine the verdicts run on differs from the
calibration's (a GPU suite calibrated on CPU), say so in the suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from bench.destinations import check_folder, path_argument
from bench.errors import EXIT_BROKEN, EXIT_INTERRUPTED, EXIT_OK, BenchError
from bench.record.build import now
from bench.record.calibration import FORMAT, KIND, citation, implied_target, seed_span, write_calibration
from bench.record.files import results_root
from bench.seeds import check_run_count, check_seeds
from bench.suites import Suite, load_suite

DEFAULT_SEED_BASE = 1000
DEFAULT_QUANTILE = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", help="a suite name from 'bench list', or a path to a .toml file")
    parser.add_argument("--runs", type=int, required=True, help="calibration runs (seeds); at least 2, 5 or more "
                                                                "for a target worth citing")
    parser.add_argument("--quantile", type=float, default=DEFAULT_QUANTILE,
                        help=f"the target is this quantile of the runs' accuracies (default {DEFAULT_QUANTILE})")
    parser.add_argument("--seed-base", type=int, default=DEFAULT_SEED_BASE,
                        help=f"first calibration seed (default {DEFAULT_SEED_BASE}); the range must miss the "
                             "suite's verdict seeds 0 .. runs-1")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to train (default: cuda when available)")
    parser.add_argument("--offline", action="store_true", help="never download data sets")
    parser.add_argument("--out", type=path_argument, metavar="DIR",
                        help="folder for the calibration file (default results/calibration, or "
                             "$BENCH_RESULTS/calibration)")


def check_arguments(args: argparse.Namespace, suite: Suite) -> None:
    """Bad input is one line before any training."""
    if args.runs < 2:
        raise BenchError(f"--runs {args.runs}: a calibration needs at least 2 runs (5 or more to be worth citing)")
    if not 0 < args.quantile < 1:
        raise BenchError(f"--quantile {args.quantile:g}: give a number between 0 and 1, e.g. 0.1")
    check_run_count(args.runs, "--runs")
    check_seeds(args.seed_base, args.runs, "--seed-base")
    verdict = set(range(suite.resolved["runs"]))
    seeds = set(range(args.seed_base, args.seed_base + args.runs))
    if args.seed_base < 0 or seeds & verdict:
        raise BenchError(f"--seed-base {args.seed_base}: the calibration seeds {args.seed_base}–"
                         f"{args.seed_base + args.runs - 1} must miss {suite.name}'s verdict seeds 0–"
                         f"{suite.resolved['runs'] - 1}; use --seed-base {DEFAULT_SEED_BASE}")


def calibration_run_suite(suite: Suite) -> Suite:
    """The suite as the calibration trains it: to the end of its budget, and citing no target
    source (these runs set the target; they are not judged against the one they replace)."""
    resolved = {**suite.resolved, "mode": "budget", "target_source": None}
    return dataclasses.replace(suite, resolved=resolved)


def train(args: argparse.Namespace, suite: Suite) -> dict:
    """The calibration's runs: one ordinary invocation into a scratch folder; its record."""
    from bench.progress import RichReporter
    from bench.runner import run_invocation

    with tempfile.TemporaryDirectory(prefix="bench-calibrate-") as scratch:
        record, _ = run_invocation(calibration_run_suite(suite), runs=args.runs, seed=args.seed_base,
                                   device_choice=args.device, results_dir=Path(scratch),
                                   reporter=RichReporter(Console(stderr=True, highlight=False)),
                                   offline=args.offline, command=["bench", *sys.argv[1:]])
    return record


def calibration_record(args: argparse.Namespace, suite: Suite, record: dict) -> dict:
    """The calibration file's content, from the invocation's record."""
    runs = [run for run in record["runs"] if run.get("status") == "complete"]
    accuracies = [run["accuracy"] for run in runs]
    target, rule = implied_target(accuracies, args.quantile)
    return {
        "kind": KIND, "format": FORMAT, "id": None, "created_at": now(),
        "suite": {"name": suite.name, "path": str(suite.path), "hash": suite.hash, "resolved": suite.resolved,
                  "target_before": suite.target, "mode_trained": "budget"},
        "seeds": [run["seed"] for run in runs],
        "accuracies": accuracies,
        "runs": [{"seed": run["seed"], "accuracy": run["accuracy"], "timed_s": run.get("timed_s")} for run in runs],
        "statistics": {"mean": statistics.fmean(accuracies), "std": statistics.stdev(accuracies),
                       "min": min(accuracies), "max": max(accuracies)},
        "rule": rule,
        "target": target,
        "device": record["invocation"]["device"],
        "env": record["env"],
        "code": record["code"],
        "command": ["bench", *sys.argv[1:]],
    }


def command(args: argparse.Namespace, console: Console) -> int:
    from bench.runner import Interrupted

    suite = load_suite(args.suite)
    check_arguments(args, suite)
    out = args.out if args.out is not None else results_root() / "calibration"
    check_folder(out, "--out")  # before the training, not after it
    try:
        record = train(args, suite)
    except Interrupted:
        console.print("[yellow]interrupted[/yellow]: no calibration file written")
        return EXIT_INTERRUPTED
    if record["status"] != "complete":
        console.print(f"[bold red]calibration stopped[/bold red]: the invocation ended {record['status']}; "
                      "no calibration file written", soft_wrap=True)
        return EXIT_BROKEN
    calibration = calibration_record(args, suite, record)
    path = write_calibration(out, suite.name, calibration)
    stats = calibration["statistics"]
    console.print(escape(f"{suite.name}: {len(calibration['seeds'])} runs, seeds {seed_span(calibration['seeds'])}: "
                         f"accuracies {', '.join(f'{a:.4f}' for a in calibration['accuracies'])} (mean "
                         f"{stats['mean']:.4f}, std {stats['std']:.4f})"), soft_wrap=True)
    console.print(escape(f"target {calibration['target']:g}: {calibration['rule']['text']} "
                         f"(the suite's target was {suite.target:g})"), soft_wrap=True)
    console.print(escape(f"wrote {path}; cite it in {suite.path}:"), soft_wrap=True)
    console.print(escape(f'target = {calibration["target"]:g}\ntarget_source = "{citation(path, suite.path)}"'),
                  soft_wrap=True)
    return EXIT_OK
