"""Findings for the questions particular studies ask, computed like every finding (bench.studies.
findings puts them after the per-axis comparisons):

- "Is a sparse network better than a small dense one?" Where a study trains dense networks
  narrowed to the sparse networks' active-parameter counts (series "dense, narrowed", named in
  bench.studies.figures), each narrowed network against the best sparse point (chosen on
  validation) at about its count: the difference of their mean test top-1 with its Welch 95% CI
  and the verdict, then a tally over the counts.
- Per value of an axis whose values are the study's question and differ in cost by design
  (PER_VALUE_AXES: the BPTT modes), one sentence per value at its best point: accuracy, time to
  target and the training's peak memory, so the values compare in one place.
- "Does the larger network pay off at every training-set size?" Where a study crosses
  dataset.train_size with a model axis: at each size, the model values at their own best points
  there (chosen on validation), best against runner-up with the difference's Welch 95% CI, with
  the train top-1 beside the test top-1 where it was measured (the gap is the over-fitting).
- "Does the linked rule beat a fixed value?" In a study ranked by time with linked axes (the
  linear scaling rule: the learning rate linked to the batch size) and off-link points added by
  [[include]], at each value of the group's first axis: the linked point against each other
  point there, by time to target (the mean over the seeds that reached it, the Welch 95% CI of
  the difference) and the median steps, then a tally and the median times per arm.
"""

from __future__ import annotations

import math

import pandas as pd

from bench import formatting as fmt
from bench.record.stats import welch_diff_ci95
from bench.studies.compare import (best_of, difference_on_test, finished_points, interval_words, per_value_best,
                                   signed_points, split_words, verdict)
from bench.studies.figures import MIN_SEEDS_FOR_CI, StudyFrames, measured_points
from bench.studies.study import Study, value_label

# A narrowed width is a whole number of units, so its count only approximates the sparse one's: at
# hidden = 1 the dense 784-1-10 has 805 parameters for the sparse networks' ~1,282 (0.5% active).
# Points further apart than this factor are not compared.
MATCH_FACTOR = 1.7

# axes whose every value is a question of its own (accuracy, time and memory per value)
PER_VALUE_AXES = ("recipe.bptt.mode",)


# ---------------------------------------------------------------- sparse against narrowed dense ----

def _sparse_name(row: pd.Series) -> str:
    """A sparse point as the report's table names it: its series and what it prunes to."""
    if not fmt.missing(row["sparsity_target"]):
        return f"{row['sparsity_series']} to {fmt.percent(row['sparsity_target'], 1)} active"
    return row["sparsity_series"] + ("" if fmt.missing(row["sparsity_l1"]) else f" (l1 {row['sparsity_l1']:g})")


def _dense_name(study: Study, row: pd.Series) -> str:
    widths = ", ".join(f"{axis} = {row[f'axis:{axis}']}" for axis in study.axes if axis.startswith("model."))
    return f"the dense network narrowed to {widths}" if widths else f"the dense network {row['sparsity_series']}"


def _nearest(sparse: pd.DataFrame, count: float) -> list[pd.Series]:
    """Per sparse series, its point nearest `count` active parameters (on a log scale), within MATCH_FACTOR."""
    out = []
    for _, group in sparse.groupby("sparsity_series", sort=False):
        distance = (group["active_params"].astype(float) / count).map(lambda r: abs(math.log(r)))
        if distance.min() <= math.log(MATCH_FACTOR):
            out.append(group.loc[distance.idxmin()])
    return out


def narrowed_dense_sentences(study: Study, data: StudyFrames) -> list[str]:
    """Each narrowed dense network against the best sparse point at about its active-parameter count."""
    points = measured_points(data)
    points = points[points["point"].isin(finished_points(data)["point"])]
    narrowed = points[points["sparsity_series"].str.startswith("dense, narrowed")]
    sparse = points[points["sparsity_method"] != "none"]
    if narrowed.empty or sparse.empty:
        return []
    lines, tally = [], {"better": 0, "tied": 0, "worse": 0, "unjudged": 0}
    for _, dense in narrowed.sort_values("active_params", ascending=False, kind="stable").iterrows():
        matches = _nearest(sparse, float(dense["active_params"]))
        if not matches:
            continue
        best = best_of(pd.DataFrame(matches), data.chosen_on)
        difference, interval = difference_on_test(data, best, dense)
        found = verdict(interval)
        tally[found] += 1
        head = (f"At about {fmt.count(dense['active_params'])} active parameters: the best sparse network there, "
                f"{_sparse_name(best)} ({fmt.count(best['active_params'])} active; {split_words(data)}), against "
                f"{_dense_name(study, dense)}: mean test top-1 {fmt.percent(best['mean_accuracy'])} against "
                f"{fmt.percent(dense['mean_accuracy'])}, a difference of {signed_points(difference)}")
        if found == "unjudged":
            lines.append(head + f"; no interval (fewer than {MIN_SEEDS_FOR_CI} seeds: {int(best['complete'])} and "
                                f"{int(dense['complete'])} here), so the data cannot say which is better.")
            continue
        words = {"better": "the sparse network is better", "tied": "tied within noise",
                 "worse": "the narrowed dense network is better"}[found]
        lines.append(f"{head} (95% CI of the difference {signed_points(interval[0])} to "
                     f"{signed_points(interval[1])}, Welch): {words}.")
    if not lines:
        return [f"No narrowed dense network has a sparse point within a factor {MATCH_FACTOR:g} of its active "
                "parameters: the data cannot compare them."]
    judged = len(lines) - tally["unjudged"]
    summary = (f"Is a sparse network better than a small dense one? At {len(lines)} matched active-parameter "
               f"count{'s' if len(lines) != 1 else ''} (within a factor {MATCH_FACTOR:g}), the best sparse network is "
               f"better at {tally['better']}, tied within noise at {tally['tied']} and worse at {tally['worse']}"
               + (f"; {tally['unjudged']} not judged (fewer than {MIN_SEEDS_FOR_CI} seeds)" if tally["unjudged"]
                  else "") + ("." if judged else "; the data cannot answer it."))
    return [summary, *lines]


