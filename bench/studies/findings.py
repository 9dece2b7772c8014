"""A study's Findings: sentences computed from its finished cells, never typed by hand, so a rerun
rewrites them (bench.studies.report puts them last, under "Findings").

What they say, in order:
- the best point (the report's ranking: chosen on validation where the study holds out a split)
  with its mean test top-1 and the 95% CI of that mean, or "no interval" below MIN_SEEDS_FOR_CI seeds;
- per axis: its best value against the runner-up, each value at its own best point (highest mean
  validation top-1, else test), the difference of their mean test top-1 with the 95% CI of the
  difference (Welch, bench.record.stats), and a verdict: "better" when the interval excludes 0,
  else "tied within noise"; every value tied with the best is listed;
- per tuned numeric axis (a learning rate, a weight decay: not the conditions a study varies to see
  their effect, CONDITION_AXES), the best value for each combination of the other axes' values, and
  a flag in words when it lies at the smallest or largest value tried there (the optimum may lie
  beyond the grid); 0 at the low edge is not flagged, as nothing lies below it;
- the questions particular studies ask (bench.studies.findings_questions): a sparse network
  against a dense one narrowed to its active parameters; accuracy, time and memory per BPTT mode;
  the network sizes compared at each training-set size; a linked value (the scaling rule's rate)
  against the other values at the same partner value, by time to target;
- time: compared only between cells run under the same concurrency (study.concurrency, the cells a
  sweep ran at once) on the same hardware; otherwise the sentence says times are not comparable;
- what the data cannot answer (too few seeds for any interval; every axis tied), said plainly.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench import formatting as fmt
from bench.studies.compare import (best_of, finished_points, interval_words, per_value_best, signed_points,
                                   split_words, difference_on_test, verdict)
from bench.studies.figures import MIN_SEEDS_FOR_CI, StudyFrames, best_point
from bench.studies.findings_questions import (linked_arm_sentences, narrowed_dense_sentences, per_size_sentences,
                                              per_value_sentences)
from bench.studies.study import Study, value_label

# numeric axes studied as conditions (their effect is the question), not tuned: their best at an
# edge of the grid is a finding, not a sign that the grid is too narrow
CONDITION_AXES = ("dataset.", "model.", "recipe.batch_size", "recipe.epochs", "recipe.sparsity")


def findings(study: Study, data: StudyFrames) -> list[str]:
    """The study's findings, one sentence (or a few) per item; the first is the best point's."""
    best = best_point(data)
    if best is None:
        return ["No cell has finished yet: there is nothing to find."]
    comparisons = [_axis_comparison(study, data, axis) for axis in study.axes]
    out = [_best_sentence(study, data, best)]
    out += [text for text, _ in filter(None, comparisons)]
    out += narrowed_dense_sentences(study, data)  # the sparsity study's question
    out += per_value_sentences(study, data, comparable_times(data) is None)  # e.g. per BPTT mode
    out += per_size_sentences(study, data)  # data size x network size
    out += linked_arm_sentences(study, data)  # e.g. the linear scaling rule against a fixed rate, by time
    out += edge_sentences(study, data)
    out.append(time_sentence(data))
    out += _limits(data, [verdict for _, verdict in filter(None, comparisons)])
    return out


# ---------------------------------------------------------------- per point ----

def _point_words(study: Study, row: pd.Series, leave_out: str | None = None) -> str:
    return ", ".join(f"{axis} = {row[f'axis:{axis}']}" for axis in study.axes if axis != leave_out)


def _best_sentence(study: Study, data: StudyFrames, best: pd.Series) -> str:
    split = "validation" if data.on_validation else "test"
    how = (f"highest mean {split} top-1, {split_words(data)}" if study.rank == "accuracy" else
           f"fastest median time to target among the points whose every seed reached it, then mean {split} top-1")
    return (f"Best point ({how}): {_point_words(study, best)}, with a mean test top-1 of "
            f"{fmt.percent(best['mean_accuracy'])} ({interval_words(best['ci_low'], best['ci_high'], int(best['complete']))}).")


# ---------------------------------------------------------------- per axis ----

def _axis_comparison(study: Study, data: StudyFrames, axis: str) -> tuple[str, str] | None:
    """The axis's best value against its runner-up, each at its own best point; with the verdict."""
    finished = finished_points(data)
    column = f"axis:{axis}"
    per_value = per_value_best(finished, column, data.chosen_on)
    if len(per_value) < 2:
        return None
    best, runner = per_value[0], per_value[1]
    where = (lambda row: f" (at {_point_words(study, row, axis)})") if len(study.axes) > 1 else (lambda row: "")
    difference, interval = difference_on_test(data, best, runner)
    head = (f"{axis}: {best[column]}{where(best)} against the runner-up {runner[column]}{where(runner)}, each at its "
            f"own best point ({split_words(data)}): mean test top-1 {fmt.percent(best['mean_accuracy'])} against "
            f"{fmt.percent(runner['mean_accuracy'])}, a difference of {signed_points(difference)}")
    found = verdict(interval)
    if found == "unjudged":
        seeds = f"{int(best['complete'])} and {int(runner['complete'])}"
        return (head + f"; no interval (fewer than {MIN_SEEDS_FOR_CI} seeds: {seeds} here), so the data cannot say "
                       f"whether {best[column]} is better.", found)
    words = {"better": f"{best[column]} is better", "tied": "tied within noise",
             "worse": f"{runner[column]} is better on test, though {best[column]} was chosen on validation"}[found]
    text = (f"{head} (95% CI of the difference {signed_points(interval[0])} to {signed_points(interval[1])}, "
            f"Welch): {words}.")
    return text + " " + _ties_words(data, column, best, per_value[1:]), found


