"""Results judged under a target their suite no longer has (the leaderboard, bench.reports.leaderboard).

A suite's target changes (a calibration replaces a guess, a goal is named), and its old result
files keep the verdict of the old target. A leaderboard that ranked them beside today's would
compare two races. So every invocation is judged against the target its suite has today:

- the same target: as recorded;
- another target, a budget-mode recipe unchanged in every key both the record and today's suite
  hold (every key but the target, its source, the description, the run count and the devices):
  re-judged from the recorded accuracies, as bench.record.stats.aggregate judges a fresh
  invocation (a run reached today's target when its final accuracy is at or above it; its time
  to it is the budget's timed region, as budget mode reports it);
- another target otherwise (reach mode stopped at the old target, so its runs say nothing of
  today's; or the recipe changed): listed apart as superseded, with why, and never ranked;
- a suite that is no longer shipped: as recorded.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.errors import BenchError
from bench.record.calibration import source_text, target_kind
from bench.record.stats import aggregate

NOT_RECIPE = ("name", "description", "target", "target_source", "runs", "provisional", "devices")


def todays_suites() -> dict[str, Any]:
    """The shipped suites by name, as they are today (unloadable ones left out)."""
    from bench.suites import available_suites, load_suite

    out = {}
    for name, path in available_suites().items():
        try:
            out[name] = load_suite(str(path))
        except BenchError:
            continue
    return out


def _same(old: Any, new: Any) -> bool:
    """Equal in every key both hold (a key bench added since, with its default, is not a change)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return all(_same(old[k], new[k]) for k in old.keys() & new.keys())
    return old == new


def same_recipe(old: dict[str, Any], new: dict[str, Any]) -> bool:
    strip = (lambda d: {k: v for k, v in d.items() if k not in NOT_RECIPE})
    return _same(strip(old), strip(new))


def target_words(suite: Any) -> str:
    """Today's target source in words, with how it was set (derived, goal, reference, none)."""
    try:
        text = source_text(suite)
    except BenchError as exc:  # a cited calibration file that is missing or invalid: said, not hidden
        text = f"INVALID: {exc}"
    kind = target_kind(suite.target_source)
    return text if text.startswith(("derived", "goal")) else f"{kind}: {text}"


def _rejudged(record: dict[str, Any], target: float, pass_rule: str) -> dict[str, Any]:
    runs = [{**run, "time_to_target_s": run.get("timed_s") if (run.get("accuracy") or 0) >= target else None}
            for run in record.get("runs") or [] if isinstance(run, dict)]
    agg = aggregate(runs, target, pass_rule)
    return {"target": target, "verdict": agg["verdict"], "pass_fraction": agg["pass_fraction"],
            "median_time_s": agg["median_time_s"], "iqr_time_s": agg["iqr_time_s"],
            "timed_runs": agg["reached_runs"]}


def judge_today(invocations: pd.DataFrame, records: dict[str, dict[str, Any]], suites: dict[str, Any]
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the invocations judged against today's targets, the superseded ones with `why`). Rows of a
    re-judged invocation say the target they were recorded under (`rejudged_from`)."""
    inv = invocations.copy()
    inv["rejudged_from"] = None
    superseded = []
    for i, row in inv.iterrows():
        suite, record = suites.get(row["suite"]), records.get(row["id"])
        if suite is None or record is None or pd.isna(row["target"]):
            continue
        inv.at[i, "target_source"] = target_words(suite)
        if abs(float(row["target"]) - suite.target) < 1e-9:
            continue
        old = (record.get("suite") or {}).get("resolved") or {}
        if row["mode"] == "budget" and same_recipe(old, suite.resolved):
            inv.at[i, "rejudged_from"] = float(row["target"])
            for key, value in _rejudged(record, suite.target, suite.resolved["pass_rule"]).items():
                inv.at[i, key] = value
            continue
        why = ("reach mode: its runs stopped at the old target, so they say nothing of today's"
               if row["mode"] == "reach" else "the recipe changed since")
        superseded.append({**row.to_dict(), "today": suite.target, "why": why})
    gone = {r["id"] for r in superseded}
    return inv[~inv["id"].isin(gone)], pd.DataFrame(superseded)