# ---------------------------------------------------------------- one sentence per value ----

def per_value_sentences(study: Study, data: StudyFrames, times_compare: bool) -> list[str]:
    """Per value of each PER_VALUE_AXES axis, at its own best point: accuracy, time to target, peak memory."""
    finished = finished_points(data)
    out = []
    for axis in (a for a in PER_VALUE_AXES if a in study.axes):
        others = [a for a in study.axes if a != axis]
        for _, group in sorted(finished.groupby(f"axis:{axis}", sort=False), key=lambda item: item[1]["order"].min()):
            best = best_of(group, data.chosen_on)
            where = ", ".join(f"{a} = {best[f'axis:{a}']}" for a in others)
            memory = best.get("train_peak_memory_mb")
            out.append(f"{axis} = {best[f'axis:{axis}']}, at its best point ({where + '; ' if where else ''}"
                       f"{split_words(data)}): mean test top-1 {fmt.percent(best['mean_accuracy'])} "
                       f"({interval_words(best['ci_low'], best['ci_high'], int(best['complete']))}); "
                       + _time_words(best, times_compare) + "; training peak memory "
                       + (f"{fmt.megabytes(memory)} (median over the seeds)." if not fmt.missing(memory)
                          else "not recorded."))
    return out


def _time_words(best: pd.Series, times_compare: bool) -> str:
    if fmt.missing(best["reached"]) or not int(best["reached"]):
        return "no seed reached the target"
    time = fmt.time_to_target(best["median_time_s"], None, best["reached"], best["complete"])
    return f"median time to target {time}" + ("" if times_compare else
                                               " (times do not compare across these cells: see the time finding)")


# ---------------------------------------------------------------- data size x network size ----

SIZE_AXIS = "dataset.train_size"


def _accuracy_words(row: pd.Series) -> str:
    train = row.get("train_accuracy")
    test = f"test {fmt.percent(row['mean_accuracy'])}"
    return test if fmt.missing(train) else f"{test} (train {fmt.percent(train)})"


def per_size_sentences(study: Study, data: StudyFrames) -> list[str]:
    """At each training-set size, the best model value against the runner-up, each at its best point there."""
    models = [axis for axis in study.axes if axis.startswith("model.") and len(study.axes[axis]) > 1]
    if SIZE_AXIS not in study.axes or not models:
        return []
    finished = finished_points(data)
    out, tally = [], {"better": {}, "tied": 0, "worse": 0, "unjudged": 0}
    for size in sorted(study.axes[SIZE_AXIS], reverse=True):
        group = finished[finished[f"axis:{SIZE_AXIS}"] == value_label(size)]
        for axis in models:
            per_value = per_value_best(group, f"axis:{axis}", data.chosen_on)
            if len(per_value) < 2:
                continue
            best, runner = per_value[0], per_value[1]
            difference, interval = difference_on_test(data, best, runner)
            found = verdict(interval)
            head = (f"At {SIZE_AXIS} = {fmt.count(size)}: {axis} = {best[f'axis:{axis}']} against "
                    f"{runner[f'axis:{axis}']}, each at its best point there ({split_words(data)}): "
                    f"{_accuracy_words(best)} against {_accuracy_words(runner)}, a difference of "
                    f"{signed_points(difference)} on test")
            if found == "unjudged":
                tally["unjudged"] += 1
                out.append(head + f"; no interval (fewer than {MIN_SEEDS_FOR_CI} seeds).")
                continue
            if found == "better":
                tally["better"][best[f"axis:{axis}"]] = tally["better"].get(best[f"axis:{axis}"], 0) + 1
            else:
                tally[found] += 1
            words = {"better": f"{best[f'axis:{axis}']} is better", "tied": "tied within noise",
                     "worse": f"{runner[f'axis:{axis}']} is better on test"}[found]
            out.append(f"{head} (95% CI {signed_points(interval[0])} to {signed_points(interval[1])}, Welch): "
                       f"{words}.")
    if not out:
        return []
    wins = "; ".join(f"{value} better at {n}" for value, n in tally["better"].items()) or "no value better at any"
    summary = (f"Data size x network size: over {len(out)} training-set size{'s' if len(out) != 1 else ''}, {wins}"
               f", tied within noise at {tally['tied']}" + (f", reversed on test at {tally['worse']}" if tally["worse"]
                                                             else "")
               + (f", not judged at {tally['unjudged']}" if tally["unjudged"] else "") + ".")
    return [summary, *out]


