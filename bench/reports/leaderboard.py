"""`bench leaderboard`: per suite, the PASS invocations ranked by median time to target.

Ranked: complete invocations whose verdict is PASS under the suite's pass rule, fastest
median time to target (over the runs that reached it) first (ties: higher mean accuracy).
Invocations that failed the target, diverged, failed or were interrupted are listed
apart, with why, and never ranked: a leaderboard that mixed them in would reward
stopping early. Suites are told apart by name and target (a `--set target=...`
override makes a different race). Every invocation is judged against the target its suite has
today (bench.reports.rejudge): re-judged from its recorded accuracies where the recipe is
unchanged (budget mode), else listed apart as superseded. Each board says how its target was
set: derived from a calibration, a named goal, a reference, or none.

Writes LEADERBOARD.md and leaderboard.html (self-contained) into --out.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape

from bench.destinations import check_folder, path_argument
from bench.progress import RichReporter
from bench import formatting as fmt
from bench.errors import BenchError
from bench.record.files import load_results, results_root
from bench.reports.frame import BUSY_NOTE, ResultFrames, add_results_argument, busy_mark, frames
from bench.reports.rejudge import judge_today, todays_suites
from bench.reports.pages import write_report
from bench.reports.render import Part, ReportTable, table_rich

RANKED_COLUMNS = ["rank", "median time to target (IQR)", "median timed region", "mean accuracy ± 95% CI (pp)",
                  "runs", "verdict (runs ≥ target, pass rule)", "model", "hardware", "software", "energy / run",
                  "date", "code"]
APART_COLUMNS = ["status", "verdict (runs ≥ target, pass rule)", "why not ranked", "median time to target",
                 "median timed region", "mean accuracy", "runs", "model", "hardware", "software", "date", "code"]

SUPERSEDED_COLUMNS = ["suite", "recorded target", "today's target", "why not re-judged", "verdict then",
                      "mean accuracy", "hardware", "date", "code"]

RULES = ("Ranked: complete invocations with verdict PASS under the suite's pass rule (mean: mean top-1 over "
         "the runs ≥ target; every: each run ≥ target; fraction:P: at least a fraction P of the runs), by median "
         "time to target over the runs that reached the target (IQR in brackets; \"3 of 5 reached\" when not all "
         "did, — when none did). The timed region is the whole timed clock, reached or not (in budget mode the "
         "budget's time). Accuracy is the mean with its 95% confidence half-width in percentage points; energy is "
         "the mean NVML energy per run over the timed region (— where no NVML). Everything else is listed apart "
         "and never ranked. Every entry is judged against the target its suite has today: re-judged from its "
         "recorded accuracies where the recipe is unchanged, else listed apart as superseded.")


@dataclass
class SuiteBoard:
    suite: str
    target: float | None
    ranked: pd.DataFrame
    apart: pd.DataFrame
    source: str = ""  # where the target comes from, as the newest result file records it

    @property
    def title(self) -> str:
        return self.suite + ("" if fmt.missing(self.target) else f" — target {fmt.percent(self.target)}")

    @property
    def anchor(self) -> str:
        target = "" if fmt.missing(self.target) else f"-{self.target:g}"
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.suite}{target}")


def why_not_ranked(row: pd.Series) -> str:
    if row["status"] == "failed":
        return "failed: " + (fmt.text(row["error"]) if not fmt.missing(row["error"]) else "error not recorded")
    if row["status"] == "diverged":
        return "diverged: a run's loss became NaN or infinite"
    if row["status"] == "interrupted":
        planned = "" if fmt.missing(row["planned_runs"]) else f" of {int(row['planned_runs'])}"
        return f"interrupted after {int(row['complete_runs'] or 0)}{planned} runs"
    if row["verdict"] != "PASS":
        if fmt.missing(row["mean_accuracy"]):
            return "no run finished"
        if fmt.text(row["pass_rule"]) in ("mean", fmt.MISSING):
            return f"mean accuracy {fmt.percent(row['mean_accuracy'])} below the target {fmt.percent(row['target'])}"
        return f"{fmt.percent(row['pass_fraction'], 0)} of the runs reached the target: rule {row['pass_rule']} not met"
    return "no time to target recorded"


def is_ranked(invocations: pd.DataFrame) -> pd.Series:
    return ((invocations["status"] == "complete") & (invocations["verdict"] == "PASS")
            & pd.to_numeric(invocations["median_time_s"], errors="coerce").notna())


def build_boards(found: ResultFrames, records: dict[str, dict] | None = None,
                 suites: dict[str, Any] | None = None) -> tuple[list[SuiteBoard], pd.DataFrame]:
    """The boards, and the superseded invocations (judged under a target their suite no longer
    has, and not re-judgeable) where `suites` (today's) and `records` (by id) are given."""
    inv = found.invocations.copy()
    superseded = pd.DataFrame()
    if suites is not None and records is not None:
        inv, superseded = judge_today(inv, records, suites)
    else:
        inv["rejudged_from"] = None
    inv["median_time_s"] = pd.to_numeric(inv["median_time_s"], errors="coerce")
    inv["mean_accuracy"] = pd.to_numeric(inv["mean_accuracy"], errors="coerce")
    inv["ranked"] = is_ranked(inv)
    boards = []
    for (suite, target), group in inv.groupby(["suite", "target"], dropna=False, sort=True):
        ranked = group[group["ranked"]].sort_values(["median_time_s", "mean_accuracy", "started_at"],
                                                    ascending=[True, False, True], kind="stable")
        apart = group[~group["ranked"]].sort_values("started_at", ascending=False, kind="stable")
        source = group.sort_values("started_at", kind="stable")["target_source"].iloc[-1]
        boards.append(SuiteBoard(str(suite), None if fmt.missing(target) else float(target), ranked, apart,
                                 fmt.text(source)))
    return boards, superseded


def _model(row: pd.Series) -> str:
    if fmt.missing(row["params"]):
        return fmt.text(row["model"])
    # a sparse network shows what it computes with beside what it stores; only counts of trained
    # networks (results that carry active_fraction) are shown, not an older file's count at init
    active = None if fmt.missing(row["active_fraction"]) else row["active_params"]
    shown = "" if fmt.missing(active) or int(active) == int(row["params"]) else \
        f", {fmt.si(active)} active ({fmt.percent(active / row['params'])})"
    return fmt.text(row["model"]) + f" ({fmt.si(row['params'])} params{shown})"


def _overrides(row: pd.Series) -> str:
    return "" if row["overrides"] in ("{}", None) else f" [overrides {row['overrides']}]"


def _time(row: pd.Series) -> str:
    return fmt.time_to_target(row["median_time_s"], row["iqr_time_s"], row["timed_runs"],
                              row["complete_runs"]) + busy_mark(row)


def _verdict(row: pd.Series) -> str:
    again = row.get("rejudged_from")
    return fmt.verdict(row["verdict"], row["pass_fraction"], row["pass_rule"]) + (
        "" if fmt.missing(again) else f" (re-judged: recorded under {fmt.percent(again)})")


def superseded_table(superseded: pd.DataFrame) -> ReportTable:
    table = ReportTable("Superseded: judged under a target the suite no longer has", SUPERSEDED_COLUMNS,
                        anchor="superseded", note="Never ranked: their runs cannot be judged against today's "
                                                  "target (bench.reports.rejudge says when they can).")
    for _, row in superseded.sort_values(["suite", "started_at"], kind="stable").iterrows():
        table.add([row["suite"], fmt.percent(row["target"]), fmt.percent(row["today"]), row["why"], _verdict(row),
                   fmt.percent(row["mean_accuracy"]), row["machine"], fmt.text(row["date"]), row["code"]],
                  style="muted")
    return table


def board_tables(board: SuiteBoard) -> tuple[ReportTable, ReportTable]:
    ranked = ReportTable(board.title, RANKED_COLUMNS, anchor=f"ranked-{board.anchor}",
                         note=f"target source: {board.source}")
    for rank, (_, row) in enumerate(board.ranked.iterrows(), start=1):
        ranked.add([str(rank), _time(row), fmt.seconds(row["median_timed_s"]),
                    fmt.accuracy_with_ci(row["mean_accuracy"], row["ci_half_width"]),
                    fmt.runs_count(row["complete_runs"], row["runs"]), _verdict(row),
                    _model(row) + _overrides(row), row["machine"], row["software"], fmt.energy(row["mean_energy_j"]),
                    fmt.text(row["date"]), row["code"]])
    apart = ReportTable(f"{board.title}: not ranked", APART_COLUMNS, anchor=f"apart-{board.anchor}", level=3)
    for _, row in board.apart.iterrows():
        apart.add([row["status"], _verdict(row), why_not_ranked(row), _time(row), fmt.seconds(row["median_timed_s"]),
                   fmt.percent(row["mean_accuracy"]), fmt.runs_count(row["complete_runs"], row["runs"]),
                   _model(row) + _overrides(row), row["machine"], row["software"], fmt.text(row["date"]),
                   row["code"]], style="muted")
    return ranked, apart


def report_parts(boards: list[SuiteBoard], superseded: pd.DataFrame | None = None) -> list[Part]:
    """The page in reading order: the rules, then per suite its ranked table and (when any) the
    entries listed apart, then the superseded entries."""
    parts: list[Part] = [RULES]
    if any((b.ranked["busy_runs"].fillna(0) > 0).any() or (b.apart["busy_runs"].fillna(0) > 0).any() for b in boards):
        parts.append(BUSY_NOTE)  # only where a run is marked: pages of results without a load stay as they were
    for board in boards:
        ranked, apart = board_tables(board)
        parts.append(ranked)
        if apart.rows:
            parts.append(apart)
    if superseded is not None and len(superseded):
        parts.append(superseded_table(superseded))
    return parts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_argument(parser)
    parser.add_argument("--out", type=path_argument, metavar="DIR",
                        help="where LEADERBOARD.md and leaderboard.html go (default: the --results folder)")


def command(args: argparse.Namespace, console: Console) -> int:
    source = args.results or results_root()
    out = args.out or (source if source.is_dir() else source.parent)
    check_folder(out, "--out")  # before the reading: a place that takes no files is one line
    # notices on stderr, the report on stdout
    results = load_results(source, RichReporter())  # notices on stderr, the report on stdout
    if not results:
        raise BenchError(f"no result files in {source}; make some with 'bench run SUITE' or point --results "
                         "at a folder of result JSONs")
    boards, superseded = build_boards(frames(results), {r.record["id"]: r.record for r in results}, todays_suites())
    parts = report_parts(boards, superseded)
    markdown, page = write_report(out, "Leaderboard", parts, ("LEADERBOARD.md", "leaderboard.html"))
    for part in parts:
        if isinstance(part, ReportTable):
            console.print(table_rich(part))
    console.print(escape(f"wrote {markdown} and {page}"))
    return 0
