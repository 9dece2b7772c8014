"""Confirmation: the fastest trials again, on more seeds, still on the validation split.

A trial is one seed: the fastest of a dozen is likely one whose seed was lucky (the winner's
curse), above all for a recipe whose final accuracy swings from seed to seed (a high constant
learning rate). So before anything is verified on the test split, the --confirm-top fastest
trials that reached the target run again as one interleaved invocation each (bench.runner.run_race),
--confirm-runs seeds from CONFIRM_SEED_BASE (the same seeds for every candidate, none a trial's
or a verdict's), judged on validation against the trials' target without a time limit. The
chosen recipe is the fastest (median time to target) whose confirmation passes the suite's pass
rule; where none passes, the one with the highest mean validation accuracy, said so.
"""

from __future__ import annotations

from typing import Any

from bench.suites import suite_with

CONFIRM_SEED_BASE = 3_000_000  # trials use 2,000,000 + n, verdicts 0, 1, ..., calibration 1000 and up


def candidates(search: Any, top: int) -> list[Any]:
    import optuna

    done = search.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    better = (lambda t: t.value) if search.objective == "time" else (lambda t: -t.value)
    return sorted(done, key=better)[:top]


def confirm(search: Any, top: int, runs: int, reporter: Any) -> tuple[Any, dict[str, Any]]:
    """(the chosen trial, what the confirmation found: one row per candidate, the seeds, the rule)."""
    from bench.runner import run_race
    from bench.tune.search import decoded

    chosen = candidates(search, top)
    suites = [suite_with(search.suite.path, {**search.suite.overrides, **search.fixed(None), **decoded(search, t)},
                         f"{search.suite.path} (trial {t.number}, confirmation)") for t in chosen]
    results = run_race(suites, runs=runs, seed=CONFIRM_SEED_BASE, device_choice=search.device,
                       results_dir=search.folder / "confirm", reporter=reporter,
                       command=["bench", "tune", search.suite.name, "(confirmation)"])
    rows = []
    for trial, (record, path) in zip(chosen, results):
        agg = record.get("aggregate") or {}
        rows.append({"trial": trial.number, "trial_value": trial.value, "file": path.name if path else None,
                     "verdict": agg.get("verdict"), "mean_accuracy": agg.get("mean_accuracy"),
                     "median_time_s": agg.get("median_time_s"), "reached_runs": agg.get("reached_runs"),
                     "runs": len(record.get("runs", []))})
    passing = [r for r in rows if r["verdict"] == "PASS"]
    if passing:
        key = (lambda r: r["median_time_s"]) if search.objective == "time" else (lambda r: -r["mean_accuracy"])
        pick, rule = min(passing, key=key), "the fastest whose confirmation passes"
    else:
        pick = max(rows, key=lambda r: r["mean_accuracy"] or 0.0)
        rule = "none passed its confirmation: the highest mean validation accuracy"
    summary = {"seeds": list(range(CONFIRM_SEED_BASE, CONFIRM_SEED_BASE + runs)), "rows": rows,
               "chosen": pick["trial"], "rule": rule}
    return next(t for t in chosen if t.number == pick["trial"]), summary
