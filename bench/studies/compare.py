"""Comparing two points of a study, the words the Findings use for it (bench.studies.findings for
every study, bench.studies.findings_questions for the questions particular studies ask): the
finished points, the best of a set, the difference of two points' mean test top-1 with its Welch
95% CI (none below MIN_SEEDS_FOR_CI seeds) and the verdict that interval gives."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench import formatting as fmt
from bench.record.stats import welch_diff_ci95
from bench.studies.figures import MIN_SEEDS_FOR_CI, StudyFrames


def split_words(data: StudyFrames) -> str:
    return "chosen on validation" if data.on_validation else "chosen on test, without a validation split"


def seed_accuracies(data: StudyFrames, point: str) -> list[float]:
    """The per-seed final test top-1 of a point's complete cells."""
    cells = data.cells[(data.cells["point"] == point) & (data.cells["state"] == "done")
                       & (data.cells["status"] == "complete")]
    return [float(v) for v in pd.to_numeric(cells["accuracy"], errors="coerce").dropna()]


def interval_words(low: Any, high: Any, seeds: int) -> str:
    if fmt.missing(low) or seeds < MIN_SEEDS_FOR_CI:
        return f"no interval: fewer than {MIN_SEEDS_FOR_CI} seeds, {seeds} here"
    return f"95% CI {fmt.percent(low)}–{fmt.percent(high)}, {seeds} seeds"


def finished_points(data: StudyFrames) -> pd.DataFrame:
    """The points with a complete cell and both the chosen-on and the test mean."""
    points = data.points
    return points[(points["complete"] > 0) & points[data.chosen_on].notna() & points["mean_accuracy"].notna()]


def best_of(points: pd.DataFrame, on: str) -> pd.Series:
    """The highest mean on `on`; ties by the study's point order."""
    return points.sort_values([on, "order"], ascending=[False, True], kind="stable").iloc[0]


def per_value_best(points: pd.DataFrame, column: str, on: str) -> list[pd.Series]:
    """Each value of `column` at its own best point (highest mean on `on`), best first; ties by
    the study's point order."""
    rows = [best_of(group, on) for _, group in points.groupby(column, sort=False)]
    return sorted(rows, key=lambda row: (-row[on], row["order"]))


def difference_on_test(data: StudyFrames, a: pd.Series, b: pd.Series) -> tuple[float | None, list[float] | None]:
    """Mean test top-1 of point a minus that of b, with the Welch 95% CI (none below MIN_SEEDS_FOR_CI seeds)."""
    first, second = seed_accuracies(data, a["point"]), seed_accuracies(data, b["point"])
    difference, interval = welch_diff_ci95(first, second)
    if min(len(first), len(second)) < MIN_SEEDS_FOR_CI:
        interval = None
    return difference, interval


def verdict(interval: list[float] | None) -> str:
    """better: the interval of (best - other) lies above 0; worse: below it; tied: it holds 0;
    unjudged: no interval."""
    if interval is None:
        return "unjudged"
    if interval[0] > 0:
        return "better"
    return "worse" if interval[1] < 0 else "tied"


def signed_points(difference: float) -> str:
    return f"{100 * difference:+.2f} points"