# ---------------------------------------------------------------- a linked rule against fixed values ----

def _reach_times(data: StudyFrames, point: str) -> list[float]:
    """The per-seed time to target of a point's complete cells that reached it."""
    cells = data.cells[(data.cells["point"] == point) & (data.cells["state"] == "done")
                       & (data.cells["status"] == "complete") & (data.cells["reached_target"] == True)]  # noqa: E712
    return [float(v) for v in pd.to_numeric(cells["time_to_target_s"], errors="coerce").dropna()]


def _reach_words(times: list[float], row: pd.Series) -> str:
    seeds = int(row["complete"])
    if not times:
        return f"no seed of {seeds} reached the target"
    steps = "" if fmt.missing(row["median_steps"]) else f", median {fmt.count(row['median_steps'])} steps"
    return f"{fmt.seconds(sum(times) / len(times))} mean ({len(times)} of {seeds} seeds reached it{steps})"


def linked_arm_sentences(study: Study, data: StudyFrames) -> list[str]:
    """At each value of a link group's first axis, its linked point against the others, by time to target."""
    if study.rank != "time" or not study.links:
        return []
    finished = finished_points(data)
    out, tally, arms = [], {"faster": 0, "tied": 0, "slower": 0, "unjudged": 0}, {}
    shared: list[tuple[str, str, pd.Series]] = []  # linked points, which also belong to an arm of equal values
    for group in study.links:
        lead, partners = group[0], group[1:]
        pairs = {value_label(v): [value_label(study.axes[a][i]) for a in partners]
                 for i, v in enumerate(study.axes[lead])}
        for lead_value, linked_values in pairs.items():
            here = finished[finished[f"axis:{lead}"] == lead_value]
            on_link = here[(here[[f"axis:{a}" for a in partners]] == linked_values).all(axis=1)]
            if on_link.empty:
                continue
            linked = on_link.iloc[0]
            arms.setdefault("the link", {})[lead_value] = linked
            shared.append((lead_value, ", ".join(f"{a} = {v}" for a, v in zip(partners, linked_values)), linked))
            for _, other in here[here["point"] != linked["point"]].iterrows():
                name = ", ".join(f"{a} = {other[f'axis:{a}']}" for a in partners)
                arms.setdefault(name, {})[lead_value] = other
                mine, theirs = _reach_times(data, linked["point"]), _reach_times(data, other["point"])
                difference, interval = welch_diff_ci95(mine, theirs)
                head = (f"At {lead} = {lead_value}: the linked "
                        f"{', '.join(f'{a} = {v}' for a, v in zip(partners, linked_values))}, "
                        f"{_reach_words(mine, linked)}, against {name}, {_reach_words(theirs, other)}")
                if interval is None or min(len(mine), len(theirs)) < MIN_SEEDS_FOR_CI:
                    tally["unjudged"] += 1
                    out.append(head + f": not judged (fewer than {MIN_SEEDS_FOR_CI} seeds reached the target on a side).")
                    continue
                # linked minus other: an interval below 0 (verdict "worse") is a shorter time
                found = {"worse": "faster", "better": "slower", "tied": "tied"}[verdict(interval)]
                tally[found] += 1
                words = {"faster": "the linked value is faster", "slower": "the linked value is slower",
                         "tied": "tied within noise"}[found]
                out.append(f"{head}: a difference of {difference:+.1f} s (95% CI {interval[0]:+.1f} to "
                           f"{interval[1]:+.1f} s, Welch): {words}.")
    if not out:
        return []
    summary = (f"The linked values ({'; '.join(' with '.join(g) for g in study.links)}) against the other values at "
               f"the same {', '.join(g[0] for g in study.links)}, by time to target: faster at {tally['faster']}, "
               f"tied within noise at {tally['tied']}, slower at {tally['slower']}"
               + (f", not judged at {tally['unjudged']}" if tally["unjudged"] else "") + ".")
    for lead_value, name, linked in shared:  # e.g. batch 128 at lr 0.05: on the link and in the fixed arm
        if name in arms:
            arms[name][lead_value] = linked
    order = {value_label(v): i for g in study.links for i, v in enumerate(study.axes[g[0]])}
    return [summary, *out, _per_arm_words(arms, order)]


def _per_arm_words(arms: dict[str, dict[str, pd.Series]], order: dict[str, int]) -> str:
    def words(row: pd.Series) -> str:
        return "not reached" if fmt.missing(row["median_reach_time_s"]) else fmt.seconds(row["median_reach_time_s"])
    return "Median time to target per arm: " + "; ".join(
        f"{arm}: " + ", ".join(f"{lead}: {words(row)}" for lead, row in
                               sorted(values.items(), key=lambda item: order[item[0]]))
        for arm, values in arms.items()) + "."