def _ties_words(data: StudyFrames, column: str, best: pd.Series, others: list[pd.Series]) -> str:
    tied, unjudged, beyond = [], [], []
    for row in others:
        found = verdict(difference_on_test(data, best, row)[1])
        {"tied": tied, "unjudged": unjudged, "worse": beyond}.get(found, []).append(str(row[column]))
    text = (f"Tied with {best[column]}: {', '.join(tied)}." if tied
            else f"No value ties with {best[column]}.")
    if beyond:  # the validation choice is not backed on test
        text += f" Better than {best[column]} on test: {', '.join(beyond)}."
    if unjudged:
        text += f" Not judged (fewer than {MIN_SEEDS_FOR_CI} seeds): {', '.join(unjudged)}."
    return text


# ---------------------------------------------------------------- grid edges ----

def tuned_numeric_axes(study: Study) -> list[str]:
    """Axes of numbers (not booleans) that are tuned, not conditions (CONDITION_AXES) and not
    linked to another axis (a linked value is set by its partner, as the scaling rule's rate)."""
    linked = {axis for group in study.links for axis in group}
    return [axis for axis, values in study.axes.items()
            if len(values) > 1 and not axis.startswith(CONDITION_AXES) and axis not in linked
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)]


def _group_words(study: Study, axis: str, labels: tuple[str, ...]) -> tuple[str, str]:
    """How a combination of the other axes' values reads: (its name, the start of its sentence).
    One other axis of words reads "adam's best"; anything else "At recipe.l1 = 0, the best"."""
    others = [a for a in study.axes if a != axis]
    if not others:
        return "", "The best"
    if len(others) == 1 and all(isinstance(v, str) for v in study.axes[others[0]]):
        return labels[0], f"{labels[0]}'s best"
    name = ", ".join(f"{a} = {label}" for a, label in zip(others, labels))
    return name, f"At {name}, the best"


def edge_sentences(study: Study, data: StudyFrames) -> list[str]:
    """Per tuned numeric axis: each group's best value (on validation), and a flag for each at an edge."""
    finished = finished_points(data)
    raw = {point.identity: point.axes for point in study.points}
    out = []
    for axis in tuned_numeric_axes(study):
        others = [a for a in study.axes if a != axis]
        tried: dict[tuple[str, ...], set[float]] = {}
        for point in study.points:  # the values planned per group: the grid, finished or not
            key = tuple(value_label(point.axes[a]) for a in others)
            tried.setdefault(key, set()).add(float(point.axes[axis]))
        bests, flags = [], []
        groups = finished.groupby([f"axis:{a}" for a in others], sort=False) if others else [((), finished)]
        for key, group in sorted(groups, key=lambda item: item[1]["order"].min()):  # in the study's order
            key = key if isinstance(key, tuple) else (key,)
            values = sorted(tried.get(key, ()))
            if len(values) < 2:
                continue
            best = best_of(group, data.chosen_on)
            value = float(raw[best["point"]][axis])
            name, start = _group_words(study, axis, key)
            bests.append(f"{name}: {best[f'axis:{axis}']}" if name else str(best[f"axis:{axis}"]))
            edge = "smallest" if value == values[0] and value != 0 else ("largest" if value == values[-1] else None)
            if edge:
                flags.append(f"{start} {axis}, {best[f'axis:{axis}']}, is the {edge} value tried "
                             f"({value_label(values[0])} to {value_label(values[-1])}): the optimum may lie beyond "
                             "the grid; widen it.")
        if not bests:
            continue
        per = f" per {', '.join(others)}" if others else ""
        out.append(f"Best {axis}{per} ({split_words(data)}): {'; '.join(bests)}.")
        out += flags or [f"No best {axis} lies at an edge of its grid."]
    return out


