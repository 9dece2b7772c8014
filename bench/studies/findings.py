"""A study's Findings: sentences computed from its finished cells, never typed by hand, so a rerun
rewrites them (bench.studies.report puts them last, under "Findings").

What they say, in order:
- the best point (the report's ranking: chosen on validation where the study holds out a split)
  with its mean test top-1 and the 95% CI of that mean, or "no interval" below MIN_SEEDS_FOR_CI seeds;
- per axis: the best point's value against the runner-up with every other axis held at the best
  point's values (so the comparison never crosses another axis; where no other value was run
  there, each value at its own best of the tuned axes, named, or no comparison), judged by THE tie
  rule (bench.studies.compare.judge: the runner-up's mean within the best one's 95% CI ties) on the
  split the study chooses on, the test figures reported beside; every value tied with the best is
  listed. In reach mode final accuracies are taken at different epochs, so they are not compared;
- per tuned numeric axis (a learning rate, a weight decay: not the conditions a study varies to see
  their effect, CONDITION_AXES), the best value for each combination of the other axes' values, and
  a flag in words when it lies at the smallest or largest value tried there (the optimum may lie
  beyond the grid); 0 at the low edge is not flagged, as nothing lies below it;
- the questions particular studies ask (bench.studies.findings_questions): a sparse network
  against a dense one narrowed to its active parameters; accuracy, time and memory per BPTT mode;
  the network sizes compared at each training-set size; a linked value (the scaling rule's rate)
  against the other values at the same partner value, by time to target;
- time: compared only where the cells ran alike (bench.studies.timing: one concurrency, no overlap
  beyond it, no high load, not in the grid's order, one machine); otherwise the sentence says times
  are not comparable and why. Budget mode ranks the first crossing, not the budget's timed region;
- what the data cannot answer (too few seeds for any interval; every axis tied), said plainly.

Each sentence is a bench.studies.compare.Finding: it carries the splits of the numbers it compares,
and no Finding compares two (tests/test_findings_rules.py checks every committed study's).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench import formatting as fmt
from bench.studies.compare import (TARGET_SPLIT, Finding, best_of, chosen_split, finished_points, held_fixed,
                                   interval_words, judge_points, per_value_best, split_words)
from bench.studies.figures import MIN_SEEDS_FOR_CI, StudyFrames, best_point, is_sparsity_study, measured_points
from bench.studies.findings_questions import (linked_arm_sentences, narrowed_dense_sentences, per_size_sentences,
                                              per_value_sentences, sparsity_readoff)
from bench.studies.study import Study, value_label
from bench.studies.timing import comparable_times, concurrency_line, time_sentence  # noqa: F401 (the report's)

# numeric axes studied as conditions (their effect is the question), not tuned: their best at an
# edge of the grid is a finding, not a sign that the grid is too narrow
CONDITION_AXES = ("dataset.", "model.", "recipe.batch_size", "recipe.epochs", "recipe.sparsity")


def findings(study: Study, data: StudyFrames) -> list[Finding]:
    """The study's findings, one sentence (or a few) per item; the first is the best point's."""
    best = best_point(data)
    if best is None:
        return [Finding("No cell has finished yet: there is nothing to find.")]
    comparisons = [_axis_comparison(study, data, axis) for axis in study.axes]
    out = [_best_sentence(study, data, best)]
    out += [text for text, _ in filter(None, comparisons)]
    out += sparsity_sentences(study, data)  # the sparsity study's questions
    out += per_value_sentences(study, data, comparable_times(data) is None)  # e.g. per BPTT mode
    out += per_size_sentences(study, data)  # data size x network size
    out += linked_arm_sentences(study, data, comparable_times(data) is None)  # e.g. the linear scaling rule against a fixed rate, by time
    out += edge_sentences(study, data)
    out.append(time_sentence(data, study.base.mode))
    out += _limits(data, [verdict for _, verdict in filter(None, comparisons)])
    return out


# ---------------------------------------------------------------- per point ----

def _point_words(study: Study, row: pd.Series, leave_out: str | None = None, only: list[str] | None = None) -> str:
    return ", ".join(f"{axis} = {row[f'axis:{axis}']}" for axis in study.axes
                     if axis != leave_out and (only is None or axis in only))


def _best_sentence(study: Study, data: StudyFrames, best: pd.Series) -> Finding:
    split = chosen_split(data)
    how = (f"highest mean {split} top-1, {split_words(data)}" if study.rank == "accuracy" else
           "fastest median time to target among the points whose every seed reached it (on test, the verdict's "
           f"split), then, between equal times, mean {split} top-1")
    # what the choice compares: the chosen split's means; by time, the times of reaching a target set on test
    compares = [split] if study.rank == "accuracy" else [TARGET_SPLIT]
    return Finding(f"Best point ({how}): {_point_words(study, best)}, with a mean test top-1 of "
                   f"{fmt.percent(best['mean_accuracy'])} "
                   f"({interval_words(best['ci_low'], best['ci_high'], int(best['complete']))}).", compares)


# ---------------------------------------------------------------- per axis ----

def _axis_comparison(study: Study, data: StudyFrames, axis: str) -> tuple[Finding, str] | None:
    """The axis's values at the best point's values of every other axis (held fixed, so the
    comparison does not cross another axis): the best point's value against the runner-up there,
    by the one tie rule (bench.studies.compare.judge) on the split the study chooses on."""
    best = best_point(data)
    column, split = f"axis:{axis}", chosen_split(data)
    others = [a for a in study.axes if a != axis]
    here = held_fixed(finished_points(data), others, best)
    rivals = [row for row in per_value_best(here, column, data.chosen_on) if row[column] != best[column]]
    held = f", with {_point_words(study, best, axis)} held at the best point's values" if others else ""
    tuned = [a for a in tuned_numeric_axes(study) if a != axis]
    if not rivals and tuned:  # each value at its own best of the tuned axes (their grids differ per value)
        fixed = [a for a in others if a not in tuned]
        here = held_fixed(finished_points(data), fixed, best)
        rivals = [row for row in per_value_best(here, column, data.chosen_on) if row[column] != best[column]]
        if rivals:
            own = ", ".join(tuned)
            settings = "; ".join(f"{row[column]}: " + ", ".join(f"{a} = {row[f'axis:{a}']}" for a in tuned)
                                 for row in [best, *rivals])
            kept = f", with {_point_words(study, best, only=fixed)} held at the best point's values" if fixed else ""
            held = (f", each value at its own best {own} (no other value was run at the best point's {own}){kept} "
                    f"({settings})")
    if not rivals:
        return Finding(f"{axis}: no other value was run{held}, so its values are not compared (a comparison "
                       "across the other axes would measure their effect too)."), "uncompared"
    if study.base.mode == "reach":
        return Finding(f"{axis}: values not compared by accuracy{held}: in reach mode every run stops at its first "
                       "evaluation at the target, so final accuracies are taken at different epochs; the time "
                       "Findings compare them."), "uncompared"
    runner = rivals[0]
    found, interval = judge_points(data, best, runner)
    head = (f"{axis}: {best[column]} against the runner-up {runner[column]}{held} ({split_words(data)}): mean {split} "
            f"top-1 {fmt.percent(best[data.chosen_on])} against {fmt.percent(runner[data.chosen_on])}")
    on_test = ("" if split == "test" else f" On test (reported, not compared): {fmt.percent(best['mean_accuracy'])} "
               f"against {fmt.percent(runner['mean_accuracy'])}.")
    if found == "unjudged":
        return Finding(head + f"; no interval (fewer than {MIN_SEEDS_FOR_CI} seeds at {best[column]}: "
                              f"{int(best['complete'])}), so the data cannot say whether {best[column]} is better."
                       + on_test, [split]), found
    where = {"better": "below", "tied": "within", "worse": "above"}[found]
    words = {"better": f"{best[column]} is better", "tied": "tied within noise",
             "worse": f"{runner[column]} is better, though {best[column]} is the best point's value (chosen by "
                      "time)"}[found]
    text = (f"{head}; {runner[column]} lies {where} {best[column]}'s 95% CI ({fmt.percent(interval[0])}–"
            f"{fmt.percent(interval[1])}): {words}.")
    return Finding(text + " " + _ties_words(data, column, best, rivals)
                   + on_test, [split]), found


def _ties_words(data: StudyFrames, column: str, best: pd.Series, others: list[pd.Series]) -> str:
    tied, unjudged, beyond = [], [], []
    for row in others:
        found = judge_points(data, best, row)[0]
        {"tied": tied, "unjudged": unjudged, "worse": beyond}.get(found, []).append(str(row[column]))
    text = (f"Tied with {best[column]}: {', '.join(tied)}." if tied
            else f"No value ties with {best[column]}.")
    if beyond:
        text += f" Above {best[column]}'s interval: {', '.join(beyond)}."
    if unjudged:
        text += f" Not judged (fewer than {MIN_SEEDS_FOR_CI} seeds): {', '.join(unjudged)}."
    return text


def sparsity_sentences(study: Study, data: StudyFrames) -> list[Finding]:
    """A sparsity study's read-off (the fewest active parameters reaching the target, on test) and
    each narrowed dense network against the sparse ones at its count."""
    if not is_sparsity_study(study):
        return []
    points = measured_points(data)
    readoff = [] if points.empty else [sparsity_readoff(points, study.base.target)]
    return readoff + narrowed_dense_sentences(study, data)


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
        split = [chosen_split(data)]
        out.append(Finding(f"Best {axis}{per} ({split_words(data)}): {'; '.join(bests)}.", split))
        out += [Finding(flag, split) for flag in flags] or [Finding(f"No best {axis} lies at an edge of its grid.")]
    return out


# ---------------------------------------------------------------- what the data cannot answer ----

def _limits(data: StudyFrames, verdicts: list[str]) -> list[Finding]:
    out = []
    finished = data.points[data.points["complete"] > 0]
    few = int((finished["complete"] < MIN_SEEDS_FOR_CI).sum())
    if few:
        least = int(finished["complete"].min())
        out.append(Finding(f"The data cannot settle these questions at {few} of {len(finished)} points: they have fewer than "
                   f"{MIN_SEEDS_FOR_CI} seeds (as few as {least}), so they have no interval and no verdict; rerun "
                   f"with at least {MIN_SEEDS_FOR_CI} seeds."))
    done = data.cells[data.cells["state"] == "done"]
    for column, what in (("hardware", "machine kinds"), ("code", "versions of the code")):
        kinds = done.groupby(column).size()
        if len(kinds) > 1:
            out.append(Finding(f"The cells ran on {len(kinds)} {what} ("
                               + "; ".join(f"{kind}: {n} cell{'s' if n != 1 else ''}" for kind, n in kinds.items())
                               + "): every figure here pools them, so a difference between points may be theirs (the table "
                                 "\"Cells by code and machine\" splits them)."))
    judged = [v for v in verdicts if v not in ("unjudged", "uncompared")]
    if judged and all(v != "better" for v in judged):
        split = chosen_split(data)
        out.append(Finding(f"No axis's best value is better than its runner-up in mean {split} top-1 by the tie rule "
                           "(outside the best one's 95% CI), with the other axes held at the best point's values: at "
                           "these seeds the data cannot tell the values of any axis apart by accuracy.", [split]))
    return out
