"""Comparing two points of a study, the words the Findings use for it (bench.studies.findings for
every study, bench.studies.findings_questions for the questions particular studies ask): the
finished points, the best of a set, the points that hold the other axes fixed, and THE tie rule.

The tie rule (DESIGN section 9), defined here once and used by the report's header, its points
table and every Finding: a value ties with the best when its mean lies within the best one's 95%
interval (Student t over the best one's seeds, none below MIN_SEEDS_FOR_CI seeds), on the split
the choice is made on (validation where the study holds one out). Outside it, below: the best is
better; above: the other is (possible where the best was chosen by time, or the two splits
disagree).

A Finding is a sentence that carries, as data, the splits of the numbers it compares
(`Finding.compares`): a test reads it there, not in the prose, and fails on a Finding that
compares numbers from two splits (a validation mean against a target set on test, say)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench import formatting as fmt
from bench.record.stats import mean_ci95, welch_diff_ci95
from bench.studies.figures import MIN_SEEDS_FOR_CI, StudyFrames


class Finding(str):
    """One Finding's sentence, with the splits of the numbers it compares ("validation", "test";
    empty for one that compares no accuracies, a time or a count). A str, so a report prints it."""
    compares: frozenset[str]

    def __new__(cls, text: str, compares: Any = ()) -> "Finding":
        found = super().__new__(cls, text)
        found.compares = frozenset(compares)
        return found


# the split a suite's target is set on: calibration measures final top-1 on the test split
# (bench.calibrate), as the verdict does
TARGET_SPLIT = "test"


def chosen_split(data: StudyFrames) -> str:
    return "validation" if data.on_validation else "test"


def split_words(data: StudyFrames) -> str:
    return "chosen on validation" if data.on_validation else "chosen on test, without a validation split"


def seed_accuracies(data: StudyFrames, point: str, split: str = "test") -> list[float]:
    """The per-seed final top-1 on `split` of a point's complete cells."""
    cells = data.cells[(data.cells["point"] == point) & (data.cells["state"] == "done")
                       & (data.cells["status"] == "complete")]
    column = "validation_accuracy" if split == "validation" else "accuracy"
    return [float(v) for v in pd.to_numeric(cells[column], errors="coerce").dropna()]


def judge(best: list[float], other: list[float]) -> tuple[str, list[float] | None]:
    """THE tie rule: `other` (per-seed values) against `best` (per-seed values) by where other's mean
    lies in best's 95% interval. Returns the verdict (better: best is; worse: other is; tied;
    unjudged: best has fewer than MIN_SEEDS_FOR_CI values, or other none) and best's interval."""
    if len(best) < MIN_SEEDS_FOR_CI or not other:
        return "unjudged", None
    interval = mean_ci95(best)[1]
    mean = sum(other) / len(other)
    if mean < interval[0]:
        return "better", interval
    return ("worse" if mean > interval[1] else "tied"), interval


def judge_points(data: StudyFrames, best: pd.Series, other: pd.Series) -> tuple[str, list[float] | None]:
    """The tie rule between two points, on the split the study chooses on."""
    split = chosen_split(data)
    return judge(seed_accuracies(data, best["point"], split), seed_accuracies(data, other["point"], split))


def held_fixed(points: pd.DataFrame, axes: list[str], at: pd.Series) -> pd.DataFrame:
    """The points whose values of `axes` are those of the point `at` (every other axis free)."""
    if not axes:
        return points
    return points[(points[[f"axis:{a}" for a in axes]] == [at[f"axis:{a}"] for a in axes]).all(axis=1)]


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