# ---------------------------------------------------------------- time and concurrency ----

def _concurrency_counts(data: StudyFrames) -> tuple[dict[int, int], int]:
    """Cells per recorded concurrency, and cells without one (files from before it was recorded)."""
    done = data.cells[data.cells["state"] == "done"]
    known = pd.to_numeric(done["concurrency"], errors="coerce")
    counts = {int(n): int(c) for n, c in known.dropna().value_counts().sort_index().items()}
    return counts, int(known.isna().sum())


def _counts_words(counts: dict[int, int]) -> str:
    return "; ".join(f"{n} at a time: {c} cell{'s' if c != 1 else ''}" for n, c in counts.items())


def concurrency_line(data: StudyFrames) -> str | None:
    """The report header's line on how many cells ran at once; None before any cell is done."""
    counts, unknown = _concurrency_counts(data)
    if not counts and not unknown:
        return None
    if unknown and not counts:
        return ("Concurrency not recorded: these cells' results do not say how many cells ran at once (files from "
                "before bench sweep recorded it, or cells placed by Ray or SLURM), so their times are not compared.")
    if len(counts) == 1 and not unknown:
        n = next(iter(counts))
        return f"Cells ran {n} at a time (bench sweep's workers on one machine): their times compare."
    missing = f"; not recorded: {unknown} cell{'s' if unknown != 1 else ''}" if unknown else ""
    return (f"Cells ran at different concurrency ({_counts_words(counts)}{missing}): times compare only between "
            "cells that ran alike.")


def comparable_times(data: StudyFrames) -> str | None:
    """Why the study's times cannot be compared with each other; None when they can."""
    counts, unknown = _concurrency_counts(data)
    if unknown:
        return (f"how many cells ran at once is not recorded for {unknown} cell{'s' if unknown != 1 else ''}, so "
                "their times may hold the contention of cells run beside them")
    if len(counts) > 1:
        return f"the cells ran at different concurrency ({_counts_words(counts)})"
    machines = set(data.cells.loc[data.cells["state"] == "done", "hardware"].dropna())
    if len(machines) > 1:
        return f"the cells ran on different machines ({'; '.join(sorted(map(str, machines)))})"
    return None


def time_sentence(data: StudyFrames) -> str:
    """Time to target compared between points, only where every cell ran alike."""
    why = comparable_times(data)
    if why is not None:
        return f"Times are not comparable: {why}."
    finished = data.points[data.points["complete"] > 0]
    reached = finished[finished["all_reached"] & finished["median_reach_time_s"].notna()]
    alike = "every cell ran alike (same machine, same concurrency)"
    if reached.empty:
        timed = finished[finished["median_timed_s"].notna()].sort_values("median_timed_s", kind="stable")
        if timed.empty:
            return "Time: no point reached the target with every seed, and no timed region was recorded."
        return (f"Time ({alike}): no point reached the target with every seed; median timed regions run from "
                f"{fmt.seconds(timed.iloc[0]['median_timed_s'])} ({timed.iloc[0]['label']}) to "
                f"{fmt.seconds(timed.iloc[-1]['median_timed_s'])} ({timed.iloc[-1]['label']}).")
    ordered = reached.sort_values(["median_reach_time_s", "order"], kind="stable")
    fastest = ordered.iloc[0]
    text = (f"Time ({alike}): of the {len(reached)} point{'s' if len(reached) != 1 else ''} whose every seed reached "
            f"the target, the fastest is {fastest['label']}, {fmt.seconds(fastest['median_reach_time_s'])} median to "
            f"it")
    if len(ordered) > 1:
        slowest = ordered.iloc[-1]
        text += f"; the slowest {slowest['label']}, {fmt.seconds(slowest['median_reach_time_s'])}"
    return text + "."


# ---------------------------------------------------------------- what the data cannot answer ----

def _limits(data: StudyFrames, verdicts: list[str]) -> list[str]:
    out = []
    finished = data.points[data.points["complete"] > 0]
    few = int((finished["complete"] < MIN_SEEDS_FOR_CI).sum())
    if few:
        least = int(finished["complete"].min())
        out.append(f"The data cannot settle these questions at {few} of {len(finished)} points: they have fewer than "
                   f"{MIN_SEEDS_FOR_CI} seeds (as few as {least}), so they have no interval and no verdict; rerun "
                   f"with at least {MIN_SEEDS_FOR_CI} seeds.")
    judged = [v for v in verdicts if v != "unjudged"]
    if judged and all(v != "better" for v in judged):
        out.append("No axis's best value is better than its runner-up in test top-1 beyond noise: at these seeds "
                   "the data cannot tell the values of any axis apart by accuracy.")
    return out
